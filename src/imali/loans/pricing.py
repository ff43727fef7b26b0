"""Statutory pricing caps per country, as data, and the checks that apply them (no database).

ZA values are the National Credit Act regulations in force since 6 May 2016 (DOMAIN §10). A
country without an entry in PRICING_CAPS has no statutory caps encoded here: products there are
checked only for sanity (positive amounts, rates and terms), and the screens say so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal

from django.db import models

CENT = Decimal("0.01")
HUNDRED = Decimal("100")


class CreditType(models.TextChoices):
    SHORT_TERM = "short_term", "Short-term credit"
    UNSECURED = "unsecured", "Unsecured credit"


class CapCode(models.TextChoices):
    """Each cap a product or loan can break; error messages and codes name one of these."""

    SHORT_TERM_MAX_PRINCIPAL = "short_term_max_principal", "Short-term credit: maximum principal"
    SHORT_TERM_MAX_TERM = "short_term_max_term", "Short-term credit: maximum term"
    SHORT_TERM_FIRST_LOAN_RATE = "short_term_first_loan_rate", "Short-term credit: interest on a first loan"
    SHORT_TERM_REPEAT_LOAN_RATE = "short_term_repeat_loan_rate", "Short-term credit: interest on a later loan in the same year"
    UNSECURED_RATE = "unsecured_rate", "Unsecured credit: repo rate plus margin"
    INITIATION_FEE = "initiation_fee", "Initiation fee"
    SERVICE_FEE = "service_fee", "Monthly service fee"


@dataclass(frozen=True)
class InitiationFeeRule:
    base: Decimal  # charged on every agreement
    above: Decimal  # principal above which the percentage applies
    percent_above: Decimal
    maximum: Decimal
    max_percent_of_principal: Decimal


@dataclass(frozen=True)
class CountryCaps:
    short_term_max_principal: Decimal
    short_term_max_term_months: int
    short_term_first_loan_rate_pm: Decimal  # percent per month
    short_term_repeat_loan_rate_pm: Decimal  # percent per month, later loans in the same calendar year
    unsecured_margin_pa: Decimal  # percent per year above the repo rate
    initiation_fee: InitiationFeeRule
    service_fee_max_per_month: Decimal
    vat_rate: Decimal  # percent, charged on fees
    # (effective date, repo rate percent per year), ascending: the rate in force on a date is the last
    # entry on or before it.
    repo_rates: tuple[tuple[dt.date, Decimal], ...]


PRICING_CAPS: dict[str, CountryCaps] = {
    "ZA": CountryCaps(
        short_term_max_principal=Decimal("8000.00"),
        short_term_max_term_months=6,
        short_term_first_loan_rate_pm=Decimal("5"),
        short_term_repeat_loan_rate_pm=Decimal("3"),
        unsecured_margin_pa=Decimal("21"),
        initiation_fee=InitiationFeeRule(
            base=Decimal("165.00"), above=Decimal("1000.00"), percent_above=Decimal("10"),
            maximum=Decimal("1050.00"), max_percent_of_principal=Decimal("15"),
        ),
        service_fee_max_per_month=Decimal("60.00"),
        vat_rate=Decimal("15"),
        # SARB repo rate decisions (Monetary Policy Committee), effective the day after announcement.
        repo_rates=(
            (dt.date(2023, 5, 26), Decimal("8.25")),
            (dt.date(2024, 9, 20), Decimal("8.00")),
            (dt.date(2024, 11, 22), Decimal("7.75")),
            (dt.date(2025, 1, 31), Decimal("7.50")),
            (dt.date(2025, 5, 30), Decimal("7.25")),
            (dt.date(2025, 8, 1), Decimal("7.00")),
            (dt.date(2025, 11, 21), Decimal("6.75")),
        ),
    ),
}

# VAT on fees where no caps are encoded (standard rates; used only as a product default).
DEFAULT_VAT_RATES = {"ZA": Decimal("15"), "NA": Decimal("15"), "BW": Decimal("14"), "SZ": Decimal("15"), "ZM": Decimal("16")}


class CapExceeded(ValueError):
    """A value over a statutory cap; `field` is the product or loan field it is about."""

    def __init__(self, *, cap: CapCode, field: str, limit: Decimal, value: Decimal, message: str):
        super().__init__(message)
        self.cap = cap
        self.field = field
        self.limit = limit
        self.value = value
        self.message = message


def caps_for(country: str) -> CountryCaps | None:
    return PRICING_CAPS.get(country)


def repo_rate_on(caps: CountryCaps, on: dt.date) -> Decimal:
    rate = caps.repo_rates[0][1]
    for effective, value in caps.repo_rates:
        if effective <= on:
            rate = value
    return rate


def max_initiation_fee(principal: Decimal, rule: InitiationFeeRule) -> Decimal:
    """The largest initiation fee (before VAT) the rule allows on `principal`, in cents, rounded down."""
    fee = rule.base + max(Decimal(0), principal - rule.above) * rule.percent_above / HUNDRED
    fee = min(fee, rule.maximum, principal * rule.max_percent_of_principal / HUNDRED)
    return fee.quantize(CENT, rounding=ROUND_DOWN)


def max_rate_per_month(
    *, caps: CountryCaps, credit_type: str, on: dt.date, is_repeat_in_year: bool
) -> tuple[Decimal, CapCode]:
    """The highest interest rate (percent per month) allowed, and the cap that sets it."""
    if credit_type == CreditType.SHORT_TERM:
        if is_repeat_in_year:
            return caps.short_term_repeat_loan_rate_pm, CapCode.SHORT_TERM_REPEAT_LOAN_RATE
        return caps.short_term_first_loan_rate_pm, CapCode.SHORT_TERM_FIRST_LOAN_RATE
    return (repo_rate_on(caps, on) + caps.unsecured_margin_pa) / 12, CapCode.UNSECURED_RATE


def capped_rate(rate: Decimal, *, caps: CountryCaps, credit_type: str, on: dt.date, is_repeat_in_year: bool) -> Decimal:
    """`rate` (percent per month) lowered to the cap that applies, cut to the rate's four places
    (down: never above the cap): what a new loan is charged when no rate is typed."""
    cap, _ = max_rate_per_month(caps=caps, credit_type=credit_type, on=on, is_repeat_in_year=is_repeat_in_year)
    return min(rate, cap.quantize(Decimal("0.0001"), rounding=ROUND_DOWN))


def periods_per_year(frequency: str) -> int:
    return {"monthly": 12, "fortnightly": 26, "weekly": 52}[frequency]


def max_instalments_in_months(months: int, frequency: str) -> int:
    return months * periods_per_year(frequency) // 12


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _percent(rate: Decimal) -> str:
    """A rate as people write it: 3.00, 2.4583 (two to four decimals)."""
    text = f"{rate.quantize(Decimal('0.0001')):f}".rstrip("0")
    whole, _, decimals = text.partition(".")
    return f"{whole}.{decimals.ljust(2, '0')}"


def check_product_terms(
    *,
    country: str,
    credit_type: str,
    frequency: str,
    max_principal: Decimal,
    max_instalments: int,
    interest_rate_pm: Decimal,
    service_fee_pm: Decimal,
    on: dt.date,
) -> list[CapExceeded]:
    """Every cap a product's terms break. A product is priced for a first loan (the higher rate);
    a later loan in the same calendar year is checked again at application."""
    caps = caps_for(country)
    if caps is None:
        return []
    found: list[CapExceeded] = []
    if credit_type == CreditType.SHORT_TERM:
        if max_principal > caps.short_term_max_principal:
            found.append(CapExceeded(
                cap=CapCode.SHORT_TERM_MAX_PRINCIPAL, field="max_principal", limit=caps.short_term_max_principal,
                value=max_principal,
                message=f"Short-term credit is capped at {_money(caps.short_term_max_principal)} ({CapCode.SHORT_TERM_MAX_PRINCIPAL.label}).",
            ))
        limit = max_instalments_in_months(caps.short_term_max_term_months, frequency)
        if max_instalments > limit:
            found.append(CapExceeded(
                cap=CapCode.SHORT_TERM_MAX_TERM, field="max_instalments", limit=Decimal(limit), value=Decimal(max_instalments),
                message=(f"Short-term credit is repayable within {caps.short_term_max_term_months} months: "
                         f"at most {limit} {frequency} instalments ({CapCode.SHORT_TERM_MAX_TERM.label})."),
            ))
    rate_cap, code = max_rate_per_month(caps=caps, credit_type=credit_type, on=on, is_repeat_in_year=False)
    if interest_rate_pm > rate_cap:
        found.append(CapExceeded(
            cap=code, field="interest_rate_pm", limit=rate_cap, value=interest_rate_pm,
            message=f"Interest may be at most {_percent(rate_cap)}% per month ({code.label}).",
        ))
    if service_fee_pm > caps.service_fee_max_per_month:
        found.append(CapExceeded(
            cap=CapCode.SERVICE_FEE, field="service_fee_pm", limit=caps.service_fee_max_per_month, value=service_fee_pm,
            message=f"The service fee may be at most {_money(caps.service_fee_max_per_month)} per month ({CapCode.SERVICE_FEE.label}).",
        ))
    return found


def check_loan_terms(
    *,
    country: str,
    credit_type: str,
    principal: Decimal,
    interest_rate_pm: Decimal,
    initiation_fee: Decimal,
    service_fee_pm: Decimal,
    on: dt.date,
    is_repeat_in_year: bool,
    months_to_last_due: int | None,
) -> list[CapExceeded]:
    """Every cap a loan's terms break (the product was checked when set up; the loan is checked
    again because the principal, the repo rate and the client's earlier loans matter)."""
    caps = caps_for(country)
    if caps is None:
        return []
    found: list[CapExceeded] = []
    if credit_type == CreditType.SHORT_TERM:
        if principal > caps.short_term_max_principal:
            found.append(CapExceeded(
                cap=CapCode.SHORT_TERM_MAX_PRINCIPAL, field="principal", limit=caps.short_term_max_principal, value=principal,
                message=f"Short-term credit is capped at {_money(caps.short_term_max_principal)} ({CapCode.SHORT_TERM_MAX_PRINCIPAL.label}).",
            ))
        if months_to_last_due is not None and months_to_last_due > caps.short_term_max_term_months:
            found.append(CapExceeded(
                cap=CapCode.SHORT_TERM_MAX_TERM, field="instalments", limit=Decimal(caps.short_term_max_term_months),
                value=Decimal(months_to_last_due),
                message=f"Short-term credit must be repaid within {caps.short_term_max_term_months} months ({CapCode.SHORT_TERM_MAX_TERM.label}).",
            ))
    rate_cap, code = max_rate_per_month(caps=caps, credit_type=credit_type, on=on, is_repeat_in_year=is_repeat_in_year)
    if interest_rate_pm > rate_cap:
        found.append(CapExceeded(
            cap=code, field="interest_rate_pm", limit=rate_cap, value=interest_rate_pm,
            message=f"Interest may be at most {_percent(rate_cap)}% per month on this loan ({code.label}).",
        ))
    fee_cap = max_initiation_fee(principal, caps.initiation_fee)
    if initiation_fee > fee_cap:
        found.append(CapExceeded(
            cap=CapCode.INITIATION_FEE, field="initiation_fee", limit=fee_cap, value=initiation_fee,
            message=f"The initiation fee on {_money(principal)} may be at most {_money(fee_cap)} ({CapCode.INITIATION_FEE.label}).",
        ))
    if service_fee_pm > caps.service_fee_max_per_month:
        found.append(CapExceeded(
            cap=CapCode.SERVICE_FEE, field="service_fee_pm", limit=caps.service_fee_max_per_month, value=service_fee_pm,
            message=f"The service fee may be at most {_money(caps.service_fee_max_per_month)} per month ({CapCode.SERVICE_FEE.label}).",
        ))
    return found


def vat_on(amount: Decimal, vat_rate: Decimal) -> Decimal:
    return (amount * vat_rate / HUNDRED).quantize(CENT, rounding=ROUND_HALF_UP)


def service_fee_per_instalment(service_fee_pm: Decimal, frequency: str) -> Decimal:
    """The monthly fee spread over the instalments of a month; rounded down so no month exceeds it."""
    return (service_fee_pm * 12 / periods_per_year(frequency)).quantize(CENT, rounding=ROUND_DOWN)
