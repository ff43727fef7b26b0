"""Money is Decimal with explicit rounding; never float."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
MAX_DIGITS = 14
DECIMAL_PLACES = 2


def to_money(value: object, *, field: str = "amount") -> Decimal:
    """Parse a user-supplied amount into cents, rounding half up; reject floats and garbage."""
    from .errors import field_error

    if isinstance(value, float):
        raise TypeError("money must not be a float; pass a str or Decimal")
    try:
        amount = Decimal(str(value).strip().replace(" ", ""))
    except (InvalidOperation, ValueError):
        raise field_error(field, f"'{value}' is not an amount.", code="invalid_amount") from None
    if not amount.is_finite():
        raise field_error(field, "Amount must be a finite number.", code="invalid_amount")
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


def round_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)
