"""Reads of the loan book. The whole-book figures are set-based: one grouped query per table
(instalments, loans, receipts, non-loan debits), never a query or a Python loop per loan.

Definitions (the pure versions are in `rules`; tests hold these queries to them):
- outstanding: amount − paid over the instalments of loans on the book (active, handed over);
- arrears: what is unpaid on instalments whose due date is before `as_of`; days in arrears count
  from the oldest such due date; months in arrears are 1–30 days = 1, 31–60 = 2, ...;
- next date / amount due: the earliest due date on or after `as_of` with something unpaid, and
  everything unpaid on that date;
- obligation buckets: what is unpaid on instalments due 0–30, 31–60, 61–90, 91–120 and 121+ days
  after `as_of` (arrears are not in the buckets; they are the arrears figure);
- settlement at `as_of`: capital owing + interest accrued to `as_of` (pro rata by days in the
  current period, rounded half up to the cent) and unpaid + fees and VAT due by `as_of`;
- %OfAllCapitalPD: 100 × everything paid ÷ everything charged, over all the client's disbursed loans;
- date totally paid: the last paid-up date, for a client with nothing left on the book.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection
from django.db.models import CharField, Count, Max, Q, QuerySet, Sum, Value
from django.db.models.functions import Cast, Concat

from imali.tenancy.models import Entity

from . import rules
from .models import (
    DISBURSED_STATUSES,
    OPEN_STATUSES,
    Instalment,
    Loan,
    LoanStatus,
    NonLoanDebit,
    Product,
    Receipt,
)

ZERO = Decimal("0.00")
CENT = Decimal("0.01")


@dataclass(frozen=True)
class ClientFigures:
    client_id: int
    outstanding: Decimal = ZERO
    arrears_amount: Decimal = ZERO
    arrears_days: int = 0
    arrears_months: int = 0
    next_due_date: dt.date | None = None
    next_amount_due: Decimal = ZERO
    due_30: Decimal = ZERO
    due_60: Decimal = ZERO
    due_90: Decimal = ZERO
    due_120: Decimal = ZERO
    due_120_plus: Decimal = ZERO
    settlement: Decimal = ZERO
    pct_of_all_capital_pd: Decimal = ZERO
    last_receipt_date: dt.date | None = None
    days_since_last_receipt: int | None = None
    change_available: Decimal = ZERO
    non_loan_debt: Decimal = ZERO
    last_agreement_date: dt.date | None = None
    last_agreement_product: str = ""
    days_since_last_loan: int | None = None
    open_loans: int = 0
    date_totally_paid: dt.date | None = None


def _dec(value) -> Decimal:
    if value is None:
        return ZERO
    if not isinstance(value, Decimal):
        value = Decimal(str(value))  # SQLite sums come back as float or int
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _cents(value) -> Decimal:
    return (Decimal(int(value or 0)) * CENT).quantize(CENT)


def _instalment_sql(client_filter: str) -> str:
    table = Instalment._meta.db_table
    owing = "(i.amount - i.paid)"
    # Interest accrued in the current period, in whole cents, rounded half up, by integer arithmetic
    # (identical on SQLite and PostgreSQL): (2·interest·elapsed + period) div (2·period).
    ic = "CAST(ROUND(i.interest * 100) AS BIGINT)"
    ipc = "CAST(ROUND(i.interest_paid * 100) AS BIGINT)"
    accrued = f"((2 * {ic} * (%(aso)s - i.start_ord) + (i.due_ord - i.start_ord)) / (2 * (i.due_ord - i.start_ord)))"
    return f"""
        SELECT i.client_id,
          SUM(CASE WHEN i.open = %(t)s THEN {owing} ELSE 0 END),
          SUM(CASE WHEN i.open = %(t)s AND i.due_ord < %(aso)s THEN {owing} ELSE 0 END),
          MIN(CASE WHEN i.open = %(t)s AND i.due_ord < %(aso)s AND i.paid < i.amount THEN i.due_ord END),
          MIN(n.next_ord),
          SUM(CASE WHEN i.open = %(t)s AND i.due_ord = n.next_ord THEN {owing} ELSE 0 END),
          SUM(CASE WHEN i.open = %(t)s AND i.due_ord >= %(aso)s AND i.due_ord <= %(aso)s + 30 THEN {owing} ELSE 0 END),
          SUM(CASE WHEN i.open = %(t)s AND i.due_ord > %(aso)s + 30 AND i.due_ord <= %(aso)s + 60 THEN {owing} ELSE 0 END),
          SUM(CASE WHEN i.open = %(t)s AND i.due_ord > %(aso)s + 60 AND i.due_ord <= %(aso)s + 90 THEN {owing} ELSE 0 END),
          SUM(CASE WHEN i.open = %(t)s AND i.due_ord > %(aso)s + 90 AND i.due_ord <= %(aso)s + 120 THEN {owing} ELSE 0 END),
          SUM(CASE WHEN i.open = %(t)s AND i.due_ord > %(aso)s + 120 THEN {owing} ELSE 0 END),
          SUM(CASE WHEN i.open = %(t)s THEN i.capital - i.capital_paid ELSE 0 END),
          SUM(CASE WHEN i.open = %(t)s AND i.due_ord <= %(aso)s THEN {owing} - (i.capital - i.capital_paid) ELSE 0 END),
          SUM(CASE WHEN i.open = %(t)s AND i.due_ord > %(aso)s AND i.start_ord < %(aso)s AND {accrued} > {ipc}
                   THEN {accrued} - {ipc} ELSE 0 END),
          SUM(i.paid),
          SUM(i.amount)
        FROM {table} i
        LEFT JOIN (
          SELECT client_id, MIN(due_ord) AS next_ord FROM {table}
          WHERE entity_id = %(entity)s AND open = %(t)s AND paid < amount AND due_ord >= %(aso)s {client_filter}
          GROUP BY client_id
        ) n ON n.client_id = i.client_id
        WHERE i.entity_id = %(entity)s {client_filter.replace("client_id", "i.client_id")}
        GROUP BY i.client_id
    """


def portfolio_snapshot(*, entity: Entity, as_of: dt.date, client_ids: list[int] | None = None) -> dict[int, ClientFigures]:
    """Every figure of the book for every client of `entity` that has a loan, receipt or debit."""
    aso = as_of.toordinal()
    params: dict = {"entity": entity.pk, "aso": aso, "t": True}
    client_filter = ""
    if client_ids is not None:
        if not client_ids:
            return {}
        client_filter = "AND client_id IN (" + ", ".join(str(int(c)) for c in client_ids) + ")"
    rows: dict[int, dict] = {}
    with connection.cursor() as cursor:
        cursor.execute(_instalment_sql(client_filter), params)
        for (cid, outstanding, arrears, oldest, next_ord, next_amount, d30, d60, d90, d120, d120p, capital_owing,
             charges_due, accrued_cents, paid_all, amount_all) in cursor.fetchall():
            days = aso - oldest if oldest is not None else 0
            paid_all, amount_all = _dec(paid_all), _dec(amount_all)
            rows[cid] = {
                "outstanding": _dec(outstanding), "arrears_amount": _dec(arrears), "arrears_days": days,
                "arrears_months": rules.months_in_arrears(days),
                "next_due_date": dt.date.fromordinal(next_ord) if next_ord is not None else None,
                "next_amount_due": _dec(next_amount), "due_30": _dec(d30), "due_60": _dec(d60), "due_90": _dec(d90),
                "due_120": _dec(d120), "due_120_plus": _dec(d120p),
                "settlement": _dec(capital_owing) + _dec(charges_due) + _cents(accrued_cents),
                "pct_of_all_capital_pd": (paid_all * 100 / amount_all).quantize(CENT, rounding=ROUND_HALF_UP)
                if amount_all else ZERO,
            }

    def scoped(qs: QuerySet) -> QuerySet:
        qs = qs.filter(entity=entity)
        return qs.filter(client_id__in=client_ids) if client_ids is not None else qs

    receipts = scoped(Receipt.objects.filter(is_reversed=False)).values("client_id").annotate(
        last=Max("value_date"), change=Sum("change")).order_by()
    for r in receipts:
        row = rows.setdefault(r["client_id"], {})
        row["last_receipt_date"] = r["last"]
        row["days_since_last_receipt"] = (as_of - r["last"]).days
        row["change_available"] = _dec(r["change"])

    products = dict(Product.objects.filter(entity=entity).values_list("id", "name"))
    # The latest agreement and its product in one pass: the maximum of "date|product id".
    latest = Max(Concat(Cast("disbursed_on", CharField()), Value("|"), Cast("product_id", CharField()), output_field=CharField()),
                 filter=Q(status__in=DISBURSED_STATUSES))
    loans = scoped(Loan.objects.all()).values("client_id").annotate(
        latest=latest, open_loans=Count("id", filter=Q(status__in=OPEN_STATUSES)),
        paid_up=Max("paid_up_on", filter=Q(status=LoanStatus.PAID_UP)),
    ).order_by()
    for r in loans:
        row = rows.setdefault(r["client_id"], {})
        row["open_loans"] = r["open_loans"]
        if r["latest"]:
            day, product_id = r["latest"].split("|")
            agreement = dt.date.fromisoformat(day[:10])
            row["last_agreement_date"] = agreement
            row["last_agreement_product"] = products.get(int(product_id), "")
            row["days_since_last_loan"] = (as_of - agreement).days
        if r["open_loans"] == 0 and r["paid_up"] is not None:
            row["date_totally_paid"] = r["paid_up"]

    debts = scoped(NonLoanDebit.objects.filter(settled_on__isnull=True)).values("client_id").annotate(s=Sum("amount")).order_by()
    for r in debts:
        rows.setdefault(r["client_id"], {})["non_loan_debt"] = _dec(r["s"])

    return {cid: ClientFigures(client_id=cid, **row) for cid, row in rows.items()}


def client_figures(*, entity: Entity, client_id: int, as_of: dt.date) -> ClientFigures:
    return portfolio_snapshot(entity=entity, as_of=as_of, client_ids=[client_id]).get(client_id, ClientFigures(client_id=client_id))


# --- lists and details ---------------------------------------------------------------------------
def product_list(*, entity: Entity, active_only: bool = False) -> QuerySet[Product]:
    qs = Product.objects.filter(entity=entity)
    return qs.filter(is_active=True) if active_only else qs


def loan_list(*, entity: Entity, status: str | None = None, client_id: int | None = None) -> QuerySet[Loan]:
    qs = Loan.objects.filter(entity=entity).select_related("client", "product")
    if status:
        qs = qs.filter(status=status)
    if client_id is not None:
        qs = qs.filter(client_id=client_id)
    return qs


def loan_get(*, entity: Entity, loan_id: int) -> Loan:
    return Loan.objects.select_related("client", "product", "payout_account").get(entity=entity, pk=loan_id)


def receipt_list(*, entity: Entity, loan_id: int | None = None, client_id: int | None = None) -> QuerySet[Receipt]:
    qs = Receipt.objects.filter(entity=entity).select_related("loan", "client")
    if loan_id is not None:
        qs = qs.filter(loan_id=loan_id)
    if client_id is not None:
        qs = qs.filter(client_id=client_id)
    return qs


def instalments_with_status(*, loan: Loan, as_of: dt.date) -> list[tuple[Instalment, str]]:
    """The schedule of one loan with each instalment's status on `as_of`."""
    return [
        (i, rules.instalment_status(amount=i.amount, paid=i.paid, due_date=i.due_date, as_of=as_of))
        for i in Instalment.objects.filter(loan=loan).order_by("seq")
    ]


def loan_settlement(*, loan: Loan, as_of: dt.date) -> Decimal:
    """Settlement quote for one loan (the same definition as the snapshot's, via the pure rule)."""
    lines = [
        rules.SettlementLine(
            start_date=i.start_date, due_date=i.due_date, capital_owing=i.capital - i.capital_paid,
            interest=i.interest, interest_paid=i.interest_paid, interest_owing=i.interest - i.interest_paid,
            fee_owing=i.fee - i.fee_paid + i.vat - i.vat_paid,
        )
        for i in Instalment.objects.filter(loan=loan, open=True)
    ]
    return rules.settlement_amount(lines, as_of=as_of)


def loan_outstanding(*, loan: Loan) -> Decimal:
    agg = Instalment.objects.filter(loan=loan, open=True).aggregate(a=Sum("amount"), p=Sum("paid"))
    return _dec(agg["a"]) - _dec(agg["p"])
