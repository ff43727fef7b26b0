"""Two correct submissions of the same code at the same moment give exactly one signature."""

from __future__ import annotations

import threading

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections

from imali.messaging.credits import credits_assign
from imali.signing import services
from imali.signing.models import Challenge, ChallengeStatus, Signature
from imali.signing.services import Document
from tests import factories

from .conftest import OFFICER_RIGHTS, code_sent, make_application, make_borrower


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_correct_codes_sign_once():
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(("file:memorydb", ":memory:")):
        pytest.skip("in-memory SQLite cannot be shared between threads; runs on PostgreSQL (make test runs both)")
    entity = factories.make_entity(country="ZA")
    credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=100)
    admin = factories.make_admin(entity=entity)
    services.otp_setup_update(actor=admin, entity=entity, data={"enrol_client": True, "loan_otp": True})
    officer = factories.make_user(entity=entity, rights=OFFICER_RIGHTS)
    client = make_borrower(entity)
    challenge = services.enrolment_send(actor=officer, entity=entity, client=client)
    services.enrolment_verify(actor=officer, entity=entity, client=client, challenge_id=challenge.public_id,
                              code=code_sent(challenge))
    loan = make_application(entity, user=officer, client=client)
    document = Document(loan=loan)
    challenge = services.document_otp_send(actor=officer, entity=entity, document=document)
    code = code_sent(challenge)
    threads_count = 4
    barrier = threading.Barrier(threads_count)
    outcomes: list[str] = []

    def submit():
        try:
            barrier.wait()
            services.document_otp_verify(actor=officer, entity=entity, document=document,
                                         challenge_id=challenge.public_id, code=code)
            outcomes.append("signed")
        except ValidationError as exc:
            outcomes.append(next(iter(exc.error_dict.values()))[0].code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit) for _ in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("signed") == 1, outcomes
    assert set(outcomes) - {"signed"} <= {"code_used", "already_signed"}
    assert Signature.objects.filter(loan=loan).count() == 1
    assert Challenge.objects.get(pk=challenge.pk).status == ChallengeStatus.VERIFIED
