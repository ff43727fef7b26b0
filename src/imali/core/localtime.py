"""Times as people read them: in a zone, labelled with the zone's name ("20:23 SAST"). Pure:
no database, no Django; the SMS texts, the screens and the local SMSC's phone page use it, so a
code's expiry reads the same everywhere."""

from __future__ import annotations

import datetime as dt
import zoneinfo


def local(value: dt.datetime, time_zone: str) -> dt.datetime:
    return value.astimezone(zoneinfo.ZoneInfo(time_zone))


def zone_label(value: dt.datetime, time_zone: str) -> str:
    """The zone's short name at that moment ("SAST", "CAT"), or "UTC+02:00" where it has none."""
    moment = local(value, time_zone)
    name = moment.tzname() or ""
    if not name or name[0] in "+-":
        offset = moment.utcoffset() or dt.timedelta(0)
        sign = "+" if offset >= dt.timedelta(0) else "-"
        hours, minutes = divmod(abs(int(offset.total_seconds())) // 60, 60)
        return f"UTC{sign}{hours:02d}:{minutes:02d}"
    return name


def time_label(value: dt.datetime, time_zone: str, *, seconds: bool = False) -> str:
    """ "20:23 SAST" (or "20:23:05 SAST")."""
    return f"{local(value, time_zone):{'%H:%M:%S' if seconds else '%H:%M'}} {zone_label(value, time_zone)}"


def datetime_label(value: dt.datetime, time_zone: str, *, seconds: bool = False) -> str:
    """ "2026-11-03 20:23 SAST" (or "2026-11-03 20:23:05 SAST")."""
    return f"{local(value, time_zone):{'%Y-%m-%d %H:%M:%S' if seconds else '%Y-%m-%d %H:%M'}} {zone_label(value, time_zone)}"
