"""Every write of the automatic SMS and the MIS SMS: their setups (audited) and the runs of a day.

A day's run is claimed under the run row's lock (`DailyRun`): a consumer takes a lease, and a
second consumer finds the lease held and leaves the day alone. Each message carries a key naming
its client (or user), type and event (`auto:arrears:c42:2026-11-30:0`), and the outbox takes a key
once (unique per entity): a rerun, a consumer that died half-way, or two consumers whose leases
overlapped queue nothing twice. Messages go out as "System" (no user: `created_by` empty).
"""

from __future__ import annotations

import datetime as dt
import logging
import traceback
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from imali.clients.models import NO_ACCOUNT_NOTICES
from imali.core.audit import apply_changes, audit_record
from imali.core.formatting import format_money
from imali.core.models import AuditAction
from imali.loans.models import DISBURSED_STATUSES, Loan
from imali.messaging.models import MessageType, ProcessLog
from imali.messaging.policy import message_type_enabled
from imali.messaging.segments import segment_count
from imali.messaging.services import (
    LOAN_FIELDS,
    BulkRecipient,
    merge_values,
    messages_enqueue_bulk,
    template_text,
)
from imali.messaging.templating import fields_used
from imali.tenancy.models import Entity, User
from imali.tenancy.rights import Right

from . import selectors
from .errors import NO_HOME_BRANCH, STALE_ON_CATCH_UP, TYPE_DISABLED, ReminderError
from .models import AutomaticSetup, DailyRun, MisRecipient, MisSetup, MisStream, RunKind

logger = logging.getLogger(__name__)

# How far back missed days are caught up (a consumer down for longer sends the last week only).
CATCH_UP_DAYS = 7
# A run's claim: another consumer leaves the day alone until it lapses (renewed after each type).
LEASE = dt.timedelta(minutes=30)
# A day whose run keeps failing (no credits, a database fault) is given up after this many tries,
# so the days after it are not held back for ever; its error stays on the run.
MAX_ATTEMPTS = 6


# --- Setups -----------------------------------------------------------------------------------

def automatic_setup_get(*, entity: Entity) -> AutomaticSetup:
    setup, _ = AutomaticSetup.objects.get_or_create(entity=entity)
    return setup


def mis_setup_get(*, entity: Entity) -> MisSetup:
    setup, _ = MisSetup.objects.get_or_create(entity=entity)
    return setup


GENERAL_FIELDS = ("run_at", "due_enabled", "due_days_before", "received_enabled", "birthday_enabled")
ARREARS_FIELDS = ("arrears_enabled", "arrears_minimum", "arrears_repeat_days")


def _check_actor(actor, entity: Entity, right: Right) -> None:
    if actor.entity_id != entity.pk or not actor.has_right(right):
        raise PermissionDenied(f"You need the {right.label} right of this entity.")


def _bounded(changes: Mapping[str, object]) -> None:
    """The bounds the models declare, checked here too so a service caller (the API) gets the
    field named, never a database error."""
    errors: dict[str, list[ValidationError]] = {}
    for name, value in changes.items():
        field = AutomaticSetup._meta.get_field(name)
        try:
            field.clean(value, None)
        except ValidationError as exc:
            errors[name] = [ValidationError(m, code=ReminderError.OUT_OF_RANGE.value) for m in exc.messages]
    if errors:
        raise ValidationError(errors)


def automatic_setup_update(*, actor, entity: Entity, data: Mapping[str, object]) -> AutomaticSetup:
    """Change the automatic SMS setup. The arrears settings need "MAXSMS Payment Arrears Setup",
    the rest "MAXSMS General Setup"; only the fields in `data` change. Audited with before and after."""
    general = {k: data[k] for k in GENERAL_FIELDS if k in data}
    arrears = {k: data[k] for k in ARREARS_FIELDS if k in data}
    if general:
        _check_actor(actor, entity, Right.MAXSMS_GENERAL_SETUP)
    if arrears:
        _check_actor(actor, entity, Right.MAXSMS_ARREARS_SETUP)
    if not general and not arrears:
        _check_actor(actor, entity, Right.MAXSMS_GENERAL_SETUP)
    changes = {**general, **arrears}
    if "arrears_minimum" in changes and changes["arrears_minimum"] is not None:
        changes["arrears_minimum"] = Decimal(str(changes["arrears_minimum"]))
    _bounded(changes)
    with transaction.atomic():
        automatic_setup_get(entity=entity)
        setup = AutomaticSetup.objects.select_for_update().get(entity=entity)
        changes["updated_by"] = actor
        before, after = _changed(setup, changes)
        if after:
            audit_record(action=AuditAction.AUTOMATIC_SMS_CHANGED, actor=actor, entity=entity, target=setup,
                         subject="automatic SMS", before=before, after=after)
    return setup


