"""Client marketing ("Processing: Client Marketing", seed 002): filters → Collect data (a background
run with a progress bar) → the data set, paged and sortable → export (CSV, XLSX, streamed) or send
an SMS / email custom message to every row or the rows ticked (preview first). The runs are listed
under Processing → Logs → Client Marketing ("Processing: View Logs")."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from imali.core.formatting import counted, format_money
from imali.core.forms import StrictModelChoiceField, request_ids
from imali.marketing import selectors
from imali.marketing.columns import shown_columns
from imali.marketing.export import dataset_csv, dataset_xlsx
from imali.marketing.filters import DataSetFilterForm
from imali.marketing.models import CustomMessage, DataSet, MessageChannel
from imali.marketing.sending import MAX_TICKED, dropped_rows, send_list, send_preview, send_start
from imali.marketing.services import (
    custom_message_save,
    dataset_export_record,
    dataset_filters_shown,
    dataset_rerun,
    dataset_start,
)
from imali.messaging import policy, reports
from imali.messaging.templating import MERGE_FIELDS
from imali.tenancy.rights import Right

from ..access import client_ip, may_use, right_required
from ..forms import apply_service_errors, form_status
from ..live import Poll
from .messaging_reports import XLSX_TYPE

NAV_ITEMS = [
    ("Client marketing", "web:marketing", Right.CLIENT_MARKETING, "Clients"),
    ("Marketing messages", "web:marketing_messages", Right.CLIENT_MARKETING, "Messaging"),
    ("Client marketing logs", "web:marketing_logs", Right.VIEW_LOGS, "Reports"),
]
PAGE_ROWS = 50


def _dataset(request, dataset_id: int) -> DataSet:
    try:
        return selectors.dataset_get(entity=request.entity, dataset_id=dataset_id)
    except DataSet.DoesNotExist:
        raise Http404("No such data set in your entity.") from None


@right_required(Right.CLIENT_MARKETING)
def marketing_view(request):
    """The filters and Collect data; the user's recent data sets below."""
    entity = request.entity
    form = DataSetFilterForm(request.POST or None, entity=entity, initial={"overdues": "include"})
    if request.method == "POST" and form.is_valid():
        try:
            dataset = dataset_start(actor=request.user, entity=entity, filters=form.filters())
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Collecting the data set in the background; this page shows how far it is.")
            return redirect("web:marketing_dataset", dataset_id=dataset.pk)
    recent = selectors.dataset_list(entity=entity).filter(created_by=request.user)[:10]
    return render(request, "web/marketing/index.html", {
        "form": form, "recent": recent, "consent_ignored": entity.marketing_consent_not_required}, status=form_status(form))


def _progress(dataset: DataSet) -> dict:
    url = "" if dataset.finished else reverse("web:marketing_dataset_progress", kwargs={"dataset_id": dataset.pk})
    return {"dataset": dataset, "poll": Poll(element_id="dataset-progress", url=url, seconds=1)}


