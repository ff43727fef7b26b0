"""Every write of the payment stream: the seed's ten functions (and the employer registration the
order rule needs first), each checked for the user's right, sent through the adapter, recorded
with the stream's reference, audited.

How a call is made (`_send`): a StreamRequest row with a fresh idempotency reference is committed
BEFORE the call, then the call is made (retried a bounded number of times with the same reference
while the stream is unavailable), then the answer is recorded in one transaction with the business
rows and the audit entry. No database transaction is held open across the network. A process that
dies after sending and before recording leaves the row SENDING; the next attempt at the same
business event finds it and resends with the same reference, and the stream answers from its
record instead of acting twice (the peer enforces this)."""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from collections.abc import Callable
from decimal import Decimal
from functools import lru_cache
from typing import Any, TypeVar

from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from imali.clients.models import AccountKind, AccountPurpose, Client, ClientAccount
from imali.clients.services import client_account_add
from imali.core import destination
from imali.core.audit import audit_record
from imali.core.countries import country_name, payment_streams_offered
from imali.core.errors import TooSoon
from imali.core.models import AuditAction, AuditEntry
from imali.core.money import parse_amount
from imali.loans.models import Loan, LoanStatus
from imali.loans.services import (
    loan_disburse,
    loan_payout_check,
    local_today,
)
from imali.mobilemoney.models import OPEN_DISBURSEMENT_STATUSES
from imali.mobilemoney.models import Disbursement as MobileDisbursement
from imali.mobilemoney.models import DisbursementStatus as MobileDisbursementStatus
from imali.tenancy.models import Entity, Module
from imali.tenancy.rights import Right

from . import cdv
from .adapters.base import (
    Document,
    Instalment,
    PaymentStream,
    StreamRejected,
    StreamUnavailable,
)
from .adapters.http import HttpPaymentStream
from .collections import ImportSummary, collection_result_post, collections_import  # noqa: F401 (the app's services)
from .documents import render_pdf
from .errors import StreamError, stream_error
from .models import (
    AMOUNT_EDITABLE_STREAMS,
    CardIssueReceipt,
    CollectionProblem,
    CreditPayment,
    CreditPaymentStatus,
    NoteInstalment,
    NoteInstalmentStatus,
    NoteStatus,
    PaymentStreamKind,
    PromissoryNote,
    RequestStatus,
    StreamAccount,
    StreamClient,
    StreamEmployer,
    StreamFunction,
    StreamRequest,
    StreamSettings,
    WalletRequest,
    WalletStatus,
)

T = TypeVar("T")
# Bounded retries inside one call while the stream is unavailable (same idempotency reference).
ATTEMPTS = 3
BACKOFF_SECONDS = (0.2, 0.6)
# Functions whose leftover SENDING request is resent with its own reference when the same business
# event is tried again (creations and payments: acting twice would duplicate them).
RESUMABLE = (StreamFunction.ADD_EMPLOYER, StreamFunction.ADD_CLIENT, StreamFunction.ADD_CLIENT_ACCOUNT,
             StreamFunction.CREATE_PROMISSORY, StreamFunction.CANCEL_PROMISSORY, StreamFunction.PAY_TO_CLIENT_ACCOUNT,
             StreamFunction.CREATE_WALLET, StreamFunction.CREATE_MANDATE, StreamFunction.AMEND_MANDATE,
             StreamFunction.CANCEL_MANDATE)
GENDER_CODES = {"M": "M", "F": "F"}


# -- access, settings, the table ---------------------------------------------------------------
def require_access(*, entity: Entity, actor) -> None:
    """The right "Allow access to payment-stream web services", inside the user's own entity with
    the module on: checked on every call to the stream."""
    if actor is None or getattr(actor, "entity_id", None) != entity.pk:
        raise PermissionDenied("Only a user of this entity may use its payment stream.")
    if not payment_streams_offered(entity.country):
        raise stream_error("__all__", StreamError.MODULE_OFF,
                           f"The payment stream is South Africa's (DebiCheck, NAEDO, the banks' branch codes): it is not "
                           f"offered to a lender in {country_name(entity.country)}.")
    if not actor.has_right(Right.PAYMENT_STREAM_WEB_SERVICES):
        raise PermissionDenied(f"You need the right '{Right.PAYMENT_STREAM_WEB_SERVICES.label}'.")
    if not entity.has_module(Module.PAYMENT_STREAMS):
        raise stream_error("__all__", StreamError.MODULE_OFF,
                           "The payment-streams module is not switched on for this entity (the platform operator does that).")


@lru_cache(maxsize=4)
def _table(path: str) -> cdv.CdvTable:
    return cdv.load_table(path or cdv.SAMPLE_TABLE)


def cdv_table() -> cdv.CdvTable:
    """The check-digit table: the file named by IMALI_PAYSTREAM_CDV_TABLE (the sponsoring bank's
    table, converted), else the shipped sample."""
    path = getattr(django_settings, "PAYSTREAM_CDV_TABLE", "") or os.environ.get("IMALI_PAYSTREAM_CDV_TABLE", "")
    return _table(path)


def check_account(*, branch_code: str, account_number: str, account_type: str | None) -> cdv.CdvResult:
    try:
        return cdv.verify(cdv_table(), branch_code=branch_code, account_number=account_number, account_type=account_type)
    except cdv.CdvError as error:
        raise stream_error(error.field, f"cdv_{error.code.value}", error.message) from None


def stream_settings_save(*, entity: Entity, actor, base_url: str, username: str, password: str = "",
                         branch_code: str = "", timeout_seconds: int = 10, decline_sms: bool | None = None) -> StreamSettings:
    """Save where the stream is and the credentials. A blank password keeps the stored one; the
    password never appears in the audit entry."""
    if getattr(actor, "entity_id", None) != entity.pk or not actor.has_right(Right.PAYMENT_STREAM_WEB_SERVICES):
        raise PermissionDenied(f"You need the right '{Right.PAYMENT_STREAM_WEB_SERVICES.label}'.")
    errors: dict[str, list[ValidationError]] = {}
    base_url = (base_url or "").strip()
    problem = destination.base_url_problem(base_url, **destination.rules())
    if problem:
        errors["base_url"] = [ValidationError(problem, code=StreamError.DESTINATION_REFUSED.value)]
    if not (username or "").strip():
        errors["username"] = [ValidationError("This field is required.", code="required")]
    # The columns' lengths, checked here: PostgreSQL refuses a longer value (a 500), SQLite keeps it.
    for name, value in (("base_url", base_url), ("username", (username or "").strip()), ("password", password or ""),
                        ("branch_code", (branch_code or "").strip())):
        limit = StreamSettings._meta.get_field(name).max_length
        if name not in errors and len(value) > limit:
            errors[name] = [ValidationError(f"At most {limit} characters.", code="max_length")]
    existing = StreamSettings.objects.filter(entity=entity).first()
    if not password and existing is None:
        errors["password"] = [ValidationError("This field is required.", code="required")]
    if not 1 <= int(timeout_seconds or 0) <= 120:
        errors["timeout_seconds"] = [ValidationError("Between 1 and 120 seconds.", code="out_of_range")]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        row, created = StreamSettings.objects.select_for_update().get_or_create(
            entity=entity, defaults={"base_url": base_url, "username": username.strip(), "password": password,
                                     "branch_code": (branch_code or "").strip(), "timeout_seconds": timeout_seconds})
        before = None if created else {"base_url": row.base_url, "username": row.username, "branch_code": row.branch_code,
                                       "timeout_seconds": row.timeout_seconds, "decline_sms": row.decline_sms}
        if decline_sms is not None:  # None: left as it is
            row.decline_sms = bool(decline_sms)
        row.base_url, row.username, row.branch_code, row.timeout_seconds = base_url, username.strip(), (branch_code or "").strip(), timeout_seconds
        if password:
            row.password = password
        row.save()
        audit_record(action=AuditAction.PAYSTREAM_SETTINGS_CHANGED, actor=actor, entity=entity, target=row, subject=entity.code,
                     before=before, after={"base_url": base_url, "username": row.username, "branch_code": row.branch_code,
                                           "timeout_seconds": timeout_seconds, "decline_sms": row.decline_sms,
                                           "password_changed": bool(password)})
    return row


