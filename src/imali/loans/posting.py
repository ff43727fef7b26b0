"""The rules of posting one receipt onto a loan the caller holds locked, in memory (no queries).

`receipt_post` (one receipt) and `receipts_post_held` (a day's collections, set-based) both call
`post_held`, so the checks, their order and messages, the allocation and what the receipt changes
on the instalments and the loan are written once. The caller reads the loan and its open
instalments under the loan's row lock, calls `post_held` once per receipt in the order the money
arrived (each call sees what the earlier ones changed), and writes what it returns.

The loan and instalments may be model instances or the light `HeldLoan` / `HeldInstalment`
below: only the attributes named there are read and changed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

from .allocation import AllocationLine, Owing, allocate_in_order
from .errors import LoanError, error
from .models import OPEN_STATUSES, LoanStatus

ZERO = Decimal("0.00")


class HeldInstalment:
    """An open instalment as posting sees it (services.INSTALMENT_HOLD_COLUMNS)."""

    __slots__ = ("pk", "start_date", "due_date", "fee", "vat", "interest", "capital", "amount", "fee_paid", "vat_paid",
                 "interest_paid", "capital_paid", "paid", "paid_on")

    def __init__(self, pk, start_date, due_date, fee, vat, interest, capital, amount, fee_paid, vat_paid, interest_paid,
                 capital_paid, paid, paid_on):
        self.pk, self.start_date, self.due_date = pk, start_date, due_date
        self.fee, self.vat, self.interest, self.capital, self.amount = fee, vat, interest, capital, amount
        self.fee_paid, self.vat_paid, self.interest_paid, self.capital_paid = fee_paid, vat_paid, interest_paid, capital_paid
        self.paid, self.paid_on = paid, paid_on


class HeldLoan:
    """A loan as posting sees it (services.LOAN_HOLD_COLUMNS), with its open instalments in
    allocation order (due date, then seq)."""

    __slots__ = ("pk", "client_id", "status", "disbursed_on", "paid_up_on", "last_receipt_on", "received_total",
                 "change_total", "instalments")

    def __init__(self, pk, client_id, status, disbursed_on, paid_up_on, last_receipt_on, received_total, change_total):
        self.pk, self.client_id, self.status = pk, client_id, status
        self.disbursed_on, self.paid_up_on, self.last_receipt_on = disbursed_on, paid_up_on, last_receipt_on
        self.received_total, self.change_total = received_total, change_total
        self.instalments: list = []


@dataclass(frozen=True, slots=True)
class PostedLine:
    instalment: object
    line: AllocationLine
    paid_on_before: dt.date | None


@dataclass(frozen=True, slots=True)
class Posted:
    """What one receipt did: its allocation lines (instalments already changed in memory), the
    allocated amount and change, the loan's status and paid-up date before it (kept on the receipt
    so a reversal restores them), and whether it moved the last receipt date or paid the loan up."""

    lines: tuple[PostedLine, ...]
    allocated: Decimal
    change: Decimal
    status_before: str
    paid_up_on_before: dt.date | None
    last_receipt_moved: bool
    paid_up: bool


def require_status(loan, allowed: tuple[str, ...], action: str) -> None:
    if loan.status not in allowed:
        raise error("status", LoanError.WRONG_STATUS, f"A loan that is {LoanStatus(loan.status).label} cannot be {action}.")


def post_held(loan, instalments: list, *, money: Decimal, value_date: dt.date, reference: str,
              reference_taken: bool) -> Posted:
    """Check and post one receipt of `money` (already read by the input rules) onto `loan` and its
    open `instalments` (in due-date order), changing both in memory. Raises the ValidationError a
    person reads when the loan cannot take it; then nothing was changed."""
    from .selectors import loan_receipt_maximum, tolerance_amount

    require_status(loan, OPEN_STATUSES, "paid into")
    if loan.disbursed_on and value_date < loan.disbursed_on:
        raise error("value_date", LoanError.OUT_OF_RANGE,
                    f"Loan {loan.pk} was paid out on {loan.disbursed_on:%Y-%m-%d}; a receipt cannot be dated before that.")
    if reference and reference_taken:
        raise error("external_reference", LoanError.DUPLICATE_REFERENCE, f"Reference '{reference}' has been posted already.")
    # One pass: what is left on the schedule, and the instalments still owing (in allocation
    # order; the callers hold them in that order, so the sort is only a safeguard).
    outstanding = ZERO
    unpaid = []
    in_order, last = True, None
    for i in instalments:
        outstanding += i.amount - i.paid
        if i.paid < i.amount:
            if last is not None and (i.due_date, i.pk) < last:
                in_order = False
            last = (i.due_date, i.pk)
            unpaid.append(i)
    if not in_order:
        unpaid.sort(key=lambda i: (i.due_date, i.pk))
    # The maximum is at least what is left on the schedule plus the fixed tolerance: a receipt
    # within that needs no settlement quote (most of a day's collections are one instalment).
    if money > outstanding + tolerance_amount() and money > (
            maximum := loan_receipt_maximum(loan=loan, as_of=value_date, instalments=instalments)).amount:
        raise error("amount", LoanError.OVER_RECEIPT_MAXIMUM,
                    f"{money:,.2f} is more than loan {loan.pk} can take: the maximum is {maximum.amount:,.2f} "
                    f"(its balance of {maximum.balance:,.2f} plus a tolerance of {maximum.tolerance:,.2f}).")
    # What each instalment owes is worked out only for those the money reaches (allocate_in_order
    # stops there): a receipt of one instalment on a long schedule does not price the whole schedule.
    result = allocate_in_order(money, (
        Owing(key=i.pk, due_date=i.due_date, fee=i.fee - i.fee_paid, vat=i.vat - i.vat_paid,
              interest=i.interest - i.interest_paid, capital=i.capital - i.capital_paid)
        for i in unpaid))
    lines = []
    position = 0
    for line in result.lines:  # in the order of `unpaid`, skipping any the money took nothing from
        while unpaid[position].pk != line.key:
            position += 1
        inst = unpaid[position]
        lines.append(PostedLine(instalment=inst, line=line, paid_on_before=inst.paid_on))
        inst.fee_paid += line.fee
        inst.vat_paid += line.vat
        inst.interest_paid += line.interest
        inst.capital_paid += line.capital
        inst.paid += line.total
        if inst.paid == inst.amount:
            inst.paid_on = value_date
    status_before, paid_up_on_before = loan.status, loan.paid_up_on
    allocated = result.allocated
    loan.received_total += allocated
    loan.change_total += result.change
    moved = loan.last_receipt_on is None or value_date > loan.last_receipt_on
    if moved:
        loan.last_receipt_on = value_date
    # default_since and its in-duplum cap stay: the next daily close clears them (nothing is in
    # arrears), and a reversal of this receipt then finds the loan exactly as it was.
    # Only those that owed before the receipt can still owe (a paid instalment stays paid).
    paid_up = all(i.paid >= i.amount for i in unpaid)
    if paid_up:
        loan.status = LoanStatus.PAID_UP
        loan.paid_up_on = value_date
    return Posted(lines=tuple(lines), allocated=allocated, change=result.change, status_before=status_before,
                  paid_up_on_before=paid_up_on_before, last_receipt_moved=moved, paid_up=paid_up)


# -- the same rules as set-based SQL, for receipts that fit inside the loan's open balance ------------
# A day's collections are mostly one receipt per loan of at most what the loan still owes. For such
# a receipt the receipt maximum cannot refuse it (it is within the outstanding balance), there is no
# change, and the loan is paid up exactly when the receipt equals the outstanding balance; what is
# left is the allocation, which `allocate` does greedily (instalments by due date then id; within
# each fee, VAT, interest, capital). Greedy allocation of R over that sequence of parts gives part
# p = min(max(R - before(p), 0), owing(p)), where before(p) is what the parts ahead of it owe: a
# running sum, which SQL computes for every loan at once (a window). `open_balances` finds the loans
# for which this holds (no part owing less than nothing, every instalment's parts adding up to what
# it owes); the caller posts everything else through `post_held`. Money is summed in whole cents on
# both databases (core.bulk.cents_sql).

class WholeReceipt(NamedTuple):
    """One receipt for `post_whole`: the caller checked the loan's status, the value date, the
    reference and that `cents` is at most the loan's open balance (`open_balances`)."""

    id: int
    loan_id: int
    client_id: int
    cents: int
    value_date: dt.date
    payback_type: str
    reference: str
    status_before: str
    paid_up_on_before: dt.date | None
    paid_up: bool  # cents equals the open balance: the receipt pays the loan up


