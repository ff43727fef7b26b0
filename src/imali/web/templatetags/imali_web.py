"""Template filters shared by the web screens."""

from __future__ import annotations

from django import template

from imali.core.phones import display_phone

from .. import display

register = template.Library()


@register.filter
def money(value, currency: str = "") -> str:
    """Money as every screen shows it: "12,345.67", or with a currency code "ZAR 12,345.67"."""
    return display.money(value, currency)


@register.filter
def thousands(value) -> str:
    """A whole number with thousands separators: 12345 → "12,345"."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return "" if value is None else str(value)


@register.filter
def counted(value, nouns: str) -> str:
    """{{ n|counted:"credit" }} → "1 credit", "2 credits"; {{ n|counted:"SMS,SMSes" }} names both."""
    from imali.core.formatting import counted as counted_text

    one, _, many = nouns.partition(",")
    try:
        return counted_text(int(value), one, many or None)
    except (TypeError, ValueError):
        return "" if value is None else str(value)


@register.filter
def module_names(modules) -> str:
    """An entity's enabled modules by their names ("MAXSMS (SMS), Mobile money"), not their keys."""
    from imali.tenancy.models import Module

    labels = dict(Module.choices)
    return ", ".join(str(labels.get(m, m)) for m in modules or ())


@register.filter
def isodate(value) -> str:
    """A date as YYYY-MM-DD (an aware datetime: its date in the page's zone, the entity's)."""
    return display.iso_date(value)


@register.filter
def hhmm(value, zone: str = "") -> str:
    """A time as HH:MM with its zone, "14:05 SAST", in the page's zone (the entity's) or `zone`."""
    return display.local_time(value, zone or None)


@register.filter
def stamp(value, zone: str = "") -> str:
    """Date and time with the zone, "2026-11-25 14:05 SAST"."""
    return display.local_time(value, zone or None, with_date=True)


@register.filter
def phone(e164: str) -> str:
    """An E.164 number in the national form people read, e.g. 082 123 4567."""
    try:
        return display_phone(e164)
    except Exception:  # noqa: BLE001 - a stored value that does not parse is shown as stored
        return e164


@register.filter
def fold_quiet_days(days) -> list[dict]:
    """The usage table's rows: each day with messages as it is, and each run of days without any
    folded into one row (first, last, how many), so a quiet month is not a page of zeros."""
    rows: list[dict] = []
    for day in days:
        if day.total:
            rows.append({"quiet": False, "day": day})
        elif rows and rows[-1]["quiet"]:
            rows[-1]["last"], rows[-1]["days"] = day.day, rows[-1]["days"] + 1
        else:
            rows.append({"quiet": True, "first": day.day, "last": day.day, "days": 1})
    return rows


@register.filter
def querystring_without(query_dict, key: str) -> str:
    """The current query string minus `key`, for pagination links that keep the filters."""
    copy = query_dict.copy()
    copy.pop(key, None)
    return copy.urlencode()


# Book-keeping columns that say nothing a reader of the history needs.
_HIDDEN_CHANGE_KEYS = frozenset({"id", "entity_id", "created_at", "updated_at", "password"})


@register.filter
def audit_changes(changes) -> list[tuple[str, object]]:
    """The before/after of an audit entry as (field, value) rows, without empty values and
    book-keeping columns, so a 'created' entry lists only what was filled in."""
    if not isinstance(changes, dict):
        return []
    return [(key.removesuffix("_id").replace("_", " "), value) for key, value in changes.items()
            if key not in _HIDDEN_CHANGE_KEYS and value not in ("", None, [])]