def stream_for(entity: Entity) -> HttpPaymentStream:
    found = StreamSettings.objects.filter(entity=entity).first()
    if found is None:
        raise stream_error("__all__", StreamError.NO_SETTINGS,
                           "The payment stream is not set up for this entity: enter its address and log-on under Setup.")
    # Checked again before each call: a row saved under older rules or settings, or a name that
    # resolves somewhere private now, is not connected to.
    problem = destination.resolved_problem(found.base_url, **destination.rules())
    if problem:
        raise stream_error("base_url", StreamError.DESTINATION_REFUSED,
                           f"The payment stream's base URL is refused (Setup → Payment stream): {problem}")
    return HttpPaymentStream(base_url=found.base_url, username=found.username, password=found.password,
                             timeout=float(found.timeout_seconds))


# -- sending ----------------------------------------------------------------------------------
def _open_request(*, entity: Entity, actor, function: StreamFunction, target: Any) -> StreamRequest:
    object_type, object_id = (target._meta.label, str(target.pk)) if target is not None else ("", "")
    if function in RESUMABLE and target is not None:
        leftover = (StreamRequest.objects.filter(entity=entity, function=function, object_type=object_type, object_id=object_id,
                                                 status__in=(RequestStatus.SENDING, RequestStatus.UNAVAILABLE))
                    .order_by("-id").first())
        if leftover is not None:
            return leftover
    return StreamRequest.objects.create(entity=entity, function=function, object_type=object_type, object_id=object_id,
                                        actor=actor if getattr(actor, "pk", None) else None)


def _send(*, entity: Entity, actor, function: StreamFunction, target: Any, call: Callable[[PaymentStream, str], T],
          request: StreamRequest | None = None) -> tuple[T, StreamRequest]:
    require_access(entity=entity, actor=actor)
    given = request is not None
    request = request or _open_request(entity=entity, actor=actor, function=function, target=target)
    try:
        return _send_with(entity=entity, request=request, call=call)
    except ValidationError as error:
        # A leftover request resumed for a different body (another account for the same client,
        # another stream for the same loan): the stream refuses its key. It was never acted on
        # for this body, so this body goes out under a fresh reference.
        reused = getattr(error, "error_dict", None) and any(
            e.code == "idempotency_key_reused" for errs in error.error_dict.values() for e in errs)
        if given or not reused:
            raise
        # The leftover stays unresolved for its own body: the next attempt at that one resumes it.
        StreamRequest.objects.filter(pk=request.pk).update(status=RequestStatus.UNAVAILABLE, completed_at=None)
        fresh = StreamRequest.objects.create(entity=entity, function=function, object_type=request.object_type,
                                             object_id=request.object_id, actor=actor if getattr(actor, "pk", None) else None)
        return _send_with(entity=entity, request=fresh, call=call)


def _send_with(*, entity: Entity, request: StreamRequest, call: Callable[[PaymentStream, str], T]) -> tuple[T, StreamRequest]:
    key = str(request.idempotency_reference)
    try:
        stream = stream_for(entity)
    except ValidationError as refused:  # nothing went out: the request says why
        StreamRequest.objects.filter(pk=request.pk).update(status=RequestStatus.UNAVAILABLE, error_code="destination_refused",
                                                           error_message="; ".join(refused.messages)[:300])
        raise
    with stream:
        for attempt in range(ATTEMPTS):
            StreamRequest.objects.filter(pk=request.pk).update(attempts=F("attempts") + 1)
            try:
                result = call(stream, key)
            except StreamUnavailable as exc:
                if attempt + 1 < ATTEMPTS:
                    time.sleep(BACKOFF_SECONDS[min(attempt, len(BACKOFF_SECONDS) - 1)])
                    continue
                StreamRequest.objects.filter(pk=request.pk).update(status=RequestStatus.UNAVAILABLE, error_code="unavailable",
                                                                   error_message=str(exc)[:300])
                raise stream_error("__all__", StreamError.UNAVAILABLE,
                                   "The payment stream did not answer. Try again: the retry carries the same reference, "
                                   "so nothing is done twice.") from exc
            except StreamRejected as refused:
                StreamRequest.objects.filter(pk=request.pk).update(status=RequestStatus.REJECTED, error_code=refused.code[:40],
                                                                   error_message=refused.message[:300], completed_at=timezone.now())
                raise stream_error(refused.field or "__all__", refused.code, refused.message) from refused
            return result, request
    raise AssertionError("unreachable")


def _done(request: StreamRequest, reference: str = "") -> None:
    StreamRequest.objects.filter(pk=request.pk).update(status=RequestStatus.SUCCEEDED, reference=reference[:40],
                                                       completed_at=timezone.now())


def _same_entity(entity: Entity, *objects: Any) -> None:
    for obj in objects:
        if obj is not None and getattr(obj, "entity_id", None) != entity.pk:
            raise PermissionDenied("That record belongs to another entity.")


# -- AddClient (with AddEmployer first: the order rule) ----------------------------------------
def _employer_registered(*, entity: Entity, actor, client: Client) -> StreamEmployer:
    employer = client.employer
    if employer is None:
        raise stream_error("employer", StreamError.NO_EMPLOYER,
                           "The client has no employer: the stream registers an employer before its clients. "
                           "Give the client an employer first.")
    found = StreamEmployer.objects.filter(employer=employer).first()
    if found is not None:
        return found
    reference, request = _send(entity=entity, actor=actor, function=StreamFunction.ADD_EMPLOYER, target=employer,
                               call=lambda s, key: s.add_employer(key=key, employer_number=str(employer.pk), name=employer.name))
    with transaction.atomic():
        _done(request, reference)
        registered, _ = StreamEmployer.objects.get_or_create(employer=employer, defaults={"entity": entity, "reference": reference})
        audit_record(action=AuditAction.PAYSTREAM_EMPLOYER_ADDED, actor=actor, entity=entity, target=registered,
                     subject=employer.name, after={"reference": reference, "idempotency_reference": str(request.idempotency_reference)})
    return registered


