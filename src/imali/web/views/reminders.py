"""Automatic SMS and MIS SMS screens: the automatic batches' setup (general and arrears, each under
its own right), the MIS SMS setup with each stream's recipients, and the MIS Detail report."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import path

from imali.core.dates import DAY_RANGE_MESSAGE, day_in_range
from imali.core.forms import (
    StrictIntegerFormField,
    StrictModelChoiceField,
    StrictModelMultipleChoiceField,
)
from imali.core.phones import display_phone
from imali.messaging import reports
from imali.messaging.models import MessageType, OutboxStatus
from imali.reminders import selectors, services
from imali.reminders.errors import NO_HOME_BRANCH
from imali.reminders.models import MisRecipient, MisStream, RunKind
from imali.tenancy.models import User
from imali.tenancy.rights import Right

from ..access import right_required
from ..forms import IsoDateInput, MoneyFormField, apply_service_errors, form_status

NAV_ITEMS = [
    ("Automatic SMS", "web:reminders_automatic", Right.MAXSMS_GENERAL_SETUP, "Messaging"),
    ("Automatic arrears SMS", "web:reminders_arrears", Right.MAXSMS_ARREARS_SETUP, "Messaging"),
    ("MIS SMS", "web:reminders_mis", Right.MAXSMS_GENERAL_SETUP, "Messaging"),
    ("MIS detail", "web:reminders_mis_detail", Right.REPORT_MIS_DETAIL, "Reports"),
]

PAGE_SIZE = 50


class TimeInput(forms.TimeInput):
    input_type = "time"

    def __init__(self, **kwargs):
        super().__init__(format="%H:%M", **kwargs)


class AutomaticGeneralForm(forms.Form):
    run_at = forms.TimeField(label="Send at (local time)", widget=TimeInput())
    due_enabled = forms.BooleanField(required=False, label="Payment-due reminders")
    due_days_before = StrictIntegerFormField(min_value=1, max_value=30, label="Days before the due date")
    received_enabled = forms.BooleanField(required=False, label="Payment received")
    birthday_enabled = forms.BooleanField(required=False, label="Birthday greetings")


class AutomaticArrearsForm(forms.Form):
    arrears_enabled = forms.BooleanField(required=False, label="Payment arrears")
    arrears_minimum = MoneyFormField(label="Minimum arrears amount")
    arrears_repeat_days = StrictIntegerFormField(min_value=1, max_value=90, label="Remind again after (days)")


def _part_label(part: str) -> str:
    """A run's part in people's words: the message type, the MIS stream, or the branch."""
    if part in MessageType.values:
        return MessageType(part).label
    if part in MisStream.values:
        return MisStream(part).label
    if part.startswith("branch:"):
        code = part.split(":", 1)[1]
        return f"{MisStream.BRANCH.label}: " + ("recipients without a home branch" if code == NO_HOME_BRANCH else code)
    return part


def _runs(request, kind: str):
    """The entity's recent runs of `kind`, each with its parts labelled."""
    runs = [r for r in selectors.recent_runs(entity=request.entity) if r.kind == kind]
    for run in runs:
        run.parts = [(_part_label(part), result) for part, result in run.results.items()]
    return runs


def _automatic_page(request, *, form_class, fields, right_label: str, done: str, title: str):
    setup = selectors.automatic_setup_of(entity=request.entity)
    form = form_class(request.POST or None, initial={f: getattr(setup, f) for f in fields})
    if request.method == "POST" and form.is_valid():
        try:
            services.automatic_setup_update(actor=request.user, entity=request.entity, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"{title} saved.")
            return redirect(done)
    return render(request, "web/reminders/automatic.html", {
        "form": form, "setup": setup, "title": title, "right_label": right_label,
        "runs": _runs(request, RunKind.AUTOMATIC)}, status=form_status(form))


@right_required(Right.MAXSMS_GENERAL_SETUP)
def automatic_view(request):
    return _automatic_page(request, form_class=AutomaticGeneralForm, fields=services.GENERAL_FIELDS,
                           right_label=Right.MAXSMS_GENERAL_SETUP.label, done="web:reminders_automatic",
                           title="Automatic SMS setup")


@right_required(Right.MAXSMS_ARREARS_SETUP)
def arrears_view(request):
    return _automatic_page(request, form_class=AutomaticArrearsForm, fields=services.ARREARS_FIELDS,
                           right_label=Right.MAXSMS_ARREARS_SETUP.label, done="web:reminders_arrears",
                           title="Automatic arrears SMS setup")


class UserChoices(StrictModelMultipleChoiceField):
    def label_from_instance(self, obj: User) -> str:
        return f"{obj} ({display_phone(obj.cellphone)})" if obj.cellphone else f"{obj} (no cellphone)"


