"""Every SMS-banking write: settings and keyword aliases, PINs, field collections (record,
confirm, reject), collection sheets and mobile-money providers. Keyword-only arguments, one
transaction each, an audit entry for every change; PINs and codes never reach a log or the audit."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from imali.clients.models import Client
from imali.core.audit import audit_record
from imali.core.dates import DAY_RANGE_MESSAGE, day_in_range
from imali.core.formatting import format_money
from imali.core.localtime import datetime_label, local
from imali.core.models import AuditAction
from imali.loans import selectors as loan_selectors
from imali.loans.models import OPEN_STATUSES, Instalment, Loan, PaybackType
from imali.loans.services import local_today, receipt_post
from imali.messaging.models import MessageType, OutboxMessage
from imali.messaging.services import message_enqueue
from imali.tenancy.models import Entity, User
from imali.tenancy.rights import Right

from . import rules
from .errors import SmsBankingError, sb_error
from .models import (
    ALIASABLE,
    DEFAULT_KEYWORDS,
    BankingPin,
    BankingSettings,
    CollectionMessage,
    CollectionSheet,
    CollectionSheetLine,
    CollectionStatus,
    FieldCollection,
    KeywordAlias,
    PaymentProvider,
    PinChange,
    ProviderPayment,
)
from .security import hash_secret, new_code, secret_matches, secret_matches_none

PIN_CHANGE_MINUTES = 10
PIN_CHANGE_TRIES = 3


def money(entity: Entity, amount) -> str:
    return format_money(amount, entity.currency)


# --- replies ---------------------------------------------------------------------------------------

def reply_send(*, entity: Entity, number: str, text: str, key: str, client=None, user=None) -> OutboxMessage:
    """Queue an SMS-banking answer: type Reply, so it goes in the transactional priority, the first
    after OTPs; always within two segments."""
    return message_enqueue(entity=entity, number=number, text=rules.fit(text), message_type=MessageType.REPLY,
                           idempotency_key=f"smsbank:{key}", client=client, user=user)


# --- settings and keywords -------------------------------------------------------------------------

SETTING_BOUNDS = {"pin_max_failures": (1, 10), "pin_lock_minutes": (1, 10080), "requests_per_hour": (1, 1000),
                  "sheet_code_days": (1, 30)}


def settings_get(*, entity: Entity) -> BankingSettings:
    found = BankingSettings.objects.filter(entity=entity).first()
    return found or BankingSettings(entity=entity)


def settings_update(*, actor, entity: Entity, data: dict[str, Any]) -> BankingSettings:
    problems: dict[str, list[ValidationError]] = {}
    changes: dict[str, Any] = {}
    for field, (low, high) in SETTING_BOUNDS.items():
        if field not in data:
            continue
        try:
            value = int(data[field])
        except (TypeError, ValueError):
            value = None
        if value is None or not low <= value <= high:
            problems[field] = [ValidationError(f"Give a whole number from {low} to {high}.", code=SmsBankingError.INVALID_SETTING)]
        else:
            changes[field] = value
    if "enabled" in data:
        changes["enabled"] = bool(data["enabled"])
    if "service_address" in data:
        address = str(data["service_address"] or "").strip()
        if len(address) > 20 or (address and not re.fullmatch(r"\+?[0-9A-Za-z]{1,20}", address)):
            problems["service_address"] = [ValidationError("Give the short code or number clients text (letters and digits, at most 20).",
                                                           code=SmsBankingError.INVALID_SETTING)]
        else:
            changes["service_address"] = address
    if problems:
        raise ValidationError(problems)
    with transaction.atomic():
        row, _ = BankingSettings.objects.select_for_update().get_or_create(entity=entity)
        before = {k: getattr(row, k) for k in changes}
        for k, v in changes.items():
            setattr(row, k, v)
        row.save()
        audit_record(action=AuditAction.SMS_BANKING_SETTINGS_CHANGED, actor=actor, entity=entity, target=row,
                     subject=entity.code, before=before, after=changes)
    return row


def aliases_of(*, entity_id: int) -> dict[str, str]:
    return dict(KeywordAlias.objects.filter(entity_id=entity_id).values_list("word", "command"))


def alias_add(*, actor, entity: Entity, word: str, command: str) -> KeywordAlias:
    word = (word or "").strip().upper()
    if not re.fullmatch(r"[A-Z\u00C0-\u024F]{2,20}", word):
        raise sb_error("word", SmsBankingError.INVALID_ALIAS, "An alias is one word of 2 to 20 letters.")
    if command not in [c.value for c in ALIASABLE]:
        raise sb_error("command", SmsBankingError.INVALID_ALIAS, "Choose what the word does.")
    if word in DEFAULT_KEYWORDS:
        raise sb_error("word", SmsBankingError.ALIAS_TAKEN, f"'{word}' is already an English keyword.")
    try:
        with transaction.atomic():
            alias = KeywordAlias.objects.create(entity=entity, word=word, command=command)
            audit_record(action=AuditAction.SMS_KEYWORD_CHANGED, actor=actor, entity=entity, target=alias, subject=word,
                         after={"word": word, "command": command})
    except IntegrityError:
        raise sb_error("word", SmsBankingError.ALIAS_TAKEN, f"'{word}' is already a keyword of this lender.") from None
    return alias


def alias_delete(*, actor, entity: Entity, alias_id: int) -> None:
    with transaction.atomic():
        alias = KeywordAlias.objects.select_for_update().get(entity=entity, pk=alias_id)
        audit_record(action=AuditAction.SMS_KEYWORD_CHANGED, actor=actor, entity=entity, target=alias, subject=alias.word,
                     before={"word": alias.word, "command": alias.command}, after=None)
        alias.delete()


# --- PINs ------------------------------------------------------------------------------------------

@sensitive_variables("pin", "repeat")
def pin_set(*, actor, entity: Entity, client: Client, pin: str, repeat: str | None = None, via: str = "branch") -> BankingPin:
    """Set (or replace) a client's PIN: Argon2 hash only; clears wrong tries and any lock."""
    if client.entity_id != entity.pk:
        raise PermissionDenied("The client belongs to another entity.")
    pin = (pin or "").strip()
    problem = rules.pin_problem(pin)
    if problem:
        raise sb_error("pin", SmsBankingError.INVALID_PIN, problem)
    if repeat is not None and repeat.strip() != pin:
        raise sb_error("repeat", SmsBankingError.PIN_MISMATCH, "The two PINs differ.")
    pin_hash = hash_secret(pin)
    with transaction.atomic():
        row, created = BankingPin.objects.select_for_update().get_or_create(
            client=client, defaults={"pin_hash": pin_hash, "set_at": timezone.now(), "set_by": actor if getattr(actor, "pk", None) else None,
                                     "set_via": via})
        if not created:
            row.pin_hash, row.failures, row.locked_until = pin_hash, 0, None
            row.set_at, row.set_by, row.set_via = timezone.now(), actor if getattr(actor, "pk", None) else None, via
            row.save()
        audit_record(action=AuditAction.SMS_PIN_SET, actor=actor, entity=entity, target=client, subject=str(client.number),
                     after={"set_via": via, "replaced": not created})
    return row


