"""Confirmation callbacks stored by the web request, posted set-based by the consumer.

The callback (`services.payment_in_receive`) authenticates, stores the payment as RECEIVED — one
INSERT, unique per (setup, provider transaction id), committed before M-PESA is answered, so the
payment is durable and a repeated or concurrent callback changes nothing — and asks the consumer
to post. `payments_received_post` then posts every stored payment in batches, each batch one
transaction:

1. the RECEIVED rows, oldest first, locked (PostgreSQL: SKIP LOCKED, so two consumers split the
   work instead of waiting for each other);
2. per entity: the references already on a receipt (captured by hand: the same money, recorded
   already), the loans the payments name (match_payment's rules, a few queries for the whole
   batch), the loans locked with their open instalments (`loans.services.loans_hold`, loan id
   order);
3. each payment in arrival order, in memory, through `loans.services.receipt_input` and
   `loans.posting.post_held` — the rules `receipt_post` applies to one receipt — a refusal or no
   match leaves it in suspense with the reason;
4. the writes, one statement per table (`loans.services.receipts_write_held`; the payments'
   outcome by `core.bulk.update_rows`) and the audit entries, in bulk: per payment
   `mobilemoney.payment_received` and per receipt `receipt.posted`, as the one-at-a-time path
   writes them.

Then, after the commit, the clients' confirmation SMSs of the batch, set-based too
(`payment_confirmations_send_many`: one ledger lock for the batch, not one per SMS).

The trigger is debounced: a callback enqueues the posting task only when no task is pending
(`POST_FLAG`, a key in Huey's storage that the task clears *before* reading the rows, so a
payment committed after the read always finds the flag clear and enqueues a new task). A task that
was lost (queue down, consumer killed) is covered by the recovery pass (`mobile_money_recover`,
every minute), which posts whatever is still RECEIVED and clears the flag.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections import defaultdict

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction

from imali.clients.models import Client
from imali.core import bulk
from imali.core.audit import snapshot
from imali.core.models import AuditAction, AuditEntry
from imali.loans.models import OPEN_STATUSES, Loan, LoanStatus, Receipt
from imali.loans.services import (
    HeldReceipt,
    loans_hold,
    local_today,
    receipts_write_held,
)
from imali.tenancy.models import Entity

from .bulk import loans_with_phone, payment_post_held
from .models import ConfirmationSms, ProviderTransaction, TransactionStatus

log = logging.getLogger("imali.mobilemoney")

BATCH = 1000
RETRIES = 3
POST_FLAG = "imali:mobilemoney:post-pending"

_FIELDS = ("pk", "entity_id", "setup_id", "provider_transaction_id", "source", "amount", "transacted_at",
           "account_reference", "msisdn")


# --- the trigger -----------------------------------------------------------------------------------
def post_soon() -> None:
    """After a RECEIVED payment committed: enqueue the posting task unless one is pending already.
    If the queue cannot take it, the payment stays RECEIVED and the recovery pass posts it."""
    from .tasks import payments_received_post_task

    try:
        if settings.HUEY.put_if_empty(POST_FLAG, "1"):
            payments_received_post_task()
    except Exception:  # the task queue is down: the payment is stored; the recovery pass posts it
        log.warning("confirmation posting left to the recovery pass (task queue unavailable)", exc_info=True)


def post_flag_clear() -> None:
    try:
        settings.HUEY.delete(POST_FLAG)
    except Exception:  # the queue is down: nothing is enqueued now anyway
        log.warning("could not clear the confirmation posting flag", exc_info=True)


# --- posting -----------------------------------------------------------------------------------------
def payments_received_post(*, batch: int = BATCH) -> int:
    """Post every payment still RECEIVED, `batch` at a time (each batch one transaction), then
    queue their confirmation SMSs. Returns how many payments were posted or put in suspense."""
    done = 0
    while True:
        ids = _post_batch_retrying(batch)
        if ids:
            payment_confirmations_send_many(txn_ids=ids)
        done += len(ids)
        if len(ids) < batch:
            return done


def _post_batch_retrying(batch: int) -> list[int]:
    for attempt in range(RETRIES + 1):
        try:
            with transaction.atomic():
                return _post_batch(batch)
        except IntegrityError:
            # A receipt with one of the batch's references committed meanwhile (captured by hand,
            # a statement line of another setup): read the batch again, it now sees that receipt.
            if attempt == RETRIES:
                raise
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != "40P01" or attempt == RETRIES:
                raise
    return []  # pragma: no cover


def _post_batch(batch: int) -> list[int]:
    """One batch in the caller's transaction: returns the ids of the payments it settled."""
    query = ProviderTransaction.objects.filter(status=TransactionStatus.RECEIVED).order_by("pk")
    if connection.features.has_select_for_update_skip_locked:
        query = query.select_for_update(skip_locked=True)
    rows = [dict(zip(_FIELDS, r, strict=True)) for r in query.values_list(*_FIELDS)[:batch]]
    if not rows:
        return []
    by_entity: dict[int, list[dict]] = defaultdict(list)
    for row in rows:
        by_entity[row["entity_id"]].append(row)
    entities = Entity.objects.in_bulk(list(by_entity))
    updates: list[tuple] = []
    audit: list[AuditEntry] = []
    for entity_id, payments in by_entity.items():
        _post_entity(entities[entity_id], payments, updates, audit)
    bulk.update_rows(ProviderTransaction, ["status", "receipt_id", "loan_id", "suspense_reason", "confirmation_sms"],
                     updates, casts=["varchar", "bigint", "bigint", "varchar", "varchar"])
    AuditEntry.objects.bulk_create(audit)
    return [row["pk"] for row in rows]


