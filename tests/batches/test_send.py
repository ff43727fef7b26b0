"""Sending a batch: queued through messages_enqueue_bulk with the sender as the user, once per key
(a resubmit sends nothing more), one process-log entry per run with the drops, the background
path with its progress, and the screens and API around it (rights, isolation)."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from imali.batches import services
from imali.batches.models import MessageBatch
from imali.batches.services import batch_send
from imali.messaging.credits import credit_balance
from imali.messaging.models import OutboxMessage, ProcessLog
from imali.messaging.selectors import client_sms_history, sms_history_rows
from imali.messaging.services import template_update
from imali.tenancy.rights import Right
from tests import factories

from .conftest import TODAY

pytestmark = pytest.mark.django_db

ARREARS = {"due_from": "2026-01-01", "due_to": "2026-03-09"}


def arrears_book(book, n=3):
    return [book.loan() for _ in range(n)]


def test_send_queues_one_sms_per_recipient_with_the_sender_as_user(entity, book, sender, funded):
    loans = arrears_book(book)
    no_phone = book.loan(book.borrower(cellphone=""))
    before = credit_balance(entity=entity, channel="sms")
    sent = batch_send(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, idempotency_key="k1", today=TODAY)
    batch = sent.batch
    assert not sent.repeated
    assert (batch.state, batch.selected, batch.queued, batch.dropped) == ("done", 4, 3, 1)
    assert batch.dropped_reasons == {"no_cellphone": 1}
    rows = OutboxMessage.objects.filter(entity=entity, message_type="arrears")
    assert sorted(rows.values_list("client_id", flat=True)) == sorted(loan.client_id for loan in loans)
    assert set(rows.values_list("created_by_id", flat=True)) == {sender.pk}
    assert credit_balance(entity=entity, channel="sms") == before - batch.credits == before - 3
    # Each recipient's SMS is in the client's history, sent by the sender.
    history = sms_history_rows(entity=entity, messages=client_sms_history(entity=entity, client_id=loans[0].client_id))
    assert [(h.type, h.user) for h in history] == [("Payment arrears", sender.get_full_name())]
    assert no_phone.client_id not in set(rows.values_list("client_id", flat=True))
    # One process-log entry for the run, with its criteria, counts, drops and credits.
    log = ProcessLog.objects.get(entity=entity, kind="message_batch")
    assert batch.process_id == log.pk
    assert (log.queued, log.skipped, log.skipped_reasons, log.credits) == (3, 1, {"no_cellphone": 1}, 3)
    assert log.criteria["batch"] == batch.pk and log.criteria["due_from"] == "2026-01-01"
    assert log.actor_id == sender.pk


def test_the_same_key_again_sends_nothing_more(entity, book, sender, funded):
    arrears_book(book)
    first = batch_send(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, idempotency_key="same", today=TODAY)
    balance = credit_balance(entity=entity, channel="sms")
    again = batch_send(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, idempotency_key="same", today=TODAY)
    assert again.repeated and again.batch.pk == first.batch.pk
    assert OutboxMessage.objects.filter(entity=entity).count() == 3
    assert credit_balance(entity=entity, channel="sms") == balance
    assert MessageBatch.objects.filter(entity=entity).count() == 1
    # A run delivered twice (a retried task) queues nothing new either.
    services.batch_run(batch_id=first.batch.pk)
    assert OutboxMessage.objects.filter(entity=entity).count() == 3


def test_a_new_key_is_a_new_batch(entity, book, sender, funded):
    arrears_book(book, 2)
    batch_send(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, idempotency_key="a", today=TODAY)
    batch_send(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, idempotency_key="b", today=TODAY)
    assert OutboxMessage.objects.filter(entity=entity).count() == 4


def test_too_few_credits_fails_the_batch_with_a_logged_reason(entity, book, sender, operator):
    from imali.messaging.credits import credits_assign

    credits_assign(actor=operator, entity=entity, channel="sms", amount=2)
    arrears_book(book)
    batch = batch_send(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, idempotency_key="poor",
                       today=TODAY).batch
    assert batch.state == "failed" and "credits" in batch.error.lower()
    assert OutboxMessage.objects.filter(entity=entity).count() == 0
    log = ProcessLog.objects.get(entity=entity, kind="message_batch")
    assert log.errors and log.queued == 0 and batch.process_id == log.pk


def test_background_batch_runs_on_the_consumer_with_progress(entity, book, sender, funded, settings, client,
                                                             django_capture_on_commit_callbacks, monkeypatch):
    arrears_book(book, 4)
    monkeypatch.setattr(services, "PROGRESS_EVERY", 1)
    monkeypatch.setattr(services, "BACKGROUND_FROM", 3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        batch = batch_send(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, idempotency_key="bg",
                           today=TODAY).batch
    assert batch.background and batch.state == "queued" and len(callbacks) == 1
    client.force_login(sender)
    waiting = client.get(reverse("web:batch_progress", kwargs={"messagebatch_id": batch.pk}))
    assert waiting.status_code == 200 and b"Waiting to start" in waiting.content and b"hx-get" in waiting.content
    settings.HUEY.immediate = True
    try:
        callbacks[0]()
    finally:
        settings.HUEY.immediate = False
    batch.refresh_from_db()
    assert (batch.state, batch.selected, batch.prepared, batch.queued) == ("done", 4, 4, 4)
    done = client.get(reverse("web:batch_progress", kwargs={"messagebatch_id": batch.pk}))
    assert b'id="batch-done"' in done.content and b"hx-get" not in done.content


def test_progress_while_running_counts_prepared_and_written(entity, book, sender, funded, client):
    arrears_book(book, 2)
    batch = MessageBatch.objects.create(entity=entity, batch_type="arrears", criteria={**ARREARS, "today": TODAY.isoformat()},
                                        idempotency_key="mid", created_by=sender, background=True, state="running",
                                        selected=2, prepared=1)
    client.force_login(sender)
    page = client.get(reverse("web:batch_progress", kwargs={"messagebatch_id": batch.pk})).content.decode()
    assert 'max="4" value="1"' in page and "Preparing the messages: 1 of 2" in page


def test_disabled_type_is_refused_and_dropped(entity, book, sender, funded, lender):
    from imali.messaging.policy import message_type_set_enabled

    arrears_book(book, 2)
    message_type_set_enabled(actor=lender, entity=entity, message_type="arrears", enabled=False)
    preview = services.batch_preview(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, today=TODAY)
    assert not preview.type_enabled and not preview.can_send
    assert preview.dropped == {"type_disabled": 2} and preview.recipients == 0
    with pytest.raises(ValidationError) as refused:
        batch_send(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, idempotency_key="off", today=TODAY)
    assert "batch_type" in refused.value.message_dict
    assert not OutboxMessage.objects.filter(entity=entity).exists()


# --- screens ------------------------------------------------------------------------------------
def test_screen_flow_criteria_preview_back_and_send(entity, book, sender, funded, client):
    loans = arrears_book(book, 2)
    client.force_login(sender)
    url = reverse("web:batch_new") + "?type=arrears"
    form = client.get(url)
    assert form.status_code == 200 and b"Continue" in form.content
    key = uuid.uuid4().hex
    data = {**ARREARS, "min_arrears": "", "idempotency_key": key}
    preview = client.post(url, {**data, "continue": "1"})
    body = preview.content.decode()
    assert 'id="preview-recipients">2<' in body and "Your loan is in arrears" in body and "Send 2 SMSes" in body
    back = client.post(url, {**data, "back": "1"})
    assert b'id="criteria-form"' in back.content and b"2026-01-01" in back.content
    sent = client.post(url, {**data, "send": "1"})
    batch = MessageBatch.objects.get(entity=entity)
    assert sent.status_code == 302 and sent["Location"] == reverse("web:batch_detail", kwargs={"messagebatch_id": batch.pk})
    # The double click: the same form again sends nothing more.
    client.post(url, {**data, "send": "1"})
    assert OutboxMessage.objects.filter(entity=entity).count() == 2
    detail = client.get(sent["Location"])
    assert b'id="batch-queued">2<' in detail.content
    assert {m.client_id for m in OutboxMessage.objects.all()} == {loan.client_id for loan in loans}


def test_screen_shows_field_errors(entity, sender, client):
    client.force_login(sender)
    answer = client.post(reverse("web:batch_new") + "?type=arrears",
                         {"due_from": "2026-03-01", "due_to": "2026-01-01", "idempotency_key": "x", "continue": "1"})
    assert answer.status_code == 400 and b"The end date is before the start date." in answer.content


def test_screens_need_the_processing_right_and_nav_offers_them(entity, client, sender):
    clerk = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    client.force_login(clerk)
    assert client.get(reverse("web:batches")).status_code == 403
    assert client.get(reverse("web:batch_new") + "?type=crm").status_code == 403
    client.force_login(sender)
    page = client.get(reverse("web:batches"))
    assert page.status_code == 200 and b"Message batches" in page.content
    assert client.get(reverse("web:batch_new") + "?type=nonsense").status_code == 404


def test_another_entitys_batch_is_not_found(entity, other_entity, sender, client):
    theirs = factories.make_admin(entity=other_entity)
    batch = MessageBatch.objects.create(entity=other_entity, batch_type="crm", idempotency_key="t", created_by=theirs)
    client.force_login(sender)
    assert client.get(reverse("web:batch_detail", kwargs={"messagebatch_id": batch.pk})).status_code == 404
    assert client.get(reverse("web:batch_progress", kwargs={"messagebatch_id": batch.pk})).status_code == 404
    assert b"batch-list" in client.get(reverse("web:batches")).content
    assert f'messaging/batches/{batch.pk}/'.encode() not in client.get(reverse("web:batches")).content


def test_batch_list_is_a_fixed_number_of_queries(entity, sender, client, django_assert_max_num_queries):
    for n in range(30):
        MessageBatch.objects.create(entity=entity, batch_type="crm", idempotency_key=f"q{n}", created_by=sender)
    client.force_login(sender)
    with django_assert_max_num_queries(12):
        assert client.get(reverse("web:batches")).status_code == 200


# --- API ----------------------------------------------------------------------------------------
def test_api_preview_send_and_status(entity, book, sender, funded):
    from rest_framework.test import APIClient

    arrears_book(book, 2)
    api = APIClient()
    api.force_login(sender)
    # The API sends with the entity's own today; the book's dues are long past by then.
    preview = api.post("/api/messaging/batches/preview/", {"batch_type": "arrears", **ARREARS}, format="json")
    assert preview.status_code == 200, preview.content
    assert preview.json()["recipients"] == 2 and preview.json()["dropped"] == []
    bad = api.post("/api/messaging/batches/preview/", {"batch_type": "arrears", "due_from": "2026-01-01"}, format="json")
    assert bad.status_code == 400 and "due_to" in bad.json()
    body = {"batch_type": "arrears", **ARREARS, "idempotency_key": "api-1"}
    created = api.post("/api/messaging/batches/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["queued"] == 2 and created.json()["state"] == "done"
    again = api.post("/api/messaging/batches/", body, format="json")
    assert again.status_code == 200 and again.json()["id"] == created.json()["id"]
    assert OutboxMessage.objects.filter(entity=entity).count() == 2
    status = api.get(f"/api/messaging/batches/{created.json()['id']}/")
    assert status.status_code == 200 and status.json()["sent_by"] == sender.username


def test_api_refuses_without_the_right_and_across_entities(entity, other_entity, sender):
    from rest_framework.test import APIClient

    clerk = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    api = APIClient()
    api.force_login(clerk)
    assert api.post("/api/messaging/batches/preview/", {"batch_type": "crm"}, format="json").status_code == 403
    theirs = MessageBatch.objects.create(entity=other_entity, batch_type="crm", idempotency_key="t",
                                         created_by=factories.make_admin(entity=other_entity))
    api.force_login(sender)
    assert api.get(f"/api/messaging/batches/{theirs.pk}/").status_code == 404
    assert api.get("/api/messaging/batches/").json()["results"] == []


def test_crm_batch_names_the_sender_and_the_opt_out_and_honours_stop(entity, book, sender, funded, lender):
    from imali.messaging.models import MarketingOptOut

    entity.marketing_consent_not_required = True
    entity.save()
    template_update(actor=lender, entity=entity, message_type="crm", text="Dear {^Client Name^} come and see our new offers")
    keep = book.borrower()
    stopped = book.borrower()
    MarketingOptOut.objects.create(entity=entity, number=stopped.cellphone)
    preview = services.batch_preview(actor=sender, entity=entity, batch_type="crm", criteria={})
    assert preview.sample == f"Dear {keep.name} come and see our new offers. {entity.name}. Reply STOP to opt out"
    batch = batch_send(actor=sender, entity=entity, batch_type="crm", criteria={}, idempotency_key="crm").batch
    assert batch.dropped_reasons == {"opted_out": 1}
    message = OutboxMessage.objects.get(entity=entity, message_type="crm")
    assert message.client_id == keep.pk and message.text == preview.sample


def test_a_run_that_died_is_shown_failed_not_sending_forever(entity, sender, client):
    import datetime as dt

    from django.utils import timezone

    swept = MessageBatch.objects.create(entity=entity, batch_type="crm", idempotency_key="swept", created_by=sender,
                                        state="running", background=True, selected=10, started_at=timezone.now())
    ProcessLog.objects.create(entity=entity, actor=sender, kind="message_batch", message_type="crm", queued=4, credits=4,
                              criteria={"batch": swept.pk}, finished_at=timezone.now(),
                              errors=["The run stopped before it finished; its unused credits were refunded by the sweeper."])
    silent = MessageBatch.objects.create(entity=entity, batch_type="crm", idempotency_key="silent", created_by=sender,
                                         state="running", background=True, started_at=timezone.now() - dt.timedelta(hours=2))
    alive = MessageBatch.objects.create(entity=entity, batch_type="crm", idempotency_key="alive", created_by=sender,
                                        state="running", background=True, started_at=timezone.now())
    client.force_login(sender)
    for batch in (swept, silent, alive):
        client.get(reverse("web:batch_progress", kwargs={"messagebatch_id": batch.pk}))
        batch.refresh_from_db()
    assert (swept.state, swept.queued, swept.credits) == ("failed", 4, 4) and "stopped" in swept.error
    assert silent.state == "failed" and ProcessLog.objects.filter(criteria__batch=silent.pk).exists()
    assert alive.state == "running"


def _died_after_one_chunk(entity, sender, book):
    """A background batch of three whose run died after queuing its first client's SMS (what the
    worker wrote before it was killed), then swept: shown failed with what it queued."""
    import datetime as dt

    from django.utils import timezone

    from imali.messaging.services import BulkRecipient, messages_enqueue_bulk

    loans = arrears_book(book)
    batch = batch_send(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, idempotency_key="ui:dies",
                       today=TODAY, background=True).batch
    assert batch.state == "queued"  # its task waits for the commit
    started = timezone.now() - dt.timedelta(minutes=5)
    MessageBatch.objects.filter(pk=batch.pk).update(state="running", started_at=started, selected=3)
    first = loans[0].client
    log = messages_enqueue_bulk(entity=entity, actor=sender, message_type="arrears",
                                text=services.batch_text(entity=entity, batch_type="arrears"),
                                recipients=[BulkRecipient(f"batch:ui:dies:c{first.pk}", first.cellphone, {},
                                                          client_id=first.pk)],
                                kind="message_batch", criteria={"batch": batch.pk})
    ProcessLog.objects.filter(pk=log.pk).update(errors=["The run stopped before it finished; its unused credits "
                                                        "were refunded by the sweeper."])
    batch = services.batch_refresh_if_died(batch=MessageBatch.objects.get(pk=batch.pk))
    assert (batch.state, batch.queued, batch.credits) == ("failed", 1, 1)
    return batch, loans


def _on_the_consumer(settings, callbacks) -> None:
    settings.HUEY.immediate = True
    try:
        for callback in callbacks:
            callback()
    finally:
        settings.HUEY.immediate = False


def test_resume_after_a_partial_run_sends_each_client_once_and_charges_once(entity, book, sender, funded, client, settings,
                                                                           django_capture_on_commit_callbacks):
    """Regression: a failed batch told the user to send it again, which (a new key) sent the
    clients it had reached a second time. Resume reruns the same batch with the same keys."""
    from imali.core.models import AuditEntry

    start = credit_balance(entity=entity, channel="sms")
    batch, loans = _died_after_one_chunk(entity, sender, book)
    assert "Resume" in batch.error and "send the batch again" not in batch.error.lower()
    client.force_login(sender)
    page = client.get(reverse("web:batch_detail", kwargs={"messagebatch_id": batch.pk}))
    assert b'id="batch-resume"' in page.content
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        answer = client.post(reverse("web:batch_resume", kwargs={"messagebatch_id": batch.pk}))
    assert answer.status_code == 302 and len(callbacks) == 1  # a background batch resumes on the consumer
    _on_the_consumer(settings, callbacks)
    batch.refresh_from_db()
    assert (batch.state, batch.queued, batch.credits, batch.dropped_reasons) == ("done", 3, 3, {})
    rows = OutboxMessage.objects.filter(entity=entity, message_type="arrears")
    assert sorted(rows.values_list("client_id", flat=True)) == sorted(loan.client_id for loan in loans)
    assert credit_balance(entity=entity, channel="sms") == start - 3
    assert AuditEntry.objects.filter(entity=entity, object_id=str(batch.pk), after__stage="batch resumed").count() == 1
    # A finished batch is not resumed again, on the screen or the API; nothing more is sent.
    client.post(reverse("web:batch_resume", kwargs={"messagebatch_id": batch.pk}))
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_login(sender)
    refused = api.post(f"/api/messaging/batches/{batch.pk}/resume/", format="json")
    assert refused.status_code == 400 and "batch" in refused.json()
    assert rows.count() == 3 and credit_balance(entity=entity, channel="sms") == start - 3


def test_api_resume_and_its_guards(entity, other_entity, book, sender, funded, settings,
                                   django_capture_on_commit_callbacks):
    from rest_framework.test import APIClient

    batch, loans = _died_after_one_chunk(entity, sender, book)
    outsider = factories.make_user(entity=other_entity, rights=[Right.MAXSMS_PROCESSING])
    api = APIClient()
    api.force_login(outsider)
    assert api.post(f"/api/messaging/batches/{batch.pk}/resume/", format="json").status_code == 404
    api.force_login(factories.make_user(entity=entity, rights=[]))
    assert api.post(f"/api/messaging/batches/{batch.pk}/resume/", format="json").status_code == 403
    api.force_login(sender)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resumed = api.post(f"/api/messaging/batches/{batch.pk}/resume/", format="json")
    assert resumed.status_code == 202 and resumed.json()["state"] == "queued", resumed.content
    _on_the_consumer(settings, callbacks)
    done = api.get(f"/api/messaging/batches/{batch.pk}/").json()
    assert (done["state"], done["queued"], done["credits"]) == ("done", 3, 3)
    assert OutboxMessage.objects.filter(entity=entity).values("client_id").distinct().count() == 3
    assert OutboxMessage.objects.filter(entity=entity).count() == 3


def test_an_overlong_idempotency_key_is_refused_naming_the_field(entity, book, sender, funded, client):
    """Regression: the hidden key had no length limit; 150 characters overflowed the batch's key
    column (a 500 on PostgreSQL). The screen and the API refuse it, naming the field."""
    from rest_framework.test import APIClient

    arrears_book(book, 1)
    client.force_login(sender)
    answer = client.post(reverse("web:batch_new") + "?type=arrears",
                         {**ARREARS, "idempotency_key": "k" * 150, "send": "1"})
    assert answer.status_code == 400
    assert "idempotency_key" in answer.context["form"].errors
    assert b"idempotency_key) must be at most 64 characters" in answer.content
    api = APIClient()
    api.force_login(sender)
    refused = api.post("/api/messaging/batches/", {"batch_type": "arrears", **ARREARS, "idempotency_key": "k" * 150},
                       format="json")
    assert refused.status_code == 400 and "idempotency_key" in refused.json()
    assert not MessageBatch.objects.filter(entity=entity).exists()
    # 64 characters is the bound, on both.
    fits = api.post("/api/messaging/batches/", {"batch_type": "arrears", **ARREARS, "idempotency_key": "k" * 64},
                    format="json")
    assert fits.status_code == 201, fits.content
    answer = client.post(reverse("web:batch_new") + "?type=arrears", {**ARREARS, "idempotency_key": "u" * 64, "send": "1"})
    assert answer.status_code == 302
    assert MessageBatch.objects.filter(entity=entity).count() == 2


def test_the_batch_page_shows_its_smss_by_status_and_updates_until_each_has_its_final_status(
        entity, other_entity, book, sender, funded, client, django_assert_max_num_queries):
    """Staff see how the batch's SMSs stand with the gateways (waiting, sent, delivered, failed),
    counted over the batch's own messages only, refreshed by itself until every one is final."""
    arrears_book(book, 4)
    batch = batch_send(actor=sender, entity=entity, batch_type="arrears", criteria=ARREARS, idempotency_key="d1",
                       today=TODAY).batch
    # Another message of the same type, not of this batch, is not counted.
    from imali.messaging.services import message_enqueue

    message_enqueue(entity=entity, number="+27820000001", text="Your loan is in arrears", message_type="arrears",
                    idempotency_key="single")
    mine = OutboxMessage.objects.filter(process_id=batch.process_id).order_by("id")
    assert mine.count() == 4
    OutboxMessage.objects.filter(pk__in=[m.pk for m in mine[:2]]).update(status="delivered")
    OutboxMessage.objects.filter(pk=mine[2].pk).update(status="submitted")
    OutboxMessage.objects.filter(pk=mine[3].pk).update(status="failed")
    client.force_login(sender)
    page = client.get(reverse("web:batch_detail", kwargs={"messagebatch_id": batch.pk})).content.decode()
    assert 'id="batch-delivery"' in page and "1 of 4 still on their way" in page
    rows = [(status, n) for status, _, n in services.selectors.batch_delivery(batch=batch)]
    assert rows == [("submitted", 1), ("delivered", 2), ("failed", 1)]
    assert '<tr data-status="delivered"><td>Delivered</td><td class="num">2</td>' in page
    fragment_url = reverse("web:batch_delivery", kwargs={"messagebatch_id": batch.pk})
    assert f'hx-get="{fragment_url}"' in page
    # The sender has no SMS Detail right: no link to a page that would refuse them.
    assert 'id="batch-delivery-detail"' not in page
    # The last report comes in: the fragment stops polling.
    OutboxMessage.objects.filter(pk=mine[2].pk).update(status="delivered")
    with django_assert_max_num_queries(8):
        fragment = client.get(fragment_url).content.decode()
    assert "Every SMS of the batch has its final status" in fragment and "hx-get" not in fragment
    assert '<td>Delivered</td><td class="num">3</td>' in fragment
    # Another entity's batch's fragment is not found.
    theirs = MessageBatch.objects.create(entity=other_entity, batch_type="crm", idempotency_key="t2",
                                         created_by=factories.make_admin(entity=other_entity))
    assert client.get(reverse("web:batch_delivery", kwargs={"messagebatch_id": theirs.pk})).status_code == 404
    # Without the processing right the fragment is refused.
    client.force_login(factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS]))
    assert client.get(fragment_url).status_code == 403


def test_the_batch_page_links_each_sms_in_sms_detail_for_who_may_read_it(entity, book, funded, client):
    arrears_book(book, 1)
    reader = factories.make_user(entity=entity, rights=[Right.MAXSMS_PROCESSING, Right.REPORT_SMS_DETAIL])
    batch = batch_send(actor=reader, entity=entity, batch_type="arrears", criteria=ARREARS, idempotency_key="d2",
                       today=TODAY).batch
    client.force_login(reader)
    page = client.get(reverse("web:batch_detail", kwargs={"messagebatch_id": batch.pk})).content.decode()
    link = reverse("web:messaging_outbox") + "?message_type=arrears&amp;start="
    assert 'id="batch-delivery-detail"' in page and link in page
    report = client.get(reverse("web:messaging_outbox"), {"message_type": "arrears", "start": page.split("start=")[1][:10]})
    assert report.status_code == 200 and f'id="sms-status-{OutboxMessage.objects.get().pk}"'.encode() in report.content