class PinCheck:
    OK = "ok"
    WRONG = "wrong"
    LOCKED = "locked"  # locked before this try
    LOCKED_NOW = "locked_now"  # this wrong try reached the limit and locked it


# Each lock after the first lasts twice as long as the one before, up to 2**LOCK_DOUBLINGS_MAX
# times the entity's lock time: without that, a lock that simply ran out gave a guesser a fresh
# set of tries every lock period for ever (3 tries an hour finds a 4-digit PIN in about 70 days).
LOCK_DOUBLINGS_MAX = 10


@sensitive_variables("pin")
def pin_check(*, entity: Entity, client: Client, pin: str, number: str) -> tuple[str, int]:
    """Check a PIN sent by SMS. Returns (outcome, minutes): for LOCKED_NOW how long the PIN is now
    locked, else 0. Every wrong try is audited. The try that reaches the entity's limit locks the
    PIN for its lock time; once a lock runs out the count is not reset (only the right PIN or a new
    PIN resets it), so the next wrong try locks it again at once, for twice as long (audited)."""
    conf = settings_get(entity=entity)
    with transaction.atomic():
        row = BankingPin.objects.select_for_update().filter(client=client).first()
        if row is None:
            secret_matches_none(pin)  # as long as a wrong PIN takes
            return PinCheck.WRONG, 0
        now = timezone.now()
        if row.locked_until and row.locked_until > now:
            secret_matches_none(pin)  # as long as a wrong PIN takes: the delay must not tell it is locked
            return PinCheck.LOCKED, 0
        if secret_matches(row.pin_hash, pin):
            if row.failures or row.locked_until:
                row.failures, row.locked_until = 0, None
                row.save(update_fields=["failures", "locked_until"])
            return PinCheck.OK, 0
        row.failures += 1
        audit_record(action=AuditAction.SMS_PIN_FAILED, actor=None, entity=entity, target=client, subject=number,
                     after={"failures": row.failures})
        if row.failures >= conf.pin_max_failures:
            minutes = conf.pin_lock_minutes * 2 ** min(row.failures - conf.pin_max_failures, LOCK_DOUBLINGS_MAX)
            row.locked_until = now + dt.timedelta(minutes=minutes)
            audit_record(action=AuditAction.SMS_PIN_LOCKED, actor=None, entity=entity, target=client, subject=number,
                         after={"failures": row.failures, "minutes": minutes, "locked_until": row.locked_until.isoformat()})
            row.save(update_fields=["failures", "locked_until"])
            return PinCheck.LOCKED_NOW, minutes
        row.save(update_fields=["failures", "locked_until"])
        return PinCheck.WRONG, 0