def _candidates(entity: Entity, payments: list[dict]) -> dict[int, tuple[list[int], str]]:
    """{payment id: (the loans it may be for, first choice first; or [], why none)} by the rules
    of services.match_payment, in a few queries for the whole batch."""
    from .services import NOT_ONE_CLIENTS_PHONE, reference_read

    wanted: dict[str, set] = {"loan": set(), "client": set(), "phone": set()}
    kinds: dict[int, tuple[str, object]] = {}
    for p in payments:
        read = reference_read(p["account_reference"], p["msisdn"])
        kinds[p["pk"]] = (read.kind, read.value)
        if read.kind in wanted:
            wanted[read.kind].add(read.value)
    wanted_loans, numbers, phones = wanted["loan"], wanted["client"], wanted["phone"]
    loan_status = dict(Loan.objects.filter(entity=entity, pk__in=wanted_loans).values_list("pk", "status")) if wanted_loans else {}
    client_by_number = dict(Client.objects.filter(entity=entity, number__in=numbers).values_list("number", "pk")) if numbers else {}
    clients_by_phone: dict[str, list[int]] = defaultdict(list)
    if phones:
        for pk, phone in Client.objects.filter(entity=entity, cellphone__in=phones).values_list("pk", "cellphone"):
            clients_by_phone[phone].append(pk)
    client_ids = set(client_by_number.values()) | {c[0] for c in clients_by_phone.values() if len(c) == 1}
    open_loans: dict[int, list[int]] = defaultdict(list)
    if client_ids:
        for pk, client_id in (Loan.objects.filter(entity=entity, client_id__in=client_ids, status__in=OPEN_STATUSES)
                              .order_by("disbursed_on", "id").values_list("pk", "client_id")):
            open_loans[client_id].append(pk)
    out: dict[int, tuple[list[int], str]] = {}
    for pk, (kind, value) in kinds.items():
        if kind == "loan":
            status = loan_status.get(value)
            if status is None:
                out[pk] = ([], f"No loan {value}.")
            elif status not in OPEN_STATUSES:
                out[pk] = ([], f"Loan {value} is {LoanStatus(status).label}, not on the book.")
            else:
                out[pk] = ([value], "")
        elif kind == "client":
            client = client_by_number.get(value)
            if client is None:
                out[pk] = ([], f"No client number {value}.")
            else:
                loans = open_loans.get(client, [])
                out[pk] = (loans, "" if loans else f"Client {value} has no loan on the book.")
        elif kind == "phone":
            found = clients_by_phone.get(value, [])
            if len(found) != 1:
                out[pk] = ([], NOT_ONE_CLIENTS_PHONE)
            else:
                loans = open_loans.get(found[0], [])
                out[pk] = (loans, "" if loans else "The paying phone's client has no loan on the book.")
        else:
            out[pk] = ([], value)
    return out


