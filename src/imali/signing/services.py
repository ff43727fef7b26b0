"""Every write of OTP signing: setups, enrolment, challenges, signatures, overrides, mandates,
sign-in codes. Each runs in one transaction and leaves an audit entry.

A code exists in clear only in this process's memory between `generate_code` and the outbox
write; what is stored is its keyed hash and, for the SMS on its way, the sealed form (security.py).
Wrong tries are committed before the error is raised, so a caller cannot undo them by failing.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from imali.clients.models import Client, ClientAccount
from imali.core.audit import audit_record, changed_only, snapshot
from imali.core.countries import country_name, payment_streams_offered
from imali.core.formatting import format_money
from imali.core.localtime import time_label
from imali.core.models import AuditAction
from imali.core.money import parse_amount
from imali.loans.models import Loan
from imali.messaging.defaults import DEFAULT_TEXTS
from imali.messaging.models import MessageType
from imali.messaging.services import merge_values, message_enqueue, template_text
from imali.messaging.templating import render
from imali.tenancy.models import Entity, User
from imali.tenancy.rights import Right

from . import security
from .errors import SigningError, signing_error
from .models import (
    MAX_TRIES_PER_CODE,
    MAX_VALIDITY_MINUTES,
    Challenge,
    ChallengeStatus,
    Enrolment,
    HandReason,
    Mandate,
    MandateKind,
    MandateStatus,
    OtpSetup,
    OverrideAuth,
    Purpose,
    RateBucket,
    Signature,
    SignatureMethod,
)
from .pdf import AgreementContent, agreement_pdf
from .rules import Decision, Requirement, override_line, signature_line, signing_decision

T = TypeVar("T")

# DOMAIN §4: the loan OTP text, with the amount in it (what you see is what you sign). Read as a
# sentence: which loan (the client's account number and the loan's number: "98-12"), the amount
# with its currency code, the code, how long it lasts and until when in the entity's zone (the
# same time, labelled the same way, as the signing screen shows).
LOAN_OTP_TEMPLATE = (
    "{^Legal Entity Name^}: your OTP to sign loan {^Loan Reference^} of {^Loan Amount^} is {^OTP^}. "
    "Valid {^OTP Validity^}, until {^OTP Expiry^}. Do not share it."
)
MANDATE_OTP_TEMPLATE = (
    "{^Legal Entity Name^}: your OTP to sign the {^Mandate Type^} debit mandate for loan {^Loan Reference^}, "
    "instalment {^Instalment Amount^}, is {^OTP^}. Valid {^OTP Validity^}, until {^OTP Expiry^}. Do not share it."
)


def loan_reference(loan: Loan) -> str:
    """The loan as the client knows it: the client's account number and the loan's number."""
    return f"{loan.client.number}-{loan.pk}"


def _setting(name: str, default: int) -> int:
    return int(getattr(settings, name, default))


def rate_limits() -> dict[str, dict[str, int]]:
    """Requests allowed per window, per phone, per user and per client address (IMALI_OTP_* settings)."""
    return {
        "send": {"phone": _setting("IMALI_OTP_SEND_PER_PHONE", 5), "user": _setting("IMALI_OTP_SEND_PER_USER", 30),
                 "address": _setting("IMALI_OTP_SEND_PER_ADDRESS", 30)},
        "verify": {"phone": _setting("IMALI_OTP_VERIFY_PER_PHONE", 15), "user": _setting("IMALI_OTP_VERIFY_PER_USER", 60),
                   "address": _setting("IMALI_OTP_VERIFY_PER_ADDRESS", 60)},
    }


def rate_window() -> dt.timedelta:
    return dt.timedelta(minutes=_setting("IMALI_OTP_RATE_WINDOW_MINUTES", 15))


def _tz(entity: Entity) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(entity.time_zone)


def _person(user) -> str:
    if user is None:
        return "System"
    return user.get_full_name() or user.username


def _actor(actor):
    return actor if getattr(actor, "pk", None) else None


def _same_entity(entity: Entity, *objects) -> None:
    for obj in objects:
        if obj is not None and obj.entity_id != entity.pk:
            raise PermissionDenied("That record belongs to another entity.")


# ---------------------------------------------------------------------------------------------
# Setups

SETUP_FIELDS = ("user_otp", "enrol_client", "esign_loan_otp", "loan_otp", "threshold", "code_length",
                "validity_minutes", "tries_per_code")


def otp_setup_get(*, entity: Entity) -> OtpSetup:
    """The entity's setup; an entity that never saved one has every switch off."""
    found = OtpSetup.objects.filter(entity=entity).first()
    return found if found is not None else OtpSetup(entity=entity)


