"""OTP signing screens: the OTP setup, cellphone enrolment, signing a loan or a mandate (send,
resend, verify, finish by hand, override), the signed agreement and its tamper check, the
sign-in code step, and the Contracts issued / loan OTP audit / Login Detail reports with CSV.

Every lookup is by the signed-in user's entity, so another entity's record is a 404. The views
hold no rules: they call imali.signing.services and selectors."""

from __future__ import annotations

import datetime as dt
from functools import wraps

from django import forms
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from imali.clients.models import Client
from imali.core.forms import StrictIntegerFormField, StrictModelChoiceField
from imali.core.phones import display_phone
from imali.loans.models import Loan
from imali.messaging import reports as message_reports
from imali.paystream import mandates as debicheck
from imali.paystream import selectors as paystream_selectors
from imali.signing import selectors, services
from imali.signing.models import Challenge, Mandate, MandateKind, Signature, SignatureMethod
from imali.signing.services import Document
from imali.tenancy.models import Module
from imali.tenancy.rights import Right
from imali.tenancy.services import login_record

from .. import wording
from ..access import client_ip, may_use, right_required
from ..forms import IsoDateInput, MoneyFormField, apply_service_errors, form_status

NAV_ITEMS = [
    ("Loan signing", "web:signing_loans", Right.CAPTURE_LOANS, "Loans"),
    ("Contracts issued", "web:signing_contracts", Right.REPORT_CONTRACTS_ISSUED, "Reports"),
    ("Loan OTP audit", "web:signing_otp_audit", Right.REPORT_CONTRACTS_ISSUED, "Reports"),
    ("Login Detail", "web:signing_login_detail", Right.REPORT_LOGIN_DETAIL, "Reports"),
    ("OTP setup", "web:signing_setup", Right.MAXSMS_GENERAL_SETUP, "Setup"),
]

# The sign-in step: after the password, the session holds only these until the code is verified.
LOGIN_PENDING_USER = "signing_login_user"
LOGIN_PENDING_CHALLENGE = "signing_login_challenge"
LOGIN_PENDING_NEXT = "signing_login_next"
REPORT_LIMIT = 500


def any_right_required(*rights: Right):
    def decorator(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if not any(may_use(request, right) for right in rights):
                raise PermissionDenied("You do not have the right to use this screen.")
            return view(request, *args, **kwargs)

        return login_required(guarded)

    return decorator


# --- Forms -----------------------------------------------------------------------------------


class SetupForm(forms.Form):
    user_otp = forms.BooleanField(label="User OTP (an SMS code at sign-in)", required=False)
    enrol_client = forms.BooleanField(label="Enrol Client (needed before any loan OTP)", required=False)
    esign_loan_otp = forms.BooleanField(label="eSign Loan OTP (optional: the user may finish without it)", required=False)
    loan_otp = forms.BooleanField(label="Loan OTP (mandatory for enrolled clients)", required=False)
    threshold = MoneyFormField(allow_zero=True, label="Loan OTP amount (loans at or above it need the OTP)")
    code_length = StrictIntegerFormField(label="Code length (digits)", min_value=6, max_value=10)
    validity_minutes = StrictIntegerFormField(label="Code valid for (minutes)", min_value=1, max_value=10)
    tries_per_code = StrictIntegerFormField(label="Tries per code", min_value=1, max_value=5)


class CodeForm(forms.Form):
    challenge = forms.CharField(widget=forms.HiddenInput)
    code = forms.CharField(label="Code from the SMS", max_length=10,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))


class OverrideForm(forms.Form):
    authoriser = forms.CharField(label="Authorising user (username)", max_length=150)
    reason = forms.CharField(label="Reason (e.g. lost phone)", max_length=200)
    password = forms.CharField(label="Authorising user's own password", required=False,
                               widget=forms.PasswordInput(render_value=False))
    challenge = forms.CharField(required=False, widget=forms.HiddenInput)
    code = forms.CharField(label="…or the code sent to the authorising user's cellphone", required=False, max_length=10,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}))


class ClearForm(forms.Form):
    reason = forms.CharField(label="Reason for clearing the enrolled cellphone", max_length=200)


