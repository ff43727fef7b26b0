"""Big XLSX exports run as background jobs: the screen answers at once with a progress page that
updates itself, the consumer writes the file reporting progress, the file is offered when ready and
audited once; only the user who started it, in the same entity and with the report's right, sees it."""

from __future__ import annotations

import io
import re

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from imali.core.models import AuditAction, AuditEntry
from imali.messaging.models import ProcessLog
from imali.tenancy.rights import Right
from imali.web import export_jobs
from tests import factories
from tests.messaging.test_reports import sms

pytestmark = pytest.mark.django_db


@pytest.fixture
def small_threshold(monkeypatch, tmp_path, settings):
    settings.VAR_DIR = tmp_path
    monkeypatch.setattr(export_jobs, "BACKGROUND_FROM_ROWS", 3)
    monkeypatch.setattr(export_jobs, "PROGRESS_EVERY_ROWS", 2)


@pytest.fixture
def consumer_inline():
    """The Huey consumer's work done in the request (Huey's immediate mode)."""
    huey = settings.HUEY
    huey.immediate = True
    yield
    huey.immediate = False


def _job_id(response) -> str:
    assert response.status_code == 302
    return re.fullmatch(r"/messaging/exports/\?job=([\w-]+)", response["Location"]).group(1)


def _url(name: str, job_id: str) -> str:
    return f"{reverse(name)}?job={job_id}"


def test_a_big_xlsx_export_runs_in_the_background_and_is_offered_when_ready(client, login_as, entity, small_threshold,
                                                                             consumer_inline):
    for n in range(5):
        sms(entity, at=timezone.now(), text=f"Message {n}")
    user = login_as(entity, [Right.REPORT_SMS_DETAIL])
    job_id = _job_id(client.post(reverse("web:messaging_outbox"), {"export": "xlsx"}))
    page = client.get(_url("web:messaging_export_job", job_id)).content.decode()
    assert 'data-state="ready"' in page and "hx-trigger" not in page.split('id="export-progress"')[1].split(">")[0]
    download = _url("web:messaging_export_job_download", job_id)
    assert f'href="{download}"' in page
    response = client.get(download)
    assert response.status_code == 200 and response["Content-Disposition"].startswith('attachment; filename="sms-detail-')
    rows = list(load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True).worksheets[0].iter_rows(values_only=True))
    assert len(rows) == 6 and rows[0][0] == "Date"
    assert sorted(r[6] for r in rows[1:]) == [f"Message {n}" for n in range(5)]
    entries = AuditEntry.objects.filter(action=AuditAction.REPORT_EXPORTED, actor=user)
    assert entries.count() == 1 and entries.get().after["rows"] == 5


def test_progress_page_polls_until_the_file_is_ready(client, login_as, entity, small_threshold):
    for n in range(5):
        sms(entity, at=timezone.now(), text=f"Message {n}")
    login_as(entity, [Right.REPORT_SMS_DETAIL])
    job_id = _job_id(client.post(reverse("web:messaging_outbox"), {"export": "xlsx"}))  # queued: no consumer ran
    progress = _url("web:messaging_export_job_progress", job_id)
    page = client.get(_url("web:messaging_export_job", job_id)).content.decode()
    assert f'hx-get="{progress}" hx-trigger="every 1s"' in page and 'data-state="queued"' in page
    assert '<progress id="export-bar" max="5" value="0">' in page
    assert client.get(_url("web:messaging_export_job_download", job_id)).status_code == 404

    seen = []
    original = export_jobs._save

    def watching(job):
        original(job)
        seen.append((job.state, job.done))
    export_jobs._save = watching
    try:
        export_jobs.export_job_run(job_id=job_id)  # what the consumer does
    finally:
        export_jobs._save = original
    assert ("running", 2) in seen and ("running", 4) in seen and seen[-1] == ("ready", 5)
    fragment = client.get(progress).content.decode()
    assert 'data-state="ready"' in fragment and "hx-get" not in fragment and "5 rows" in fragment


def test_export_jobs_belong_to_their_user_entity_and_right(client, login_as, entity, other_entity, small_threshold,
                                                           consumer_inline):
    for _ in range(4):
        sms(entity, at=timezone.now())
    login_as(entity, [Right.REPORT_SMS_DETAIL])
    job_id = _job_id(client.post(reverse("web:messaging_outbox"), {"export": "xlsx"}))
    urls = [_url(name, job_id) for name in
            ("web:messaging_export_job", "web:messaging_export_job_progress", "web:messaging_export_job_download")]
    login_as(entity, [Right.REPORT_SMS_DETAIL])  # a colleague
    assert [client.get(u).status_code for u in urls] == [404, 404, 404]
    login_as(other_entity, [Right.REPORT_SMS_DETAIL])
    assert [client.get(u).status_code for u in urls] == [404, 404, 404]
    login_as(entity, [Right.REPORT_SMS_DETAIL])
    for bad in ("..%2F..%2Fetc", "x" * 80, "abc.json", ""):
        assert client.get(f"/messaging/exports/?job={bad}").status_code == 404, bad
    client.force_login(factories.make_operator())
    assert client.get(urls[0]).status_code == 404


