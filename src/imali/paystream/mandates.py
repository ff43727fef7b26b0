"""DebiCheck mandates at the payment stream (DOMAIN §7, §11): create, have the client sign the terms
(the signing module's OTP or hand signature: a signing.Mandate is the document), send to the bank
for the client's authentication (TT1 real time, TT1 delayed, TT2 batch, TT3 card and PIN), follow
the bank's answer (approved, rejected, timed out), amend (new terms signed and authenticated again;
the mandate keeps its old terms until the bank approves) and cancel. Collections of a DebiCheck loan
go only against an approved mandate (`collection_mandate`, called where a collection is requested).

Every call goes through `services._send` (right, module, idempotency reference, bounded retries),
and every change writes an audit entry."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from collections.abc import Mapping
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from imali.core.audit import audit_record
from imali.core.countries import Country, time_zone_for
from imali.core.models import AuditAction
from imali.core.money import parse_amount
from imali.loans.models import Loan, LoanStatus
from imali.signing import services as signing
from imali.signing.models import Mandate as SigningMandate
from imali.signing.models import MandateKind, Signature
from imali.signing.models import MandateStatus as SigningMandateStatus
from imali.tenancy.models import Entity

from .errors import StreamError, stream_error
from .models import (
    MAX_TRACKING_DAYS,
    AdjustmentCategory,
    AuthenticationType,
    DebiCheckMandate,
    DebitSequence,
    MandateAmendment,
    MandateFrequency,
    MandateState,
    MandateValueType,
    NoteStatus,
    StreamAccount,
    StreamFunction,
)
from .services import (
    _done,
    _same_entity,
    _send,
    client_register,
    follow_later,
    require_access,
    status_ask_begin,
)

DAYS = {MandateFrequency.WEEKLY: (1, 7), MandateFrequency.FORTNIGHTLY: (1, 14), MandateFrequency.MONTHLY: (1, 30)}
DEFAULT_MAXIMUM_FACTOR = Decimal("1.1")
# How far ahead a first collection may be: a typo such as 9999-12-31 is refused, naming the field.
FIRST_COLLECTION_HORIZON = dt.timedelta(days=366)
OPEN_AMENDMENT = (MandateState.AWAITING_SIGNATURE, MandateState.SIGNED, MandateState.AUTHENTICATING)
BANK_STATES = {"APPROVED": MandateState.APPROVED, "REJECTED": MandateState.REJECTED, "TIMED_OUT": MandateState.TIMED_OUT,
               "CANCELLED": MandateState.CANCELLED}


def _money_text(amount: Decimal) -> str:
    return f"{amount:,.2f}"


class _Errors:
    def __init__(self) -> None:
        self.found: dict[str, list[ValidationError]] = {}

    def add(self, field: str, message: str, code: str = StreamError.INVALID) -> None:
        self.found.setdefault(field, []).append(ValidationError(message, code=str(code)))

    def raise_any(self) -> None:
        if self.found:
            raise ValidationError(self.found)


def _amount(errors: _Errors, data: Mapping[str, Any], field: str, default: Any = None, *, required: bool = True) -> Decimal | None:
    raw = data.get(field)
    if raw in (None, ""):
        raw = default
    if raw in (None, ""):
        if required:
            errors.add(field, "This field is required.", "required")
        return None
    try:
        return parse_amount(raw, field=field)
    except ValidationError as exc:
        errors.add(field, " ".join(exc.messages))
    except TypeError:
        errors.add(field, f"'{raw}' is not an amount.")
    return None


def _day(errors: _Errors, frequency: str, raw: Any) -> int | None:
    low, high = DAYS.get(frequency, (1, 30))
    last = " or 99 for the last day of the month" if frequency == MandateFrequency.MONTHLY else ""
    message = f"Choose a {MandateFrequency(frequency).label.lower() if frequency in DAYS else ''} collection day {low} to {high}{last}."
    try:
        day = int(raw)
    except (TypeError, ValueError):
        errors.add("collection_day", message.replace("  ", " "))
        return None
    if not (low <= day <= high or (frequency == MandateFrequency.MONTHLY and day == 99)):
        errors.add("collection_day", message.replace("  ", " "), "out_of_range")
        return None
    return day


def _maximum_rule(errors: _Errors, instalment: Decimal | None, maximum: Decimal | None) -> None:
    if instalment is not None and maximum is not None and not instalment <= maximum <= instalment * Decimal("1.5"):
        errors.add("maximum_collection", f"The maximum collection is at least the instalment ({_money_text(instalment)}) and at "
                                         f"most 1.5 times it ({_money_text((instalment * Decimal('1.5')).quantize(Decimal('0.01'), ROUND_DOWN))}).",
                   "out_of_range")


def _reference_free(entity: Entity, reference: str) -> bool:
    return not (DebiCheckMandate.objects.filter(entity=entity, contract_reference=reference).exists()
                or SigningMandate.objects.filter(entity=entity, contract_reference=reference).exists())


def _document(*, entity: Entity, actor, loan: Loan, account: StreamAccount, reference: str, instalment: Decimal,
              maximum: Decimal, day: int) -> SigningMandate:
    """The signing module's mandate: the document the client signs (OTP or by hand) for these terms."""
    return signing.mandate_create(actor=actor, entity=entity, loan=loan, data={
        "kind": MandateKind.DEBICHECK, "contract_reference": reference, "instalment_amount": instalment,
        "maximum_collection": maximum, "collection_day": day, "account": account.account})