def client_register(*, entity: Entity, actor, client: Client) -> StreamClient:
    """AddClient: register the client (and, first, the client's employer) at the stream. A client
    registered already is returned as it is."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, client)
    found = StreamClient.objects.filter(client=client).first()
    if found is not None:
        return found
    employer = _employer_registered(entity=entity, actor=actor, client=client)
    reference, request = _send(
        entity=entity, actor=actor, function=StreamFunction.ADD_CLIENT, target=client,
        call=lambda s, key: s.add_client(key=key, employer_reference=employer.reference, client_number=str(client.number),
                                         branch=client.branch.code, surname=client.surname, first_names=client.full_names,
                                         id_number=client.id_number, cellphone=client.cellphone,
                                         date_of_birth=client.date_of_birth, gender=client.gender))
    with transaction.atomic():
        _done(request, reference)
        registered, _ = StreamClient.objects.get_or_create(client=client, defaults={"entity": entity, "reference": reference})
        audit_record(action=AuditAction.PAYSTREAM_CLIENT_ADDED, actor=actor, entity=entity, target=client, subject=str(client.number),
                     after={"reference": reference, "idempotency_reference": str(request.idempotency_reference)})
    return registered


# -- AddClientAccount ---------------------------------------------------------------------------
def account_register(*, entity: Entity, actor, client: Client, branch_code: str = "", account_number: str = "",
                     account_type: str = "", bank_name: str = "", purpose: str = AccountPurpose.BOTH,
                     account: ClientAccount | None = None) -> StreamAccount:
    """AddClientAccount: a bank account passes the check-digit table here (clear errors naming the
    field and the branch), then the stream's own check; only then is it saved as the client's
    account and kept with the stream's reference. `account` registers one of the client's existing
    bank accounts instead of a new one."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, client)
    if account is not None:
        if account.client_id != client.pk or account.kind != AccountKind.BANK:
            raise stream_error("account", StreamError.ACCOUNTS, "Choose one of the client's bank accounts.")
        if StreamAccount.objects.filter(account=account).exists():
            raise stream_error("account", StreamError.ACCOUNTS, "This account is registered at the stream already.")
        branch_code, account_number, account_type = account.branch_code, account.account_number, account.account_type
        bank_name = bank_name or account.bank_name
    from imali.clients.models import BankAccountType

    if account_type not in BankAccountType.values:
        raise stream_error("account_type", StreamError.INVALID,
                           f"Choose the account type: {', '.join(str(label) for label in BankAccountType.labels)}.")
    checked = check_account(branch_code=branch_code, account_number=account_number, account_type=account_type)
    stream_client = client_register(entity=entity, actor=actor, client=client)
    holder = f"{client.full_names} {client.surname}".strip()
    # The target of the request is the client (the account row does not exist until the stream accepts).
    reference, request = _send(
        entity=entity, actor=actor, function=StreamFunction.ADD_CLIENT_ACCOUNT, target=client,
        call=lambda s, key: s.add_client_account(key=key, client_reference=stream_client.reference, branch_code=checked.branch_code,
                                                 account_number=checked.account_number, account_type=account_type, holder=holder))
    with transaction.atomic():
        _done(request, reference)
        if account is None:
            account = client_account_add(client=client, actor=actor, data={
                "kind": AccountKind.BANK, "purpose": purpose, "bank_name": bank_name or checked.bank,
                "branch_code": checked.branch_code, "account_number": checked.account_number, "account_type": account_type})
        registered = StreamAccount.objects.create(entity=entity, client=client, account=account, reference=reference,
                                                  cdv_bank=checked.bank)
        audit_record(action=AuditAction.PAYSTREAM_ACCOUNT_ADDED, actor=actor, entity=entity, target=registered,
                     subject=str(client.number), after={
                         "reference": reference, "branch_code": checked.branch_code,
                         "account_number_last4": checked.account_number[-4:], "cdv_bank": checked.bank,
                         "idempotency_reference": str(request.idempotency_reference)})
    return registered


# -- promissory notes ---------------------------------------------------------------------------
def _schedule_of(loan: Loan) -> list[Instalment]:
    if loan.status == LoanStatus.ACTIVE:
        rows = loan.schedule.filter(open=True, kind="scheduled").order_by("seq")
        return [Instalment(seq=r.seq, action_date=r.due_date, amount=r.amount - r.paid) for r in rows if r.amount > r.paid]
    if loan.status in (LoanStatus.APPLICATION, LoanStatus.APPROVED):
        # Not paid out yet: the schedule the loan would have if paid out today.
        from imali.loans.services import loan_schedule, local_today

        schedule = loan_schedule(loan=loan, start=local_today(loan.entity), country=loan.entity.country)
        return [Instalment(seq=r.seq, action_date=r.due_date, amount=r.amount) for r in schedule.instalments]
    raise stream_error("loan", StreamError.LOAN_STATUS,
                       f"A promissory note is made for a loan being applied for, approved or active; this one is "
                       f"{loan.get_status_display().lower()}.")


def note_create(*, entity: Entity, actor, loan: Loan, stream: str, account: StreamAccount, tracking_days: int = 0) -> PromissoryNote:
    """CreatePromissory (NAEDO, EFT or Social Grant EFT) with the loan's instalments: no card or PIN,
    so the stream's transaction fees cannot be recovered from the client."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, loan, account)
    if stream not in PaymentStreamKind.values:
        raise stream_error("stream", StreamError.INVALID, "Choose NAEDO, EFT or Social Grant EFT.")
    if account.client_id != loan.client_id or account.account.kind != AccountKind.BANK or not account.account.is_active:
        raise stream_error("account", StreamError.ACCOUNTS,
                           "Choose an active bank account of the loan's client registered at the stream.")
    if not 0 <= int(tracking_days) <= 32:
        raise stream_error("tracking_days", StreamError.INVALID, "Tracking is 0 to 32 days.")
    if PromissoryNote.objects.filter(loan=loan).exclude(status=NoteStatus.CANCELLED).exists():
        raise stream_error("loan", StreamError.NOTE_EXISTS, "The loan has a promissory note already: cancel it before making another.")
    instalments = [Instalment(seq=i.seq, action_date=i.action_date, amount=i.amount, tracking_days=int(tracking_days))
                   for i in _schedule_of(loan)]
    if not instalments:
        raise stream_error("loan", StreamError.NO_SCHEDULE, "The loan has no instalments left to collect.")
    from .mandates import collection_mandate

    # A DebiCheck loan is collected only under its approved mandate, from the mandate's account.
    mandate = collection_mandate(loan=loan, instalments=instalments)
    if mandate is not None and mandate.account_id != account.pk:
        raise stream_error("account", StreamError.ACCOUNTS, f"Collect from the account of DebiCheck mandate {mandate.contract_reference}.")
    if mandate is not None and int(tracking_days) > 10:
        raise stream_error("tracking_days", StreamError.INVALID, "DebiCheck tracking is 0 to 10 days.")
    stream_client = client_register(entity=entity, actor=actor, client=loan.client)
    (reference, status), request = _send(
        entity=entity, actor=actor, function=StreamFunction.CREATE_PROMISSORY, target=loan,
        call=lambda s, key: s.create_promissory(key=key, client_reference=stream_client.reference, account_reference=account.reference,
                                                stream=stream, instalments=instalments,
                                                mandate_reference=mandate.reference if mandate is not None else ""))
    try:
        with transaction.atomic():
            _done(request, reference)
            note = PromissoryNote.objects.create(
                entity=entity, client=loan.client, loan=loan, stream=stream, account=account, reference=reference,
                status=status.lower() if status.lower() in NoteStatus.values else NoteStatus.PENDING,
                tracking_days=int(tracking_days), total=sum((i.amount for i in instalments), Decimal(0)), created_by=actor,
                mandate=mandate)
            NoteInstalment.objects.bulk_create([
                NoteInstalment(note=note, seq=i.seq, action_date=i.action_date, amount=i.amount, tracking_days=i.tracking_days)
                for i in instalments])
            audit_record(action=AuditAction.PAYSTREAM_NOTE_CREATED, actor=actor, entity=entity, target=note,
                         subject=str(loan.client.number), after={
                             "loan_id": loan.pk, "stream": stream, "reference": reference, "instalments": len(instalments),
                             "total": str(note.total), "idempotency_reference": str(request.idempotency_reference),
                             **({"debicheck_mandate": mandate.contract_reference} if mandate is not None else {})})
    except IntegrityError:
        raise stream_error("loan", StreamError.NOTE_EXISTS, "The loan has a promissory note already.") from None
    return note


def note_cancel(*, entity: Entity, actor, note: PromissoryNote) -> PromissoryNote:
    """CancelPromissory: none of the note's instalments is presented for collection after it."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, note)
    if note.status == NoteStatus.CANCELLED:
        raise stream_error("note", StreamError.INVALID, "The promissory note is cancelled already.")
    status, request = _send(entity=entity, actor=actor, function=StreamFunction.CANCEL_PROMISSORY, target=note,
                            call=lambda s, key: s.cancel_promissory(key=key, note_reference=note.reference))
    with transaction.atomic():
        _done(request, note.reference)
        locked = PromissoryNote.objects.select_for_update().get(pk=note.pk)
        before = locked.status
        locked.status, locked.cancelled_at = NoteStatus.CANCELLED, timezone.now()
        locked.save(update_fields=["status", "cancelled_at"])
        locked.instalments.filter(status=NoteInstalmentStatus.PENDING).update(status=NoteInstalmentStatus.CANCELLED)
        audit_record(action=AuditAction.PAYSTREAM_NOTE_CANCELLED, actor=actor, entity=entity, target=locked,
                     subject=str(locked.client.number), before={"status": before}, after={"status": locked.status})
    return locked


