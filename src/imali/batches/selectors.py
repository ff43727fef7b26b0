"""Reads of message batches: who a batch reaches (one query over the loan book per batch, never a
query per client), the merge values of all its recipients (set-based: the whole-book figures
selector once, plus one read of the latest loans), and a running batch's progress."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal

from django.db.models import Count, Exists, F, OuterRef, Q, QuerySet

from imali.clients.models import NO_ACCOUNT_NOTICES, Client, ClientStatus
from imali.loans.models import (
    DISBURSED_STATUSES,
    OPEN_STATUSES,
    Instalment,
    Loan,
    LoanStatus,
    NonLoanDebit,
    Receipt,
)
from imali.loans.selectors import portfolio_snapshot
from imali.messaging.models import MarketingOptOut, OutboxMessage, OutboxStatus, ProcessLog
from imali.tenancy.models import Entity

from .models import BatchPreviewRun, MessageBatch
from .types import BatchType

# The process-log kind of a batch run; the run's criteria carry the batch id ("batch").
PROCESS_KIND = "message_batch"

# A selection of up to this many clients reads the loan figures of those clients only; a larger
# one reads the whole book once. Measured on a 200k-client entity of the 1M book (SQLite): the
# figures of 8,500 chosen clients by id took 0.39 s, the whole book's 6.4 s, so reading by id wins
# until the selection is a large share of the book; the cap bounds the ids held in memory.
FIGURES_BY_ID_UP_TO = 50_000
# Ids per loan read: under SQLite's limit of bound parameters per statement.
_IDS_PER_READ = 10_000


def _unpaid(entity: Entity) -> QuerySet[Instalment]:
    # Written as the partial index instalment_unpaid_cover states its condition.
    return Instalment.objects.filter(entity=entity, open=True, paid__lt=F("amount"))


def _arrears(entity: Entity, criteria: Mapping, today: dt.date) -> Q:
    """An instalment in arrears (unpaid, due before today) that fell due in the range, and the
    client's whole arrears at least the minimum (exact: summed as whole cents)."""
    from imali.core.money import sum_cents

    # By day numbers (due_ord), which the covering index instalment_unpaid_cover holds: the rows are
    # read from the index alone.
    start, end = (dt.date.fromisoformat(str(criteria[k])).toordinal() for k in ("due_from", "due_to"))
    overdue = _unpaid(entity).filter(due_ord__lt=today.toordinal())
    in_range = Count("client_id", filter=Q(due_ord__gte=start, due_ord__lte=end))
    grouped = (overdue.order_by().values("client_id")
               .annotate(in_range=in_range, arrears=sum_cents(F("amount") - F("paid")))
               .filter(in_range__gt=0, arrears__gte=int(Decimal(criteria.get("min_arrears") or 0) * 100)))
    return _may_get_account_notices() & Q(pk__in=grouped.values("client_id"))


def _may_get_account_notices() -> Q:
    """Not deceased, under debt review or handed over: the same clients the automatic arrears SMS
    leaves out (one constant, clients.models.NO_ACCOUNT_NOTICES)."""
    return ~Q(status__in=NO_ACCOUNT_NOTICES)


def _good_and_allowed() -> Q:
    return Q(status=ClientStatus.GOOD, new_loans_allowed=True)


def _payment_received(entity: Entity, criteria: Mapping, today: dt.date) -> Q:
    """A payment in the range (not reversed, at least the minimum) and an instalment it made Paid:
    one fully paid on a day of the range."""
    receipts = Receipt.objects.filter(entity=entity, client_id=OuterRef("pk"), is_reversed=False,
                                      value_date__gte=criteria["paid_from"], value_date__lte=criteria["paid_to"],
                                      amount__gte=Decimal(criteria.get("min_payment") or 0))
    paid = Instalment.objects.filter(entity=entity, client_id=OuterRef("pk"), paid__gte=F("amount"),
                                     paid_on__gte=criteria["paid_from"], paid_on__lte=criteria["paid_to"])
    return _good_and_allowed() & Q(Exists(receipts)) & Q(Exists(paid))


def _owes_nothing(entity: Entity) -> Q:
    owing = _unpaid(entity).filter(client_id=OuterRef("pk"))
    debts = NonLoanDebit.objects.filter(entity=entity, client_id=OuterRef("pk"), settled_on__isnull=True)
    return ~Q(Exists(owing)) & ~Q(Exists(debts))


def _employer(criteria: Mapping) -> Q:
    return Q(employer_id=criteria["employer"]) if criteria.get("employer") else Q()


