"""Template filters of imali.web.wording: times in the entity's zone with its label, audit
details and ledger references in words, masked phones."""

from __future__ import annotations

from django import template

from imali.messaging.models import criteria_label, process_kind_label

from .. import wording

register = template.Library()


@register.filter
def zoned_time(value, time_zone: str) -> str:
    """{{ challenge.expires_at|zoned_time:current_entity.time_zone }} → "20:23 SAST"."""
    return wording.time_label(value, time_zone) if value else ""


@register.filter
def zoned_datetime(value, time_zone: str) -> str:
    """{{ entry.created_at|zoned_datetime:current_entity.time_zone }} → "2026-11-03 20:23 SAST"."""
    return wording.datetime_label(value, time_zone) if value else ""


@register.filter
def zoned_datetime_seconds(value, time_zone: str) -> str:
    """ "2026-11-03 20:23:05 SAST": where the second matters (a signature, a code's sending)."""
    return wording.datetime_label(value, time_zone, seconds=True) if value else ""


@register.filter
def audit_words(entry) -> str:
    return wording.audit_sentence(entry.action, entry.after, entry.before)


@register.filter
def record_words(entry) -> str:
    return wording.audit_record(entry)


@register.filter
def status_words(entry) -> str:
    return wording.audit_status(entry)


@register.filter
def process_words(kind: str) -> str:
    return process_kind_label(kind)  # the words beside ProcessLog, as its exports use


@register.filter
def criteria_words(key: str) -> str:
    return criteria_label(key)


@register.filter
def subject_words(subject: str) -> str:
    return wording.audit_subject(subject)


@register.filter
def ledger_words(reference: str) -> str:
    return wording.ledger_reference(reference)


@register.filter
def masked_phone(e164: str) -> str:
    return wording.masked_phone(e164)