def mis_setup_update(*, actor, entity: Entity, data: Mapping[str, object],
                     recipients: Mapping[str, list[int]] | None = None) -> MisSetup:
    """Change the MIS SMS setup and, for each stream in `recipients`, its list of users (ids of
    active users of this entity with a cellphone). Needs "MAXSMS General Setup". Audited."""
    _check_actor(actor, entity, Right.MAXSMS_GENERAL_SETUP)
    fields = ("run_at", *(f"{s}_enabled" for s in MisStream.values))
    changes = {k: data[k] for k in fields if k in data}
    wanted: dict[str, set[int]] = {}
    errors: dict[str, list[ValidationError]] = {}
    for stream, ids in (recipients or {}).items():
        if stream not in MisStream.values:
            raise ValidationError({"stream": [ValidationError(f"Unknown MIS stream '{stream}'.", code="unknown_stream")]})
        ids = {int(i) for i in ids}
        users = {u.pk: u for u in User.objects.filter(pk__in=ids)}
        field = f"{stream}_recipients"
        for user_id in sorted(ids):
            user = users.get(user_id)
            if user is None or user.entity_id != entity.pk or not user.is_active:
                errors.setdefault(field, []).append(ValidationError(
                    f"User {user_id} is not an active user of this entity.", code=ReminderError.RECIPIENT_OTHER_ENTITY.value))
            elif not user.cellphone:
                errors.setdefault(field, []).append(ValidationError(
                    f"{user} has no cellphone number: add one on the user first.",
                    code=ReminderError.RECIPIENT_NO_CELLPHONE.value))
        wanted[stream] = ids
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        mis_setup_get(entity=entity)
        setup = MisSetup.objects.select_for_update().get(entity=entity)
        changes["updated_by"] = actor
        before, after = _changed(setup, changes)
        for stream, ids in wanted.items():
            current = set(MisRecipient.objects.filter(entity=entity, stream=stream).values_list("user_id", flat=True))
            if current == ids:
                continue
            MisRecipient.objects.filter(entity=entity, stream=stream).exclude(user_id__in=ids).delete()
            MisRecipient.objects.bulk_create([MisRecipient(entity=entity, stream=stream, user_id=i) for i in ids - current])
            before[f"{stream}_recipients"], after[f"{stream}_recipients"] = sorted(current), sorted(ids)
        if after:
            audit_record(action=AuditAction.MIS_SMS_CHANGED, actor=actor, entity=entity, target=setup,
                         subject="MIS SMS", before=before, after=after)
    return setup


def _changed(locked, changes: Mapping[str, object]) -> tuple[dict, dict]:
    """Apply the changes to the locked setup; the before and after of what changed, JSON-ready
    (the send time as "HH:MM"), without the bookkeeping fields."""
    before, after = apply_changes(locked, changes, exclude=("updated_at", "id", "entity", "updated_by"))
    for values in (before, after):
        for name, value in values.items():
            if isinstance(value, dt.time):
                values[name] = value.strftime("%H:%M")
    return before, after


# --- Which days are due -------------------------------------------------------------------------

def _local_now(entity: Entity, now: dt.datetime) -> dt.datetime:
    return now.astimezone(zoneinfo.ZoneInfo(entity.time_zone))


