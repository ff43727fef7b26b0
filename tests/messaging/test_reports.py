"""Messaging reports: the usage chart by local day and the delivery rate, the SMS Detail report and
the process log, their streamed CSV / XLSX exports, rights and entity isolation."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import re
import zoneinfo

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse
from openpyxl import load_workbook

from imali.core.models import AuditAction, AuditEntry
from imali.messaging import reports
from imali.messaging.models import OutboxMessage, ProcessLog, priority_for
from imali.tenancy.models import Branch
from imali.tenancy.rights import Right
from tests import factories

_keys = itertools.count(1)


def local(entity, *args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=zoneinfo.ZoneInfo(entity.time_zone))


def sms(entity, *, at, status="delivered", message_type="crm", client=None, user=None, created_by=None,
        number="+27821234567", text="Hello", segments=1, error="") -> OutboxMessage:
    """An outbox row as the dispatcher leaves it, at a chosen time and status."""
    return OutboxMessage.objects.create(
        entity=entity, client=client, user=user, created_by=created_by, number=number, message_type=message_type,
        text=text, segments=segments, credits=segments, priority=priority_for(message_type),
        idempotency_key=f"report-test:{next(_keys)}", status=status, error=error, next_attempt_at=at, created_at=at)


def body_of(response) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content)


def csv_rows(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body_of(response).decode("utf-8-sig"))))


def xlsx_rows(response) -> list[tuple]:
    book = load_workbook(io.BytesIO(body_of(response)), read_only=True)
    return list(book.worksheets[0].iter_rows(values_only=True))


# --- Usage: messages per local day, delivery rate ---------------------------------------------

def test_per_day_counts_land_on_the_local_day(entity):
    # Johannesburg is UTC+2: 00:30 local on the 11th is 22:30 UTC on the 10th.
    sms(entity, at=local(entity, 2026, 11, 10, 23, 30), status="delivered")
    sms(entity, at=local(entity, 2026, 11, 11, 0, 30), status="failed")
    sms(entity, at=local(entity, 2026, 11, 11, 0, 30), status="expired")
    sms(entity, at=local(entity, 2026, 11, 12, 23, 59), status="queued")
    sms(entity, at=local(entity, 2026, 11, 13, 0, 0), status="delivered")  # the day after the range
    usage = reports.messages_per_day(entity=entity, first=dt.date(2026, 11, 10), last=dt.date(2026, 11, 12))
    by_day = {d.day: d.counts for d in usage.days}
    assert [d.day for d in usage.days] == [dt.date(2026, 11, 10), dt.date(2026, 11, 11), dt.date(2026, 11, 12)]
    assert by_day[dt.date(2026, 11, 10)]["delivered"] == 1 and sum(by_day[dt.date(2026, 11, 10)].values()) == 1
    assert by_day[dt.date(2026, 11, 11)]["failed"] == 2 and sum(by_day[dt.date(2026, 11, 11)].values()) == 2
    assert by_day[dt.date(2026, 11, 12)]["queued"] == 1
    assert usage.total == 4


def test_per_day_counts_follow_a_daylight_saving_zone(entity):
    entity.time_zone = "Europe/London"
    entity.save(update_fields=["time_zone"])
    # 29 March 2026 is 23 hours long in London; 23:30 BST is 22:30 UTC, 00:30 BST on the 30th is 23:30 UTC on the 29th.
    sms(entity, at=local(entity, 2026, 3, 29, 0, 30))
    sms(entity, at=local(entity, 2026, 3, 29, 23, 30))
    sms(entity, at=local(entity, 2026, 3, 30, 0, 30))
    usage = reports.messages_per_day(entity=entity, first=dt.date(2026, 3, 29), last=dt.date(2026, 3, 30))
    assert [d.total for d in usage.days] == [2, 1]


def test_delivery_rate_is_delivered_over_finished(entity):
    day = local(entity, 2026, 11, 10, 12, 0)
    for status in ["delivered"] * 3 + ["failed", "expired", "submitted", "submitted", "queued", "cancelled"]:
        sms(entity, at=day, status=status)
    usage = reports.messages_per_day(entity=entity, first=dt.date(2026, 11, 10), last=dt.date(2026, 11, 10))
    assert usage.totals == {"queued": 1, "sent": 2, "delivered": 3, "failed": 2, "cancelled": 1}
    assert usage.finished == 5
    assert str(usage.delivery_rate) == "60.0"
    empty = reports.messages_per_day(entity=entity, first=dt.date(2026, 11, 11), last=dt.date(2026, 11, 11))
    assert empty.delivery_rate is None


def test_usage_screen_draws_the_chart_and_its_table(admin_client, funded, other_entity, django_assert_max_num_queries):
    entity = funded
    for status in ("delivered", "delivered", "failed", "submitted"):
        sms(entity, at=local(entity, 2026, 11, 10, 9, 0), status=status)
    sms(other_entity, at=local(other_entity, 2026, 11, 10, 9, 0), status="failed", number="+264811234567")
    url = reverse("web:messaging_credits") + "?start=2026-11-01&end=2026-11-30"
    with django_assert_max_num_queries(21):
        response = admin_client.get(url)
    body = response.content.decode()
    assert response.status_code == 200
    assert "<svg" in body and 'role="img"' in body
    # Delivered, Failed and Sent on one day: three bars drawn with a height (pygal, inline, no script).
    bars = re.findall(r'<rect [^>]*height="([0-9.]+)"[^>]*class="rect reactive', body)
    assert len([h for h in bars if float(h) > 0]) == 3
    assert "Tue 2026-11-10: 2 Delivered" in body and "<script" not in body.split("<svg")[1]
    daily = response.context["daily"]
    assert len(daily.days) == 30 and daily.totals["delivered"] == 2 and daily.totals["failed"] == 1
    assert "66.7%" in body and "Delivered ÷ (Delivered + Failed)" in body
    assert "in the period: <strong>4</strong>" in body
    assert "<th scope=\"row\">Tue 2026-11-10</th>" in body
    # Nothing loaded from another host (a bare "cdn" could be inside the random CSRF token).
    assert not re.search(r'(?:src|href)="(?:https?:)?//', body) and "<script" not in body.split("</head>")[1]


def test_usage_screen_defaults_to_the_last_30_local_days(admin_client, entity):
    now = dt.datetime.now(dt.UTC)
    sms(entity, at=now, status="queued")
    sms(entity, at=now, status="cancelled")
    sms(other := factories.make_entity(), at=now, number="+27821234567")
    response = admin_client.get(reverse("web:messaging_credits"))
    assert response.context["sent_this_month"] == 1 and other.pk != entity.pk
    daily = response.context["daily"]
    today = reports.local_today(entity)
    assert daily.last == today and daily.first == today - dt.timedelta(days=29)


def test_usage_screen_refuses_more_than_a_year(admin_client, entity):
    response = admin_client.get(reverse("web:messaging_credits") + "?start=2024-01-01&end=2026-01-01")
    assert "at most 366 days" in response.content.decode()


def test_usage_screen_needs_its_right(client, entity):
    client.force_login(factories.make_user(entity=entity, rights=[Right.REPORT_SMS_DETAIL]))
    assert client.get(reverse("web:messaging_credits")).status_code == 403


# --- SMS Detail -------------------------------------------------------------------------------

@pytest.fixture
def book(entity, other_entity, admin_user):
    """A spread of messages over types, statuses, days, branches and senders, and one of another entity."""
    head_office = entity.branches.get(code="HO")
    east = Branch.objects.create(entity=entity, code="EL", name="East London")
    thabo = factories.make_client(entity=entity, name="Thabo", branch=head_office)
    id_number = factories.SA_IDS[1][0]
    lindiwe = factories.make_client(entity=entity, name="Lindiwe", surname="Dube", branch=east, id_number=id_number,
                                    date_of_birth=factories.SA_IDS[1][1], cellphone="0831234567")
    clerk = factories.make_user(entity=entity)
    manager = factories.make_user(entity=entity)
    manager.home_branch = east
    manager.save(update_fields=["home_branch"])
    msgs = {
        "thabo_crm": sms(entity, at=local(entity, 2026, 11, 9, 10, 0), client=thabo, created_by=admin_user,
                         text="Come and see us", status="delivered"),
        "thabo_arrears": sms(entity, at=local(entity, 2026, 11, 10, 8, 0), client=thabo, message_type="arrears",
                             status="failed", error="Invalid destination"),
        "lindiwe_single": sms(entity, at=local(entity, 2026, 11, 10, 23, 30), client=lindiwe, created_by=clerk,
                              message_type="single", number="+27831234567", status="submitted"),
        "manager_mis": sms(entity, at=local(entity, 2026, 11, 11, 0, 30), user=manager, message_type="mis",
                           number="+27841234567", status="queued"),
    }
    theirs = factories.make_client(entity=other_entity, name="Other")
    sms(other_entity, at=local(other_entity, 2026, 11, 10, 9, 0), client=theirs, number=theirs.cellphone,
        text="THEIRS-SECRET")
    other_branch = other_entity.branches.first()
    return {"msgs": msgs, "head_office": head_office, "east": east, "clerk": clerk, "manager": manager,
            "thabo": thabo, "lindiwe": lindiwe, "other_branch": other_branch,
            "other_user": factories.make_user(entity=other_entity)}


def ids_on_screen(admin_client, query: str) -> set[int]:
    response = admin_client.get(reverse("web:messaging_outbox") + query)
    assert response.status_code == 200
    page = response.context["page"]
    return set() if page is None else {row.id for row in page}


@pytest.mark.parametrize(("query", "expected"), [
    ("", {"thabo_crm", "thabo_arrears", "lindiwe_single", "manager_mis"}),
    ("?message_type=arrears", {"thabo_arrears"}),
    ("?status=submitted", {"lindiwe_single"}),
    ("?start=2026-11-10&end=2026-11-10", {"thabo_arrears", "lindiwe_single"}),  # 23:30 local is still the 10th
    ("?start=2026-11-11", {"manager_mis"}),                                       # 00:30 local is the 11th
    ("?end=2026-11-09", {"thabo_crm"}),
    ("?branch={east}", {"lindiwe_single", "manager_mis"}),                        # client's branch, user's home branch
    ("?branch={head_office}", {"thabo_crm", "thabo_arrears"}),
    ("?user={clerk}", {"lindiwe_single"}),
    ("?user=system", {"thabo_arrears", "manager_mis"}),
    ("?number=083+123", {"lindiwe_single"}),                                      # as the screen shows it
    ("?number=%2B2784", {"manager_mis"}),                                           # as stored
    ("?number=2783", {"lindiwe_single"}),
    ("?message_type=single&branch={east}&user={clerk}&status=submitted", {"lindiwe_single"}),
])
def test_each_filter_narrows_the_sms_detail(admin_client, book, query, expected):
    query = query.format(east=book["east"].pk, head_office=book["head_office"].pk, clerk=book["clerk"].pk)
    assert ids_on_screen(admin_client, query) == {book["msgs"][k].pk for k in expected}


def test_sms_detail_shows_the_columns(admin_client, book, admin_user):
    body = admin_client.get(reverse("web:messaging_outbox")).content.decode()
    for text in ("Come and see us", "Invalid destination", "East London", "Head Office", "System", str(admin_user),
                 "Lindiwe Dube", "Payment arrears", "Delivered", "23:30:00", "2026-11-10"):
        assert text in body, text
    assert "THEIRS-SECRET" not in body


def test_another_entitys_branch_or_user_gives_nothing(admin_client, book):
    for query in (f"?branch={book['other_branch'].pk}", f"?user={book['other_user'].pk}"):
        response = admin_client.get(reverse("web:messaging_outbox") + query)
        assert response.status_code == 200 and response.context["page"] is None
        assert response.context["form"].errors
        assert "THEIRS-SECRET" not in response.content.decode()
        # and an export of such a selection is never the unfiltered report
        export = admin_client.get(reverse("web:messaging_outbox") + query + "&export=csv")
        assert not isinstance(export, StreamingHttpResponse)
    assert not AuditEntry.objects.filter(action=AuditAction.REPORT_EXPORTED).exists()


def test_csv_export_streams_exactly_the_filtered_rows_and_is_audited(admin_client, book, entity, admin_user):
    query = f"?branch={book['east'].pk}"
    response = admin_client.get(reverse("web:messaging_outbox") + query + "&export=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert response.streaming and 'attachment; filename="sms-detail-' in response["Content-Disposition"]
    rows = csv_rows(response)
    assert rows[0] == reports.SMS_DETAIL_HEADER
    assert len(rows) == 3
    newest, older = rows[1], rows[2]
    assert newest[:2] == ["2026-11-11", "00:30:00"] and newest[5] == "MIS report" and newest[11] == "System"
    assert newest[12] == "East London"
    assert older[:5] == ["2026-11-10", "23:30:00", str(book["lindiwe"].number), "Lindiwe Dube", "+27831234567"]
    assert older[7] == "Sent" and older[11] == str(book["clerk"])
    entry = AuditEntry.objects.get(action=AuditAction.REPORT_EXPORTED)
    assert entry.actor == admin_user and entry.entity == entity
    assert entry.after == {"report": "sms-detail", "format": "csv", "filters": {"branch_id": book["east"].pk}, "rows": 2}


def test_xlsx_export_opens_and_holds_the_filtered_rows(admin_client, book):
    response = admin_client.post(reverse("web:messaging_outbox") + "?user=system", {"export": "xlsx"})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    # The length announced is this file's own (a second export may differ by a byte: the zip
    # stamps the time it was written).
    body = body_of(response)
    assert int(response["Content-Length"]) == len(body)
    rows = list(load_workbook(io.BytesIO(body), read_only=True).worksheets[0].iter_rows(values_only=True))
    assert list(rows[0]) == reports.SMS_DETAIL_HEADER
    assert [r[6] for r in rows[1:]] == ["Hello", "Hello"] and {r[5] for r in rows[1:]} == {"MIS report", "Payment arrears"}
    assert rows[2][0] == dt.datetime(2026, 11, 10) and rows[2][10] == "Invalid destination"
    entry = AuditEntry.objects.filter(action=AuditAction.REPORT_EXPORTED).first()
    assert entry.after["format"] == "xlsx" and entry.after["rows"] == 2 and entry.after["filters"] == {"user": "system"}


def test_exports_keep_free_text_as_text(admin_client, entity):
    sms(entity, at=local(entity, 2026, 11, 10, 9, 0), text='=HYPERLINK("http://x.invalid","pay")')
    rows = csv_rows(admin_client.get(reverse("web:messaging_outbox") + "?export=csv"))
    assert rows[1][6] == '\'=HYPERLINK("http://x.invalid","pay")'
    response = admin_client.post(reverse("web:messaging_outbox"), {"export": "xlsx"})
    book = load_workbook(io.BytesIO(body_of(response)))
    cell = book.worksheets[0]["G2"]
    assert cell.data_type == "s" and cell.value == '=HYPERLINK("http://x.invalid","pay")'


def test_exports_do_not_hold_the_rows_in_memory(admin_client, entity):
    """The CSV comes in pieces as rows are read; the rows are read from a cursor in chunks."""
    OutboxMessage.objects.bulk_create([
        OutboxMessage(entity=entity, number="+27821234567", message_type="crm", text="x" * 150, segments=1, credits=1,
                      priority=2, idempotency_key=f"bulk:{i}", status="delivered",
                      next_attempt_at=local(entity, 2026, 11, 10, 9, 0), created_at=local(entity, 2026, 11, 10, 9, 0))
        for i in range(1200)])
    response = admin_client.get(reverse("web:messaging_outbox") + "?export=csv")
    pieces = list(response.streaming_content)
    assert len(pieces) >= 2 and all(len(p) <= reports.STREAM_PIECE_BYTES + 1024 for p in pieces)
    assert b"".join(pieces).count(b"\r\n") == 1201


def test_sms_detail_rights(client, entity, book):
    client.force_login(factories.make_user(entity=entity, rights=[Right.VIEW_LOGS, Right.MAXSMS_GENERAL_SETUP]))
    for query in ("", "?export=csv", "?export=xlsx"):
        assert client.get(reverse("web:messaging_outbox") + query).status_code == 403
    assert client.post(reverse("web:messaging_outbox")).status_code in (403, 405)
    client.force_login(factories.make_user(entity=entity, rights=[Right.REPORT_SMS_DETAIL]))
    assert client.get(reverse("web:messaging_outbox") + "?export=csv").status_code == 200


def test_other_entitys_rows_never_appear(client, other_entity, book):
    """A user of the other entity sees only its own message, on the screen and in the exports."""
    client.force_login(factories.make_admin(entity=other_entity))
    body = client.get(reverse("web:messaging_outbox")).content.decode()
    assert "THEIRS-SECRET" in body and "Come and see us" not in body
    rows = csv_rows(client.get(reverse("web:messaging_outbox") + "?export=csv"))
    assert len(rows) == 2 and rows[1][6] == "THEIRS-SECRET"
    # their user filter naming our branch is refused, not widened
    assert client.get(reverse("web:messaging_outbox") + f"?branch={book['east'].pk}").context["page"] is None


def test_sms_detail_screen_query_count_does_not_grow_with_rows(admin_client, entity, book, django_assert_max_num_queries):
    with django_assert_max_num_queries(10):
        admin_client.get(reverse("web:messaging_outbox"))
    for i in range(40):
        sms(entity, at=local(entity, 2026, 11, 12, 9, i), client=book["thabo"], created_by=book["clerk"])
    with django_assert_max_num_queries(10):
        response = admin_client.get(reverse("web:messaging_outbox"))
    assert len(response.context["page"].object_list) == 44


def test_sms_detail_pages(admin_client, entity):
    for i in range(55):
        sms(entity, at=local(entity, 2026, 11, 10, 9, 0) + dt.timedelta(minutes=i))
    first = admin_client.get(reverse("web:messaging_outbox") + "?status=delivered")
    assert len(first.context["page"].object_list) == 50 and "page=2" in first.content.decode()
    second = admin_client.get(reverse("web:messaging_outbox") + "?status=delivered&page=2")
    assert len(second.context["page"].object_list) == 5
    assert len(csv_rows(admin_client.get(reverse("web:messaging_outbox") + "?status=delivered&page=2&export=csv"))) == 56


# --- Process log ------------------------------------------------------------------------------

@pytest.fixture
def runs(entity, other_entity, admin_user):
    today = reports.local_today(entity)
    def run(entity, day, hour, kind, **extra):
        log = ProcessLog.objects.create(entity=entity, actor=extra.pop("actor", None), kind=kind, message_type="crm", **extra)
        started = dt.datetime.combine(day, dt.time(hour), tzinfo=zoneinfo.ZoneInfo(entity.time_zone))
        ProcessLog.objects.filter(pk=log.pk).update(started_at=started)
        return log
    return {
        "today": run(entity, today, 0, "bulk-today", actor=admin_user, queued=10, credits=12,
                     criteria={"employer": "Acme"}, skipped=2, skipped_reasons={"no cellphone": 2}, errors=["one bad"]),
        "yesterday": run(entity, today - dt.timedelta(days=1), 23, "bulk-yesterday", queued=3),
        "old": run(entity, dt.date(2026, 1, 15), 9, "bulk-old", queued=1),
        "theirs": run(other_entity, today, 9, "THEIRS-RUN"),
    }


@pytest.mark.parametrize(("query", "expected"), [
    ("", {"today"}),
    ("?period=today", {"today"}),
    ("?period=yesterday", {"yesterday"}),
    ("?period=all", {"today", "yesterday", "old"}),
    ("?period=range&start=2026-01-01&end=2026-01-31", {"old"}),
])
def test_process_log_periods(admin_client, runs, query, expected):
    response = admin_client.get(reverse("web:messaging_process_log") + query)
    assert {log.pk for log in response.context["page"]} == {runs[k].pk for k in expected}
    assert "THEIRS-RUN" not in response.content.decode()


def test_process_log_bad_dates_show_nothing(admin_client, runs):
    response = admin_client.get(reverse("web:messaging_process_log") + "?period=range&start=2026-02-01&end=2026-01-01")
    assert response.context["page"] is None and "before the start date" in response.content.decode()


def test_process_log_exports(admin_client, runs, admin_user):
    rows = csv_rows(admin_client.get(reverse("web:messaging_process_log") + "?period=all&export=csv"))
    assert rows[0] == reports.PROCESS_LOG_HEADER
    # The run's kind and criteria in words, as the screen shows them (a kind not named reads as its words).
    assert [r[3] for r in rows[1:]] == ["Bulk-today", "Bulk-yesterday", "Bulk-old"]
    today = rows[1]
    assert today[2] == str(admin_user) and today[5] == "Employer: Acme" and today[8] == "No cellphone: 2"
    assert today[6] == "10" and today[9] == "12" and today[10] == "one bad" and today[1] == "00:00:00"
    sheet = xlsx_rows(admin_client.post(reverse("web:messaging_process_log") + "?period=yesterday", {"export": "xlsx"}))
    assert len(sheet) == 2 and sheet[1][3] == "Bulk-yesterday" and sheet[1][2] == "System"
    entries = AuditEntry.objects.filter(action=AuditAction.REPORT_EXPORTED).order_by("id")
    assert [(e.after["report"], e.after["format"], e.after["rows"], e.after["filters"]["period"]) for e in entries] == [
        ("process-log", "csv", 3, "all"), ("process-log", "xlsx", 1, "yesterday")]


def test_process_log_needs_view_logs(client, entity, runs, django_assert_max_num_queries):
    client.force_login(factories.make_user(entity=entity, rights=[Right.REPORT_SMS_DETAIL]))
    for query in ("", "?export=csv", "?period=all&export=xlsx"):
        assert client.get(reverse("web:messaging_process_log") + query).status_code == 403
    client.force_login(factories.make_user(entity=entity, rights=[Right.VIEW_LOGS]))
    with django_assert_max_num_queries(8):
        assert client.get(reverse("web:messaging_process_log") + "?period=all").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_csv_export_streams_outside_a_transaction(client):
    """As in production (autocommit): the rows come from a cursor that outlives the view, read in
    chunks after the response has started (on PostgreSQL a server-side cursor WITH HOLD)."""
    entity = factories.make_entity()
    client.force_login(factories.make_user(entity=entity, rights=[Right.REPORT_SMS_DETAIL]))
    at = local(entity, 2026, 11, 10, 9, 0)
    OutboxMessage.objects.bulk_create([
        OutboxMessage(entity=entity, number="+27821234567", message_type="crm", text=f"row {i}", segments=1, credits=1,
                      priority=2, idempotency_key=f"autocommit:{i}", status="delivered", next_attempt_at=at,
                      created_at=at + dt.timedelta(seconds=i))
        for i in range(reports.EXPORT_CHUNK_ROWS + 10)])
    rows = csv_rows(client.get(reverse("web:messaging_outbox") + "?export=csv"))
    assert len(rows) == reports.EXPORT_CHUNK_ROWS + 11
    assert rows[1][6] == f"row {reports.EXPORT_CHUNK_ROWS + 9}" and rows[-1][6] == "row 0"
    assert AuditEntry.objects.get(action=AuditAction.REPORT_EXPORTED).after["rows"] == reports.EXPORT_CHUNK_ROWS + 10


def test_process_log_screen_shows_the_entitys_local_time(admin_client, entity, admin_user):
    """The screen says its times are the entity's; they must be, whatever the server's zone."""
    entity.time_zone = "Europe/London"
    entity.save(update_fields=["time_zone"])
    log = ProcessLog.objects.create(entity=entity, actor=admin_user, kind="bulk-london", message_type="crm")
    # 14:05 UTC on a January day is 14:05 in London and 16:05 in Johannesburg (the server's zone).
    ProcessLog.objects.filter(pk=log.pk).update(started_at=dt.datetime(2026, 1, 15, 14, 5, tzinfo=dt.UTC))
    body = admin_client.get(reverse("web:messaging_process_log") + "?period=all").content.decode()
    assert "2026-01-15 14:05" in body and "16:05" not in body


def test_usage_table_folds_the_days_without_messages(admin_client, funded):
    entity = funded
    sms(entity, at=local(entity, 2026, 11, 3, 9, 0), status="delivered")
    sms(entity, at=local(entity, 2026, 11, 20, 9, 0), status="failed")
    body = admin_client.get(reverse("web:messaging_credits") + "?start=2026-11-01&end=2026-11-30").content.decode()
    table = body[body.index('id="usage-table"'):body.index("</table>", body.index('id="usage-table"'))]
    rows = table.split("<tbody>")[1].split("</tbody>")[0].count("<tr")
    assert rows == 5  # 1–2 quiet, the 3rd, 4–19 quiet, the 20th, 21–30 quiet
    assert "Sun 2026-11-01 – Mon 2026-11-02</th>" in table and "No messages on these 2 days" in table
    assert "Wed 2026-11-04 – Thu 2026-11-19</th>" in table and "16 days" in table
    assert "<th scope=\"row\">Tue 2026-11-03</th>" in table
    assert '<tfoot><tr><th scope="row">Total</th>' in table


def test_process_log_names_each_run_in_words(admin_client, entity, admin_user):
    # The Run column showed the stored key ("message_batch", "client_marketing").
    for kind in ("message_batch", "client_marketing", "automatic", "mis"):
        ProcessLog.objects.create(entity=entity, actor=admin_user, kind=kind, message_type="crm")
    page = admin_client.get(reverse("web:messaging_process_log") + "?period=all").content.decode()
    for words in ("<td>Message batch</td>", "<td>Client marketing</td>", "<td>Automatic SMS</td>", "<td>MIS SMS</td>"):
        assert words in page
    assert "message_batch" not in page and "client_marketing" not in page


def test_process_log_names_each_criterion_in_words(admin_client, entity, admin_user):
    # The criteria read "business_date: 2026-12-07, days_before: 3": the stored keys.
    ProcessLog.objects.create(entity=entity, actor=None, kind="automatic", message_type="crm",
                              criteria={"days_before": 3, "business_date": "2026-12-07"})
    page = admin_client.get(reverse("web:messaging_process_log") + "?period=all").content.decode()
    assert "Days before: 3, Business date: 2026-12-07" in page and "business_date" not in page


def test_the_process_log_export_names_runs_and_criteria_in_words(admin_client, entity, admin_user):
    ProcessLog.objects.create(entity=entity, actor=admin_user, kind="message_batch", message_type="arrears",
                              criteria={"business_date": "2026-12-07", "days_before": 3}, skipped_reasons={"no_cellphone": 1})
    rows = csv_rows(admin_client.get(reverse("web:messaging_process_log") + "?period=all&export=csv"))
    run = next(r for r in rows[1:] if r[3] == "Message batch")
    # (PostgreSQL's jsonb keeps the keys in its own order.)
    assert sorted(run[5].split("; ")) == ["Business date: 2026-12-07", "Days before: 3"] and run[8] == "No cellphone: 1"
