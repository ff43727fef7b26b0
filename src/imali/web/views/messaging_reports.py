"""Messaging reports: credits and their usage (with messages per day and the delivery rate), the
SMS Detail report and the process log, each report with streamed CSV and XLSX exports."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods

from imali.core.forms import StrictIntegerFormField, StrictModelChoiceField
from imali.messaging import reports
from imali.messaging.credits import (
    credit_account_get,
    credit_settings_update,
    credit_usage,
    month_start,
)
from imali.messaging.models import Channel, CreditEntry, MessageType, OutboxMessage, OutboxStatus
from imali.messaging.selectors import SCHEDULED, is_scheduled, scheduled_response
from imali.tenancy.models import Entity, User
from imali.tenancy.rights import Right

from .. import export_jobs
from ..access import client_ip, may_use, right_required
from ..charts import stacked_bar_chart_svg
from ..forms import IsoDateInput, apply_service_errors, form_status
from ..live import SMS_NOT_FINAL, Poll, poll_for, polled_ids
from ..tasks import run_export_job

NAV_ITEMS = [
    ("SMS credits", "web:messaging_credits", Right.MAXSMS_GENERAL_SETUP, "Messaging"),
    ("Email credits", "web:messaging_email_credits", Right.MAXMAIL_GENERAL_SETUP, "Messaging"),
    ("SMS detail", "web:messaging_outbox", Right.REPORT_SMS_DETAIL, "Reports"),
    ("Process log", "web:messaging_process_log", Right.VIEW_LOGS, "Reports"),
]

PAGE_SIZE = 50
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class CreditSettingsForm(forms.Form):
    monthly_limit = StrictIntegerFormField(required=False, min_value=0, help_text="Empty: no monthly limit")
    low_warning_amount = StrictIntegerFormField(min_value=0, initial=0, label="Low-credit warning amount")
    low_warning_user = StrictModelChoiceField(queryset=User.objects.none(), required=False, label="Low-credit email user")

    def __init__(self, *args, entity: Entity, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["low_warning_user"].queryset = User.objects.filter(entity=entity, is_active=True)


class DateRangeForm(forms.Form):
    start = forms.DateField(required=False, widget=IsoDateInput())
    end = forms.DateField(required=False, widget=IsoDateInput())

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", "The end date is before the start date.")
        return data


class UsagePeriodForm(DateRangeForm):
    """The usage screen's period: the last 30 local days unless chosen, at most 366 days."""

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        start, end = data.get("start"), data.get("end")
        if start and end and (end - start).days + 1 > reports.CHART_MAX_DAYS:
            self.add_error("start", f"Choose at most {reports.CHART_MAX_DAYS} days.")
        return data


def _stream(chunks, *, filename: str, content_type: str, size: int | None = None) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    if size is not None:
        response["Content-Length"] = str(size)
    return response


def export_response(request, *, report: str, fmt: str, header, rows, text_columns, filters: dict, row_count: int):
    """Audit the export, then stream it: CSV as rows arrive, XLSX from a spooled file. The XLSX file
    is complete before it is audited, so a file that failed to build is never recorded as taken."""
    stamp = reports.local_today(request.entity).isoformat()
    if fmt == "csv":
        body, size, filename, content_type = (reports.csv_stream(header, rows, text_columns=text_columns), None,
                                              f"{report}-{stamp}.csv", "text/csv; charset=utf-8")
    else:
        handle, size = reports.xlsx_file(report, header, rows, text_columns=text_columns)
        body, filename, content_type = reports.file_stream(handle), f"{report}-{stamp}.xlsx", XLSX_TYPE
    reports.report_export_record(actor=request.user, entity=request.entity, report=report, fmt=fmt, filters=filters,
                                 rows=row_count, ip_address=client_ip(request))
    return _stream(body, filename=filename, content_type=content_type, size=size)


def export_format(request) -> str | None:
    """The export asked for: CSV streams on a GET (`?export=csv`); an XLSX file is built, or a job
    started, only on a POST (`export=xlsx` in the body, the filters in the query string)."""
    if request.method == "POST":
        return "xlsx" if request.POST.get("export") == "xlsx" else None
    return "csv" if request.GET.get("export") == "csv" else None


def export_or_job(request, *, report: str, fmt: str, snapshot: reports.ExportSnapshot, header, rows, text_columns,
                  filters: dict, job_params: dict):
    """The one way the report screens export: CSV streamed; XLSX streamed from a spooled file when
    small, else a background job (`job_params` are what export_jobs needs to read the rows again)
    whose page shows its progress and offers the file."""
    if fmt == "xlsx" and snapshot.rows >= export_jobs.BACKGROUND_FROM_ROWS:
        return _start_export_job(request, report=report, total=snapshot.rows, params={
            **job_params, "record": filters, "rows": snapshot.rows, "up_to_id": snapshot.up_to_id})
    return export_response(request, report=report, fmt=fmt, header=header, rows=rows, text_columns=text_columns,
                           filters=filters, row_count=snapshot.rows)