def pin_change_start(*, entity: Entity, client: Client) -> str:
    """A one-time code for setting the PIN by SMS (the caller sends it to the bound phone). Earlier
    codes of the client are void."""
    code = new_code()
    PinChange.objects.filter(client=client, used=False).update(used=True)
    PinChange.objects.create(client=client, code_hash=hash_secret(code),
                             expires_at=timezone.now() + dt.timedelta(minutes=PIN_CHANGE_MINUTES))
    return code


@sensitive_variables("code", "pin")
def pin_change_finish(*, entity: Entity, client: Client, code: str, pin: str) -> str:
    """Set the PIN when `code` is the client's live one-time code. Returns "" or why not."""
    with transaction.atomic():
        change = (PinChange.objects.select_for_update().filter(client=client, used=False)
                  .order_by("-created_at", "-id").first())
        if change is None or change.expires_at <= timezone.now():
            return "That code has expired. Text PIN for a new one."
        if not secret_matches(change.code_hash, code):
            change.tries += 1
            change.used = change.tries >= PIN_CHANGE_TRIES
            change.save(update_fields=["tries", "used"])
            return "That code is wrong." + (" Text PIN for a new one." if change.used else "")
        problem = rules.pin_problem(pin)
        if problem:
            return problem
        change.used = True
        change.save(update_fields=["used"])
        pin_set(actor=None, entity=entity, client=client, pin=pin, via="sms")
    return ""


# --- balances --------------------------------------------------------------------------------------

def books_of(*, entity: Entity, client_ids: list[int]) -> dict[int, list[tuple[Loan, list[Instalment]]]]:
    """The open loans of several clients, each with its schedule, in two statements: what
    `balance_text` reads per client, read once for a batch of balance requests."""
    loans = list(Loan.objects.filter(entity=entity, client_id__in=client_ids, status__in=OPEN_STATUSES).order_by("id"))
    schedules: dict[int, list[Instalment]] = {loan.pk: [] for loan in loans}
    if loans:
        for row in Instalment.objects.filter(loan_id__in=list(schedules)).order_by("loan_id", "seq"):
            schedules[row.loan_id].append(row)
    book: dict[int, list[tuple[Loan, list[Instalment]]]] = {cid: [] for cid in client_ids}
    for loan in loans:
        book[loan.client_id].append((loan, schedules[loan.pk]))
    return book