def test_the_starter_loses_the_job_with_the_right(client, entity, small_threshold, consumer_inline):
    from imali.tenancy.models import Role

    for _ in range(4):
        sms(entity, at=timezone.now())
    user = factories.make_user(entity=entity, rights=[Right.REPORT_SMS_DETAIL])
    client.force_login(user)
    job_id = _job_id(client.post(reverse("web:messaging_outbox"), {"export": "xlsx"}))
    for role in Role.objects.filter(users=user):
        role.rights.clear()
    user.user_permissions.clear()
    user = type(user).objects.get(pk=user.pk)
    client.force_login(user)
    assert client.get(_url("web:messaging_export_job", job_id)).status_code == 403


def test_a_big_process_log_export_runs_in_the_background_too(client, login_as, entity, small_threshold, consumer_inline):
    for n in range(4):
        ProcessLog.objects.create(entity=entity, kind=f"batch {n}", queued=n)
    login_as(entity, [Right.VIEW_LOGS])
    job_id = _job_id(client.post(reverse("web:messaging_process_log") + "?period=all", {"export": "xlsx"}))
    response = client.get(_url("web:messaging_export_job_download", job_id))
    rows = list(load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True).worksheets[0].iter_rows(values_only=True))
    # The run named in words, as on the screen ("batch 0" is no known kind: its words, capitalised).
    assert len(rows) == 5 and sorted(r[3] for r in rows[1:]) == [f"Batch {n}" for n in range(4)]


def test_a_small_xlsx_export_still_streams_at_once(client, login_as, entity, small_threshold):
    sms(entity, at=timezone.now())
    login_as(entity, [Right.REPORT_SMS_DETAIL])
    response = client.post(reverse("web:messaging_outbox"), {"export": "xlsx"})
    assert response.status_code == 200 and response.streaming


def test_a_big_reply_detail_export_runs_in_the_background_with_its_filters(client, login_as, entity, other_entity,
                                                                            small_threshold, consumer_inline):
    from imali.messaging.models import InboundMessage

    for n in range(5):
        InboundMessage.objects.create(gateway="smsc", provider_id=f"mine-{n}", entity=entity, number="+27821110000",
                                      text=f"Reply {n}", is_stop=n % 2 == 0)
    InboundMessage.objects.create(gateway="smsc", provider_id="theirs", entity=other_entity, number="+27821110000",
                                  text="Theirs", is_stop=True)
    user = login_as(entity, [Right.REPORT_REPLY_DETAIL])
    job_id = _job_id(client.post(reverse("web:messaging_reply_detail") + "?stop=yes", {"export": "xlsx"}))
    page = client.get(_url("web:messaging_export_job", job_id)).content.decode()
    assert 'data-state="ready"' in page
    response = client.get(_url("web:messaging_export_job_download", job_id))
    assert response["Content-Disposition"].startswith('attachment; filename="reply-detail-')
    rows = list(load_workbook(io.BytesIO(b"".join(response.streaming_content)), read_only=True).worksheets[0]
                .iter_rows(values_only=True))
    assert rows[0][:6] == ("Date", "Time", "Number", "Client no.", "Client", "Reply")
    assert sorted(r[5] for r in rows[1:]) == ["Reply 0", "Reply 2", "Reply 4"]
    entry = AuditEntry.objects.get(action=AuditAction.REPORT_EXPORTED, actor=user)
    assert entry.after == {"report": "reply-detail", "format": "xlsx", "filters": {"stop": "yes"}, "rows": 3}
    # The job is the starter's, in the entity, with the report's right.
    login_as(entity, [Right.REPORT_SMS_DETAIL])
    assert client.get(_url("web:messaging_export_job", job_id)).status_code == 404


def test_a_get_never_builds_an_xlsx_file_or_starts_a_job(client, login_as, entity, small_threshold, consumer_inline):
    """XLSX is a POST (the button is a form): a GET with ?export=xlsx shows the report, starts no
    job, builds no file and audits nothing. CSV still streams on a GET."""
    for n in range(5):
        sms(entity, at=timezone.now(), text=f"Message {n}")
    login_as(entity, [Right.REPORT_SMS_DETAIL, Right.VIEW_LOGS, Right.REPORT_REPLY_DETAIL])
    folder = settings.VAR_DIR / "exports"
    for name, query in (("web:messaging_outbox", ""), ("web:messaging_process_log", "period=all&"),
                        ("web:messaging_reply_detail", "")):
        response = client.get(f"{reverse(name)}?{query}export=xlsx")
        assert response.status_code == 200 and response["Content-Type"].startswith("text/html"), name
        page = response.content.decode()
        assert 'method="post"' in page and 'name="export" value="xlsx"' in page, name
    assert not (folder.exists() and any(folder.iterdir()))
    assert not AuditEntry.objects.filter(action=AuditAction.REPORT_EXPORTED).exists()
    csv = client.get(reverse("web:messaging_outbox") + "?export=csv")
    assert csv.status_code == 200 and csv.streaming and csv["Content-Type"].startswith("text/csv")
