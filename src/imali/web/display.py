"""Read-only presentation of a record's fields: label and human value, grouped like its form."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.utils import timezone

from imali.core import localtime
from imali.core.formatting import format_money
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
    if isinstance(field, models.DecimalField) and field.decimal_places == 2:
        return money(value)
    return str(value)


def field_label(instance: models.Model, name: str) -> str:
    return LABELS.get(name) or str(instance._meta.get_field(name).verbose_name).capitalize()


def fieldsets_display(instance: models.Model, fieldsets) -> list[tuple[str, list[tuple[str, str]]]]:
    return [(heading, [(field_label(instance, name), field_value(instance, name)) for name in names]) for heading, names in fieldsets]


# --- money, dates and times: one format on every screen, PDF and export --------------------------
# Money as imali.core.formatting writes it; dates ISO YYYY-MM-DD; times HH:MM in the entity's zone
# with the zone's abbreviation.

money = format_money


def iso_date(value) -> str:
    """A date (or the local date of an aware datetime) as YYYY-MM-DD."""
    if value in (None, ""):
        return ""
    if isinstance(value, dt.datetime):
        value = timezone.localtime(value) if timezone.is_aware(value) else value
        return value.strftime("%Y-%m-%d")
    if isinstance(value, dt.date):
        return value.strftime("%Y-%m-%d")
    return str(value)


def local_time(value, zone: str | None = None, *, with_date: bool = False, seconds: bool = False) -> str:
    """An aware datetime as HH:MM in `zone` (default: the active zone, which pages set to the
    entity's), labelled as core.localtime labels every time: "14:05 SAST"; with_date:
    "2026-11-25 14:05 SAST"."""
    if value in (None, ""):
        return ""
    if not isinstance(value, dt.datetime):
        return str(value)
    if timezone.is_naive(value):
        value = timezone.make_aware(value, dt.UTC)
    zone = zone or timezone.get_current_timezone_name()
    label = localtime.datetime_label if with_date else localtime.time_label
    return label(value, zone, seconds=seconds)