def _printed(entity: Entity, document: Document) -> bytes:
    return render_pdf(document, entity_name=entity.name, currency=entity.currency, time_zone=entity.time_zone,
                      printed_at=timezone.now())


def note_print(*, entity: Entity, actor, note: PromissoryNote) -> tuple[Document, bytes]:
    """PrintPromissory: only for ACTIVE, PENDING or CANCELLED notes (the stream decides); a
    CANCELLED note gives the cancellation document. The note's status is updated from the stream."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, note)
    document, request = _send(entity=entity, actor=actor, function=StreamFunction.PRINT_PROMISSORY, target=note,
                              call=lambda s, key: s.print_promissory(key=key, note_reference=note.reference))
    status = document.fields.get("status", "").lower()
    with transaction.atomic():
        _done(request, note.reference)
        if status in NoteStatus.values and status != note.status:
            PromissoryNote.objects.filter(pk=note.pk).update(status=status)
            note.status = status
        audit_record(action=AuditAction.PAYSTREAM_DOCUMENT_PRINTED, actor=actor, entity=entity, target=note,
                     subject=str(note.client.number), after={"document": document.kind, "reference": note.reference})
    return document, _printed(entity, document)


def _mandate_days(mandate) -> str:
    day = mandate.collection_day
    if mandate.frequency == "monthly":
        return "on the last day of each month" if day == 99 else f"on day {day} of each month"
    if mandate.frequency == "weekly":
        return f"every {dt.date(2024, 1, day).strftime('%A')}"  # 1 January 2024 was a Monday
    return f"every second week from {mandate.first_collection_date.isoformat()}"


def _on_mandate_day(mandate, day: dt.date, country: str) -> bool:
    """Whether a DebiCheck collection on `day` keeps to the mandate's frequency and collection day:
    a change of date needs the client's authentication again (DOMAIN §7). With date adjustment
    allowed, the collection may move off a nominal day that is no business day, to the nearest
    business day before or after it."""
    import calendar

    from imali.loans.schedule import is_business_day, move_to_business_day

    def monthly(year: int, month: int) -> dt.date:
        last = calendar.monthrange(year, month)[1]
        return dt.date(year, month, last if mandate.collection_day == 99 else min(mandate.collection_day, last))

    if mandate.frequency == "monthly":
        previous, following = day.replace(day=1) - dt.timedelta(days=1), day.replace(day=28) + dt.timedelta(days=4)
        nominals = [monthly(d.year, d.month) for d in (previous, day, following)]
    else:
        # Weekly: the collection weekday (1 = Monday); fortnightly: every 14 days from the first collection.
        step = 7 if mandate.frequency == "weekly" else 14
        behind = (day.isoweekday() - mandate.collection_day) % 7 if step == 7 else (day - mandate.first_collection_date).days % 14
        nominals = [day - dt.timedelta(days=behind), day - dt.timedelta(days=behind) + dt.timedelta(days=step)]
    if day in nominals:
        return True
    if not mandate.date_adjustment:
        return False
    return any(day in (move_to_business_day(n, country=country, direction="before"),
                       move_to_business_day(n, country=country, direction="after"))
               for n in nominals if not is_business_day(n, country))


# How far past the note's last instalment (or today, if later) an instalment may be moved: a typo
# such as 9999-12-31 is refused, naming the field, instead of being sent to the stream.
ACTION_DATE_HORIZON = dt.timedelta(days=731)


def _check_action_date(entity: Entity, note: PromissoryNote, action_date: dt.date) -> None:
    """A new action date is today or later, and at most two years after the note's last instalment;
    EFT debits (EFT and Social Grant EFT) go out Monday to Friday, never on a public holiday of the
    entity's country (DOMAIN §7)."""
    import holidays

    from imali.loans.schedule import is_business_day

    today = local_today(entity)
    if action_date < today:
        raise stream_error("action_date", StreamError.INVALID, "The action date cannot be in the past.")
    last = max([today, *note.instalments.values_list("action_date", flat=True)])
    if action_date > last + ACTION_DATE_HORIZON:
        raise stream_error("action_date", StreamError.TOO_FAR_AHEAD,
                           f"The action date is at most two years after the note's last instalment: "
                           f"{(last + ACTION_DATE_HORIZON).isoformat()} at the latest.")
    if note.stream in AMOUNT_EDITABLE_STREAMS and not is_business_day(action_date, entity.country):
        holiday = holidays.country_holidays(entity.country, years=action_date.year).get(action_date)
        why = f"a public holiday ({holiday})" if holiday else action_date.strftime("a %A")
        raise stream_error("action_date", StreamError.NOT_A_BUSINESS_DAY,
                           f"{action_date.isoformat()} is {why}: {note.get_stream_display()} debits go out Monday to Friday, "
                           "not on public holidays.")