# --- Credits and usage ------------------------------------------------------------------------

def _credit_settings(request, *, channel: str, done: str):
    """The channel's credit settings form (monthly limit, low-credit warning amount and user);
    (form, redirect) once saved, (form with its errors, None) otherwise."""
    account = credit_account_get(entity=request.entity, channel=channel)
    form = CreditSettingsForm(request.POST or None, entity=request.entity, initial={
        "monthly_limit": account.monthly_limit, "low_warning_amount": account.low_warning_amount,
        "low_warning_user": account.low_warning_user_id})
    if request.method == "POST" and form.is_valid():
        try:
            credit_settings_update(actor=request.user, entity=request.entity, channel=channel, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"{Channel(channel).label} credit settings saved.")
            return form, redirect(done)
    return form, None


@right_required(Right.MAXSMS_GENERAL_SETUP)
def credits_view(request):
    entity = request.entity
    form, saved = _credit_settings(request, channel=Channel.SMS, done="web:messaging_credits")
    if saved:
        return saved
    today = reports.local_today(entity)
    period = UsagePeriodForm(request.GET or None)
    first, last = today - dt.timedelta(days=reports.CHART_DEFAULT_DAYS - 1), today
    if period.is_valid():
        first = period.cleaned_data["start"] or (period.cleaned_data["end"] or today) - dt.timedelta(days=reports.CHART_DEFAULT_DAYS - 1)
        last = period.cleaned_data["end"] or max(first, today)
        if (last - first).days + 1 > reports.CHART_MAX_DAYS:
            last = first + dt.timedelta(days=reports.CHART_MAX_DAYS - 1)
    if not period.is_bound:
        period = UsagePeriodForm(initial={"start": first, "end": last})
    start, end = reports.local_range(entity, first, last)
    usage = {channel: credit_usage(entity=entity, channel=channel, start=start, end=end) for channel in Channel.values}
    daily = reports.messages_per_day(entity=entity, first=first, last=last)
    sent_this_month = reports.sms_sent_count(entity=entity, start=month_start(entity))
    entries = (CreditEntry.objects.filter(entity=entity, account__channel=Channel.SMS)
               .select_related("actor").order_by("-id")[:50])
    return render(request, "web/messaging/credits.html", {
        "form": form, "period": period, "first": first, "last": last, "usage": usage, "entries": entries,
        "daily": daily, "sent_this_month": sent_this_month, "chart": _usage_chart(daily), "series": reports.SERIES,
        "rate_definition": reports.DELIVERY_RATE_DEFINITION}, status=form_status(form))


# Told apart also by people with red-green colour blindness (Okabe-Ito); the legend uses the same.
SERIES_COLOURS = {"queued": "#999999", "sent": "#56b4e9", "delivered": "#009e73", "failed": "#d55e00",
                  "cancelled": "#f0e442"}