def open_balances(loan_ids: list[int]) -> dict[int, tuple[int, bool]]:
    """{loan id: (what its open instalments still owe in cents, whether every owing instalment's
    parts are regular)} for the loans of `loan_ids` with open instalments; one query. Regular: no
    part owes less than nothing and the parts add up to what the instalment owes."""
    from django.db import connection

    from imali.core import bulk

    from .models import Instalment

    if not loan_ids:
        return {}
    c = bulk.cents_sql
    owes = f"({c('amount')} - {c('paid')})"
    parts = [f"({c(name)} - {c(name + '_paid')})" for name in ("fee", "vat", "interest", "capital")]
    irregular = f"({' OR '.join(f'{p} < 0' for p in parts)} OR {' + '.join(parts)} <> {owes})"
    out = {}
    condition, params = bulk.among("loan_id", list(loan_ids))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT loan_id, SUM({owes}), SUM(CASE WHEN {owes} > 0 AND {irregular} THEN 1 ELSE 0 END) "
                       f"FROM {Instalment._meta.db_table} WHERE {condition} AND open GROUP BY loan_id", params)
        for loan_id, owed, bad in cursor.fetchall():
            out[loan_id] = (int(owed), not bad)
    return out


STAGE = "imali_whole_receipts"
STAGE_ALLOCATIONS = "imali_whole_allocations"


