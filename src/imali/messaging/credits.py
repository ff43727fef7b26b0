"""The credit ledger of each entity and channel: assignments, debits, refunds.

Every movement takes the account row lock (`select_for_update`), reads the running balance of the
latest entry and writes a new entry with the new balance: concurrent senders queue on the lock, so
the balance can never be spent twice, and a check constraint refuses a negative balance anyway.
Callers that debit run inside their own transaction, so the debit and the messages it pays for
commit or roll back together.

A bulk run does not hold the lock while it writes its rows (a million rows take half a minute,
and the entity's OTPs queue on the same lock): it reserves the credits for the whole batch in one
short transaction (`credits_reserve`), writes outside the lock, and settles after
(`reservation_settle`), refunding what it did not use. See docs/messaging.md, "Bulk".
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.tenancy.models import Entity
from imali.tenancy.rights import Right

from .errors import MessagingError, messaging_error
from .models import (
    Channel,
    CreditAccount,
    CreditEntry,
    CreditEntryKind,
    CreditReservation,
    OutboxMessage,
    ProcessLog,
    ReservationStatus,
)


def credit_account_get(*, entity: Entity, channel: str) -> CreditAccount:
    account = CreditAccount.objects.filter(entity=entity, channel=channel).first()
    if account is not None:
        return account
    try:
        with transaction.atomic():
            return CreditAccount.objects.create(entity=entity, channel=channel)
    except IntegrityError:  # another sender created it first
        return CreditAccount.objects.get(entity=entity, channel=channel)


def _locked(entity: Entity, channel: str) -> CreditAccount:
    account = credit_account_get(entity=entity, channel=channel)
    return CreditAccount.objects.select_for_update().get(pk=account.pk)


def _balance_of(account_id: int) -> int:
    latest = CreditEntry.objects.filter(account_id=account_id).order_by("-id").values_list("balance_after", flat=True).first()
    return latest or 0


def credit_balance(*, entity: Entity, channel: str = Channel.SMS) -> int:
    """Credits left: the running total of the ledger's latest entry."""
    account = CreditAccount.objects.filter(entity=entity, channel=channel).only("id").first()
    return 0 if account is None else _balance_of(account.pk)


def month_start(entity: Entity, now: dt.datetime | None = None) -> dt.datetime:
    """The start of the entity's local calendar month, as an aware datetime."""
    tz = zoneinfo.ZoneInfo(entity.time_zone)
    local = (now or timezone.now()).astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def credits_used_between(*, entity: Entity, channel: str, start: dt.datetime, end: dt.datetime | None = None) -> int:
    """Credits spent net of refunds in [start, end)."""
    qs = CreditEntry.objects.filter(account__entity=entity, account__channel=channel, created_at__gte=start,
                                    kind__in=[CreditEntryKind.DEBIT, CreditEntryKind.REFUND])
    if end is not None:
        qs = qs.filter(created_at__lt=end)
    return -(qs.aggregate(total=Sum("amount"))["total"] or 0)


def _write(account: CreditAccount, *, kind: str, amount: int, messages: int, reference: str, note: str, actor) -> CreditEntry:
    balance = _balance_of(account.pk) + amount
    entry = CreditEntry.objects.create(account=account, entity_id=account.entity_id, kind=kind, amount=amount,
                                       balance_after=balance, messages=messages, reference=reference[:120],
                                       note=note[:200], actor=actor if getattr(actor, "pk", None) else None)
    _low_credit_watch(account, balance)
    return entry


def _low_credit_watch(account: CreditAccount, balance: int) -> None:
    """One email per crossing below the warning amount; the flag re-arms when credits are added."""
    below = account.low_warning_amount > 0 and balance < account.low_warning_amount
    if below and not account.low_warning_sent:
        CreditAccount.objects.filter(pk=account.pk).update(low_warning_sent=True)
        account.low_warning_sent = True
        user = account.low_warning_user
        if user is not None and user.email:
            entity_name = account.entity.name
            subject = f"Imali: {entity_name} has {balance} {account.get_channel_display()} credits left"
            body = (f"{entity_name} has {balance} {account.get_channel_display()} credits left, below the warning "
                    f"amount of {account.low_warning_amount}. Buy more credits from the operator.")
            transaction.on_commit(lambda: send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email], fail_silently=True))
    elif not below and account.low_warning_sent:
        CreditAccount.objects.filter(pk=account.pk).update(low_warning_sent=False)
        account.low_warning_sent = False


