"""Messaging screens: templates with preview, a client's SMS history and single SMS, replies, and the
operator's credit assignment. Credits and usage, SMS Detail and the process log are in
messaging_reports."""

from __future__ import annotations

import uuid

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.core.validators import MaxLengthValidator
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.urls import path, reverse

from imali.clients.models import Client
from imali.core.forms import StrictIntegerFormField, StrictModelChoiceField
from imali.messaging.credits import (
    credits_assign,
)
from imali.messaging.email.rules import MAX_ATTACHMENT_BYTES, MAX_SUBJECT_LENGTH, Attachment
from imali.messaging.email.services import email_test_send
from imali.messaging.models import Channel, MessageType, TemplateRevision
from imali.messaging.selectors import (
    HISTORY_STATUS,
    SCHEDULED,
    balances_by_entity,
    client_sms_history,
    sms_history_rows,
)
from imali.messaging.services import (
    SINGLE_SMS_MAX_LENGTH,
    single_sms_preview,
    single_sms_send,
    single_sms_templates,
    template_preview,
    template_text,
    template_update,
)
from imali.messaging.templating import TEMPLATE_MAX_LENGTH
from imali.tenancy.models import Entity
from imali.tenancy.rights import Right

from ..access import OPERATOR, operator_required, right_required
from ..forms import apply_service_errors, form_status
from ..live import SMS_NOT_FINAL, Poll, poll_for, polled_ids

NAV_ITEMS = [
    ("Message templates", "web:messaging_templates", Right.MAXSMS_MESSAGE_SETUP, "Setup"),
    ("Email templates", "web:messaging_email_templates", Right.MAXMAIL_MESSAGE_SETUP, "Setup"),
    ("Assign credits", "web:messaging_operator_credits", OPERATOR, "Platform"),
]


class TemplateForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), help_text=(
        "Merge fields are written {^Field Name^}, with a space on each side; a message may not start with one."))
    preview_client = StrictIntegerFormField(required=False, label="Preview for client number")

    def __init__(self, *args, channel: str, **kwargs):
        super().__init__(*args, **kwargs)
        # The channel's bound on the field itself: a pasted document is refused naming the text
        # before it is previewed (a preview of two megabytes took seconds and quoted it all back).
        text = self.fields["text"]
        text.max_length = TEMPLATE_MAX_LENGTH[channel]
        text.validators.append(MaxLengthValidator(text.max_length))
        text.widget.attrs["maxlength"] = str(text.max_length)


def _preview_or_save(request, form, *, message_type: str, channel: str, saved: str):
    """A template form posted: the text previewed for the chosen client (or for none), and saved
    when asked and valid. (preview, redirect) once saved, (preview, None) otherwise."""
    entity = request.entity
    text = form.cleaned_data["text"]
    client = None
    if form.cleaned_data.get("preview_client"):
        client = Client.objects.filter(entity=entity, number=form.cleaned_data["preview_client"]).select_related("branch").first()
        if client is None:
            form.add_error("preview_client", "No client with that number in your entity.")
    preview = template_preview(entity=entity, text=text, client=client)
    if "save" in request.POST and not form.errors:
        try:
            template_update(actor=request.user, entity=entity, message_type=message_type, text=text, channel=channel)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, saved)
            return preview, redirect(f"{request.path}?type={message_type}")
    return preview, None


@right_required(Right.MAXSMS_MESSAGE_SETUP, methods=("GET", "HEAD"))
def templates_view(request):
    entity = request.entity
    rows = [(value, label, template_text(entity=entity, message_type=value)) for value, label in MessageType.choices]
    return render(request, "web/messaging/templates.html", {"rows": rows})


@right_required(Right.MAXSMS_MESSAGE_SETUP)
def template_edit_view(request):
    entity = request.entity
    message_type = request.GET.get("type", "")
    if message_type not in MessageType.values:
        return redirect("web:messaging_templates")
    form = TemplateForm(request.POST or None, initial={"text": template_text(entity=entity, message_type=message_type)},
                        channel=Channel.SMS)
    preview = None
    if request.method == "POST" and form.is_valid():
        preview, saved = _preview_or_save(request, form, message_type=message_type, channel=Channel.SMS,
                                          saved=f"Template '{MessageType(message_type).label}' saved.")
        if saved:
            return saved
    history = (TemplateRevision.objects.filter(entity=entity, template__channel=Channel.SMS, template__message_type=message_type)
               .select_related("changed_by")[:20])
    return render(request, "web/messaging/template_edit.html", {
        "form": form, "preview": preview, "history": history, "message_type": message_type,
        "type_label": MessageType(message_type).label}, status=form_status(form))


