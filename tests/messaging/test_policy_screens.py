"""General Setup's SMS types: the screen and the API, with rights, isolation and audit."""

from __future__ import annotations

from django.urls import reverse

from imali.core.models import AuditEntry
from imali.messaging.models import EntityMessageType
from imali.messaging.policy import SWITCHABLE_TYPES, message_type_enabled
from imali.tenancy.rights import Right
from tests import factories


def test_screen_lists_switches_and_saves_changes_audited(admin_client, entity, other_entity):
    url = reverse("web:messaging_sms_types")
    page = admin_client.get(url).content.decode()
    assert "Payment arrears" in page and "Birthday" in page and "OTP setup" in page
    assert 'name="otp"' not in page  # the OTP is switched in the OTP setup
    on = {t: "on" for t in SWITCHABLE_TYPES if t != "crm"}  # crm left unticked: switched off
    response = admin_client.post(url, on, follow=True)
    assert "CRM off" in response.content.decode()
    assert not message_type_enabled(entity=entity, message_type="crm")
    assert message_type_enabled(entity=entity, message_type="arrears")
    assert message_type_enabled(entity=other_entity, message_type="crm")
    assert list(AuditEntry.objects.filter(action="messaging.type_switched").values_list("subject", flat=True)) == ["CRM"]
    # The page shows the saved state.
    page = admin_client.get(url).content.decode()
    assert 'name="crm"' in page and 'name="crm" checked' not in page.replace('id="id_crm" ', "")


def test_screen_needs_general_setup_right(client, entity):
    clerk = factories.make_user(entity=entity, rights=[Right.SEND_SINGLE_SMS])
    client.force_login(clerk)
    assert client.get(reverse("web:messaging_sms_types")).status_code == 403
    assert client.post(reverse("web:messaging_sms_types"), {}).status_code == 403
    assert not EntityMessageType.objects.exists()


def test_api_lists_and_switches_types(admin_client, entity, other_entity):
    url = reverse("api:messaging-sms-types")
    rows = {r["message_type"]: r for r in admin_client.get(url).json()}
    assert rows["crm"] == {"message_type": "crm", "label": "CRM", "enabled": True, "switchable": True,
                           "direct_marketing": True}
    assert rows["otp"]["switchable"] is False and rows["arrears"]["direct_marketing"] is False
    response = admin_client.patch(url, {"message_type": "birthday", "enabled": False}, content_type="application/json")
    assert response.status_code == 200 and response.json()["enabled"] is False
    assert not message_type_enabled(entity=entity, message_type="birthday")
    assert message_type_enabled(entity=other_entity, message_type="birthday")
    assert AuditEntry.objects.filter(action="messaging.type_switched", entity=entity).count() == 1
    bad = admin_client.patch(url, {"message_type": "otp", "enabled": False}, content_type="application/json")
    assert bad.status_code == 400 and "message_type" in bad.json()


def test_api_needs_the_right(client, entity):
    clerk = factories.make_user(entity=entity, rights=[Right.SEND_SINGLE_SMS])
    client.force_login(clerk)
    url = reverse("api:messaging-sms-types")
    assert client.get(url).status_code == 403
    assert client.patch(url, {"message_type": "crm", "enabled": False}, content_type="application/json").status_code == 403
    assert message_type_enabled(entity=entity, message_type="crm")


def test_history_and_sms_detail_show_a_waiting_marketing_sms_as_scheduled(admin_client, entity, operator):
    import datetime as dt

    from django.utils import timezone

    from imali.messaging.credits import credits_assign
    from imali.messaging.services import message_enqueue

    credits_assign(actor=operator, entity=entity, channel="sms", amount=10)
    client = factories.make_client(entity=entity, name="Zanele")
    # Queued "now" at the start of a Sunday in Johannesburg a week ahead: it waits for Monday 08:00.
    sunday = timezone.localtime(timezone.now()).date()
    sunday += dt.timedelta(days=(6 - sunday.weekday()) % 7 + 7)
    at = dt.datetime.combine(sunday, dt.time(10, 0), tzinfo=dt.UTC)
    m = message_enqueue(entity=entity, number=client.cellphone, text="Our new branch is open", message_type="crm",
                        idempotency_key="sched", client=client, now=at)
    assert m.scheduled_for > timezone.now()
    history = admin_client.get(reverse("web:messaging_client_sms", kwargs={"client_id": client.pk})).content.decode()
    assert "Scheduled" in history and "direct-marketing hours" in history
    detail = admin_client.get(reverse("web:messaging_outbox")).content.decode()
    assert ">Scheduled<" in detail
    api = admin_client.get(reverse("api:messaging-client-sms", kwargs={"client_id": client.pk})).json()
    assert api["results"][0]["status"] == "Scheduled"
