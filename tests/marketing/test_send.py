"""Sending from a data set: named custom messages; the preview (count, left out by reason, credits);
SMS through the batch path (outbox rows, CPA hours, opt-out text, one process-log entry, a key
sends once); email through the email path over a loopback SMTP server; ticked rows only; opt-outs
since the run; isolation and rights."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone

from imali.clients.models import Client
from imali.marketing.models import CustomMessage, DataSetRow, MarketingSend
from imali.marketing.sending import send_preview, send_start
from imali.marketing.services import custom_message_save, dataset_start
from imali.messaging import policy
from imali.messaging.credits import credit_balance, credits_assign
from imali.messaging.models import MarketingOptOut, OutboxMessage, ProcessLog
from imali.tenancy.models import Entity
from imali.tenancy.rights import Right
from tests import factories
from tests.channels.conftest import smtp  # noqa: F401  (the loopback SMTP server)

from .conftest import TODAY

pytestmark = pytest.mark.django_db

SMS_TEXT = "Hello {^Client Name^} you owe {^Client Total Outstanding Loan Amount^} ask us about a top-up"


@pytest.fixture
def staff(entity):
    return factories.make_user(entity=entity, rights=[Right.CLIENT_MARKETING, Right.MAXSMS_MESSAGE_SETUP,
                                                      Right.MAXMAIL_MESSAGE_SETUP])


@pytest.fixture
def sms_message(entity, staff):
    return custom_message_save(actor=staff, entity=entity, channel="sms", name="Top-up offer", text=SMS_TEXT)


@pytest.fixture
def consented_book(entity, book):
    """Three clients with consent and a loan each, one of them without a cellphone; one without consent."""
    loans = [book.loan(book.borrower(marketing_consent=True)) for _ in range(3)]
    Client.objects.filter(pk=loans[2].client_id).update(cellphone="")
    book.loan(book.borrower())  # no consent: never in the data set
    return loans


def collect(entity, actor):
    return dataset_start(actor=actor, entity=entity, filters={}, as_of=TODAY, background=False)


def test_custom_messages_are_named_many_per_channel_and_checked(entity, staff):
    first = custom_message_save(actor=staff, entity=entity, channel="sms", name="Offer A", text="Hi {^Client Name^} offer A")
    custom_message_save(actor=staff, entity=entity, channel="sms", name="Offer B", text="Hi {^Client Name^} offer B")
    with pytest.raises(ValidationError) as caught:
        custom_message_save(actor=staff, entity=entity, channel="sms", name="Offer A", text="Another")
    assert set(caught.value.message_dict) == {"name"}
    with pytest.raises(ValidationError) as caught:
        custom_message_save(actor=staff, entity=entity, channel="sms", name="Bad", text="Hi {^Nmae^} there")
    assert set(caught.value.message_dict) == {"text"}
    with pytest.raises(ValidationError) as caught:
        custom_message_save(actor=staff, entity=entity, channel="email", name="Mail", text="Hi {^Client Name^} there")
    assert set(caught.value.message_dict) == {"subject"}
    changed = custom_message_save(actor=staff, entity=entity, channel="sms", name="Offer A2", text="Hi {^Client Name^} A2",
                                  message_id=first.pk)
    assert (changed.pk, changed.name) == (first.pk, "Offer A2")
    marketer_only = factories.make_user(entity=entity, rights=[Right.CLIENT_MARKETING])
    with pytest.raises(PermissionDenied):
        custom_message_save(actor=marketer_only, entity=entity, channel="sms", name="X", text="Hi {^Client Name^} x")


def test_preview_counts_recipients_drops_and_credits_and_writes_nothing(entity, staff, funded, consented_book, sms_message):
    dataset = collect(entity, staff)
    assert dataset.row_count == 3
    preview = send_preview(actor=staff, entity=entity, dataset_id=dataset.pk, message_id=sms_message.pk)
    assert (preview.selected, preview.recipients) == (3, 2)
    assert preview.dropped == {"no_cellphone": 1}
    assert preview.sample.startswith("Hello ") and "STOP" in preview.text and entity.name in preview.text
    assert "ZAR 2,715.00" in preview.sample
    assert preview.credits_needed >= 2 and preview.credits_left == credit_balance(entity=entity, channel="sms")
    assert not OutboxMessage.objects.exists()


def test_sms_send_goes_through_the_bulk_path_once_per_key(entity, staff, funded, consented_book, sms_message):
    dataset = collect(entity, staff)
    left = credit_balance(entity=entity, channel="sms")
    send, repeated = send_start(actor=staff, entity=entity, dataset_id=dataset.pk, message_id=sms_message.pk,
                                idempotency_key="k1")
    assert not repeated and send.state == "done", send.error
    rows = OutboxMessage.objects.filter(entity=entity)
    assert rows.count() == 2 == send.queued
    assert set(rows.values_list("message_type", flat=True)) == {"marketing"}
    assert all("STOP" in text for text in rows.values_list("text", flat=True))
    assert credit_balance(entity=entity, channel="sms") == left - send.credits
    # Outside the CPA Regulation 4 hours the messages wait (Scheduled) until the next allowed minute.
    now = timezone.now()
    waits = policy.next_allowed_send(entity=entity, message_type="marketing", at=now) > now
    assert all((m.scheduled_for is not None) == waits for m in rows)
    log = ProcessLog.objects.get(entity=entity, kind="client_marketing")
    assert (log.queued, log.skipped_reasons) == (2, {"no_cellphone": 1})
    assert send.process == log
    again, repeated = send_start(actor=staff, entity=entity, dataset_id=dataset.pk, message_id=sms_message.pk,
                                 idempotency_key="k1")
    assert repeated and again.pk == send.pk and OutboxMessage.objects.count() == 2
    assert ProcessLog.objects.filter(entity=entity, kind="client_marketing").count() == 1


def test_only_ticked_rows_and_a_stop_since_the_run_is_honoured(entity, staff, funded, consented_book, sms_message):
    dataset = collect(entity, staff)
    rows = list(DataSetRow.objects.filter(dataset=dataset).order_by("seq"))
    MarketingOptOut.objects.create(entity=entity, number=rows[0].cellphone)
    send, _ = send_start(actor=staff, entity=entity, dataset_id=dataset.pk, message_id=sms_message.pk,
                         idempotency_key="k2", row_ids=[rows[0].pk, rows[1].pk])
    assert send.selected == 2 and send.dropped_reasons == {"opted_out": 1}
    assert list(OutboxMessage.objects.values_list("client_id", flat=True)) == [rows[1].client_id]


def test_consent_withdrawn_after_the_run_drops_the_client_unless_the_entity_needs_none(entity, staff, funded,
                                                                                          consented_book, sms_message):
    dataset = collect(entity, staff)
    first = DataSetRow.objects.filter(dataset=dataset).order_by("seq").first()
    Client.objects.filter(pk=first.client_id).update(marketing_consent=False)
    preview = send_preview(actor=staff, entity=entity, dataset_id=dataset.pk, message_id=sms_message.pk)
    assert preview.dropped == {"no_consent": 1, "no_cellphone": 1}
    Entity.objects.filter(pk=entity.pk).update(marketing_consent_not_required=True)
    entity.refresh_from_db()
    preview = send_preview(actor=staff, entity=entity, dataset_id=dataset.pk, message_id=sms_message.pk)
    assert preview.dropped == {"no_cellphone": 1} and preview.recipients == 2


def test_rows_of_another_data_set_and_other_entities_messages_are_refused(entity, other_entity, staff, funded,
                                                                         consented_book, sms_message):
    dataset = collect(entity, staff)
    second = collect(entity, staff)
    foreign_row = DataSetRow.objects.filter(dataset=second).first()
    with pytest.raises(ValidationError) as caught:
        send_preview(actor=staff, entity=entity, dataset_id=dataset.pk, message_id=sms_message.pk, row_ids=[foreign_row.pk])
    assert set(caught.value.message_dict) == {"rows"}
    admin = factories.make_admin(entity=other_entity)
    theirs = custom_message_save(actor=admin, entity=other_entity, channel="sms", name="Theirs", text="Hi {^Client Name^} x")
    with pytest.raises(ValidationError) as caught:
        send_start(actor=staff, entity=entity, dataset_id=dataset.pk, message_id=theirs.pk, idempotency_key="k3")
    assert set(caught.value.message_dict) == {"message"}
    assert not MarketingSend.objects.exists()


@pytest.fixture
def weekday_calendar(monkeypatch):
    """Every day counts as an ordinary weekday (08:00-20:00) for the direct-marketing hours, as
    tests/paystream/conftest.py's banks_open pins the banks' clock. Otherwise, on a Sunday or a
    South African public holiday, no zone from UTC-12 to UTC+12 is inside the hours for much of the
    day (e.g. Sundays 00:50-20:00 UTC, 16 December 07:50-20:00 UTC) and _zone_open_now fails."""
    monkeypatch.setattr(policy, "_hours", lambda day, country: policy._WEEKDAY_HOURS)


def _zone_open_now() -> str:
    """A time zone in which direct marketing may go out now and for the next minutes (CPA hours);
    on a Sunday or a public holiday there may be none unless the test pins `weekday_calendar`."""
    probe = Entity(country="ZA", name="probe")
    now = timezone.now()
    for hours in range(-12, 13):
        probe.time_zone = f"Etc/GMT{'+' if hours <= 0 else '-'}{abs(hours)}"
        if all(policy.next_allowed_send(entity=probe, message_type="marketing", at=now + dt.timedelta(minutes=m))
               == now + dt.timedelta(minutes=m) for m in (0, 10)):
            return probe.time_zone
    pytest.fail("no time zone is inside the marketing hours now")


def test_email_send_goes_through_the_email_path(entity, operator, staff, consented_book, smtp,  # noqa: F811
                                               django_capture_on_commit_callbacks, weekday_calendar):
    Entity.objects.filter(pk=entity.pk).update(time_zone=_zone_open_now())
    entity.refresh_from_db()
    credits_assign(actor=operator, entity=entity, channel="email", amount=10)
    Client.objects.filter(pk=consented_book[0].client_id).update(email="first@example.org")
    Client.objects.filter(pk=consented_book[1].client_id).update(email="not-an-address")
    message = custom_message_save(actor=staff, entity=entity, channel="email", name="Mail offer",
                                  subject="An offer for {^Client Name^}", text="Dear {^Client Name^} we have an offer")
    dataset = collect(entity, staff)
    with django_capture_on_commit_callbacks(execute=True):
        send, _ = send_start(actor=staff, entity=entity, dataset_id=dataset.pk, message_id=message.pk, idempotency_key="m1")
    assert send.state == "done", send.error
    assert [r.rcpt_to for r in smtp.received] == [["first@example.org"]]
    assert send.dropped_reasons == {"invalid_email": 1, "no_email": 1}
    assert credit_balance(entity=entity, channel="email") == 9
    assert ProcessLog.objects.filter(entity=entity, kind="client_marketing").count() == 1


def test_send_screen_previews_then_sends(client, entity, staff, funded, consented_book, sms_message):
    dataset = collect(entity, staff)
    client.force_login(staff)
    url = reverse("web:marketing_dataset_send", kwargs={"dataset_id": dataset.pk})
    data = {"message": sms_message.pk, "recipients": "all", "idempotency_key": "abc123"}
    preview = client.post(url, {**data, "preview": "1"})
    assert preview.status_code == 200 and preview.context["preview"].recipients == 2
    assert not OutboxMessage.objects.exists()
    sent = client.post(url, {**data, "send": "1"})
    assert sent.status_code == 302 and OutboxMessage.objects.count() == 2
    client.post(url, {**data, "send": "1"})  # a double click
    assert OutboxMessage.objects.count() == 2
    ticked_none = client.post(url, {**data, "recipients": "ticked", "idempotency_key": "other", "preview": "1"})
    assert ticked_none.status_code == 400 and "recipients" in ticked_none.context["form"].errors


def test_custom_message_screen_saves_and_checks(client, entity, staff):
    client.force_login(staff)
    url = reverse("web:marketing_messages")
    assert client.get(url).status_code == 200
    bad = client.post(url, {"channel": "sms", "name": "Offer", "text": "Hi {^Nmae^} there", "is_active": "on"})
    assert bad.status_code == 400 and "text" in bad.context["form"].errors
    saved = client.post(url, {"channel": "sms", "name": "Offer", "text": "Hi {^Client Name^} there", "is_active": "on"})
    assert saved.status_code == 302
    message = CustomMessage.objects.get(entity=entity, name="Offer")
    edit = reverse("web:marketing_message_edit", kwargs={"custommessage_id": message.pk})
    client.post(edit, {"name": "Offer two", "text": "Hi {^Client Name^} again", "is_active": "on"})
    message.refresh_from_db()
    assert (message.name, message.channel) == ("Offer two", "sms")
    marketer_only = factories.make_user(entity=entity, rights=[Right.CLIENT_MARKETING])
    client.force_login(marketer_only)
    refused = client.post(url, {"channel": "sms", "name": "Mine", "text": "Hi {^Client Name^} x", "is_active": "on"})
    assert refused.status_code == 403 and not CustomMessage.objects.filter(name="Mine").exists()


def test_send_screen_reads_ticked_rows_as_ascii_ids(client, entity, staff, funded, consented_book, sms_message):
    """A ticked row's id in other digits ('١٢', '１２') or shapes ('12.0') is a 400 naming `row`,
    and nothing is sent."""
    dataset = collect(entity, staff)
    client.force_login(staff)
    row = DataSetRow.objects.filter(dataset=dataset).order_by("pk").first()
    url = reverse("web:marketing_dataset_send", kwargs={"dataset_id": dataset.pk})
    data = {"message": sms_message.pk, "recipients": "ticked", "idempotency_key": "rows1", "send": "1"}
    for shape in (str(row.pk).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
                  str(row.pk).translate(str.maketrans("0123456789", "０１２３４５６７８９")), f"{row.pk}.0"):
        refused = client.post(url, {**data, "row": [shape]})
        assert refused.status_code == 400 and "row" in refused.content.decode(), shape
    assert not OutboxMessage.objects.exists()
    assert client.post(url, {**data, "row": [str(row.pk)]}).status_code == 302
    assert OutboxMessage.objects.count() == 1
