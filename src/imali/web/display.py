"""Read-only presentation of a record's fields: label and human value, grouped like its form."""

from __future__ import annotations

from django.db import models

from imali.core.phones import display_phone

LABELS = {"id_type": "ID type", "id_number": "ID number"}
PHONE_FIELDS = frozenset({"cellphone", "home_phone", "work_phone", "telephone"})


def field_value(instance: models.Model, name: str) -> str:
    field = instance._meta.get_field(name)
    value = getattr(instance, name)
    if value in (None, ""):
        return ""
    if isinstance(field, models.BooleanField):
        return "Yes" if value else "No"
    if field.choices:
        return str(getattr(instance, f"get_{name}_display")())
    if name in PHONE_FIELDS:
        return display_phone(value)
    if isinstance(field, models.DateField) and not isinstance(field, models.DateTimeField):
        return value.strftime("%Y-%m-%d")
    return str(value)


def field_label(instance: models.Model, name: str) -> str:
    return LABELS.get(name) or str(instance._meta.get_field(name).verbose_name).capitalize()


def fieldsets_display(instance: models.Model, fieldsets) -> list[tuple[str, list[tuple[str, str]]]]:
    return [(heading, [(field_label(instance, name), field_value(instance, name)) for name in names]) for heading, names in fieldsets]