def _new_loan(entity: Entity, criteria: Mapping, today: dt.date) -> Q:
    return Q(status=ClientStatus.INACTIVE, new_loans_allowed=True) & _owes_nothing(entity) & _employer(criteria)


def _repeat_loan(entity: Entity, criteria: Mapping, today: dt.date) -> Q:
    """Borrowed before and paid every earlier loan: at least one loan paid up, none written off or
    handed over, and at most one loan on the book (the current one)."""
    loans = Loan.objects.filter(entity=entity, client_id=OuterRef("pk"))
    paid_up = loans.filter(status=LoanStatus.PAID_UP)
    bad = loans.filter(status__in=[LoanStatus.WRITTEN_OFF, LoanStatus.HANDED_OVER])
    two_open = (Loan.objects.filter(entity=entity, client_id=OuterRef("pk"), status__in=OPEN_STATUSES)
                .order_by().values("client_id").annotate(n=Count("id")).filter(n__gt=1))
    return _good_and_allowed() & Q(Exists(paid_up)) & ~Q(Exists(bad)) & ~Q(Exists(two_open)) & _employer(criteria)


def _payment_final(entity: Entity, criteria: Mapping, today: dt.date) -> Q:
    """Exactly one instalment still unpaid on the book, and it is the last scheduled one of its loan."""
    grouped = (_unpaid(entity).order_by().values("client_id")
               .annotate(n=Count("id"), final=Count("id", filter=Q(seq=F("loan__instalments"), kind="scheduled")))
               .filter(n=1, final=1))
    return _good_and_allowed() & Q(pk__in=grouped.values("client_id"))


def _crm(entity: Entity, criteria: Mapping, today: dt.date) -> Q:
    # A deceased client is never marketed to, whatever the filters.
    found = ~Q(status=ClientStatus.DECEASED) & _employer(criteria)
    if criteria.get("branch"):
        found &= Q(branch_id=criteria["branch"])
    if criteria.get("client_status"):
        found &= Q(status=criteria["client_status"])
    if criteria.get("has_open_loan") in ("yes", "no"):
        on_book = Q(Exists(Loan.objects.filter(entity=entity, client_id=OuterRef("pk"), status__in=OPEN_STATUSES)))
        found &= on_book if criteria["has_open_loan"] == "yes" else ~on_book
    return found


def _crm_loan_status(entity: Entity, criteria: Mapping, today: dt.date) -> Q:
    """Clients with a loan in the status chosen: a message about their loan, so never to those whose
    debt is with a counsellor or a collector (nor the dead), as for arrears."""
    with_status = Loan.objects.filter(entity=entity, client_id=OuterRef("pk"), status=criteria["loan_status"])
    return _may_get_account_notices() & Q(Exists(with_status))


_RULES = {
    BatchType.ARREARS: _arrears,
    BatchType.PAYMENT_RECEIVED: _payment_received,
    BatchType.NEW_LOAN: _new_loan,
    BatchType.REPEAT_LOAN: _repeat_loan,
    BatchType.PAYMENT_FINAL: _payment_final,
    BatchType.CRM: _crm,
    BatchType.CRM_LOAN_STATUS: _crm_loan_status,
}


def batch_selection(*, entity: Entity, batch_type: str, criteria: Mapping, today: dt.date) -> QuerySet[Client]:
    """The clients of `entity` a batch of `batch_type` reaches under `criteria` (already cleaned),
    by client number: one query (the rules are subqueries of it)."""
    rule = _RULES[BatchType(batch_type)]
    return Client.objects.filter(rule(entity, criteria, today), entity=entity).order_by("number")


# The columns a batch reads of each client chosen, in this order.
RECIPIENT_COLUMNS = ("id", "number", "name", "full_names", "surname", "cellphone", "marketing_consent",
                     "branch__name", "branch__telephone")


def recipient_rows(selection: QuerySet[Client]) -> Iterator[tuple]:
    """The selection's clients as RECIPIENT_COLUMNS tuples, streamed: one query."""
    return selection.values_list(*RECIPIENT_COLUMNS).iterator(chunk_size=5000)


def opted_out_numbers(*, entity: Entity) -> set[str]:
    return set(MarketingOptOut.objects.filter(entity=entity).values_list("number", flat=True))


