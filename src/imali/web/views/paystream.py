"""Payment-stream screens: the client's stream page (registration, accounts with the check-digit
test, wallets that appear when the stream creates them, credit payments, card-issue receipts), the
loan's stream page (promissory notes from the schedule, print, cancel, instalment edits, payout to
accounts plus cash), the stream settings and the request log. Thin: forms parse, services decide;
every lookup is inside the signed-in user's entity, so another entity's record is a 404."""

from __future__ import annotations

from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.views.decorators.debug import sensitive_post_parameters

from imali.clients.models import AccountKind, BankAccountType, Client
from imali.core.forms import StrictIntegerFormField, StrictModelChoiceField
from imali.loans.models import Loan
from imali.paystream import selectors, services
from imali.paystream.models import (
    CreditPayment,
    CreditPaymentStatus,
    NoteStatus,
    PaymentStreamKind,
    PromissoryNote,
    StreamSettings,
    WalletStatus,
)
from imali.tenancy.rights import Right

from ..access import right_required
from ..forms import IsoDateInput, MoneyFormField, apply_service_errors, form_status

RIGHT = Right.PAYMENT_STREAM_WEB_SERVICES
NAV_ITEMS = [
    ("Payment stream requests", "web:paystream_requests", RIGHT, "Loans"),
    ("Payment stream", "web:paystream_settings", RIGHT, "Setup"),
]
POST_ONLY = ("POST",)


# --- forms -----------------------------------------------------------------------------------
class AccountForm(forms.Form):
    branch_code = forms.CharField(max_length=6, label="Branch code", help_text="6 digits, e.g. 632005 for ABSA")
    account_number = forms.CharField(max_length=20, label="Account number")
    account_type = forms.ChoiceField(choices=BankAccountType.choices, label="Account type")
    bank_name = forms.CharField(max_length=60, required=False, label="Bank", help_text="Blank: the bank the check-digit table names")


