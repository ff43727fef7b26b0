import pytest
from django.urls import reverse

from imali.messaging.credits import credit_balance
from imali.messaging.models import MessageTemplate, OutboxMessage
from imali.tenancy.rights import Right
from tests import factories


def login(client, user):
    client.force_login(user)
    return client


def test_operator_assigns_credits_on_the_screen(client, entity, operator):
    login(client, operator)
    url = reverse("web:messaging_operator_credits")
    assert entity.name in client.get(url).content.decode()
    response = client.post(url, {"entity": entity.pk, "channel": "sms", "amount": 250, "note": "inv 7"})
    assert response.status_code == 302
    assert credit_balance(entity=entity) == 250


def test_lender_users_cannot_assign(admin_client, entity):
    assert admin_client.get(reverse("web:messaging_operator_credits")).status_code == 403
    assert admin_client.post(reverse("web:messaging_operator_credits"),
                             {"entity": entity.pk, "channel": "sms", "amount": 9}).status_code == 403


def test_credits_screen_shows_usage_and_saves_settings(admin_client, funded):
    body = admin_client.get(reverse("web:messaging_credits")).content.decode()
    assert "1000" in body
    response = admin_client.post(reverse("web:messaging_credits"), {"monthly_limit": 500, "low_warning_amount": 20})
    assert response.status_code == 302
    response = admin_client.post(reverse("web:messaging_credits"), {"monthly_limit": -1, "low_warning_amount": 20})
    assert "monthly_limit" in response.context["form"].errors


def test_template_editor_previews_segments_and_names_ucs2(admin_client, entity, sms_client):
    url = reverse("web:messaging_template_edit") + "?type=birthday"
    response = admin_client.post(url, {"text": "Happy birthday {^Client Name^} ✓", "preview_client": sms_client.number, "preview": "1"})
    body = response.content.decode()
    assert "Happy birthday Thabo ✓" in body and "1 segment" in body and "“✓”" in body
    assert not MessageTemplate.objects.exists()
    response = admin_client.post(url, {"text": "{^Client Name^} happy", "save": "1"})
    assert "may not start with the field" in response.content.decode()
    response = admin_client.post(url, {"text": "Happy birthday {^Client Name^}", "save": "1"})
    assert response.status_code == 302
    assert MessageTemplate.objects.get(entity=entity, message_type="birthday").text == "Happy birthday {^Client Name^}"
    assert "Happy birthday {^Client Name^}" in admin_client.get(url).content.decode()


def test_single_sms_from_the_client_screen(admin_client, funded, sms_client):
    url = reverse("web:messaging_client_sms", kwargs={"client_id": sms_client.pk})
    form = admin_client.get(url).context["form"]
    key = form.initial["idempotency_key"]
    assert admin_client.post(url, {"text": "Please call the branch", "idempotency_key": key}).status_code == 302
    assert admin_client.post(url, {"text": "Please call the branch", "idempotency_key": key}).status_code == 302
    assert OutboxMessage.objects.filter(client=sms_client).count() == 1
    assert "Please call the branch" in admin_client.get(url).content.decode()


def test_single_sms_needs_its_right(client, funded, sms_client):
    viewer = factories.make_user(entity=funded, rights=[Right.VIEW_CLIENTS])
    login(client, viewer)
    url = reverse("web:messaging_client_sms", kwargs={"client_id": sms_client.pk})
    assert client.get(url).status_code == 200
    assert client.post(url, {"text": "x", "idempotency_key": "k"}).status_code == 403


@pytest.mark.parametrize("name", ["web:messaging_outbox", "web:messaging_process_log", "web:messaging_replies",
                                  "web:messaging_templates", "web:messaging_credits"])
def test_screens_open_for_rights_holders_and_refuse_others(client, admin_client, entity, name):
    assert admin_client.get(reverse(name)).status_code == 200
    login(client, factories.make_user(entity=entity))
    assert client.get(reverse(name)).status_code == 403
