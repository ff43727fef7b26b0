"""Reads for the loan screens and API beyond the whole-book figures of `selectors`: a client's
non-loan debits, change refunds and what is available, a loan's audit trail, and the loan page's
schedule with its figures. Each is one or two queries scoped to the caller's entity."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, QuerySet

from imali.core.models import AuditEntry
from imali.core.money import aggregate_money
from imali.tenancy.models import Entity

from . import rules
from .models import OPEN_STATUSES, ChangeRefund, Instalment, Loan, NonLoanDebit, Receipt

ZERO = Decimal("0.00")


def non_loan_debit_list(*, entity: Entity, client_id: int | None = None, open_only: bool = False) -> QuerySet[NonLoanDebit]:
    found = NonLoanDebit.objects.filter(entity=entity).select_related("client", "created_by", "settled_by")
    if client_id is not None:
        found = found.filter(client_id=client_id)
    if open_only:
        found = found.filter(settled_on__isnull=True)
    return found


def non_loan_debt(*, entity: Entity, client_id: int) -> Decimal:
    """What the client owes on debits not yet settled."""
    return aggregate_money(NonLoanDebit.objects.filter(entity=entity, client_id=client_id, settled_on__isnull=True),
                           t="amount")["t"]


def change_refund_list(*, entity: Entity, loan_id: int | None = None, client_id: int | None = None) -> QuerySet[ChangeRefund]:
    found = ChangeRefund.objects.filter(entity=entity).select_related("loan", "client", "paid_by", "reversed_by")
    if loan_id is not None:
        found = found.filter(loan_id=loan_id)
    if client_id is not None:
        found = found.filter(client_id=client_id)
    return found


def loans_with_change(*, entity: Entity, client_id: int) -> QuerySet[Loan]:
    """The client's loans holding change available, oldest first."""
    return Loan.objects.filter(entity=entity, client_id=client_id, change_total__gt=0).select_related("product").order_by("pk")


def loan_audit_trail(*, entity: Entity, loan: Loan, limit: int = 100) -> list[AuditEntry]:
    """Audit entries about the loan, its receipts and its change refunds, newest first."""
    receipt_ids = [str(pk) for pk in Receipt.objects.filter(loan=loan).values_list("pk", flat=True)[:500]]
    refund_ids = [str(pk) for pk in ChangeRefund.objects.filter(loan=loan).values_list("pk", flat=True)[:500]]
    about = Q(object_type=Loan._meta.label, object_id=str(loan.pk))
    if receipt_ids:
        about |= Q(object_type=Receipt._meta.label, object_id__in=receipt_ids)
    if refund_ids:
        about |= Q(object_type=ChangeRefund._meta.label, object_id__in=refund_ids)
    return list(AuditEntry.objects.filter(about, entity=entity).select_related("actor").order_by("-created_at", "-id")[:limit])


@dataclass(frozen=True)
class LoanPage:
    """What the loan page shows about its schedule, from one read of the instalments."""

    schedule: list[tuple[Instalment, str]]  # each instalment with its status on the day
    figures: rules.LoanFigures
    settlement: Decimal


def loan_page(*, loan: Loan, as_of: dt.date) -> LoanPage:
    instalments = list(Instalment.objects.filter(loan=loan).order_by("seq"))
    # Nothing to settle on a loan not on the book (not yet paid out, paid up, written off).
    settlement = rules.settlement_amount([
        rules.SettlementLine.of(i)
        for i in instalments if i.open
    ], as_of=as_of) if loan.status in OPEN_STATUSES else Decimal("0.00")
    return LoanPage(
        schedule=[(i, rules.instalment_status(amount=i.amount, paid=i.paid, due_date=i.due_date, as_of=as_of))
                  for i in instalments],
        figures=rules.LoanFigures.of(instalments, as_of=as_of),
        settlement=settlement,
    )