class MandateForm(forms.Form):
    kind = forms.ChoiceField(choices=MandateKind.choices)
    instalment_amount = MoneyFormField(required=False, help_text="Empty: the loan's instalment")
    maximum_collection = MoneyFormField(required=False, help_text="At most 1.5 × the instalment; empty: the instalment")
    collection_day = StrictIntegerFormField(help_text="1–30, or 99 for the last day of the month")
    account = StrictModelChoiceField(queryset=None)

    def __init__(self, *args, client: Client, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = client.accounts.filter(is_active=True)
        # DebiCheck only where the payment stream is: a lender elsewhere is offered SEFT alone.
        kinds = services.mandate_kinds(entity=client.entity)
        self.fields["kind"].choices = [(k, label) for k, label in MandateKind.choices if k in kinds]


class VerifyDocumentForm(forms.Form):
    document = forms.FileField(label="PDF to check")


class ReportForm(forms.Form):
    date_from = forms.DateField(required=False, widget=IsoDateInput())
    date_to = forms.DateField(required=False, widget=IsoDateInput())
    method = forms.ChoiceField(required=False, choices=[("", "All")] + list(SignatureMethod.choices))
    user = StrictModelChoiceField(required=False, queryset=None)
    branch = StrictModelChoiceField(required=False, queryset=None)

    def __init__(self, *args, entity, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["user"].queryset = get_user_model().objects.filter(entity=entity)
        self.fields["branch"].queryset = entity.branches.all()


class DatesForm(forms.Form):
    date_from = forms.DateField(required=False, widget=IsoDateInput())
    date_to = forms.DateField(required=False, widget=IsoDateInput())


def _forget_code(form: forms.Form) -> forms.Form:
    """After a refused code the page shows the errors, not the code typed (it may be the right
    one, refused for its terms or its expiry): the field comes back empty."""
    if form.is_bound:
        data = form.data.copy()
        data["code"] = ""
        form.data = data
    return form


# --- Lookups -------------------------------------------------------------------------------


def _loan(request, loan_id: int) -> Loan:
    try:
        return selectors.loan_get(entity=request.entity, pk=loan_id)
    except Loan.DoesNotExist:
        raise Http404("No such loan.") from None


def _mandate(request, mandate_id: int) -> Mandate:
    try:
        return selectors.mandate_get(entity=request.entity, pk=mandate_id)
    except Mandate.DoesNotExist:
        raise Http404("No such mandate.") from None


def _signature(request, signature_id: int) -> Signature:
    try:
        return selectors.signature_get(entity=request.entity, pk=signature_id)
    except Signature.DoesNotExist:
        raise Http404("No such signature.") from None


# --- Setup ---------------------------------------------------------------------------------


@right_required(Right.MAXSMS_GENERAL_SETUP)
def setup_view(request):
    current = services.otp_setup_get(entity=request.entity)
    initial = {name: getattr(current, name) for name in services.SETUP_FIELDS}
    form = SetupForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.otp_setup_update(actor=request.user, entity=request.entity, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "OTP setup saved.")
            return redirect("web:signing_setup")
    return render(request, "web/signing/setup.html", {"form": form, "setup": current}, status=form_status(form))


# --- Enrolment -----------------------------------------------------------------------------


@right_required(Right.MANAGE_CLIENTS)
@sensitive_post_parameters("code")
def enrolment_view(request, client_id: int):
    try:
        client = selectors.client_get(entity=request.entity, pk=client_id)
    except Client.DoesNotExist:
        raise Http404("No such client.") from None
    code_form, clear_form = CodeForm(), ClearForm()
    action = request.POST.get("action") if request.method == "POST" else None
    refused = False  # a button's action the service refused (Send code): a 400 like a refused form
    try:
        if action == "send":
            challenge = services.enrolment_send(actor=request.user, entity=request.entity, client=client, ip=client_ip(request))
            messages.success(request, f"A code was sent to {display_phone(challenge.cellphone)}. It is valid until "
                                      f"{wording.time_label(challenge.expires_at, request.entity.time_zone)}.")
            return redirect("web:signing_enrolment", client_id=client.pk)
        if action == "verify":
            code_form = CodeForm(request.POST)
            if code_form.is_valid():
                services.enrolment_verify(actor=request.user, entity=request.entity, client=client,
                                          challenge_id=code_form.cleaned_data["challenge"],
                                          code=code_form.cleaned_data["code"], ip=client_ip(request))
                messages.success(request, f"{display_phone(client.cellphone)} is enrolled for {client.display_name}.")
                return redirect("web:signing_enrolment", client_id=client.pk)
        if action == "clear":
            clear_form = ClearForm(request.POST)
            if clear_form.is_valid():
                services.enrolment_clear(actor=request.user, entity=request.entity, client=client,
                                         reason=clear_form.cleaned_data["reason"], ip=client_ip(request))
                messages.success(request, "The enrolment was cleared; the client's new cellphone can be enrolled.")
                return redirect("web:signing_enrolment", client_id=client.pk)
    except ValidationError as exc:
        if action == "send":
            # Said above the page: the code form is not the one posted (putting the error on it,
            # unbound, was a 500).
            messages.error(request, " ".join(exc.messages))
            refused = True
        else:
            apply_service_errors(clear_form if action == "clear" else code_form, exc)
            _forget_code(code_form)
    pending = Challenge.objects.filter(entity=request.entity, subject_key=f"enrol:client:{client.pk}",
                                                 status="pending").first()
    if pending is not None and not code_form.is_bound:
        code_form = CodeForm(initial={"challenge": pending.public_id})
    return render(request, "web/signing/enrolment.html", {
        "client": client, "enrolment": services.enrolment_active(entity=request.entity, client=client),
        "history": client.enrolments.select_related("enrolled_by", "cleared_by")[:20],
        "setup": services.otp_setup_get(entity=request.entity), "pending": pending, "code_form": code_form,
        "clear_form": clear_form, "can_clear": request.user.has_right(Right.CLEAR_ENROLMENT),
    }, status=400 if refused else form_status(code_form, clear_form))


# --- Signing a loan or a mandate ---------------------------------------------------------------


@right_required(Right.CAPTURE_LOANS)
def loans_view(request):
    return render(request, "web/signing/loans.html", {"loans": selectors.loans_awaiting_signature(entity=request.entity)})


def _can_debicheck(request) -> bool:
    """Whether the user may open the loan's DebiCheck screens (the payment stream's right, module on)."""
    return may_use(request, Right.PAYMENT_STREAM_WEB_SERVICES) and request.entity.has_module(Module.PAYMENT_STREAMS)


def _document_page(request, document: Document, *, this_url: str):
    user, entity, ip = request.user, request.entity, client_ip(request)
    code_form, override_form = CodeForm(), OverrideForm()
    action = request.POST.get("action") if request.method == "POST" else None
    refused = False  # a button's action the service refused (send, hand): a 400 like a refused form
    try:
        if action in ("send", "resend"):
            challenge = services.document_otp_send(actor=user, entity=entity, document=document, ip=ip)
            messages.success(request, f"A code was sent to the client's enrolled cellphone {display_phone(challenge.cellphone)}; "
                                      f"valid until {wording.time_label(challenge.expires_at, entity.time_zone)}.")
            return redirect(this_url)
        if action == "verify":
            code_form = CodeForm(request.POST)
            if code_form.is_valid():
                signature = services.document_otp_verify(actor=user, entity=entity, document=document, ip=ip,
                                                         challenge_id=code_form.cleaned_data["challenge"],
                                                         code=code_form.cleaned_data["code"])
                messages.success(request, "Electronically signed.")
                return redirect("web:signing_signature", signature_id=signature.pk)
        if action == "hand":
            signature = services.document_hand_sign(actor=user, entity=entity, document=document, ip=ip)
            messages.success(request, "Flagged for the client's hand signature: print the agreement.")
            return redirect("web:signing_signature", signature_id=signature.pk)
        if action in ("override", "override_send"):
            override_form = OverrideForm(request.POST)
            if override_form.is_valid():
                data = override_form.cleaned_data
                authoriser = get_user_model().objects.filter(entity=entity, username__iexact=data["authoriser"].strip()).first()
                if action == "override_send":
                    challenge = services.override_otp_send(actor=user, entity=entity, document=document,
                                                           authoriser=authoriser, ip=ip)
                    messages.success(request, f"A code was sent to {authoriser.get_full_name() or authoriser.username}'s cellphone.")
                    override_form = OverrideForm(initial={"authoriser": data["authoriser"], "reason": data["reason"],
                                                          "challenge": challenge.public_id})
                else:
                    signature = services.document_override(
                        actor=user, entity=entity, document=document, authoriser=authoriser, reason=data["reason"],
                        password=data["password"], challenge_id=data["challenge"], code=data["code"], ip=ip)
                    messages.success(request, "Overridden: the client must sign the agreement by hand.")
                    return redirect("web:signing_signature", signature_id=signature.pk)
    except ValidationError as exc:
        target = override_form if action in ("override", "override_send") else code_form
        if action in ("send", "resend", "hand"):
            messages.error(request, " ".join(exc.messages))
            refused = True
        else:
            apply_service_errors(target, exc)
            _forget_code(target)
    state = selectors.signing_state(entity=entity, document=document)
    if state.pending is not None and not code_form.is_bound:
        code_form = CodeForm(initial={"challenge": state.pending.public_id})
    documents = [document.mandate] if document.mandate is not None else list(document.loan.mandates.all())
    if any(d.kind == MandateKind.DEBICHECK for d in documents):
        # The DebiCheck mandate moves from "awaiting signature" to "signed" once its document is.
        debicheck.signatures_sync(entity=entity, loan=document.loan)
    links = paystream_selectors.debicheck_links(entity=entity, documents=documents)
    return render(request, "web/signing/document.html", {
        "document": document, "state": state, "code_form": code_form, "override_form": override_form,
        "loan": document.loan, "mandate": document.mandate, "this_url": this_url,
        "mandates": [(m, links.get(m.pk)) for m in documents] if document.mandate is None else [],
        "debicheck": links.get(document.mandate.pk) if document.mandate is not None else None,
        "can_debicheck": _can_debicheck(request),
        "challenges": list(Challenge.objects.filter(entity=entity, subject_key=document.key)
                           .select_related("created_by").order_by("-created_at", "-id")[:20]),
        "live": _challenge_live(state.pending) if state.pending is not None else None,
    }, status=400 if refused else form_status(code_form, override_form))


@right_required(Right.CAPTURE_LOANS)
@sensitive_post_parameters("code", "password")
@never_cache
def loan_signing_view(request, loan_id: int):
    loan = _loan(request, loan_id)
    return _document_page(request, Document(loan=loan), this_url=reverse("web:signing_loan", kwargs={"loan_id": loan.pk}))


@right_required(Right.CAPTURE_LOANS)
def mandate_create_view(request, loan_id: int):
    loan = _loan(request, loan_id)
    form = MandateForm(request.POST or None, client=loan.client, initial={"collection_day": loan.pay_day or 1})
    if request.method == "POST" and form.is_valid():
        try:
            mandate = services.mandate_create(actor=request.user, entity=request.entity, loan=loan, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Mandate {mandate.contract_reference} created: now have the client sign it.")
            return redirect("web:signing_mandate", mandate_id=mandate.pk)
    return render(request, "web/signing/mandate_form.html", {"form": form, "loan": loan}, status=form_status(form))


@right_required(Right.CAPTURE_LOANS)
@sensitive_post_parameters("code", "password")
@never_cache
def mandate_signing_view(request, mandate_id: int):
    mandate = _mandate(request, mandate_id)
    return _document_page(request, Document(loan=mandate.loan, mandate=mandate),
                          this_url=reverse("web:signing_mandate", kwargs={"mandate_id": mandate.pk}))


# --- The signed agreement ------------------------------------------------------------------


@any_right_required(Right.CAPTURE_LOANS, Right.REPORT_CONTRACTS_ISSUED)
def signature_view(request, signature_id: int):
    signature = _signature(request, signature_id)
    form = VerifyDocumentForm(request.POST or None, request.FILES or None)
    result = None
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data["document"].read()
        result = services.signature_document_check(actor=request.user, entity=request.entity, signature=signature,
                                                   data=data, ip=client_ip(request))
    debicheck_link = None
    if signature.mandate is not None:
        if signature.mandate.kind == MandateKind.DEBICHECK:
            debicheck.signatures_sync(entity=request.entity, loan=signature.loan)
        debicheck_link = paystream_selectors.debicheck_links(entity=request.entity, documents=[signature.mandate]).get(
            signature.mandate_id)
    return render(request, "web/signing/signature.html", {"signature": signature, "form": form, "result": result,
                                                           "debicheck": debicheck_link, "can_debicheck": _can_debicheck(request)}, status=form_status(form))


@any_right_required(Right.CAPTURE_LOANS, Right.REPORT_CONTRACTS_ISSUED)
def signature_pdf_view(request, signature_id: int):
    try:
        signature = Signature.objects.only("id", "document_pdf", "loan_id", "mandate_id").get(entity=request.entity, pk=signature_id)
    except Signature.DoesNotExist:
        raise Http404("No such signature.") from None
    response = HttpResponse(bytes(signature.document_pdf), content_type="application/pdf")
    name = f"mandate-{signature.mandate_id}" if signature.mandate_id else f"loan-{signature.loan_id}"
    response["Content-Disposition"] = f'attachment; filename="agreement-{name}-signature-{signature.pk}.pdf"'
    return response


# --- Sign-in code --------------------------------------------------------------------------


@sensitive_post_parameters("code")
@never_cache
@require_http_methods(["GET", "POST"])
def login_otp_view(request):
    user_id = request.session.get(LOGIN_PENDING_USER)
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first() if user_id else None
    if user is None:
        return redirect("web:login")
    form = CodeForm(request.POST or None, initial={"challenge": request.session.get(LOGIN_PENDING_CHALLENGE, "")})
    if request.method == "POST" and request.POST.get("action") == "resend":
        try:
            challenge = services.login_otp_send(user=user, ip=client_ip(request))
            request.session[LOGIN_PENDING_CHALLENGE] = challenge.public_id
            messages.success(request, "A new code was sent to your cellphone.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        return redirect("web:signing_login_otp")
    if request.method == "POST" and form.is_valid():
        try:
            services.login_otp_verify(user=user, challenge_id=request.session.get(LOGIN_PENDING_CHALLENGE, ""),
                                      code=form.cleaned_data["code"], ip=client_ip(request))
        except ValidationError as exc:
            apply_service_errors(form, exc)
            _forget_code(form)
        else:
            next_url = request.session.get(LOGIN_PENDING_NEXT) or reverse("web:home")
            for key in (LOGIN_PENDING_USER, LOGIN_PENDING_CHALLENGE, LOGIN_PENDING_NEXT):
                request.session.pop(key, None)
            login(request, user, backend="imali.tenancy.backends.RoleBackend")
            login_record(username=user.username, user=user, succeeded=True, ip_address=client_ip(request))
            return redirect(next_url)
    masked = f"…{user.cellphone[-3:]}" if user.cellphone else ""
    return render(request, "web/signing/login_otp.html", {"form": form, "masked_cellphone": masked}, status=form_status(form))


def login_otp_begin(request, user, next_url: str):
    """Called by the sign-in view once the password is right and the user needs a code: sends it
    and parks the user in the session (not signed in) until the code is verified."""
    challenge = services.login_otp_send(user=user, ip=client_ip(request))
    request.session.cycle_key()
    request.session[LOGIN_PENDING_USER] = user.pk
    request.session[LOGIN_PENDING_CHALLENGE] = challenge.public_id
    request.session[LOGIN_PENDING_NEXT] = next_url
    return redirect("web:signing_login_otp")


# --- Reports -------------------------------------------------------------------------------


def _text_columns(header: list[str]) -> frozenset[int]:
    # Names, reasons and usernames are typed by people (a sign-in's username by anyone): each is
    # written as text, never a formula a spreadsheet would run ("=HYPERLINK(…)", "@SUM(…)"). The
    # cellphone is E.164, whose "+" is no formula.
    return frozenset(i for i, name in enumerate(header) if name != "Cellphone")


def _csv_response(filename: str, header: list[str], rows) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        message_reports.csv_stream(header, rows, text_columns=_text_columns(header), byte_order_mark=False),
        content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _xlsx_response(filename: str, header: list[str], rows) -> HttpResponse:
    handle, _size = message_reports.xlsx_file(filename.rsplit(".", 1)[0], header, rows, text_columns=_text_columns(header))
    with handle:
        response = HttpResponse(handle.read(),
                                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _export(request, name: str, header: list[str], rows):
    """?export=csv (streamed) or ?export=xlsx; None when no export was asked for."""
    kind = request.GET.get("export")
    if kind == "csv":
        return _csv_response(f"{name}.csv", header, rows)
    if kind == "xlsx":
        return _xlsx_response(f"{name}.xlsx", header, rows)
    return None


def _local(value: dt.datetime, request) -> str:
    """The time in the entity's zone with the zone's name, as the screens show it."""
    moment = wording.local(value, request.entity.time_zone)
    return f"{moment:%Y-%m-%d %H:%M:%S} {wording.zone_label(value, request.entity.time_zone)}"


@right_required(Right.REPORT_CONTRACTS_ISSUED)
def contracts_view(request):
    form = ReportForm(request.GET or None, entity=request.entity)
    filters = {}
    if form.is_valid():
        data = form.cleaned_data
        filters = {"date_from": data["date_from"], "date_to": data["date_to"], "method": data["method"],
                   "user_id": data["user"].pk if data["user"] else None,
                   "branch_id": data["branch"].pk if data["branch"] else None}
    rows = selectors.contracts_issued(entity=request.entity, **filters)
    if request.GET.get("export"):
        exported = _export(request, "contracts-issued", [
            "Signed", "Loan", "Mandate", "Client number", "Client", "ID number", "Cellphone", "Method",
            "Hand signature", "Reason", "User", "Authorised by", "Override reason", "Branch", "Document SHA-256"],
            ([_local(s.signed_at, request), s.loan_id, s.mandate.contract_reference if s.mandate_id else "",
              s.client.number, f"{s.client_full_names} {s.client_surname}", s.client_id_number, s.client_cellphone,
              s.get_method_display(), "yes" if s.hand_signature_required else "no", s.get_hand_reason_display(),
              s.created_by.username if s.created_by_id else "", s.authorised_by.username if s.authorised_by_id else "",
              s.override_reason, s.branch.name, s.document_sha256] for s in rows.iterator(chunk_size=2000)))
        if exported is not None:
            return exported
    rows = list(rows[:REPORT_LIMIT])
    counts = {m: sum(1 for s in rows if s.method == m) for m in SignatureMethod.values}
    return render(request, "web/signing/contracts.html", {"form": form, "rows": rows, "counts": counts,
                                                          "limit": REPORT_LIMIT, "query": request.GET.urlencode()})


def _audit_report(request, *, title: str, selector, name: str, template: str = "web/signing/audit.html"):
    form = DatesForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    rows = selector(entity=request.entity, date_from=filters.get("date_from"), date_to=filters.get("date_to"))
    if request.GET.get("export"):
        exported = _export(request, name, ["When", "What", "User", "Subject", "Address", "Details"], (
            [_local(e.created_at, request), e.get_action_display(), e.actor.username if e.actor_id else "",
             wording.audit_subject(e.subject), e.ip_address or "", wording.audit_sentence(e.action, e.after, e.before)]
            for e in rows.iterator(chunk_size=2000)))
        if exported is not None:
            return exported
    return render(request, template, {"form": form, "rows": list(rows[:REPORT_LIMIT]), "title": title,
                                      "limit": REPORT_LIMIT, "query": request.GET.urlencode()})


@right_required(Right.REPORT_CONTRACTS_ISSUED)
def otp_audit_view(request):
    return _audit_report(request, title="Loan OTP audit", selector=selectors.otp_audit, name="loan-otp-audit")


@right_required(Right.REPORT_LOGIN_DETAIL)
def login_detail_view(request):
    return _audit_report(request, title="Login Detail", selector=selectors.login_detail, name="login-detail")


# --- Live status of a document's code -------------------------------------------------------------

def _challenge_live(challenge: Challenge) -> dict:
    """What the signing page shows of a code while it is live: the code SMS's delivery and the
    code's own state (a pending code past its time reads Expired), and the poller while either may
    still change."""
    # Imported here so this screen module's import block stays as the signing screens keep it.
    from django.utils import timezone

    from imali.messaging.selectors import HISTORY_STATUS
    from imali.signing.models import ChallengeStatus

    from ..live import SMS_NOT_FINAL, Poll

    message = challenge.outbox_message
    sms = HISTORY_STATUS.get(message.status, message.get_status_display()) if message is not None else "Not sent"
    live_code = challenge.status == ChallengeStatus.PENDING and challenge.expires_at > timezone.now()
    state = "Expired" if challenge.status == ChallengeStatus.PENDING and not live_code else challenge.get_status_display()
    polling = live_code or (message is not None and message.status in SMS_NOT_FINAL)
    kind, _, pk = challenge.subject_key.partition(":")  # "loan:<id>" or "mandate:<id>" (Document.key)
    url = reverse(f"web:signing_{kind}_code_status", kwargs={f"{kind}_id": int(pk)}) if polling else ""
    return {"challenge": challenge, "sms_status": sms, "code_status": state,
            "poll": Poll(element_id="otp-poll", url=url)}


def _code_status(request, key: str):
    challenge = (Challenge.objects.select_related("outbox_message").filter(entity=request.entity, subject_key=key)
                 .order_by("-created_at", "-id").first())
    if challenge is None:
        from ..live import Poll

        return render(request, "web/_poller.html", {"poll": Poll(element_id="otp-poll", url="")})
    return render(request, "web/signing/_challenge_status.html", {**_challenge_live(challenge), "oob": True})


@right_required(Right.CAPTURE_LOANS, methods=("GET",))
def loan_code_status_view(request, loan_id: int):
    """The loan signing page's live fragment: its latest code (the SMS's delivery and the code's
    state), under the page's right and entity. Three queries besides the session's."""
    loan = _loan(request, loan_id)
    return _code_status(request, Document(loan=loan).key)


@right_required(Right.CAPTURE_LOANS, methods=("GET",))
def mandate_code_status_view(request, mandate_id: int):
    mandate = _mandate(request, mandate_id)
    return _code_status(request, Document(loan=mandate.loan, mandate=mandate).key)


urlpatterns = [
    path("signing/setup/", setup_view, name="signing_setup"),
    path("signing/loans/", loans_view, name="signing_loans"),
    path("signing/loans/<int:loan_id>/code-status/", loan_code_status_view, name="signing_loan_code_status"),
    path("signing/mandates/<int:mandate_id>/code-status/", mandate_code_status_view, name="signing_mandate_code_status"),
    path("signing/loans/<int:loan_id>/", loan_signing_view, name="signing_loan"),
    path("signing/loans/<int:loan_id>/mandates/new/", mandate_create_view, name="signing_mandate_create"),
    path("signing/mandates/<int:mandate_id>/", mandate_signing_view, name="signing_mandate"),
    path("signing/clients/<int:client_id>/enrolment/", enrolment_view, name="signing_enrolment"),
    path("signing/signatures/<int:signature_id>/", signature_view, name="signing_signature"),
    path("signing/signatures/<int:signature_id>/agreement.pdf", signature_pdf_view, name="signing_signature_pdf"),
    path("signing/reports/contracts/", contracts_view, name="signing_contracts"),
    path("signing/reports/otp-audit/", otp_audit_view, name="signing_otp_audit"),
    path("signing/reports/logins/", login_detail_view, name="signing_login_detail"),
    path("login/otp/", login_otp_view, name="signing_login_otp"),
]
