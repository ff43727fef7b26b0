"""A hostile tester's pass over message batches, through the screens and the API: malformed,
huge and out-of-range criteria, other scripts' digits, foreign employers and branches, missing
rights, odd form keys and double submissions. Each is a 4xx or the form's error naming the field,
and writes nothing (no batch, preview run, outbox row or audit entry)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from imali.batches.models import BatchPreviewRun, MessageBatch
from imali.core.models import AuditEntry
from imali.messaging.models import OutboxMessage
from imali.tenancy.models import Branch
from tests import factories

pytestmark = pytest.mark.django_db


def counts():
    return (MessageBatch.objects.count(), BatchPreviewRun.objects.count(), OutboxMessage.objects.count(),
            AuditEntry.objects.count())


ARREARS = {"batch_type": "arrears", "due_from": "2026-01-01", "due_to": "2026-03-01"}
BAD = [
    ({"batch_type": "arrears", "due_from": "0001-01-01", "due_to": "0001-01-05"}, "due_from"),
    ({"batch_type": "arrears", "due_from": "9999-12-25", "due_to": "9999-12-31"}, "due_from"),
    ({"batch_type": "arrears", "due_from": "1899-12-25", "due_to": "1899-12-31"}, "due_from"),
    ({"batch_type": "arrears", "due_from": "2100-12-25", "due_to": "2101-01-02"}, "due_to"),
    ({"batch_type": "payment_received", "paid_from": "0001-01-01", "paid_to": "0001-01-05"}, "paid_from"),
    ({"batch_type": "arrears", "due_from": "2026-03-01", "due_to": "2026-01-01"}, "due_to"),
    ({"batch_type": "arrears", "due_from": "2024-01-01", "due_to": "2026-01-01"}, "due_from"),
    ({**ARREARS, "min_arrears": "1e10"}, "min_arrears"),
    ({**ARREARS, "min_arrears": "-5"}, "min_arrears"),
    ({**ARREARS, "min_arrears": "١٢"}, "min_arrears"),
    ({**ARREARS, "min_arrears": "１２"}, "min_arrears"),
    ({**ARREARS, "min_arrears": "12.505"}, "min_arrears"),
    ({**ARREARS, "min_arrears": "x" * 1_000_000}, "min_arrears"),
    ({"batch_type": "arrears", "due_from": "2026-01-01\x00", "due_to": "2026-03-01"}, "due_from"),
    ({"batch_type": "arrears", "due_from": "", "due_to": "2026-03-01"}, "due_from"),
    ({"batch_type": "new_loan", "employer": "١٢"}, "employer"),
    ({"batch_type": "new_loan", "employer": "１２"}, "employer"),
    ({"batch_type": "new_loan", "employer": "12.0"}, "employer"),
    ({"batch_type": "new_loan", "employer": "1e10"}, "employer"),
    ({"batch_type": "new_loan", "employer": 0}, "employer"),
    ({"batch_type": "new_loan", "employer": -1}, "employer"),
    ({"batch_type": "new_loan", "employer": 2**70}, "employer"),
    ({"batch_type": "crm", "client_status": "zzz"}, "client_status"),
    ({"batch_type": "crm", "has_open_loan": "maybe"}, "has_open_loan"),
    ({"batch_type": "crm_loan_status"}, "loan_status"),
    ({"batch_type": "crm_loan_status", "loan_status": "\x00"}, "loan_status"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
def test_api_refuses_bad_criteria_naming_the_field_and_writes_nothing(entity, sender, funded, body, field):
    api = APIClient()
    api.force_login(sender)
    before = counts()
    preview = api.post("/api/messaging/batches/preview/", body, format="json")
    assert preview.status_code == 400 and field in preview.json(), preview.content[:200]
    sent = api.post("/api/messaging/batches/", {**body, "idempotency_key": "k1"}, format="json")
    assert sent.status_code == 400 and field in sent.json(), sent.content[:200]
    assert counts() == before


@pytest.mark.parametrize(("body", "field"), BAD)
def test_screen_refuses_bad_criteria_naming_the_field_and_writes_nothing(entity, sender, funded, client, body, field):
    client.force_login(sender)
    before = counts()
    data = dict(body)
    batch_type = data.pop("batch_type")
    for extra in ({}, {"send": "1"}):
        response = client.post(f"{reverse('web:batch_new')}?type={batch_type}", {**data, "idempotency_key": "k1", **extra})
        assert response.status_code == 400 and field in response.context["form"].errors
    assert counts() == before


@pytest.mark.parametrize("batch_type", ["nope", "", "\x00", "x" * 10_000])
def test_unknown_batch_type_is_404_on_the_screen_and_400_by_api(entity, sender, client, batch_type):
    before = counts()
    client.force_login(sender)
    assert client.get(reverse("web:batch_new"), {"type": batch_type}).status_code == 404
    api = APIClient()
    api.force_login(sender)
    response = api.post("/api/messaging/batches/preview/", {"batch_type": batch_type}, format="json")
    assert response.status_code == 400 and "batch_type" in response.json()
    assert counts() == before


def test_another_entitys_employer_or_branch_is_refused_naming_the_field(entity, other_entity, sender, funded, client):
    employer = factories.make_employer(entity=other_entity)
    branch = Branch.objects.create(entity=other_entity, code="ZZ", name="Elsewhere")
    api = APIClient()
    api.force_login(sender)
    before = counts()
    response = api.post("/api/messaging/batches/preview/", {"batch_type": "new_loan", "employer": employer.pk}, format="json")
    assert response.status_code == 400 and "employer" in response.json()
    response = api.post("/api/messaging/batches/", {"batch_type": "crm", "branch": branch.pk, "idempotency_key": "z"},
                        format="json")
    assert response.status_code == 400 and "branch" in response.json()
    client.force_login(sender)
    response = client.post(f"{reverse('web:batch_new')}?type=new_loan",
                           {"employer": employer.pk, "idempotency_key": "k", "send": "1"})
    assert response.status_code == 400 and "employer" in response.context["form"].errors
    response = client.post(f"{reverse('web:batch_new')}?type=crm", {"branch": branch.pk, "idempotency_key": "k", "send": "1"})
    assert response.status_code == 400 and "branch" in response.context["form"].errors
    assert counts() == before


@pytest.mark.parametrize("key", ["", "a\x00b"])
def test_an_unusable_form_key_says_what_is_wrong_with_it(entity, sender, funded, client, key):
    """A blank key or one with a NUL byte was told it 'must be at most 64 characters'."""
    before = counts()
    client.force_login(sender)
    response = client.post(f"{reverse('web:batch_new')}?type=payment_final", {"idempotency_key": key, "send": "1"})
    errors = " ".join(response.context["form"].non_field_errors())
    assert response.status_code == 400 and "idempotency_key" in errors and "at most 64" not in errors
    assert counts() == before


def test_api_refuses_an_unusable_key(entity, sender, funded):
    before = counts()
    api = APIClient()
    api.force_login(sender)
    for key in ("", "a\x00b", "k" * 65, None):
        response = api.post("/api/messaging/batches/", {"batch_type": "payment_final", "idempotency_key": key}, format="json")
        assert response.status_code == 400 and "idempotency_key" in response.json()
    assert counts() == before


def test_a_double_post_records_one_batch(entity, sender, funded, client):
    client.force_login(sender)
    for _ in range(2):
        assert client.post(f"{reverse('web:batch_new')}?type=payment_final",
                           {"idempotency_key": "same", "send": "1"}).status_code == 302
    api = APIClient()
    api.force_login(sender)
    first = api.post("/api/messaging/batches/", {"batch_type": "payment_final", "idempotency_key": "same"}, format="json")
    again = api.post("/api/messaging/batches/", {"batch_type": "payment_final", "idempotency_key": "same"}, format="json")
    assert (first.status_code, again.status_code) == (201, 200) and first.json()["id"] == again.json()["id"]
    assert MessageBatch.objects.count() == 2  # one from the screen ("ui:same"), one from the API ("api:same")


def test_without_the_right_nothing_is_written(entity, client):
    clerk = factories.make_user(entity=entity)
    before = counts()
    client.force_login(clerk)
    api = APIClient()
    api.force_login(clerk)
    assert client.get(reverse("web:batches")).status_code == 403
    assert client.get(f"{reverse('web:batch_new')}?type=crm").status_code == 403
    assert client.post(f"{reverse('web:batch_new')}?type=payment_final",
                       {"idempotency_key": "x", "send": "1"}).status_code == 403
    assert api.post("/api/messaging/batches/", {"batch_type": "payment_final", "idempotency_key": "x"},
                    format="json").status_code == 403
    assert api.post("/api/messaging/batches/preview/", {"batch_type": "payment_final"}, format="json").status_code == 403
    assert api.get("/api/messaging/batches/").status_code == 403
    assert counts() == before


def test_resume_of_another_entitys_or_a_done_batch_writes_nothing(entity, other_entity, sender, funded, client):
    theirs = MessageBatch.objects.create(entity=other_entity, batch_type="crm", idempotency_key="t", state="failed",
                                         created_by=factories.make_admin(entity=other_entity))
    mine = MessageBatch.objects.create(entity=entity, batch_type="payment_final", idempotency_key="m", state="done",
                                       created_by=sender)
    api = APIClient()
    api.force_login(sender)
    before = counts()
    assert api.post(f"/api/messaging/batches/{theirs.pk}/resume/").status_code == 404
    assert client.post(reverse("web:batch_resume", args=[theirs.pk])).status_code in (302, 403, 404)
    client.force_login(sender)
    assert client.post(reverse("web:batch_resume", args=[theirs.pk])).status_code == 404
    response = api.post(f"/api/messaging/batches/{mine.pk}/resume/")
    assert response.status_code == 400 and "batch" in response.json()
    theirs.refresh_from_db()
    mine.refresh_from_db()
    assert (theirs.state, mine.state) == ("failed", "done") and counts() == before


def test_a_batch_is_sent_and_previewed_from_json_only_so_a_blank_criterion_is_never_dropped(entity):
    """Schemathesis (deep run): a form's `client_status=&due_from=` was read as no criteria at all and
    the crm batch went to every client (201). JSON's "" is a refusal naming the field."""
    from imali.tenancy.rights import Right

    sender = factories.make_user(entity=entity, rights=list(Right))
    factories.make_client(entity=entity)
    api = APIClient()
    api.force_login(sender)
    form = {"batch_type": "crm", "client_status": "", "idempotency_key": "blank"}
    assert api.post("/api/messaging/batches/", form).status_code == 415
    assert api.post("/api/messaging/batches/preview/", {"batch_type": "crm", "client_status": ""}).status_code == 415
    refused = api.post("/api/messaging/batches/", form, format="json")
    assert refused.status_code == 400 and "client_status" in refused.json()
    assert not MessageBatch.objects.filter(entity=entity).exists()
