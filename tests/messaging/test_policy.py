"""The entity's message policy: type switches (DOMAIN §3) and direct-marketing hours and texts (§5)."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from imali.core.models import AuditEntry
from imali.messaging.email.services import EmailRecipient, emails_send
from imali.messaging.models import EntityMessageType, OutboxMessage
from imali.messaging.policy import (
    enabled_message_types,
    marketing_text,
    message_type_enabled,
    message_type_set_enabled,
    next_allowed_send,
    send_window_applies,
)
from imali.messaging.selectors import client_sms_history, sms_history_rows
from imali.messaging.services import (
    BulkRecipient,
    message_enqueue,
    messages_enqueue_bulk,
    single_sms_preview,
    single_sms_send,
)
from imali.tenancy.rights import Right
from tests import factories

JHB = zoneinfo.ZoneInfo("Africa/Johannesburg")
WHK = zoneinfo.ZoneInfo("Africa/Windhoek")


def local(y, m, d, hh, mm, tz=JHB):
    return dt.datetime(y, m, d, hh, mm, tzinfo=tz)


def codes(exc: ValidationError, field: str) -> list[str]:
    return [e.code for e in exc.error_dict[field]]


# --- next_allowed_send ---------------------------------------------------------------------------

@pytest.mark.parametrize(("at", "expected"), [
    # Sunday 6 December 2026 at 10:00: nothing on Sundays, Monday 08:00.
    (local(2026, 12, 6, 10, 0), local(2026, 12, 7, 8, 0)),
    # Saturday 12 December: 12:59 is inside 09:00–13:00, 13:01 waits for Monday 08:00.
    (local(2026, 12, 12, 12, 59), local(2026, 12, 12, 12, 59)),
    (local(2026, 12, 12, 13, 1), local(2026, 12, 14, 8, 0)),
    (local(2026, 12, 12, 13, 0), local(2026, 12, 14, 8, 0)),
    (local(2026, 12, 12, 8, 30), local(2026, 12, 12, 9, 0)),
    # Tuesday 8 December: 20:00 is outside (end exclusive), 07:59 waits a minute, 19:59 is in.
    (local(2026, 12, 8, 20, 0), local(2026, 12, 9, 8, 0)),
    (local(2026, 12, 8, 7, 59), local(2026, 12, 8, 8, 0)),
    (local(2026, 12, 8, 19, 59), local(2026, 12, 8, 19, 59)),
    # Friday 20:30 moves to Saturday 09:00.
    (local(2026, 12, 11, 20, 30), local(2026, 12, 12, 9, 0)),
    # ZA public holidays: Day of Reconciliation (Wednesday 16 December 2026) ...
    (local(2026, 12, 16, 10, 0), local(2026, 12, 17, 8, 0)),
    # ... and Christmas Friday, Day of Goodwill Saturday, Sunday: Monday 28 December 08:00.
    (local(2026, 12, 24, 21, 0), local(2026, 12, 28, 8, 0)),
])
def test_za_direct_marketing_hours(entity, at, expected):
    assert next_allowed_send(entity=entity, message_type="crm", at=at) == expected


def test_public_holiday_of_the_entitys_own_country(entity, other_entity):
    # Heroes' Day, Wednesday 26 August 2026, is a Namibian holiday and not a South African one.
    at = local(2026, 8, 26, 10, 0, WHK)
    assert next_allowed_send(entity=other_entity, message_type="marketing", at=at) == local(2026, 8, 27, 8, 0, WHK)
    assert next_allowed_send(entity=entity, message_type="marketing", at=at) == at


def test_hours_are_the_entitys_local_hours(entity):
    # 06:30 UTC is 08:30 in Johannesburg: allowed; 05:30 UTC is 07:30 there: waits until 06:00 UTC.
    assert next_allowed_send(entity=entity, message_type="crm", at=dt.datetime(2026, 12, 8, 6, 30, tzinfo=dt.UTC)) \
        == dt.datetime(2026, 12, 8, 6, 30, tzinfo=dt.UTC)
    assert next_allowed_send(entity=entity, message_type="crm", at=dt.datetime(2026, 12, 8, 5, 30, tzinfo=dt.UTC)) \
        == dt.datetime(2026, 12, 8, 6, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("message_type", ["otp", "arrears", "payment_received", "new_loan", "mis", "single"])
def test_otp_and_account_notices_are_never_restricted(entity, message_type):
    sunday = local(2026, 12, 6, 3, 0)
    assert not send_window_applies(message_type=message_type)
    assert next_allowed_send(entity=entity, message_type=message_type, at=sunday) == sunday


def test_direct_marketing_types():
    assert send_window_applies(message_type="crm")
    assert send_window_applies(message_type="marketing")
    assert send_window_applies(message_type="birthday")


# --- marketing_text ------------------------------------------------------------------------------

def test_marketing_text_adds_sender_and_opt_out_once(entity):
    text = marketing_text(entity=entity, text="Loans from R500 this week")
    assert text == f"Loans from R500 this week. {entity.name}. Reply STOP to opt out"
    assert marketing_text(entity=entity, text=text) == text
    already = f"{entity.name}: loans this week. SMS stop to 123"
    assert marketing_text(entity=entity, text=already) == already
    field = "Loans at {^Legal Entity Name^} this week!"
    assert marketing_text(entity=entity, text=field) == field + " Reply STOP to opt out"


# --- switches ------------------------------------------------------------------------------------

def test_all_types_enabled_by_default_and_switch_is_audited(entity, admin_user, other_entity):
    assert "crm" in enabled_message_types(entity=entity)
    message_type_set_enabled(actor=admin_user, entity=entity, message_type="crm", enabled=False)
    assert not message_type_enabled(entity=entity, message_type="crm")
    assert "crm" not in enabled_message_types(entity=entity)
    assert message_type_enabled(entity=other_entity, message_type="crm")  # the other entity is untouched
    entry = AuditEntry.objects.get(action="messaging.type_switched", entity=entity)
    assert entry.before == {"enabled": True} and entry.after == {"enabled": False} and entry.actor == admin_user
    # Switching to the same state again writes nothing more.
    message_type_set_enabled(actor=admin_user, entity=entity, message_type="crm", enabled=False)
    assert AuditEntry.objects.filter(action="messaging.type_switched").count() == 1
    message_type_set_enabled(actor=admin_user, entity=entity, message_type="crm", enabled=True)
    assert message_type_enabled(entity=entity, message_type="crm")
    assert AuditEntry.objects.filter(action="messaging.type_switched").count() == 2


def test_switch_needs_the_right_of_the_same_entity(entity, other_entity):
    clerk = factories.make_user(entity=entity, rights=[Right.SEND_SINGLE_SMS])
    with pytest.raises(PermissionDenied):
        message_type_set_enabled(actor=clerk, entity=entity, message_type="crm", enabled=False)
    stranger = factories.make_admin(entity=other_entity)
    with pytest.raises(PermissionDenied):
        message_type_set_enabled(actor=stranger, entity=entity, message_type="crm", enabled=False)
    assert not EntityMessageType.objects.exists()


def test_otp_has_no_switch(entity, admin_user):
    with pytest.raises(ValidationError) as exc:
        message_type_set_enabled(actor=admin_user, entity=entity, message_type="otp", enabled=False)
    assert codes(exc.value, "message_type") == ["type_not_switchable"]
    assert message_type_enabled(entity=entity, message_type="otp")


def _off(entity, admin_user, message_type):
    message_type_set_enabled(actor=admin_user, entity=entity, message_type=message_type, enabled=False)


def test_disabled_type_refused_by_message_enqueue(funded, admin_user, sms_client):
    _off(funded, admin_user, "arrears")
    with pytest.raises(ValidationError) as exc:
        message_enqueue(entity=funded, number=sms_client.cellphone, text="Pay", message_type="arrears", idempotency_key="a1")
    assert codes(exc.value, "message_type") == ["sms_type_disabled"]
    assert "switched off" in exc.value.error_dict["message_type"][0].message
    assert not OutboxMessage.objects.exists()


def test_disabled_type_refused_for_a_batch(funded, admin_user, sms_client):
    _off(funded, admin_user, "arrears")
    recipients = [BulkRecipient("arrears:e1:c1", sms_client.cellphone, {}, client_id=sms_client.pk)]
    with pytest.raises(ValidationError) as exc:
        messages_enqueue_bulk(entity=funded, actor=admin_user, message_type="arrears", text="Pay", recipients=recipients)
    assert codes(exc.value, "message_type") == ["sms_type_disabled"]
    assert not OutboxMessage.objects.exists()


def test_disabled_type_refused_for_a_single_sms(funded, admin_user, sms_client):
    _off(funded, admin_user, "birthday")
    with pytest.raises(ValidationError) as exc:
        single_sms_preview(actor=admin_user, entity=funded, client=sms_client, template="birthday")
    assert codes(exc.value, "template") == ["sms_type_disabled"]
    # A typed single SMS is its own type: switched off, nothing typed goes either.
    _off(funded, admin_user, "single")
    with pytest.raises(ValidationError) as exc:
        single_sms_send(actor=admin_user, entity=funded, client=sms_client, idempotency_key="s1", text="Hello")
    assert codes(exc.value, "template") == ["sms_type_disabled"]
    assert not OutboxMessage.objects.exists()


def test_disabled_type_refused_for_email(entity, admin_user):
    _off(entity, admin_user, "arrears")
    with pytest.raises(ValidationError) as exc:
        emails_send(actor=admin_user, entity=entity, message_type="arrears", subject="Hi", text="Hello",
                    recipients=[EmailRecipient("a@example.com")], idempotency_key="e1")
    assert codes(exc.value, "message_type") == ["sms_type_disabled"]


# --- the window in the outbox ---------------------------------------------------------------------

def test_crm_queued_on_a_sunday_waits_and_shows_scheduled(funded, sms_client):
    sunday = local(2026, 12, 6, 10, 0)
    m = message_enqueue(entity=funded, number=sms_client.cellphone, text="Our new branch is open",
                        message_type="crm", idempotency_key="c1", client=sms_client, now=sunday)
    assert m.next_attempt_at == m.scheduled_for == local(2026, 12, 7, 8, 0)
    assert m.text.endswith(f"{funded.name}. Reply STOP to opt out")
    assert m.created_at == sunday
    # Seen before Monday 08:00 it is Scheduled (the test runs after, so look at it as of then).
    rows = sms_history_rows(entity=funded, messages=client_sms_history(entity=funded, client_id=sms_client.pk))
    expected = "Scheduled" if timezone.now() < m.scheduled_for else "Queued"
    assert rows[0].status == expected


def test_crm_queued_inside_the_hours_goes_at_once(funded, sms_client):
    tuesday = local(2026, 12, 8, 10, 0)
    m = message_enqueue(entity=funded, number=sms_client.cellphone, text="Hi", message_type="crm",
                        idempotency_key="c2", now=tuesday)
    assert m.next_attempt_at == tuesday and m.scheduled_for is None


def test_otp_on_a_sunday_night_goes_at_once(funded, sms_client):
    night = local(2026, 12, 6, 23, 0)
    m = message_enqueue(entity=funded, number=sms_client.cellphone, text="Your OTP is 123456", message_type="otp",
                        idempotency_key="o1", now=night)
    assert m.next_attempt_at == night and m.scheduled_for is None and m.text == "Your OTP is 123456"


def test_batch_started_on_saturday_afternoon_waits_for_monday(funded, admin_user, sms_client):
    from imali.clients.models import Client

    Client.objects.filter(pk=sms_client.pk).update(marketing_consent=True)  # CRM needs consent (consent_required)
    saturday = local(2026, 12, 12, 13, 1)
    recipients = [BulkRecipient("crm:e1:c1", sms_client.cellphone, {}, client_id=sms_client.pk)]
    messages_enqueue_bulk(entity=funded, actor=admin_user, message_type="crm", text="Visit us", recipients=recipients,
                          now=saturday)
    m = OutboxMessage.objects.get()
    assert m.scheduled_for == m.next_attempt_at == local(2026, 12, 14, 8, 0)
    assert m.created_at == saturday
    assert m.text == f"Visit us. {funded.name}. Reply STOP to opt out"
    # Saturday 12:59: at once.
    recipients = [BulkRecipient("crm:e2:c1", sms_client.cellphone, {}, client_id=sms_client.pk)]
    early = local(2026, 12, 12, 12, 59)
    messages_enqueue_bulk(entity=funded, actor=admin_user, message_type="crm", text="Visit us", recipients=recipients,
                          now=early)
    m2 = OutboxMessage.objects.get(idempotency_key="crm:e2:c1")
    assert m2.scheduled_for is None and m2.next_attempt_at == early


def test_crm_to_a_number_that_answered_stop_is_refused(funded, sms_client):
    from imali.messaging.models import MarketingOptOut

    MarketingOptOut.objects.create(entity=funded, number=sms_client.cellphone)
    with pytest.raises(ValidationError) as exc:
        message_enqueue(entity=funded, number=sms_client.cellphone, text="Hi", message_type="crm", idempotency_key="x")
    assert codes(exc.value, "number") == ["opted_out"]
    # Account notices still go: STOP withdraws marketing only.
    message_enqueue(entity=funded, number=sms_client.cellphone, text="Arrears", message_type="arrears", idempotency_key="y")


def test_marketing_text_after_a_merge_field_stays_a_valid_template(entity):
    from imali.messaging.templating import template_problems

    text = marketing_text(entity=entity, text="Happy birthday {^Client Name^}")
    assert text == f"Happy birthday {{^Client Name^}} - {entity.name}. Reply STOP to opt out"
    assert template_problems(text) == []


def test_a_retry_of_direct_marketing_waits_for_the_hours_too(funded, sms_client):
    from imali.messaging.dispatch import _outside_marketing_hours

    tuesday = local(2026, 12, 8, 19, 58)
    crm = message_enqueue(entity=funded, number=sms_client.cellphone, text="Hi", message_type="crm",
                          idempotency_key="r1", now=tuesday)
    notice = message_enqueue(entity=funded, number=sms_client.cellphone, text="Pay", message_type="arrears",
                             idempotency_key="r2", now=tuesday)
    retry_at = local(2026, 12, 8, 20, 3)  # the gateway failed; back-off lands after 20:00
    held = _outside_marketing_hours({crm.pk: retry_at, notice.pk: retry_at})
    assert held == {crm.pk: local(2026, 12, 9, 8, 0)}
    assert _outside_marketing_hours({crm.pk: local(2026, 12, 8, 19, 59)}) == {}
