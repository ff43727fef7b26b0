"""Mobile-money screens: provider setups, payments in and the suspense queue, statement import,
MoMo requests to pay, and mobile disbursements. Every query is scoped by the user's entity."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse

from imali.core.formatting import counted
from imali.core.forms import StrictModelChoiceField, ascii_id
from imali.loans.models import Loan
from imali.mobilemoney import selectors, services
from imali.mobilemoney.models import (
    IN_FLIGHT_STATUSES,
    Provider,
    ProviderSetup,
    ProviderTransaction,
    TransactionStatus,
)
from imali.mobilemoney.statement import MAX_FILE_BYTES
from imali.tenancy.rights import Right

from ..access import right_required
from ..forms import apply_service_errors, form_status

NAV_ITEMS = [
    ("Mobile payments in", "web:mm_transactions", Right.CAPTURE_RECEIPTS, "Loans"),
    ("Mobile-money suspense", "web:mm_suspense", Right.CAPTURE_RECEIPTS, "Loans"),
    ("Mobile-money statement import", "web:mm_statement_upload", Right.CAPTURE_RECEIPTS, "Loans"),
    ("Mobile disbursements", "web:mm_disbursements", Right.DISBURSE_LOANS, "Loans"),
    ("Mobile-money providers", "web:mm_setups", Right.MOBILE_MONEY_SETUP, "Setup"),
]

PAGE_SIZE = 50


# --- setups -----------------------------------------------------------------------------------------
class SetupForm(forms.Form):
    provider = forms.ChoiceField(choices=Provider.choices)
    is_active = forms.BooleanField(required=False, initial=True, label="Active")
    base_url = forms.URLField(label="Provider address", max_length=200, assume_scheme="https")
    short_code = forms.CharField(label="Short code / paybill (M-PESA)", max_length=20, required=False)
    target_environment = forms.CharField(label="Target environment (MoMo)", max_length=40, required=False)
    currency = forms.CharField(max_length=3, required=False, help_text="Blank: the entity's currency")
    consumer_key = forms.CharField(label="Consumer key (M-PESA) / API user (MoMo)", max_length=120)
    consumer_secret = forms.CharField(label="Consumer secret / API key", max_length=200, required=False,
                                      widget=forms.PasswordInput(render_value=False))
    subscription_key = forms.CharField(label="Subscription key (MoMo)", max_length=200, required=False,
                                       widget=forms.PasswordInput(render_value=False))
    initiator_name = forms.CharField(label="B2C initiator name (M-PESA)", max_length=60, required=False)
    security_credential = forms.CharField(label="B2C security credential (M-PESA)", max_length=600, required=False,
                                          widget=forms.PasswordInput(render_value=False))
    callback_base_url = forms.URLField(label="This system's public address (for callbacks)", max_length=200, assume_scheme="https")

    def __init__(self, *args, editing: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if editing:
            self.fields["provider"].disabled = True
            for name in ProviderSetup.SECRET_FIELDS:
                self.fields[name].help_text = "Stored; leave blank to keep it."


def _setup(request, providersetup_id: int) -> ProviderSetup:
    return get_object_or_404(ProviderSetup.objects.select_related("entity"), entity=request.entity, pk=providersetup_id)


@right_required(Right.MOBILE_MONEY_SETUP, methods=("GET", "HEAD"))
def setup_list_view(request):
    setups = list(selectors.setup_list(entity=request.entity))
    rows = [{"setup": s, "confirmation_url": services.callback_url(s, "confirmation") if s.provider == Provider.MPESA else ""}
            for s in setups]
    return render(request, "web/mobilemoney/setups.html", {"rows": rows})


@right_required(Right.MOBILE_MONEY_SETUP)
def setup_create_view(request):
    form = SetupForm(request.POST or None, initial={"callback_base_url": request.build_absolute_uri("/")})
    if request.method == "POST" and form.is_valid():
        try:
            services.setup_save(entity=request.entity, actor=request.user, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Provider set up.")
            return redirect("web:mm_setups")
    return render(request, "web/form.html", {"form": form, "title": "New mobile-money provider", "cancel_url": "web:mm_setups"}, status=form_status(form))


@right_required(Right.MOBILE_MONEY_SETUP)
def setup_edit_view(request, providersetup_id: int):
    setup = _setup(request, providersetup_id)
    initial = {f: getattr(setup, f) for f in services.SETUP_FIELDS if f not in ProviderSetup.SECRET_FIELDS}
    form = SetupForm(request.POST or None, initial=initial, editing=True)
    if request.method == "POST" and form.is_valid():
        data = {**form.cleaned_data, "provider": setup.provider}
        try:
            services.setup_save(entity=request.entity, actor=request.user, data=data, setup=setup)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Provider setup saved.")
            return redirect("web:mm_setups")
    return render(request, "web/form.html", {"form": form, "title": f"Edit {setup}", "cancel_url": "web:mm_setups"}, status=form_status(form))


@right_required(Right.MOBILE_MONEY_SETUP, methods=("POST",))
def setup_register_view(request, providersetup_id: int):
    setup = _setup(request, providersetup_id)
    try:
        services.setup_register_urls(setup=setup, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Callback URLs registered with M-PESA.")
    return redirect("web:mm_setups")


@right_required(Right.MOBILE_MONEY_SETUP, methods=("POST",))
def setup_rotate_view(request, providersetup_id: int):
    services.setup_rotate_callback_token(setup=_setup(request, providersetup_id), actor=request.user)
    messages.success(request, "New callback token made: register the URLs with the provider again.")
    return redirect("web:mm_setups")


# --- payments in and suspense ---------------------------------------------------------------------
@right_required(Right.CAPTURE_RECEIPTS, methods=("GET", "HEAD"))
def transaction_list_view(request):
    return _transactions_page(request, RequestToPayForm())


def _transactions_page(request, request_form: forms.Form):
    """The payments-in list with the request-to-pay form: empty, or the one posted and refused (400)."""
    status = request.GET.get("status", "")
    if status not in TransactionStatus.values:
        status = ""
    page = Paginator(selectors.transaction_list(entity=request.entity, status=status or None), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/mobilemoney/transactions.html", {
        "page": page, "status": status, "statuses": TransactionStatus.choices,
        "has_momo": ProviderSetup.objects.filter(entity=request.entity, provider=Provider.MOMO, is_active=True).exists(),
        "request_form": request_form}, status=form_status(request_form))


def loan_number(value: str) -> int:
    """A loan number as typed: 1234 or L1234, read by the shared `ascii_id` (ASCII digits
    only: "١٢٣" and "１２３" are refused, not read as 123), a loan id above zero."""
    number = ascii_id(value.strip().upper().removeprefix("L"))
    if number is None:
        raise forms.ValidationError("Loan number: give the loan number in the digits 0-9, e.g. 1234 or L1234.",
                                    code="invalid")
    return number


class AllocateForm(forms.Form):
    loan_reference = forms.CharField(label="Loan number (or L + loan number)", max_length=20)

    def clean_loan_reference(self):
        return loan_number(self.cleaned_data["loan_reference"])


@right_required(Right.CAPTURE_RECEIPTS, methods=("GET", "HEAD"))
def suspense_view(request):
    page = Paginator(selectors.transaction_list(entity=request.entity, status=TransactionStatus.SUSPENSE),
                     PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "web/mobilemoney/suspense.html", {"page": page, "form": AllocateForm()})


@right_required(Right.CAPTURE_RECEIPTS)
def suspense_allocate_view(request, providertransaction_id: int):
    txn = get_object_or_404(ProviderTransaction.objects.select_related("setup", "entity"), entity=request.entity,
                            pk=providertransaction_id)
    form = AllocateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        loan = Loan.objects.filter(entity=request.entity, pk=form.cleaned_data["loan_reference"]).select_related("client").first()
        if loan is None:
            form.add_error("loan_reference", "No such loan in your entity.")
        else:
            try:
                services.suspense_allocate(txn=txn, actor=request.user, loan=loan)
            except ValidationError as exc:
                apply_service_errors(form, exc, {"amount": "loan_reference", "loan": "loan_reference",
                                                 "value_date": "loan_reference", "status": "loan_reference"})
            else:
                messages.success(request, f"{txn.provider_transaction_id} allocated to loan {loan.pk}.")
                return redirect("web:mm_suspense")
    return render(request, "web/mobilemoney/allocate.html", {"txn": txn, "form": form}, status=form_status(form))


class RequestToPayForm(forms.Form):
    loan_reference = forms.CharField(label="Loan number", max_length=20)
    amount = forms.CharField(max_length=16)

    def clean_loan_reference(self):
        return loan_number(self.cleaned_data["loan_reference"])


@right_required(Right.CAPTURE_RECEIPTS)
def request_to_pay_view(request):
    """The request-to-pay form lives on the payments-in page; a GET just shows that page, and a
    refused request shows it again with the form's errors (400)."""
    from imali.mobilemoney.collections import collection_request

    if request.method != "POST":
        return _transactions_page(request, RequestToPayForm())
    form = RequestToPayForm(request.POST)
    setup = ProviderSetup.objects.filter(entity=request.entity, provider=Provider.MOMO, is_active=True).select_related("entity").first()
    if setup is None:
        messages.error(request, "Set up MTN MoMo first.")
        return redirect("web:mm_transactions")
    if form.is_valid():
        loan = Loan.objects.filter(entity=request.entity, pk=form.cleaned_data["loan_reference"]).select_related("client").first()
        if loan is None:
            form.add_error("loan_reference", "No such loan in your entity.")
        else:
            try:
                collection_request(setup=setup, loan=loan, amount=form.cleaned_data["amount"], actor=request.user)
            except ValidationError as exc:
                apply_service_errors(form, exc, {"loan": "loan_reference"})
            else:
                messages.success(request, f"Payment requested from the client of loan {loan.pk}; it shows here once approved.")
                return redirect("web:mm_transactions")
    return _transactions_page(request, form)