def balance_text(*, entity: Entity, client: Client, as_of: dt.date | None = None,
                 book: list[tuple[Loan, list[Instalment]]] | None = None) -> str:
    """Every open loan's outstanding, arrears, next date and amount, with the loan page's own
    figures (`loans.rules.LoanFigures.of` on the loan's schedule, what `loans.queries.loan_page`
    shows), cut to two segments. `book`: the client's open loans and schedules (`books_of`),
    already read for a batch."""
    from imali.loans.rules import LoanFigures

    as_of = as_of or local_today(entity)
    if book is None:
        book = books_of(entity=entity, client_ids=[client.pk])[client.pk]
    if not book:
        return f"{client.name}, you have no loan on our books on {as_of:%Y-%m-%d}."
    parts = []
    for loan, schedule in book:
        f = LoanFigures.of(schedule, as_of=as_of)
        nxt = f"next {f.next_due_date:%Y-%m-%d} {format_money(f.next_amount_due)}" if f.next_due_date else "nothing more due"
        parts.append(f"Loan {loan.pk}: owing {format_money(f.outstanding)}, arrears {format_money(f.arrears_amount)}, {nxt}.")
    head = f"{entity.currency} on {as_of:%Y-%m-%d}: "
    text = head + " ".join(parts)
    if rules.segment_count(text) <= rules.MAX_REPLY_SEGMENTS:
        return text
    # Too many loans for two segments: as many as fit, and how many more.
    shown: list[str] = []
    for i, part in enumerate(parts):
        more = f" +{len(parts) - i - 1} more loans: ask the branch."
        if rules.segment_count(head + " ".join([*shown, part]) + more) > rules.MAX_REPLY_SEGMENTS:
            return head + " ".join(shown) + f" +{len(parts) - i} more loans: ask the branch."
        shown.append(part)
    return head + " ".join(shown)


# --- field collections -----------------------------------------------------------------------------

def _fingerprint(entries: list[rules.Entry], on: dt.date) -> str:
    body = ";".join(sorted(f"{e.client_number}/{e.loan_id or ''}={e.amount}" for e in entries))
    return hashlib.sha256(f"{on:%Y-%m-%d}|{body}".encode()).hexdigest()


class Resolved:
    def __init__(self, entry: rules.Entry, client: Client, loan: Loan):
        self.entry, self.client, self.loan = entry, client, loan


def collections_resolve(*, entity: Entity, entries: list[rules.Entry], on: dt.date) -> list[Resolved]:
    """Find each entry's client and loan; raise ValueError with the first problem for the officer."""
    clients = {c.number: c for c in Client.objects.filter(entity=entity, number__in=[e.client_number for e in entries])}
    loans_by_client: dict[int, list[Loan]] = {}
    for loan in Loan.objects.filter(entity=entity, client__in=clients.values(), status__in=OPEN_STATUSES).order_by("id"):
        loans_by_client.setdefault(loan.client_id, []).append(loan)
    resolved = []
    seen_loans: set[int] = set()
    for position, entry in enumerate(entries, start=1):
        client = clients.get(entry.client_number)
        if client is None:
            raise ValueError(f"Payment {position}: no client {entry.client_number}.")
        open_loans = loans_by_client.get(client.pk, [])
        if entry.loan_id is None:
            if len(open_loans) != 1:
                raise ValueError(f"Payment {position}: client {client.number} has {len(open_loans)} open loans; "
                                 f"write {client.number}/<loan>.")
            loan = open_loans[0]
        else:
            loan = next((x for x in open_loans if x.pk == entry.loan_id), None)
            if loan is None:
                raise ValueError(f"Payment {position}: loan {entry.loan_id} is not an open loan of client {client.number}.")
        if loan.pk in seen_loans:
            # '1001 250, 1001/17 100': the same loan through the client's only loan and by its id.
            raise ValueError(f"Payment {position}: loan {loan.pk} of client {client.number} is in the message twice.")
        seen_loans.add(loan.pk)
        maximum = loan_selectors.loan_receipt_maximum(loan=loan, as_of=on)
        if entry.amount > maximum.amount:
            raise ValueError(f"Payment {position}: {format_money(entry.amount)} is more than loan {loan.pk} takes "
                             f"({format_money(maximum.amount)}).")
        resolved.append(Resolved(entry, client, loan))
    return resolved


class Duplicate(Exception):
    """The same payments from the same officer on the same day: recorded once already."""


def collections_record(*, entity: Entity, officer: User, resolved: list[Resolved], source: str, on: dt.date,
                       inbound=None, fingerprint: str | None = None) -> tuple[CollectionMessage, list[FieldCollection]]:
    """Record the payments unverified, all or none. Raises Duplicate when the officer already sent
    the same payments today."""
    if officer.entity_id != entity.pk:
        raise PermissionDenied("The officer belongs to another entity.")
    fingerprint = fingerprint or _fingerprint([r.entry for r in resolved], on)
    now = timezone.now()
    try:
        with transaction.atomic():
            message = CollectionMessage.objects.create(entity=entity, officer=officer, inbound=inbound, source=source,
                                                       fingerprint=fingerprint, created_at=now)
            rows = FieldCollection.objects.bulk_create([
                FieldCollection(entity=entity, message=message, officer=officer, client=r.client, loan=r.loan,
                                amount=r.entry.amount, collected_on=on, created_at=now) for r in resolved])
            for row in FieldCollection.objects.filter(message=message).select_related("client"):
                audit_record(action=AuditAction.FIELD_COLLECTION_RECORDED, actor=officer, entity=entity, target=row,
                             subject=str(row.client.number),
                             after={"loan": row.loan_id, "amount": str(row.amount), "source": source, "on": on.isoformat()})
    except IntegrityError:
        raise Duplicate() from None
    return message, rows