class PayForm(forms.Form):
    account_1 = StrictModelChoiceField(queryset=None, label="First account")
    amount_1 = MoneyFormField(label="Amount to the first account")
    account_2 = StrictModelChoiceField(queryset=None, required=False, label="Second account (optional)")
    amount_2 = MoneyFormField(required=False, label="Amount to the second account")
    cash_amount = MoneyFormField(allow_zero=True, required=False, label="Cash part")

    def __init__(self, *args, accounts, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account_1"].queryset = accounts
        self.fields["account_2"].queryset = accounts

    def clean(self):
        data = super().clean()
        # An amount for a second account with no account chosen would be dropped, and less paid than typed.
        if data.get("amount_2") and not data.get("account_2") and not self.has_error("account_2"):
            self.add_error("account_2", "Choose the second account, or leave the second amount blank.")
        return data

    def parts(self) -> list:
        data = self.cleaned_data
        parts = [(data["account_1"], data["amount_1"])]
        if data.get("account_2"):
            parts.append((data["account_2"], data.get("amount_2") or ""))
        return parts


class CardForm(forms.Form):
    card_number = forms.CharField(max_length=23, label="Card number", help_text="The card assigned to the client at the terminal")


class NoteForm(forms.Form):
    stream = forms.ChoiceField(choices=PaymentStreamKind.choices, label="Payment stream")
    account = StrictModelChoiceField(queryset=None, label="Collect from")
    tracking_days = StrictIntegerFormField(min_value=0, max_value=32, initial=0, label="Tracking (days)")

    def __init__(self, *args, accounts, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts


class InstalmentForm(forms.Form):
    seq = StrictIntegerFormField(min_value=1, label="Instalment number")
    action_date = forms.DateField(required=False, widget=IsoDateInput(), label="New action date")
    amount = MoneyFormField(required=False, label="New amount (EFT and Social Grant EFT only)")
    tracking_days = StrictIntegerFormField(min_value=0, max_value=32, required=False, label="New tracking (days)")


class SettingsForm(forms.Form):
    base_url = forms.URLField(assume_scheme="https", max_length=StreamSettings._meta.get_field("base_url").max_length,
                              label="Base URL", help_text="The payment stream's web-service address")
    username = forms.CharField(max_length=80, label="User name")
    password = forms.CharField(max_length=200, required=False, label="Password",
                               widget=forms.PasswordInput(render_value=False),
                               help_text="Stored as a secret and never shown; leave blank to keep the stored one")
    branch_code = forms.CharField(max_length=20, required=False, label="Branch at the stream")
    timeout_seconds = StrictIntegerFormField(min_value=1, max_value=120, initial=10, label="Time-out (seconds)")
    decline_sms = forms.BooleanField(required=False, label="SMS the client when a debit is declined or returned unpaid",
                                     help_text="The text is the SMS template 'Debit order declined or returned unpaid', "
                                               "followed by the amount, loan, date and the bank's reason")


# --- helpers ---------------------------------------------------------------------------------
def _client(request, client_id: int) -> Client:
    return get_object_or_404(Client.objects.select_related("entity", "branch", "employer"), entity=request.entity, pk=client_id)


def _loan(request, loan_id: int) -> Loan:
    return get_object_or_404(Loan.objects.select_related("entity", "client", "product"), entity=request.entity, pk=loan_id)


def _pdf(content: bytes, name: str) -> HttpResponse:
    response = HttpResponse(content, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="{name}.pdf"'
    return response


def _wallet_poll(client: Client, wallets) -> str:
    waiting = any(w.status == WalletStatus.REQUESTED for w in wallets)
    return reverse("web:paystream_wallets", kwargs={"client_id": client.pk}) if waiting else ""


def _client_page(request, client: Client, **forms_given):
    entity = request.entity
    accounts = selectors.stream_accounts(entity=entity, client=client)
    wallets = selectors.wallet_requests(entity=entity, client=client)
    context = {
        "client": client, "registration": selectors.client_registration(entity=entity, client=client),
        "stream_accounts": accounts, "unregistered": selectors.unregistered_bank_accounts(entity=entity, client=client),
        "wallets": wallets, "wallet_poll": _wallet_poll(client, wallets),
        "payments": selectors.credit_payments(entity=entity, client=client),
        "card_receipts": selectors.card_receipts(entity=entity, client=client),
        "account_form": forms_given.get("account_form") or AccountForm(),
        "pay_form": forms_given.get("pay_form") or PayForm(accounts=selectors.stream_accounts_qs(entity=entity, client=client)),
        "card_form": forms_given.get("card_form") or CardForm(),
        "errors": forms_given.get("errors") or [],
        "time_zone": entity.time_zone, "currency": entity.currency, **_payout_context(request.user),
    }
    return render(request, "web/paystream/client.html", context, status=400 if forms_given else 200)


def _messages_of(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{'' if f == '__all__' else f.replace('_', ' ').capitalize() + ': '}{m}"
                for f, errs in exc.error_dict.items() for e in errs for m in e.messages]
    return list(exc.messages)


# --- client screens --------------------------------------------------------------------------
@right_required(RIGHT)
def client_view(request, client_id: int):
    return _client_page(request, _client(request, client_id))


@right_required(RIGHT, methods=POST_ONLY)
def client_register_view(request, client_id: int):
    client = _client(request, client_id)
    try:
        services.client_register(entity=request.entity, actor=request.user, client=client)
    except ValidationError as exc:
        return _client_page(request, client, errors=_messages_of(exc))
    messages.success(request, "The client is registered at the payment stream.")
    return redirect("web:paystream_client", client_id=client.pk)


@right_required(RIGHT, methods=POST_ONLY)
def account_add_view(request, client_id: int):
    client = _client(request, client_id)
    form = AccountForm(request.POST)
    if form.is_valid():
        try:
            services.account_register(entity=request.entity, actor=request.user, client=client, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "The account passed the check-digit test and is registered at the payment stream.")
            return redirect("web:paystream_client", client_id=client.pk)
    return _client_page(request, client, account_form=form)


@right_required(RIGHT, methods=POST_ONLY)
def account_register_existing_view(request, client_id: int, clientaccount_id: int):
    client = _client(request, client_id)
    account = get_object_or_404(client.accounts.filter(kind=AccountKind.BANK), pk=clientaccount_id)
    try:
        services.account_register(entity=request.entity, actor=request.user, client=client, account=account,
                                  account_type=account.account_type)
    except ValidationError as exc:
        return _client_page(request, client, errors=_messages_of(exc))
    messages.success(request, "The account is registered at the payment stream.")
    return redirect("web:paystream_client", client_id=client.pk)


@right_required(RIGHT, methods=POST_ONLY)
def wallet_create_view(request, client_id: int):
    client = _client(request, client_id)
    try:
        services.wallet_create(entity=request.entity, actor=request.user, client=client)
    except ValidationError as exc:
        return _client_page(request, client, errors=_messages_of(exc))
    messages.success(request, "Wallet requested: the stream creates it shortly and it then appears among the accounts.")
    return redirect("web:paystream_client", client_id=client.pk)


@right_required(RIGHT, methods=("GET",))
def wallets_fragment_view(request, client_id: int):
    """Polled by the client page while a wallet is being created: reads the database only (the
    consumer asks the stream, tasks.paystream_wallet_follow), so a page left open costs the stream
    nothing."""
    client = _client(request, client_id)
    wallets = selectors.wallet_requests(entity=request.entity, client=client)
    response = render(request, "web/paystream/_wallets.html", {"client": client, "wallets": wallets,
                                                                "wallet_poll": _wallet_poll(client, wallets)})
    if not any(w.status == WalletStatus.REQUESTED for w in wallets):
        # The wallet joined the accounts: reload the page so the account lists show it.
        response["HX-Refresh"] = "true"
    return response


@right_required(RIGHT, methods=POST_ONLY)
def pay_view(request, client_id: int):
    client = _client(request, client_id)
    form = PayForm(request.POST, accounts=selectors.stream_accounts_qs(entity=request.entity, client=client))
    if form.is_valid():
        try:
            payment = services.credit_pay(entity=request.entity, actor=request.user, client=client, parts=form.parts(),
                                          cash_amount=form.cleaned_data.get("cash_amount") or "0")
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Credit payment {payment.reference} accepted by the stream (validated; the bank pays later).")
            return redirect("web:paystream_client", client_id=client.pk)
    return _client_page(request, client, pay_form=form)


@right_required(RIGHT, methods=POST_ONLY)
def payment_print_view(request, creditpayment_id: int):
    payment = get_object_or_404(CreditPayment.objects.select_related("client"), entity=request.entity, pk=creditpayment_id)
    try:
        _, pdf = services.client_credit_print(entity=request.entity, actor=request.user, payment=payment)
    except ValidationError as exc:
        return _client_page(request, payment.client, errors=_messages_of(exc))
    return _pdf(pdf, f"client-credit-{payment.reference}")


@right_required(RIGHT, methods=POST_ONLY)
def payment_retry_view(request, creditpayment_id: int):
    payment = get_object_or_404(CreditPayment.objects.select_related("client"), entity=request.entity, pk=creditpayment_id)
    try:
        payment = services.credit_payment_retry(entity=request.entity, actor=request.user, payment=payment)
    except ValidationError as exc:
        return _client_page(request, payment.client, errors=_messages_of(exc))
    messages.success(request, f"Credit payment: {payment.get_status_display()}.")
    return redirect("web:paystream_client", client_id=payment.client_id)


@right_required(RIGHT, methods=POST_ONLY)
def payment_check_view(request, creditpayment_id: int):
    """Ask the stream now whether the receiving bank returned the payment (the hourly task asks too)."""
    payment = get_object_or_404(CreditPayment.objects.select_related("client"), entity=request.entity, pk=creditpayment_id)
    try:
        payment = services.credit_payment_check(entity=request.entity, actor=request.user, payment=payment)
    except ValidationError as exc:
        return _client_page(request, payment.client, errors=_messages_of(exc))
    if payment.status == CreditPaymentStatus.RETURNED:
        messages.warning(request, f"Credit payment {payment.reference}: {payment.problem}")
    else:
        messages.success(request, f"Credit payment {payment.reference}: no return reported by the stream.")
    target = request.POST.get("next", "")
    if payment.loan_id and target == "loan":
        return redirect("web:paystream_loan", loan_id=payment.loan_id)
    return redirect("web:paystream_client", client_id=payment.client_id)


@right_required(RIGHT, methods=POST_ONLY)
def card_receipt_view(request, client_id: int):
    client = _client(request, client_id)
    form = CardForm(request.POST)
    if form.is_valid():
        try:
            receipt, pdf = services.card_issue_receipt_print(entity=request.entity, actor=request.user, client=client,
                                                             card_number=form.cleaned_data["card_number"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            return _pdf(pdf, f"card-issue-receipt-{client.number}-{receipt.card_last_four}")
    return _client_page(request, client, card_form=form)


def _payout_context(user) -> dict:
    """Paying out is a disbursement: the form shows only to a user with the right, with their limit
    (the service checks both again)."""
    return {"can_pay_out": user.has_right(Right.DISBURSE_LOANS), "disburse_right_label": Right.DISBURSE_LOANS.label,
            "disbursement_limit": getattr(user, "disbursement_limit", None) or Decimal(0)}


# --- loan screens ----------------------------------------------------------------------------
def _loan_page(request, loan: Loan, **forms_given):
    entity = request.entity
    accounts = selectors.stream_accounts_qs(entity=entity, client=loan.client)
    context = {
        "loan": loan, "notes": selectors.loan_notes(entity=entity, loan=loan),
        "results": selectors.loan_collection_results(entity=entity, loan=loan),
        "payments": selectors.credit_payments(entity=entity, client=loan.client, loan=loan),
        "note_form": forms_given.get("note_form") or NoteForm(accounts=accounts.filter(account__kind=AccountKind.BANK)),
        "instalment_form": forms_given.get("instalment_form") or InstalmentForm(),
        "pay_form": forms_given.get("pay_form") or PayForm(accounts=accounts, initial={"amount_1": loan.principal}),
        "errors": forms_given.get("errors") or [], "edited_note": forms_given.get("edited_note"),
        "printable": (NoteStatus.ACTIVE, NoteStatus.PENDING, NoteStatus.CANCELLED),
        "time_zone": entity.time_zone, "currency": entity.currency, **_payout_context(request.user),
    }
    return render(request, "web/paystream/loan.html", context, status=400 if forms_given else 200)


@right_required(RIGHT)
def loan_view(request, loan_id: int):
    return _loan_page(request, _loan(request, loan_id))


@right_required(RIGHT, methods=POST_ONLY)
def note_create_view(request, loan_id: int):
    loan = _loan(request, loan_id)
    form = NoteForm(request.POST, accounts=selectors.stream_accounts_qs(entity=request.entity, client=loan.client)
                    .filter(account__kind=AccountKind.BANK))
    if form.is_valid():
        try:
            note = services.note_create(entity=request.entity, actor=request.user, loan=loan, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Promissory note {note.reference} created ({note.get_status_display().lower()}). "
                                      "Print it for the client to sign.")
            return redirect("web:paystream_loan", loan_id=loan.pk)
    return _loan_page(request, loan, note_form=form)


def _note(request, promissorynote_id: int) -> PromissoryNote:
    return get_object_or_404(PromissoryNote.objects.select_related("loan", "client", "loan__client"), entity=request.entity, pk=promissorynote_id)


@right_required(RIGHT, methods=POST_ONLY)
def note_print_view(request, promissorynote_id: int):
    note = _note(request, promissorynote_id)
    try:
        document, pdf = services.note_print(entity=request.entity, actor=request.user, note=note)
    except ValidationError as exc:
        return _loan_page(request, note.loan, errors=_messages_of(exc))
    return _pdf(pdf, f"{document.kind.replace('_', '-')}-{note.reference}")


@right_required(RIGHT, methods=POST_ONLY)
def note_cancel_view(request, promissorynote_id: int):
    note = _note(request, promissorynote_id)
    try:
        services.note_cancel(entity=request.entity, actor=request.user, note=note)
    except ValidationError as exc:
        return _loan_page(request, note.loan, errors=_messages_of(exc))
    messages.success(request, f"Promissory note {note.reference} cancelled: no instalment of it will be collected.")
    return redirect("web:paystream_loan", loan_id=note.loan_id)


@right_required(RIGHT, methods=POST_ONLY)
def instalment_edit_view(request, promissorynote_id: int):
    note = _note(request, promissorynote_id)
    form = InstalmentForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.instalment_edit(entity=request.entity, actor=request.user, note=note, seq=data["seq"],
                                     action_date=data.get("action_date"), amount=data.get("amount"),
                                     tracking_days=data.get("tracking_days"))
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Instalment {data['seq']} of note {note.reference} changed.")
            return redirect("web:paystream_loan", loan_id=note.loan_id)
    return _loan_page(request, note.loan, instalment_form=form, edited_note=note.pk)


@right_required(RIGHT, methods=POST_ONLY)
def loan_pay_view(request, loan_id: int):
    loan = _loan(request, loan_id)
    form = PayForm(request.POST, accounts=selectors.stream_accounts_qs(entity=request.entity, client=loan.client))
    if form.is_valid():
        try:
            payment = services.credit_pay(entity=request.entity, actor=request.user, client=loan.client, loan=loan,
                                          parts=form.parts(), cash_amount=form.cleaned_data.get("cash_amount") or "0")
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            if payment.status == CreditPaymentStatus.ACCEPTED:
                messages.success(request, f"Payout {payment.reference} accepted by the stream (validated; the bank pays later).")
            return redirect("web:paystream_loan", loan_id=loan.pk)
    return _loan_page(request, loan, pay_form=form)


@right_required(RIGHT, methods=POST_ONLY)
def collections_fetch_view(request, loan_id: int):
    """Import the stream's new collection results now (the task does it every quarter hour)."""
    loan = _loan(request, loan_id)
    try:
        summary = services.collections_fetch(entity=request.entity, actor=request.user)
    except ValidationError as exc:
        return _loan_page(request, loan, errors=_messages_of(exc))
    messages.success(request, f"Collection results imported: {summary.collected} collected, {summary.declined} declined, "
                              f"{summary.returned} returned unpaid, {summary.problems} not applied"
                              + (f", {summary.malformed} unreadable (kept for follow-up)." if summary.malformed else "."))
    return redirect("web:paystream_loan", loan_id=loan.pk)


@right_required(RIGHT, methods=POST_ONLY)
def wallets_ask_view(request, client_id: int):
    """"Ask the stream now" about the client's wallets being created: a person's explicit call,
    rate-limited and audited by the service."""
    client = _client(request, client_id)
    try:
        asked = services.wallets_ask(entity=request.entity, actor=request.user, client=client)
    except ValidationError as exc:
        return _client_page(request, client, errors=_messages_of(exc))
    messages.info(request, "The stream was asked." if asked else "No wallet is waiting to be created.")
    return redirect("web:paystream_client", client_id=client.pk)


# --- setup and log ---------------------------------------------------------------------------
@sensitive_post_parameters("password")
@right_required(RIGHT)
def settings_view(request):
    current = StreamSettings.objects.filter(entity=request.entity).first()
    initial = {"base_url": current.base_url, "username": current.username, "branch_code": current.branch_code,
               "timeout_seconds": current.timeout_seconds, "decline_sms": current.decline_sms} if current else {}
    form = SettingsForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            services.stream_settings_save(entity=request.entity, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Payment-stream settings saved.")
            return redirect("web:paystream_settings")
    return render(request, "web/paystream/settings.html", {"form": form, "has_password": bool(current and current.password)},
                  status=form_status(form))


@right_required(RIGHT, methods=("GET",))
def requests_view(request):
    page = Paginator(selectors.request_log(entity=request.entity), 50).get_page(request.GET.get("page"))
    return render(request, "web/paystream/requests.html", {
        "page": page, "time_zone": request.entity.time_zone,
        "collection_problems": selectors.collection_problems(entity=request.entity)})


urlpatterns = [
    path("clients/<int:client_id>/payment-stream/", client_view, name="paystream_client"),
    path("clients/<int:client_id>/payment-stream/register/", client_register_view, name="paystream_client_register"),
    path("clients/<int:client_id>/payment-stream/accounts/", account_add_view, name="paystream_account_add"),
    path("clients/<int:client_id>/payment-stream/accounts/<int:clientaccount_id>/register/", account_register_existing_view,
         name="paystream_account_register"),
    path("clients/<int:client_id>/payment-stream/wallet/", wallet_create_view, name="paystream_wallet_create"),
    path("clients/<int:client_id>/payment-stream/wallets/", wallets_fragment_view, name="paystream_wallets"),
    path("clients/<int:client_id>/payment-stream/wallets/ask/", wallets_ask_view, name="paystream_wallets_ask"),
    path("clients/<int:client_id>/payment-stream/pay/", pay_view, name="paystream_pay"),
    path("clients/<int:client_id>/payment-stream/card-receipt/", card_receipt_view, name="paystream_card_receipt"),
    path("payment-stream/payments/<int:creditpayment_id>/print/", payment_print_view, name="paystream_payment_print"),
    path("payment-stream/payments/<int:creditpayment_id>/retry/", payment_retry_view, name="paystream_payment_retry"),
    path("payment-stream/payments/<int:creditpayment_id>/check/", payment_check_view, name="paystream_payment_check"),
    path("loans/<int:loan_id>/payment-stream/", loan_view, name="paystream_loan"),
    path("loans/<int:loan_id>/payment-stream/notes/", note_create_view, name="paystream_note_create"),
    path("loans/<int:loan_id>/payment-stream/pay/", loan_pay_view, name="paystream_loan_pay"),
    path("loans/<int:loan_id>/payment-stream/collections/", collections_fetch_view, name="paystream_collections_fetch"),
    path("payment-stream/notes/<int:promissorynote_id>/print/", note_print_view, name="paystream_note_print"),
    path("payment-stream/notes/<int:promissorynote_id>/cancel/", note_cancel_view, name="paystream_note_cancel"),
    path("payment-stream/notes/<int:promissorynote_id>/instalment/", instalment_edit_view, name="paystream_instalment_edit"),
    path("setup/payment-stream/", settings_view, name="paystream_settings"),
    path("payment-stream/requests/", requests_view, name="paystream_requests"),
]
