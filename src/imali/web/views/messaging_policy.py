"""MAXSMS General Setup's SMS types (a switch per message type, DOMAIN §3) and the direct-marketing
hours they live with (§5); SMS replies: "Get SMS Responses", the reply-notification setup, the
Reply Detail report with its exports, and the in-app reply notices."""

from __future__ import annotations

from urllib.parse import urlencode

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path

from imali.core.forms import StrictModelChoiceField, request_id
from imali.messaging import reply_reports
from imali.messaging.models import MessageType
from imali.messaging.policy import (
    DIRECT_MARKETING_TYPES,
    OPT_OUT_TEXT,
    message_type_switches,
    message_types_update,
    window_description,
)
from imali.messaging.replies import (
    ON_DEMAND,
    pullable_gateways,
    replies_collect,
    reply_notices_mark_read,
    reply_notices_unread,
    reply_notify_list,
    reply_notify_set,
)
from imali.tenancy.models import User
from imali.tenancy.rights import Right

from ..access import may_use, right_required
from ..forms import IsoDateInput, apply_service_errors, form_status
from .messaging_reports import export_format, export_or_job

NAV_ITEMS = [
    ("SMS types", "web:messaging_sms_types", Right.MAXSMS_GENERAL_SETUP, "Setup"),
    ("Replies setup", "web:messaging_replies_setup", Right.MAXSMS_REPLIES_SETUP, "Setup"),
    ("Reply detail", "web:messaging_reply_detail", Right.REPORT_REPLY_DETAIL, "Reports"),
    ("Reply notices", "web:messaging_reply_notices", Right.REPORT_REPLY_DETAIL, "Messaging"),
]
PAGE_SIZE = 50


class SmsTypesForm(forms.Form):
    """One checkbox per switchable message type, labelled in people's words."""

    def __init__(self, *args, switches, **kwargs):
        super().__init__(*args, **kwargs)
        for message_type, label, enabled in switches:
            help_text = "Direct marketing: sent only in the allowed hours, with your name and the opt-out." \
                if message_type in DIRECT_MARKETING_TYPES else ""
            self.fields[message_type] = forms.BooleanField(required=False, label=label, initial=enabled,
                                                           help_text=help_text)


@right_required(Right.MAXSMS_GENERAL_SETUP)
def sms_types_view(request):
    entity = request.entity
    switches = message_type_switches(entity=entity)
    form = SmsTypesForm(request.POST or None, switches=switches)
    if request.method == "POST" and form.is_valid():
        try:
            changed = message_types_update(actor=request.user, entity=entity, enabled=dict(form.cleaned_data))
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            if changed:
                words = ", ".join(f"{MessageType(t).label} {'on' if form.cleaned_data[t] else 'off'}" for t in changed)
                messages.success(request, f"SMS types saved: {words}.")
            else:
                messages.info(request, "Nothing changed.")
            return redirect("web:messaging_sms_types")
    return render(request, "web/messaging/sms_types.html", {
        "form": form, "window": window_description(), "opt_out": OPT_OUT_TEXT,
        "marketing_labels": [MessageType(t).label for t in sorted(DIRECT_MARKETING_TYPES)]}, status=form_status(form))


# --- Replies --------------------------------------------------------------------------------