def _clean_setup(data: Mapping[str, Any], current: OtpSetup) -> dict[str, Any]:
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[ValidationError]] = {}
    for name in ("user_otp", "enrol_client", "esign_loan_otp", "loan_otp"):
        cleaned[name] = bool(data.get(name, getattr(current, name)))

    def number(name: str, low: int, high: int) -> None:
        raw = data.get(name, getattr(current, name))
        try:
            value = int(raw)
        except (TypeError, ValueError):
            errors[name] = [ValidationError(f"'{raw}' is not a whole number.", code=SigningError.INVALID.value)]
            return
        if not low <= value <= high:
            errors[name] = [ValidationError(f"Choose {low} to {high}.", code=SigningError.OUT_OF_RANGE.value)]
        cleaned[name] = value

    number("code_length", security.MIN_CODE_LENGTH, security.MAX_CODE_LENGTH)
    number("validity_minutes", 1, MAX_VALIDITY_MINUTES)
    number("tries_per_code", 1, MAX_TRIES_PER_CODE)
    raw = data.get("threshold", current.threshold)
    try:
        cleaned["threshold"] = parse_amount(raw if raw not in (None, "") else "0", field="threshold", allow_zero=True)
    except ValidationError as exc:
        refusal = exc.error_dict["threshold"][0]
        code = SigningError.OUT_OF_RANGE if refusal.code == "out_of_range" else SigningError.INVALID
        errors["threshold"] = [ValidationError(refusal.messages[0], code=code.value)]
    except TypeError:
        errors["threshold"] = [ValidationError(f"'{raw}' is not an amount.", code=SigningError.INVALID.value)]
    if cleaned["esign_loan_otp"] and cleaned["loan_otp"]:
        errors["loan_otp"] = [ValidationError(str(SigningError.SETUP_CONFLICT.label), code=SigningError.SETUP_CONFLICT.value)]
    elif (cleaned["esign_loan_otp"] or cleaned["loan_otp"]) and not cleaned["enrol_client"]:
        errors["enrol_client"] = [ValidationError(str(SigningError.SETUP_NEEDS_ENROL.label), code=SigningError.SETUP_NEEDS_ENROL.value)]
    if errors:
        raise ValidationError(errors)
    return cleaned


def otp_setup_update(*, actor, entity: Entity, data: Mapping[str, Any]) -> OtpSetup:
    if actor.entity_id != entity.pk or not actor.has_right(Right.MAXSMS_GENERAL_SETUP):
        raise PermissionDenied("You need the MAXSMS General Setup right of this entity.")
    with transaction.atomic():
        OtpSetup.objects.get_or_create(entity=entity)
        setup = OtpSetup.objects.select_for_update().get(entity=entity)
        cleaned = _clean_setup(data, setup)
        before = snapshot(setup, exclude=("updated_at",))
        for name, value in cleaned.items():
            setattr(setup, name, value)
        setup.updated_by = actor
        setup.save()
        b, a = changed_only(before, snapshot(setup, exclude=("updated_at",)))
        a.pop("updated_by_id", None)
        b.pop("updated_by_id", None)
        if a:
            audit_record(action=AuditAction.OTP_SETUP_CHANGED, actor=actor, entity=entity, target=setup,
                         subject=entity.code, before=b, after=a)
    return setup


# ---------------------------------------------------------------------------------------------
# Rate limits


def _rate_hit(*, action: str, entity: Entity | None, phone: str, user, address: str | None, now: dt.datetime) -> None:
    """Count one request against each of its buckets, or refuse it when any is full. The refusal
    and the counts are committed before the error is raised."""
    limits = rate_limits()[action]
    keys = {f"{action}:phone:{phone}": limits["phone"]}
    if getattr(user, "pk", None):
        keys[f"{action}:user:{user.pk}"] = limits["user"]
    if address:
        keys[f"{action}:address:{address}"] = limits["address"]
    window = rate_window()
    full: list[str] = []
    with transaction.atomic():
        buckets = []
        for key in sorted(keys):  # one lock order for every caller: no deadlocks
            RateBucket.objects.get_or_create(key=key, defaults={"window_start": now})
            bucket = RateBucket.objects.select_for_update().get(key=key)
            if bucket.window_start <= now - window:
                bucket.window_start, bucket.count = now, 0
            if bucket.count >= keys[key]:
                full.append(key.split(":")[1])
            buckets.append(bucket)
        if not full:
            for bucket in buckets:
                bucket.count += 1
                bucket.save(update_fields=["window_start", "count"])
        else:
            audit_record(action=AuditAction.OTP_RATE_LIMITED, actor=_actor(user), entity=entity, subject=phone,
                         after={"action": action, "limits": sorted(full)}, ip_address=address)
    if full:
        raise signing_error("code" if action == "verify" else "cellphone", SigningError.RATE_LIMITED)


# ---------------------------------------------------------------------------------------------
# Challenges: send and verify

_SENT = {Purpose.LOGIN: AuditAction.LOGIN_OTP_SENT}
_VERIFIED = {Purpose.LOGIN: AuditAction.LOGIN_OTP_VERIFIED}
_FAILED = {Purpose.LOGIN: AuditAction.LOGIN_OTP_FAILED}


