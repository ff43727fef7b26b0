"""The audit_entries selector behind the audit-log screen: entity, action and local days."""

import datetime as dt
import zoneinfo

import pytest

from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.core.selectors import audit_entries

pytestmark = pytest.mark.django_db


def test_filters_by_entity_and_action(entity, other_entity):
    audit_record(action=AuditAction.EMPLOYER_CREATED, entity=entity, subject="ours")
    audit_record(action=AuditAction.CLIENT_NOTE_ADDED, entity=entity, subject="note")
    audit_record(action=AuditAction.EMPLOYER_CREATED, entity=other_entity, subject="theirs")
    assert [e.subject for e in audit_entries(entity=entity, action=AuditAction.EMPLOYER_CREATED)] == ["ours"]
    assert {e.subject for e in audit_entries(entity=entity)} >= {"ours", "note"}
    assert "theirs" not in {e.subject for e in audit_entries(entity=entity)}


def test_days_are_the_entitys_local_days_and_until_includes_its_day(entity):
    audit_record(action=AuditAction.EMPLOYER_CREATED, entity=entity, subject="now")
    today = dt.datetime.now(tz=zoneinfo.ZoneInfo(entity.time_zone)).date()
    assert audit_entries(entity=entity, since=today, until=today).filter(subject="now").exists()
    assert not audit_entries(entity=entity, since=today + dt.timedelta(days=1)).filter(subject="now").exists()
    assert not audit_entries(entity=entity, until=today - dt.timedelta(days=1)).filter(subject="now").exists()


def test_moments_bound_since_inclusive_and_until_exclusive(entity):
    entry = audit_record(action=AuditAction.EMPLOYER_CREATED, entity=entity, subject="now")
    assert audit_entries(entity=entity, since=entry.created_at, until=entry.created_at + dt.timedelta(microseconds=1)).count() >= 1
    assert not audit_entries(entity=entity, until=entry.created_at).filter(pk=entry.pk).exists()