def credits_debit(*, entity: Entity, channel: str, amount: int, messages: int, reference: str, actor=None,
                  now: dt.datetime | None = None) -> CreditEntry:
    """Spend `amount` credits. Refused, naming the reason, when the balance or the monthly limit
    does not allow it. Must run inside the caller's transaction."""
    if amount <= 0:
        raise messaging_error("amount", MessagingError.INVALID_AMOUNT, "A debit must be at least one credit.")
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("credits_debit must run inside the transaction that writes the messages it pays for.")
    account = _locked(entity, channel)
    if account.monthly_limit is not None:
        used = credits_used_between(entity=entity, channel=channel, start=month_start(entity, now))
        if used + amount > account.monthly_limit:
            raise messaging_error(
                "credits", MessagingError.MONTHLY_LIMIT_REACHED,
                f"The monthly limit of {account.monthly_limit:,} {_channel_word(channel)} credits would be exceeded: "
                f"{used:,} used this month, this send needs {amount:,}.")
    balance = _balance_of(account.pk)
    if balance < amount:
        raise messaging_error(
            "credits", MessagingError.INSUFFICIENT_CREDITS,
            f"Not enough {_channel_word(channel)} credits: {balance:,} left, this send needs {amount:,}.")
    return _write(account, kind=CreditEntryKind.DEBIT, amount=-amount, messages=messages, reference=reference, note="", actor=actor)


def credits_reserve(*, entity: Entity, channel: str, amount: int, messages: int, process: ProcessLog, actor=None,
                    now: dt.datetime | None = None) -> CreditReservation:
    """Set `amount` credits aside for the bulk run `process`: one debit under the ledger lock,
    refused like any debit when the balance or the monthly limit does not allow it. Runs inside
    the caller's short transaction (which creates the process log); the rows are written after
    it commits, and `reservation_settle` gives back the part not used."""
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("credits_reserve must run inside the transaction that starts the bulk run.")
    now = now or timezone.now()
    account = _locked(entity, channel)
    reservation = CreditReservation.objects.create(account=account, entity=entity, process=process, amount=amount,
                                                   messages=messages,
                                                   # wall-clock liveness, not the run's business time: rendering
                                                   # may have taken minutes since `now`
                                                   heartbeat_at=timezone.now())
    if amount:
        credits_debit(entity=entity, channel=channel, amount=amount, messages=messages, reference=f"process:{process.pk}",
                      actor=actor, now=now)
    return reservation


def reservation_settle(*, reservation_id: int, settled_by: str) -> tuple[CreditReservation, int]:
    """Close a reservation: the credits used are those of the outbox rows its run wrote; the rest
    goes back to the ledger. Idempotent: a settled reservation is returned as it is. Returns the
    reservation and the number of rows the run wrote.

    Lock order: the reservation row, then the ledger. A chunk being written holds the reservation
    row until it commits, so its rows are counted; after settlement no chunk writes any more."""
    with transaction.atomic():
        reservation = CreditReservation.objects.select_for_update().get(pk=reservation_id)
        written = OutboxMessage.objects.filter(process_id=reservation.process_id)
        count = written.count()
        if reservation.status == ReservationStatus.SETTLED:
            return reservation, count
        used = written.aggregate(total=Sum("credits"))["total"] or 0
        if used > reservation.amount:
            # Rows are written only from the reserved batch, so this would be a defect: refuse to
            # settle rather than hide an overspend.
            raise RuntimeError(f"Reservation {reservation.pk} paid for {reservation.amount} credits; its rows cost {used}.")
        unused = reservation.amount - used
        account = _locked(reservation.entity, reservation.account.channel)
        if unused:
            _write(account, kind=CreditEntryKind.REFUND, amount=unused, messages=max(reservation.messages - count, 0),
                   reference=f"process:{reservation.process_id}", note="unused part of the bulk run's reservation",
                   actor=None)
        reservation.status = ReservationStatus.SETTLED
        reservation.used = used
        reservation.refunded = unused
        reservation.settled_at = timezone.now()
        reservation.settled_by = settled_by
        reservation.save(update_fields=["status", "used", "refunded", "settled_at", "settled_by"])
    return reservation, count


def credits_refund(*, entity: Entity, channel: str, amount: int, messages: int, reference: str) -> CreditEntry | None:
    """Give back credits for messages that were never submitted."""
    if amount <= 0:
        return None
    with transaction.atomic():
        account = _locked(entity, channel)
        return _write(account, kind=CreditEntryKind.REFUND, amount=amount, messages=messages, reference=reference, note="", actor=None)


