"""Book rules that need no database: settlement, in duplum, obligation buckets, instalment and
client status. The selectors compute the same figures set-based in SQL; the tests hold both to
these definitions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db import models

from .pricing import CENT

ZERO = Decimal("0.00")

# A loan is in default once its oldest unpaid instalment is this many days overdue (the s129
# notice period of 20 business days, rounded to a month of calendar days).
DEFAULT_AFTER_DAYS = 30
# A client whose oldest arrears are older than this turns Bad and may take no new loans.
BAD_AFTER_DAYS = 90
# Obligation buckets: what falls due in the next 1–30, 31–60, 61–90, 91–120 and 121+ days.
BUCKET_BOUNDS = (30, 60, 90, 120)
BUCKET_NAMES = ("due_30", "due_60", "due_90", "due_120", "due_120_plus")


class InstalmentStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PAID = "paid", "Paid"
    PARTLY_PAID = "partly_paid", "Partly paid"
    IN_ARREARS = "in_arrears", "In arrears"


def instalment_status(*, amount: Decimal, paid: Decimal, due_date: dt.date, as_of: dt.date) -> InstalmentStatus:
    if paid >= amount:
        return InstalmentStatus.PAID
    if due_date < as_of:
        return InstalmentStatus.IN_ARREARS
    if paid > 0:
        return InstalmentStatus.PARTLY_PAID
    return InstalmentStatus.PENDING


def bucket_name(*, due_date: dt.date, as_of: dt.date) -> str | None:
    """Which future-obligation bucket an unpaid amount due on `due_date` falls in (None: overdue)."""
    days = (due_date - as_of).days
    if days < 0:
        return None
    for bound, name in zip(BUCKET_BOUNDS, BUCKET_NAMES[:-1], strict=True):
        if days <= bound:
            return name
    return BUCKET_NAMES[-1]


def months_in_arrears(days: int) -> int:
    """Arrears of 1–30 days are one month, 31–60 two, and so on (the "months outstanding" filter)."""
    return 0 if days <= 0 else (days + 29) // 30


@dataclass(frozen=True)
class SettlementLine:
    """One instalment as the settlement quote sees it: what it asks, its parts, and what was paid."""

    start_date: dt.date
    due_date: dt.date
    amount: Decimal  # capital + interest + fees + VAT
    capital: Decimal
    interest: Decimal  # the instalment's scheduled interest
    paid: Decimal  # everything paid on it, whatever part it went to

    @classmethod
    def of(cls, instalment) -> SettlementLine:
        i = instalment
        return cls(start_date=i.start_date, due_date=i.due_date, amount=i.amount, capital=i.capital,
                   interest=i.interest, paid=i.paid)


def accrued_interest(*, interest: Decimal, start: dt.date, due: dt.date, as_of: dt.date) -> Decimal:
    """The part of a period's interest earned by `as_of`, pro rata by days, rounded half up."""
    if as_of >= due:
        return interest
    if as_of <= start:
        return ZERO
    period = (due - start).days
    return (interest * (as_of - start).days / period).quantize(CENT, rounding=ROUND_HALF_UP)


def settlement_balance(lines: Sequence[SettlementLine], *, as_of: dt.date) -> Decimal:
    """One loan's lines: every instalment due by `as_of` in full (capital, interest, fees, VAT), and
    of each later one its capital plus the interest accrued so far in its period — less whatever
    was already paid on it. Interest and fees not yet earned are not charged, and what the client
    paid ahead towards them counts towards the capital instead (allocation pays an instalment's fees
    first, so any payment ahead would otherwise be quoted again). Below zero when the client paid
    ahead more than settles the loan."""
    total = ZERO
    for line in lines:
        if line.due_date <= as_of:
            total += line.amount - line.paid
        else:
            earned = accrued_interest(interest=line.interest, start=line.start_date, due=line.due_date, as_of=as_of)
            total += line.capital + earned - line.paid
    return total


def settlement_amount(lines: Sequence[SettlementLine], *, as_of: dt.date) -> Decimal:
    """The settlement quote of one loan on the book: its settlement balance, never below zero (what
    was paid beyond it is the client's, not a discount on another loan). Charges posted while in
    default were capped by in duplum when posted, so the quote is within the cap."""
    return max(ZERO, settlement_balance(lines, as_of=as_of))


# A receipt may be larger than what settles the loan (a round sum, a payroll deduction that ran
# once more): the excess is change available, paid back later. But not arbitrarily larger: a typo
# of a few digits would otherwise leave millions "refundable". The tolerance over the loan's
# balance is the larger of a fixed amount and a share of the balance (settings
# IMALI_RECEIPT_TOLERANCE_AMOUNT and IMALI_RECEIPT_TOLERANCE_PERCENT; docs/loans.md).
RECEIPT_TOLERANCE_AMOUNT = Decimal("1000.00")
RECEIPT_TOLERANCE_PERCENT = Decimal("10")