def _pending(entity: Entity, collection_id: int) -> FieldCollection:
    row = FieldCollection.objects.select_for_update().select_related("client", "loan", "officer").get(entity=entity, pk=collection_id)
    if row.status != CollectionStatus.UNVERIFIED:
        raise sb_error("collection", SmsBankingError.NOT_UNVERIFIED,
                       f"Collection {row.pk} was {row.get_status_display().lower()} already.")
    return row


def _require(actor, right: Right) -> None:
    if not actor.has_right(right):
        raise PermissionDenied("You do not have the right to confirm field collections.")


def collection_confirm(*, actor, entity: Entity, collection_id: int) -> FieldCollection:
    """The cash is at the branch: post the receipt through the loans service and tell the client."""
    _require(actor, Right.CAPTURE_RECEIPTS)
    with transaction.atomic():
        row = _pending(entity, collection_id)
        receipt = receipt_post(entity=entity, actor=actor, loan=row.loan, amount=row.amount, value_date=row.collected_on,
                               payback_type=PaybackType.CASH, external_reference=f"FIELD-{row.pk}")
        row.status, row.receipt, row.decided_by, row.decided_at = CollectionStatus.CONFIRMED, receipt, actor, timezone.now()
        row.save(update_fields=["status", "receipt", "decided_by", "decided_at"])
        audit_record(action=AuditAction.FIELD_COLLECTION_CONFIRMED, actor=actor, entity=entity, target=row,
                     subject=str(row.client.number), after={"receipt": receipt.pk, "amount": str(row.amount)})
        if row.client.cellphone:
            _quiet_reply(entity=entity, number=row.client.cellphone, client=row.client, key=f"fc-confirm:{row.pk}",
                         text=f"{entity.name}: your payment of {money(entity, row.amount)} of {row.collected_on:%Y-%m-%d} "
                              f"to loan {row.loan_id} is confirmed (receipt {receipt.pk}).")
    return row


def _reject_reason(reason: str, *, what: str) -> str:
    """The reason a branch gives for rejecting an unverified collection or payment: required, at
    most 200 characters."""
    reason = (reason or "").strip()
    if not reason:
        raise sb_error("reason", SmsBankingError.REASON_REQUIRED, f"Say why the {what} is rejected.")
    if len(reason) > 200:
        raise sb_error("reason", SmsBankingError.REASON_REQUIRED, "Keep the reason within 200 characters.")
    if "\x00" in reason:  # it is stored and sent by SMS
        raise sb_error("reason", SmsBankingError.REASON_REQUIRED, "The reason may not hold NUL characters.")
    return reason


def collection_reject(*, actor, entity: Entity, collection_id: int, reason: str) -> FieldCollection:
    _require(actor, Right.CAPTURE_RECEIPTS)
    reason = _reject_reason(reason, what="collection")
    with transaction.atomic():
        row = _pending(entity, collection_id)
        row.status, row.reject_reason, row.decided_by, row.decided_at = CollectionStatus.REJECTED, reason, actor, timezone.now()
        row.save(update_fields=["status", "reject_reason", "decided_by", "decided_at"])
        audit_record(action=AuditAction.FIELD_COLLECTION_REJECTED, actor=actor, entity=entity, target=row,
                     subject=str(row.client.number), after={"reason": reason, "amount": str(row.amount)})
        if row.officer.cellphone:
            _quiet_reply(entity=entity, number=row.officer.cellphone, user=row.officer, key=f"fc-reject:{row.pk}",
                         text=f"{entity.name}: collection of {money(entity, row.amount)} from client {row.client.number} "
                              f"({row.collected_on:%Y-%m-%d}) was rejected at the branch: {reason}")
    return row