def loan_merge_values(*, entity: Entity, today: dt.date, client_ids: Iterable[int] | None = None) -> dict[int, dict[str, str]]:
    """The loan merge fields of many clients at once, as messaging.services.client_loan_values
    gives them for one (the same figures, words and money format; a field with no value left out):
    one run of the whole-book figures selector and one read of the latest disbursed loans, never a
    query per client. `client_ids` None: every client of the book."""
    ids = None if client_ids is None else sorted(set(client_ids))
    if ids is not None and not ids:
        return {}
    figures = portfolio_snapshot(entity=entity, as_of=today, client_ids=ids)
    disbursed = Loan.objects.filter(entity=entity, status__in=DISBURSED_STATUSES)
    chunks = [disbursed] if ids is None else [disbursed.filter(client_id__in=ids[at:at + _IDS_PER_READ])
                                              for at in range(0, len(ids), _IDS_PER_READ)]
    currency = entity.currency
    money: dict[Decimal, str] = {}

    def fmt(amount: Decimal) -> str:
        found = money.get(amount)
        if found is None:
            found = money[amount] = f"{currency} {amount:,.2f}"
        return found

    values: dict[int, dict[str, str]] = {}
    # Ordered so that each client's latest agreement (latest date, then latest id) comes last and stays.
    for loans in chunks:
        for cid, principal, instalment in (loans.order_by("client_id", "disbursed_on", "id")
                                           .values_list("client_id", "principal", "instalment_amount")
                                           .iterator(chunk_size=5000)):
            values[cid] = {"Loan Amount": fmt(principal), "Instalment Amount": fmt(instalment)}
    for cid, f in figures.items():
        found = values.setdefault(cid, {})
        if f.open_loans:
            found["Client Total Outstanding Loan Amount"] = fmt(f.outstanding)
            found["Client Total Settlement Amount"] = fmt(f.settlement)
            if f.next_due_date is not None:
                found["Next Date Due"] = f.next_due_date.isoformat()
                found["Next Amount Due"] = fmt(f.next_amount_due)
        found["Change"] = fmt(f.change_available)
        found["Non-loan Debits"] = fmt(f.non_loan_debt)
    return values


# --- lists and progress --------------------------------------------------------------------------
def batch_list(*, entity: Entity) -> QuerySet[MessageBatch]:
    return MessageBatch.objects.filter(entity=entity).select_related("created_by", "process")


def batch_get(*, entity: Entity, batch_id: int) -> MessageBatch:
    return MessageBatch.objects.select_related("created_by", "process").get(entity=entity, pk=batch_id)


def preview_run_get(*, entity: Entity, run_id: int) -> BatchPreviewRun:
    """A background preview of this entity (another entity's: DoesNotExist). As the batches, it is
    visible to the entity's users who may send batches."""
    return BatchPreviewRun.objects.select_related("entity", "created_by").get(entity=entity, pk=run_id)


def batch_run_log(*, batch: MessageBatch) -> ProcessLog | None:
    """The process log of the batch's latest run (a resumed batch has one per run): the newest
    entry started no earlier than the run."""
    logs = ProcessLog.objects.filter(entity_id=batch.entity_id, kind=PROCESS_KIND, criteria__batch=batch.pk)
    if batch.started_at is not None:
        logs = logs.filter(started_at__gte=batch.started_at)
    return logs.order_by("-started_at", "-id").first()


def batch_written(*, batch: MessageBatch) -> int:
    """Outbox rows the batch has written so far: its earlier runs' (kept on the batch when it was
    resumed) and the current run's (its process log's rows)."""
    if batch.process_id is not None:
        return batch.queued
    log = batch_run_log(batch=batch)
    if log is None:
        return batch.queued
    return batch.queued + OutboxMessage.objects.filter(process_id=log.pk).count()


# Messages still on their way: waiting for the gateway, or sent and waiting for the handset's report.
DELIVERY_PENDING = (OutboxStatus.QUEUED, OutboxStatus.SUBMITTED)


def batch_delivery(*, batch: MessageBatch) -> list[tuple[str, str, int]]:
    """How the batch's SMSs stand with the gateways, over every run (a resumed batch has one
    process log per run): (status, its label, count) in OutboxStatus order, statuses with none
    left out. One query, by the outbox's process index."""
    runs = ProcessLog.objects.filter(entity_id=batch.entity_id, kind=PROCESS_KIND, criteria__batch=batch.pk).values("pk")
    counts = dict(OutboxMessage.objects.filter(entity_id=batch.entity_id, process_id__in=runs).order_by()
                  .values("status").annotate(n=Count("id")).values_list("status", "n"))
    return [(status.value, status.label, counts[status.value]) for status in OutboxStatus if counts.get(status.value)]
