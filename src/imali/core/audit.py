"""Writing to the audit log. Every service that changes something calls `audit_record`."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from django.db import models

from .models import AuditAction, AuditEntry


def _jsonable(value: Any) -> Any:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, models.Model):
        return value.pk
    return value


def snapshot(instance: models.Model, *, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """The concrete field values of `instance`, JSON-ready: the before/after of an edit."""
    data = {}
    for field in instance._meta.concrete_fields:
        if field.name in exclude:
            continue
        data[field.attname] = _jsonable(getattr(instance, field.attname))
    return data


def changed_only(before: dict[str, Any], after: dict[str, Any]) -> tuple[dict, dict]:
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def audit_record(
    *,
    action: AuditAction,
    actor=None,
    entity=None,
    target: models.Model | None = None,
    subject: str = "",
    before: dict | None = None,
    after: dict | None = None,
    ip_address: str | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        action=action,
        actor=actor if getattr(actor, "pk", None) else None,
        entity=entity,
        object_type=target._meta.label if target is not None else "",
        object_id=str(target.pk) if target is not None else "",
        subject=subject[:150],
        before=before,
        after=after,
        ip_address=ip_address,
    )


def audit_record_once(*, within: dt.timedelta, action: AuditAction, entity=None, target: models.Model | None = None,
                      subject: str = "", after: dict | None = None) -> AuditEntry | None:
    """An entry for something the system refused by itself, written once per `within` for the same
    action, object and details: a retry loop meeting the same refusal every few seconds (the
    recovery of a batch of payments, a dispatcher's restarts) leaves one entry an hour, not one
    per attempt, and a new reason is recorded at once. Returns the entry written, or None."""
    from django.utils import timezone

    object_type = target._meta.label if target is not None else ""
    object_id = str(target.pk) if target is not None else ""
    if AuditEntry.objects.filter(action=action, object_type=object_type, object_id=object_id, after=after,
                                 created_at__gte=timezone.now() - within).exists():
        return None
    return audit_record(action=action, entity=entity, target=target, subject=subject, after=after)


def apply_changes(locked: models.Model, changes: dict[str, Any], *, exclude: tuple[str, ...] = ()) -> tuple[dict, dict]:
    """Set `changes` on a row the caller holds locked, save it, and return the before and after
    of only the fields that really changed — what an edit's audit entry records."""
    before = snapshot(locked, exclude=exclude)
    for name, value in changes.items():
        setattr(locked, name, value)
    locked.save()
    return changed_only(before, snapshot(locked, exclude=exclude))
