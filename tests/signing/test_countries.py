"""Signing for a lender outside South Africa: the OTP text writes money in the one format every
other SMS and screen uses, and DebiCheck (South Africa's debit-order system) is not offered."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from imali.messaging.credits import credits_assign
from imali.signing import security, services
from imali.signing.services import Document
from imali.tenancy.rights import Right
from imali.tenancy.services import rights_permissions
from imali.web.views.signing import MandateForm
from tests import factories

from .conftest import OFFICER_RIGHTS, make_application, make_borrower
from .test_services import enrol


@pytest.fixture
def na_setup(operator):
    entity = factories.make_entity(country="NA")
    credits_assign(actor=operator, entity=entity, channel="sms", amount=1000)
    admin = factories.make_admin(entity=entity)
    services.otp_setup_update(actor=admin, entity=entity, data={
        "enrol_client": True, "loan_otp": True, "threshold": "1000", "code_length": 6, "validity_minutes": 5,
        "tries_per_code": 5})
    officer = factories.make_user(entity=entity, rights=OFFICER_RIGHTS)
    borrower = make_borrower(entity)
    return entity, officer, borrower, make_application(entity, user=officer, client=borrower)


def _sent(challenge) -> str:
    return security.unseal_for_submit(challenge.outbox_message.text, challenge.outbox_message.idempotency_key)


def test_a_namibian_loan_otp_names_the_amount_as_every_other_message_does(na_setup):
    entity, officer, borrower, application = na_setup
    enrol(entity, officer, borrower)
    challenge = services.document_otp_send(actor=officer, entity=entity, document=Document(loan=application))
    # "NAD 3,000.00" as the reminders, receipts and statement write it (it read "N$3,000.00").
    assert f"sign loan {borrower.number}-{application.pk} of NAD 3,000.00 is " in _sent(challenge)
    assert " CAT. Do not share it." in _sent(challenge)


def test_a_namibian_lender_is_offered_seft_mandates_but_not_debicheck(na_setup):
    entity, officer, borrower, application = na_setup
    account = borrower.accounts.first()
    assert [k for k, _ in MandateForm(client=borrower).fields["kind"].choices] == ["seft"]
    with pytest.raises(ValidationError) as exc:
        services.mandate_create(actor=officer, entity=entity, loan=application,
                                data={"kind": "debicheck", "collection_day": 25, "account": account})
    assert "DebiCheck is South Africa's" in exc.value.error_dict["kind"][0].message
    assert not application.mandates.exists()
    mandate = services.mandate_create(actor=officer, entity=entity, loan=application,
                                      data={"kind": "seft", "collection_day": 25, "account": account})
    assert mandate.kind == "seft"


def test_a_south_african_lender_is_still_offered_debicheck(entity):
    borrower = make_borrower(entity)
    assert [k for k, _ in MandateForm(client=borrower).fields["kind"].choices] == ["debicheck", "seft"]


def test_the_enrolment_screen_tells_a_namibian_number_as_people_read_it(client, na_setup):
    entity, officer, borrower, _ = na_setup
    officer.roles.first().rights.add(*rights_permissions([Right.MANAGE_CLIENTS]))
    client.force_login(officer)
    page = client.post(reverse("web:signing_enrolment", kwargs={"client_id": borrower.pk}), {"action": "send"},
                       follow=True).content.decode()
    assert "A code was sent to 081 123 4567." in page and "+264811234567" not in page
