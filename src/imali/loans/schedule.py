"""Repayment schedules (no database): due dates by frequency and pay day, moved off weekends and
public holidays, and the capital, interest, fees and VAT of each instalment.

Rounding is explicit and the remainders are placed deliberately, so the instalments always add up
exactly to the total repayable:
- capital and interest: an annuity (level capital + interest) at the periodic rate; each period's
  interest is the outstanding capital times the rate, rounded half up to the cent; the last
  instalment takes whatever capital is left;
- initiation fee: spread evenly in whole cents; the cents left over go on the first instalment;
- service fee: the monthly fee converted to the instalment frequency, rounded down (never over the cap);
- VAT: computed once on all fees of the loan, then split over the instalments in proportion to
  their fees by the largest-remainder method.
"""

from __future__ import annotations

import calendar
import datetime as dt
import functools
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, localcontext

import holidays

from .pricing import CENT, HUNDRED, periods_per_year, vat_on

MIN_DAYS_TO_FIRST_DUE = 7


@functools.lru_cache(maxsize=128)
def _holidays(country: str, year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays(country, years=year))


def is_business_day(day: dt.date, country: str) -> bool:
    return day.isoweekday() < 6 and day not in _holidays(country, day.year)


def move_to_business_day(day: dt.date, *, country: str, direction: str) -> dt.date:
    step = dt.timedelta(days=-1 if direction == "before" else 1)
    while not is_business_day(day, country):
        day += step
    return day


def add_months(day: dt.date, months: int, *, day_of_month: int | None = None) -> dt.date:
    """`day` moved by whole months, on `day_of_month` (default: the same day), clamped to month end."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    last = calendar.monthrange(year, month)[1]
    return dt.date(year, month, min(day_of_month or day.day, last))


def months_between(start: dt.date, end: dt.date) -> int:
    """Whole months from `start` to `end`, rounded up (a part month counts)."""
    months = (end.year - start.year) * 12 + (end.month - start.month)
    if add_months(start, months) < end:
        months += 1
    return months


def nominal_due_dates(*, start: dt.date, count: int, frequency: str, pay_day: int | None) -> list[dt.date]:
    """Due dates before moving off non-business days. `pay_day` is the day of the month (monthly)
    or the ISO weekday 1=Mon..7=Sun (weekly, fortnightly); empty means the start's own day."""
    earliest = start + dt.timedelta(days=MIN_DAYS_TO_FIRST_DUE)
    if frequency == "monthly":
        dom = pay_day or start.day
        first = add_months(start, 0, day_of_month=dom)
        while first < earliest:
            first = add_months(first, 1, day_of_month=dom)
        offset = (first.year - start.year) * 12 + first.month - start.month
        return [add_months(start, offset + k, day_of_month=dom) for k in range(count)]
    weekday = pay_day or start.isoweekday()
    first = earliest + dt.timedelta(days=(weekday - earliest.isoweekday()) % 7)
    step = 7 if frequency == "weekly" else 14
    return [first + dt.timedelta(days=step * k) for k in range(count)]


def due_dates(
    *, start: dt.date, count: int, frequency: str, pay_day: int | None, country: str, move_direction: str
) -> list[dt.date]:
    """Due dates on business days of `country`, moved in the client's direction. A date moved
    back onto or before the previous one (possible only over a long holiday run) moves forward instead."""
    result: list[dt.date] = []
    previous = start
    for nominal in nominal_due_dates(start=start, count=count, frequency=frequency, pay_day=pay_day):
        moved = move_to_business_day(nominal, country=country, direction=move_direction)
        if moved <= previous:
            moved = move_to_business_day(nominal, country=country, direction="after")
        result.append(moved)
        previous = moved
    return result


def split_exact(total: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """`total` (cents) split in proportion to `weights`; the parts add up to `total` exactly
    (largest remainder; ties go to the earlier part)."""
    cents = int((total / CENT).to_integral_value())
    weight_sum = sum(weights, Decimal(0))
    if not weights:
        return []
    if weight_sum == 0:
        weights = [Decimal(1)] * len(weights)
        weight_sum = Decimal(len(weights))
    with localcontext() as ctx:
        ctx.prec = 50
        exact = [Decimal(cents) * w / weight_sum for w in weights]
    floors = [int(e) for e in exact]
    left = cents - sum(floors)
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in order[:left]:
        floors[i] += 1
    return [Decimal(c) * CENT for c in floors]


@dataclass(frozen=True)
class ScheduledInstalment:
    seq: int
    start_date: dt.date  # the period's start: disbursement, or the previous due date
    due_date: dt.date
    capital: Decimal
    interest: Decimal
    fee: Decimal
    vat: Decimal

    @property
    def amount(self) -> Decimal:
        return self.capital + self.interest + self.fee + self.vat


@dataclass(frozen=True)
class Schedule:
    principal: Decimal
    instalments: tuple[ScheduledInstalment, ...]
    total_interest: Decimal
    total_fees: Decimal
    total_vat: Decimal

    @property
    def total_repayable(self) -> Decimal:
        return self.principal + self.total_interest + self.total_fees + self.total_vat

    @property
    def instalment_amount(self) -> Decimal:
        """The regular instalment (the first one may carry initiation-fee cents, the last capital cents)."""
        return self.instalments[min(1, len(self.instalments) - 1)].amount


def periodic_rate(rate_pm: Decimal, frequency: str) -> Decimal:
    """Percent per month → fraction per period (a year of 12 months = 26 fortnights = 52 weeks)."""
    return rate_pm / HUNDRED * 12 / periods_per_year(frequency)


def level_payment(principal: Decimal, rate: Decimal, count: int) -> Decimal:
    """Capital + interest per period of an annuity, rounded half up to the cent."""
    if rate == 0:
        return (principal / count).quantize(CENT, rounding=ROUND_HALF_UP)
    with localcontext() as ctx:
        ctx.prec = 40
        payment = principal * rate / (1 - (1 + rate) ** -count)
    return payment.quantize(CENT, rounding=ROUND_HALF_UP)


def build_schedule(
    *,
    principal: Decimal,
    rate_pm: Decimal,
    frequency: str,
    dates: list[dt.date],
    start: dt.date,
    initiation_fee: Decimal,
    service_fee_per_instalment: Decimal,
    vat_rate: Decimal,
) -> Schedule:
    count = len(dates)
    if count < 1:
        raise ValueError("A schedule needs at least one instalment.")
    rate = periodic_rate(rate_pm, frequency)
    payment = level_payment(principal, rate, count)
    fee_cents_each = (initiation_fee / count / CENT).to_integral_value(rounding="ROUND_DOWN") * CENT
    fee_first_extra = initiation_fee - fee_cents_each * count
    fees = [fee_cents_each + service_fee_per_instalment + (fee_first_extra if k == 0 else 0) for k in range(count)]
    total_fees = sum(fees, Decimal(0))
    total_vat = vat_on(total_fees, vat_rate)
    vats = split_exact(total_vat, fees)
    balance = principal
    rows = []
    total_interest = Decimal(0)
    previous = start
    for k, due in enumerate(dates):
        interest = (balance * rate).quantize(CENT, rounding=ROUND_HALF_UP)
        capital = balance if k == count - 1 else min(balance, payment - interest)
        balance -= capital
        total_interest += interest
        rows.append(ScheduledInstalment(
            seq=k + 1, start_date=previous, due_date=due, capital=capital, interest=interest, fee=fees[k], vat=vats[k],
        ))
        previous = due
    return Schedule(
        principal=principal, instalments=tuple(rows), total_interest=total_interest,
        total_fees=total_fees, total_vat=total_vat,
    )
