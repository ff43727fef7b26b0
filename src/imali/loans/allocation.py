"""Receipt allocation and its exact inverse (no database).

Order (documented in docs/loans.md): instalments oldest due date first, so arrears are cleared
before anything current or future; within an instalment fees first, then the VAT on those fees,
then interest, then capital. Whatever is left once the whole loan is paid is "change available"
(an overpayment the lender owes back to the client or applies elsewhere).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NamedTuple

COMPONENTS = ("fee", "vat", "interest", "capital")
ZERO = Decimal("0.00")


# Named tuples rather than frozen dataclasses: as immutable and as readable, and a statement of
# 100,000 receipts builds a few hundred thousand of each (a frozen dataclass sets every field
# through object.__setattr__, several times the cost).
class Owing(NamedTuple):
    """What is still owed on one instalment, per component."""

    key: int
    due_date: dt.date
    fee: Decimal = ZERO
    vat: Decimal = ZERO
    interest: Decimal = ZERO
    capital: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.fee + self.vat + self.interest + self.capital


class AllocationLine(NamedTuple):
    key: int
    fee: Decimal = ZERO
    vat: Decimal = ZERO
    interest: Decimal = ZERO
    capital: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.fee + self.vat + self.interest + self.capital


@dataclass(frozen=True)
class Allocation:
    lines: tuple[AllocationLine, ...]
    change: Decimal

    @property
    def allocated(self) -> Decimal:
        return sum((line.total for line in self.lines), ZERO)


def allocation_order(item) -> tuple:
    """The order receipts pay instalments in: due date, then key (the instalment's id)."""
    return item.due_date, item.key


def allocate(amount: Decimal, owing: Sequence[Owing]) -> Allocation:
    return allocate_in_order(amount, sorted(owing, key=allocation_order))


def allocate_in_order(amount: Decimal, owing: Iterable[Owing]) -> Allocation:
    """`allocate` for `owing` already in allocation order. The items are taken one at a time and
    none after the money runs out, so `owing` may be a generator that builds each item only when
    it is reached (most receipts pay one instalment of a long schedule)."""
    if amount < 0:
        raise ValueError("A receipt amount cannot be negative.")
    left = amount
    lines = []
    if left > 0:
        for item in owing:
            fee = min(left, item.fee)
            left -= fee
            vat = min(left, item.vat)
            left -= vat
            interest = min(left, item.interest)
            left -= interest
            capital = min(left, item.capital)
            left -= capital
            if fee + vat + interest + capital > 0:
                lines.append(AllocationLine(item.key, fee, vat, interest, capital))
            if left <= 0:  # before the next item is asked for: a generator builds no item the money does not reach
                break
    return Allocation(lines=tuple(lines), change=left)


def _shift(owing: Sequence[Owing], allocation: Allocation, sign: int) -> list[Owing]:
    by_key = {line.key: line for line in allocation.lines}
    result = []
    for item in owing:
        line = by_key.get(item.key)
        if line is None:
            result.append(item)
            continue
        changes = {c: getattr(item, c) - sign * getattr(line, c) for c in COMPONENTS}
        if any(v < 0 for v in changes.values()):
            raise ValueError(f"Allocation to instalment {item.key} exceeds what is owed on it.")
        result.append(item._replace(**changes))
    return result


def apply_allocation(owing: Sequence[Owing], allocation: Allocation) -> list[Owing]:
    """What is owed after the receipt."""
    return _shift(owing, allocation, 1)


def reverse_allocation(owing: Sequence[Owing], allocation: Allocation) -> list[Owing]:
    """The exact inverse of `apply_allocation`: what was owed before the receipt."""
    return _shift(owing, allocation, -1)
