"""Manual message batches ("Processing: MAXSMS"): pick a type, give its criteria, Continue to the
preview (who it reaches, who is dropped and why, the text, segments, credits needed against
credits left), then Send or Back. A large batch runs on the Huey consumer and its page shows a
progress bar that updates itself."""

from __future__ import annotations

import uuid
from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from imali.batches import selectors
from imali.batches.models import BatchPreviewRun, MessageBatch
from imali.batches.services import (
    batch_preview_request,
    batch_refresh_if_died,
    batch_resume,
    batch_send,
    batch_text,
    criteria_description,
    dropped_rows,
    preview_of_run,
)
from imali.batches.types import CRITERIA, MARKETING_TYPES, MESSAGE_TYPE, RECIPIENTS, BatchType
from imali.clients.models import ClientStatus, Employer
from imali.core.forms import StrictModelChoiceField
from imali.core.localtime import local
from imali.loans.models import LoanStatus
from imali.messaging import policy
from imali.messaging.models import MessageType
from imali.tenancy.models import Branch
from imali.tenancy.rights import Right

from ..access import right_required
from ..forms import IsoDateInput, MoneyFormField, apply_service_errors, form_status
from ..live import Poll

IDEMPOTENCY_KEY_MAX = 64

NAV_ITEMS = [("Message batches", "web:batches", Right.MAXSMS_PROCESSING, "Messaging")]


class CriteriaForm(forms.Form):
    """Every criterion any type takes; each type's form keeps only its own (types.CRITERIA)."""

    due_from = forms.DateField(label="Instalments due from", widget=IsoDateInput())
    due_to = forms.DateField(label="Instalments due to", widget=IsoDateInput())
    min_arrears = MoneyFormField(allow_zero=True, required=False, label="Minimum arrears amount",
                                 help_text="Empty: any amount in arrears.")
    paid_from = forms.DateField(label="Payments from", widget=IsoDateInput())
    paid_to = forms.DateField(label="Payments to", widget=IsoDateInput())
    min_payment = MoneyFormField(allow_zero=True, required=False, label="Minimum payment",
                                 help_text="Empty: any payment.")
    employer = StrictModelChoiceField(queryset=Employer.objects.none(), required=False, empty_label="All employers")
    branch = StrictModelChoiceField(queryset=Branch.objects.none(), required=False, empty_label="All branches")
    client_status = forms.ChoiceField(choices=[("", "Any status"), *ClientStatus.choices], required=False)
    has_open_loan = forms.ChoiceField(choices=[("", "Either"), ("yes", "Yes"), ("no", "No")], required=False,
                                      label="Loan on the book")
    loan_status = forms.ChoiceField(choices=LoanStatus.choices, label="Loan status")
    # Bounded: the batch stores "ui:" and this key in a column of 120 (a longer key was a 500 on PostgreSQL).
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=IDEMPOTENCY_KEY_MAX)

    def __init__(self, *args, entity, batch_type: str, **kwargs):
        super().__init__(*args, **kwargs)
        keep = set(CRITERIA[batch_type]) | {"idempotency_key"}
        for name in list(self.fields):
            if name not in keep:
                del self.fields[name]
        if "employer" in self.fields:
            self.fields["employer"].queryset = Employer.objects.filter(entity=entity)
        if "branch" in self.fields:
            self.fields["branch"].queryset = Branch.objects.filter(entity=entity, is_active=True)

    def clean(self):
        cleaned = super().clean()
        if "idempotency_key" in self.errors:
            # A hidden field's error is shown nowhere by itself: say it where the form's errors are,
            # with the field's own reason (missing, too long, a NUL byte), not always "too long".
            codes = {e.code for e in self.errors.as_data()["idempotency_key"]}
            if codes == {"max_length"}:
                problem = f"must be at most {IDEMPOTENCY_KEY_MAX} characters"
            else:
                problem = "is missing or not usable (" + " ".join(self.errors["idempotency_key"]) + ")"
            self.add_error(None, f"The form's key (idempotency_key) {problem}: open the batch type again and send "
                                 "from there.")
        return cleaned

    def criteria(self) -> dict:
        data = {k: v for k, v in self.cleaned_data.items() if k != "idempotency_key"}
        for name in ("employer", "branch"):
            if name in data:
                data[name] = data[name].pk if data[name] is not None else None
        return data


def _batch_type(value: str) -> str:
    if value not in BatchType.values:
        raise Http404("No such batch type.")
    return value


@right_required(Right.MAXSMS_PROCESSING, methods=("GET", "HEAD"))
def batches_view(request):
    """The batch types to choose from and the batches sent, newest first."""
    entity = request.entity
    types = [(value, label, RECIPIENTS[value], MessageType(MESSAGE_TYPE[value]).label, value in MARKETING_TYPES)
             for value, label in BatchType.choices]
    page = Paginator(selectors.batch_list(entity=entity), 25).get_page(request.GET.get("page"))
    return render(request, "web/batches/index.html", {"types": types, "page": page})