def instalment_edit(*, entity: Entity, actor, note: PromissoryNote, seq: int, action_date: dt.date | None = None,
                    amount: Any = None, tracking_days: int | None = None) -> NoteInstalment:
    """EditInstalment: action date, amount or tracking of a pending instalment; the amount only in
    the EFT and Social Grant EFT streams."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, note)
    if note.status not in (NoteStatus.ACTIVE, NoteStatus.PENDING):
        raise stream_error("note", StreamError.NOTE_NOT_EDITABLE,
                           f"Only an active or pending note's instalments can be changed; this note is "
                           f"{note.get_status_display().lower()}.")
    instalment = note.instalments.filter(seq=seq).first()
    if instalment is None:
        raise stream_error("seq", StreamError.INVALID, f"The note has no instalment number {seq}.")
    if instalment.status != NoteInstalmentStatus.PENDING:
        raise stream_error("seq", StreamError.INSTALMENT_NOT_PENDING,
                           f"Only a pending instalment can be changed; instalment {seq} is "
                           f"{instalment.get_status_display().lower()}.")
    money = None
    if amount not in (None, ""):
        if note.stream not in AMOUNT_EDITABLE_STREAMS:
            raise stream_error("amount", StreamError.AMOUNT_NOT_EDITABLE,
                               f"Amounts can be changed only in the EFT and Social Grant EFT streams; this note is "
                               f"{note.get_stream_display()}.")
        money = parse_amount(amount, field="amount")
    if tracking_days is not None and not 0 <= int(tracking_days) <= 32:
        raise stream_error("tracking_days", StreamError.INVALID, "Tracking is 0 to 32 days.")
    if action_date is not None:
        _check_action_date(entity, note, action_date)
    if action_date is None and money is None and tracking_days is None:
        raise stream_error("__all__", StreamError.INVALID, "Give a new action date, amount or tracking.")
    if note.mandate_id is not None:
        # A DebiCheck collection: within the mandate's maximum, tracking up to 10 days.
        if money is not None and money > note.mandate.maximum_collection:
            raise stream_error("amount", StreamError.ABOVE_MAXIMUM_COLLECTION,
                               f"The amount is above the maximum collection of {note.mandate.maximum_collection:,.2f} of "
                               f"DebiCheck mandate {note.mandate.contract_reference}: amend the mandate first.")
        if tracking_days is not None and int(tracking_days) > 10:
            raise stream_error("tracking_days", StreamError.INVALID, "DebiCheck tracking is 0 to 10 days.")
        if action_date is not None and not _on_mandate_day(note.mandate, action_date, entity.country):
            raise stream_error("action_date", StreamError.OUTSIDE_MANDATE,
                               f"DebiCheck mandate {note.mandate.contract_reference} collects {_mandate_days(note.mandate)}: "
                               "a collection on another day changes the mandate, which the client must authenticate "
                               "again (amend the mandate's collection day first).")
    _, request = _send(entity=entity, actor=actor, function=StreamFunction.EDIT_INSTALMENT, target=note,
                       call=lambda s, key: s.edit_instalment(key=key, note_reference=note.reference, seq=seq,
                                                             action_date=action_date, amount=money, tracking_days=tracking_days))
    with transaction.atomic():
        _done(request, note.reference)
        locked = NoteInstalment.objects.select_for_update().get(pk=instalment.pk)
        before = {"action_date": locked.action_date.isoformat(), "amount": str(locked.amount), "tracking_days": locked.tracking_days}
        if action_date is not None:
            locked.action_date = action_date
        if money is not None:
            locked.amount = money
        if tracking_days is not None:
            locked.tracking_days = int(tracking_days)
        locked.save()
        if money is not None:
            total = sum(i.amount for i in note.instalments.all())
            PromissoryNote.objects.filter(pk=note.pk).update(total=total)
        audit_record(action=AuditAction.PAYSTREAM_INSTALMENT_EDITED, actor=actor, entity=entity, target=note,
                     subject=f"{note.reference} #{seq}", before=before,
                     after={"action_date": locked.action_date.isoformat(), "amount": str(locked.amount),
                            "tracking_days": locked.tracking_days})
    return locked


# -- credit payments ----------------------------------------------------------------------------
def credit_pay(*, entity: Entity, actor, client: Client, parts: list[tuple[StreamAccount, Any]], cash_amount: Any = "0",
               loan: Loan | None = None) -> CreditPayment:
    """PayToClientAccount: to one or two of the client's registered accounts plus a cash part.
    Accepted means only that the stream validated the request. For a loan, a payment still waiting
    for the stream's answer is resent (same reference) rather than a second one made."""
    require_access(entity=entity, actor=actor)
    _require_payout_right(actor)
    _same_entity(entity, client, loan)
    if loan is not None:
        if loan.client_id != client.pk:
            raise stream_error("loan", StreamError.OTHER_ENTITY, "The loan is another client's.")
        earlier = CreditPayment.objects.filter(loan=loan).exclude(status=CreditPaymentStatus.REJECTED).first()
        if earlier is not None and earlier.status == CreditPaymentStatus.SENDING:
            return credit_payment_retry(entity=entity, actor=actor, payment=earlier)
        if earlier is not None:
            raise stream_error("loan", StreamError.PAYMENT_EXISTS, "The loan has been paid out through the stream already.")
        _loan_payable(entity, loan)
    if not 1 <= len(parts) <= 2:
        raise stream_error("account_1", StreamError.ACCOUNTS, "Pay to one or two registered accounts.")
    cleaned = []
    for n, (account, amount) in enumerate(parts, start=1):
        if account is None or account.client_id != client.pk:
            raise stream_error(f"account_{n}", StreamError.ACCOUNTS, "Choose an account registered at the stream for this client.")
        cleaned.append((account, parse_amount(amount, field=f"amount_{n}")))
    if len(cleaned) == 2 and cleaned[0][0].pk == cleaned[1][0].pk:
        raise stream_error("account_2", StreamError.ACCOUNTS, "The second account must differ from the first.")
    cash = parse_amount(cash_amount or "0", field="cash_amount", allow_zero=True)
    total = sum((a for _, a in cleaned), cash)
    parse_amount(total, field="amount_1")  # the sum too stays within the money bounds
    _require_within_limit(actor, total)
    if loan is not None and total != loan.principal:
        raise stream_error("amount_1", StreamError.ACCOUNTS,
                           f"A loan's payout is its principal, {loan.principal:,.2f}: the accounts and cash add up to {total:,.2f}.")
    if loan is not None:
        # The loan book marks the loan paid out to the first account once the stream accepts: it
        # must be able to, or money would leave with the loan still "approved".
        payout = cleaned[0][0].account
        if not payout.is_active or payout.purpose not in (AccountPurpose.PAYOUT, AccountPurpose.BOTH):
            raise stream_error("account_1", StreamError.ACCOUNTS,
                               "A loan is paid out to an active account meant for payouts: choose another first account.")
        try:  # every rule of paying it out (signature, the caps as of today, the borrower): money sent is final
            loan_payout_check(loan=loan, payout_account=payout)
        except ValidationError as exc:
            raise stream_error("loan", StreamError.LOAN_STATUS,
                               f"Loan {loan.pk} cannot be paid out: {' '.join(exc.messages)}") from None
    stream_client = client_register(entity=entity, actor=actor, client=client)
    with transaction.atomic():
        if loan is not None:
            # Two clicks (or two users) at once: the second waits for the loan row, then finds the
            # first's payment. The unique constraint backs this up.
            locked_loan = Loan.objects.select_for_update().get(pk=loan.pk)
            if CreditPayment.objects.filter(loan=locked_loan).exclude(status=CreditPaymentStatus.REJECTED).exists():
                raise stream_error("loan", StreamError.PAYMENT_EXISTS,
                                   "The loan is being paid out through the stream already (or has been).")
            _loan_payable(entity, locked_loan)
        try:
            with transaction.atomic():
                payment = CreditPayment.objects.create(
                    entity=entity, client=client, loan=loan, account_1=cleaned[0][0], amount_1=cleaned[0][1],
                    account_2=cleaned[1][0] if len(cleaned) == 2 else None,
                    amount_2=cleaned[1][1] if len(cleaned) == 2 else Decimal(0),
                    cash_amount=cash, total=total, created_by=actor)
        except IntegrityError:
            raise stream_error("loan", StreamError.PAYMENT_EXISTS,
                               "The loan is being paid out through the stream already (or has been).") from None
        # The request row shares the payment's idempotency reference, written before anything is sent.
        StreamRequest.objects.create(entity=entity, function=StreamFunction.PAY_TO_CLIENT_ACCOUNT, object_type=payment._meta.label,
                                     object_id=str(payment.pk), idempotency_reference=payment.idempotency_reference,
                                     actor=actor if getattr(actor, "pk", None) else None)
        audit_record(action=AuditAction.PAYSTREAM_PAYMENT_REQUESTED, actor=actor, entity=entity, target=payment,
                     subject=str(client.number), after={"total": str(total), "cash_amount": str(cash), "loan_id": getattr(loan, "pk", None),
                                                        "idempotency_reference": str(payment.idempotency_reference)})
    return _send_payment(entity=entity, actor=actor, payment=payment, client_reference=stream_client.reference)