# Error reports (a 500 page, a mail to the admins) never show these locals.
@sensitive_variables("code")
def _issue(*, entity: Entity, purpose: str, subject_key: str, number: str, template: str, values: Mapping[str, object],
           actor, ip: str | None, client: Client | None = None, user: User | None = None, loan: Loan | None = None,
           mandate: Mandate | None = None, terms_digest: str = "", audit_subject: str | None = None,
           now: dt.datetime | None = None) -> Challenge:
    now = now or timezone.now()
    setup = otp_setup_get(entity=entity)
    _rate_hit(action="send", entity=entity, phone=number, user=actor, address=ip, now=now)
    try:
        with transaction.atomic():
            voided = 0
            for old in Challenge.objects.select_for_update().filter(entity=entity, subject_key=subject_key,
                                                                    status=ChallengeStatus.PENDING):
                old.status, old.void_reason, old.finished_at = ChallengeStatus.VOIDED, "resent", now
                old.save(update_fields=["status", "void_reason", "finished_at"])
                voided += 1
            challenge = Challenge(
                entity=entity, purpose=purpose, subject_key=subject_key, client=client, user=user, loan=loan,
                mandate=mandate, cellphone=number, terms_digest=terms_digest, max_attempts=setup.tries_per_code,
                created_at=now, expires_at=now + dt.timedelta(minutes=setup.validity_minutes),
                created_by=_actor(actor), client_address=ip,
            )
            code = security.generate_code(setup.code_length)
            challenge.code_hash = security.code_hash(code, context=challenge.hash_context())
            challenge.save()
            # A field without a value (an entity's own OTP text may name any field) is left empty
            # rather than failing the send.
            timing = {"OTP Validity": f"{setup.validity_minutes} min",
                      "OTP Expiry": time_label(challenge.expires_at, entity.time_zone)}
            rendered = render(_with_one_otp_field(template), {**timing, **values, "OTP": security.mask_marker(len(code))},
                              missing="")
            text, offset = security.masked(rendered, len(code))
            message = message_enqueue(
                entity=entity, number=number, text=text, message_type=MessageType.OTP,
                idempotency_key=security.seal(code=code, nonce=challenge.public_id, offset=offset),
                client=client, user=user, actor=_actor(actor), now=now,
            )
            del code
            challenge.outbox_message = message
            challenge.save(update_fields=["outbox_message"])
            action = _SENT.get(purpose, AuditAction.OTP_RESENT if voided else AuditAction.OTP_SENT)
            audit_record(action=action, actor=_actor(actor), entity=entity, target=challenge,
                         subject=audit_subject or number, ip_address=ip,
                         after={"purpose": purpose, "challenge": challenge.public_id, "cellphone": number,
                                "subject": subject_key, "expires_at": challenge.expires_at.isoformat(),
                                "terms_digest": terms_digest, "voided_earlier": voided})
    except IntegrityError:
        # Another send for the same subject committed first; its code is the valid one.
        raise signing_error("code", SigningError.CODE_VOID, "Another code was sent at the same moment. Use the newest code.") from None
    return challenge


def _with_one_otp_field(template: str) -> str:
    """The code must appear exactly once (the mask is found and replaced once): an entity text
    without the field, or with it twice, gives way to the supplied default OTP text."""
    if template.count("{^OTP^}") == 1:
        return template
    return DEFAULT_TEXTS[MessageType.OTP]


def _challenge_of(entity: Entity, challenge_id: str, purposes: tuple[str, ...], subject_key: str | None) -> Challenge:
    found = Challenge.objects.filter(entity=entity, public_id=str(challenge_id or ""), purpose__in=purposes).first()
    if found is None or (subject_key is not None and found.subject_key != subject_key):
        raise signing_error("challenge", SigningError.CODE_VOID, "No such code was sent for this document.")
    return found


@sensitive_variables("code")
def _verify(*, entity: Entity, challenge_id: str, purposes: tuple[str, ...], code: str, actor, ip: str | None,
            on_success: Callable[[Challenge], T], subject_key: str | None = None,
            current_digest: Callable[[], str] | None = None, audit_subject: str | None = None,
            now: dt.datetime | None = None) -> T:
    now = now or timezone.now()
    found = _challenge_of(entity, challenge_id, purposes, subject_key)
    _rate_hit(action="verify", entity=entity, phone=found.cellphone, user=actor, address=ip, now=now)
    failure: tuple[SigningError, str | None] | None = None
    with transaction.atomic():
        challenge = Challenge.objects.select_for_update().get(pk=found.pk)
        purpose = challenge.purpose
        subject = audit_subject or challenge.cellphone

        def note(action: AuditAction, **after) -> None:
            audit_record(action=action, actor=_actor(actor), entity=entity, target=challenge, subject=subject,
                         ip_address=ip, after={"purpose": purpose, "challenge": challenge.public_id,
                                               "attempts": challenge.attempts, **after})

        def finish(status: str, reason: str = "") -> None:
            challenge.status, challenge.void_reason, challenge.finished_at = status, reason, now
            challenge.save(update_fields=["status", "void_reason", "finished_at", "attempts"])

        if challenge.status == ChallengeStatus.VERIFIED:
            failure = (SigningError.CODE_USED, None)
        elif challenge.status == ChallengeStatus.EXHAUSTED:
            failure = (SigningError.CODE_EXHAUSTED, None)
        elif challenge.status == ChallengeStatus.EXPIRED:
            failure = (SigningError.CODE_EXPIRED, None)
        elif challenge.status == ChallengeStatus.VOIDED:
            failure = (SigningError.TERMS_CHANGED if challenge.void_reason == "terms_changed" else SigningError.CODE_VOID, None)
        elif now >= challenge.expires_at:
            finish(ChallengeStatus.EXPIRED, "expired")
            note(AuditAction.OTP_EXPIRED)
            failure = (SigningError.CODE_EXPIRED, None)
        elif current_digest is not None and not security.digests_equal(current_digest(), challenge.terms_digest):
            finish(ChallengeStatus.VOIDED, "terms_changed")
            note(AuditAction.OTP_VOIDED, reason="terms_changed")
            failure = (SigningError.TERMS_CHANGED, None)
        elif security.code_matches(code, challenge.code_hash, context=challenge.hash_context()):
            challenge.attempts += 1
            # A conditional update as well as the row lock: only one caller can move it out of pending.
            moved = Challenge.objects.filter(pk=challenge.pk, status=ChallengeStatus.PENDING).update(
                status=ChallengeStatus.VERIFIED, attempts=challenge.attempts, finished_at=now)
            if moved != 1:
                failure = (SigningError.CODE_USED, None)
            else:
                challenge.status, challenge.finished_at = ChallengeStatus.VERIFIED, now
                note(_VERIFIED.get(purpose, AuditAction.OTP_VERIFIED))
                return on_success(challenge)
        else:
            challenge.attempts += 1
            if challenge.attempts >= challenge.max_attempts:
                finish(ChallengeStatus.EXHAUSTED, "too_many_tries")
                note(AuditAction.OTP_EXHAUSTED)
                failure = (SigningError.CODE_EXHAUSTED, None)
            else:
                challenge.save(update_fields=["attempts"])
                note(_FAILED.get(purpose, AuditAction.OTP_FAILED), tries_left=challenge.tries_left)
                left = challenge.tries_left
                failure = (SigningError.CODE_WRONG, f"The code is not correct. {left} {'try' if left == 1 else 'tries'} left.")
    code_, message = failure
    raise signing_error("code", code_, message)