class EmailTestSendForm(forms.Form):
    to_address = forms.EmailField(label="Send the test to", help_text="Any address: yours, to see what clients will get.")
    subject = forms.CharField(max_length=MAX_SUBJECT_LENGTH, help_text="Merge fields may be used here too.")
    client = StrictIntegerFormField(required=False, label="Merge for client number",
                                help_text="Empty: the fields show as [Field Name].")
    attachment = forms.FileField(required=False, help_text="Optional; at most 7 MB.")
    idempotency_key = forms.CharField(widget=forms.HiddenInput)


@right_required(Right.MAXMAIL_MESSAGE_SETUP, methods=("GET", "HEAD"))
def email_templates_view(request):
    entity = request.entity
    rows = [(value, label, template_text(entity=entity, message_type=value, channel=Channel.EMAIL))
            for value, label in MessageType.choices if value != MessageType.OTP]
    return render(request, "web/messaging/email_templates.html", {"rows": rows})


@right_required(Right.MAXMAIL_MESSAGE_SETUP)
def email_template_edit_view(request):
    """An email template's text (saved like the SMS templates, channel email) and a test send of
    the saved text to an address the user types; the test costs one email credit, as any email."""
    entity = request.entity
    message_type = request.GET.get("type", "")
    if message_type not in MessageType.values or message_type == MessageType.OTP:
        return redirect("web:messaging_email_templates")
    label = MessageType(message_type).label
    saved = template_text(entity=entity, message_type=message_type, channel=Channel.EMAIL)
    testing = "test_send" in request.POST
    form = TemplateForm(request.POST if request.method == "POST" and not testing else None, initial={"text": saved},
                        channel=Channel.EMAIL)
    test_form = EmailTestSendForm(request.POST if testing else None, request.FILES if testing else None, initial={
        "idempotency_key": uuid.uuid4().hex, "subject": f"{label} from {{^Legal Entity Name^}}",
        "to_address": request.user.email})
    preview = None
    if testing and test_form.is_valid():
        data = test_form.cleaned_data
        client = None
        if data.get("client"):
            client = Client.objects.filter(entity=entity, number=data["client"]).select_related("branch").first()
            if client is None:
                test_form.add_error("client", "No client with that number in your entity.")
        upload = data.get("attachment")
        attachments = [Attachment(upload.name, upload.read(), upload.content_type or "")] if upload else []
        if not test_form.errors:
            try:
                result = email_test_send(actor=request.user, entity=entity, message_type=message_type,
                                         to_address=data["to_address"], subject=data["subject"], client=client,
                                         attachments=attachments, idempotency_key=f"ui-email-test:{data['idempotency_key']}")
            except ValidationError as exc:
                apply_service_errors(test_form, exc, field_map={"recipients": "to_address", "attachments": "attachment"})
            else:
                if result.repeated:
                    messages.info(request, "That test email was sent already.")
                elif result.failed:
                    messages.error(request, f"The mail server did not take the test email to {data['to_address']}; "
                                            "the credit was given back. See the process log.")
                else:
                    messages.success(request, f"Test email '{label}' sent to {data['to_address']}: one email credit used.")
                return redirect(f"{request.path}?type={message_type}")
    elif request.method == "POST" and not testing and form.is_valid():
        preview, saved = _preview_or_save(request, form, message_type=message_type, channel=Channel.EMAIL,
                                          saved=f"Email template '{label}' saved.")
        if saved:
            return saved
    history = (TemplateRevision.objects.filter(entity=entity, template__channel=Channel.EMAIL, template__message_type=message_type)
               .select_related("changed_by")[:20])
    return render(request, "web/messaging/email_template_edit.html", {
        "form": form, "test_form": test_form, "preview": preview, "history": history, "message_type": message_type,
        "type_label": label, "saved_text": saved, "max_attachment_mb": MAX_ATTACHMENT_BYTES // (1024 * 1024)}, status=form_status(form, test_form))


class SingleSmsForm(forms.Form):
    template = forms.ChoiceField(required=False, label="Template",
                                 help_text="A template of your entity, merged for this client; or leave it on free text.")
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=SINGLE_SMS_MAX_LENGTH,
                           label="Message", help_text="Free text, when no template is chosen.")
    idempotency_key = forms.CharField(widget=forms.HiddenInput)

    def __init__(self, *args, templates=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["template"].choices = [("", "Free text"), *((value, f"{label}: {text}") for value, label, text in templates)]


HISTORY_PAGE_SIZE = 25


@right_required(Right.VIEW_CLIENTS)
def client_sms_view(request, client_id: int):
    """The "SMS Client" screen: the client's SMS history and, for holders of the single-SMS right,
    a send in two steps: Preview (final text, segments, encoding, credits) then Confirm. The key
    made when the form is first shown travels through both steps, so a double submit sends once."""
    entity = request.entity
    client = get_object_or_404(Client.objects.select_related("branch"), pk=client_id, entity=entity)
    may_send = request.user.has_right(Right.SEND_SINGLE_SMS)
    form = SingleSmsForm(request.POST or None, templates=single_sms_templates(entity=entity) if may_send else (),
                         initial={"idempotency_key": uuid.uuid4().hex})
    preview = None
    if request.method == "POST":
        if not may_send:
            raise PermissionDenied("You need the 'SMS: send single SMS' right.")
        if form.is_valid():
            chosen = {"template": form.cleaned_data["template"], "text": form.cleaned_data["text"]}
            try:
                if "confirm" in request.POST:
                    message = single_sms_send(actor=request.user, entity=entity, client=client,
                                              idempotency_key=f"ui:{form.cleaned_data['idempotency_key']}", **chosen)
                    messages.success(request, f"SMS queued for {message.number}: {message.segments} "
                                              f"segment{pluralize(message.segments)}, {message.credits} "
                                              f"credit{pluralize(message.credits)}.")
                    return redirect("web:messaging_client_sms", client_id=client.pk)
                if "edit" not in request.POST:
                    preview = single_sms_preview(actor=request.user, entity=entity, client=client, **chosen)
            except ValidationError as exc:
                apply_service_errors(form, exc)
    page = Paginator(client_sms_history(entity=entity, client_id=client.pk), HISTORY_PAGE_SIZE).get_page(request.GET.get("page"))
    rows = sms_history_rows(entity=entity, messages=page.object_list)
    return render(request, "web/messaging/client_sms.html", {
        "client": client, "form": form, "preview": preview, "may_send": may_send, "page": page,
        "rows": rows, "time_zone": entity.time_zone, "poll": _history_poll(client, rows)}, status=form_status(form))


# The history's words for a message still on its way (live.SMS_NOT_FINAL in its vocabulary).
_HISTORY_NOT_FINAL = frozenset(HISTORY_STATUS[s] for s in SMS_NOT_FINAL) | {SCHEDULED}


def _history_poll(client: Client, rows) -> Poll:
    return poll_for("sms-status-poll", reverse("web:messaging_client_sms_status", kwargs={"client_id": client.pk}),
                    [r.id for r in rows if r.status in _HISTORY_NOT_FINAL])


@right_required(Right.VIEW_CLIENTS, methods=("GET",))
def client_sms_status_view(request, client_id: int):
    """The history's live fragment: the status and response of the asked messages of this client,
    and the poller for those still on their way. The page's right and entity checks; two queries."""
    entity = request.entity
    client = get_object_or_404(Client.objects.only("pk"), pk=client_id, entity=entity)
    rows = sms_history_rows(entity=entity, messages=client_sms_history(entity=entity, client_id=client.pk)
                            .filter(pk__in=polled_ids(request)))
    return render(request, "web/messaging/_sms_status_updates.html", {"updates": rows, "poll": _history_poll(client, rows)})


@right_required(Right.REPORT_REPLY_DETAIL, methods=("GET", "HEAD"))
def replies_view(request):
    # The replies list became the Reply Detail report (web.views.messaging_policy); old links still land.
    return redirect("web:messaging_reply_detail")


class AssignCreditsForm(forms.Form):
    entity = StrictModelChoiceField(queryset=Entity.objects.filter(is_active=True))
    channel = forms.ChoiceField(choices=Channel.choices)
    amount = StrictIntegerFormField(help_text="Credits to add; a negative number corrects a mistake.")
    note = forms.CharField(max_length=200, required=False, help_text="E.g. the invoice number")


@operator_required
def operator_credits_view(request):
    form = AssignCreditsForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            entry = credits_assign(actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"{form.cleaned_data['entity'].name}: {form.cleaned_data['amount']} "
                                      f"{form.cleaned_data['channel'].upper()} credits; balance {entry.balance_after}.")
            return redirect("web:messaging_operator_credits")
    return render(request, "web/messaging/operator_credits.html", {"form": form, "balances": balances_by_entity()}, status=form_status(form))


urlpatterns = [
    path("messaging/templates/", templates_view, name="messaging_templates"),
    path("messaging/templates/edit/", template_edit_view, name="messaging_template_edit"),
    path("messaging/email-templates/", email_templates_view, name="messaging_email_templates"),
    path("messaging/email-templates/edit/", email_template_edit_view, name="messaging_email_template_edit"),
    path("messaging/clients/<int:client_id>/sms/", client_sms_view, name="messaging_client_sms"),
    path("messaging/clients/<int:client_id>/sms/status/", client_sms_status_view, name="messaging_client_sms_status"),
    path("messaging/replies/", replies_view, name="messaging_replies"),
    path("operator/credits/", operator_credits_view, name="messaging_operator_credits"),
]