def _require_payout_right(actor) -> None:
    """Paying money out is disbursing, whatever the channel: the stream's right alone is not enough."""
    if not actor.has_right(Right.DISBURSE_LOANS):
        raise PermissionDenied(f"You need the right '{Right.DISBURSE_LOANS.label}' to pay money out through the stream.")


def _require_within_limit(actor, total: Decimal) -> None:
    limit = getattr(actor, "disbursement_limit", None) or Decimal(0)
    if total > limit:
        raise stream_error("amount_1", StreamError.OVER_DISBURSEMENT_LIMIT,
                           f"The payout of {total:,.2f} is above your disbursement limit of {limit:,.2f}.")


def _loan_payable(entity: Entity, loan: Loan) -> None:
    """Only an approved loan is paid out, and only once: not while (or after) the mobile-money
    disbursement pays it."""
    if loan.status != LoanStatus.APPROVED:
        raise stream_error("loan", StreamError.LOAN_STATUS,
                           f"Loan {loan.pk} is {loan.get_status_display().lower()}: only an approved loan is paid out.")
    mobile = (MobileDisbursement.objects.filter(entity=entity, loan=loan)
              .filter(status__in=[*OPEN_DISBURSEMENT_STATUSES, MobileDisbursementStatus.SUCCESSFUL]).first())
    if mobile is not None:
        raise stream_error("loan", StreamError.PAYMENT_EXISTS,
                           f"Loan {loan.pk} has a mobile-money payout that is {mobile.get_status_display().lower()}: "
                           "cancel it before paying through the stream.")


def credit_payment_retry(*, entity: Entity, actor, payment: CreditPayment) -> CreditPayment:
    """Resend a payment that has no recorded answer (a crash or an outage after sending), with its
    own idempotency reference: the stream answers from its record if it had acted."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, payment)
    if payment.status != CreditPaymentStatus.SENDING:
        return payment
    # Resending pays the same money: the same right and limit as the first send.
    _require_payout_right(actor)
    _require_within_limit(actor, payment.total)
    stream_client = client_register(entity=entity, actor=actor, client=payment.client)
    return _send_payment(entity=entity, actor=actor, payment=payment, client_reference=stream_client.reference)


def _send_payment(*, entity: Entity, actor, payment: CreditPayment, client_reference: str) -> CreditPayment:
    request = StreamRequest.objects.get(idempotency_reference=payment.idempotency_reference)
    parts = [(payment.account_1.reference, payment.amount_1)]
    if payment.account_2_id:
        parts.append((payment.account_2.reference, payment.amount_2))
    try:
        reference, request = _send(entity=entity, actor=actor, function=StreamFunction.PAY_TO_CLIENT_ACCOUNT, target=payment,
                                   request=request,
                                   call=lambda s, key: s.pay_to_client_account(key=key, client_reference=client_reference, parts=parts,
                                                                               cash_amount=payment.cash_amount))
    except ValidationError as error:
        if getattr(error, "error_dict", None) and StreamRequest.objects.filter(pk=request.pk, status=RequestStatus.REJECTED).exists():
            message = "; ".join(e.message for errs in error.error_dict.values() for e in errs)
            with transaction.atomic():
                CreditPayment.objects.filter(pk=payment.pk).update(status=CreditPaymentStatus.REJECTED, rejection=message[:200])
                audit_record(action=AuditAction.PAYSTREAM_PAYMENT_REJECTED, actor=actor, entity=entity, target=payment,
                             subject=str(payment.client.number), after={"rejection": message[:200]})
        raise
    with transaction.atomic():
        _done(request, reference)
        locked = CreditPayment.objects.select_for_update().get(pk=payment.pk)
        locked.status, locked.reference = CreditPaymentStatus.ACCEPTED, reference
        if locked.loan_id:
            # The stream confirmed the payout: now (and only now) the loan is paid out on the book.
            try:
                with transaction.atomic():
                    loan_disburse(loan=locked.loan, actor=actor, payout_account=locked.account_1.account,
                                  disbursed_on=local_today(entity))
            except ValidationError as exc:
                # Money has left: keep the payment, and show a person what to resolve.
                locked.problem = ("Paid, but the loan could not be marked paid out: " + " ".join(exc.messages))[:200]
        locked.save(update_fields=["status", "reference", "problem"])
        audit_record(action=AuditAction.PAYSTREAM_PAYMENT_ACCEPTED, actor=actor, entity=entity, target=locked,
                     subject=str(locked.client.number), before={"status": CreditPaymentStatus.SENDING},
                     after={"status": locked.status, "reference": reference, "loan_id": locked.loan_id,
                            "problem": locked.problem})
    return locked


def client_credit_print(*, entity: Entity, actor, payment: CreditPayment) -> tuple[Document, bytes]:
    """PrintClientCredit: the payment's status at the stream (not at the receiving bank)."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, payment)
    if payment.status not in (CreditPaymentStatus.ACCEPTED, CreditPaymentStatus.RETURNED):
        raise stream_error("payment", StreamError.NOT_PRINTABLE, "Only a payment the stream accepted has a confirmation to print.")
    document, request = _send(entity=entity, actor=actor, function=StreamFunction.PRINT_CLIENT_CREDIT, target=payment,
                              call=lambda s, key: s.print_client_credit(key=key, payment_reference=payment.reference))
    with transaction.atomic():
        _done(request, payment.reference)
        if document.fields.get("status", "").upper() == "RETURNED":
            _payment_returned(entity=entity, actor=actor, payment=payment, reason=document.fields.get("returnReason", ""))
        audit_record(action=AuditAction.PAYSTREAM_DOCUMENT_PRINTED, actor=actor, entity=entity, target=payment,
                     subject=str(payment.client.number), after={"document": document.kind, "reference": payment.reference})
    return document, _printed(entity, document)