@right_required(Right.MAXSMS_PROCESSING)
def batch_new_view(request):
    """Criteria → Continue → preview → Send or Back. The key made when the criteria are first
    shown travels through the preview to the send, so a double click or a resubmit sends once."""
    entity = request.entity
    # The type travels as ?type=: route arguments name objects of the entity only.
    batch_type = _batch_type(request.GET.get("type", ""))
    data = request.POST if request.method == "POST" else None
    form = CriteriaForm(data, entity=entity, batch_type=batch_type, initial={"idempotency_key": uuid.uuid4().hex})
    preview = None
    if request.method == "POST" and "back" not in request.POST and form.is_valid():
        try:
            if "send" in request.POST:
                sent = batch_send(actor=request.user, entity=entity, batch_type=batch_type, criteria=form.criteria(),
                                  idempotency_key=f"ui:{form.cleaned_data['idempotency_key']}")
                batch = sent.batch
                if sent.repeated:
                    messages.info(request, "This batch was sent already; nothing more was sent.")
                elif batch.state == "failed":
                    messages.error(request, f"The batch was not sent: {batch.error}")
                elif batch.background:
                    messages.success(request, "The batch is being sent in the background; this page shows how far it is.")
                else:
                    messages.success(request, f"{batch.queued} SMS{pluralize(batch.queued, 'es')} queued, "
                                              f"{batch.credits} credit{pluralize(batch.credits)} used.")
                return redirect("web:batch_detail", messagebatch_id=batch.pk)
            preview = batch_preview_request(actor=request.user, entity=entity, batch_type=batch_type,
                                            criteria=form.criteria(), form_key=form.cleaned_data["idempotency_key"])
            if isinstance(preview, BatchPreviewRun):
                # Many clients: the preview is made in the background; its page shows how far it is.
                return redirect("web:batch_preview_run", batchpreviewrun_id=preview.pk)
        except ValidationError as exc:
            apply_service_errors(form, exc)
            preview = None
    template = batch_text(entity=entity, batch_type=batch_type)
    return render(request, "web/batches/new.html", {
        "form": form, "preview": preview, "batch_type": batch_type, "type_label": BatchType(batch_type).label,
        "recipients_rule": RECIPIENTS[batch_type], "template": template, "marketing": batch_type in MARKETING_TYPES,
        "message_type": MESSAGE_TYPE[batch_type], "window": policy.window_description()}, status=form_status(form))


def _preview_run(request, batchpreviewrun_id: int) -> BatchPreviewRun:
    try:
        return selectors.preview_run_get(entity=request.entity, run_id=batchpreviewrun_id)
    except BatchPreviewRun.DoesNotExist:
        raise Http404("No such preview in your entity.") from None


def _preview_progress(run: BatchPreviewRun) -> dict:
    total = max(run.selected, 1)
    done = total if run.finished else min(total - 1, run.prepared)
    url = "" if run.finished else reverse("web:batch_preview_progress", kwargs={"batchpreviewrun_id": run.pk})
    return {"run": run, "total": total, "done": done, "percent": done * 100 // total,
            "poll": Poll(element_id="preview-progress", url=url, seconds=1)}


@right_required(Right.MAXSMS_PROCESSING, methods=("GET", "HEAD"))
def batch_preview_run_view(request, batchpreviewrun_id: int):
    """A large batch's preview: its progress while the consumer makes it, then the preview with
    Send and Back (which post the criteria and the form's key to the criteria page)."""
    run = _preview_run(request, batchpreviewrun_id)
    batch_type = run.batch_type
    context = {**_preview_progress(run), "batch_type": batch_type, "type_label": BatchType(batch_type).label,
               "recipients_rule": RECIPIENTS[batch_type], "marketing": batch_type in MARKETING_TYPES,
               "message_type": MESSAGE_TYPE[batch_type], "window": policy.window_description(), "preview": None}
    if run.state == "done":
        criteria = {k: v for k, v in run.criteria.items() if k != "today"}
        context.update(preview=preview_of_run(run=run),
                       form=CriteriaForm(entity=request.entity, batch_type=batch_type,
                                         initial={**criteria, "idempotency_key": run.form_key or uuid.uuid4().hex}),
                       form_action=f"{reverse('web:batch_new')}?type={batch_type}")
    return render(request, "web/batches/preview_run.html", context)


@right_required(Right.MAXSMS_PROCESSING, methods=("GET",))
def batch_preview_progress_view(request, batchpreviewrun_id: int):
    """The preview's progress fragment, polled (htmx); once made, the page reloads to show it."""
    run = _preview_run(request, batchpreviewrun_id)
    response = render(request, "web/batches/_preview_progress.html", _preview_progress(run))
    if run.state == "done":
        response["HX-Refresh"] = "true"
    return response