# ---------------------------------------------------------------------------------------------
# Enrolment


def enrolment_active(*, entity: Entity, client: Client) -> Enrolment | None:
    return Enrolment.objects.filter(entity=entity, client=client, is_active=True).first()


def _enrol_key(client: Client) -> str:
    return f"enrol:client:{client.pk}"


def enrolment_send(*, actor, entity: Entity, client: Client, ip: str | None = None, now: dt.datetime | None = None) -> Challenge:
    """Send an OTP to the client's cellphone to prove it belongs to the client."""
    _same_entity(entity, client)
    if not otp_setup_get(entity=entity).enrol_client:
        raise signing_error("client", SigningError.ENROL_OFF)
    if not client.cellphone:
        raise signing_error("cellphone", SigningError.NO_CELLPHONE, "The client has no cellphone number to enrol.")
    active = enrolment_active(entity=entity, client=client)
    if active is not None:
        if active.cellphone == client.cellphone:
            raise signing_error("client", SigningError.ALREADY_ENROLLED, f"The client's cellphone {active.cellphone} is enrolled already.")
        raise signing_error("client", SigningError.ALREADY_ENROLLED,
                            f"The client has {active.cellphone} enrolled; changing it needs the Clear Enrolment right: clear it first.")
    _cellphone_free(entity, client, client.cellphone)
    return _issue(entity=entity, purpose=Purpose.ENROL, subject_key=_enrol_key(client), number=client.cellphone,
                  template=template_text(entity=entity, message_type=MessageType.OTP),
                  values=merge_values(entity=entity, client=client), actor=actor, ip=ip, client=client, now=now)


def _cellphone_free(entity: Entity, client: Client, cellphone: str) -> None:
    other = (Enrolment.objects.filter(entity=entity, cellphone=cellphone, is_active=True).exclude(client=client)
             .select_related("client").first())
    if other is not None:
        raise signing_error("cellphone", SigningError.CELLPHONE_TAKEN,
                            f"{cellphone} is enrolled for client {other.client.number}: one cellphone may belong to one borrower only.")


@sensitive_variables("code")
def enrolment_verify(*, actor, entity: Entity, client: Client, challenge_id: str, code: str, ip: str | None = None,
                     now: dt.datetime | None = None) -> Enrolment:
    _same_entity(entity, client)
    now = now or timezone.now()

    def enrol(challenge: Challenge) -> Enrolment:
        _cellphone_free(entity, client, challenge.cellphone)
        try:
            with transaction.atomic():
                enrolment = Enrolment.objects.create(entity=entity, client=client, cellphone=challenge.cellphone,
                                                     challenge=challenge, enrolled_at=now, enrolled_by=_actor(actor))
        except IntegrityError:
            raise signing_error("cellphone", SigningError.CELLPHONE_TAKEN) from None
        audit_record(action=AuditAction.ENROLMENT_CREATED, actor=_actor(actor), entity=entity, target=enrolment,
                     subject=str(client.number), ip_address=ip, after={"client": client.pk, "cellphone": enrolment.cellphone})
        return enrolment

    return _verify(entity=entity, challenge_id=challenge_id, purposes=(Purpose.ENROL,), code=code, actor=actor, ip=ip,
                   subject_key=_enrol_key(client), on_success=enrol, now=now)


def enrolment_clear(*, actor, entity: Entity, client: Client, reason: str, ip: str | None = None) -> Enrolment:
    _same_entity(entity, client)
    if actor.entity_id != entity.pk or not actor.has_right(Right.CLEAR_ENROLMENT):
        raise PermissionDenied("Changing an enrolled cellphone needs the Clear Enrolment right.")
    if not (reason or "").strip():
        raise signing_error("reason", SigningError.REASON_REQUIRED)
    with transaction.atomic():
        enrolment = Enrolment.objects.select_for_update().filter(entity=entity, client=client, is_active=True).first()
        if enrolment is None:
            raise signing_error("client", SigningError.NOT_ENROLLED)
        enrolment.is_active, enrolment.cleared_at, enrolment.cleared_by = False, timezone.now(), actor
        enrolment.clear_reason = reason.strip()[:200]
        enrolment.save(update_fields=["is_active", "cleared_at", "cleared_by", "clear_reason"])
        audit_record(action=AuditAction.ENROLMENT_CLEARED, actor=actor, entity=entity, target=enrolment,
                     subject=str(client.number), ip_address=ip,
                     before={"cellphone": enrolment.cellphone}, after={"reason": enrolment.clear_reason})
    return enrolment


# ---------------------------------------------------------------------------------------------
# Documents: a loan agreement, or a mandate for an existing loan


@dataclass(frozen=True)
class Document:
    loan: Loan
    mandate: Mandate | None = None

    @property
    def key(self) -> str:
        return f"mandate:{self.mandate.pk}" if self.mandate is not None else f"loan:{self.loan.pk}"

    @property
    def purpose(self) -> str:
        return Purpose.MANDATE if self.mandate is not None else Purpose.LOAN

    @property
    def title(self) -> str:
        if self.mandate is not None:
            return f"{self.mandate.get_kind_display()} debit mandate {self.mandate.contract_reference}"
        return f"Loan agreement {self.loan.pk}"