class SendForm(forms.Form):
    message = StrictModelChoiceField(queryset=CustomMessage.objects.none(), empty_label=None, label="Custom message")
    recipients = forms.ChoiceField(choices=[("all", "Every row of the data set"), ("ticked", "Only the rows ticked")],
                                   initial="all", widget=forms.RadioSelect)
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=64)

    def __init__(self, *args, entity, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["message"].queryset = selectors.custom_message_list(entity=entity, active_only=True)


@right_required(Right.CLIENT_MARKETING, methods=("GET", "HEAD"))
def dataset_view(request, dataset_id: int):
    """The data set: its filters, its progress while it runs, then its rows (paged, sortable by any
    column) with a tick box each, the exports and the send form."""
    dataset = _dataset(request, dataset_id)
    columns = shown_columns(with_settlement=dataset.with_settlement)
    sort = request.GET.get("sort", "")
    sort = sort if sort in {c.key for c in columns} else ""
    descending = request.GET.get("dir") == "desc"
    page = None
    if dataset.state == "done":
        rows = selectors.dataset_row_page(dataset=dataset, sort=sort, descending=descending)
        page = Paginator(rows.values_list("pk", *(c.key for c in columns)), PAGE_ROWS).get_page(request.GET.get("page"))
    headers = [(c, "?" + urlencode({"sort": c.key, "dir": "asc" if sort == c.key and descending else
                                    ("desc" if sort == c.key else "asc")})) for c in columns]
    table_rows = [(row[0], [_shown(c, v) for c, v in zip(columns, row[1:], strict=True)]) for row in page or ()]
    return render(request, "web/marketing/dataset.html", {
        **_progress(dataset), "filters": dataset_filters_shown(dataset=dataset), "columns": columns, "headers": headers,
        "page": page, "table_rows": table_rows, "sort": sort, "descending": descending,
        "send_form": SendForm(entity=request.entity, initial={"idempotency_key": uuid.uuid4().hex}),
        "sends": send_list(entity=request.entity, dataset=dataset)[:20]})


@right_required(Right.CLIENT_MARKETING, methods=("GET",))
def dataset_progress_view(request, dataset_id: int):
    """The progress bar's fragment, polled (htmx) until the data set is done."""
    return render(request, "web/marketing/_progress.html", _progress(_dataset(request, dataset_id)))


@require_POST
@right_required(Right.CLIENT_MARKETING)
def dataset_rerun_view(request, dataset_id: int):
    dataset = _dataset(request, dataset_id)
    try:
        again = dataset_rerun(actor=request.user, entity=request.entity, dataset_id=dataset.pk)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("web:marketing_dataset", dataset_id=dataset.pk)
    messages.success(request, "Running the same filters again on today's figures.")
    return redirect("web:marketing_dataset", dataset_id=again.pk)


_NUMERIC = frozenset({"money", "int", "pct"})


def _shown(column, value) -> tuple[bool, str]:
    """A cell as the screen shows it: money in the one format, dates ISO, flags in words."""
    if value is None:
        return column.kind in _NUMERIC, ""
    if column.kind == "money":
        return True, format_money(value)
    if column.kind == "bool":
        return False, "Yes" if value else "No"
    if column.kind == "date":
        return False, value.isoformat()
    if column.kind == "int" and column.key != "client_number":
        return True, f"{value:,}"
    return column.kind in _NUMERIC, str(value)


@right_required(Right.CLIENT_MARKETING, methods=("GET",))
def dataset_export_view(request, dataset_id: int):
    """The data set as CSV (streamed as rows are read) or XLSX (written as rows are read into a
    spooled file, marketing.export): a million-row data set never sits in memory. Audited."""
    dataset = _dataset(request, dataset_id)
    fmt = request.GET.get("format", "csv")
    if fmt not in ("csv", "xlsx"):
        raise Http404("Export as csv or xlsx.")
    if dataset.state != "done":
        raise Http404("The data set has not finished collecting.")
    name = f"client-marketing-{dataset.pk}"
    if fmt == "csv":
        body, size = dataset_csv(dataset), None
        content_type, filename = "text/csv; charset=utf-8", f"{name}.csv"
    else:
        handle, size = dataset_xlsx(dataset)
        body, content_type, filename = reports.file_stream(handle), XLSX_TYPE, f"{name}.xlsx"
    dataset_export_record(actor=request.user, entity=request.entity, dataset=dataset, fmt=fmt, ip_address=client_ip(request))
    response = StreamingHttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    if size is not None:
        response["Content-Length"] = str(size)
    return response


@require_POST
@right_required(Right.CLIENT_MARKETING)
def dataset_send_view(request, dataset_id: int):
    """Preview (count, left out by reason, the text, credits needed against credits left), then
    Send or Back. The key made with the form travels to the send: a double click sends once."""
    dataset = _dataset(request, dataset_id)
    form = SendForm(request.POST, entity=request.entity)
    row_ids = request_ids(request.POST, "row", limit=MAX_TICKED) if request.POST.get("recipients") == "ticked" else []
    if "back" in request.POST:
        return redirect("web:marketing_dataset", dataset_id=dataset.pk)
    preview = None
    if form.is_valid():
        if form.cleaned_data["recipients"] == "ticked" and not row_ids:
            form.add_error("recipients", "Tick at least one row, or send to every row.")
        else:
            try:
                if "send" in request.POST:
                    send, repeated = send_start(actor=request.user, entity=request.entity, dataset_id=dataset.pk,
                                                message_id=form.cleaned_data["message"].pk, row_ids=row_ids,
                                                idempotency_key=f"ui:{form.cleaned_data['idempotency_key']}")
                    if repeated:
                        messages.info(request, "This send was made already; nothing more was sent.")
                    elif send.state == "failed":
                        messages.error(request, f"Nothing was sent: {send.error}")
                    elif send.background:
                        messages.success(request, "Sending in the background; the sends below show how far it is.")
                    else:
                        messages.success(request, f"{counted(send.queued, send.get_channel_display() + ' message')} queued, "
                                                  f"{counted(send.credits, 'credit')} used.")
                    return redirect("web:marketing_dataset", dataset_id=dataset.pk)
                preview = send_preview(actor=request.user, entity=request.entity, dataset_id=dataset.pk,
                                       message_id=form.cleaned_data["message"].pk, row_ids=row_ids)
            except ValidationError as exc:
                apply_service_errors(form, exc)
    return render(request, "web/marketing/send.html", {
        "dataset": dataset, "form": form, "preview": preview, "row_ids": row_ids, "window": policy.window_description()},
        status=form_status(form))


@right_required(Right.VIEW_LOGS, methods=("GET", "HEAD"))
def logs_view(request):
    """Processing → Logs → Client Marketing: every data set collected (who, when, filters, rows,
    how long, state) and every send from one."""
    entity = request.entity
    page = Paginator(selectors.dataset_list(entity=entity), 25).get_page(request.GET.get("page"))
    entries = [(d, dataset_filters_shown(dataset=d)) for d in page]
    return render(request, "web/marketing/logs.html", {
        "page": page, "entries": entries, "sends": send_list(entity=entity)[:25],
        "may_open": may_use(request, Right.CLIENT_MARKETING), "dropped_rows": dropped_rows})


class CustomMessageForm(forms.Form):
    channel = forms.ChoiceField(choices=MessageChannel.choices)
    name = forms.CharField(max_length=80)
    subject = forms.CharField(max_length=200, required=False, help_text="Email only.")
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), max_length=5000,
                           help_text="Merge fields: " + ", ".join(f"{{^{f}^}}" for f in MERGE_FIELDS if f != "OTP"))
    is_active = forms.BooleanField(required=False, initial=True, label="In use")