def days_due(*, entity: Entity, kind: str, run_at: dt.time, now: dt.datetime) -> list[dt.date]:
    """The local days whose run is due, oldest first: from the day after the last finished run (at
    most CATCH_UP_DAYS back) to today once `run_at` has passed, else to yesterday. An entity that
    never ran starts with the latest such day."""
    local = _local_now(entity, now)
    ready = local.date() if local.time() >= run_at else local.date() - dt.timedelta(days=1)
    last = DailyRun.objects.filter(entity=entity, kind=kind, finished_at__isnull=False).aggregate(
        last=Max("business_date"))["last"]
    if last is None:
        first = ready
    else:
        first = max(last + dt.timedelta(days=1), ready - dt.timedelta(days=CATCH_UP_DAYS - 1))
    return [first + dt.timedelta(days=n) for n in range((ready - first).days + 1)]


# --- Claiming a day ------------------------------------------------------------------------------

def run_claim(*, entity: Entity, kind: str, business_date: dt.date, now: dt.datetime | None = None) -> DailyRun | None:
    """Take the day's run for this consumer: None when it is finished or another consumer holds
    it. The row is locked while the lease is checked and taken (on SQLite the database's write
    lock does the same), so two consumers never both take it."""
    now = now or timezone.now()
    with transaction.atomic():
        DailyRun.objects.get_or_create(entity=entity, kind=kind, business_date=business_date)
        run = DailyRun.objects.select_for_update().get(entity=entity, kind=kind, business_date=business_date)
        if run.finished_at is not None or (run.lease_until is not None and run.lease_until > now):
            return None
        run.lease_owner = uuid.uuid4().hex
        run.lease_until = now + LEASE
        run.attempts += 1
        run.started_at = run.started_at or now
        run.save(update_fields=["lease_owner", "lease_until", "attempts", "started_at"])
    return run


def _run_progress(run: DailyRun) -> None:
    """Keep what is done so far and renew the lease, if this consumer still holds it."""
    DailyRun.objects.filter(pk=run.pk, lease_owner=run.lease_owner).update(
        results=run.results, lease_until=timezone.now() + LEASE)


def _fault(run: DailyRun, exc: Exception) -> str:
    """Log a run's unexpected fault and give the run's error text. Only the exception's class and
    where it was raised are logged and kept: its message may carry a client's data."""
    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" if frame else "?"
    logger.error("Daily %s SMS run %s (entity %s, %s) failed on attempt %s: %s at %s", run.kind, run.pk,
                 run.entity_id, run.business_date.isoformat(), run.attempts, type(exc).__name__, where)
    return f"An unexpected error stopped the run ({type(exc).__name__}); it is tried again, at most {MAX_ATTEMPTS} times."


def _run_end(run: DailyRun, *, error: str = "") -> DailyRun:
    """Finish the run (or, after an error, free it for a retry unless it has had MAX_ATTEMPTS)."""
    finished = not error or run.attempts >= MAX_ATTEMPTS
    now = timezone.now()
    with transaction.atomic():
        DailyRun.objects.filter(pk=run.pk).update(
            results=run.results, error=error[:300], lease_until=None, lease_owner="",
            finished_at=now if finished else None)
        run.refresh_from_db()
        if finished:
            audit_record(action=AuditAction.DAILY_SMS_RUN, entity=run.entity, target=run,
                         subject=f"{run.kind} {run.business_date.isoformat()}",
                         after={"results": run.results, "error": run.error or None, "attempts": run.attempts})
    return run


# --- Policy ---------------------------------------------------------------------------------------

def type_enabled(entity: Entity, message_type: str) -> bool:
    """Whether the entity sends this message type at all (General Setup: Enable SMS types). A type
    switched off is left out of the run (and counted), not an error that would hold the day back."""
    return message_type_enabled(entity=entity, message_type=message_type)


def _log_left_out(*, entity: Entity, message_type: str, kind: str, criteria: dict, count: int, reason: str,
                  why: str) -> ProcessLog:
    """The process-log entry of a part left out (the entity switched the type off, or a caught-up
    day's reminder is stale): nothing queued, every recipient counted as skipped for `reason`."""
    now = timezone.now()
    log = ProcessLog.objects.create(entity=entity, actor=None, kind=kind, message_type=message_type, criteria=criteria,
                                    skipped=count, skipped_reasons={reason: count} if count else {}, errors=[why])
    ProcessLog.objects.filter(pk=log.pk).update(finished_at=now)
    return log


