"""What staff see around signing (issue 10 §5): loans awaiting signature, the signed state on the
loan and client pages, the client's history, times in the entity's zone, people words in the
OTP audit, the loan OTP text."""

from __future__ import annotations

import datetime as dt
import html
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from imali.clients.services import client_update
from imali.loans.models import LoanStatus
from imali.loans.services import loan_approve, loan_disburse
from imali.signing import selectors, services
from imali.tenancy.rights import Right
from imali.web import wording
from tests import factories

from .conftest import code_sent, make_application, make_borrower

pytestmark = pytest.mark.django_db


def _disburse(loan, user, on=dt.date(2026, 11, 3)):
    user.disbursement_limit = Decimal("100000")
    user.save(update_fields=["disbursement_limit"])
    loan_approve(loan=loan, actor=user)
    loan.refresh_from_db()
    return loan_disburse(loan=loan, actor=user, payout_account=loan.client.accounts.first(), disbursed_on=on)


def _enrol(entity, user, client):
    challenge = services.enrolment_send(actor=user, entity=entity, client=client)
    return services.enrolment_verify(actor=user, entity=entity, client=client, challenge_id=challenge.public_id,
                                     code=code_sent(challenge))


def test_loans_awaiting_signature_lists_only_loans_that_can_still_be_signed(client, setup, admin, officer):
    entity = setup.entity
    waiting = make_application(entity, user=officer, client=make_borrower(entity))
    approved = make_application(entity, user=officer, client=make_borrower(entity, cellphone="0821110003",
                                                                              id_number="8001015009087", date_of_birth=dt.date(1980, 1, 1)))
    loan_approve(loan=approved, actor=admin)
    # Below the Loan OTP amount: signed on paper, paid out without a signature record.
    paid_out = _disburse(make_application(entity, user=officer, principal="800",
                                          client=make_borrower(entity, cellphone="0821110004", id_number="9202204720083",
                                                             date_of_birth=dt.date(1992, 2, 20), gender="F")),
                         admin)
    assert paid_out.status == LoanStatus.ACTIVE

    listed = {loan.pk for loan in selectors.loans_awaiting_signature(entity=entity)}
    assert listed == {waiting.pk, approved.pk}
    client.force_login(officer)
    page = client.get(reverse("web:signing_loans")).content.decode()
    assert reverse("web:signing_loan", kwargs={"loan_id": waiting.pk}) in page
    assert reverse("web:signing_loan", kwargs={"loan_id": paid_out.pk}) not in page
    # And its signing screen no longer offers to sign it.
    signing_page = client.get(reverse("web:signing_loan", kwargs={"loan_id": paid_out.pk})).content.decode()
    assert "paid out already" in signing_page and 'id="finish-by-hand"' not in signing_page


def _sms_text(challenge) -> str:
    """The SMS as the phone receives it (the code unsealed, as the transport does)."""
    from imali.messaging.models import OutboxMessage
    from imali.signing import security

    message = OutboxMessage.objects.get(pk=challenge.outbox_message_id)
    return security.unseal_for_submit(message.text, message.idempotency_key)


def test_the_loan_otp_sms_reads_naturally_and_its_expiry_agrees_with_the_banner(client, setup, officer, borrower,
                                                                             application):
    entity = setup.entity
    _enrol(entity, officer, borrower)
    client.force_login(officer)
    url = reverse("web:signing_loan", kwargs={"loan_id": application.pk})
    response = client.post(url, {"action": "send"}, follow=True)
    banner = " ".join(str(m) for m in response.context["messages"])
    from imali.signing.models import Challenge

    challenge = Challenge.objects.get(subject_key=f"loan:{application.pk}", status="pending")
    text = _sms_text(challenge)
    code = code_sent(challenge)
    assert text == (f"{entity.name}: your OTP to sign loan {borrower.number}-{application.pk} of ZAR 3,000.00 is {code}. "
                    f"Valid 5 min, until {wording.time_label(challenge.expires_at, entity.time_zone)}. Do not share it.")
    until = wording.time_label(challenge.expires_at, entity.time_zone)
    assert until.endswith(" SAST")
    # The same time, labelled the same way, in the SMS, the banner and the page.
    assert f"until {until}" in text and f"valid until {until}" in banner
    page = response.content.decode()
    assert f'<span id="code-valid-until">{until}</span>' in page
    local_hhmm = challenge.expires_at.astimezone(dt.timezone(dt.timedelta(hours=2))).strftime("%H:%M")
    assert until.startswith(local_hhmm)


def test_the_loan_page_says_how_it_was_signed_and_links_the_agreement(client, setup, admin, officer, borrower,
                                                                      application):
    entity = setup.entity
    _enrol(entity, officer, borrower)
    document = services.Document(loan=application)
    challenge = services.document_otp_send(actor=officer, entity=entity, document=document)
    signature = services.document_otp_verify(actor=officer, entity=entity, document=document,
                                             challenge_id=challenge.public_id, code=code_sent(challenge))
    client.force_login(officer)
    page = client.get(reverse("web:loan_detail", kwargs={"loan_id": application.pk})).content.decode()
    when = wording.datetime_label(signature.signed_at, entity.time_zone)
    assert f"Signed on {when} by OTP to +27 82 *** 4567." in page
    assert reverse("web:signing_signature_pdf", kwargs={"signature_id": signature.pk}) in page
    # Without a right to open agreements the sentence stays, the link does not.
    viewer = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    client.force_login(viewer)
    page = client.get(reverse("web:loan_detail", kwargs={"loan_id": application.pk})).content.decode()
    assert f"Signed on {when} by OTP" in page
    assert reverse("web:signing_signature_pdf", kwargs={"signature_id": signature.pk}) not in page