def post_whole(*, entity_id: int, actor_id: int | None, receipts: list[WholeReceipt], created) -> None:
    """Post `receipts` (at most one per loan, each within its loan's open balance, the loans held
    locked by the caller) set-based: the receipt rows in bulk, then the allocations computed by the
    database from the staged receipts, the instalments and the loans updated from them: a handful
    of statements however many receipts. What `post_held` and `receipts_write_held` write for the
    same receipts, figure for figure (tests/paystream/test_collections_bulk.py)."""
    from django.db import connection

    from imali.core import bulk

    from .models import Instalment, Loan, Receipt, ReceiptAllocation, day_number
    from .services import RECEIPT_COLUMNS

    if not receipts:
        return
    assert len({r.loan_id for r in receipts}) == len(receipts), "post_whole takes one receipt per loan"
    bulk.insert_rows(Receipt, RECEIPT_COLUMNS, [
        (r.id, entity_id, r.client_id, r.loan_id, Decimal(r.cents).scaleb(-2), Decimal(r.cents).scaleb(-2), ZERO,
         r.value_date, r.payback_type, r.reference, r.status_before, r.paid_up_on_before, False, "", actor_id, created)
        for r in receipts])
    bulk.temp_table(STAGE, (("receipt_id", "bigint"), ("loan_id", "bigint"), ("cents", "bigint"), ("value_date", "date"),
                            ("value_ord", "integer"), ("paid_up", "integer")),
                    [(r.id, r.loan_id, r.cents, r.value_date, day_number(r.value_date), 1 if r.paid_up else 0)
                     for r in receipts])
    pg = connection.vendor == "postgresql"
    qn = connection.ops.quote_name
    stage = qn(STAGE) if pg else f"temp.{qn(STAGE)}"
    allocations = qn(STAGE_ALLOCATIONS) if pg else f"temp.{qn(STAGE_ALLOCATIONS)}"
    c, least, greatest = bulk.cents_sql, bulk.least_sql, bulk.greatest_sql
    inst, loan = qn(Instalment._meta.db_table), qn(Loan._meta.db_table)
    names = ("fee", "vat", "interest", "capital")
    owing = {n: f"({c('i.' + n)} - {c('i.' + n + '_paid')})" for n in names}
    # Each owing part's share: what the receipt has left once the parts ahead of it are paid, at
    # most what the part owes, at least nothing.
    shares, ahead = [], "w.before"
    for n in names:
        shares.append(f"{least(greatest(f'w.cents - ({ahead})', '0'), f'w.{n}')} AS {n}")
        ahead = f"{ahead} + w.{n}"
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {allocations}")
        cursor.execute(
            f"CREATE TEMP TABLE {qn(STAGE_ALLOCATIONS)} {'ON COMMIT DROP ' if pg else ''}AS "
            f"SELECT w.receipt_id, w.instalment_id, w.paid_on_before, w.value_date, {', '.join(shares)} FROM ("
            f"  SELECT s.receipt_id, s.cents, s.value_date, i.id AS instalment_id, i.paid_on AS paid_on_before, "
            f"  {', '.join(f'{owing[n]} AS {n}' for n in names)}, "
            f"  SUM({' + '.join(owing.values())}) OVER (PARTITION BY i.loan_id ORDER BY i.due_date, i.id "
            f"    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - ({' + '.join(owing.values())}) AS before "
            f"  FROM {stage} s JOIN {inst} i ON i.loan_id = s.loan_id "
            f"  WHERE i.open AND {c('i.paid')} < {c('i.amount')}"
            f") w WHERE w.cents > w.before")
        if pg:
            cursor.execute(f"ANALYZE {allocations}")  # its size, for the plans of the statements below
        m = bulk.money_sql
        cursor.execute(
            f"INSERT INTO {qn(ReceiptAllocation._meta.db_table)} (receipt_id, instalment_id, fee, vat, interest, capital, "
            f"paid_on_before) SELECT receipt_id, instalment_id, {m('fee')}, {m('vat')}, {m('interest')}, {m('capital')}, "
            f"paid_on_before FROM {allocations} WHERE fee + vat + interest + capital > 0 ORDER BY receipt_id, instalment_id")
        total = "a.fee + a.vat + a.interest + a.capital"
        paid = f"{c(inst + '.paid')} + {total}"
        sets = [f"{n}_paid = {m(c(f'{inst}.{n}_paid') + ' + a.' + n)}" for n in names]
        cursor.execute(
            f"UPDATE {inst} SET {', '.join(sets)}, paid = {m(paid)}, "
            f"paid_on = CASE WHEN {paid} = {c(inst + '.amount')} THEN a.value_date ELSE {inst}.paid_on END "
            f"FROM {allocations} a WHERE {inst}.id = a.instalment_id AND {total} > 0")
        moved = f"{loan}.last_receipt_on IS NULL OR s.value_date > {loan}.last_receipt_on"
        cursor.execute(
            f"UPDATE {loan} SET received_total = {m(c(loan + '.received_total') + ' + s.cents')}, "
            f"last_receipt_on = CASE WHEN {moved} THEN s.value_date ELSE {loan}.last_receipt_on END, "
            f"last_receipt_ord = CASE WHEN {moved} THEN s.value_ord ELSE {loan}.last_receipt_ord END, "
            f"status = CASE WHEN s.paid_up = 1 THEN %s ELSE {loan}.status END, "
            f"paid_up_on = CASE WHEN s.paid_up = 1 THEN s.value_date ELSE {loan}.paid_up_on END, "
            f"paid_up_ord = CASE WHEN s.paid_up = 1 THEN s.value_ord ELSE {loan}.paid_up_ord END "
            f"FROM {stage} s WHERE {loan}.id = s.loan_id", [LoanStatus.PAID_UP])
    if not pg:
        bulk.temp_table_drop(STAGE)
        bulk.temp_table_drop(STAGE_ALLOCATIONS)