def credits_assign(*, actor, entity: Entity, channel: str, amount: int, note: str = "") -> CreditEntry:
    """The operator sells credits to an entity (or, with a negative amount, corrects a mistake)."""
    if not getattr(actor, "is_operator", False):
        raise PermissionDenied("Only the platform operator assigns credits.")
    if channel not in Channel.values:
        raise ValidationError({"channel": ["Choose SMS or email."]})
    if not isinstance(amount, int) or amount == 0:
        raise messaging_error("amount", MessagingError.INVALID_AMOUNT, "Enter a whole number of credits other than zero.")
    with transaction.atomic():
        account = _locked(entity, channel)
        balance = _balance_of(account.pk)
        if balance + amount < 0:
            raise messaging_error("amount", MessagingError.INVALID_AMOUNT,
                                  f"A correction of {amount} would leave a negative balance ({balance} left).")
        kind = CreditEntryKind.ASSIGNMENT if amount > 0 else CreditEntryKind.ADJUSTMENT
        entry = _write(account, kind=kind, amount=amount, messages=0, reference="operator", note=note, actor=actor)
        audit_record(action=AuditAction.CREDITS_ASSIGNED, actor=actor, entity=entity, target=entry,
                     subject=channel, before={"balance": balance}, after={"balance": entry.balance_after, "amount": amount, "note": note})
    return entry


def credit_settings_update(*, actor, entity: Entity, channel: str, monthly_limit: int | None,
                           low_warning_amount: int, low_warning_user=None) -> CreditAccount:
    """An entity's limits and low-credit warning of one channel (MAXSMS / MAXMAIL General Setup)."""
    right = Right.MAXMAIL_GENERAL_SETUP if channel == Channel.EMAIL else Right.MAXSMS_GENERAL_SETUP
    if channel not in Channel.values:
        raise ValidationError({"channel": ["Choose SMS or email."]})
    if not actor.has_right(right) or actor.entity_id != entity.pk:
        raise PermissionDenied(f"You need the '{right.label}' right of this entity.")
    errors = {}
    if monthly_limit is not None and monthly_limit < 0:
        errors["monthly_limit"] = [ValidationError("The monthly limit cannot be negative.",
                                                   code=MessagingError.INVALID_AMOUNT.value)]
    if low_warning_amount < 0:
        errors["low_warning_amount"] = [ValidationError("The warning amount cannot be negative.",
                                                        code=MessagingError.INVALID_AMOUNT.value)]
    if low_warning_user is not None and (low_warning_user.entity_id != entity.pk or not low_warning_user.is_active):
        errors["low_warning_user"] = [ValidationError("Choose an active user of your own entity.",
                                                      code=MessagingError.OTHER_ENTITY_USER.value)]
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        account = _locked(entity, channel)
        before = {"monthly_limit": account.monthly_limit, "low_warning_amount": account.low_warning_amount,
                  "low_warning_user": account.low_warning_user_id}
        account.monthly_limit = monthly_limit
        account.low_warning_amount = low_warning_amount
        account.low_warning_user = low_warning_user
        account.save(update_fields=["monthly_limit", "low_warning_amount", "low_warning_user"])
        after = {"monthly_limit": monthly_limit, "low_warning_amount": low_warning_amount,
                 "low_warning_user": account.low_warning_user_id}
        audit_record(action=AuditAction.CREDIT_SETTINGS_CHANGED, actor=actor, entity=entity, target=account,
                     subject=channel, before=before, after=after)
    return account


def credit_usage(*, entity: Entity, channel: str = Channel.SMS, start: dt.datetime | None = None,
                 end: dt.datetime | None = None) -> dict:
    """The usage screen: credits left, used this month, the monthly limit, and used between two dates."""
    account = credit_account_get(entity=entity, channel=channel)
    usage = {
        "balance": _balance_of(account.pk),
        "used_this_month": credits_used_between(entity=entity, channel=channel, start=month_start(entity)),
        "monthly_limit": account.monthly_limit,
        "low_warning_amount": account.low_warning_amount,
    }
    if start is not None:
        usage["used_between"] = credits_used_between(entity=entity, channel=channel, start=start, end=end)
    return usage


def _channel_word(channel: str) -> str:
    """As people write it: "SMS", "email"."""
    return "SMS" if channel == "sms" else channel.lower()
