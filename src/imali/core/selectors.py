"""Reads of the core tables: the audit log as the screens filter it."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.db.models import QuerySet

from .models import AuditEntry


def _local_start(day: dt.date, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=tz)


def audit_entries(
    *,
    entity,
    action: str | None = None,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
) -> QuerySet[AuditEntry]:
    """The entity's audit entries, newest first, with their actors.

    `since` and `until` may be moments (aware datetimes: since inclusive, until exclusive) or
    days; a day is the entity's local day and `until` includes the whole of it."""
    entries = AuditEntry.objects.filter(entity=entity).select_related("actor")
    if action:
        entries = entries.filter(action=action)
    tz = zoneinfo.ZoneInfo(entity.time_zone)
    if since is not None:
        if not isinstance(since, dt.datetime):
            since = _local_start(since, tz)
        entries = entries.filter(created_at__gte=since)
    if until is not None:
        if not isinstance(until, dt.datetime):
            until = _local_start(until + dt.timedelta(days=1), tz)
        entries = entries.filter(created_at__lt=until)
    return entries