def _batch(request, messagebatch_id: int) -> MessageBatch:
    try:
        return batch_refresh_if_died(batch=selectors.batch_get(entity=request.entity, batch_id=messagebatch_id))
    except MessageBatch.DoesNotExist:
        raise Http404("No such batch in your entity.") from None


def _progress(batch: MessageBatch) -> dict:
    written = selectors.batch_written(batch=batch)
    total = max(batch.selected, batch.prepared, 1) * 2
    done = total if batch.finished else min(total - 1, batch.prepared + written)
    url = "" if batch.finished else reverse("web:batch_progress", kwargs={"messagebatch_id": batch.pk})
    return {"batch": batch, "written": written, "total": total, "done": done, "percent": done * 100 // total,
            "poll": Poll(element_id="batch-progress", url=url, seconds=1),
            "dropped": dropped_rows(batch.dropped_reasons or {})}


@right_required(Right.MAXSMS_PROCESSING, methods=("GET", "HEAD"))
def batch_detail_view(request, messagebatch_id: int):
    batch = _batch(request, messagebatch_id)
    criteria = {k: v for k, v in batch.criteria.items() if k != "today"}
    return render(request, "web/batches/detail.html", {
        **_progress(batch), **_delivery(batch, request.user),
        "criteria": criteria_description(entity=request.entity, batch_type=batch.batch_type, criteria=criteria)})


@right_required(Right.MAXSMS_PROCESSING, methods=("GET",))
def batch_progress_view(request, messagebatch_id: int):
    """The progress bar's fragment, polled (htmx) until the batch has finished."""
    return render(request, "web/batches/_progress.html", _progress(_batch(request, messagebatch_id)))


DELIVERY_POLL_SECONDS = 5


def _delivery(batch: MessageBatch, user) -> dict:
    """The batch's SMSs by status; polled while any is still on its way (or the batch is still
    queuing them), every few seconds: a large batch's count is one grouped read of its messages."""
    rows = selectors.batch_delivery(batch=batch)
    pending = sum(n for status, _, n in rows if status in selectors.DELIVERY_PENDING)
    live = pending or not batch.finished
    url = reverse("web:batch_delivery", kwargs={"messagebatch_id": batch.pk}) if live else ""
    day = local(batch.created_at, batch.entity.time_zone).date().isoformat()
    detail = "" if not user.has_right(Right.REPORT_SMS_DETAIL) else reverse("web:messaging_outbox") + "?" + urlencode(
        {"message_type": MESSAGE_TYPE[batch.batch_type], "start": day})
    return {"delivery": rows, "delivery_total": sum(n for _, _, n in rows), "delivery_pending": pending,
            "delivery_poll": Poll(element_id="batch-delivery", url=url, seconds=DELIVERY_POLL_SECONDS),
            "delivery_detail_url": detail}


@right_required(Right.MAXSMS_PROCESSING, methods=("GET",))
def batch_delivery_view(request, messagebatch_id: int):
    """The delivery fragment, polled (htmx) while the batch's SMSs are on their way."""
    batch = _batch(request, messagebatch_id)
    return render(request, "web/batches/_delivery.html", {"batch": batch, **_delivery(batch, request.user)})


@require_POST
@right_required(Right.MAXSMS_PROCESSING)
def batch_resume_view(request, messagebatch_id: int):
    """Resume a failed batch: the same batch again, so the clients it reached already are skipped
    (their outbox keys) and the others get it now."""
    batch = _batch(request, messagebatch_id)
    try:
        batch = batch_resume(actor=request.user, entity=request.entity, batch_id=batch.pk)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("web:batch_detail", messagebatch_id=batch.pk)
    if batch.state == "failed":
        messages.error(request, f"The batch stopped again: {batch.error}")
    elif batch.background:
        messages.success(request, "The batch is resuming in the background; this page shows how far it is.")
    else:
        messages.success(request, f"Resumed: {batch.queued} SMS{pluralize(batch.queued, 'es')} queued in all, "
                                  f"{batch.credits} credit{pluralize(batch.credits)} used in all.")
    return redirect("web:batch_detail", messagebatch_id=batch.pk)


urlpatterns = [
    path("messaging/batches/", batches_view, name="batches"),
    path("messaging/batches/new/", batch_new_view, name="batch_new"),
    path("messaging/batches/previews/<int:batchpreviewrun_id>/", batch_preview_run_view, name="batch_preview_run"),
    path("messaging/batches/previews/<int:batchpreviewrun_id>/progress/", batch_preview_progress_view,
         name="batch_preview_progress"),
    path("messaging/batches/<int:messagebatch_id>/", batch_detail_view, name="batch_detail"),
    path("messaging/batches/<int:messagebatch_id>/progress/", batch_progress_view, name="batch_progress"),
    path("messaging/batches/<int:messagebatch_id>/resume/", batch_resume_view, name="batch_resume"),
    path("messaging/batches/<int:messagebatch_id>/delivery/", batch_delivery_view, name="batch_delivery"),
]