@right_required(Right.CLIENT_MARKETING)
def messages_view(request, custommessage_id: int | None = None):
    """The entity's named custom messages (SMS and email, many per channel); a new one or an edit.
    Saving needs MAXSMS / MAXMAIL Message Setup (checked by the service)."""
    entity = request.entity
    instance = None
    if custommessage_id is not None:
        instance = CustomMessage.objects.filter(entity=entity, pk=custommessage_id).first()
        if instance is None:
            raise Http404("No such custom message in your entity.")
    initial = ({"channel": instance.channel, "name": instance.name, "subject": instance.subject, "text": instance.text,
                "is_active": instance.is_active} if instance else {"is_active": True})
    form = CustomMessageForm(request.POST or None, initial=initial)
    if instance is not None:
        form.fields["channel"].disabled = True
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            saved = custom_message_save(actor=request.user, entity=entity, channel=data["channel"], name=data["name"],
                                        subject=data["subject"], text=data["text"], is_active=data["is_active"],
                                        message_id=instance.pk if instance else None)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Custom message '{saved.name}' saved.")
            return redirect("web:marketing_messages")
    return render(request, "web/marketing/messages.html", {
        "form": form, "instance": instance, "messages_list": selectors.custom_message_list(entity=entity)},
        status=form_status(form))


urlpatterns = [
    path("marketing/", marketing_view, name="marketing"),
    path("marketing/datasets/<int:dataset_id>/", dataset_view, name="marketing_dataset"),
    path("marketing/datasets/<int:dataset_id>/progress/", dataset_progress_view, name="marketing_dataset_progress"),
    path("marketing/datasets/<int:dataset_id>/rerun/", dataset_rerun_view, name="marketing_dataset_rerun"),
    path("marketing/datasets/<int:dataset_id>/export/", dataset_export_view, name="marketing_dataset_export"),
    path("marketing/datasets/<int:dataset_id>/send/", dataset_send_view, name="marketing_dataset_send"),
    path("marketing/logs/", logs_view, name="marketing_logs"),
    path("marketing/messages/", messages_view, name="marketing_messages"),
    path("marketing/messages/<int:custommessage_id>/", messages_view, name="marketing_message_edit"),
]