# --- statement import ------------------------------------------------------------------------------
def _statement_form_class():
    from imali.mobilemoney.statement import COLUMN_LABELS

    fields = {"setup": StrictModelChoiceField(queryset=ProviderSetup.objects.none(), label="Provider account"),
              "file": forms.FileField(label="Statement file (CSV or XLSX)")}
    for key, label in COLUMN_LABELS.items():
        fields[key] = forms.CharField(label=label, max_length=60, required=False)
    return type("StatementForm", (forms.Form,), fields)


StatementForm = _statement_form_class()
MAX_STATEMENT_BYTES = MAX_FILE_BYTES


@right_required(Right.CAPTURE_RECEIPTS)
def statement_upload_view(request):
    from imali.mobilemoney.statement import COLUMN_LABELS, DEFAULT_COLUMNS

    setups = selectors.setup_list(entity=request.entity).filter(is_active=True)
    first = setups.first()
    initial = {**DEFAULT_COLUMNS, **((first.statement_columns if first else None) or {})}
    if first is not None:
        initial["setup"] = first.pk
    form = StatementForm(request.POST or None, request.FILES or None, initial=initial)
    form.fields["setup"].queryset = setups
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        if upload.size > MAX_STATEMENT_BYTES:
            form.add_error("file", f"The file is larger than {MAX_STATEMENT_BYTES // (1024 * 1024)} MB: split it.")
        else:
            try:
                preview = services.statement_upload(
                    setup=form.cleaned_data["setup"], actor=request.user, file_name=upload.name, content=upload.read(),
                    columns={k: form.cleaned_data.get(k, "") for k in COLUMN_LABELS})
            except ValidationError as exc:
                apply_service_errors(form, exc)
            else:
                return redirect("web:mm_statement_preview", statementimport_id=preview.statement.pk)
    return render(request, "web/mobilemoney/statement_upload.html", {
        "form": form, "imports": selectors.import_list(entity=request.entity)[:20], "has_setup": first is not None}, status=form_status(form))


