"""Messaging reports: credits and their usage, the SMS Detail report and the process log."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import path
from django.utils import timezone

from imali.messaging.credits import credit_account_get, credit_settings_update, credit_usage
from imali.messaging.models import Channel, CreditEntry, OutboxStatus
from imali.messaging.selectors import outbox_list, process_log_list
from imali.tenancy.models import Entity, User
from imali.tenancy.rights import Right

from ..access import right_required
from ..forms import apply_service_errors

NAV_ITEMS = [
    ("SMS credits", "web:messaging_credits", Right.MAXSMS_GENERAL_SETUP, "Messaging"),
    ("SMS detail", "web:messaging_outbox", Right.REPORT_SMS_DETAIL, "Messaging"),
    ("Process log", "web:messaging_process_log", Right.VIEW_LOGS, "Messaging"),
]


def _local_range(entity: Entity, start: dt.date | None, end: dt.date | None):
    tz = zoneinfo.ZoneInfo(entity.time_zone)
    to_dt = lambda d: dt.datetime.combine(d, dt.time.min, tzinfo=tz)  # noqa: E731
    return (to_dt(start) if start else None, to_dt(end + dt.timedelta(days=1)) if end else None)


class CreditSettingsForm(forms.Form):
    monthly_limit = forms.IntegerField(required=False, min_value=0, help_text="Empty: no monthly limit")
    low_warning_amount = forms.IntegerField(min_value=0, initial=0, label="Low-credit warning amount")
    low_warning_user = forms.ModelChoiceField(queryset=User.objects.none(), required=False, label="Low-credit email user")

    def __init__(self, *args, entity: Entity, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["low_warning_user"].queryset = User.objects.filter(entity=entity, is_active=True)


class DateRangeForm(forms.Form):
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))


@right_required(Right.MAXSMS_GENERAL_SETUP)
def credits_view(request):
    entity = request.entity
    account = credit_account_get(entity=entity, channel=Channel.SMS)
    form = CreditSettingsForm(request.POST or None, entity=entity, initial={
        "monthly_limit": account.monthly_limit, "low_warning_amount": account.low_warning_amount,
        "low_warning_user": account.low_warning_user_id})
    if request.method == "POST" and form.is_valid():
        try:
            credit_settings_update(actor=request.user, entity=entity, channel=Channel.SMS, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "SMS credit settings saved.")
            return redirect("web:messaging_credits")
    period = DateRangeForm(request.GET or None)
    start = end = None
    if period.is_valid():
        start, end = _local_range(entity, period.cleaned_data["start"], period.cleaned_data["end"])
    usage = {channel: credit_usage(entity=entity, channel=channel, start=start, end=end) for channel in Channel.values}
    entries = CreditEntry.objects.filter(entity=entity).select_related("actor").order_by("-id")[:50]
    return render(request, "web/messaging/credits.html", {"form": form, "period": period, "usage": usage, "entries": entries})


@right_required(Right.REPORT_SMS_DETAIL, methods=("GET", "HEAD"))
def outbox_view(request):
    status = request.GET.get("status") or None
    if status not in OutboxStatus.values:
        status = None
    qs = outbox_list(entity=request.entity, status=status, number=request.GET.get("number") or None)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(request, "web/messaging/outbox.html", {"page": page, "statuses": OutboxStatus.choices, "status": status})


@right_required(Right.VIEW_LOGS, methods=("GET", "HEAD"))
def process_log_view(request):
    entity = request.entity
    today = timezone.localdate(timezone=zoneinfo.ZoneInfo(entity.time_zone))
    period = request.GET.get("period", "today")
    form = DateRangeForm(request.GET or None)
    if period == "today":
        start, end = _local_range(entity, today, today)
    elif period == "yesterday":
        y = today - dt.timedelta(days=1)
        start, end = _local_range(entity, y, y)
    elif period == "range" and form.is_valid():
        start, end = _local_range(entity, form.cleaned_data["start"], form.cleaned_data["end"])
    else:
        start = end = None
    page = Paginator(process_log_list(entity=entity, start=start, end=end), 50).get_page(request.GET.get("page"))
    return render(request, "web/messaging/process_log.html", {"page": page, "period": period, "form": form})


urlpatterns = [
    path("messaging/credits/", credits_view, name="messaging_credits"),
    path("messaging/sms/", outbox_view, name="messaging_outbox"),
    path("messaging/process-log/", process_log_view, name="messaging_process_log"),
]
