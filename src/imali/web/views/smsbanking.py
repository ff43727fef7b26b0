"""SMS banking screens: settings, keyword aliases and mobile-money providers (Setup); client PINs
set at the branch (Clients); field collections to confirm and collection sheets (Loans); the
request log (Reports); and the branch manager's phone pages under /m/ (small, no menu, no script)."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_POST

from imali.clients.models import Client
from imali.core.forms import StrictIntegerFormField, StrictModelChoiceField, request_id
from imali.loans import services as loan_services
from imali.loans.models import Loan, LoanStatus
from imali.smsbanking import selectors, services
from imali.smsbanking.models import (
    ALIASABLE,
    CollectionSheet,
    CollectionStatus,
    FieldCollection,
    KeywordAlias,
    PaymentProvider,
    ProviderPayment,
)
from imali.tenancy.rights import Right

from ..access import may_use, right_required
from ..forms import IsoDateInput, apply_service_errors, form_status
from .loans import ApproveForm, client_standing

NAV_ITEMS = [
    ("SMS banking PIN", "web:smsbank_pin", Right.MANAGE_CLIENTS, "Clients"),
    ("Field collections", "web:smsbank_collections", Right.CAPTURE_RECEIPTS, "Loans"),
    ("Collection sheets", "web:smsbank_sheets", Right.CAPTURE_RECEIPTS, "Loans"),
    ("Manager's phone pages", "web:mobile_home", Right.APPROVE_LOANS, "Loans"),
    ("SMS banking requests", "web:smsbank_requests", Right.REPORT_REPLY_DETAIL, "Reports"),
    ("SMS banking", "web:smsbank_settings", Right.MAXSMS_REPLIES_SETUP, "Setup"),
]


# --- setup -----------------------------------------------------------------------------------------
class SettingsForm(forms.Form):
    enabled = forms.BooleanField(required=False, label="SMS banking on")
    service_address = forms.CharField(max_length=20, required=False, label="Number or short code clients text",
                                      help_text="Finds the lender of a message from a phone no client or user has")
    pin_max_failures = StrictIntegerFormField(min_value=1, max_value=10, label="Wrong PINs before the lock")
    pin_lock_minutes = StrictIntegerFormField(min_value=1, max_value=10080, label="Lock time (minutes)")
    requests_per_hour = StrictIntegerFormField(min_value=1, max_value=1000, label="Requests per phone per hour")
    sheet_code_days = StrictIntegerFormField(min_value=1, max_value=30, label="Collection-sheet code valid for (days)")


class AliasForm(forms.Form):
    word = forms.CharField(max_length=20, help_text="One word in the local language, e.g. TSHALELO")
    command = forms.ChoiceField(choices=[(c.value, c.label) for c in ALIASABLE], label="Does what")


class ProviderForm(forms.Form):
    name = forms.CharField(max_length=60)
    sender = forms.CharField(max_length=20, help_text="The number or name its SMS come from")
    pattern = forms.CharField(max_length=400, widget=forms.Textarea(attrs={"rows": 3}),
                              help_text="A regular expression with the groups (?P<phone>…), (?P<amount>…) and (?P<ref>…)",
                              initial=services.SAMPLE_PATTERN)
    active = forms.BooleanField(required=False, initial=True)


def _settings_form(request, data=None) -> SettingsForm:
    current = services.settings_get(entity=request.entity)
    return SettingsForm(data, initial={f: getattr(current, f) for f in SettingsForm.base_fields})


def _settings_page(request, form: SettingsForm, alias_form: AliasForm):
    """The settings page with its two forms; a refused one (posted here or to the alias add) is a 400."""
    return render(request, "web/smsbanking/settings.html", {
        "form": form, "alias_form": alias_form, "aliases": selectors.alias_list(entity=request.entity),
        "providers": selectors.provider_list(entity=request.entity), "defaults": services.DEFAULT_KEYWORDS},
        status=form_status(form, alias_form))


@right_required(Right.MAXSMS_REPLIES_SETUP)
def settings_view(request):
    form = _settings_form(request, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.settings_update(actor=request.user, entity=request.entity, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "SMS banking settings saved.")
            return redirect("web:smsbank_settings")
    return _settings_page(request, form, AliasForm())


@require_POST
@right_required(Right.MAXSMS_REPLIES_SETUP)
def alias_add_view(request):
    form = AliasForm(request.POST)
    if form.is_valid():
        try:
            services.alias_add(actor=request.user, entity=request.entity, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"'{form.cleaned_data['word'].upper()}' added.")
            return redirect("web:smsbank_settings")
    return _settings_page(request, _settings_form(request), form)


@require_POST
@right_required(Right.MAXSMS_REPLIES_SETUP)
def alias_delete_view(request, keywordalias_id: int):
    alias = get_object_or_404(KeywordAlias, entity=request.entity, pk=keywordalias_id)
    services.alias_delete(actor=request.user, entity=request.entity, alias_id=alias.pk)
    messages.success(request, f"'{alias.word}' removed.")
    return redirect("web:smsbank_settings")


def _provider_form_view(request, provider: PaymentProvider | None):
    initial = ({"name": provider.name, "sender": provider.sender, "pattern": provider.pattern, "active": provider.active}
               if provider else None)
    form = ProviderForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.provider_save(actor=request.user, entity=request.entity, provider_id=provider.pk if provider else None,
                                   **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Provider saved.")
            return redirect("web:smsbank_settings")
    return render(request, "web/form.html", {"form": form, "title": f"Provider {provider.name}" if provider else "New mobile-money provider",
                                             "cancel_url": "web:smsbank_settings"}, status=form_status(form))


@right_required(Right.MAXSMS_REPLIES_SETUP)
def provider_create_view(request):
    return _provider_form_view(request, None)


@right_required(Right.MAXSMS_REPLIES_SETUP)
def provider_edit_view(request, paymentprovider_id: int):
    return _provider_form_view(request, get_object_or_404(PaymentProvider, entity=request.entity, pk=paymentprovider_id))


# --- PINs ------------------------------------------------------------------------------------------
class PinForm(forms.Form):
    client_number = StrictIntegerFormField(min_value=1, label="Client number")
    pin = forms.CharField(max_length=6, min_length=4, label="New PIN",
                          widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "off"}))
    repeat = forms.CharField(max_length=6, label="New PIN again",
                             widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "off"}))


@sensitive_post_parameters("pin", "repeat")
@right_required(Right.MANAGE_CLIENTS)
def pin_view(request):
    form = PinForm(request.POST or None, initial={"client_number": request.GET.get("client", "")})
    if request.method == "POST" and form.is_valid():
        client = Client.objects.filter(entity=request.entity, number=form.cleaned_data["client_number"]).first()
        if client is None:
            form.add_error("client_number", "No client has that number.")
        else:
            try:
                services.pin_set(actor=request.user, entity=request.entity, client=client, pin=form.cleaned_data["pin"],
                                 repeat=form.cleaned_data["repeat"], via="branch")
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                messages.success(request, f"SMS banking PIN set for client {client.number} ({client}).")
                return redirect("web:smsbank_pin")
    return render(request, "web/smsbanking/pin.html", {"form": form}, status=form_status(form))


# --- field collections -----------------------------------------------------------------------------
class RejectForm(forms.Form):
    reason = forms.CharField(max_length=200)


@right_required(Right.CAPTURE_RECEIPTS)
def collections_view(request):
    status = request.GET.get("status", CollectionStatus.UNVERIFIED)
    if status not in CollectionStatus.values and status != "":
        status = CollectionStatus.UNVERIFIED
    page = Paginator(selectors.collection_list(entity=request.entity, status=status or None), 100).get_page(request.GET.get("page"))
    # Mobile-money SMS notices wait on the same screen: the newest 100 of the chosen status.
    payments = list(selectors.provider_payment_list(entity=request.entity, status=status or None)[:100])
    return render(request, "web/smsbanking/collections.html", {
        "page": page, "status": status, "statuses": CollectionStatus.choices, "reject_form": RejectForm(),
        "payments": payments})


def _reason(request) -> str:
    """The reject reason through the form's field (length, NUL bytes), its error raised as the
    service's own error for `reason` so both screens show it the same way."""
    form = RejectForm(request.POST)
    if not form.is_valid():
        raise ValidationError({"reason": [f"Reason: {m}" for m in form.errors["reason"]]})
    return form.cleaned_data["reason"]


