"""Form fields shared by every screen's forms (web views and the domain apps' filter forms)."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError

ASCII_INTEGER = re.compile(r"-?[0-9]{1,18}")


def ascii_integer(value) -> int | None:
    """`value` as an int when it is an int (not a bool) or a text of ASCII digits with an optional
    minus sign; None otherwise. Python's int() also reads "١٢" (Arabic-Indic) and "１２"
    (fullwidth) as 12, and Django's and DRF's integer fields drop a trailing ".0": a whole number
    typed so is refused, not guessed (the API's and the screens' rule)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and ASCII_INTEGER.fullmatch(value):
        return int(value)
    return None


class StrictIntegerFormField(forms.IntegerField):
    """A whole number typed as ASCII digits (`ascii_integer`), refused with the field's own error
    otherwise, as the API does (api.serializers.fields.StrictIntegerField). Bounds as
    IntegerField's (min_value, max_value)."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        # Typed into a box: spaces around the digits are the browser's, not the person's.
        number = ascii_integer(value.strip() if isinstance(value, str) else value)
        if number is None:
            raise ValidationError("Enter a whole number using the digits 0-9.", code="invalid")
        return number


def strict_formfield(db_field, **kwargs):
    """The form field of a model field, with StrictIntegerFormField for every integer column: the
    `formfield_callback` of the screens' model forms and fields_for_model calls."""
    from django.db import models

    if isinstance(db_field, models.IntegerField) and not isinstance(db_field, models.AutoField):
        kwargs.setdefault("form_class", StrictIntegerFormField)
    return db_field.formfield(**kwargs)