def _send(*, run: DailyRun, entity: Entity, message_type: str, text: str, recipients: Iterator[BulkRecipient],
          kind: str, criteria: dict, result_key: str, stale: str = "") -> None:
    """Queue one part of the day (a type, or a MIS stream) and note its result on the run. A part
    already done by an earlier attempt is sent again all the same: its keys skip what is queued.
    `stale`: why this part of a caught-up day would be wrong now; it is counted, not sent."""
    criteria = {**criteria, "business_date": run.business_date.isoformat(), "run": run.pk}
    if stale:
        count = sum(1 for _ in recipients)
        log = _log_left_out(entity=entity, message_type=message_type, kind=kind, criteria=criteria, count=count,
                            reason=STALE_ON_CATCH_UP, why=stale)
        run.results[result_key] = {"queued": 0, "skipped": count, "skipped_reasons": {STALE_ON_CATCH_UP: count} if count
                                   else {}, "stale": stale, "process_log": log.pk}
    elif not type_enabled(entity, message_type):
        count = sum(1 for _ in recipients)
        log = _log_left_out(entity=entity, message_type=message_type, kind=kind, criteria=criteria, count=count,
                            reason=TYPE_DISABLED, why=f"{MessageType(message_type).label} is switched off for this entity.")
        run.results[result_key] = {"disabled": True, "skipped": count, "process_log": log.pk}
    else:
        log = messages_enqueue_bulk(entity=entity, actor=None, message_type=message_type, text=text,
                                    recipients=recipients, criteria=criteria, kind=kind)
        run.results[result_key] = {"queued": log.queued, "skipped": log.skipped, "skipped_reasons": log.skipped_reasons,
                                   "credits": log.credits, "process_log": log.pk}
    _run_progress(run)


# --- Automatic SMS --------------------------------------------------------------------------------

def _money(entity: Entity, cents: int) -> str:
    return format_money(Decimal(cents).scaleb(-2), entity.currency)


def _loan_values(*, entity: Entity, as_of: dt.date, text: str) -> dict[int, dict[str, object]] | None:
    """The loan merge fields of every client on the book, set-based (the book's snapshot and one
    query for each client's latest loan), only when the template names one; else None."""
    if not LOAN_FIELDS.intersection(fields_used(text)):
        return None
    from imali.loans.selectors import portfolio_snapshot

    values: dict[int, dict[str, object]] = {}
    latest = (Loan.objects.filter(entity=entity, status__in=DISBURSED_STATUSES).order_by("client_id", "disbursed_on", "id")
              .values_list("client_id", "principal", "instalment_amount"))
    for cid, principal, instalment in latest.iterator(chunk_size=5000):  # the last row of each client wins
        values[cid] = {"Loan Amount": format_money(principal, entity.currency),
                       "Instalment Amount": format_money(instalment, entity.currency)}
    for cid, figures in portfolio_snapshot(entity=entity, as_of=as_of).items():
        v = values.setdefault(cid, {})
        if figures.open_loans:
            v["Client Total Outstanding Loan Amount"] = format_money(figures.outstanding, entity.currency)
            v["Client Total Settlement Amount"] = format_money(figures.settlement, entity.currency)
            if figures.next_due_date is not None:
                v["Next Date Due"] = figures.next_due_date.isoformat()
                v["Next Amount Due"] = format_money(figures.next_amount_due, entity.currency)
        v["Change"] = format_money(figures.change_available, entity.currency)
        v["Non-loan Debits"] = format_money(figures.non_loan_debt, entity.currency)
    return values