def _usage_chart(daily: reports.DailyUsage):
    """Messages per local day by status as a stacked bar chart (pygal, inline SVG)."""
    return stacked_bar_chart_svg(
        labels=[d.day.strftime("%m-%d") for d in daily.days],
        series=[(s.label, SERIES_COLOURS[s.key], [d.counts[s.key] for d in daily.days]) for s in reports.SERIES],
        tooltips=[d.day.strftime("%a %Y-%m-%d") for d in daily.days], label_every=-(-len(daily.days) // 12))


@right_required(Right.MAXMAIL_GENERAL_SETUP)
def email_credits_view(request):
    """MAXMAIL General Setup: the email ledger's monthly limit, low-credit warning amount and the
    user the warning goes to (DOMAIN §3), with credits left, used this month and in a period."""
    entity = request.entity
    form, saved = _credit_settings(request, channel=Channel.EMAIL, done="web:messaging_email_credits")
    if saved:
        return saved
    today = reports.local_today(entity)
    period = DateRangeForm(request.GET or None)
    first, last = today.replace(day=1), today
    if period.is_valid():
        first = period.cleaned_data["start"] or first
        last = period.cleaned_data["end"] or max(first, today)
    if not period.is_bound:
        period = DateRangeForm(initial={"start": first, "end": last})
    start, end = reports.local_range(entity, first, last)
    usage = credit_usage(entity=entity, channel=Channel.EMAIL, start=start, end=end)
    entries = (CreditEntry.objects.filter(entity=entity, account__channel=Channel.EMAIL)
               .select_related("actor").order_by("-id")[:50])
    return render(request, "web/messaging/email_credits.html", {
        "form": form, "period": period, "first": first, "last": last, "usage": usage, "entries": entries}, status=form_status(form))


# --- SMS Detail -------------------------------------------------------------------------------

class SmsDetailForm(DateRangeForm):
    message_type = forms.ChoiceField(required=False, label="Type", choices=[("", "Any type"), *MessageType.choices])
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *OutboxStatus.choices])
    branch = StrictModelChoiceField(required=False, queryset=None, empty_label="Any branch")
    user = forms.ChoiceField(required=False, choices=())
    number = forms.CharField(required=False, max_length=16)

    field_order = ["message_type", "start", "end", "status", "branch", "user", "number"]

    def __init__(self, *args, entity: Entity, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["start"].label, self.fields["end"].label = "From", "To"
        self.fields["branch"].queryset = entity.branches.order_by("name")
        users = User.objects.filter(entity=entity).order_by("first_name", "last_name", "username")
        self.fields["user"].choices = [("", "Anyone"), (reports.SYSTEM_USER, "System (automated)"),
                                       *((str(u.pk), str(u)) for u in users)]

    def filters(self) -> reports.SmsDetailFilters:
        data = self.cleaned_data
        user = data.get("user") or None
        return reports.SmsDetailFilters(
            message_type=data.get("message_type") or None, date_from=data.get("start"), date_to=data.get("end"),
            status=data.get("status") or None, branch_id=data["branch"].pk if data.get("branch") else None,
            user=user if user in (None, reports.SYSTEM_USER) else int(user), number=data.get("number") or None)


@right_required(Right.REPORT_SMS_DETAIL, methods=("GET", "HEAD", "POST"))
def outbox_view(request):
    entity = request.entity
    form = SmsDetailForm(request.GET, entity=entity)
    # A filter that does not validate (another entity's branch or user, a bad date) shows its
    # error and no rows: never the unfiltered report, never an export of everything.
    valid = form.is_valid()
    filters = form.filters() if valid else None
    fmt = export_format(request)
    if fmt and valid:
        snapshot = reports.sms_detail_snapshot(entity=entity, filters=filters)
        rows = reports.sms_detail_export_rows(entity=entity, filters=filters, snapshot=snapshot)
        return export_or_job(request, report="sms-detail", fmt=fmt, snapshot=snapshot, header=reports.SMS_DETAIL_HEADER,
                             rows=rows, text_columns=reports.SMS_DETAIL_TEXT_COLUMNS, filters=filters.as_record(),
                             job_params={"filters": filters.as_record()})
    page = None
    if valid:
        paginator = Paginator(reports.sms_detail_list(entity=entity, filters=filters), PAGE_SIZE)
        paginator.count = reports.sms_detail_count(entity=entity, filters=filters)
        page = paginator.get_page(request.GET.get("page"))
        page.object_list = list(reports.sms_detail_rows(page.object_list, entity=entity))
    poll = _outbox_poll([m.id for m in page.object_list if m.status in SMS_NOT_FINAL] if page is not None else [])
    return render(request, "web/messaging/outbox.html", {"form": form, "page": page, "query": _query_without_paging(request),
                                                         "poll": poll})


def _outbox_poll(pending_ids) -> Poll:
    return poll_for("sms-status-poll", reverse("web:messaging_outbox_status"), pending_ids)


@right_required(Right.REPORT_SMS_DETAIL, methods=("GET",))
def outbox_status_view(request):
    """SMS detail's live fragment: status and response of the asked messages of the entity, and
    the poller for those still on their way; one query."""
    found = list(OutboxMessage.objects.filter(entity=request.entity, channel=Channel.SMS, pk__in=polled_ids(request))
                 .values_list("id", "status", "error", "scheduled_for"))
    now, zone = timezone.now(), reports.entity_zone(request.entity)
    updates = [{"id": pk, "status": SCHEDULED if is_scheduled(status=status, scheduled_for=at, now=now) else OutboxStatus(status).label,
                "response": scheduled_response(scheduled_for=at, tz=zone)
                if is_scheduled(status=status, scheduled_for=at, now=now) else error}
               for pk, status, error, at in found]
    return render(request, "web/messaging/_sms_status_updates.html", {
        "updates": updates, "poll": _outbox_poll([pk for pk, status, _, _ in found if status in SMS_NOT_FINAL])})


def _query_without_paging(request) -> str:
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("export", None)
    return query.urlencode()


# --- Process log ------------------------------------------------------------------------------

PERIODS = (("today", "Today"), ("yesterday", "Yesterday"), ("all", "All"), ("range", "Dates"))


@right_required(Right.VIEW_LOGS, methods=("GET", "HEAD", "POST"))
def process_log_view(request):
    entity = request.entity
    today = reports.local_today(entity)
    period = request.GET.get("period", "today")
    if period not in dict(PERIODS):
        period = "today"
    form = DateRangeForm(request.GET if period == "range" else None)
    valid = True
    if period == "today":
        start, end = reports.local_range(entity, today, today)
    elif period == "yesterday":
        yesterday = today - dt.timedelta(days=1)
        start, end = reports.local_range(entity, yesterday, yesterday)
    elif period == "range":
        valid = form.is_valid()
        start, end = reports.local_range(entity, form.cleaned_data["start"], form.cleaned_data["end"]) if valid else (None, None)
    else:
        start = end = None
    fmt = export_format(request)
    if fmt and valid:
        snapshot = reports.process_log_snapshot(entity=entity, start=start, end=end)
        filters = {"period": period, "start": start.isoformat() if start else None, "end": end.isoformat() if end else None}
        rows = reports.process_log_export_rows(entity=entity, start=start, end=end, snapshot=snapshot)
        return export_or_job(request, report="process-log", fmt=fmt, snapshot=snapshot, header=reports.PROCESS_LOG_HEADER,
                             rows=rows, text_columns=reports.PROCESS_LOG_TEXT_COLUMNS, filters=filters,
                             job_params=filters)
    page = None
    if valid:
        logs = reports.process_log_filtered(entity=entity, start=start, end=end).select_related("actor").order_by("-started_at", "-id")
        page = Paginator(logs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/messaging/process_log.html", {
        "page": page, "period": period, "tabs": PERIODS[:3], "form": form, "query": _query_without_paging(request)})