# A payment return comes "on the payment request date or a few days later": payments younger than
# this are asked about by the task.
RETURN_WINDOW_DAYS = 10


def credit_payment_check(*, entity: Entity, actor, payment: CreditPayment) -> CreditPayment:
    """Ask the stream whether an accepted payment came back from the receiving bank (the client
    credit confirmation carries the payment's status; nothing is printed). A return is recorded
    once, with its reason, for a person to resolve. The task asks about recent payments by itself."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, payment)
    if payment.status != CreditPaymentStatus.ACCEPTED:
        return payment
    document, request = _send(entity=entity, actor=actor, function=StreamFunction.PRINT_CLIENT_CREDIT, target=payment,
                              call=lambda s, key: s.print_client_credit(key=key, payment_reference=payment.reference))
    with transaction.atomic():
        _done(request, payment.reference)
        if document.fields.get("status", "").upper() == "RETURNED":
            _payment_returned(entity=entity, actor=actor, payment=payment, reason=document.fields.get("returnReason", ""))
    return payment


def _payment_returned(*, entity: Entity, actor, payment: CreditPayment, reason: str) -> None:
    """The stream reports the receiving bank returned the payment: the client did not get the
    money. Recorded once, with the reason, for a person to resolve (pay again to another account
    or reverse the loan): the loan book is not changed behind their back."""
    locked = CreditPayment.objects.select_for_update().get(pk=payment.pk)
    if locked.status == CreditPaymentStatus.RETURNED:
        return
    reason = reason or "no reason given"
    problem = f"Returned by the receiving bank ({reason})."
    if locked.loan_id:
        problem += f" Loan {locked.loan_id} was marked paid out: the client has not received the money."
    before = locked.status
    locked.status, locked.problem = CreditPaymentStatus.RETURNED, problem[:200]
    locked.save(update_fields=["status", "problem"])
    payment.status, payment.problem = locked.status, locked.problem
    audit_record(action=AuditAction.PAYSTREAM_PAYMENT_REJECTED, actor=actor, entity=entity, target=locked,
                 subject=str(locked.client.number), before={"status": before},
                 after={"status": locked.status, "problem": locked.problem})


# -- wallets ------------------------------------------------------------------------------------
def wallet_create(*, entity: Entity, actor, client: Client) -> WalletRequest:
    """CreateWallet: the client's cellphone must be set and unique among the branch's clients, and
    the date of birth and gender set. The stream creates the wallet later (normally within 10
    minutes); `wallet_refresh` (polled by a task and the client screen) brings it in."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, client)
    errors: dict[str, list[ValidationError]] = {}
    if not client.cellphone:
        errors["cellphone"] = [ValidationError("The client needs a cellphone number for a wallet.", code=StreamError.WALLET_FIELDS)]
    elif Client.objects.filter(entity=entity, branch=client.branch_id, cellphone=client.cellphone).exclude(pk=client.pk).exists():
        errors["cellphone"] = [ValidationError("Another client of this branch has the same cellphone number: a wallet needs a "
                                               "number unique in the branch.", code=StreamError.CELLPHONE_NOT_UNIQUE)]
    if client.date_of_birth is None:
        errors["date_of_birth"] = [ValidationError("The client's date of birth is required for a wallet.", code=StreamError.WALLET_FIELDS)]
    if client.gender not in GENDER_CODES:
        errors["gender"] = [ValidationError("The client's gender is required for a wallet.", code=StreamError.WALLET_FIELDS)]
    if errors:
        raise ValidationError(errors)
    if WalletRequest.objects.filter(client=client).exclude(status=WalletStatus.FAILED).exists():
        raise stream_error("client", StreamError.WALLET_EXISTS, "The client has a wallet, or one is being created.")
    stream_client = client_register(entity=entity, actor=actor, client=client)
    reference, request = _send(
        entity=entity, actor=actor, function=StreamFunction.CREATE_WALLET, target=client,
        call=lambda s, key: s.create_wallet(key=key, client_reference=stream_client.reference, cellphone=client.cellphone,
                                            date_of_birth=client.date_of_birth, gender=GENDER_CODES[client.gender]))
    try:
        with transaction.atomic():
            _done(request, reference)
            wallet = WalletRequest.objects.create(entity=entity, client=client, cellphone=client.cellphone, reference=reference,
                                                  created_by=actor)
            audit_record(action=AuditAction.PAYSTREAM_WALLET_REQUESTED, actor=actor, entity=entity, target=wallet,
                         subject=str(client.number), after={"reference": reference})
            transaction.on_commit(lambda: follow_later("wallet", wallet.pk))
    except IntegrityError:
        raise stream_error("client", StreamError.WALLET_EXISTS, "A wallet is being created for the client already.") from None
    return wallet


# -- status asked by a person, and followed in the background ----------------------------------
# The screens' polls only read the database; what changes at the stream is brought in by the
# consumer (a follow-up every FOLLOW_SECONDS for a while after the request, then the per-minute
# sweep) or by a person's explicit "Ask the stream now" — at most once per ASK_MIN_SECONDS for the
# same client or loan, whoever asks, so a page left open or a button pressed repeatedly cannot
# hammer the stream.
ASK_MIN_SECONDS = 15
FOLLOW_SECONDS = 5
FOLLOW_ROUNDS = 36  # three minutes of follow-ups; the per-minute sweep covers the rest


def follow_later(kind: str, pk: int, round_: int = 0) -> None:
    """Have the consumer ask the stream about a wallet or mandate in FOLLOW_SECONDS (tasks.py)."""
    from . import tasks

    task = tasks.paystream_wallet_follow if kind == "wallet" else tasks.paystream_mandate_follow
    task.schedule(args=(pk, round_), delay=FOLLOW_SECONDS)


def status_ask_begin(*, entity: Entity, actor, target: Any, subject: str, function: StreamFunction, asked: list) -> None:
    """Inside the caller's transaction: lock `target` (the loan or client the limit is counted
    for), then refuse when someone asked about it within ASK_MIN_SECONDS, else write the audit
    entry that also marks the time. A concurrent second ask about the same target, whichever of
    its rows it names, waits on that lock and then sees the entry."""
    type(target).objects.select_for_update().filter(pk=target.pk).exists()
    now = timezone.now()
    last = (AuditEntry.objects.filter(entity=entity, action=AuditAction.PAYSTREAM_STATUS_ASKED, object_type=target._meta.label,
                                      object_id=str(target.pk), created_at__gte=now - dt.timedelta(seconds=ASK_MIN_SECONDS))
            .order_by("-created_at").values_list("created_at", flat=True).first())
    if last is not None:
        wait = math.ceil(ASK_MIN_SECONDS - (now - last).total_seconds())
        raise TooSoon("__all__", f"The stream was asked less than {ASK_MIN_SECONDS} seconds ago; its answer shows here by itself. "
                                 "Ask again in a moment if it has not.", code=StreamError.ASKED_RECENTLY.value, retry_after=wait)
    audit_record(action=AuditAction.PAYSTREAM_STATUS_ASKED, actor=actor, entity=entity, target=target, subject=subject,
                 after={"function": str(function), "asked": asked})


