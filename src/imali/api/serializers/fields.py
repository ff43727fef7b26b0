"""Serializer fields shared by the API's domains."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from rest_framework import serializers

from imali.core.dates import DAY_RANGE_MESSAGE, day_in_range
from imali.core.forms import ascii_integer
from imali.core.money import DECIMAL_PLACES, MAX_AMOUNT, parse_decimal


class StrictIntegerField(serializers.IntegerField):
    """A whole number given as a JSON integer or a string of ASCII digits; "1.0", 1.5, true,
    "١٢" and "1e3" are a 400 naming the field. Bounds as DRF's IntegerField (min_value,
    max_value). Model serializers use it for every integer column (ApiConfig.ready)."""

    def to_internal_value(self, data):
        value = ascii_integer(data)
        if value is None:
            self.fail("invalid")
        return super().to_internal_value(value)


class EntityRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key given by id, accepted only when the row is the caller's entity's.

    ``scope(queryset, entity)`` narrows the model's rows to one entity (for models that reach
    their entity through another row, e.g. a paypoint through its employer). An id of another
    entity gets the same message as an id that does not exist, so nothing leaks about it.
    """

    default_error_messages = {
        "does_not_exist": "No such record in your entity (id {pk_value}).",
    }

    def __init__(self, *, scope: Callable[[QuerySet, object], QuerySet] | None = None, **kwargs):
        self.scope = scope or (lambda queryset, entity: queryset.filter(entity=entity))
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        # An id is a JSON integer or ASCII digits: the database's int() would read "١٢" as 12.
        if ascii_integer(data) is None:
            self.fail("incorrect_type", data_type=type(data).__name__)
        return super().to_internal_value(data)

    def get_queryset(self):
        queryset = super().get_queryset()
        view = self.context.get("view")
        entity = getattr(view, "entity", None) if view is not None else None
        if entity is None:
            return queryset.none()
        return self.scope(queryset, entity)


class StrictDecimalField(serializers.DecimalField):
    """A decimal read exactly as the web forms and the services read it (core.money.parse_decimal):
    ASCII digits, at most `places` decimal places, no exponent, finite, from `minimum` (excluded
    unless `allow_minimum`) to `maximum`. A JSON string or a JSON integer; a JSON number with a
    fraction or an exponent (12.5, 0.1, 1e20) is refused with `float_message`: the JSON parser has
    already made it a binary float by then, so 9999999.999999999999 would arrive as 10000000.0 —
    an amount the caller never sent — and the field cannot tell. Anything else is a 400 naming
    the field, before any service runs. Written back as a string with `places` places, like
    every money figure of the API."""

    float_message = 'Send the number as a string, e.g. "12.5": a JSON number with a fraction is not exact.'

    def __init__(self, *, places: int, maximum: Decimal, minimum: Decimal = Decimal(0), allow_minimum: bool = True,
                 **kwargs):
        self.places, self.minimum, self.allow_minimum, self.maximum = places, minimum, allow_minimum, maximum
        whole_digits = len(str(int(maximum)))
        super().__init__(max_digits=whole_digits + places, decimal_places=places, **kwargs)

    def to_internal_value(self, data):
        if isinstance(data, float):
            raise serializers.ValidationError(self.float_message, code="json_number")
        if isinstance(data, bool) or not isinstance(data, str | int | Decimal):
            self.fail("invalid")
        try:
            return parse_decimal(data, field="value", places=self.places, minimum=self.minimum,
                                 allow_minimum=self.allow_minimum, maximum=self.maximum)
        except DjangoValidationError as exc:
            error = exc.error_dict["value"][0]
            raise serializers.ValidationError(error.messages, code=error.code) from None


class MoneyField(StrictDecimalField):
    """An amount of money (core.money.parse_amount): above zero, or zero too where `allow_zero`;
    at most `maximum` (MAX_AMOUNT unless the caller knows a smaller bound)."""

    float_message = 'Send money as a string, e.g. "12.50".'

    def __init__(self, *, allow_zero: bool = False, maximum: Decimal = MAX_AMOUNT, **kwargs):
        super().__init__(places=DECIMAL_PLACES, maximum=maximum, allow_minimum=allow_zero, **kwargs)


class MoneyShapeField(MoneyField):
    """A money field that checks the amount's shape here (digits, places, no exponent, at most
    MAX_AMOUNT either way) and leaves its sign to the service, which reads it with core.money by
    the same rules among the record's other fields: then a negative salary is reported in one
    400 together with rules across fields (the payment day for the pay frequency)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.minimum, self.allow_minimum = -self.maximum, True


class RateField(StrictDecimalField):
    """A percentage (an interest rate per month, a VAT rate): zero to 100 with up to four places."""

    float_message = 'Send the rate as a string, e.g. "3.5".'

    def __init__(self, *, places: int = 4, **kwargs):
        super().__init__(places=places, maximum=Decimal(100), **kwargs)


class StrictDecimalFieldSchema(OpenApiSerializerFieldExtension):
    """The OpenAPI schema of each StrictDecimalField as it reads: a decimal string whose pattern
    states its sign, whole digits and places (the bounds themselves are in its messages), or, in a
    request, a JSON integer within the bounds; a JSON number with a fraction is neither."""

    target_class = StrictDecimalField
    match_subclasses = True

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        sign = "-?" if field.minimum < 0 else ""
        whole = len(str(int(field.maximum)))
        text = {"type": "string", "format": "decimal",
                "pattern": rf"^{sign}[0-9]{{1,{whole}}}(\.[0-9]{{1,{field.places}}})?$",
                "example": f"{min(field.maximum, Decimal(1250)):.{field.places}f}"}
        if direction != "request":
            return text  # always written back as a string
        whole_number = {"type": "integer", "minimum": int(field.minimum), "maximum": int(field.maximum)}
        if not field.allow_minimum:
            whole_number["exclusiveMinimum"] = True
        return {"oneOf": [text, whole_number],
                "description": "A decimal string; a JSON integer is taken too, a JSON number with a fraction is not."}


class DayField(serializers.DateField):
    """A day the product can work with (core.dates.day_in_range, 1900-2100): a filter's local
    midnight of 0001-01-01 overflowed (a 500). Every date filter of the API reads through it."""

    def to_internal_value(self, value):
        day = super().to_internal_value(value)
        if not day_in_range(day):
            raise serializers.ValidationError(DAY_RANGE_MESSAGE, code="out_of_range")
        return day


class OptionalBooleanField(serializers.BooleanField):
    """A box a form-encoded body does not name is not given, as in JSON: DRF reads an absent
    checkbox as unticked (False), which would decide for the caller what the service's default is
    for (a South African product's initiation fee switched off by a form POST that never mentioned it)."""

    default_empty_html = serializers.empty


class StrictBooleanField(serializers.BooleanField):
    """true or false as JSON booleans only: "yes", 1 or "on" are refused, not guessed (an endpoint
    with one takes JSON only, where a boolean has a type of its own)."""

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data
