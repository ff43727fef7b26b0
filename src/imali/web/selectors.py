"""The home page's reads: a lender's morning view of the book and of messaging, in few set-based
queries (the loan figures in one statement, the messaging figures through the messaging selectors).

Definitions (every amount in whole cents summed exactly, then shown as money):
- outstanding: amount − paid over the open, unpaid instalments (the loans on the book), as the
  snapshot defines it;
- arrears by age: what is unpaid on instalments due before today, by how many days each is overdue
  (1–30, 31–60, 61–90, 91–120, over 120), so an instalment ages into the next bucket on its own;
- collections: receipts not reversed by value date, today and this month to date (the entity's
  local day);
- disbursements: principal of loans paid out (agreement date) today and this month to date;
- pending approvals: applications not approved yet; approved, awaiting payout: approved loans;
- pending signatures: applications and approved loans whose agreement is not signed yet (a
  paid-out loan is past signing).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection

from imali.core.money import cents_sql
from imali.loans.models import DISBURSED_STATUSES, Instalment, Loan, LoanStatus, Receipt
from imali.signing.models import Signature
from imali.tenancy.models import Entity

# (label, first day overdue, last day overdue or None for open-ended)
ARREARS_AGES = (
    ("1–30 days", 1, 30),
    ("31–60 days", 31, 60),
    ("61–90 days", 61, 90),
    ("91–120 days", 91, 120),
    ("Over 120 days", 121, None),
)

def _money(cents) -> Decimal:
    return Decimal(int(cents or 0)).scaleb(-2)


@dataclass(frozen=True)
class AmountCount:
    amount: Decimal
    count: int


@dataclass(frozen=True)
class ArrearsAge:
    label: str
    amount: Decimal


@dataclass(frozen=True)
class BookMorning:
    as_of: dt.date
    outstanding: Decimal
    arrears: tuple[ArrearsAge, ...]
    collections_today: AmountCount
    collections_month: AmountCount
    disbursements_today: AmountCount
    disbursements_month: AmountCount
    pending_approvals: int
    awaiting_payout: int
    pending_signatures: int

    @property
    def arrears_total(self) -> Decimal:
        return sum((a.amount for a in self.arrears), Decimal("0.00"))


# Each row's amount becomes whole cents before summing: an integer sum is exact on both databases.
_cents = cents_sql


def _book_sql() -> str:
    instalments, receipts = Instalment._meta.db_table, Receipt._meta.db_table
    loans, signatures = Loan._meta.db_table, Signature._meta.db_table
    owe = _cents("i.amount - i.paid")
    ages = []
    for n, (_, first, last) in enumerate(ARREARS_AGES):
        condition = f"i.due_ord <= %(aso)s - {first}"
        if last is not None:
            condition += f" AND i.due_ord >= %(aso)s - {last}"
        ages.append(f"COALESCE(SUM({owe}) FILTER (WHERE {condition}), 0) AS age{n}")
    disbursed = ", ".join(f"'{s}'" for s in DISBURSED_STATUSES)
    principal = _cents("l.principal")
    amount = _cents("r.amount")
    return f"""
        SELECT b.*, c.*, d.*
        FROM (SELECT COALESCE(SUM({owe}), 0) AS outstanding, {", ".join(ages)}
              FROM {instalments} i
              WHERE i.entity_id = %(entity)s AND i.open AND i.paid < i.amount) b,
             (SELECT COUNT(*) FILTER (WHERE r.value_date = %(today)s) AS n_today,
                     COALESCE(SUM({amount}) FILTER (WHERE r.value_date = %(today)s), 0) AS today,
                     COUNT(*) AS n_month, COALESCE(SUM({amount}), 0) AS month
              FROM {receipts} r
              -- Only loans with a receipt this month (their running last_receipt_on, from the
              -- covering loan index): the receipts of the month, not the entity's whole history.
              WHERE r.loan_id IN (SELECT rl.id FROM {loans} rl
                                  WHERE rl.entity_id = %(entity)s AND rl.last_receipt_on >= %(month)s)
                AND r.entity_id = %(entity)s AND NOT r.is_reversed
                AND r.value_date >= %(month)s AND r.value_date <= %(today)s) c,
             (SELECT COUNT(*) FILTER (WHERE l.status IN ({disbursed}) AND l.disbursed_on = %(today)s) AS n_today,
                     COALESCE(SUM({principal}) FILTER (WHERE l.status IN ({disbursed}) AND l.disbursed_on = %(today)s), 0),
                     COUNT(*) FILTER (WHERE l.status IN ({disbursed}) AND l.disbursed_on >= %(month)s
                                        AND l.disbursed_on <= %(today)s) AS n_month,
                     COALESCE(SUM({principal}) FILTER (WHERE l.status IN ({disbursed}) AND l.disbursed_on >= %(month)s
                                                         AND l.disbursed_on <= %(today)s), 0),
                     COUNT(*) FILTER (WHERE l.status = '{LoanStatus.APPLICATION}') AS applications,
                     COUNT(*) FILTER (WHERE l.status = '{LoanStatus.APPROVED}') AS approved,
                     COUNT(*) FILTER (WHERE l.status IN ('{LoanStatus.APPLICATION}', '{LoanStatus.APPROVED}')
                                        AND NOT EXISTS (SELECT 1 FROM {signatures} g
                                                        WHERE g.loan_id = l.id AND g.mandate_id IS NULL)) AS unsigned
              FROM {loans} l
              WHERE l.entity_id = %(entity)s
                AND (l.status IN ('{LoanStatus.APPLICATION}', '{LoanStatus.APPROVED}')
                     OR (l.disbursed_on >= %(month)s AND l.disbursed_on <= %(today)s))) d
    """


def book_morning(*, entity: Entity, today: dt.date) -> BookMorning:
    """The loan figures of the home page on the entity's local `today`, in one query."""
    params = {"entity": entity.pk, "aso": today.toordinal(), "today": today, "month": today.replace(day=1)}
    with connection.cursor() as cursor:
        cursor.execute(_book_sql(), params)
        row = cursor.fetchone()
    outstanding, *ages = row[:1 + len(ARREARS_AGES)]
    (c_n_today, c_today, c_n_month, c_month, d_n_today, d_today, d_n_month, d_month,
     applications, approved, unsigned) = row[1 + len(ARREARS_AGES):]
    return BookMorning(
        as_of=today,
        outstanding=_money(outstanding),
        arrears=tuple(ArrearsAge(label, _money(cents)) for (label, _, _), cents in zip(ARREARS_AGES, ages, strict=True)),
        collections_today=AmountCount(_money(c_today), int(c_n_today)),
        collections_month=AmountCount(_money(c_month), int(c_n_month)),
        disbursements_today=AmountCount(_money(d_today), int(d_n_today)),
        disbursements_month=AmountCount(_money(d_month), int(d_n_month)),
        pending_approvals=int(applications),
        awaiting_payout=int(approved),
        pending_signatures=int(unsigned),
    )


@dataclass(frozen=True)
class MessagingMorning:
    credits_left: int
    sent_month: int
    delivered_month: int
    finished_month: int
    delivery_rate: Decimal | None  # percent, one decimal; None when nothing finished this month


def messaging_morning(*, entity: Entity, today: dt.date) -> MessagingMorning:
    """SMS credits left and this month's delivery rate, through the messaging selectors (the
    credit ledger's latest entry; the usage screen's one grouped count)."""
    from imali.messaging.credits import credit_balance
    from imali.messaging.reports import messages_per_day

    usage = messages_per_day(entity=entity, first=today.replace(day=1), last=today)
    return MessagingMorning(credits_left=credit_balance(entity=entity), sent_month=usage.sent,
                            delivered_month=usage.totals["delivered"], finished_month=usage.finished,
                            delivery_rate=usage.delivery_rate)
