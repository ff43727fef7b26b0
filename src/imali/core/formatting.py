"""The one way money is written for people, on screens, PDFs and exports: thousands separated by
commas, two decimals, the minus in front ("-1,234.50"), and the currency code in front where a
figure stands alone ("ZAR 12,345.67"). Dates are ISO (YYYY-MM-DD) everywhere."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")


def counted(n: int, one: str, many: str | None = None) -> str:
    """A count with its noun as people write it: "1 payment", "2 payments", "1,250 credits"."""
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def duration_text(minutes: int) -> str:
    """A length of time as people say it: "60 minutes", "4 hours", "6 days"; rounded up, so it is
    never shorter than what it tells of (a lock: the client does not try while it still holds)."""
    if minutes < 180:
        return counted(minutes, "minute")
    if minutes < 3 * 24 * 60:
        return counted(-(-minutes // 60), "hour")
    return counted(-(-minutes // (24 * 60)), "day")


def format_money(value, currency: str = "") -> str:
    """12345.6 → "12,345.60"; with `currency`, "ZAR 12,345.60". None and "" give ""; a value that
    is not a number is shown as it is."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(str(value)).quantize(CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return str(value)
    text = f"{amount:,.2f}"
    return f"{currency} {text}" if currency else text