# --- Big exports in the background, with progress -----------------------------------------------

def _start_export_job(request, *, report: str, total: int, params: dict):
    job = export_jobs.export_job_create(entity=request.entity, user=request.user, report=report, fmt="xlsx",
                                        params=params, total=total, ip_address=client_ip(request))
    run_export_job(job.id)
    return redirect(_job_url("web:messaging_export_job", job))


def _job_url(name: str, job: export_jobs.ExportJob) -> str:
    # The job travels as ?job=: its id is a random token, not an object of the database.
    return f"{reverse(name)}?{urlencode({'job': job.id})}"


def _job(request) -> export_jobs.ExportJob:
    if request.entity is None:
        raise Http404("No such export.")
    try:
        job = export_jobs.export_job_get(job_id=request.GET.get("job", ""), entity=request.entity, user=request.user)
    except export_jobs.JobNotFound as exc:
        raise Http404("No such export.") from exc
    if not may_use(request, job.right):
        raise PermissionDenied("You do not have the right to use this report.")
    return job


def _job_poll(job: export_jobs.ExportJob) -> Poll:
    url = "" if job.finished else _job_url("web:messaging_export_job_progress", job)
    return Poll(element_id="export-progress", url=url, seconds=1)


def _job_context(request) -> dict:
    job = _job(request)
    return {"job": job, "poll": _job_poll(job), "download_url": _job_url("web:messaging_export_job_download", job)}


@login_required
@require_http_methods(["GET", "HEAD"])
def export_job_view(request):
    return render(request, "web/messaging/export_job.html", _job_context(request))


@login_required
@require_http_methods(["GET"])
def export_job_progress_view(request):
    """The progress fragment: replaces itself every second until the file is ready (or failed)."""
    return render(request, "web/messaging/_export_progress.html", _job_context(request))


@login_required
@require_http_methods(["GET"])
def export_job_download_view(request):
    job = _job(request)
    if job.state != "ready":
        raise Http404("The file is not ready.")
    handle = open(export_jobs.result_path(job), "rb")  # noqa: SIM115 - closed by the stream when sent
    return _stream(reports.file_stream(handle), filename=job.filename, content_type=XLSX_TYPE, size=job.size)


urlpatterns = [
    path("messaging/exports/", export_job_view, name="messaging_export_job"),
    path("messaging/exports/progress/", export_job_progress_view, name="messaging_export_job_progress"),
    path("messaging/exports/download/", export_job_download_view, name="messaging_export_job_download"),
    path("messaging/credits/", credits_view, name="messaging_credits"),
    path("messaging/email-credits/", email_credits_view, name="messaging_email_credits"),
    path("messaging/sms/", outbox_view, name="messaging_outbox"),
    path("messaging/sms/status/", outbox_status_view, name="messaging_outbox_status"),
    path("messaging/process-log/", process_log_view, name="messaging_process_log"),
]