def _signed(document: SigningMandate | None) -> bool:
    return document is not None and Signature.objects.filter(mandate=document).exists()


# -- create ------------------------------------------------------------------------------------
# The banks' last time of day for a new authentication request (DOMAIN §7), in South African
# time: TT1 real time and TT1 delayed 20:30, TT2 batch 21:00; TT3 (card and PIN) has none. Known
# here so that staff hear it when they create or send a mandate, not from the bank after the
# client has signed.
BANK_ZONE = zoneinfo.ZoneInfo(time_zone_for(Country.ZA))  # the banks' own zone, from core.countries
CUT_OFF = {AuthenticationType.TT1_REALTIME: dt.time(20, 30), AuthenticationType.TT1_DELAYED: dt.time(20, 30),
           AuthenticationType.TT2_BATCH: dt.time(21, 0)}


def _short(authentication: str) -> str:
    return str(AuthenticationType(authentication).label).split(" (")[0]  # "TT2 batch"


def bank_now() -> dt.datetime:
    """The time the cut-offs are read against (the tests pin it, as they pin the local bank's)."""
    return timezone.now()


def authentication_closed(authentication: str, *, now: dt.datetime | None = None) -> str:
    """Why the banks take no request of `authentication` now (after its cut-off), or ""."""
    cut_off = CUT_OFF.get(authentication)
    local = (now or bank_now()).astimezone(BANK_ZONE)
    if cut_off is None or local.time() < cut_off:
        return ""
    open_now = [_short(a) for a in AuthenticationType.values if a not in CUT_OFF or local.time() < CUT_OFF[a]]
    return (f"The banks take no {_short(authentication)} requests after {cut_off:%H:%M} South African "
            f"time (it is {local:%H:%M}): choose {' or '.join(open_now)}, or send it tomorrow.")


def authentication_open_now(*, now: dt.datetime | None = None) -> str:
    """The first authentication the banks take now, in the order TT1, TT2, TT3 (a form's default)."""
    for choice in (AuthenticationType.TT1_REALTIME, AuthenticationType.TT2_BATCH, AuthenticationType.TT3_CARD):
        if not authentication_closed(choice, now=now):
            return choice
    return AuthenticationType.TT3_CARD


