"""Money is Decimal with explicit rounding; never float.

Two things every part of the project shares from here:

- **Parsing an amount someone typed or sent** (`parse_amount`, `parse_decimal`): ASCII digits with
  at most two decimal places, no exponent, finite, above zero (or zero where allowed) and at most
  MAX_AMOUNT (or a smaller bound the caller knows). "1.005" is refused rather than rounded (the
  person meant something; we do not guess what), "1e10" and "١٠٠" are refused (Python's Decimal
  would read both), and every error names the field. The API's MoneyField, the web's MoneyFormField
  and the services all call these, so the three layers agree on what an amount is.
- **Summing money in SQL** (`sum_cents`, `aggregate_money`): SQLite stores a DecimalField with
  NUMERIC affinity, which keeps fractions as REAL, so SUM over the column adds binary floats
  (2406802.85999999 for 2406802.86). Summing each row's whole cents, SUM(CAST(ROUND(x * 100) AS
  BIGINT)), is integer arithmetic on SQLite (each stored value is within 1e-6 of its cents, so the
  rounding finds them) and exact numeric arithmetic on PostgreSQL.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import BigIntegerField, F, QuerySet, Sum, Value
from django.db.models.expressions import Combinable
from django.db.models.functions import Cast, Round

CENT = Decimal("0.01")
MAX_DIGITS = 14
DECIMAL_PLACES = 2
# The largest single amount anyone may type or send (a principal, receipt, debit, refund, limit):
# below a billion, so that a client's or a book's sums of such amounts still fit the 14-digit
# money columns and the API's figures (a 20-digit amount once overflowed them, and every page of
# that client answered 500). Smaller bounds that depend on the record (a product's maximum
# principal, a loan's settlement quote plus tolerance, the change available) are the services'.
MAX_AMOUNT = Decimal("999999999.99")
# More whole digits than this is out of range whatever they say; refused before Decimal arithmetic
# (whose 28-digit context they could overflow).
MAX_WHOLE_DIGITS = 20
# Digits are ASCII only: `re.ASCII`-free \d and Python's Decimal both accept Arabic-Indic and
# fullwidth digits, which no person at a lender types on purpose and no bank file carries.
_NUMBER = re.compile(r"-?([0-9]*)(?:\.([0-9]*))?")
# Spaces (also the no-break space of formatted amounts) group thousands: "1 000.00".
_GROUPING = str.maketrans("", "", " \u00a0\u202f")


def _error(field: str, message: str, code: str):
    from .errors import field_error

    return field_error(field, message, code=code)


def _parsed_text(value: object, *, field: str, places: int) -> Decimal:
    """`value` as a Decimal by the strict reading of its text (digits 0-9, a decimal point, at
    most `places` places); the bounds are the caller's."""
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise _error(field, "Enter a finite number.", "invalid_amount")
        text = format(value, "f")
    else:
        text = str(value)
    text = text.strip().translate(_GROUPING)
    if not text:
        raise _error(field, "Enter a number.", "required")
    match = _NUMBER.fullmatch(text)
    if match is None or not (match.group(1) or match.group(2)):
        raise _error(field, f"'{str(value)[:40]}' is not a number: use the digits 0-9 and a decimal "
                            f"point, like 1250.50.", "invalid_amount")
    whole, fraction = match.group(1).lstrip("0"), match.group(2) or ""
    if len(fraction.rstrip("0")) > places:
        raise _error(field, f"Use at most {places} decimal places.", "too_many_places")
    # A number with more whole digits than any bound is out of range; 1E20 stands in for it.
    return Decimal(text) if len(whole) <= MAX_WHOLE_DIGITS else Decimal(f"{text[0] if text[0] == '-' else ''}1E{MAX_WHOLE_DIGITS}")


def parse_decimal(value: object, *, field: str, places: int = DECIMAL_PLACES, minimum: Decimal = Decimal(0),
                  allow_minimum: bool = True, maximum: Decimal = MAX_AMOUNT) -> Decimal:
    """A typed or sent number (str, int or Decimal) as a Decimal with `places` decimal places,
    within [minimum, maximum] (or (minimum, maximum] when not `allow_minimum`). Raises a Django
    ValidationError naming `field` (codes: invalid_amount, too_many_places, out_of_range)."""
    if isinstance(value, bool) or value is None:
        raise _error(field, "Enter a number.", "invalid_amount")
    if isinstance(value, float):
        raise TypeError("money must not be a float; pass a str or Decimal")
    if (isinstance(value, Decimal) and value.is_finite() and value.as_tuple().exponent >= -places
            and value.adjusted() < MAX_WHOLE_DIGITS):
        # A Decimal already (a parsed file's or a form's): its digits are digits, and it has no
        # more places than allowed, so only the bounds are left to check (a bank file's 100,000
        # amounts skip the text round trip).
        amount = value
    else:
        amount = _parsed_text(value, field=field, places=places)
    if amount < minimum or (amount == minimum and not allow_minimum):
        bound = "zero" if minimum == 0 else f"{minimum:,.{places}f}"
        raise _error(field, f"Must be {'at least' if allow_minimum else 'more than'} {bound}.", "out_of_range")
    if amount > maximum:
        raise _error(field, f"Must be at most {maximum:,.{places}f}.", "out_of_range")
    return amount.quantize(Decimal(1).scaleb(-places))


def parse_amount(value: object, *, field: str = "amount", allow_zero: bool = False,
                 maximum: Decimal = MAX_AMOUNT) -> Decimal:
    """An amount of money: two decimal places, above zero (or zero too), at most `maximum`."""
    return parse_decimal(value, field=field, minimum=Decimal(0), allow_minimum=allow_zero, maximum=maximum)


def to_money(value: object, *, field: str = "amount") -> Decimal:
    """A user-supplied amount in cents (positive, zero or negative, up to MAX_AMOUNT either way);
    exactly as parse_amount reads it, without the lower bound."""
    return parse_decimal(value, field=field, minimum=-MAX_AMOUNT)


def round_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_HALF_UP)


# --- exact sums in SQL ---------------------------------------------------------------------------
def sum_cents(expression: str | Combinable) -> Sum:
    """SUM of a money column or expression as whole cents (an int, 0 over no rows), exact on
    SQLite and PostgreSQL; `from_cents` makes it money again."""
    expr = F(expression) if isinstance(expression, str) else expression
    return Sum(Cast(Round(expr * Value(100)), BigIntegerField()), default=0)


def cents_sql(expression: str) -> str:
    """The raw-SQL form of one row's money as whole cents, for hand-written set-based queries:
    summing these adds integers only (exact on SQLite, where a decimal column is a binary float)."""
    return f"CAST(ROUND(({expression}) * 100) AS BIGINT)"


def from_cents(cents: int | None) -> Decimal:
    return Decimal(int(cents or 0)).scaleb(-DECIMAL_PLACES).quantize(CENT)


def aggregate_money(queryset: QuerySet, **expressions: str | Combinable) -> dict[str, Decimal]:
    """`queryset.aggregate` of money sums, exactly: {name: Decimal} for each name=column/expression."""
    found = queryset.aggregate(**{name: sum_cents(expr) for name, expr in expressions.items()})
    return {name: from_cents(found[name]) for name in expressions}