class MisForm(forms.Form):
    run_at = forms.TimeField(label="Send at (local time)", widget=TimeInput())

    def __init__(self, *args, entity, **kwargs):
        super().__init__(*args, **kwargs)
        users = User.objects.filter(entity=entity, is_active=True).order_by("first_name", "last_name", "username")
        for stream, label in MisStream.choices:
            self.fields[f"{stream}_enabled"] = forms.BooleanField(required=False, label=f"Send {label}")
            self.fields[f"{stream}_recipients"] = UserChoices(
                queryset=users, required=False, label=f"{label}: recipients", widget=forms.CheckboxSelectMultiple,
                help_text="Users with a cellphone" + (" (each gets their home branch's figures)"
                                                      if stream == MisStream.BRANCH else ""))

    @property
    def fieldsets(self):
        return [("", [self["run_at"]]),
                *((label, [self[f"{s}_enabled"], self[f"{s}_recipients"]]) for s, label in MisStream.choices)]


@right_required(Right.MAXSMS_GENERAL_SETUP)
def mis_view(request):
    entity = request.entity
    setup = selectors.mis_setup_of(entity=entity)
    chosen: dict[str, list[int]] = {}
    for stream, user_id in MisRecipient.objects.filter(entity=entity).values_list("stream", "user_id"):
        chosen.setdefault(stream, []).append(user_id)
    initial = {"run_at": setup.run_at}
    for stream in MisStream.values:
        initial[f"{stream}_enabled"] = setup.enabled(stream)
        initial[f"{stream}_recipients"] = chosen.get(stream, [])
    form = MisForm(request.POST or None, entity=entity, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            services.mis_setup_update(
                actor=request.user, entity=entity,
                data={k: v for k, v in data.items() if not k.endswith("_recipients")},
                recipients={s: [u.pk for u in data[f"{s}_recipients"]] for s in MisStream.values})
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "MIS SMS setup saved.")
            return redirect("web:reminders_mis")
    return render(request, "web/reminders/mis.html", {"form": form, "setup": setup, "runs": _runs(request, RunKind.MIS)}, status=form_status(form))


class MisDetailForm(forms.Form):
    start = forms.DateField(required=False, label="From", widget=IsoDateInput())
    end = forms.DateField(required=False, label="To", widget=IsoDateInput())
    stream = forms.ChoiceField(required=False, choices=[("", "Any stream"), *MisStream.choices])
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *OutboxStatus.choices])
    user = StrictModelChoiceField(required=False, queryset=None, empty_label="Any recipient", label="Recipient")

    def __init__(self, *args, entity, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = User.objects.filter(entity=entity).order_by("first_name", "last_name", "username")

    def _day(self, name: str):
        day = self.cleaned_data.get(name)
        if day is not None and not day_in_range(day):
            raise forms.ValidationError(DAY_RANGE_MESSAGE, code="out_of_range")
        return day

    def clean_start(self):
        return self._day("start")

    def clean_end(self):
        return self._day("end")

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", "The end date is before the start date.")
        return data

    def filters(self) -> selectors.MisDetailFilters:
        d = self.cleaned_data
        return selectors.MisDetailFilters(date_from=d.get("start"), date_to=d.get("end"), stream=d.get("stream") or None,
                                          status=d.get("status") or None, user_id=d["user"].pk if d.get("user") else None)


MIS_DETAIL_HEADER = ["Date", "Time", "Stream", "Recipient", "Number", "Message", "Status", "Segments", "Credits", "Response"]
_STREAMS = dict(MisStream.choices)


def _mis_rows(messages_, zone):
    for m in messages_:
        local = m.created_at.astimezone(zone)
        yield [local.date(), local.strftime("%H:%M:%S"), _STREAMS.get(selectors.stream_of_key(m.idempotency_key), ""),
               str(m.user) if m.user_id else "", m.number, m.text, m.get_status_display(), m.segments, m.credits, m.error]


@right_required(Right.REPORT_MIS_DETAIL, methods=("GET", "HEAD"))
def mis_detail_view(request):
    """MIS Detail: the MIS SMS sent to the entity's users, with filters, and a CSV export (audited)."""
    entity = request.entity
    form = MisDetailForm(request.GET, entity=entity)
    valid = form.is_valid()
    zone = reports.entity_zone(entity)
    page = None
    if valid:
        listed = selectors.mis_detail_list(entity=entity, filters=form.filters())
        if request.GET.get("export") == "csv":
            from .messaging_reports import export_response

            count = listed.count()
            record = {k: (v.isoformat() if isinstance(v, dt.date) else v)
                      for k, v in vars(form.filters()).items() if v not in (None, "")}
            return export_response(request, report="mis-detail", fmt="csv", header=MIS_DETAIL_HEADER,
                                   rows=_mis_rows(listed.iterator(chunk_size=2000), zone), text_columns=frozenset({3, 5, 9}),
                                   filters=record, row_count=count)
        page = Paginator(listed, PAGE_SIZE).get_page(request.GET.get("page"))
        page.rows = list(_mis_rows(page.object_list, zone))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("export", None)
    return render(request, "web/reminders/mis_detail.html", {"form": form, "page": page, "query": query.urlencode(),
                                                             "header": MIS_DETAIL_HEADER})


urlpatterns = [
    path("messaging/automatic/", automatic_view, name="reminders_automatic"),
    path("messaging/automatic/arrears/", arrears_view, name="reminders_arrears"),
    path("messaging/mis/", mis_view, name="reminders_mis"),
    path("reports/mis-detail/", mis_detail_view, name="reminders_mis_detail"),
]