def loan_digest(loan: Loan) -> str:
    return security.loan_terms_digest(client_id=loan.client_id, amount=loan.principal, instalment=loan.instalment_amount,
                                      term=loan.instalments, total_repayable=loan.total_repayable)


def mandate_digest(mandate: Mandate) -> str:
    return security.mandate_terms_digest(
        client_id=mandate.client_id, loan_id=mandate.loan_id, kind=mandate.kind, instalment=mandate.instalment_amount,
        maximum_collection=mandate.maximum_collection, collection_day=mandate.collection_day,
        account=f"{mandate.account_id}")


def document_digest(document: Document) -> str:
    return mandate_digest(document.mandate) if document.mandate is not None else loan_digest(document.loan)


def _locked_digest(document: Document) -> str:
    loan = Loan.objects.select_for_update().get(pk=document.loan.pk)
    if document.mandate is not None:
        return mandate_digest(Mandate.objects.select_for_update().get(pk=document.mandate.pk))
    return loan_digest(loan)


def _signed(document: Document) -> Signature | None:
    if document.mandate is not None:
        return Signature.objects.filter(mandate=document.mandate).first()
    return Signature.objects.filter(loan=document.loan, mandate__isnull=True).first()


def document_decision(*, entity: Entity, document: Document) -> Decision:
    setup = otp_setup_get(entity=entity)
    loan = document.loan
    enrolled = enrolment_active(entity=entity, client=loan.client) is not None
    status = loan.status
    if document.mandate is not None and document.mandate.status == MandateStatus.CANCELLED:
        status = "cancelled"
    return signing_decision(loan_status=status, amount=loan.principal, threshold=setup.threshold,
                            loan_otp=setup.loan_otp, esign_loan_otp=setup.esign_loan_otp, enrolled=enrolled,
                            paid_out=document.mandate is None and loan.disbursed_on is not None)


def _money_text(entity: Entity, amount: Decimal) -> str:
    # The one money format (core.formatting): the code text the loan's other SMS, screens and
    # statement use, so "NAD 3,000.00" in the OTP is the figure the client sees everywhere else.
    return format_money(amount, entity.currency)


def document_otp_send(*, actor, entity: Entity, document: Document, ip: str | None = None,
                      now: dt.datetime | None = None) -> Challenge:
    """Send (or resend, voiding the earlier code) the client's OTP bound to the document's terms."""
    _same_entity(entity, document.loan, document.mandate)
    if _signed(document) is not None:
        raise signing_error("loan", SigningError.ALREADY_SIGNED)
    decision = document_decision(entity=entity, document=document)
    if decision.requirement not in (Requirement.OTP_REQUIRED, Requirement.OTP_OPTIONAL):
        code = SigningError.NOT_SIGNABLE if decision.requirement == Requirement.NOT_SIGNABLE else SigningError.OTP_NOT_APPLICABLE
        raise signing_error("loan", code, decision.message)
    client = document.loan.client
    enrolment = enrolment_active(entity=entity, client=client)
    extra: dict[str, object] = {"Loan Amount": _money_text(entity, document.loan.principal),
                                "Loan Reference": loan_reference(document.loan),
                                "Instalment Amount": _money_text(entity, document.loan.instalment_amount)}
    template = LOAN_OTP_TEMPLATE
    if document.mandate is not None:
        template = MANDATE_OTP_TEMPLATE
        extra.update({"Mandate Type": document.mandate.get_kind_display(),
                      "Instalment Amount": _money_text(entity, document.mandate.instalment_amount)})
    return _issue(entity=entity, purpose=document.purpose, subject_key=document.key, number=enrolment.cellphone,
                  template=template, values=merge_values(entity=entity, client=client, extra=extra), actor=actor, ip=ip,
                  client=client, loan=document.loan, mandate=document.mandate, terms_digest=document_digest(document),
                  now=now)


@sensitive_variables("code")
def document_otp_verify(*, actor, entity: Entity, document: Document, challenge_id: str, code: str,
                        ip: str | None = None, now: dt.datetime | None = None) -> Signature:
    """The client's code, checked against the document's terms as they are now: a match signs it."""
    _same_entity(entity, document.loan, document.mandate)
    now = now or timezone.now()

    def sign(challenge: Challenge) -> Signature:
        fresh = _fresh(document)
        decision = document_decision(entity=entity, document=fresh)
        if decision.requirement == Requirement.NOT_SIGNABLE:
            raise signing_error("loan", SigningError.NOT_SIGNABLE, decision.message)
        return _signature_create(entity=entity, document=fresh, method=SignatureMethod.OTP, actor=actor, ip=ip,
                                 challenge=challenge, now=now)

    return _verify(entity=entity, challenge_id=challenge_id, purposes=(document.purpose,), code=code, actor=actor,
                   ip=ip, subject_key=document.key, current_digest=lambda: _locked_digest(document),
                   on_success=sign, now=now)


def _fresh(document: Document) -> Document:
    loan = Loan.objects.select_related("client", "client__branch", "created_by").get(pk=document.loan.pk)
    mandate = Mandate.objects.get(pk=document.mandate.pk) if document.mandate is not None else None
    return Document(loan=loan, mandate=mandate)


def _void_pending(entity: Entity, document: Document, reason: str, now: dt.datetime) -> None:
    Challenge.objects.filter(entity=entity, subject_key=document.key, status=ChallengeStatus.PENDING).update(
        status=ChallengeStatus.VOIDED, void_reason=reason, finished_at=now)