def _recipients(*, entity: Entity, day: dt.date, clients, key: Callable[[int], str | None],
                extra: Callable[[int], Mapping[str, object]] | None = None,
                loan_values: dict[int, dict[str, object]] | None = None) -> Iterator[BulkRecipient]:
    """One message per client of the queryset (read in one streamed query), keyed by `key`."""
    common = merge_values(entity=entity, today=day)
    for cid, number, name, full_names, surname, cellphone, branch_name, branch_tel in selectors.client_rows(clients):
        event_key = key(cid)
        if event_key is None:  # the client's figures changed between the two reads (a receipt meanwhile)
            continue
        values = dict(common)
        values.update({"Client Name": name or full_names.split(" ")[0], "Client Surname": surname,
                       "Client Account Number": str(number), "Branch Name": branch_name,
                       "Branch Telephone": branch_tel})
        if loan_values is not None:
            values.update(loan_values.get(cid, {}))
        if extra is not None:
            values.update(extra(cid))
        yield BulkRecipient(event_key, cellphone, values, client_id=cid)


def _receipt_recipients(*, entity: Entity, day: dt.date, rows,
                        loan_values: dict[int, dict[str, object]] | None) -> Iterator[BulkRecipient]:
    """One "Payment received" message per receipt of `rows` (selectors.received_to_notify)."""
    common = merge_values(entity=entity, today=day)
    for rid, cid, _amount, number, name, full_names, surname, cellphone, branch_name, branch_tel in rows.iterator(
            chunk_size=5000):
        values = dict(common)
        values.update({"Client Name": name or full_names.split(" ")[0], "Client Surname": surname,
                       "Client Account Number": str(number), "Branch Name": branch_name,
                       "Branch Telephone": branch_tel})
        if loan_values is not None:
            values.update(loan_values.get(cid, {}))
        yield BulkRecipient(f"{selectors.RECEIVED_KEY_PREFIX}{rid}", cellphone, values, client_id=cid)


def _arrears_period(oldest_ord: int, day: dt.date, repeat_days: int) -> int:
    """Which reminder of one spell of arrears `day` falls in: the first on days 1..N of it, the
    second on days N+1..2N, ... — so a client still in arrears is reminded once every N days."""
    return max(day.toordinal() - oldest_ord - 1, 0) // repeat_days


