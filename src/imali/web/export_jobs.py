"""Big report exports as background jobs with progress. An XLSX file is built at about 3,400 rows a
second, so a large SMS Detail or process log would keep the browser waiting on a blank download for
minutes: above BACKGROUND_FROM_ROWS rows the screen starts a job on the Huey consumer instead, shows
a progress bar that updates itself (htmx), and offers the file when it is ready. An XLSX export
is asked for with a POST (a job, or a file built, is never the effect of a GET); CSV streams on GET.

A job is a small JSON state file beside its result in IMALI_VAR_DIR/exports/, named by a random id;
only the user who started it, in the same entity and still holding the report's right, may see its
progress or take the file. The export is audited once the file is complete (as the streamed ones
are), and files older than a day are swept when the next job starts."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from django.conf import settings

from imali.messaging import reply_reports, reports
from imali.tenancy.models import Entity, User
from imali.tenancy.rights import Right

# About 1.5 s of XLSX writing: below it the file streams at once, as before.
BACKGROUND_FROM_ROWS = 5000
PROGRESS_EVERY_ROWS = 1000
KEEP_SECONDS = 24 * 3600

# The right that guards each report's screen guards its jobs too.
REPORT_RIGHTS = {"sms-detail": Right.REPORT_SMS_DETAIL, "process-log": Right.VIEW_LOGS,
                 "reply-detail": Right.REPORT_REPLY_DETAIL}


class JobNotFound(Exception):
    """No such job for this user (unknown id, another user's or another entity's job)."""


@dataclass
class ExportJob:
    id: str
    entity_id: int
    user_id: int
    report: str
    fmt: str
    params: dict
    total: int
    ip_address: str | None = None
    done: int = 0
    state: str = "queued"  # queued → running → ready | failed
    filename: str = ""
    size: int = 0
    error: str = ""
    created: float = field(default_factory=time.time)

    @property
    def percent(self) -> int:
        if self.state == "ready":
            return 100
        return min(99, self.done * 100 // self.total) if self.total else 0

    @property
    def finished(self) -> bool:
        return self.state in ("ready", "failed")

    @property
    def right(self) -> Right:
        return REPORT_RIGHTS[self.report]


def _folder() -> Path:
    folder = Path(settings.VAR_DIR) / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _state_path(job_id: str) -> Path:
    return _folder() / f"{job_id}.json"


def result_path(job: ExportJob) -> Path:
    return _folder() / f"{job.id}.{job.fmt}"


def _save(job: ExportJob) -> None:
    # Written whole and renamed, so a reader never sees half a state file.
    path = _state_path(job.id)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(job)))
    os.replace(temporary, path)


def _sweep(now: float) -> None:
    for path in _folder().iterdir():
        try:
            if now - path.stat().st_mtime > KEEP_SECONDS:
                path.unlink()
        except FileNotFoundError:
            continue


def export_job_create(*, entity: Entity, user: User, report: str, fmt: str, params: dict, total: int,
                      ip_address: str | None) -> ExportJob:
    if report not in REPORT_RIGHTS:
        raise ValueError(f"unknown report {report!r}")
    _sweep(time.time())
    job = ExportJob(id=secrets.token_urlsafe(18), entity_id=entity.pk, user_id=user.pk, report=report, fmt=fmt,
                    params=params, total=total, ip_address=ip_address)
    _save(job)
    return job


def export_job_get(*, job_id: str, entity: Entity, user: User) -> ExportJob:
    """The job if it is this user's, in this entity; JobNotFound otherwise (never saying which)."""
    if not job_id.replace("-", "").replace("_", "").isalnum() or len(job_id) > 64:
        raise JobNotFound(job_id)
    try:
        job = ExportJob(**json.loads(_state_path(job_id).read_text()))
    except (FileNotFoundError, ValueError, TypeError) as exc:
        raise JobNotFound(job_id) from exc
    if job.entity_id != entity.pk or job.user_id != user.pk:
        raise JobNotFound(job_id)
    return job


def _report(job: ExportJob, entity: Entity) -> tuple[list[str], Iterator[list], frozenset[int], int]:
    p = job.params
    if job.report == "sms-detail":
        values = dict(p["filters"])
        for key in ("date_from", "date_to"):
            if values.get(key):
                values[key] = dt.date.fromisoformat(values[key])
        filters = reports.SmsDetailFilters(**values)
        snapshot = reports.ExportSnapshot(p["rows"], p["up_to_id"])
        rows = reports.sms_detail_export_rows(entity=entity, filters=filters, snapshot=snapshot)
        return reports.SMS_DETAIL_HEADER, rows, reports.SMS_DETAIL_TEXT_COLUMNS, snapshot.rows
    if job.report == "reply-detail":
        values = dict(p["filters"])
        for key in ("date_from", "date_to"):
            if values.get(key):
                values[key] = dt.date.fromisoformat(values[key])
        filters = reply_reports.ReplyDetailFilters(**values)
        snapshot = reports.ExportSnapshot(p["rows"], p["up_to_id"])
        rows = reply_reports.reply_detail_export_rows(entity=entity, filters=filters, snapshot=snapshot)
        return reply_reports.REPLY_DETAIL_HEADER, rows, reply_reports.REPLY_DETAIL_TEXT_COLUMNS, snapshot.rows
    start = dt.datetime.fromisoformat(p["start"]) if p.get("start") else None
    end = dt.datetime.fromisoformat(p["end"]) if p.get("end") else None
    snapshot = reports.ExportSnapshot(p["rows"], p["up_to_id"])
    rows = reports.process_log_export_rows(entity=entity, start=start, end=end, snapshot=snapshot)
    return reports.PROCESS_LOG_HEADER, rows, reports.PROCESS_LOG_TEXT_COLUMNS, snapshot.rows


def _counted(job: ExportJob, rows: Iterable[list]) -> Iterator[list]:
    for n, row in enumerate(rows, start=1):
        yield row
        if n % PROGRESS_EVERY_ROWS == 0:
            job.done = n
            _save(job)
    job.done = job.total


def export_job_run(*, job_id: str) -> ExportJob:
    """Build the job's file, reporting progress as rows are written; audit it once complete."""
    job = ExportJob(**json.loads(_state_path(job_id).read_text()))
    entity = Entity.objects.get(pk=job.entity_id)
    user = User.objects.get(pk=job.user_id)
    job.state = "running"
    _save(job)
    try:
        header, rows, text_columns, total = _report(job, entity)
        job.total = total
        handle, size = reports.xlsx_file(job.report, header, _counted(job, rows), text_columns=text_columns)
        with handle, open(result_path(job), "wb") as out:
            shutil.copyfileobj(handle, out)
    except Exception:
        job.state, job.error = "failed", "The file could not be built; please try again."
        _save(job)
        raise
    stamp = reports.local_today(entity).isoformat()
    job.state, job.size, job.filename = "ready", size, f"{job.report}-{stamp}.{job.fmt}"
    reports.report_export_record(actor=user, entity=entity, report=job.report, fmt=job.fmt,
                                 filters=job.params.get("record", {}), rows=job.total, ip_address=job.ip_address)
    _save(job)
    return job