def wallets_ask(*, entity: Entity, actor, client: Client) -> list[WalletRequest]:
    """A person's "Ask the stream now" about the client's wallets being created (a POST: the
    client page's poll only reads). Needs the stream's right; rate-limited and audited."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, client)
    with transaction.atomic():
        waiting = list(WalletRequest.objects.filter(entity=entity, client=client, status=WalletStatus.REQUESTED).order_by("id"))
        if not waiting:
            return []
        status_ask_begin(entity=entity, actor=actor, target=client, subject=str(client.number),
                         function=StreamFunction.WALLET_STATUS, asked=[w.reference for w in waiting])
    return [wallet_refresh(entity=entity, actor=actor, wallet=wallet) for wallet in waiting]


def wallet_refresh(*, entity: Entity, actor, wallet: WalletRequest) -> WalletRequest:
    """Ask the stream whether a requested wallet exists yet; once it does, it joins the client's
    accounts (a wallet, not a bank account) and can receive credit payments."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, wallet)
    if wallet.status != WalletStatus.REQUESTED:
        return wallet
    state, request = _send(entity=entity, actor=actor, function=StreamFunction.WALLET_STATUS, target=wallet,
                           call=lambda s, key: s.wallet_status(key=key, wallet_reference=wallet.reference))
    with transaction.atomic():
        _done(request, wallet.reference)
        locked = WalletRequest.objects.select_for_update().get(pk=wallet.pk)
        if locked.status != WalletStatus.REQUESTED or state.status == "requested":
            return locked
        if state.status == "created":
            # The client's accounts keep a wallet under its cellphone number (what the wallet is
            # associated with); the stream's own wallet number is named with the provider.
            account = client_account_add(client=locked.client, actor=actor, data={
                "kind": AccountKind.WALLET, "purpose": AccountPurpose.PAYOUT,
                "wallet_provider": f"Payment stream {state.wallet_number}"[:40], "wallet_number": locked.cellphone})
            locked.account = StreamAccount.objects.create(entity=entity, client=locked.client, account=account,
                                                          reference=state.account_reference)
            locked.status, locked.wallet_number = WalletStatus.CREATED, state.wallet_number
        else:
            locked.status, locked.failure = WalletStatus.FAILED, state.failure[:200]
        locked.completed_at = timezone.now()
        locked.save()
        audit_record(action=AuditAction.PAYSTREAM_WALLET_UPDATED, actor=actor, entity=entity, target=locked,
                     subject=str(locked.client.number), before={"status": WalletStatus.REQUESTED},
                     after={"status": locked.status, "wallet_number": locked.wallet_number, "failure": locked.failure})
    return locked


# -- card-issue receipts ------------------------------------------------------------------------
def card_issue_receipt_print(*, entity: Entity, actor, client: Client, card_number: str) -> tuple[CardIssueReceipt, bytes]:
    """PrintCardIssueReceipt: only for a card the stream assigned to the client."""
    require_access(entity=entity, actor=actor)
    _same_entity(entity, client)
    card = "".join(ch for ch in (card_number or "") if ch not in " -")
    if not (card.isascii() and card.isdigit() and 12 <= len(card) <= 19):
        raise stream_error("card_number", StreamError.INVALID, "Enter the card number: 12 to 19 digits.")
    stream_client = StreamClient.objects.filter(client=client).first()
    if stream_client is None:
        raise stream_error("client", StreamError.NOT_REGISTERED, "The client is not registered at the stream, so has no card there.")
    document, request = _send(entity=entity, actor=actor, function=StreamFunction.PRINT_CARD_ISSUE_RECEIPT, target=client,
                              call=lambda s, key: s.print_card_issue_receipt(key=key, client_reference=stream_client.reference,
                                                                             card_number=card))
    with transaction.atomic():
        _done(request, stream_client.reference)
        receipt = CardIssueReceipt.objects.create(entity=entity, client=client, card_last_four=card[-4:],
                                                  reference=document.reference, printed_by=actor)
        audit_record(action=AuditAction.PAYSTREAM_DOCUMENT_PRINTED, actor=actor, entity=entity, target=receipt,
                     subject=str(client.number), after={"document": document.kind, "card_last_four": card[-4:]})
    return receipt, _printed(entity, document)


# -- collections into the loan book -------------------------------------------------------------
# The import itself (set-based, and one result at a time) lives in .collections.
COLLECTIONS_PAGE = 1000


def collections_fetch(*, entity: Entity, actor, system: bool = False) -> ImportSummary:
    """Read the stream's results feed from where the entity left off and import it, page by page.
    The position moves only after a page is imported; a page fetched again imports nothing twice.
    `system`: the scheduled task, which acts for the entity with the stream's credentials rather
    than as a person (a person needs the right)."""
    if not system:
        require_access(entity=entity, actor=actor)
    elif not entity.has_module(Module.PAYMENT_STREAMS):
        return ImportSummary()
    total = ImportSummary()
    with stream_for(entity) as stream:
        while True:
            after = StreamSettings.objects.filter(entity=entity).values_list("collections_after", flat=True).get()
            request = StreamRequest.objects.create(entity=entity, function=StreamFunction.COLLECTION_RESULTS,
                                                   actor=actor if getattr(actor, "pk", None) else None)
            StreamRequest.objects.filter(pk=request.pk).update(attempts=1)
            try:
                outcomes, malformed, last = stream.collection_results(key=str(request.idempotency_reference), after=after,
                                                                      limit=COLLECTIONS_PAGE)
            except StreamUnavailable as exc:
                StreamRequest.objects.filter(pk=request.pk).update(status=RequestStatus.UNAVAILABLE, error_message=str(exc)[:300])
                raise stream_error("__all__", StreamError.UNAVAILABLE, "The payment stream did not answer; the results are "
                                                                       "fetched again from the same place next time.") from exc
            except StreamRejected as refused:
                StreamRequest.objects.filter(pk=request.pk).update(status=RequestStatus.REJECTED, error_code=refused.code[:40],
                                                                   error_message=refused.message[:300])
                raise stream_error(refused.field or "__all__", refused.code, refused.message) from refused
            # The page's own audit entry below records the feed positions with the summary.
            summary = collections_import(entity=entity, actor=actor, outcomes=outcomes, audit=False)
            summary.malformed = len(malformed)
            with transaction.atomic():
                _done(request, str(last))
                if malformed:
                    # Kept once per feed position (a page fetched again adds nothing).
                    CollectionProblem.objects.bulk_create(
                        [CollectionProblem(entity=entity, position=m.position, reference=m.reference, reason=m.reason, raw=m.raw)
                         for m in malformed], ignore_conflicts=True)
                StreamSettings.objects.filter(entity=entity, collections_after=after).update(collections_after=last)
                if outcomes or malformed:
                    audit_record(action=AuditAction.PAYSTREAM_COLLECTIONS_IMPORTED, actor=actor, entity=entity,
                                 subject=f"{after + 1}-{last}", after=summary.as_dict())
            for name, value in summary.as_dict().items():
                setattr(total, name, getattr(total, name) + value)
            if len(outcomes) + len(malformed) < COLLECTIONS_PAGE:
                return total
