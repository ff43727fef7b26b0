"""SMS replies (issue 11 §5): pulled from the local Africa's Talking over its real fetch API,
matched to client and to the SMS they answer, notified, listed in the Reply Detail report."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from imali.core.models import AuditEntry
from imali.messaging.credits import credits_assign
from imali.messaging.models import (
    Gateway,
    InboundCursor,
    InboundMessage,
    OutboxMessage,
    ProcessLog,
    ReplyNotice,
)
from imali.messaging.replies import replies_collect, replies_collect_all, reply_notify_set
from imali.messaging.services import message_enqueue
from imali.tenancy.rights import Right
from tests import factories
from tests.channels.conftest import API_KEY


@pytest.fixture
def funded(entity, operator):
    credits_assign(actor=operator, entity=entity, channel="sms", amount=100)
    return entity


@pytest.fixture
def at_gateway(at_peer):
    at_peer.configure(inbound_callback="")  # nothing pushed: the replies run must fetch them
    return Gateway.objects.create(name="at", kind="africastalking", base_url=at_peer.base_url, api_key=API_KEY,
                                  account="lender", rate_per_second=1000)


def sent(entity, client, text, at, key):
    m = message_enqueue(entity=entity, number=client.cellphone, text=text, message_type="arrears", idempotency_key=key,
                        client=client, now=at)
    return m


def test_get_sms_responses_fetches_matches_and_never_collects_twice(funded, admin_user, at_peer, at_gateway):
    borrower = factories.make_client(entity=funded, name="Naledi")
    now = timezone.now()
    sent(funded, borrower, "You are in arrears", now - dt.timedelta(days=2), "a1")
    answered = sent(funded, borrower, "Please pay by Friday", now - dt.timedelta(hours=1), "a2")
    at_peer.inject_inbound(number=borrower.cellphone, text="I will pay on Friday")
    at_peer.inject_inbound(number="+27831112222", text="Who is this?")
    result = replies_collect(entity=funded, actor=admin_user)
    assert result.pull.gateways == ["at"] and result.pull.fetched == 2 and result.pull.stored == 2
    reply = InboundMessage.objects.get(text="I will pay on Friday")
    assert reply.entity == funded and reply.client == borrower and reply.in_reply_to == answered
    assert reply.collected_at is not None
    # The unknown number belongs to no entity: not this entity's reply.
    assert InboundMessage.objects.get(text="Who is this?").entity is None
    assert (result.collected, result.matched_clients, result.matched_messages) == (1, 1, 1)
    log = ProcessLog.objects.get(kind="get_sms_responses", entity=funded)
    assert log.actor == admin_user and log.criteria["collected"] == 1 and log.criteria["fetched"] == 2
    assert AuditEntry.objects.filter(action="messaging.replies_collected", entity=funded).count() == 1
    assert InboundCursor.objects.get(gateway="at").last_received_id == 2
    # A message sent after the reply is not what the reply answers, and a rerun collects nothing.
    sent(funded, borrower, "Thank you", now + dt.timedelta(hours=1), "a3")
    again = replies_collect(entity=funded, actor=admin_user)
    assert again.collected == 0 and again.pull.fetched == 0
    reply.refresh_from_db()
    assert reply.in_reply_to == answered


def test_unreachable_aggregator_is_a_named_error_not_a_stop(funded, admin_user):
    Gateway.objects.create(name="down", kind="africastalking", base_url="http://127.0.0.1:9", api_key="k", account="x")
    borrower = factories.make_client(entity=funded, name="Thabo")
    InboundMessage.objects.create(gateway="smsc", provider_id="p1", entity=funded, number=borrower.cellphone, text="ok")
    result = replies_collect(entity=funded, actor=admin_user)
    assert result.collected == 1 and result.errors and "down" in result.errors[0]
    assert ProcessLog.objects.get(kind="get_sms_responses").errors == result.errors


def test_notified_users_get_an_in_app_notice_and_an_email(funded, admin_user, smtp, operator,
                                                            django_capture_on_commit_callbacks):
    credits_assign(actor=operator, entity=funded, channel="email", amount=5)
    reader = factories.make_user(entity=funded, rights=[Right.REPORT_REPLY_DETAIL])
    reader.email = "reader@example.com"
    reader.save()
    reply_notify_set(actor=admin_user, entity=funded, user=reader, by_email=True, in_app=True)
    borrower = factories.make_client(entity=funded, name="Sipho")
    InboundMessage.objects.create(gateway="smsc", provider_id="p1", entity=funded, number=borrower.cellphone,
                                  text="Call me {^Client Name^} please")
    with django_capture_on_commit_callbacks(execute=True):
        result = replies_collect(entity=funded, actor=None, trigger="daily", pull=False)
    assert (result.notified_in_app, result.notified_by_email, result.errors) == (1, 1, [])
    notice = ReplyNotice.objects.get(user=reader)
    assert notice.replies == 1 and notice.entity == funded
    mail = smtp.received[0].message
    assert smtp.received[0].rcpt_to == ["reader@example.com"] and "1 new SMS reply" in mail["Subject"]
    assert "Call me { ^Client Name^ } please" in mail.get_body(("plain",)).get_content()


def test_daily_run_collects_every_entity_and_logs_only_where_replies_came(funded, other_entity):
    borrower = factories.make_client(entity=funded, name="Lerato")
    InboundMessage.objects.create(gateway="smsc", provider_id="p1", entity=funded, number=borrower.cellphone, text="yes")
    results = replies_collect_all()
    assert sum(r.collected for r in results) == 1
    assert list(ProcessLog.objects.filter(kind="get_sms_responses").values_list("entity", "actor")) == [(funded.pk, None)]


def test_notify_setup_rules(entity, other_entity, admin_user):
    no_right = factories.make_user(entity=entity)
    with pytest.raises(ValidationError) as exc:
        reply_notify_set(actor=admin_user, entity=entity, user=no_right, by_email=False, in_app=True)
    assert "Reports: Reply Detail" in str(exc.value)
    reader = factories.make_user(entity=entity, rights=[Right.REPORT_REPLY_DETAIL])
    reader.email = ""
    reader.save()
    with pytest.raises(ValidationError) as exc:
        reply_notify_set(actor=admin_user, entity=entity, user=reader, by_email=True, in_app=False)
    assert "by_email" in exc.value.error_dict
    stranger = factories.make_user(entity=other_entity, rights=[Right.REPORT_REPLY_DETAIL])
    with pytest.raises(PermissionDenied):
        reply_notify_set(actor=admin_user, entity=entity, user=stranger, by_email=False, in_app=True)
    clerk = factories.make_user(entity=entity, rights=[Right.REPORT_REPLY_DETAIL])
    with pytest.raises(PermissionDenied):
        reply_notify_set(actor=clerk, entity=entity, user=reader, by_email=False, in_app=True)
    reply_notify_set(actor=admin_user, entity=entity, user=reader, by_email=False, in_app=True)
    reply_notify_set(actor=admin_user, entity=entity, user=reader, by_email=False, in_app=False)
    assert [e.after for e in AuditEntry.objects.filter(action="messaging.reply_notify_changed").order_by("id")] == [
        {"by_email": False, "in_app": True}, {"by_email": False, "in_app": False}]


# --- screens ---------------------------------------------------------------------------------------

def _replies(entity, n, *, stop_every=0, word="Reply"):
    borrower = factories.make_client(entity=entity, name="Ayanda")
    first = message_enqueue(entity=entity, number=borrower.cellphone, text="Your loan is approved", message_type="new_loan",
                            idempotency_key=f"r:{entity.pk}", client=borrower, now=timezone.now() - dt.timedelta(days=1))
    for i in range(n):
        InboundMessage.objects.create(gateway="smsc", provider_id=f"{entity.pk}-{i}", entity=entity,
                                      number=borrower.cellphone, text=f"{word} number {i} =1+1",
                                      is_stop=bool(stop_every and i % stop_every == 0))
    return borrower, first


def test_reply_detail_report_lists_filters_and_exports(admin_client, funded, admin_user, other_entity, operator,
                                                      django_assert_max_num_queries):
    credits_assign(actor=operator, entity=other_entity, channel="sms", amount=10)
    borrower, first = _replies(funded, 12, stop_every=4)
    replies_collect(entity=funded, actor=admin_user, pull=False)
    _replies(other_entity, 2, word="Theirs")
    url = reverse("web:messaging_reply_detail")
    with django_assert_max_num_queries(12):
        page = admin_client.get(url).content.decode()
    assert "12 replies" in page and "Reply number 3" in page and "Your loan is approved" in page
    assert "Get SMS Responses" in page and "New loan" in page
    stops = admin_client.get(url, {"stop": "yes"}).content.decode()
    assert "3 replies" in stops
    response = admin_client.get(url, {"stop": "yes", "export": "csv"})
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig"))))
    assert rows[0][:6] == ["Date", "Time", "Number", "Client no.", "Client", "Reply"] and len(rows) == 4
    assert rows[1][5].startswith("'Reply number") or rows[1][5].startswith("Reply number")
    assert rows[1][6] == "Yes" and rows[1][7] == "New loan"
    xlsx = admin_client.post(url, {"export": "xlsx"})
    sheet = load_workbook(io.BytesIO(b"".join(xlsx.streaming_content))).active
    assert sheet.max_row == 13
    assert AuditEntry.objects.filter(action="report.exported", entity=funded).count() == 2
    # Another entity's replies never show.
    assert "Theirs number" not in page and "Theirs number" not in admin_client.get(url, {"collected": "no"}).content.decode()
    assert "Theirs" not in b"".join(admin_client.get(url, {"export": "csv"}).streaming_content).decode()


def test_get_sms_responses_button_needs_processing_right(client, funded):
    reader = factories.make_user(entity=funded, rights=[Right.REPORT_REPLY_DETAIL])
    client.force_login(reader)
    assert "Get SMS Responses" not in client.get(reverse("web:messaging_reply_detail")).content.decode()
    assert client.post(reverse("web:messaging_replies_collect")).status_code == 403
    assert not ProcessLog.objects.exists()


def test_get_sms_responses_button_runs_and_says_what_it_found(admin_client, funded):
    _replies(funded, 2)
    assert admin_client.get(reverse("web:messaging_replies_collect")).status_code == 405
    page = admin_client.post(reverse("web:messaging_replies_collect"), follow=True).content.decode()
    assert "2 new replies collected: 2 matched to a client, 2 to the SMS they answer" in page
    assert OutboxMessage.objects.count() == 1


def test_replies_setup_screen_and_notices(admin_client, admin_user, funded):
    reader = factories.make_user(entity=funded, rights=[Right.REPORT_REPLY_DETAIL])
    url = reverse("web:messaging_replies_setup")
    page = admin_client.post(url, {"user": reader.pk, "in_app": "on"}, follow=True).content.decode()
    assert "will be told of new replies in the app" in page
    _replies(funded, 1)
    replies_collect(entity=funded, actor=admin_user, pull=False)
    admin_client.force_login(reader)
    notices = admin_client.get(reverse("web:messaging_reply_notices")).content.decode()
    assert "1 new reply" in notices
    admin_client.post(reverse("web:messaging_reply_notices"))
    assert ReplyNotice.objects.get().read_at is not None
    assert admin_client.get(url).status_code == 403  # the reader may not change the setup


# --- API ---------------------------------------------------------------------------------------------

def test_api_collect_report_and_notify_setup(admin_client, funded, other_entity):
    _replies(funded, 3, stop_every=3)
    run = admin_client.post(reverse("api:messaging-replies-collect"))
    assert run.status_code == 200 and run.json()["collected"] == 3 and run.json()["matched_messages"] == 3
    url = reverse("api:messaging-report-reply-detail")
    body = admin_client.get(url, {"stop": "yes"}).json()
    assert body["count"] == 1 and body["results"][0]["answered_type"] == "new_loan" and body["results"][0]["stop"]
    assert admin_client.get(url, {"date_from": "2026-12-02", "date_to": "2026-12-01"}).status_code == 400
    csv_body = b"".join(admin_client.get(url, {"export": "csv"}).streaming_content).decode()
    assert csv_body.count("\n") == 4
    reader = factories.make_user(entity=funded, rights=[Right.REPORT_REPLY_DETAIL])
    notify = reverse("api:messaging-replies-notify")
    saved = admin_client.post(notify, {"user": reader.pk, "in_app": True, "by_email": False}, content_type="application/json")
    assert saved.status_code == 200 and saved.json()[0]["user"] == reader.pk
    stranger = factories.make_user(entity=other_entity, rights=[Right.REPORT_REPLY_DETAIL])
    refused = admin_client.post(notify, {"user": stranger.pk, "in_app": True, "by_email": False},
                                content_type="application/json")
    assert refused.status_code == 400 and "user" in refused.json()


def test_api_rights(client, funded):
    reader = factories.make_user(entity=funded, rights=[Right.REPORT_REPLY_DETAIL])
    client.force_login(reader)
    assert client.post(reverse("api:messaging-replies-collect")).status_code == 403
    assert client.get(reverse("api:messaging-replies-notify")).status_code == 403
    assert client.get(reverse("api:messaging-report-reply-detail")).status_code == 200


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_collect_each_reply_once():
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks with SKIP LOCKED are PostgreSQL's; SQLite serialises the two runs by design")
    entity, operator = factories.make_entity(), factories.make_operator()
    credits_assign(actor=operator, entity=entity, channel="sms", amount=10)
    borrower = factories.make_client(entity=entity, name="Palesa")
    InboundMessage.objects.bulk_create([
        InboundMessage(gateway="smsc", provider_id=f"c{i}", entity=entity, number=borrower.cellphone, text=f"r{i}")
        for i in range(400)])
    results, errors = [], []
    start = threading.Barrier(2)

    def run():
        try:
            start.wait(5)
            results.append(replies_collect(entity=entity, actor=None, trigger="daily", pull=False))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert sum(r.collected for r in results) == 400
    assert not InboundMessage.objects.filter(entity=entity, collected_at__isnull=True).exists()


def test_replies_setup_remove_of_no_such_user_is_a_404_not_a_500(admin_client, funded, other_entity):
    url = reverse("web:messaging_replies_setup")
    for bad in ("abc", "1.5", "-1", "²"):  # not an id at all: a 400 naming the parameter
        assert admin_client.post(url, {"remove": bad}).status_code == 400
    assert admin_client.post(url, {"remove": "99999999"}).status_code == 404
    # A user of another entity is no user here either.
    stranger = factories.make_user(entity=other_entity, rights=[Right.REPORT_REPLY_DETAIL])
    assert admin_client.post(url, {"remove": stranger.pk}).status_code == 404
