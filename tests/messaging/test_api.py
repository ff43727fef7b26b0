from django.urls import reverse

from imali.messaging.models import OutboxMessage
from imali.tenancy.rights import Right
from tests import factories


def test_single_sms_over_the_api_is_idempotent(admin_client, funded, sms_client):
    url = reverse("api:messaging-sms")
    body = {"client_id": sms_client.pk, "text": "Your statement is ready", "idempotency_key": "req-1"}
    first = admin_client.post(url, body, content_type="application/json")
    assert first.status_code == 201 and first.json()["segments"] == 1
    assert admin_client.post(url, body, content_type="application/json").json()["id"] == first.json()["id"]
    assert OutboxMessage.objects.count() == 1
    listed = admin_client.get(url).json()
    assert listed["count"] == 1 and listed["results"][0]["text"] == "Your statement is ready"


def test_api_names_the_missing_credits(admin_client, entity, sms_client):
    response = admin_client.post(reverse("api:messaging-sms"), {"client_id": sms_client.pk, "text": "x", "idempotency_key": "k"},
                                 content_type="application/json")
    assert response.status_code == 400 and "credits" in response.json()


def test_api_other_entitys_client_is_not_found(admin_client, funded, other_entity):
    theirs = factories.make_client(entity=other_entity)
    response = admin_client.post(reverse("api:messaging-sms"), {"client_id": theirs.pk, "text": "x", "idempotency_key": "k"},
                                 content_type="application/json")
    assert response.status_code == 404


def test_api_usage_and_templates_need_rights(client, admin_client, funded):
    usage = admin_client.get(reverse("api:messaging-credits")).json()
    assert {"channel": "sms", "balance": 1000, "used_this_month": 0, "monthly_limit": None, "low_warning_amount": 0} in usage
    assert any(t["message_type"] == "arrears" for t in admin_client.get(reverse("api:messaging-templates")).json())
    client.force_login(factories.make_user(entity=funded, rights=[Right.VIEW_CLIENTS]))
    assert client.get(reverse("api:messaging-credits")).status_code == 403
    assert client.post(reverse("api:messaging-sms"), {}, content_type="application/json").status_code == 403