def _decide(request, collection_id: int, *, reject: bool, back: str):
    row = get_object_or_404(FieldCollection, entity=request.entity, pk=collection_id)
    try:
        if reject:
            services.collection_reject(actor=request.user, entity=request.entity, collection_id=row.pk,
                                       reason=_reason(request))
            messages.success(request, f"Collection {row.pk} rejected; the officer is told why.")
        else:
            done = services.collection_confirm(actor=request.user, entity=request.entity, collection_id=row.pk)
            messages.success(request, f"Collection {row.pk} confirmed: receipt {done.receipt_id} posted.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(back)


def _back(request) -> str:
    """The phone page's buttons (collections and payment notices) come back to the phone page."""
    return "web:mobile_collections" if request.POST.get("back") == "m" else "web:smsbank_collections"


@require_POST
@right_required(Right.CAPTURE_RECEIPTS)
def collection_confirm_view(request, fieldcollection_id: int):
    return _decide(request, fieldcollection_id, reject=False, back=_back(request))


@require_POST
@right_required(Right.CAPTURE_RECEIPTS)
def collection_reject_view(request, fieldcollection_id: int):
    return _decide(request, fieldcollection_id, reject=True, back=_back(request))


@require_POST
@right_required(Right.CAPTURE_RECEIPTS)
def provider_payment_confirm_view(request, providerpayment_id: int):
    row = get_object_or_404(ProviderPayment, entity=request.entity, pk=providerpayment_id)
    try:
        done = services.provider_payment_confirm(actor=request.user, entity=request.entity, payment_id=row.pk)
        messages.success(request, f"Payment {row.reference} confirmed: receipt {done.receipt_id} posted.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(_back(request))


@require_POST
@right_required(Right.CAPTURE_RECEIPTS)
def provider_payment_reject_view(request, providerpayment_id: int):
    row = get_object_or_404(ProviderPayment, entity=request.entity, pk=providerpayment_id)
    try:
        services.provider_payment_reject(actor=request.user, entity=request.entity, payment_id=row.pk,
                                         reason=_reason(request))
        messages.success(request, f"Payment {row.reference} rejected.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(_back(request))


# --- collection sheets -----------------------------------------------------------------------------
class SheetForm(forms.Form):
    officer = StrictModelChoiceField(queryset=None, help_text="Users with a cellphone on their user record")
    due_by = forms.DateField(widget=IsoDateInput(), label="Instalments due by")

    def __init__(self, *args, entity, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["officer"].queryset = selectors.officers(entity=entity)


@right_required(Right.CAPTURE_RECEIPTS)
def sheets_view(request):
    today = loan_services.local_today(request.entity)
    form = SheetForm(request.POST or None, entity=request.entity, initial={"due_by": today + dt.timedelta(days=7)})
    if request.method == "POST" and form.is_valid():
        try:
            sheet = services.sheet_issue(actor=request.user, entity=request.entity, officer=form.cleaned_data["officer"],
                                         due_by=form.cleaned_data["due_by"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Sheet {sheet.code} made; the code went to the officer by SMS.")
            return redirect("web:smsbank_sheet", collectionsheet_id=sheet.pk)
    preview = None
    officer_id = request_id(request.GET, "officer") if request.method == "GET" else None
    if officer_id is not None:
        officer = selectors.officers(entity=request.entity).filter(pk=officer_id).first()
        if officer is not None:
            preview = {"officer": officer, "lines": services.sheet_lines(entity=request.entity, officer=officer,
                                                                         due_by=today + dt.timedelta(days=7))}
    page = Paginator(selectors.sheet_list(entity=request.entity), 50).get_page(request.GET.get("page"))
    return render(request, "web/smsbanking/sheets.html", {"form": form, "page": page, "preview": preview,
                                                           "officers": selectors.officers(entity=request.entity)}, status=form_status(form))


@right_required(Right.CAPTURE_RECEIPTS)
def sheet_view(request, collectionsheet_id: int):
    sheet = get_object_or_404(CollectionSheet.objects.select_related("officer"), entity=request.entity, pk=collectionsheet_id)
    lines = list(sheet.lines.select_related("client", "loan"))
    return render(request, "web/smsbanking/sheet.html", {"sheet": sheet, "lines": lines,
                                                          "total": sum((line.amount for line in lines), start=0)})


# --- the request log -------------------------------------------------------------------------------
@right_required(Right.REPORT_REPLY_DETAIL)
def requests_view(request):
    page = Paginator(selectors.request_list(entity=request.entity), 100).get_page(request.GET.get("page"))
    return render(request, "web/smsbanking/requests.html", {"page": page})


# --- the branch manager's phone pages --------------------------------------------------------------
def _branch_id(request) -> int | None:
    return request.user.home_branch_id


@right_required(Right.APPROVE_LOANS)
def mobile_home_view(request):
    return render(request, "web/smsbanking/m_home.html", {
        "status": selectors.branch_status(entity=request.entity, branch_id=_branch_id(request)),
        "branch": request.user.home_branch, "may_confirm": may_use(request, Right.CAPTURE_RECEIPTS)})


@right_required(Right.APPROVE_LOANS)
def mobile_applications_view(request):
    loans = list(selectors.pending_applications(entity=request.entity, branch_id=_branch_id(request))[:50])
    return render(request, "web/smsbanking/m_applications.html", {"loans": loans})


class DeclineForm(forms.Form):
    reason = forms.CharField(max_length=200, label="Reason for declining")


@right_required(Right.APPROVE_LOANS)
def mobile_application_view(request, loan_id: int):
    loan = get_object_or_404(Loan.objects.select_related("client", "product"), entity=request.entity, pk=loan_id)
    standing = client_standing(entity=request.entity, client=loan.client)
    approve_form = ApproveForm(standing=standing)
    decline_form = DeclineForm()
    if request.method == "POST" and loan.status == LoanStatus.APPLICATION:
        if request.POST.get("action") == "approve":
            approve_form = ApproveForm(request.POST, standing=standing)
            if approve_form.is_valid():
                try:
                    loan_services.loan_approve(loan=loan, actor=request.user)
                except ValidationError as exc:
                    approve_form.add_error(None, exc.messages)
                else:
                    messages.success(request, f"Loan {loan.pk} approved.")
                    return redirect("web:mobile_applications")
        elif request.POST.get("action") == "decline":
            # Declining is the desktop's cancel: the same service and the same right.
            if not may_use(request, Right.CAPTURE_LOANS):
                # The page offers no Decline button then; a forged POST is refused like any missing right.
                raise PermissionDenied("You do not have the right to cancel applications.")
            decline_form = DeclineForm(request.POST)
            if decline_form.is_valid():
                try:
                    loan_services.loan_cancel(loan=loan, actor=request.user, reason=decline_form.cleaned_data["reason"])
                except ValidationError as exc:
                    apply_service_errors(decline_form, exc)
                else:
                    messages.success(request, f"Loan {loan.pk} declined.")
                    return redirect("web:mobile_applications")
    return render(request, "web/smsbanking/m_application.html", {
        "loan": loan, "standing": standing, "approve_form": approve_form, "decline_form": decline_form,
        "may_decline": may_use(request, Right.CAPTURE_LOANS)}, status=form_status(approve_form, decline_form))


@right_required(Right.CAPTURE_RECEIPTS)
def mobile_collections_view(request):
    rows = list(selectors.collection_list(entity=request.entity, branch_id=_branch_id(request))[:50])
    # The mobile-money SMS notices waiting, as on the desktop's Field collections screen.
    notices = list(selectors.provider_payment_list(entity=request.entity, branch_id=_branch_id(request))[:50])
    return render(request, "web/smsbanking/m_collections.html", {"rows": rows, "notices": notices})


urlpatterns = [
    path("smsbanking/settings/", settings_view, name="smsbank_settings"),
    path("smsbanking/aliases/new/", alias_add_view, name="smsbank_alias_add"),
    path("smsbanking/aliases/<int:keywordalias_id>/delete/", alias_delete_view, name="smsbank_alias_delete"),
    path("smsbanking/providers/new/", provider_create_view, name="smsbank_provider_create"),
    path("smsbanking/providers/<int:paymentprovider_id>/", provider_edit_view, name="smsbank_provider_edit"),
    path("smsbanking/pin/", pin_view, name="smsbank_pin"),
    path("smsbanking/collections/", collections_view, name="smsbank_collections"),
    path("smsbanking/collections/<int:fieldcollection_id>/confirm/", collection_confirm_view, name="smsbank_collection_confirm"),
    path("smsbanking/collections/<int:fieldcollection_id>/reject/", collection_reject_view, name="smsbank_collection_reject"),
    path("smsbanking/payments/<int:providerpayment_id>/confirm/", provider_payment_confirm_view,
         name="smsbank_payment_confirm"),
    path("smsbanking/payments/<int:providerpayment_id>/reject/", provider_payment_reject_view, name="smsbank_payment_reject"),
    path("smsbanking/sheets/", sheets_view, name="smsbank_sheets"),
    path("smsbanking/sheets/<int:collectionsheet_id>/", sheet_view, name="smsbank_sheet"),
    path("smsbanking/requests/", requests_view, name="smsbank_requests"),
    path("m/", mobile_home_view, name="mobile_home"),
    path("m/applications/", mobile_applications_view, name="mobile_applications"),
    path("m/applications/<int:loan_id>/", mobile_application_view, name="mobile_application"),
    path("m/collections/", mobile_collections_view, name="mobile_collections"),
]
