"""Form fields shared by every screen's forms (web views and the domain apps' filter forms)."""

from __future__ import annotations

import re

from django import forms
from django.core.exceptions import ValidationError

ASCII_INTEGER = re.compile(r"-?[0-9]{1,18}")


class StrictIntegerFormField(forms.IntegerField):
    """A whole number typed as ASCII digits (an optional minus sign; spaces around it trimmed).
    Django's IntegerField reads "١٢" (Arabic-Indic) and "１２" (fullwidth) as 12 and drops a
    trailing ".0"; this one refuses them with the field's own error, as the API does
    (api.serializers.fields.StrictIntegerField). Bounds as IntegerField's (min_value, max_value)."""

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value).strip()
        if not ASCII_INTEGER.fullmatch(text):
            raise ValidationError("Enter a whole number using the digits 0-9.", code="invalid")
        return int(text)


def strict_formfield(db_field, **kwargs):
    """The form field of a model field, with StrictIntegerFormField for every integer column: the
    `formfield_callback` of the screens' model forms and fields_for_model calls."""
    from django.db import models

    if isinstance(db_field, models.IntegerField) and not isinstance(db_field, models.AutoField):
        kwargs.setdefault("form_class", StrictIntegerFormField)
    return db_field.formfield(**kwargs)
