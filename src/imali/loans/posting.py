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

from .allocation import AllocationLine, Owing, allocate
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
    # The maximum is at least what is left on the schedule plus the fixed tolerance: a receipt
    # within that needs no settlement quote (most of a day's collections are one instalment).
    outstanding = sum((i.amount - i.paid for i in instalments), ZERO)
    if money > outstanding + tolerance_amount() and money > (maximum := loan_receipt_maximum(
            loan=loan, as_of=value_date, instalments=instalments)).amount:
        raise error("amount", LoanError.OVER_RECEIPT_MAXIMUM,
                    f"{money:,.2f} is more than loan {loan.pk} can take: the maximum is {maximum.amount:,.2f} "
                    f"(its balance of {maximum.balance:,.2f} plus a tolerance of {maximum.tolerance:,.2f}).")
    unpaid = [i for i in instalments if i.paid < i.amount]
    result = allocate(money, [
        Owing(key=i.pk, due_date=i.due_date, fee=i.fee - i.fee_paid, vat=i.vat - i.vat_paid,
              interest=i.interest - i.interest_paid, capital=i.capital - i.capital_paid)
        for i in unpaid])
    by_id = {i.pk: i for i in unpaid}
    lines = []
    for line in result.lines:
        inst = by_id[line.key]
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
    paid_up = all(i.paid >= i.amount for i in instalments)
    if paid_up:
        loan.status = LoanStatus.PAID_UP
        loan.paid_up_on = value_date
    return Posted(lines=tuple(lines), allocated=allocated, change=result.change, status_before=status_before,
                  paid_up_on_before=paid_up_on_before, last_receipt_moved=moved, paid_up=paid_up)