def document_hand_sign(*, actor, entity: Entity, document: Document, ip: str | None = None,
                       now: dt.datetime | None = None) -> Signature:
    """Finish without the client's OTP where that is allowed (not enrolled, below the amount,
    OTP off, or eSign's optional OTP): the document is flagged for the client's hand signature."""
    _same_entity(entity, document.loan, document.mandate)
    now = now or timezone.now()
    decision = document_decision(entity=entity, document=document)
    if decision.requirement == Requirement.NOT_SIGNABLE:
        raise signing_error("loan", SigningError.NOT_SIGNABLE, decision.message)
    if decision.requirement == Requirement.OTP_REQUIRED:
        raise signing_error("loan", SigningError.OTP_REQUIRED)
    reason = decision.hand_reason or HandReason.OTP_DECLINED
    with transaction.atomic():
        _void_pending(entity, document, "hand_signature", now)
        return _signature_create(entity=entity, document=_fresh(document), method=SignatureMethod.HAND, actor=actor,
                                 ip=ip, hand_reason=reason, now=now)


def _override_key(document: Document, authoriser: User) -> str:
    return f"override:{document.key}:user:{authoriser.pk}"


def _check_authoriser(*, actor, entity: Entity, document: Document, authoriser: User | None, ip: str | None) -> User:
    if (authoriser is None or authoriser.entity_id != entity.pk or not authoriser.is_active
            or not authoriser.has_right(Right.OVERRIDE_LOAN_OTP)):
        audit_record(action=AuditAction.OVERRIDE_REFUSED, actor=_actor(actor), entity=entity, subject=document.key,
                     ip_address=ip, after={"authoriser": getattr(authoriser, "username", ""), "why": "no_right"})
        raise signing_error("authoriser", SigningError.OVERRIDE_RIGHT)
    decision = document_decision(entity=entity, document=document)
    if decision.requirement not in (Requirement.OTP_REQUIRED, Requirement.OTP_OPTIONAL):
        code = SigningError.NOT_SIGNABLE if decision.requirement == Requirement.NOT_SIGNABLE else SigningError.OTP_NOT_APPLICABLE
        raise signing_error("loan", code, decision.message)
    if _signed(document) is not None:
        raise signing_error("loan", SigningError.ALREADY_SIGNED)
    return authoriser


def override_otp_send(*, actor, entity: Entity, document: Document, authoriser: User | None, ip: str | None = None,
                      now: dt.datetime | None = None) -> Challenge:
    """An OTP to the authorising user's own cellphone, for an override."""
    _same_entity(entity, document.loan, document.mandate)
    authoriser = _check_authoriser(actor=actor, entity=entity, document=document, authoriser=authoriser, ip=ip)
    if not authoriser.cellphone:
        raise signing_error("authoriser", SigningError.NO_CELLPHONE, "The authorising user has no cellphone number.")
    return _issue(entity=entity, purpose=Purpose.OVERRIDE, subject_key=_override_key(document, authoriser),
                  number=authoriser.cellphone, template=template_text(entity=entity, message_type=MessageType.OTP),
                  values=merge_values(entity=entity), actor=actor, ip=ip, user=authoriser, loan=document.loan,
                  mandate=document.mandate, audit_subject=authoriser.username.lower(), now=now)


@sensitive_variables("password", "code")
def document_override(*, actor, entity: Entity, document: Document, authoriser: User | None, reason: str,
                      password: str = "", challenge_id: str = "", code: str = "", ip: str | None = None,
                      now: dt.datetime | None = None) -> Signature:
    """A user with the Override right authorises finishing without the client's OTP (e.g. a lost
    phone), with their own password or their own OTP: the document is flagged for a hand signature."""
    _same_entity(entity, document.loan, document.mandate)
    now = now or timezone.now()
    if not (reason or "").strip():
        raise signing_error("reason", SigningError.REASON_REQUIRED, "Give the reason for the override.")
    authoriser = _check_authoriser(actor=actor, entity=entity, document=document, authoriser=authoriser, ip=ip)

    def sign(auth: str) -> Signature:
        _void_pending(entity, document, "overridden", now)
        return _signature_create(entity=entity, document=_fresh(document), method=SignatureMethod.OVERRIDE, actor=actor,
                                 ip=ip, hand_reason=HandReason.OVERRIDE, authoriser=authoriser, override_auth=auth,
                                 override_reason=reason.strip(), now=now)

    if password:
        _rate_hit(action="verify", entity=entity, phone=f"user:{authoriser.pk}", user=actor, address=ip, now=now)
        if not authoriser.check_password(password):
            audit_record(action=AuditAction.OVERRIDE_REFUSED, actor=_actor(actor), entity=entity, subject=document.key,
                         ip_address=ip, after={"authoriser": authoriser.username, "why": "wrong_password"})
            raise signing_error("password", SigningError.OVERRIDE_AUTH)
        with transaction.atomic():
            return sign(OverrideAuth.PASSWORD)
    if challenge_id and code:
        return _verify(entity=entity, challenge_id=challenge_id, purposes=(Purpose.OVERRIDE,), code=code, actor=actor,
                       ip=ip, subject_key=_override_key(document, authoriser),
                       on_success=lambda challenge: sign(OverrideAuth.OTP), audit_subject=authoriser.username.lower(),
                       now=now)
    raise signing_error("password", SigningError.OVERRIDE_AUTH,
                        "The authorising user must give their own password or the code sent to their own cellphone.")