def automatic_run_day(*, entity: Entity, business_date: dt.date, now: dt.datetime | None = None,
                      after_each: Callable[[str], None] | None = None,
                      local_today: dt.date | None = None) -> DailyRun | None:
    """The entity's automatic SMS for one local day: payment-due reminders, arrears, payment
    received and birthdays, each when switched on. Returns the run, or None when the day was
    finished or another consumer holds it. `after_each` is called after each type (tests use it
    to stop a run half-way, as a crash would).

    `local_today` (the periodic job gives it): the entity's local date now. A day before it is a
    catch-up, and the parts that would be wrong today are counted as skipped, not sent: a
    payment-due reminder whose due date has passed ("due on <yesterday>"), and a birthday
    greeting for any day but today."""
    setup = automatic_setup_get(entity=entity)
    run = run_claim(entity=entity, kind=RunKind.AUTOMATIC, business_date=business_date, now=now)
    if run is None:
        return None
    day = business_date
    kind = "automatic"
    book: list[dict[int, dict[str, object]]] = []

    def loan_values(text: str) -> dict[int, dict[str, object]] | None:
        # The whole book's figures are read once per day run, whichever types' templates name them.
        if not LOAN_FIELDS.intersection(fields_used(text)):
            return None
        if not book:
            book.append(_loan_values(entity=entity, as_of=day, text=text))
        return book[0]

    try:
        if setup.due_enabled:
            due_date = day + dt.timedelta(days=setup.due_days_before)
            due_stale = ""
            if local_today is not None and day < local_today and due_date < local_today:
                due_stale = (f"Caught up on {local_today.isoformat()}: the reminders of payments due on "
                             f"{due_date.isoformat()} would come after the due date, so none was sent.")
            amounts = dict(selectors.due_on_by_client(entity=entity, due_date=due_date))
            text = template_text(entity=entity, message_type=MessageType.PAYMENT_DUE)
            clients = (entity.clients.filter(pk__in=selectors.due_on_by_client(entity=entity, due_date=due_date)
                                             .values("client"))
                       .exclude(status__in=NO_ACCOUNT_NOTICES))
            _send(run=run, entity=entity, message_type=MessageType.PAYMENT_DUE, text=text, kind=kind,
                  criteria={"days_before": setup.due_days_before, "due_date": due_date.isoformat()},
                  result_key=MessageType.PAYMENT_DUE, stale=due_stale,
                  recipients=_recipients(
                      entity=entity, day=day, clients=clients, loan_values=loan_values(text),
                      key=lambda cid: f"auto:payment_due:c{cid}:{due_date.isoformat()}" if cid in amounts else None,
                      extra=lambda cid: {"Next Date Due": due_date.isoformat(),
                                         "Next Amount Due": _money(entity, amounts.get(cid, 0))}))
            if after_each:
                after_each(MessageType.PAYMENT_DUE)
        if setup.arrears_enabled:
            found = {cid: (cents, oldest) for cid, cents, oldest in
                     selectors.arrears_by_client(entity=entity, day=day, minimum=setup.arrears_minimum)}
            text = template_text(entity=entity, message_type=MessageType.ARREARS)
            clients = (entity.clients.filter(pk__in=selectors.arrears_by_client(
                entity=entity, day=day, minimum=setup.arrears_minimum).values("client"))
                .exclude(status__in=NO_ACCOUNT_NOTICES))

            def arrears_key(cid: int) -> str | None:
                if cid not in found:
                    return None
                _, oldest = found[cid]
                period = _arrears_period(oldest, day, setup.arrears_repeat_days)
                return f"auto:arrears:c{cid}:{dt.date.fromordinal(oldest).isoformat()}:{period}"

            _send(run=run, entity=entity, message_type=MessageType.ARREARS, text=text, kind=kind,
                  criteria={"minimum_arrears": str(setup.arrears_minimum), "repeat_days": setup.arrears_repeat_days},
                  result_key=MessageType.ARREARS,
                  recipients=_recipients(entity=entity, day=day, clients=clients, key=arrears_key,
                                         loan_values=loan_values(text)))
            if after_each:
                after_each(MessageType.ARREARS)
        if setup.received_enabled:
            # Keyed on the receipt, from a recent window rather than the business date: a receipt
            # captured after the day's run, or back-dated, is reached by the next run, and never twice.
            text = template_text(entity=entity, message_type=MessageType.PAYMENT_RECEIVED)
            clock = now or timezone.now()
            _send(run=run, entity=entity, message_type=MessageType.PAYMENT_RECEIVED, text=text, kind=kind,
                  criteria={"captured_within_days": selectors.RECEIVED_WINDOW_DAYS},
                  result_key=MessageType.PAYMENT_RECEIVED,
                  recipients=_receipt_recipients(entity=entity, day=day, rows=selectors.received_to_notify(
                      entity=entity, now=clock, today=_local_now(entity, clock).date()),
                      loan_values=loan_values(text)))
            if after_each:
                after_each(MessageType.PAYMENT_RECEIVED)
        if setup.birthday_enabled:
            text = template_text(entity=entity, message_type=MessageType.BIRTHDAY)
            birthday_stale = ""
            if local_today is not None and day < local_today:
                birthday_stale = (f"Caught up on {local_today.isoformat()}: the birthday greetings of "
                                  f"{day.isoformat()} would come late, so none was sent.")
            _send(run=run, entity=entity, message_type=MessageType.BIRTHDAY, text=text, kind=kind,
                  criteria={"born_on": day.strftime("%m-%d")}, result_key=MessageType.BIRTHDAY, stale=birthday_stale,
                  recipients=_recipients(entity=entity, day=day, clients=selectors.birthday_clients(entity=entity, day=day),
                                         key=lambda cid: f"auto:birthday:c{cid}:{day.year}",
                                         loan_values=loan_values(text)))
            if after_each:
                after_each(MessageType.BIRTHDAY)
    except ValidationError as exc:
        return _run_end(run, error="; ".join(exc.messages))
    except Exception as exc:  # noqa: BLE001 - any fault ends this attempt; the day is retried up to MAX_ATTEMPTS
        return _run_end(run, error=_fault(run, exc))
    return _run_end(run)


