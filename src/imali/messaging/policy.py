"""What an entity allows to be sent, and when (DOMAIN §3 "Enable SMS types", §5 direct-marketing law).

- Every message type but the OTP has a per-entity switch (General Setup); no row means enabled.
  A disabled type is refused by every sender: the single SMS, `message_enqueue`,
  `messages_enqueue_bulk`, email, and the batches and MIS built on them.
- Direct marketing (CRM, marketing and birthday greetings) goes out only inside the CPA
  Regulation 4 hours in the entity's time zone: never on a Sunday or a public holiday of the
  entity's country, Saturday 09:00–13:00, other days 08:00–20:00. A message queued outside waits
  in the outbox until the next allowed minute ("Scheduled"). OTPs and account notices (arrears,
  payment received, new/repeat loan, final payment, MIS, single SMS typed by a user, replies) are
  not restricted.
- Direct marketing goes only to clients who agreed to it (`consent_required`), unless the
  entity's setup says no consent is needed; a number that answered STOP never gets it, and STOP
  also cancels the marketing already queued for that number (and refunds it).
- A direct-marketing text names the sender (the entity's name, the "Legal Entity Name" merge
  field: the lender has no separate trading name in Imali) and how to opt out ("Reply STOP to
  opt out"); both are added when the text lacks them (POPIA s69(4)).

Birthday greetings count as direct marketing: the CPA defines direct marketing as approaching a
person "for the direct or indirect purpose of promoting" the supplier, and a greeting that carries
no account information promotes the lender and nothing else. Treating it as marketing is the side
that cannot break the law; the cost is that a birthday falling on a Sunday is greeted on Monday.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo

import holidays
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.tenancy.models import Entity
from imali.tenancy.rights import Right

from .errors import MessagingError, messaging_error
from .models import EntityMessageType, MessageType

# Types sent only inside the CPA Regulation 4 hours, with sender name and opt-out added, and never
# to a number that answered STOP.
DIRECT_MARKETING_TYPES = frozenset({MessageType.CRM.value, MessageType.MARKETING.value, MessageType.BIRTHDAY.value})

# The OTP has no switch here: the OTP switches of the signing setup (User OTP, Loan OTP, Enrol
# Client) decide whether an OTP is sent, and a second switch could contradict them (Loan OTP
# mandatory while OTP SMSes are off would leave loans that can never be signed).
SWITCHABLE_TYPES: tuple[str, ...] = tuple(t for t in MessageType.values if t != MessageType.OTP)

OPT_OUT_TEXT = "Reply STOP to opt out"
_STOP_WORD = re.compile(r"\bstop\b", re.IGNORECASE)

# CPA Regulation 4(1): allowed local times per weekday (Monday 0 .. Saturday 5); Sunday never.
_WEEKDAY_HOURS = (dt.time(8, 0), dt.time(20, 0))
_SATURDAY_HOURS = (dt.time(9, 0), dt.time(13, 0))


def message_type_enabled(*, entity: Entity, message_type: str) -> bool:
    if message_type not in SWITCHABLE_TYPES:
        return True
    enabled = (EntityMessageType.objects.filter(entity=entity, message_type=message_type)
               .values_list("enabled", flat=True).first())
    return True if enabled is None else enabled


def enabled_message_types(*, entity: Entity) -> set[str]:
    """Every message type the entity may send now (the OTP always), in one query."""
    off = set(EntityMessageType.objects.filter(entity=entity, enabled=False).values_list("message_type", flat=True))
    return {t for t in MessageType.values if t not in off}


def message_type_switches(*, entity: Entity) -> list[tuple[str, str, bool]]:
    """(type, label, enabled) of every switchable type, in one query: what General Setup shows."""
    saved = dict(EntityMessageType.objects.filter(entity=entity).values_list("message_type", "enabled"))
    return [(t, MessageType(t).label, saved.get(t, True)) for t in SWITCHABLE_TYPES]


def message_type_set_enabled(*, actor, entity: Entity, message_type: str, enabled: bool) -> None:
    """Switch one type on or off for the entity, audited (only a change is audited)."""
    if not actor.has_right(Right.MAXSMS_GENERAL_SETUP) or actor.entity_id != entity.pk:
        raise PermissionDenied(f"You need the {Right.MAXSMS_GENERAL_SETUP.label} right of this entity.")
    if message_type not in MessageType.values:
        raise messaging_error("message_type", MessagingError.UNKNOWN_MESSAGE_TYPE, f"Unknown message type '{message_type}'.")
    if message_type not in SWITCHABLE_TYPES:
        raise messaging_error("message_type", MessagingError.TYPE_NOT_SWITCHABLE,
                              f"{MessageType(message_type).label} messages are switched by the OTP setup, not here.")
    enabled = bool(enabled)
    with transaction.atomic():
        switch, created = EntityMessageType.objects.select_for_update().get_or_create(
            entity=entity, message_type=message_type, defaults={"enabled": enabled, "updated_by": actor})
        before = True if created else switch.enabled
        if not created and switch.enabled == enabled:
            return
        if not created:
            switch.enabled = enabled
            switch.updated_by = actor
            switch.save(update_fields=["enabled", "updated_by", "updated_at"])
        if before != enabled:
            audit_record(action=AuditAction.MESSAGE_TYPE_SWITCHED, actor=actor, entity=entity, target=switch,
                         subject=MessageType(message_type).label, before={"enabled": before}, after={"enabled": enabled})


def type_disabled_error(*, message_type: str, field: str = "message_type") -> ValidationError:
    return messaging_error(field, MessagingError.SMS_TYPE_DISABLED,
                           f"{MessageType(message_type).label} messages are switched off for this entity "
                           f"(MAXSMS General Setup).")


def require_message_type_enabled(*, entity: Entity, message_type: str, field: str = "message_type") -> None:
    if not message_type_enabled(entity=entity, message_type=message_type):
        raise type_disabled_error(message_type=message_type, field=field)


def consent_required(*, entity: Entity, message_type: str) -> bool:
    """Whether a message of this type goes only to clients who agreed to marketing: every direct
    marketing type (CRM, marketing, birthday greetings), whoever sends it (a batch, the single SMS
    with a marketing or CRM template, the automatic greetings), unless the entity's setup says it
    needs no consent. One rule, so no sender can forget it."""
    return message_type in DIRECT_MARKETING_TYPES and not entity.marketing_consent_not_required


def send_window_applies(*, message_type: str) -> bool:
    return message_type in DIRECT_MARKETING_TYPES


@functools.lru_cache(maxsize=64)
def _holidays(country: str, year: int):
    return holidays.country_holidays(country, years=year)


def is_public_holiday(*, country: str, day: dt.date) -> bool:
    return day in _holidays(country, day.year)


def public_holiday_name(*, country: str, day: dt.date) -> str:
    return _holidays(country, day.year).get(day) or ""


def _hours(day: dt.date, country: str) -> tuple[dt.time, dt.time] | None:
    """The allowed [start, end) local hours of `day`, None when the whole day is closed."""
    if day.weekday() == 6 or is_public_holiday(country=country, day=day):
        return None
    return _SATURDAY_HOURS if day.weekday() == 5 else _WEEKDAY_HOURS


def next_allowed_send(*, entity: Entity, message_type: str, at: dt.datetime) -> dt.datetime:
    """`at` itself when a message of this type may go out at `at`; otherwise the first minute it
    may (the start of the next allowed hours, an aware datetime in the entity's zone). The end of
    the hours is exclusive: 20:00 on a weekday and 13:00 on a Saturday are already outside."""
    if not send_window_applies(message_type=message_type):
        return at
    if at.tzinfo is None:
        raise ValueError("next_allowed_send needs an aware datetime")
    tz = zoneinfo.ZoneInfo(entity.time_zone)
    local = at.astimezone(tz)
    day = local.date()
    # A year holds at most a handful of closed days in a row (Easter: Friday, Sunday, Monday).
    for offset in range(370):
        d = day + dt.timedelta(days=offset)
        hours = _hours(d, entity.country)
        if hours is None:
            continue
        start = dt.datetime.combine(d, hours[0], tzinfo=tz)
        end = dt.datetime.combine(d, hours[1], tzinfo=tz)
        if offset == 0 and start <= local < end:
            return at
        if local < start:
            return start
    raise RuntimeError(f"No allowed sending time within a year of {at} for {entity.country}")  # pragma: no cover


def window_description() -> str:
    return ("Mon–Fri 08:00–20:00, Saturday 09:00–13:00, never on Sundays or public holidays "
            "(CPA Regulation 4, entity local time)")


def marketing_text(*, entity: Entity, text: str) -> str:
    """The text with the sender's name and the opt-out instruction, each added only when missing.
    The sender is the entity's name, written out or as the {^Legal Entity Name^} merge field; the
    instruction counts as present when the text already says "STOP" (in any case)."""
    body = text.rstrip()
    has_name = entity.name.casefold() in body.casefold() or "{^Legal Entity Name^}" in body
    has_stop = _STOP_WORD.search(body) is not None
    additions = []
    if not has_name:
        additions.append(entity.name)
    if not has_stop:
        additions.append(OPT_OUT_TEXT)
    if not additions:
        return text
    if not body:
        separator = ""
    elif body.endswith("^}"):
        separator = " - "  # a merge field must be followed by a space, so no full stop straight after it
    else:
        separator = " " if body[-1] in ".!?" else ". "
    return f"{body}{separator}{'. '.join(additions)}"


def message_types_update(*, actor, entity: Entity, enabled: dict[str, bool]) -> list[str]:
    """Set several switches at once (the General Setup form), all or nothing; returns the types
    whose state changed, each audited."""
    unknown = [t for t in enabled if t not in SWITCHABLE_TYPES]
    if unknown:
        raise messaging_error("message_type", MessagingError.UNKNOWN_MESSAGE_TYPE,
                              f"No switch for: {', '.join(sorted(unknown))}.")
    before = {t: on for t, _, on in message_type_switches(entity=entity)}
    changed = [t for t, on in enabled.items() if before.get(t, True) != bool(on)]
    with transaction.atomic():
        for message_type in changed:
            message_type_set_enabled(actor=actor, entity=entity, message_type=message_type, enabled=enabled[message_type])
    return changed