@dataclass(frozen=True)
class ReceiptMaximum:
    """The most one receipt to a loan may be, and what it is made of (for the error message)."""

    balance: Decimal  # the larger of the loan's outstanding and its settlement quote on the day
    tolerance: Decimal

    @property
    def amount(self) -> Decimal:
        return self.balance + self.tolerance


def receipt_maximum(*, outstanding: Decimal, settlement: Decimal,
                    tolerance_amount: Decimal = RECEIPT_TOLERANCE_AMOUNT,
                    tolerance_percent: Decimal = RECEIPT_TOLERANCE_PERCENT) -> ReceiptMaximum:
    """The largest receipt a loan takes on a day: its balance (what is left to pay on the schedule,
    or the settlement quote if that is more, as it can be under post-term charges) plus a tolerance
    of the larger of `tolerance_amount` and `tolerance_percent` of that balance."""
    balance = max(outstanding, settlement, ZERO)
    share = (balance * tolerance_percent / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    return ReceiptMaximum(balance=balance, tolerance=max(tolerance_amount, share))


def in_duplum_allowed(*, cap: Decimal, charged_since_default: Decimal, proposed: Decimal) -> Decimal:
    """How much of a new charge may be posted: charges accrued while in default stop at the unpaid
    balance at the time of default (NCA s103(5))."""
    room = cap - charged_since_default
    return max(ZERO, min(proposed, room))


def in_duplum_trim(*, cap: Decimal, charges: Sequence[Decimal], floors: Sequence[Decimal] | None = None) -> list[Decimal]:
    """Charges in the order they accrue, each cut so their running total never passes `cap`.

    `floors` (one per charge) are the parts already paid: a charge is never cut below what the
    client paid on it before the default (paid ahead, then an earlier receipt reversed), since
    what an instalment holds may not exceed what it asks. Such paid parts count towards the cap,
    so what is still unpaid is cut the more."""
    floors = [min(f, c) for f, c in zip(floors, charges, strict=True)] if floors is not None else [ZERO] * len(charges)
    # What was paid is kept first; the room left under the cap goes to the unpaid parts in the
    # order they accrue.
    allowed = []
    charged = sum(floors, ZERO)
    for charge, floor in zip(charges, floors, strict=True):
        extra = in_duplum_allowed(cap=cap, charged_since_default=charged, proposed=charge - floor)
        allowed.append(floor + extra)
        charged += extra
    return allowed


# Statuses people set by hand; the automatic rules never move a client out of them.
MANUAL_CLIENT_STATUSES = frozenset({"blacklisted", "deceased", "debt_review", "handed_over"})


def client_status_after(
    *, status: str, new_loans_allowed: bool, has_open_loans: bool, oldest_arrears_days: int, has_written_off: bool
) -> tuple[str, bool]:
    """The rules the daily close applies: Bad after 90 days of arrears or a write-off (no new
    loans); Good again once cured; Inactive when nothing is on the book; manual statuses stay."""
    if status in MANUAL_CLIENT_STATUSES:
        return status, False
    if has_written_off or oldest_arrears_days > BAD_AFTER_DAYS:
        return "bad", False
    if status == "bad":
        return ("good" if has_open_loans else "inactive"), True
    if has_open_loans:
        return "good", new_loans_allowed
    return "inactive", new_loans_allowed


@dataclass(frozen=True)
class LoanFigures:
    """One loan's derived figures on a day, from its loaded schedule (the loan page's summary; the
    whole-book versions per client are the snapshot selector's)."""

    outstanding: Decimal
    arrears_amount: Decimal
    arrears_days: int
    arrears_months: int
    next_due_date: dt.date | None
    next_amount_due: Decimal

    @classmethod
    def of(cls, instalments: Sequence, *, as_of: dt.date) -> LoanFigures:
        """`instalments`: objects with open, due_date, amount and paid (the loan's schedule rows)."""
        unpaid = [i for i in instalments if i.open and i.paid < i.amount]
        overdue = [i for i in unpaid if i.due_date < as_of]
        coming = [i for i in unpaid if i.due_date >= as_of]
        next_due = min((i.due_date for i in coming), default=None)
        days = (as_of - min(i.due_date for i in overdue)).days if overdue else 0
        return cls(
            outstanding=sum((i.amount - i.paid for i in unpaid), ZERO),
            arrears_amount=sum((i.amount - i.paid for i in overdue), ZERO),
            arrears_days=days,
            arrears_months=months_in_arrears(days),
            next_due_date=next_due,
            next_amount_due=sum((i.amount - i.paid for i in coming if i.due_date == next_due), ZERO),
        )