# --- MIS SMS ----------------------------------------------------------------------------------------

MIS_MAX_SEGMENTS = 2


def _fit(text: str, name: str) -> str:
    """The text within two segments: the lender's or branch's name is shortened first, then the end."""
    if segment_count(text) <= MIS_MAX_SEGMENTS:
        return text
    for keep in (24, 16, 8):
        shorter = text.replace(name, name[:keep], 1)
        if segment_count(shorter) <= MIS_MAX_SEGMENTS:
            return shorter
    while segment_count(text) > MIS_MAX_SEGMENTS:
        text = text[:-1]
    return text


def _num(n: int) -> str:
    return f"{n:,}"


def mis_text(stream: str, *, entity: Entity, figures, name: str, credits_left: int | None = None) -> str:
    """The text of one MIS SMS: plain GSM-7, at most two segments."""
    cur = entity.currency

    def m(amount) -> str:
        return format_money(amount, cur)

    f = figures
    if stream == MisStream.CASH_FLOW:
        net = f.receipts_value - f.loans_issued_value
        text = (f"{name} cash flow {f.day.isoformat()}: In {_num(f.receipts)} receipts {m(f.receipts_value)}. "
                f"Out {_num(f.loans_issued)} loans paid out {m(f.loans_issued_value)}. Net {m(net)}.")
        if credits_left is not None:
            text += f" SMS credits {_num(credits_left)}"
        return _fit(text, name)
    period = f.month.strftime("%Y-%m") if stream == MisStream.MONTHLY else f.day.isoformat()
    head = f"{name} month {period}" if stream == MisStream.MONTHLY else f"{name} MIS {period}"
    text = (f"{head}: Loans issued {_num(f.loans_issued)} {m(f.loans_issued_value)}; "
            f"Receipts {_num(f.receipts)} {m(f.receipts_value)}; "
            f"Arrears {_num(f.arrears_clients)} clients {m(f.arrears_value)}; Book {m(f.outstanding)}")
    if credits_left is not None:
        text += f"; SMS credits {_num(credits_left)}"
    return _fit(text, name)


def _user_recipients(users, key: Callable[[User], str]) -> Iterator[BulkRecipient]:
    for user in users:
        yield BulkRecipient(key(user), user.cellphone, {}, user_id=user.pk)