def _quiet_reply(**kwargs) -> OutboxMessage | None:
    """An SMS that follows a branch decision: the decision stands even if the SMS cannot be queued
    (no credits, a bad number); the screen shows the message list for that."""
    try:
        with transaction.atomic():
            return reply_send(**kwargs)
    except ValidationError:
        return None


# --- collection sheets -----------------------------------------------------------------------------

def sheet_lines(*, entity: Entity, officer: User, due_by: dt.date) -> list[dict]:
    """What the officer's clients owe by `due_by` on their open loans: one line per loan, all that
    is unpaid on instalments due by then (arrears included)."""
    rows: dict[int, dict] = {}
    instalments = (Instalment.objects.filter(entity=entity, client__salesperson=officer, loan__status__in=OPEN_STATUSES,
                                             open=True, due_date__lte=due_by)
                   .select_related("client").order_by("client__number", "loan_id", "due_date"))
    for i in instalments:
        unpaid = i.amount - i.paid
        if unpaid <= 0:
            continue
        line = rows.setdefault(i.loan_id, {"client": i.client, "loan_id": i.loan_id, "due_date": i.due_date,
                                           "amount": Decimal("0.00")})
        line["amount"] += unpaid
        line["due_date"] = max(line["due_date"], i.due_date)
    return list(rows.values())


def sheet_issue(*, actor, entity: Entity, officer: User, due_by: dt.date) -> CollectionSheet:
    """Print a sheet: its lines are frozen with a short code, valid for the entity's number of days,
    also sent to the officer by SMS."""
    _require(actor, Right.CAPTURE_RECEIPTS)
    if officer.entity_id != entity.pk:
        raise PermissionDenied("The officer belongs to another entity.")
    if not officer.cellphone:
        raise sb_error("officer", SmsBankingError.NO_OFFICER_PHONE, f"{officer} has no cellphone on their user record.")
    if not day_in_range(due_by):
        raise sb_error("due_by", SmsBankingError.INVALID_DATE, DAY_RANGE_MESSAGE)
    lines = sheet_lines(entity=entity, officer=officer, due_by=due_by)
    if not lines:
        raise sb_error("due_by", SmsBankingError.NOTHING_DUE, f"{officer}'s clients owe nothing due by {due_by:%Y-%m-%d}.")
    days = settings_get(entity=entity).sheet_code_days
    now = timezone.now()
    for _ in range(10):
        try:
            with transaction.atomic():
                sheet = CollectionSheet.objects.create(entity=entity, officer=officer, code=rules.new_sheet_code(), due_by=due_by,
                                                       created_by=actor, created_at=now, expires_at=now + dt.timedelta(days=days))
                CollectionSheetLine.objects.bulk_create([
                    CollectionSheetLine(sheet=sheet, client=line["client"], loan_id=line["loan_id"], due_date=line["due_date"],
                                        amount=line["amount"]) for line in lines])
                total = sum((line["amount"] for line in lines), Decimal("0.00"))
                audit_record(action=AuditAction.COLLECTION_SHEET_ISSUED, actor=actor, entity=entity, target=sheet,
                             subject=str(officer), after={"lines": len(lines), "total": str(total), "due_by": due_by.isoformat()})
                expires = datetime_label(sheet.expires_at, entity.time_zone)
                reply_send(entity=entity, number=officer.cellphone, user=officer, key=f"sheet:{sheet.pk}",
                           text=f"{entity.name}: collection sheet {sheet.code}, {len(lines)} payments, total "
                                f"{money(entity, total)}. When all are collected, send back {sheet.code} (valid until {expires}).")
            return sheet
        except IntegrityError:
            continue  # the code was taken: draw another
    raise RuntimeError("No free sheet code after 10 draws.")


# --- mobile-money providers ------------------------------------------------------------------------

SAMPLE_PATTERN = (r"(?i)you have received (?:PHP|[A-Z]{3})?\s*(?P<amount>[0-9][0-9,]*(?:\.[0-9]{1,2})?) from "
                  r"(?P<phone>\+?[0-9]{7,15})\. ?ref(?:erence)?:? ?(?P<ref>[A-Za-z0-9-]{4,40})")


# A notice is matched against its first NOTICE_SCAN characters only (two SMS segments and more):
# with nested quantifiers refused too, an admin's pattern cannot stall the inbound consumer.
NOTICE_SCAN = 320