def _statement(request, statementimport_id: int):
    from imali.mobilemoney.models import StatementImport

    return get_object_or_404(StatementImport.objects.select_related("entity", "setup", "imported_by", "confirmed_by"),
                             entity=request.entity, pk=statementimport_id)


@right_required(Right.CAPTURE_RECEIPTS, methods=("GET", "HEAD"))
def statement_preview_view(request, statementimport_id: int):
    statement = _statement(request, statementimport_id)
    if statement.state != "preview":
        return render(request, "web/mobilemoney/statement_done.html", _import_progress(request, statement))
    preview = services.statement_preview(statement=statement)
    show = request.GET.get("show", "")
    lines = [line for line in preview.lines if not show or line.kind == show]
    page = Paginator(lines, 200).get_page(request.GET.get("page"))
    return render(request, "web/mobilemoney/statement_preview.html", {
        "statement": statement, "counts": preview.counts, "page": page, "show": show})


def _import_progress(request, statement) -> dict:
    running = statement.state in ("queued", "running")
    total = max(statement.lines, 1)
    return {"statement": statement, "percent": 100 if statement.state == "done" else min(99, statement.progress * 100 // total),
            "poll": {"url": reverse("web:mm_statement_progress", kwargs={"statementimport_id": statement.pk}),
                     "seconds": 2} if running else {}}


@right_required(Right.CAPTURE_RECEIPTS, methods=("GET", "HEAD"))
def statement_progress_view(request, statementimport_id: int):
    """The import's progress fragment, polled (htmx) until it has finished."""
    return render(request, "web/mobilemoney/_statement_progress.html", _import_progress(request, _statement(request, statementimport_id)))


@right_required(Right.CAPTURE_RECEIPTS, methods=("POST",))
def statement_confirm_view(request, statementimport_id: int):
    statement = _statement(request, statementimport_id)
    try:
        started = services.statement_confirm(statement=statement, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("web:mm_statement_upload")
    messages.success(request, f"Importing {started.file_name} in the background: this page shows how far it is.")
    return redirect("web:mm_statement_preview", statementimport_id=started.pk)


# --- mobile disbursements ---------------------------------------------------------------------------
@right_required(Right.DISBURSE_LOANS, methods=("GET", "HEAD"))
def disbursement_list_view(request):
    from imali.mobilemoney.models import DisbursementStatus

    entity = request.entity
    pending = list(selectors.disbursement_list(entity=entity, statuses=(DisbursementStatus.PAYMENT_PENDING,)))
    waiting = list(selectors.batches_awaiting_approval(entity=entity))
    approved = list(selectors.loans_to_pay_out(entity=entity))
    page = Paginator(selectors.disbursement_list(entity=entity).exclude(status=DisbursementStatus.PAYMENT_PENDING),
                     PAGE_SIZE).get_page(request.GET.get("page"))
    # While a payment sent waits for the provider's answer the list asks again by itself (htmx),
    # so the confirmation number appears without a reload; it stops once every answer is in.
    return render(request, "web/mobilemoney/disbursements.html", {
        "pending": pending, "pending_total": sum((d.amount for d in pending), 0), "waiting": waiting,
        "approved": approved, "page": page, "limit": request.user.disbursement_limit,
        "sent_poll": any(d.status in IN_FLIGHT_STATUSES for d in page.object_list)})


@right_required(Right.DISBURSE_LOANS, methods=("POST",))
def disbursement_mark_view(request, loan_id: int):
    from imali.mobilemoney.disbursements import disbursement_mark

    loan = get_object_or_404(Loan.objects.select_related("client", "entity"), entity=request.entity, pk=loan_id)
    try:
        disbursement_mark(loan=loan, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Loan {loan.pk}: mobile payment pending.")
    return redirect("web:mm_disbursements")


@right_required(Right.DISBURSE_LOANS, methods=("POST",))
def disbursement_cancel_view(request, disbursement_id: int):
    from imali.mobilemoney.disbursements import disbursement_cancel
    from imali.mobilemoney.models import Disbursement

    disbursement = get_object_or_404(Disbursement, entity=request.entity, pk=disbursement_id)
    try:
        disbursement_cancel(disbursement=disbursement, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Mobile payment for loan {disbursement.loan_id} cancelled.")
    return redirect("web:mm_disbursements")


@right_required(Right.DISBURSE_LOANS, methods=("POST",))
def payments_send_view(request):
    from imali.mobilemoney.disbursements import payments_send

    try:
        batch = payments_send(entity=request.entity, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        if batch.approved_by_id:
            messages.success(request, f"{counted(batch.count, 'payment')} ({batch.total:,.2f}) sent; results show below as they arrive.")
        else:
            messages.warning(request, f"The total {batch.total:,.2f} is above your disbursement limit: a user whose "
                                      f"limit covers it must approve the {counted(batch.count, 'payment')}.")
    return redirect("web:mm_disbursements")


@right_required(Right.DISBURSE_LOANS, methods=("POST",))
def batch_approve_view(request, disbursementbatch_id: int):
    from imali.mobilemoney.disbursements import batch_approve
    from imali.mobilemoney.models import DisbursementBatch

    batch = get_object_or_404(DisbursementBatch, entity=request.entity, pk=disbursementbatch_id)
    try:
        batch_approve(batch=batch, actor=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Approved and sent {batch.count} payments.")
    return redirect("web:mm_disbursements")


@right_required(Right.DISBURSE_LOANS, methods=("POST",))
def disbursement_check_view(request, disbursement_id: int):
    from imali.mobilemoney.disbursements import disbursement_check
    from imali.mobilemoney.models import Disbursement

    disbursement = get_object_or_404(Disbursement, entity=request.entity, pk=disbursement_id)
    disbursement_check(disbursement=disbursement)
    messages.info(request, "Status asked from the provider.")
    return redirect("web:mm_disbursements")


urlpatterns = [
    path("mobile-money/statements/", statement_upload_view, name="mm_statement_upload"),
    path("mobile-money/statements/<int:statementimport_id>/", statement_preview_view, name="mm_statement_preview"),
    path("mobile-money/statements/<int:statementimport_id>/confirm/", statement_confirm_view, name="mm_statement_confirm"),
    path("mobile-money/statements/<int:statementimport_id>/progress/", statement_progress_view, name="mm_statement_progress"),
    path("mobile-money/disbursements/", disbursement_list_view, name="mm_disbursements"),
    path("mobile-money/disbursements/send/", payments_send_view, name="mm_payments_send"),
    path("mobile-money/disbursements/loan/<int:loan_id>/", disbursement_mark_view, name="mm_disbursement_mark"),
    path("mobile-money/disbursements/<int:disbursement_id>/cancel/", disbursement_cancel_view, name="mm_disbursement_cancel"),
    path("mobile-money/disbursements/<int:disbursement_id>/check/", disbursement_check_view, name="mm_disbursement_check"),
    path("mobile-money/disbursements/batches/<int:disbursementbatch_id>/approve/", batch_approve_view, name="mm_batch_approve"),
    path("mobile-money/providers/", setup_list_view, name="mm_setups"),
    path("mobile-money/providers/new/", setup_create_view, name="mm_setup_create"),
    path("mobile-money/providers/<int:providersetup_id>/edit/", setup_edit_view, name="mm_setup_edit"),
    path("mobile-money/providers/<int:providersetup_id>/register/", setup_register_view, name="mm_setup_register"),
    path("mobile-money/providers/<int:providersetup_id>/rotate/", setup_rotate_view, name="mm_setup_rotate"),
    path("mobile-money/payments/", transaction_list_view, name="mm_transactions"),
    path("mobile-money/payments/request/", request_to_pay_view, name="mm_request_to_pay"),
    path("mobile-money/suspense/", suspense_view, name="mm_suspense"),
    path("mobile-money/suspense/<int:providertransaction_id>/allocate/", suspense_allocate_view, name="mm_allocate"),
]