class ReplyNotifyForm(forms.Form):
    user = StrictModelChoiceField(queryset=User.objects.none(), label="User",
                                  help_text="Must hold the right 'Reports: Reply Detail'.")
    in_app = forms.BooleanField(required=False, initial=True, label="In the app",
                                help_text="A notice under Messaging → Reply notices")
    by_email = forms.BooleanField(required=False, label="By email",
                                  help_text="One email per run with the replies; costs one email credit")

    def __init__(self, *args, entity, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = User.objects.filter(entity=entity, is_active=True).order_by("first_name", "username")


@right_required(Right.MAXSMS_REPLIES_SETUP)
def replies_setup_view(request):
    """Reply-notification setup: who is told of new replies, and how. Un-ticking both removes a user."""
    entity = request.entity
    form = ReplyNotifyForm(request.POST or None, entity=entity)
    if request.method == "POST" and request.POST.get("remove"):
        # The id comes from the page's button; anything else (tampered, not a number) is a 400.
        user = get_object_or_404(User, pk=request_id(request.POST, "remove", required=True), entity=entity)
        reply_notify_set(actor=request.user, entity=entity, user=user, by_email=False, in_app=False)
        messages.success(request, f"{user} is no longer told of new replies.")
        return redirect("web:messaging_replies_setup")
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            saved = reply_notify_set(actor=request.user, entity=entity, user=data["user"], by_email=data["by_email"],
                                     in_app=data["in_app"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            how = " and ".join(w for w, on in (("in the app", data["in_app"]), ("by email", data["by_email"])) if on)
            messages.success(request, f"{data['user']} will be told of new replies {how}." if saved
                             else f"{data['user']} is no longer told of new replies.")
            return redirect("web:messaging_replies_setup")
    return render(request, "web/messaging/replies_setup.html", {
        "form": form, "recipients": reply_notify_list(entity=entity),
        "pullable": [g.name for g in pullable_gateways()]}, status=form_status(form))


@right_required(Right.MAXSMS_PROCESSING, methods=("POST",))
def replies_collect_view(request):
    """"Get SMS Responses": pull from the aggregators that list replies and collect the entity's new ones."""
    result = replies_collect(entity=request.entity, actor=request.user, trigger=ON_DEMAND)
    words = (f"{result.collected} new repl{'y' if result.collected == 1 else 'ies'} collected: "
             f"{result.matched_clients} matched to a client, {result.matched_messages} to the SMS they answer"
             + (f", {result.stops} STOP" if result.stops else "") + ".")
    if result.pull is not None and result.pull.gateways:
        words += f" Fetched {result.pull.fetched} from {', '.join(result.pull.gateways)}."
    messages.success(request, words)
    for error in result.errors:
        messages.warning(request, error)
    return redirect("web:messaging_reply_detail")


YES_NO = [("", "Any"), (reply_reports.YES, "Yes"), (reply_reports.NO, "No")]


class ReplyDetailForm(forms.Form):
    start = forms.DateField(required=False, label="From", widget=IsoDateInput)
    end = forms.DateField(required=False, label="To", widget=IsoDateInput)
    number = forms.CharField(required=False, max_length=16)
    client_matched = forms.ChoiceField(required=False, choices=YES_NO, label="Client known")
    stop = forms.ChoiceField(required=False, choices=YES_NO, label="STOP")
    answered_type = forms.ChoiceField(required=False, label="Answers (type)",
                                      choices=[("", "Any type"), *MessageType.choices])
    collected = forms.ChoiceField(required=False, label="Collected",
                                  choices=[("", "Any"), (reply_reports.YES, "Collected"), (reply_reports.NO, "New")])

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", "The end date is before the start date.")
        return data

    def filters(self) -> reply_reports.ReplyDetailFilters:
        d = self.cleaned_data
        return reply_reports.ReplyDetailFilters(
            date_from=d.get("start"), date_to=d.get("end"), number=d.get("number") or None,
            client_matched=d.get("client_matched") or None, stop=d.get("stop") or None,
            answered_type=d.get("answered_type") or None, collected=d.get("collected") or None)


@right_required(Right.REPORT_REPLY_DETAIL, methods=("GET", "HEAD", "POST"))
def reply_detail_view(request):
    entity = request.entity
    form = ReplyDetailForm(request.GET)
    valid = form.is_valid()
    filters = form.filters() if valid else None
    fmt = export_format(request)
    if fmt and valid:
        snapshot = reply_reports.reply_detail_snapshot(entity=entity, filters=filters)
        rows = reply_reports.reply_detail_export_rows(entity=entity, filters=filters, snapshot=snapshot)
        return export_or_job(request, report="reply-detail", fmt=fmt, snapshot=snapshot,
                             header=reply_reports.REPLY_DETAIL_HEADER, rows=rows,
                             text_columns=reply_reports.REPLY_DETAIL_TEXT_COLUMNS, filters=filters.as_record(),
                             job_params={"filters": filters.as_record()})
    page = None
    if valid:
        paginator = Paginator(reply_reports.reply_detail_list(entity=entity, filters=filters), PAGE_SIZE)
        paginator.count = reply_reports.reply_detail_count(entity=entity, filters=filters)
        page = paginator.get_page(request.GET.get("page"))
        page.object_list = list(reply_reports.reply_detail_rows(page.object_list, entity=entity))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("export", None)
    return render(request, "web/messaging/reply_detail.html", {
        "form": form, "page": page, "query": query.urlencode(),
        "may_collect": may_use(request, Right.MAXSMS_PROCESSING)})


@right_required(Right.REPORT_REPLY_DETAIL)
def reply_notices_view(request):
    """The signed-in user's unread reply notices; "Mark all read" clears them."""
    if request.method == "POST":
        reply_notices_mark_read(user=request.user)
        return redirect("web:messaging_reply_notices")
    notices = reply_notices_unread(user=request.user)
    return render(request, "web/messaging/reply_notices.html", {
        "notices": notices, "new_replies_query": urlencode({"collected": reply_reports.YES})})


urlpatterns = [
    path("messaging/setup/sms-types/", sms_types_view, name="messaging_sms_types"),
    path("messaging/setup/replies/", replies_setup_view, name="messaging_replies_setup"),
    path("messaging/replies/collect/", replies_collect_view, name="messaging_replies_collect"),
    path("messaging/reports/reply-detail/", reply_detail_view, name="messaging_reply_detail"),
    path("messaging/replies/notices/", reply_notices_view, name="messaging_reply_notices"),
]