def _repeats(items) -> bool:
    """True when the parsed pattern has a repeat (more than once) anywhere inside."""
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and arg[1] > 1:
            return True
        if _nested(op, arg, _repeats):
            return True
    return False


def _nested(op, arg, check) -> bool:
    name = str(op)
    if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
        return check(arg[2])
    if name in ("SUBPATTERN",):
        return check(arg[-1])
    if name in ("ATOMIC_GROUP", "ASSERT", "ASSERT_NOT"):
        return check(arg[-1])
    if name == "BRANCH":
        return any(check(branch) for branch in arg[1])
    if name == "GROUPREF_EXISTS":
        return any(check(branch) for branch in arg[1:] if branch is not None)
    return False


def _nested_repeat(items) -> bool:
    """True when a repeated part itself holds a repeat, like (a+)+ or (\\w*,?)*: the shape that
    backtracks exponentially."""
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT") and arg[1] > 1 and _repeats(arg[2]):
            return True
        if _nested(op, arg, _nested_repeat):
            return True
    return False


def pattern_problem(pattern: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        return f"Not a valid pattern: {exc}."
    missing = {"phone", "amount", "ref"} - set(compiled.groupindex)
    if missing:
        return "The pattern needs the named groups " + ", ".join(f"(?P<{g}>...)" for g in sorted(missing)) + "."
    try:
        from re import _parser as sre_parse  # Python 3.11+
    except ImportError:  # pragma: no cover
        import sre_parse
    if _nested_repeat(sre_parse.parse(pattern).data):
        return "A repeated part may not itself repeat (like (a+)+): such a pattern can take forever on a long SMS."
    return ""


def provider_save(*, actor, entity: Entity, name: str, sender: str, pattern: str, active: bool = True,
                  provider_id: int | None = None) -> PaymentProvider:
    problems = {}
    name, sender = (name or "").strip(), (sender or "").strip()
    if not name or len(name) > 60:
        problems["name"] = "Give the provider's name (at most 60 characters)."
    if not re.fullmatch(r"\+?[0-9A-Za-z-]{2,20}", sender):
        problems["sender"] = "Give the number or name the provider's SMS come from (at most 20 letters or digits)."
    problem = pattern_problem(pattern or "") if len(pattern or "") <= 400 else "At most 400 characters."
    if problem:
        problems["pattern"] = problem
    if problems:
        raise ValidationError({k: [ValidationError(v, code=SmsBankingError.INVALID_PATTERN)] for k, v in problems.items()})
    try:
        with transaction.atomic():
            if provider_id is None:
                row = PaymentProvider.objects.create(entity=entity, name=name, sender=sender, pattern=pattern, active=active)
                before = None
            else:
                row = PaymentProvider.objects.select_for_update().get(entity=entity, pk=provider_id)
                before = {"name": row.name, "sender": row.sender, "pattern": row.pattern, "active": row.active}
                row.name, row.sender, row.pattern, row.active = name, sender, pattern, active
                row.save()
            audit_record(action=AuditAction.PAYMENT_PROVIDER_CHANGED, actor=actor, entity=entity, target=row, subject=name,
                         before=before, after={"name": name, "sender": sender, "pattern": pattern, "active": active})
    except IntegrityError:
        raise sb_error("sender", SmsBankingError.INVALID_PATTERN, f"Another provider already sends from {sender}.") from None
    return row


def provider_payment_record(*, entity: Entity, provider: PaymentProvider, phone: str, amount: Decimal, reference: str
                            ) -> tuple[ProviderPayment, bool]:
    """Record one notice, once per reference, UNVERIFIED: the sender ID of an SMS can be forged, so
    nothing is posted until a branch user confirms it (provider_payment_confirm). The client and
    their only open loan are looked up now for the branch; when they are not found the reason is
    kept. Returns (payment, created)."""
    found = ProviderPayment.objects.filter(provider=provider, reference=reference).first()
    if found is not None:
        return found, False
    clients = list(Client.objects.filter(entity=entity, cellphone=phone)[:2])
    client = clients[0] if len(clients) == 1 else None
    loan, outcome = None, "awaiting the branch"
    if client is None:
        outcome = "no client with that phone" if not clients else "several clients share that phone"
    else:
        loans = list(Loan.objects.filter(entity=entity, client=client, status__in=OPEN_STATUSES).order_by("id")[:2])
        if len(loans) == 1:
            loan = loans[0]
        else:
            outcome = "client has no open loan" if not loans else "client has several open loans"
    try:
        with transaction.atomic():
            payment = ProviderPayment.objects.create(entity=entity, provider=provider, reference=reference, phone=phone,
                                                     amount=amount, client=client, loan=loan, outcome=outcome,
                                                     created_at=timezone.now())
            audit_record(action=AuditAction.PROVIDER_PAYMENT_RECORDED, actor=None, entity=entity, target=payment,
                         subject=reference, after={"provider": provider.name, "amount": str(amount),
                                                   "client": client.pk if client else None,
                                                   "loan": loan.pk if loan else None, "outcome": outcome})
    except IntegrityError:  # another consumer recorded this reference first
        return ProviderPayment.objects.get(provider=provider, reference=reference), False
    return payment, True


def _pending_payment(entity: Entity, payment_id: int) -> ProviderPayment:
    row = (ProviderPayment.objects.select_for_update(of=("self",)).select_related("provider", "client", "loan")
           .get(entity=entity, pk=payment_id))
    if row.status != CollectionStatus.UNVERIFIED:
        raise sb_error("payment", SmsBankingError.NOT_UNVERIFIED,
                       f"Payment {row.reference} was {row.get_status_display().lower()} already.")
    return row


def provider_payment_confirm(*, actor, entity: Entity, payment_id: int) -> ProviderPayment:
    """The money is on the provider's statement: post the receipt, once per reference. The bare
    provider reference is the receipt's external reference, the same key mobile money's C2B
    callback uses, so the same payment arriving by both channels is posted once."""
    _require(actor, Right.CAPTURE_RECEIPTS)
    with transaction.atomic():
        row = _pending_payment(entity, payment_id)
        if row.loan_id is None:
            raise sb_error("payment", SmsBankingError.NOT_UNVERIFIED,
                           f"Payment {row.reference} matched no single open loan ({row.outcome}); capture it as a "
                           "receipt on the right loan and reject this notice.")
        from imali.loans.models import Receipt

        earlier = Receipt.objects.filter(entity=entity, external_reference=row.reference).first()
        if earlier is not None:
            raise sb_error("payment", SmsBankingError.NOT_UNVERIFIED,
                           f"Reference {row.reference} is already receipt {earlier.pk} on loan {earlier.loan_id}; "
                           "reject this notice as a duplicate.")
        receipt = receipt_post(entity=entity, actor=actor, loan=row.loan, amount=row.amount,
                               value_date=local(row.created_at, entity.time_zone).date(),
                               payback_type=PaybackType.MOBILE_MONEY, external_reference=row.reference)
        row.status, row.receipt, row.decided_by, row.decided_at = CollectionStatus.CONFIRMED, receipt, actor, timezone.now()
        row.outcome = "posted"
        row.save(update_fields=["status", "receipt", "decided_by", "decided_at", "outcome"])
        audit_record(action=AuditAction.PROVIDER_PAYMENT_CONFIRMED, actor=actor, entity=entity, target=row,
                     subject=row.reference, after={"receipt": receipt.pk, "amount": str(row.amount), "loan": row.loan_id})
        if row.client and row.client.cellphone:
            _quiet_reply(entity=entity, number=row.client.cellphone, client=row.client, key=f"pp-confirm:{row.pk}",
                         text=f"{entity.name}: we received {money(entity, row.amount)} by {row.provider.name} "
                              f"(ref {row.reference}) for loan {row.loan_id}. Thank you.")
    return row


def provider_payment_reject(*, actor, entity: Entity, payment_id: int, reason: str) -> ProviderPayment:
    _require(actor, Right.CAPTURE_RECEIPTS)
    reason = _reject_reason(reason, what="payment")
    with transaction.atomic():
        row = _pending_payment(entity, payment_id)
        row.status, row.reject_reason, row.decided_by, row.decided_at = CollectionStatus.REJECTED, reason, actor, timezone.now()
        row.save(update_fields=["status", "reject_reason", "decided_by", "decided_at"])
        audit_record(action=AuditAction.PROVIDER_PAYMENT_REJECTED, actor=actor, entity=entity, target=row,
                     subject=row.reference, after={"reason": reason, "amount": str(row.amount)})
    return row

