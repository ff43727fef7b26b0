from django.urls import reverse

from imali.clients.models import Client
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


def test_single_sms_over_the_api_from_a_template(admin_client, funded, sms_client):
    Client.objects.filter(pk=sms_client.pk).update(marketing_consent=True)  # a birthday greeting needs consent
    url = reverse("api:messaging-sms")
    response = admin_client.post(url, {"client_id": sms_client.pk, "template": "birthday", "idempotency_key": "tpl-1"},
                                 content_type="application/json")
    assert response.status_code == 201
    assert response.json()["text"] == f"Happy birthday Thabo from all of us at {funded.name}. Reply STOP to opt out"


def test_single_sms_api_errors_name_the_field(admin_client, funded, sms_client):
    url = reverse("api:messaging-sms")

    def post(**body):
        response = admin_client.post(url, {"client_id": sms_client.pk, "idempotency_key": "e", **body},
                                     content_type="application/json")
        assert response.status_code == 400, response.content
        return response.json()

    assert "text" in post()
    assert "template" in post(template="new_loan", text="Hello")
    assert "client" in post(template="crm")  # direct marketing to a client without consent
    assert "template" in post(template="otp")
    assert "template" in post(template="new_loan")  # a loan figure this client has no value for
    assert "text" in post(text="x" * 919)
    Client.objects.filter(pk=sms_client.pk).update(cellphone="")
    assert "client" in post(text="Hello")
    assert not OutboxMessage.objects.exists()


def test_client_sms_history_over_the_api(admin_client, funded, sms_client, other_entity):
    send = reverse("api:messaging-sms")
    for i in range(3):
        admin_client.post(send, {"client_id": sms_client.pk, "text": f"Note {i}", "idempotency_key": f"n{i}"},
                          content_type="application/json")
    OutboxMessage.objects.filter(text="Note 0").update(status="expired", error="expired after 5 attempts: no gateway up")
    url = reverse("api:messaging-client-sms", kwargs={"client_id": sms_client.pk})
    body = admin_client.get(url + "?limit=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2
    newest = body["results"][0]
    assert set(newest) == {"id", "date", "time", "type", "message", "status", "response", "user"}
    assert (newest["message"], newest["type"], newest["status"]) == ("Note 2", "Single SMS", "Queued")
    oldest = admin_client.get(url + "?offset=2").json()["results"][0]
    assert (oldest["status"], oldest["response"]) == ("Failed", "Expired: expired after 5 attempts: no gateway up")
    theirs = factories.make_client(entity=other_entity)
    assert admin_client.get(reverse("api:messaging-client-sms", kwargs={"client_id": theirs.pk})).status_code == 404


def test_client_sms_history_needs_view_clients(client, funded, sms_client):
    client.force_login(factories.make_user(entity=funded, rights=[]))
    assert client.get(reverse("api:messaging-client-sms", kwargs={"client_id": sms_client.pk})).status_code == 403


def test_single_sms_preview_over_the_api_writes_nothing(admin_client, funded, sms_client):
    url = reverse("api:messaging-sms-preview")
    body = admin_client.post(url, {"client_id": sms_client.pk, "text": "Molo ✓"}, content_type="application/json").json()
    assert body == {"text": "Molo ✓", "number": sms_client.cellphone, "segments": 1, "encoding": "ucs2",
                    "ucs2_characters": ["✓"], "credits": 1, "balance": 1000}
    assert "template" in admin_client.post(url, {"client_id": sms_client.pk, "template": "new_loan"},
                                           content_type="application/json").json()
    assert not OutboxMessage.objects.exists()