def _signature_create(*, entity: Entity, document: Document, method: str, actor, ip: str | None, now: dt.datetime,
                      challenge: Challenge | None = None, hand_reason: str = "", authoriser: User | None = None,
                      override_auth: str = "", override_reason: str = "") -> Signature:
    loan, mandate = document.loan, document.mandate
    client = loan.client
    if _signed(document) is not None:
        raise signing_error("loan", SigningError.ALREADY_SIGNED)
    local = timezone.localtime(now, _tz(entity))
    enrolment = enrolment_active(entity=entity, client=client)
    cellphone = challenge.cellphone if challenge is not None else (enrolment.cellphone if enrolment else client.cellphone)
    digest = document_digest(document)
    if method == SignatureMethod.OTP:
        lines = [signature_line(signed_at=local, full_names=client.full_names, surname=client.surname,
                                id_number=client.id_number, cellphone=cellphone)]
    else:
        lines = []
        if method == SignatureMethod.OVERRIDE:
            lines.append(override_line(administered_by=_person(loan.created_by or actor), at=local,
                                       authorised_by=_person(authoriser)))
            lines.append(f"Override reason: {override_reason}")
        lines.append(f"To be signed by hand by the client ({HandReason(hand_reason).label}).")
        lines.append("Client signature: ______________________   Date: ______________")
    content = AgreementContent(
        title=document.title,
        lender=entity.name,
        lender_details=" ".join(p for p in (f"Registration {entity.registration_number}" if entity.registration_number else "",
                                             f"NCR {entity.ncr_number}" if entity.ncr_number else "",
                                             f"Branch {client.branch.name}") if p),
        parties=[("Client", f"{client.full_names} {client.surname}"), ("ID number", client.id_number),
                 ("Client number", str(client.number)), ("Cellphone", cellphone or "none")],
        terms=_terms_rows(entity, document),
        terms_digest=digest,
        signature_lines=lines,
    )
    pdf = agreement_pdf(content)
    try:
        with transaction.atomic():
            signature = Signature.objects.create(
                entity=entity, branch=client.branch, loan=loan, mandate=mandate, client=client, method=method,
                hand_signature_required=method != SignatureMethod.OTP, hand_reason=hand_reason, signed_at=now,
                client_full_names=client.full_names, client_surname=client.surname, client_id_number=client.id_number,
                client_cellphone=cellphone or "", challenge=challenge, terms_digest=digest,
                signature_line="\n".join(lines), document_sha256=security.document_sha256(pdf), document_pdf=pdf,
                administered_by=(loan.created_by or _actor(actor)) if method == SignatureMethod.OVERRIDE else None,
                authorised_by=authoriser, override_auth=override_auth, override_reason=override_reason,
                created_by=_actor(actor),
            )
    except IntegrityError:
        raise signing_error("loan", SigningError.ALREADY_SIGNED) from None
    if mandate is not None:
        Mandate.objects.filter(pk=mandate.pk).update(
            status=MandateStatus.SIGNED if method == SignatureMethod.OTP else MandateStatus.HAND_SIGNATURE)
    action = {SignatureMethod.OTP: AuditAction.SIGNED_WITH_OTP, SignatureMethod.HAND: AuditAction.SIGNED_BY_HAND,
              SignatureMethod.OVERRIDE: AuditAction.SIGNING_OVERRIDDEN}[method]
    audit_record(action=action, actor=_actor(actor), entity=entity, target=signature, subject=str(client.number),
                 ip_address=ip, after={"loan": loan.pk, "mandate": getattr(mandate, "pk", None), "method": method,
                                       "hand_reason": hand_reason, "terms_digest": digest,
                                       "document_sha256": signature.document_sha256,
                                       "challenge": getattr(challenge, "public_id", None),
                                       "authorised_by": getattr(authoriser, "username", None),
                                       "override_auth": override_auth, "override_reason": override_reason})
    return signature


def _terms_rows(entity: Entity, document: Document) -> list[tuple[str, str]]:
    loan = document.loan
    rows = [("Loan", str(loan.pk)), ("Loan amount", _money_text(entity, loan.principal)),
            ("Number of instalments", f"{loan.instalments} ({loan.get_frequency_display().lower()})"),
            ("Instalment", _money_text(entity, loan.instalment_amount)),
            ("Total repayable", _money_text(entity, loan.total_repayable)),
            ("Interest rate", f"{loan.interest_rate_pm}% per month"),
            ("Initiation fee", _money_text(entity, loan.initiation_fee)),
            ("Service fee", f"{_money_text(entity, loan.service_fee_pm)} per month")]
    mandate = document.mandate
    if mandate is not None:
        rows += [("Mandate", f"{mandate.get_kind_display()} {mandate.contract_reference}"),
                 ("Mandate instalment", _money_text(entity, mandate.instalment_amount)),
                 ("Maximum collection", _money_text(entity, mandate.maximum_collection)),
                 ("Collection day", "last day of the month" if mandate.collection_day == 99 else str(mandate.collection_day)),
                 ("Debit account", str(mandate.account))]
    return rows


def signature_document_check(*, actor, entity: Entity, signature: Signature, data: bytes, ip: str | None = None) -> bool:
    """Whether `data` is, byte for byte, the document that was signed (its SHA-256 against the one kept)."""
    _same_entity(entity, signature)
    computed = security.document_sha256(data)
    matches = security.digests_equal(computed, signature.document_sha256)
    audit_record(action=AuditAction.DOCUMENT_CHECKED, actor=_actor(actor), entity=entity, target=signature,
                 subject=str(signature.loan_id), ip_address=ip, after={"matches": matches, "sha256": computed})
    return matches


# ---------------------------------------------------------------------------------------------
# Mandates


def mandate_kinds(*, entity: Entity) -> list[str]:
    """The mandate kinds a lender may create: DebiCheck only where the payment stream is (South Africa)."""
    return [k for k in MandateKind.values if k != MandateKind.DEBICHECK or payment_streams_offered(entity.country)]