def mis_run_day(*, entity: Entity, business_date: dt.date, now: dt.datetime | None = None) -> DailyRun | None:
    """The MIS SMS of one local day: yesterday's figures to each stream's users (the branch stream:
    each user the figures of their home branch), and on the first of a month the month before."""
    from imali.messaging.credits import credit_balance

    setup = mis_setup_get(entity=entity)
    run = run_claim(entity=entity, kind=RunKind.MIS, business_date=business_date, now=now)
    if run is None:
        return None
    day = business_date
    yesterday = day - dt.timedelta(days=1)
    kind = "mis"
    try:
        credits_left = credit_balance(entity=entity)
        entity_figures = None
        for stream in (MisStream.MANAGEMENT, MisStream.CASH_FLOW):
            if not setup.enabled(stream):
                continue
            entity_figures = entity_figures or selectors.entity_figures(entity=entity, day=yesterday)
            text = mis_text(stream, entity=entity, figures=entity_figures, name=entity.name, credits_left=credits_left)
            users = [r.user for r in selectors.mis_recipients(entity=entity, stream=stream).select_related("user")]
            _send(run=run, entity=entity, message_type=MessageType.MIS, text=text, kind=kind,
                  criteria={"stream": MisStream(stream).label, "figures_of": yesterday.isoformat()}, result_key=stream,
                  recipients=_user_recipients(users, lambda u, s=stream: f"mis:{s}:{day.isoformat()}:u{u.pk}"))
        if setup.enabled(MisStream.BRANCH):
            users = [r.user for r in selectors.mis_recipients(entity=entity, stream=MisStream.BRANCH)
                     .select_related("user", "user__home_branch")]
            by_branch: dict[int, list[User]] = {}
            homeless = 0
            for user in users:
                if user.home_branch_id is None:
                    homeless += 1
                else:
                    by_branch.setdefault(user.home_branch_id, []).append(user)
            figures = selectors.branch_figures(entity=entity, day=yesterday) if by_branch else {}
            for branch_id, branch_users in sorted(by_branch.items()):
                branch = branch_users[0].home_branch
                text = mis_text(MisStream.BRANCH, entity=entity, figures=figures[branch_id], name=branch.name)
                _send(run=run, entity=entity, message_type=MessageType.MIS, text=text, kind=kind,
                      criteria={"stream": MisStream.BRANCH.label, "branch": branch.name,
                                "figures_of": yesterday.isoformat()}, result_key=f"branch:{branch.code}",
                      recipients=_user_recipients(branch_users, lambda u: f"mis:branch:{day.isoformat()}:u{u.pk}"))
            if homeless:
                run.results[f"branch:{NO_HOME_BRANCH}"] = {"skipped": homeless}
                _run_progress(run)
        if setup.enabled(MisStream.MONTHLY) and day.day == 1:
            month = selectors.month_figures(entity=entity, month_end=yesterday)
            text = mis_text(MisStream.MONTHLY, entity=entity, figures=month, name=entity.name, credits_left=credits_left)
            users = [r.user for r in selectors.mis_recipients(entity=entity, stream=MisStream.MONTHLY).select_related("user")]
            label = month.month.strftime("%Y-%m")
            _send(run=run, entity=entity, message_type=MessageType.MIS, text=text, kind=kind,
                  criteria={"stream": MisStream.MONTHLY.label, "month": label}, result_key=MisStream.MONTHLY,
                  recipients=_user_recipients(users, lambda u: f"mis:monthly:{label}:u{u.pk}"))
    except ValidationError as exc:
        return _run_end(run, error="; ".join(exc.messages))
    except Exception as exc:  # noqa: BLE001 - any fault ends this attempt; the day is retried up to MAX_ATTEMPTS
        return _run_end(run, error=_fault(run, exc))
    return _run_end(run)


# --- The periodic job ------------------------------------------------------------------------------

def runs_due(now: dt.datetime | None = None) -> list[tuple[str, Entity, dt.date]]:
    """(kind, entity, day) of every run due now, each entity's days oldest first."""
    now = now or timezone.now()
    due = []
    automatic = {s.entity_id: s for s in AutomaticSetup.objects.select_related("entity").filter(entity__is_active=True)}
    mis = {s.entity_id: s for s in MisSetup.objects.select_related("entity").filter(entity__is_active=True)}
    for setups, kind in ((automatic, RunKind.AUTOMATIC), (mis, RunKind.MIS)):
        for _, setup in sorted(setups.items()):
            if not setup.any_enabled:
                continue
            for day in days_due(entity=setup.entity, kind=kind, run_at=setup.run_at, now=now):
                due.append((kind, setup.entity, day))
    return due


def runs_due_execute(now: dt.datetime | None = None) -> list[DailyRun]:
    """Run every due day in order. An entity whose day failed (kept for a retry) runs none of its
    later days this time, so the days go out in order. A fault outside a run (its claim) is
    logged and holds back that entity only: the other entities' days still run."""
    done: list[DailyRun] = []
    held: set[tuple[str, int]] = set()
    for kind, entity, day in runs_due(now):
        if (kind, entity.pk) in held:
            continue
        try:
            if kind == RunKind.AUTOMATIC:
                run = automatic_run_day(entity=entity, business_date=day, now=now,
                                        local_today=_local_now(entity, now or timezone.now()).date())
            else:
                run = mis_run_day(entity=entity, business_date=day, now=now)
        except Exception as exc:  # noqa: BLE001 - one entity's fault must not stop the others' days
            logger.error("Daily %s SMS of entity %s for %s could not start: %s", kind, entity.pk, day.isoformat(),
                         type(exc).__name__)
            held.add((kind, entity.pk))
            continue
        if run is None or run.finished_at is None:
            held.add((kind, entity.pk))
        if run is not None:
            done.append(run)
    return done