def mandate_create(*, entity: Entity, actor, loan: Loan, account: StreamAccount, data: Mapping[str, Any]) -> DebiCheckMandate:
    """A DebiCheck mandate for the loan, collected from a bank account registered at the stream.
    Nothing is sent yet: the client signs the terms first (`signing` screens), then
    `mandate_submit` asks the bank to have the client authenticate."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, loan, account)
    errors = _Errors()
    if loan.status not in (LoanStatus.APPLICATION, LoanStatus.APPROVED, LoanStatus.ACTIVE):
        errors.add("loan", "A mandate is made for a loan being applied for, approved or active.", StreamError.LOAN_STATUS)
    if account.client_id != loan.client_id or account.account.kind != "bank" or not account.account.is_active:
        errors.add("account", "Choose an active bank account of the loan's client registered at the stream.",
                   StreamError.ACCOUNTS)
    choices = {"authentication": AuthenticationType, "value_type": MandateValueType, "debit_sequence": DebitSequence,
               "frequency": MandateFrequency, "adjustment_category": AdjustmentCategory}
    defaults = {"value_type": MandateValueType.FIXED, "debit_sequence": DebitSequence.RECURRING,
                "frequency": MandateFrequency.MONTHLY, "adjustment_category": AdjustmentCategory.NEVER}
    picked: dict[str, str] = {}
    for field, kind in choices.items():
        value = str(data.get(field) or defaults.get(field, ""))
        if value not in kind.values:
            errors.add(field, f"Choose one of: {', '.join(str(label) for label in kind.labels)}.",
                       "required" if not value else StreamError.INVALID)
        picked[field] = value
    if closed := authentication_closed(picked["authentication"]):
        errors.add("authentication", closed, StreamError.AFTER_CUT_OFF)
    instalment = _amount(errors, data, "instalment_amount", loan.instalment_amount)
    # Blank: 10% above the instalment, so a schedule's rounded instalments still fit under it.
    maximum = _amount(errors, data, "maximum_collection",
                      (instalment * DEFAULT_MAXIMUM_FACTOR).quantize(Decimal("0.01"), ROUND_DOWN) if instalment else None)
    _maximum_rule(errors, instalment, maximum)
    day = _day(errors, picked["frequency"], data.get("collection_day") or loan.pay_day)
    first = data.get("first_collection_date")
    if isinstance(first, str) and first:
        try:
            first = dt.date.fromisoformat(first)
        except ValueError:
            first = None
            errors.add("first_collection_date", "Enter a date (YYYY-MM-DD).")
    if not first:
        first = None
        if "first_collection_date" not in errors.found:
            errors.add("first_collection_date", "This field is required.", "required")
    elif first < timezone.localdate():
        errors.add("first_collection_date", "The first collection cannot be in the past.", "out_of_range")
    elif first > timezone.localdate() + FIRST_COLLECTION_HORIZON:
        errors.add("first_collection_date", "The first collection is at most a year ahead: "
                                            f"{(timezone.localdate() + FIRST_COLLECTION_HORIZON).isoformat()} at the latest.",
                   StreamError.TOO_FAR_AHEAD)
    date_adjustment = str(data.get("date_adjustment", "")).lower() in ("1", "true", "on", "yes")
    adjustment_amount = _amount(errors, data, "adjustment_amount", required=False)
    adjustment_rate = None
    if data.get("adjustment_rate") not in (None, ""):
        try:
            adjustment_rate = Decimal(str(data["adjustment_rate"]))
            if not adjustment_rate.is_finite() or not Decimal(0) < adjustment_rate <= Decimal(100) \
                    or adjustment_rate != adjustment_rate.quantize(Decimal("0.001")):
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            adjustment_rate = None
            errors.add("adjustment_rate", "A rate is a percentage above 0 and at most 100, with up to three decimals.")
    if picked["adjustment_category"] == AdjustmentCategory.NEVER and (adjustment_amount or adjustment_rate):
        errors.add("adjustment_category", "Choose how often the instalment is adjusted, or leave the amount and rate blank.")
    if picked["adjustment_category"] not in ("", AdjustmentCategory.NEVER) and not (adjustment_amount or adjustment_rate) \
            and "adjustment_amount" not in errors.found and "adjustment_rate" not in errors.found:
        errors.add("adjustment_amount", "An adjustment needs an amount or a rate.", "required")
    try:
        tracking = int(data.get("tracking_days") or 0)
        if not 0 <= tracking <= MAX_TRACKING_DAYS:
            raise ValueError
    except (TypeError, ValueError):
        tracking = 0
        errors.add("tracking_days", f"DebiCheck tracking is 0 to {MAX_TRACKING_DAYS} days.", "out_of_range")
    given = str(data.get("contract_reference") or "").strip()
    # ASCII only, checked before upper-casing ("ß" would become "SS"): the bank reads A-Z, 0-9 and dashes.
    reference = given.upper() if given.isascii() else given
    if reference:
        if len(reference) > 20 or not (reference.isascii() and reference.replace("-", "").isalnum()):
            errors.add("contract_reference", "A contract reference is up to 20 letters A-Z, digits 0-9 or dashes.")
        elif not _reference_free(entity, reference):
            errors.add("contract_reference", f"The contract reference {reference} was used before: a contract reference is "
                                             "never reused, also after a cancel.", StreamError.CONTRACT_REFERENCE_USED)
    else:
        reference = f"DC{loan.pk}-{uuid.uuid4().hex[:6].upper()}"[:20]
    errors.raise_any()
    try:
        with transaction.atomic():
            document = _document(entity=entity, actor=actor, loan=loan, account=account, reference=reference,
                                 instalment=instalment, maximum=maximum, day=day)
            mandate = DebiCheckMandate.objects.create(
                entity=entity, loan=loan, client_id=loan.client_id, account=account, contract_reference=reference,
                authentication=picked["authentication"], value_type=picked["value_type"],
                debit_sequence=picked["debit_sequence"], instalment_amount=instalment, maximum_collection=maximum,
                frequency=picked["frequency"], collection_day=day, first_collection_date=first,
                date_adjustment=date_adjustment, adjustment_category=picked["adjustment_category"],
                adjustment_amount=adjustment_amount, adjustment_rate=adjustment_rate, tracking_days=tracking,
                document=document, created_by=actor)
            audit_record(action=AuditAction.PAYSTREAM_MANDATE_CREATED, actor=actor, entity=entity, target=mandate,
                         subject=reference, after={
                             "loan_id": loan.pk, "contract_reference": reference, "authentication": mandate.authentication,
                             "value_type": mandate.value_type, "instalment_amount": str(instalment),
                             "maximum_collection": str(maximum), "frequency": mandate.frequency, "collection_day": day,
                             "first_collection_date": first.isoformat(), "tracking_days": tracking})
    except IntegrityError:
        # Two people took the same reference at once: the database keeps it unique.
        raise stream_error("contract_reference", StreamError.CONTRACT_REFERENCE_USED,
                           f"The contract reference {reference} was used before: a contract reference is never reused, "
                           "also after a cancel.") from None
    return mandate


# -- signing, sending, following the bank ------------------------------------------------------
def mandate_signature_sync(*, mandate: DebiCheckMandate) -> DebiCheckMandate:
    """Awaiting signature → signed, once the signing module holds a signature of the document
    (the mandate's own, or an open amendment's)."""
    if mandate.status == MandateState.AWAITING_SIGNATURE and _signed(mandate.document):
        DebiCheckMandate.objects.filter(pk=mandate.pk, status=MandateState.AWAITING_SIGNATURE).update(status=MandateState.SIGNED)
        mandate.status = MandateState.SIGNED
    amendment = mandate.amendments.filter(status=MandateState.AWAITING_SIGNATURE).select_related("document").first()
    if amendment is not None and _signed(amendment.document):
        MandateAmendment.objects.filter(pk=amendment.pk, status=MandateState.AWAITING_SIGNATURE).update(status=MandateState.SIGNED)
    return mandate


def signatures_sync(*, entity: Entity, loan: Loan) -> int:
    """The same as `mandate_signature_sync` for all of a loan's mandates and amendments in two
    statements (the loan's mandate list does this on every draw)."""
    signed = Signature.objects.filter(entity=entity, mandate__isnull=False).values("mandate_id")
    moved = DebiCheckMandate.objects.filter(entity=entity, loan=loan, status=MandateState.AWAITING_SIGNATURE,
                                            document__in=signed).update(status=MandateState.SIGNED)
    return moved + MandateAmendment.objects.filter(mandate__entity=entity, mandate__loan=loan, status=MandateState.AWAITING_SIGNATURE,
                                                   document__in=signed).update(status=MandateState.SIGNED)


def mandate_submit(*, entity: Entity, actor, mandate: DebiCheckMandate) -> DebiCheckMandate:
    """Send the signed mandate to the bank (CreateMandate): the client now authenticates it in the
    way chosen (TT1 on the phone within 120 s, TT1 delayed by 20:30, TT2 by the second business
    day, TT3 with card and PIN). `mandate_refresh` follows the answer."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, mandate)
    mandate = mandate_signature_sync(mandate=mandate)
    if mandate.status == MandateState.AWAITING_SIGNATURE:
        raise stream_error("mandate", StreamError.MANDATE_NOT_SIGNED,
                           "The client has not signed the mandate yet: have it signed (OTP or by hand) first.")
    if mandate.status != MandateState.SIGNED:
        raise stream_error("mandate", StreamError.MANDATE_STATE, f"The mandate is {mandate.get_status_display().lower()}: "
                                                                  "only a signed mandate is sent to the bank.")
    if closed := authentication_closed(mandate.authentication):
        raise stream_error("authentication", StreamError.AFTER_CUT_OFF, closed)
    stream_client = client_register(entity=entity, actor=actor, client=mandate.client)
    state, request = _send(
        entity=entity, actor=actor, function=StreamFunction.CREATE_MANDATE, target=mandate,
        call=lambda s, key: s.create_mandate(
            key=key, client_reference=stream_client.reference, account_reference=mandate.account.reference,
            contract_reference=mandate.contract_reference, authentication=mandate.authentication,
            value_type=mandate.value_type, debit_sequence=mandate.debit_sequence, instalment=mandate.instalment_amount,
            maximum_collection=mandate.maximum_collection, frequency=mandate.frequency,
            collection_day=mandate.collection_day, first_collection_date=mandate.first_collection_date,
            date_adjustment=mandate.date_adjustment, adjustment_category=mandate.adjustment_category,
            adjustment_amount=mandate.adjustment_amount, adjustment_rate=mandate.adjustment_rate,
            tracking_days=mandate.tracking_days))
    with transaction.atomic():
        _done(request, state.reference)
        locked = DebiCheckMandate.objects.select_for_update().get(pk=mandate.pk)
        locked.reference, locked.authenticate_by = state.reference, state.authenticate_by
        locked.status = MandateState.AUTHENTICATING
        locked.save(update_fields=["reference", "authenticate_by", "status"])
        audit_record(action=AuditAction.PAYSTREAM_MANDATE_SENT, actor=actor, entity=entity, target=locked,
                     subject=locked.contract_reference, after={
                         "reference": state.reference, "authentication": locked.authentication,
                         "authenticate_by": state.authenticate_by.isoformat() if state.authenticate_by else "",
                         "idempotency_reference": str(request.idempotency_reference)})
        # The client may have answered at once (card and PIN at the terminal).
        _mandate_decided(entity=entity, actor=actor, mandate=locked, state=state)
        transaction.on_commit(lambda: follow_later("mandate", locked.pk))
    return locked


def _mandate_decided(*, entity: Entity, actor, mandate: DebiCheckMandate, state) -> None:
    decided = BANK_STATES.get(state.status)
    if mandate.status != MandateState.AUTHENTICATING or decided is None:
        return
    mandate.status, mandate.decided_at, mandate.rejection_reason = decided, timezone.now(), state.reason[:200]
    mandate.save(update_fields=["status", "decided_at", "rejection_reason"])
    audit_record(action=AuditAction.PAYSTREAM_MANDATE_DECIDED, actor=actor, entity=entity, target=mandate,
                 subject=mandate.contract_reference, before={"status": MandateState.AUTHENTICATING},
                 after={"status": mandate.status, "reason": mandate.rejection_reason})


def _waiting_q() -> Q:
    return Q(status=MandateState.AUTHENTICATING) | Q(amendments__status=MandateState.AUTHENTICATING)


def mandates_ask(*, entity: Entity, actor, loan: Loan) -> list[DebiCheckMandate]:
    """A person's "Ask the bank now" about the loan's mandates (and amendments) waiting for the
    client (a POST: the loan page's poll only reads). Needs the stream's right; rate-limited per
    loan (services.ASK_MIN_SECONDS) and audited."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, loan)
    with transaction.atomic():
        waiting = list(DebiCheckMandate.objects.filter(_waiting_q(), entity=entity, loan=loan).order_by("id"))
        if not waiting:
            return []
        status_ask_begin(entity=entity, actor=actor, target=loan, subject=str(loan.pk), function=StreamFunction.MANDATE_STATUS,
                         asked=[m.contract_reference for m in waiting])
    return [mandate_refresh(entity=entity, actor=actor, mandate=mandate) for mandate in waiting]


def mandate_ask(*, entity: Entity, actor, mandate: DebiCheckMandate) -> DebiCheckMandate:
    """A person's "ask the bank now" about one mandate (the API's refresh): the same limit as the
    loan page's button — once per ASK_MIN_SECONDS per loan, whether asked here or there — and the
    same audit entry. A mandate (or amendment) not waiting for the client asks nobody."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, mandate)
    with transaction.atomic():
        waiting = (DebiCheckMandate.objects.filter(_waiting_q(), pk=mandate.pk, entity=entity).exclude(reference="")
                   .select_related("loan").first())
        if waiting is not None:
            status_ask_begin(entity=entity, actor=actor, target=waiting.loan, subject=str(waiting.loan_id),
                             function=StreamFunction.MANDATE_STATUS, asked=[waiting.contract_reference])
    return mandate_refresh(entity=entity, actor=actor, mandate=mandate)


def mandate_refresh(*, entity: Entity, actor, mandate: DebiCheckMandate) -> DebiCheckMandate:
    """Ask the bank (MandateStatus) where the client's authentication stands: approved, rejected or
    timed out; likewise an amendment's, whose terms the mandate takes when the bank approves it."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, mandate)
    mandate = mandate_signature_sync(mandate=DebiCheckMandate.objects.select_related("account").get(pk=mandate.pk))
    amendment = mandate.amendments.filter(status=MandateState.AUTHENTICATING).first()
    if not mandate.reference or (mandate.status != MandateState.AUTHENTICATING and amendment is None):
        return mandate
    reply, request = _send(entity=entity, actor=actor, function=StreamFunction.MANDATE_STATUS, target=mandate,
                           call=lambda s, key: s.mandate_status(key=key, mandate_reference=mandate.reference))
    with transaction.atomic():
        _done(request, mandate.reference)
        locked = DebiCheckMandate.objects.select_for_update().get(pk=mandate.pk)
        _mandate_decided(entity=entity, actor=actor, mandate=locked, state=reply.mandate)
        if amendment is not None and reply.amendment is not None and reply.amendment.reference == amendment.reference:
            _amendment_decided(entity=entity, actor=actor, mandate=locked, amendment=amendment, state=reply.amendment)
    return locked


def _amendment_decided(*, entity: Entity, actor, mandate: DebiCheckMandate, amendment: MandateAmendment, state) -> None:
    decided = BANK_STATES.get(state.status)
    if decided is None:
        return
    row = MandateAmendment.objects.select_for_update().get(pk=amendment.pk)
    if row.status != MandateState.AUTHENTICATING:
        return
    row.status, row.decided_at, row.rejection_reason = decided, timezone.now(), state.reason[:200]
    row.save(update_fields=["status", "decided_at", "rejection_reason"])
    before = {"instalment_amount": str(mandate.instalment_amount), "maximum_collection": str(mandate.maximum_collection),
              "collection_day": mandate.collection_day}
    if decided == MandateState.APPROVED:
        mandate.instalment_amount, mandate.maximum_collection = row.instalment_amount, row.maximum_collection
        mandate.collection_day, mandate.document = row.collection_day, row.document
        mandate.save(update_fields=["instalment_amount", "maximum_collection", "collection_day", "document"])
    audit_record(action=AuditAction.PAYSTREAM_MANDATE_DECIDED, actor=actor, entity=entity, target=mandate,
                 subject=mandate.contract_reference, before=before,
                 after={"amendment": row.number, "status": row.status, "reason": row.rejection_reason,
                        "instalment_amount": str(mandate.instalment_amount),
                        "maximum_collection": str(mandate.maximum_collection), "collection_day": mandate.collection_day})


# -- amend ---------------------------------------------------------------------------------------
NOT_AMENDABLE = ("frequency", "account", "contract_reference", "authentication", "value_type", "debit_sequence")


def mandate_amend(*, entity: Entity, actor, mandate: DebiCheckMandate, data: Mapping[str, Any]) -> MandateAmendment:
    """New instalment, maximum collection or collection day: the client signs the new terms and
    authenticates them again at the bank. Frequency, debtor account and contract reference cannot be
    amended (a new mandate)."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, mandate)
    errors = _Errors()
    for field in NOT_AMENDABLE:
        if data.get(field) not in (None, "") and str(data[field]) != str(getattr(mandate, f"{field}_id", None)
                                                                          if field == "account" else getattr(mandate, field)):
            errors.add(field, "The frequency, debtor account, contract reference and how the client authenticates cannot be "
                              "amended: cancel the mandate and create a new one.", StreamError.NOT_AMENDABLE)
    if mandate.status != MandateState.APPROVED:
        errors.add("mandate", f"Only an approved mandate is amended; this one is {mandate.get_status_display().lower()}.",
                   StreamError.MANDATE_STATE)
    elif mandate.amendments.filter(status__in=OPEN_AMENDMENT).exists():
        errors.add("mandate", "An amendment of this mandate is open already: finish or cancel it first.", StreamError.MANDATE_STATE)
    instalment = _amount(errors, data, "instalment_amount", mandate.instalment_amount)
    maximum = _amount(errors, data, "maximum_collection", mandate.maximum_collection)
    _maximum_rule(errors, instalment, maximum)
    day = _day(errors, mandate.frequency, data.get("collection_day") or mandate.collection_day)
    if not errors.found and (instalment, maximum, day) == (mandate.instalment_amount, mandate.maximum_collection,
                                                           mandate.collection_day):
        errors.add("instalment_amount", "Change the instalment, the maximum collection or the collection day.")
    errors.raise_any()
    with transaction.atomic():
        locked = DebiCheckMandate.objects.select_for_update().get(pk=mandate.pk)
        number = locked.amendments.count() + 1
        document = _document(entity=entity, actor=actor, loan=locked.loan, account=locked.account,
                             reference=f"{locked.contract_reference}/A{number}", instalment=instalment, maximum=maximum, day=day)
        try:
            with transaction.atomic():
                amendment = MandateAmendment.objects.create(mandate=locked, number=number, instalment_amount=instalment,
                                                            maximum_collection=maximum, collection_day=day, document=document,
                                                            created_by=actor)
        except IntegrityError:
            raise stream_error("mandate", StreamError.MANDATE_STATE, "An amendment of this mandate is open already.") from None
        audit_record(action=AuditAction.PAYSTREAM_MANDATE_AMENDED, actor=actor, entity=entity, target=locked,
                     subject=locked.contract_reference,
                     before={"instalment_amount": str(locked.instalment_amount),
                             "maximum_collection": str(locked.maximum_collection), "collection_day": locked.collection_day},
                     after={"amendment": number, "instalment_amount": str(instalment), "maximum_collection": str(maximum),
                            "collection_day": day})
    return amendment


def amendment_submit(*, entity: Entity, actor, amendment: MandateAmendment) -> MandateAmendment:
    """Send the signed amendment to the bank (AmendMandate): the client authenticates again."""
    require_access(entity=entity, actor=actor)
    mandate = amendment.mandate
    _same_entity(entity, mandate)
    mandate_signature_sync(mandate=mandate)
    amendment.refresh_from_db()
    if amendment.status == MandateState.AWAITING_SIGNATURE:
        raise stream_error("mandate", StreamError.MANDATE_NOT_SIGNED,
                           "The client has not signed the amended terms yet: have them signed (OTP or by hand) first.")
    if amendment.status != MandateState.SIGNED:
        raise stream_error("mandate", StreamError.MANDATE_STATE, f"The amendment is {amendment.get_status_display().lower()}.")
    state, request = _send(
        entity=entity, actor=actor, function=StreamFunction.AMEND_MANDATE, target=amendment,
        call=lambda s, key: s.amend_mandate(key=key, mandate_reference=mandate.reference, instalment=amendment.instalment_amount,
                                            maximum_collection=amendment.maximum_collection,
                                            collection_day=amendment.collection_day))
    with transaction.atomic():
        _done(request, state.reference)
        row = MandateAmendment.objects.select_for_update().get(pk=amendment.pk)
        row.reference, row.authenticate_by = state.reference, state.authenticate_by
        row.status = MandateState.AUTHENTICATING
        row.save(update_fields=["reference", "authenticate_by", "status"])
        audit_record(action=AuditAction.PAYSTREAM_MANDATE_SENT, actor=actor, entity=entity, target=mandate,
                     subject=mandate.contract_reference, after={
                         "amendment": row.number, "reference": state.reference,
                         "authenticate_by": state.authenticate_by.isoformat() if state.authenticate_by else "",
                         "idempotency_reference": str(request.idempotency_reference)})
        locked = DebiCheckMandate.objects.select_for_update().get(pk=mandate.pk)
        _amendment_decided(entity=entity, actor=actor, mandate=locked, amendment=row, state=state)
        transaction.on_commit(lambda: follow_later("mandate", locked.pk))
    row.refresh_from_db()
    return row


# -- cancel --------------------------------------------------------------------------------------
def mandate_cancel(*, entity: Entity, actor, mandate: DebiCheckMandate, reason: str = "") -> DebiCheckMandate:
    """Cancel at the bank (if it was sent) and here; an open amendment goes with it and the signing
    document can no longer be signed. The contract reference stays used for good."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, mandate)
    if mandate.status == MandateState.CANCELLED:
        raise stream_error("mandate", StreamError.MANDATE_STATE, "The mandate is cancelled already.")
    live = mandate.notes.exclude(status=NoteStatus.CANCELLED).first()
    if live is not None:
        raise stream_error("mandate", StreamError.MANDATE_STATE,
                           f"Promissory note {live.reference} collects under this mandate: cancel the note first.")
    request = None
    if mandate.reference and mandate.status not in (MandateState.REJECTED, MandateState.TIMED_OUT):
        _, request = _send(entity=entity, actor=actor, function=StreamFunction.CANCEL_MANDATE, target=mandate,
                           call=lambda s, key: s.cancel_mandate(key=key, mandate_reference=mandate.reference))
    with transaction.atomic():
        if request is not None:
            _done(request, mandate.reference)
        locked = DebiCheckMandate.objects.select_for_update().get(pk=mandate.pk)
        before = locked.status
        locked.status, locked.cancelled_at = MandateState.CANCELLED, timezone.now()
        locked.save(update_fields=["status", "cancelled_at"])
        open_amendments = list(locked.amendments.filter(status__in=OPEN_AMENDMENT).values_list("document_id", flat=True))
        locked.amendments.filter(status__in=OPEN_AMENDMENT).update(status=MandateState.CANCELLED)
        SigningMandate.objects.filter(pk__in=[locked.document_id, *open_amendments]).update(status=SigningMandateStatus.CANCELLED)
        audit_record(action=AuditAction.PAYSTREAM_MANDATE_CANCELLED, actor=actor, entity=entity, target=locked,
                     subject=locked.contract_reference, before={"status": before},
                     after={"status": locked.status, "reason": (reason or "")[:200]})
    return locked


# -- collections -------------------------------------------------------------------------------
def collection_mandate(*, loan: Loan, instalments: list | None = None) -> DebiCheckMandate | None:
    """Where a collection is requested for the loan: a DebiCheck loan (one with a mandate that is
    not cancelled) is collected only under its approved mandate, each instalment within the
    mandate's maximum collection. None: not a DebiCheck loan."""
    mandates = list(DebiCheckMandate.objects.filter(loan=loan).exclude(status=MandateState.CANCELLED).order_by("-id"))
    if not mandates:
        return None
    approved = next((m for m in mandates if m.status == MandateState.APPROVED), None)
    if approved is None:
        latest = mandates[0]
        raise stream_error("loan", StreamError.MANDATE_REQUIRED,
                           f"This loan is collected by DebiCheck: collections need an approved mandate, and mandate "
                           f"{latest.contract_reference} is {latest.get_status_display().lower()}.")
    for instalment in instalments or []:
        if instalment.amount > approved.maximum_collection:
            raise stream_error("loan", StreamError.ABOVE_MAXIMUM_COLLECTION,
                               f"Instalment {instalment.seq} of {_money_text(instalment.amount)} is above the maximum "
                               f"collection of {_money_text(approved.maximum_collection)} of mandate "
                               f"{approved.contract_reference}: amend the mandate first.")
    return approved
