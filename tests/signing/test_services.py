"""Setups, enrolment, loan signing, resend, tries, expiry, terms, hand signatures, overrides,
mandates and sign-in codes, through the real services against the database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from imali.core.models import AuditAction, AuditEntry
from imali.loans.models import Loan
from imali.messaging.models import OutboxMessage, Priority
from imali.signing import security, services
from imali.signing.models import (
    Challenge,
    ChallengeStatus,
    Enrolment,
    MandateStatus,
    OtpSetup,
    Signature,
    SignatureMethod,
)
from imali.signing.services import Document
from tests import factories

from .conftest import code_sent, make_application, make_borrower

pytestmark = pytest.mark.django_db


def codes_of(exc: ValidationError, field: str) -> list[str]:
    return [e.code for e in exc.error_dict[field]]


def enrol(entity, officer, client):
    challenge = services.enrolment_send(actor=officer, entity=entity, client=client)
    return services.enrolment_verify(actor=officer, entity=entity, client=client, challenge_id=challenge.public_id,
                                     code=code_sent(challenge))


# --- Setups --------------------------------------------------------------------------------------


def test_esign_and_loan_otp_never_both_on(funded, admin):
    with pytest.raises(ValidationError) as exc:
        services.otp_setup_update(actor=admin, entity=funded, data={"enrol_client": True, "loan_otp": True, "esign_loan_otp": True})
    assert codes_of(exc.value, "loan_otp") == ["esign_and_loan_otp"]
    with pytest.raises(IntegrityError), transaction.atomic():
        OtpSetup.objects.create(entity=funded, enrol_client=True, loan_otp=True, esign_loan_otp=True)


@pytest.mark.parametrize("field,value", [("code_length", 5), ("code_length", 11), ("validity_minutes", 11),
                                         ("validity_minutes", 0), ("tries_per_code", 6), ("threshold", "-1")])
def test_setup_limits_are_refused_naming_the_field(funded, admin, field, value):
    with pytest.raises(ValidationError) as exc:
        services.otp_setup_update(actor=admin, entity=funded, data={field: value})
    assert field in exc.value.error_dict


def test_loan_otp_needs_enrolment_and_setup_needs_the_right(funded, admin, officer):
    with pytest.raises(ValidationError) as exc:
        services.otp_setup_update(actor=admin, entity=funded, data={"loan_otp": True})
    assert codes_of(exc.value, "enrol_client") == ["needs_enrol_client"]
    with pytest.raises(PermissionDenied):
        services.otp_setup_update(actor=officer, entity=funded, data={"user_otp": True})
    setup = services.otp_setup_update(actor=admin, entity=funded, data={"enrol_client": True, "esign_loan_otp": True})
    assert setup.esign_loan_otp and AuditEntry.objects.filter(action=AuditAction.OTP_SETUP_CHANGED).count() == 1


# --- Enrolment -----------------------------------------------------------------------------------


def test_enrolment_sends_an_otp_sms_first_in_the_queue_and_stores_no_code(setup, officer, borrower):
    challenge = services.enrolment_send(actor=officer, entity=setup.entity, client=borrower)
    message = OutboxMessage.objects.get(pk=challenge.outbox_message_id)
    code = code_sent(challenge)
    assert message.priority == Priority.OTP and message.message_type == "otp"
    assert message.number == borrower.cellphone
    assert code not in message.text and "******" in message.text
    assert code not in challenge.code_hash
    enrolment = services.enrolment_verify(actor=officer, entity=setup.entity, client=borrower,
                                          challenge_id=challenge.public_id, code=code)
    assert enrolment.cellphone == borrower.cellphone and enrolment.is_active
    assert set(AuditEntry.objects.filter(entity=setup.entity).values_list("action", flat=True)) >= {
        AuditAction.OTP_SENT, AuditAction.OTP_VERIFIED, AuditAction.ENROLMENT_CREATED}


def test_one_borrower_per_cellphone(setup, officer, borrower):
    enrol(setup.entity, officer, borrower)
    twin = factories.make_client(entity=setup.entity, id_number="8001015009087", date_of_birth=dt.date(1980, 1, 1))
    assert twin.cellphone == borrower.cellphone
    with pytest.raises(ValidationError) as exc:
        services.enrolment_send(actor=officer, entity=setup.entity, client=twin)
    assert codes_of(exc.value, "cellphone") == ["cellphone_enrolled_elsewhere"]
    assert str(borrower.number) in exc.value.error_dict["cellphone"][0].message
    with pytest.raises(IntegrityError), transaction.atomic():
        Enrolment.objects.create(entity=setup.entity, client=twin, cellphone=twin.cellphone, enrolled_at=timezone.now())


def test_changing_an_enrolled_number_needs_clear_enrolment(setup, officer, supervisor, borrower):
    enrol(setup.entity, officer, borrower)
    with pytest.raises(PermissionDenied):
        services.enrolment_clear(actor=officer, entity=setup.entity, client=borrower, reason="new phone")
    with pytest.raises(ValidationError):
        services.enrolment_send(actor=officer, entity=setup.entity, client=borrower)
    services.enrolment_clear(actor=supervisor, entity=setup.entity, client=borrower, reason="new phone")
    assert services.enrolment_active(entity=setup.entity, client=borrower) is None
    enrol(setup.entity, officer, borrower)
    assert Enrolment.objects.filter(client=borrower).count() == 2


# --- Loan signing --------------------------------------------------------------------------------


def test_loan_signed_with_the_otp_bound_to_its_terms(setup, officer, borrower, application):
    enrol(setup.entity, officer, borrower)
    document = Document(loan=application)
    decision = services.document_decision(entity=setup.entity, document=document)
    assert decision.requirement == "otp_required"
    challenge = services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    message = OutboxMessage.objects.get(pk=challenge.outbox_message_id)
    sent = security.unseal_for_submit(message.text, message.idempotency_key)
    assert sent.startswith(f"{setup.entity.name}: your OTP to sign loan {borrower.number}-{application.pk} of ZAR 3,000.00 is ")
    assert sent.endswith(" SAST. Do not share it.") and "Valid 5 min, until " in sent
    assert challenge.terms_digest == services.loan_digest(application)
    signature = services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                             challenge_id=challenge.public_id, code=code_sent(challenge))
    assert signature.method == SignatureMethod.OTP and not signature.hand_signature_required
    assert signature.client_id_number == borrower.id_number and signature.client_cellphone == borrower.cellphone
    assert signature.signature_line.startswith("Electronically signed on ")
    assert f"by Thabo Johannes Mokoena {borrower.id_number}, cellphone no {borrower.cellphone}" in signature.signature_line
    assert signature.document_sha256 == security.document_sha256(bytes(signature.document_pdf))
    assert bytes(signature.document_pdf).startswith(b"%PDF")
    assert signature.terms_digest == challenge.terms_digest
    with pytest.raises(ValidationError) as exc:
        services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                     challenge_id=challenge.public_id, code=code_sent(challenge))
    assert codes_of(exc.value, "code") == ["code_used"]
    assert Signature.objects.count() == 1


def test_changed_terms_void_the_code(setup, officer, borrower, application):
    enrol(setup.entity, officer, borrower)
    document = Document(loan=application)
    challenge = services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    Loan.objects.filter(pk=application.pk).update(principal=Decimal("3500.00"))
    with pytest.raises(ValidationError) as exc:
        services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                     challenge_id=challenge.public_id, code=code_sent(challenge))
    assert codes_of(exc.value, "code") == ["terms_changed"]
    challenge.refresh_from_db()
    assert challenge.status == ChallengeStatus.VOIDED and challenge.void_reason == "terms_changed"
    assert not Signature.objects.exists()


def test_resend_voids_the_earlier_code(setup, officer, borrower, application):
    enrol(setup.entity, officer, borrower)
    document = Document(loan=application)
    first = services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    first_code = code_sent(first)
    second = services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    first.refresh_from_db()
    assert first.status == ChallengeStatus.VOIDED
    with pytest.raises(ValidationError) as exc:
        services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                     challenge_id=first.public_id, code=first_code)
    assert codes_of(exc.value, "code") == ["code_void"]
    assert AuditEntry.objects.filter(action=AuditAction.OTP_RESENT).count() == 1
    services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                 challenge_id=second.public_id, code=code_sent(second))


def test_five_wrong_tries_void_the_code_and_the_flow_restarts(setup, officer, borrower, application):
    enrol(setup.entity, officer, borrower)
    document = Document(loan=application)
    challenge = services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    right = code_sent(challenge)
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    messages = []
    for _ in range(5):
        with pytest.raises(ValidationError) as exc:
            services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                         challenge_id=challenge.public_id, code=wrong)
        messages.append(exc.value.error_dict["code"][0].message)
        assert right not in messages[-1] and wrong not in messages[-1]
    assert messages[0] == "The code is not correct. 4 tries left."
    assert "Too many wrong codes" in messages[-1]
    with pytest.raises(ValidationError) as exc:
        services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                     challenge_id=challenge.public_id, code=right)
    assert codes_of(exc.value, "code") == ["code_exhausted"]
    again = services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                 challenge_id=again.public_id, code=code_sent(again))
    assert AuditEntry.objects.filter(action=AuditAction.OTP_FAILED).count() == 4
    assert AuditEntry.objects.filter(action=AuditAction.OTP_EXHAUSTED).count() == 1


def test_an_expired_code_is_refused(setup, officer, borrower, application):
    enrol(setup.entity, officer, borrower)
    document = Document(loan=application)
    sent_at = timezone.now() - dt.timedelta(minutes=6)
    challenge = services.document_otp_send(actor=officer, entity=setup.entity, document=document, now=sent_at)
    assert challenge.expires_at == sent_at + dt.timedelta(minutes=5)
    with pytest.raises(ValidationError) as exc:
        services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                     challenge_id=challenge.public_id, code=code_sent(challenge))
    assert codes_of(exc.value, "code") == ["code_expired"]


def test_loan_otp_mandatory_refuses_hand_signature_but_esign_allows_it(setup, admin, officer, borrower, application):
    enrol(setup.entity, officer, borrower)
    document = Document(loan=application)
    with pytest.raises(ValidationError) as exc:
        services.document_hand_sign(actor=officer, entity=setup.entity, document=document)
    assert codes_of(exc.value, "loan") == ["otp_required"]
    services.otp_setup_update(actor=admin, entity=setup.entity, data={"loan_otp": False, "esign_loan_otp": True})
    signature = services.document_hand_sign(actor=officer, entity=setup.entity, document=document)
    assert signature.method == SignatureMethod.HAND and signature.hand_signature_required
    assert signature.hand_reason == "otp_declined"


def test_not_enrolled_or_below_threshold_is_signed_by_hand(setup, officer, borrower, application):
    decision = services.document_decision(entity=setup.entity, document=Document(loan=application))
    assert decision.requirement == "hand" and decision.hand_reason == "not_enrolled"
    with pytest.raises(ValidationError) as exc:
        services.document_otp_send(actor=officer, entity=setup.entity, document=Document(loan=application))
    assert codes_of(exc.value, "loan") == ["otp_not_applicable"]
    signature = services.document_hand_sign(actor=officer, entity=setup.entity, document=Document(loan=application))
    assert signature.hand_reason == "not_enrolled" and b"signed by hand" in bytes(signature.document_pdf)
    enrol(setup.entity, officer, borrower)
    small = make_application(setup.entity, user=officer, client=borrower, principal="800")
    assert services.document_decision(entity=setup.entity, document=Document(loan=small)).hand_reason == "below_threshold"


def test_override_with_the_supervisors_password(setup, officer, supervisor, borrower, application):
    enrol(setup.entity, officer, borrower)
    document = Document(loan=application)
    services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    with pytest.raises(ValidationError) as exc:
        services.document_override(actor=officer, entity=setup.entity, document=document, authoriser=officer,
                                   reason="lost phone", password="correct-horse-battery")
    assert codes_of(exc.value, "authoriser") == ["override_right"]
    with pytest.raises(ValidationError) as exc:
        services.document_override(actor=officer, entity=setup.entity, document=document, authoriser=supervisor,
                                   reason="lost phone", password="wrong-password")
    assert codes_of(exc.value, "password") == ["override_auth_failed"]
    with pytest.raises(ValidationError):
        services.document_override(actor=officer, entity=setup.entity, document=document, authoriser=supervisor,
                                   reason="  ", password="supervisor-pass-123")
    signature = services.document_override(actor=officer, entity=setup.entity, document=document, authoriser=supervisor,
                                           reason="lost phone", password="supervisor-pass-123")
    assert signature.method == SignatureMethod.OVERRIDE and signature.hand_signature_required
    assert signature.authorised_by == supervisor and signature.administered_by == officer
    assert "Loan administered by Olive Officer on " in signature.signature_line
    assert signature.signature_line.split("\n")[0].endswith("authorised by Sipho Supervisor")
    assert Challenge.objects.get(subject_key=f"loan:{application.pk}").status == ChallengeStatus.VOIDED
    assert AuditEntry.objects.filter(action=AuditAction.OVERRIDE_REFUSED).count() == 2


def test_override_with_the_supervisors_own_otp(setup, officer, supervisor, borrower, application):
    enrol(setup.entity, officer, borrower)
    document = Document(loan=application)
    challenge = services.override_otp_send(actor=officer, entity=setup.entity, document=document, authoriser=supervisor)
    assert OutboxMessage.objects.get(pk=challenge.outbox_message_id).number == supervisor.cellphone
    signature = services.document_override(actor=officer, entity=setup.entity, document=document, authoriser=supervisor,
                                           reason="client's phone stolen", challenge_id=challenge.public_id,
                                           code=code_sent(challenge))
    assert signature.override_auth == "otp" and signature.method == SignatureMethod.OVERRIDE


def test_mandate_signed_again_with_an_otp(setup, officer, borrower, application):
    enrol(setup.entity, officer, borrower)
    account = borrower.accounts.first()
    with pytest.raises(ValidationError) as exc:
        services.mandate_create(actor=officer, entity=setup.entity, loan=application, data={
            "kind": "debicheck", "maximum_collection": application.instalment_amount * 2, "collection_day": 25,
            "account": account})
    assert "maximum_collection" in exc.value.error_dict
    mandate = services.mandate_create(actor=officer, entity=setup.entity, loan=application, data={
        "kind": "debicheck", "collection_day": 25, "account": account})
    assert mandate.instalment_amount == application.instalment_amount == mandate.maximum_collection
    document = Document(loan=application, mandate=mandate)
    challenge = services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    text = security.unseal_for_submit(challenge.outbox_message.text, challenge.outbox_message.idempotency_key)
    assert text.startswith(f"{setup.entity.name}: your OTP to sign the DebiCheck debit mandate for loan ")
    signature = services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                             challenge_id=challenge.public_id, code=code_sent(challenge))
    mandate.refresh_from_db()
    assert signature.mandate == mandate and mandate.status == MandateStatus.SIGNED
    # The loan itself is still unsigned: the mandate's signature is its own.
    assert services.document_decision(entity=setup.entity, document=Document(loan=application)).requirement == "otp_required"


def test_a_code_for_one_loan_does_not_sign_another(setup, officer, borrower, application):
    enrol(setup.entity, officer, borrower)
    other = make_application(setup.entity, user=officer, client=borrower, principal="2500")
    challenge = services.document_otp_send(actor=officer, entity=setup.entity, document=Document(loan=application))
    with pytest.raises(ValidationError) as exc:
        services.document_otp_verify(actor=officer, entity=setup.entity, document=Document(loan=other),
                                     challenge_id=challenge.public_id, code=code_sent(challenge))
    assert "challenge" in exc.value.error_dict


def test_send_rate_limit_per_phone(setup, officer, borrower, application, settings):
    settings.IMALI_OTP_SEND_PER_PHONE = 3
    enrol(setup.entity, officer, borrower)  # one send
    document = Document(loan=application)
    services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    with pytest.raises(ValidationError) as exc:
        services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    assert codes_of(exc.value, "cellphone") == ["rate_limited"]
    assert AuditEntry.objects.filter(action=AuditAction.OTP_RATE_LIMITED).count() == 1
    later = timezone.now() + dt.timedelta(minutes=16)
    services.document_otp_send(actor=officer, entity=setup.entity, document=document, now=later)


def test_verify_rate_limit_per_address(setup, officer, borrower, application, settings):
    settings.IMALI_OTP_VERIFY_PER_ADDRESS = 2
    enrol(setup.entity, officer, borrower)
    document = Document(loan=application)
    challenge = services.document_otp_send(actor=officer, entity=setup.entity, document=document)
    for _ in range(2):
        with pytest.raises(ValidationError):
            services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                         challenge_id=challenge.public_id, code="000000", ip="10.0.0.9")
    with pytest.raises(ValidationError) as exc:
        services.document_otp_verify(actor=officer, entity=setup.entity, document=document,
                                     challenge_id=challenge.public_id, code=code_sent(challenge), ip="10.0.0.9")
    assert codes_of(exc.value, "code") == ["rate_limited"]


def test_signature_document_check(setup, officer, borrower, application):
    signature = services.document_hand_sign(actor=officer, entity=setup.entity, document=Document(loan=application))
    pdf = bytes(signature.document_pdf)
    assert services.signature_document_check(actor=officer, entity=setup.entity, signature=signature, data=pdf)
    tampered = pdf.replace(b"3,000.00", b"3,900.00")
    assert tampered != pdf
    assert not services.signature_document_check(actor=officer, entity=setup.entity, signature=signature, data=tampered)


def test_login_otp(setup, admin, officer):
    assert not services.login_otp_required(user=officer)
    services.otp_setup_update(actor=admin, entity=setup.entity, data={"user_otp": True})
    officer.refresh_from_db()
    assert services.login_otp_required(user=officer)
    challenge = services.login_otp_send(user=officer, ip="10.1.1.1")
    assert challenge.outbox_message.number == officer.cellphone
    with pytest.raises(ValidationError):
        services.login_otp_verify(user=officer, challenge_id=challenge.public_id, code="12345")
    services.login_otp_verify(user=officer, challenge_id=challenge.public_id, code=code_sent(challenge))
    actions = list(AuditEntry.objects.filter(subject="officer").values_list("action", flat=True))
    assert {AuditAction.LOGIN_OTP_SENT, AuditAction.LOGIN_OTP_FAILED, AuditAction.LOGIN_OTP_VERIFIED} <= set(actions)


def test_other_entitys_records_are_refused(setup, officer, other_entity):
    theirs = make_borrower(other_entity)
    with pytest.raises(PermissionDenied):
        services.enrolment_send(actor=officer, entity=setup.entity, client=theirs)


def test_loan_ready_for_disbursement_once_signed(setup, officer, borrower, application):
    from imali.signing.selectors import loan_ready_for_disbursement

    ready, reason = loan_ready_for_disbursement(entity=setup.entity, loan=application)
    assert not ready and "not signed yet" in reason
    services.document_hand_sign(actor=officer, entity=setup.entity, document=Document(loan=application))
    assert loan_ready_for_disbursement(entity=setup.entity, loan=application) == (True, "")


def test_an_entity_otp_text_without_the_code_field_falls_back_to_the_default(setup, admin, officer, borrower):
    from imali.messaging.models import MessageTemplate

    # template_update refuses such a text now; a row saved before that rule still reaches here.
    MessageTemplate.objects.create(entity=setup.entity, channel="sms", message_type="otp",
                                   text="Hello from {^Legal Entity Name^}", updated_by=admin)
    challenge = services.enrolment_send(actor=officer, entity=setup.entity, client=borrower)
    message = OutboxMessage.objects.get(pk=challenge.outbox_message_id)
    assert security.unseal_for_submit(message.text, message.idempotency_key) == \
        f"Your one-time PIN from {setup.entity.name} is {code_sent(challenge)} Do not share it with anyone."


def test_unused_codes_expire_in_the_audit_and_old_rate_windows_go(setup, officer, borrower):
    sent_at = timezone.now() - dt.timedelta(hours=2)
    challenge = services.enrolment_send(actor=officer, entity=setup.entity, client=borrower, now=sent_at)
    fresh = services.enrolment_send(actor=officer, entity=setup.entity, client=make_borrower(
        setup.entity, id_number="8001015009087", date_of_birth=dt.date(1980, 1, 1), cellphone="0829990000"))
    from imali.signing.models import RateBucket

    assert RateBucket.objects.filter(key=f"send:phone:{borrower.cellphone}").exists()
    assert services.challenges_expire() == 1
    challenge.refresh_from_db()
    fresh.refresh_from_db()
    assert challenge.status == ChallengeStatus.EXPIRED and fresh.status == ChallengeStatus.PENDING
    assert AuditEntry.objects.filter(action=AuditAction.OTP_EXPIRED, object_id=str(challenge.pk)).exists()
    assert not RateBucket.objects.filter(key=f"send:phone:{borrower.cellphone}").exists()