def test_the_client_page_shows_enrolment_signing_and_stop_in_history_and_an_opt_out_badge(
        client, setup, officer, borrower, application):
    from imali.messaging.inbound import inbound_receive

    entity = setup.entity
    client_update(client=borrower, actor=officer, data={"marketing_consent": True})
    client.force_login(officer)
    url = reverse("web:client_detail", kwargs={"client_id": borrower.pk})
    assert 'id="marketing-badge">Marketing consent given' in client.get(url).content.decode()

    _enrol(entity, officer, borrower)
    document = services.Document(loan=application)
    challenge = services.document_otp_send(actor=officer, entity=entity, document=document)
    services.document_otp_verify(actor=officer, entity=entity, document=document, challenge_id=challenge.public_id,
                                 code=code_sent(challenge))
    inbound_receive(gateway="local-smsc", provider_id="mo-1", number=borrower.cellphone, text="STOP")
    page = client.get(url).content.decode()
    assert "Opted out of marketing (STOP)" in page and 'id="enrolment-badge"' in page
    history = html.unescape(page[page.index("<h2>History</h2>"):])
    assert "Cellphone +27 82 *** 4567 enrolled for OTPs." in history
    assert f"The loan {application.pk} agreement was signed with the client's OTP." in history
    assert "The client answered STOP: no marketing SMS to this number any more." in history
    assert "Marketing consent given." in history


def test_the_otp_audit_says_what_happened_in_words_and_never_shows_a_code(client, setup, admin, officer, borrower):
    entity = setup.entity
    challenge = services.enrolment_send(actor=officer, entity=entity, client=borrower)
    code = code_sent(challenge)
    wrong = "000000" if code != "000000" else "111111"
    with pytest.raises(ValidationError):
        services.enrolment_verify(actor=officer, entity=entity, client=borrower, challenge_id=challenge.public_id,
                                  code=wrong)
    services.enrolment_verify(actor=officer, entity=entity, client=borrower, challenge_id=challenge.public_id, code=code)
    client.force_login(admin)
    page = client.get(reverse("web:signing_otp_audit")).content.decode()
    assert "Code sent to +27 82 *** 4567 for the cellphone enrolment." in page
    assert "Wrong code entered for the cellphone enrolment. 4 tries left." in page
    assert "Code entered correctly for the cellphone enrolment." in page
    assert "Cellphone +27 82 *** 4567 enrolled for OTPs." in page
    for raw in ("purpose:", "challenge:", "terms_digest", challenge.public_id, code):
        assert raw not in page, raw
    csv_text = b"".join(client.get(reverse("web:signing_otp_audit"), {"export": "csv"}).streaming_content).decode()
    assert "Code entered correctly" in csv_text and challenge.public_id not in csv_text and code not in csv_text
    assert " SAST" in csv_text


def test_the_credit_ledger_says_one_time_pin_never_the_sealed_key(client, setup, admin, officer, borrower):
    services.enrolment_send(actor=officer, entity=setup.entity, client=borrower)
    client.force_login(admin)
    page = client.get(reverse("web:messaging_credits")).content.decode()
    assert "One-time PIN SMS" in page
    assert "otp-sealed" not in page and "msg:" not in page


def test_entities_on_the_old_default_otp_text_move_to_the_new_one_and_own_texts_stay(admin, funded, other_entity):
    import importlib

    from django.apps import apps

    from imali.messaging.defaults import DEFAULT_TEXTS, OTP_DEFAULT_TEXT, OTP_DEFAULT_TEXT_BEFORE
    from imali.messaging.models import MessageTemplate, TemplateRevision

    migration = importlib.import_module("imali.signing.migrations.0002_otp_default_text")
    assert (migration.BEFORE, migration.AFTER) == (OTP_DEFAULT_TEXT_BEFORE, OTP_DEFAULT_TEXT) == \
        (OTP_DEFAULT_TEXT_BEFORE, DEFAULT_TEXTS["otp"])
    unchanged = MessageTemplate.objects.create(entity=funded, channel="sms", message_type="otp",
                                               text=OTP_DEFAULT_TEXT_BEFORE)
    own = MessageTemplate.objects.create(entity=other_entity, channel="sms", message_type="otp",
                                         text="Code {^OTP^} for you")
    migration.forward(apps, None)
    unchanged.refresh_from_db()
    own.refresh_from_db()
    assert unchanged.text == OTP_DEFAULT_TEXT and own.text == "Code {^OTP^} for you"
    revision = TemplateRevision.objects.get(template=unchanged)
    assert (revision.old_text, revision.new_text) == (OTP_DEFAULT_TEXT_BEFORE, OTP_DEFAULT_TEXT)
    assert not TemplateRevision.objects.filter(template=own).exists()
    migration.backward(apps, None)
    unchanged.refresh_from_db()
    assert unchanged.text == OTP_DEFAULT_TEXT_BEFORE