def _post_entity(entity: Entity, payments: list[dict], updates: list[tuple], audit: list[AuditEntry]) -> None:
    refs = [p["provider_transaction_id"] for p in payments]
    by_hand = {ref: (pk, loan_id) for ref, pk, loan_id in Receipt.objects.filter(
        entity=entity, external_reference__in=refs).exclude(external_reference="").values_list(
            "external_reference", "pk", "loan_id")}
    candidates = _candidates(entity, [p for p in payments if p["provider_transaction_id"] not in by_hand])
    loans = loans_hold(entity=entity, loan_ids=sorted({pk for found, _ in candidates.values() for pk in found}))
    with_phone = loans_with_phone(loans)
    zone = zoneinfo.ZoneInfo(entity.time_zone)
    today = local_today(entity)
    receipts: list[HeldReceipt] = []
    outcome: dict[int, list] = {}  # payment id -> [status, receipt id | HeldReceipt | None, loan id, reason, sms, audited]
    posted_here: dict[str, HeldReceipt] = {}  # reference -> its receipt in this batch (another setup, same number)
    for p in payments:
        ref = p["provider_transaction_id"]
        if ref in by_hand:
            # Captured by hand before the provider told us: the same money, recorded already.
            receipt_id, loan_id = by_hand[ref]
            outcome[p["pk"]] = [TransactionStatus.POSTED, receipt_id, loan_id, "", ConfirmationSms.NONE, False]
            continue
        if ref in posted_here:
            held = posted_here[ref]
            outcome[p["pk"]] = [TransactionStatus.POSTED, held, held.loan.pk, "", ConfirmationSms.NONE, False]
            continue
        found, reason = candidates[p["pk"]]
        held, refusal = payment_post_held(entity=entity, loans=loans, found=found, reason=reason, amount=p["amount"],
                                          value_date=p["transacted_at"].astimezone(zone).date(), reference=ref, today=today)
        if held is None:
            outcome[p["pk"]] = [TransactionStatus.SUSPENSE, None, None, refusal, ConfirmationSms.NONE, True]
            continue
        receipts.append(held)
        posted_here[ref] = held
        sms = ConfirmationSms.PENDING if held.loan.pk in with_phone else ConfirmationSms.NONE
        outcome[p["pk"]] = [TransactionStatus.POSTED, held, held.loan.pk, "", sms, True]
    receipts_write_held(entity=entity, actor=None, receipts=receipts)
    written = {r.pk: r for r in Receipt.objects.filter(pk__in=[h.id for h in receipts])} if receipts else {}
    for held in receipts:
        receipt = written[held.id]
        audit.append(AuditEntry(action=AuditAction.RECEIPT_POSTED, entity=entity, object_type=Receipt._meta.label,
                                object_id=str(receipt.pk), subject=held.reference[:150], after=snapshot(receipt)))
    for p in payments:
        status, receipt, loan_id, reason, sms, audited = outcome[p["pk"]]
        receipt_id = receipt.id if isinstance(receipt, HeldReceipt) else receipt
        updates.append((p["pk"], status, receipt_id, loan_id, reason, sms))
        if audited:
            audit.append(AuditEntry(
                action=AuditAction.MOBILE_PAYMENT_RECEIVED, entity=entity, object_type=ProviderTransaction._meta.label,
                object_id=str(p["pk"]), subject=p["provider_transaction_id"][:150],
                after={"amount": str(p["amount"]), "status": status, "source": p["source"], "loan_id": loan_id,
                       "reason": reason, "receipt_id": receipt_id}))


# --- the clients' SMSs -------------------------------------------------------------------------------
def payment_confirmations_send_many(*, txn_ids: list[int]) -> int:
    """Queue the confirmation SMS of each of these payments whose mark is PENDING, once: the rows
    locked and their marks set in one short transaction with the enqueue (messaging's
    `messages_enqueue_many`: one ledger lock and one debit per entity, not per SMS; the idempotency
    key per setup and transaction id makes a second attempt a no-op). A refusal by messaging (no
    credits, monthly limit, the type switched off) marks NOT_SENT and never undoes the payment.
    Returns how many were settled (queued or refused)."""
    from imali.messaging.models import MessageType
    from imali.messaging.services import Outgoing, messages_enqueue_many, template_text

    from .services import _confirmation_text

    if not txn_ids:
        return 0
    with transaction.atomic():
        txns = list(ProviderTransaction.objects.select_for_update(of=("self",))
                    .select_related("entity", "setup", "loan__client__branch")
                    .filter(pk__in=txn_ids, confirmation_sms=ConfirmationSms.PENDING).order_by("pk"))
        marks: list[tuple] = []
        by_entity: dict[int, list[ProviderTransaction]] = defaultdict(list)
        for txn in txns:
            if txn.loan is None or not txn.loan.client.cellphone:
                marks.append((txn.pk, ConfirmationSms.NONE))
            else:
                by_entity[txn.entity_id].append(txn)
        for group in by_entity.values():
            entity = group[0].entity
            template = template_text(entity=entity, message_type=MessageType.PAYMENT_RECEIVED)
            messages = [Outgoing(number=t.loan.client.cellphone, text=_confirmation_text(t, t.loan, template=template),
                                 idempotency_key=f"mm-payment:{t.setup_id}:{t.provider_transaction_id}", client=t.loan.client)
                        for t in group]
            try:
                results = messages_enqueue_many(entity=entity, message_type=MessageType.PAYMENT_RECEIVED, messages=messages)
            except (ValidationError, PermissionDenied) as exc:  # the type switched off for the entity
                log.warning("confirmation SMSs not queued: %s", exc)
                results = [exc] * len(group)
            for txn, result in zip(group, results, strict=True):
                if isinstance(result, Exception):
                    log.warning("payment %s: confirmation SMS not queued: %s", txn.provider_transaction_id, result)
                marks.append((txn.pk, ConfirmationSms.NOT_SENT if isinstance(result, Exception) else ConfirmationSms.QUEUED))
        bulk.update_rows(ProviderTransaction, ["confirmation_sms"], marks, casts=["varchar"])
    return len(marks)