def mandate_create(*, actor, entity: Entity, loan: Loan, data: Mapping[str, Any]) -> Mandate:
    _same_entity(entity, loan)
    errors: dict[str, list[ValidationError]] = {}

    def bad(field: str, message: str, code: SigningError = SigningError.INVALID) -> None:
        errors.setdefault(field, []).append(ValidationError(message, code=code.value))

    if loan.status not in ("application", "approved", "active"):
        bad("loan", "A mandate is for an application, approved or active loan.", SigningError.NOT_SIGNABLE)
    kind = data.get("kind")
    if kind not in mandate_kinds(entity=entity):
        if kind == MandateKind.DEBICHECK:
            bad("kind", f"DebiCheck is South Africa's debit-order system: a lender in {country_name(entity.country)} "
                        f"uses an SEFT (EFT debit order) mandate.")
        else:
            offered = " or ".join(MandateKind(k).label for k in mandate_kinds(entity=entity))
            bad("kind", f"Choose {offered}.")
    amounts: dict[str, Decimal] = {}
    for field, default in (("instalment_amount", loan.instalment_amount), ("maximum_collection", None)):
        raw = data.get(field)
        if raw in (None, ""):
            raw = default if default is not None else amounts.get("instalment_amount")
        try:
            amounts[field] = parse_amount(raw, field=field)
        except ValidationError as exc:
            refusal = exc.error_dict[field][0]
            bad(field, refusal.messages[0], SigningError.OUT_OF_RANGE if refusal.code == "out_of_range" else SigningError.INVALID)
        except TypeError:
            bad(field, f"'{raw}' is not an amount.")
    instalment, maximum = amounts.get("instalment_amount"), amounts.get("maximum_collection")
    if instalment is not None and maximum is not None and not instalment <= maximum <= instalment * Decimal("1.5"):
        bad("maximum_collection", "The maximum collection is at least the instalment and at most 1.5 times it.",
            SigningError.OUT_OF_RANGE)
    try:
        day = int(data.get("collection_day") or loan.pay_day or 0)
        if not (1 <= day <= 30 or day == 99):
            bad("collection_day", "Choose a day 1 to 30, or 99 for the last day of the month.", SigningError.OUT_OF_RANGE)
    except (TypeError, ValueError):
        day = 0
        bad("collection_day", "Choose a day 1 to 30, or 99 for the last day of the month.")
    account = data.get("account")
    if isinstance(account, (int, str)) and str(account).isdigit():
        account = ClientAccount.objects.filter(pk=int(account)).first()
    if not isinstance(account, ClientAccount) or account.client_id != loan.client_id or not account.is_active:
        bad("account", "Choose an active account of the loan's client.")
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        mandate = Mandate.objects.create(
            entity=entity, loan=loan, client_id=loan.client_id, kind=kind,
            contract_reference=(data.get("contract_reference") or f"M{loan.pk}{uuid.uuid4().hex[:8].upper()}")[:30],
            instalment_amount=instalment, maximum_collection=maximum, collection_day=day, account=account,
            created_by=_actor(actor))
        audit_record(action=AuditAction.MANDATE_CREATED, actor=_actor(actor), entity=entity, target=mandate,
                     subject=mandate.contract_reference, after=snapshot(mandate))
    return mandate


# ---------------------------------------------------------------------------------------------
# Sign-in with an OTP


def login_otp_required(*, user) -> bool:
    return bool(user.entity_id) and otp_setup_get(entity=user.entity).user_otp


def _login_key(user: User) -> str:
    return f"login:user:{user.pk}"


def login_otp_send(*, user: User, ip: str | None = None, now: dt.datetime | None = None) -> Challenge:
    """After the password was accepted: a code to the user's own cellphone."""
    if not user.cellphone:
        raise signing_error("cellphone", SigningError.NO_CELLPHONE,
                            "Your user has no cellphone number for the sign-in code; ask your administrator.")
    entity = user.entity
    return _issue(entity=entity, purpose=Purpose.LOGIN, subject_key=_login_key(user), number=user.cellphone,
                  template=template_text(entity=entity, message_type=MessageType.OTP), values=merge_values(entity=entity),
                  actor=user, ip=ip, user=user, audit_subject=user.username.lower(), now=now)


@sensitive_variables("code")
def login_otp_verify(*, user: User, challenge_id: str, code: str, ip: str | None = None,
                     now: dt.datetime | None = None) -> Challenge:
    return _verify(entity=user.entity, challenge_id=challenge_id, purposes=(Purpose.LOGIN,), code=code, actor=user,
                   ip=ip, subject_key=_login_key(user), on_success=lambda challenge: challenge,
                   audit_subject=user.username.lower(), now=now)


# ---------------------------------------------------------------------------------------------
# Housekeeping


def challenges_expire(*, now: dt.datetime | None = None) -> int:
    """Mark codes whose time ran out unused as expired (audited), so the loan OTP audit shows
    them, and drop rate-limit windows that closed long ago. Returns the codes expired."""
    now = now or timezone.now()
    expired = 0
    with transaction.atomic():
        stale = list(Challenge.objects.select_for_update().filter(status=ChallengeStatus.PENDING, expires_at__lte=now))
        for challenge in stale:
            challenge.status, challenge.void_reason, challenge.finished_at = ChallengeStatus.EXPIRED, "expired", now
            challenge.save(update_fields=["status", "void_reason", "finished_at"])
            audit_record(action=AuditAction.OTP_EXPIRED, entity=challenge.entity, target=challenge,
                         subject=challenge.cellphone if challenge.purpose != Purpose.LOGIN else challenge.subject_key,
                         after={"purpose": challenge.purpose, "challenge": challenge.public_id,
                                "attempts": challenge.attempts})
            expired += 1
        RateBucket.objects.filter(window_start__lt=now - 4 * rate_window()).delete()
    return expired
