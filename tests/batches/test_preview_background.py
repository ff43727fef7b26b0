"""A large batch's preview is made on the consumer (it renders and counts every recipient's SMS),
its page shows the progress, then the same preview as a small one with Send and Back; small
previews stay immediate. Screen and API."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from imali.batches import services
from imali.batches.models import BatchPreviewRun, MessageBatch
from imali.messaging.models import OutboxMessage
from imali.tenancy.rights import Right
from tests import factories

from .conftest import TODAY

pytestmark = pytest.mark.django_db

ARREARS = {"due_from": "2026-01-01", "due_to": "2026-03-09"}


@pytest.fixture
def large(monkeypatch):
    """Three clients count as a large batch here (2,000 in production)."""
    monkeypatch.setattr(services, "BACKGROUND_FROM", 3)
    monkeypatch.setattr(services, "PROGRESS_EVERY", 1)


def _run_consumer(callbacks, settings):
    settings.HUEY.immediate = True
    try:
        for callback in callbacks:
            callback()
    finally:
        settings.HUEY.immediate = False


def test_small_preview_is_made_in_the_request(entity, book, sender, funded, large):
    for _ in range(2):
        book.loan()
    preview = services.batch_preview_request(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS,
                                             today=TODAY)
    assert isinstance(preview, services.BatchPreview) and preview.recipients == 2
    assert not BatchPreviewRun.objects.exists()


def test_large_preview_runs_on_the_consumer_and_equals_the_direct_preview(entity, book, sender, funded, large, settings,
                                                                          django_capture_on_commit_callbacks):
    for _ in range(4):
        book.loan()
    no_phone = book.loan(book.borrower(cellphone=""))
    assert no_phone
    direct = services.batch_preview(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, today=TODAY)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        run = services.batch_preview_request(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS,
                                             form_key="k1", today=TODAY)
    assert isinstance(run, BatchPreviewRun) and run.state == "queued" and run.selected == 5 and len(callbacks) == 1
    _run_consumer(callbacks, settings)
    run.refresh_from_db()
    assert (run.state, run.prepared) == ("done", 5)
    made = services.preview_of_run(run=run)
    assert made == direct  # every figure: recipients, drops, text, sample, segments, credits
    assert made.recipients == 4 and made.dropped == {"no_cellphone": 1}
    # A task delivered twice makes it once; nothing is ever sent by a preview.
    assert services.batch_preview_run(run_id=run.pk).state == "done"
    assert not OutboxMessage.objects.exists() and not MessageBatch.objects.exists()
    # A day later the next large preview sweeps it (it holds a client's message).
    BatchPreviewRun.objects.filter(pk=run.pk).update(created_at=run.created_at - services.PREVIEW_KEPT)
    with django_capture_on_commit_callbacks(execute=False):
        newer = services.batch_preview_request(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS,
                                               today=TODAY)
    assert list(BatchPreviewRun.objects.values_list("pk", flat=True)) == [newer.pk]


def test_screen_shows_progress_then_the_preview_and_sends_once(entity, book, sender, funded, large, settings, client,
                                                              django_capture_on_commit_callbacks):
    loans = [book.loan() for _ in range(3)]
    client.force_login(sender)
    url = reverse("web:batch_new") + "?type=arrears"
    key = uuid.uuid4().hex
    data = {**ARREARS, "min_arrears": "", "idempotency_key": key}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        answer = client.post(url, {**data, "continue": "1"})
    run = BatchPreviewRun.objects.get(entity=entity)
    page_url = reverse("web:batch_preview_run", kwargs={"batchpreviewrun_id": run.pk})
    assert answer.status_code == 302 and answer["Location"] == page_url
    waiting = client.get(page_url).content.decode()
    assert "Waiting to start the preview of 3 clients" in waiting and "hx-get" in waiting and "send-batch" not in waiting
    run.state, run.prepared = "running", 1
    run.save()
    fragment = client.get(reverse("web:batch_preview_progress", kwargs={"batchpreviewrun_id": run.pk}))
    assert 'max="3" value="1"' in fragment.content.decode() and "Preparing the preview: 1 of 3" in fragment.content.decode()
    run.state = "queued"
    run.save()
    _run_consumer(callbacks, settings)
    done = client.get(reverse("web:batch_preview_progress", kwargs={"batchpreviewrun_id": run.pk}))
    assert done["HX-Refresh"] == "true" and "hx-get" not in done.content.decode()
    shown = client.get(page_url).content.decode()
    assert 'id="preview-recipients">3<' in shown and "Send 3 SMSes" in shown and key in shown
    assert f'action="{url}"' in shown.replace("&amp;", "&")
    # Send from the background preview: the form's key came along, so a double click sends once.
    with django_capture_on_commit_callbacks(execute=False) as sending:
        sent = client.post(url, {**data, "send": "1"})
        client.post(url, {**data, "send": "1"})
    _run_consumer(sending, settings)  # three clients are a large batch here too: sent on the consumer
    batch = MessageBatch.objects.get(entity=entity)
    assert sent.status_code == 302 and batch.idempotency_key == f"ui:{key}"
    assert {m.client_id for m in OutboxMessage.objects.filter(entity=entity)} == {loan.client_id for loan in loans}


def test_preview_runs_are_the_entitys_and_need_the_right(entity, other_entity, book, sender, funded, large, client):
    for _ in range(3):
        book.loan()
    run = services.batch_preview_request(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS,
                                         today=TODAY)
    stranger = factories.make_user(entity=other_entity, rights=[Right.MAXSMS_PROCESSING])
    client.force_login(stranger)
    assert client.get(reverse("web:batch_preview_run", kwargs={"batchpreviewrun_id": run.pk})).status_code == 404
    api = APIClient()
    api.force_authenticate(stranger)
    assert api.get(f"/api/messaging/batches/previews/{run.pk}/").status_code == 404
    no_right = factories.make_user(entity=entity, rights=[])
    client.force_login(no_right)
    assert client.get(reverse("web:batch_preview_run", kwargs={"batchpreviewrun_id": run.pk})).status_code == 403


def test_api_large_preview_answers_202_then_the_preview(entity, book, sender, funded, large, settings,
                                                       django_capture_on_commit_callbacks):
    for _ in range(3):
        book.loan()
    api = APIClient()
    api.force_authenticate(sender)
    body = {"batch_type": "arrears", **ARREARS}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        started = api.post("/api/messaging/batches/preview/", body, format="json")
    assert started.status_code == 202, started.content
    run_id = started.json()["id"]
    assert started.json()["state"] == "queued" and started.json()["preview"] is None
    _run_consumer(callbacks, settings)
    status = api.get(f"/api/messaging/batches/previews/{run_id}/")
    assert status.status_code == 200 and status.json()["state"] == "done"
    assert status.json()["preview"]["recipients"] == 3 and status.json()["preview"]["can_send"] is True
