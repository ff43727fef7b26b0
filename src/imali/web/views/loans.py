"""Loan screens: products, application → approval → disbursement (gated on signing where the
entity's Loan OTP applies), loan detail with schedule, receipts, change refunds and audit trail,
receipt capture and reversal, change refunds and their reversal, write-off and hand-over, a client's
non-loan debits, the client statement PDF. Thin: forms parse, services decide."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path
from django.views.decorators.http import require_POST

from imali.clients.models import AccountPurpose, Client, ClientAccount
from imali.core.forms import StrictIntegerFormField, StrictModelChoiceField, strict_formfield
from imali.loans import queries, selectors, services
from imali.loans.models import (
    OPEN_STATUSES,
    ChangeRefund,
    Loan,
    LoanStatus,
    NonLoanDebit,
    PaybackType,
    Product,
    Receipt,
    RefundMethod,
    payback_types_for,
)
from imali.loans.pricing import DEFAULT_VAT_RATES, caps_for
from imali.loans.statement import client_statement_pdf
from imali.signing.rules import agreement_signable
from imali.signing.selectors import agreement_signature
from imali.tenancy.rights import Right

from .. import wording
from ..access import right_required
from ..forms import IsoDateInput, MoneyFormField, RateFormField, apply_service_errors, form_status

NAV_ITEMS = [
    ("Loans", "web:loan_list", Right.VIEW_CLIENTS, "Loans"),
    ("Loan products", "web:product_list", Right.MANAGE_PRODUCTS, "Setup"),
]


def _date_input():
    return IsoDateInput()


class ProductForm(forms.ModelForm):
    min_principal = MoneyFormField()
    max_principal = MoneyFormField()
    service_fee_pm = MoneyFormField(allow_zero=True, label="Service fee per month")
    initiation_fee = MoneyFormField(allow_zero=True, required=False, label="Initiation fee (before VAT)",
                                    help_text=Product._meta.get_field("initiation_fee").help_text)
    interest_rate_pm = RateFormField(label="Interest rate (% per month)")
    vat_rate = RateFormField(places=2, label="VAT on fees (%)")

    class Meta:
        model = Product
        fields = list(services.PRODUCT_FIELDS)
        formfield_callback = strict_formfield


ARREARS_SEEN_LABEL = "I have seen that the client is in arrears"


def _arrears_field(standing: ClientStanding | None) -> forms.BooleanField | None:
    """A checkbox the form requires when the client is in arrears: the user confirms having seen it."""
    if standing is None or not standing.in_arrears:
        return None
    return forms.BooleanField(
        label=ARREARS_SEEN_LABEL, required=True,
        help_text=f"Arrears {standing.arrears_text}; outstanding {standing.outstanding:,.2f}.",
        error_messages={"required": "Tick the box to confirm you have seen that the client is in arrears."})


class ApplicationForm(forms.Form):
    product = StrictModelChoiceField(queryset=Product.objects.none())
    principal = MoneyFormField()
    instalments = StrictIntegerFormField(min_value=1)
    pay_day = StrictIntegerFormField(required=False, help_text="Day of month, or weekday 1=Mon–7=Sun; blank: the client's")

    def __init__(self, *args, entity, standing: ClientStanding | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["product"].queryset = selectors.product_list(entity=entity, active_only=True)
        field = _arrears_field(standing)
        if field is not None:
            self.fields["arrears_seen"] = field

    def clean(self):
        """The product's limits checked here too, beside the missing and malformed fields, so the
        user sees every problem of the application at once (the service checks them again)."""
        data = super().clean()
        product = data.get("product")
        if product is None:
            return data
        principal, count, pay_day = data.get("principal"), data.get("instalments"), data.get("pay_day")
        if principal is not None and not product.min_principal <= principal <= product.max_principal:
            self.add_error("principal", f"The product lends {product.min_principal:,.2f} to {product.max_principal:,.2f}.")
        if count is not None and not product.min_instalments <= count <= product.max_instalments:
            self.add_error("instalments",
                           f"The product allows {product.min_instalments} to {product.max_instalments} instalments.")
        limit = 31 if product.frequency == "monthly" else 7
        if pay_day is not None and not 1 <= pay_day <= limit:
            self.add_error("pay_day", f"The pay day must be 1 to {limit} for {product.frequency} payments.")
        return data


class DisburseForm(forms.Form):
    payout_account = StrictModelChoiceField(queryset=ClientAccount.objects.none())
    disbursed_on = forms.DateField(widget=_date_input())

    def __init__(self, *args, loan, standing: ClientStanding | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["payout_account"].queryset = ClientAccount.objects.filter(
            client=loan.client, is_active=True, purpose__in=(AccountPurpose.PAYOUT, AccountPurpose.BOTH))
        field = _arrears_field(standing)
        if field is not None:
            self.fields["arrears_seen"] = field


class ApproveForm(forms.Form):
    """Approval is one button; for a client in arrears it carries the confirmation checkbox."""

    def __init__(self, *args, standing: ClientStanding | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.standing = standing  # the page shows it beside the refused form (not worked out again)
        field = _arrears_field(standing)
        if field is not None:
            self.fields["arrears_seen"] = field


class ReceiptForm(forms.Form):
    amount = MoneyFormField()
    value_date = forms.DateField(widget=_date_input())
    payback_type = forms.ChoiceField(choices=PaybackType.choices)
    external_reference = forms.CharField(max_length=64, required=False)

    def __init__(self, *args, country: str, **kwargs):
        super().__init__(*args, **kwargs)
        # Only the types a lender in this country collects by (no NAEDO or DebiCheck outside ZA).
        self.fields["payback_type"].choices = payback_types_for(country)


class ReasonForm(forms.Form):
    reason = forms.CharField(max_length=200)


class NonLoanDebitForm(forms.Form):
    description = forms.CharField(max_length=120, help_text="What the client owes for, e.g. a returned debit order fee")
    amount = MoneyFormField()
    debit_date = forms.DateField(widget=_date_input())


class SettleForm(forms.Form):
    settled_on = forms.DateField(widget=_date_input())


class ChangeRefundForm(forms.Form):
    amount = MoneyFormField()
    paid_on = forms.DateField(widget=_date_input())
    method = forms.ChoiceField(choices=RefundMethod.choices)
    reference = forms.CharField(max_length=64, required=False, help_text="Payment or slip reference")
    reason = forms.CharField(max_length=200)


def _as_of(request):
    """The day the figures are for: ?as_of=YYYY-MM-DD, else the entity's today. Returns (day, error)."""
    today = services.local_today(request.entity)
    raw = request.GET.get("as_of")
    if not raw:
        return today, ""
    try:
        return forms.DateField().clean(raw), ""
    except ValidationError:
        return today, "Enter a date as YYYY-MM-DD; today's figures are shown."


def _loan(request, loan_id: int) -> Loan:
    return get_object_or_404(Loan.objects.select_related("client", "product", "entity"), entity=request.entity, pk=loan_id)


@dataclass(frozen=True)
class ClientStanding:
    """The client's standing as the loan screens show it before a new loan goes ahead."""

    status: str
    new_loans_allowed: bool
    outstanding: Decimal
    arrears_amount: Decimal
    arrears_days: int
    arrears_months: int
    as_of: dt.date

    @property
    def in_arrears(self) -> bool:
        return self.arrears_amount > 0

    @property
    def arrears_text(self) -> str:
        if not self.in_arrears:
            return "none"
        months = f", {self.arrears_months} month{'s' if self.arrears_months != 1 else ''}" if self.arrears_months else ""
        return f"{self.arrears_amount:,.2f} ({self.arrears_days} days{months})"


def client_standing(*, entity, client: Client) -> ClientStanding:
    as_of = services.local_today(entity)
    figures = selectors.client_figures(entity=entity, client_id=client.pk, as_of=as_of)
    return ClientStanding(status=client.get_status_display(), new_loans_allowed=client.new_loans_allowed,
                          outstanding=figures.outstanding, arrears_amount=figures.arrears_amount,
                          arrears_days=figures.arrears_days, arrears_months=figures.arrears_months, as_of=as_of)


# --- products ------------------------------------------------------------------------------------
@right_required(Right.MANAGE_PRODUCTS)
def product_list_view(request):
    return render(request, "web/loans/products.html", {
        "products": selectors.product_list(entity=request.entity),
        "has_caps": caps_for(request.entity.country) is not None,
    })


@right_required(Right.MANAGE_PRODUCTS)
def product_create_view(request):
    # The country's standard VAT rate shown, not left to be typed (the service's default when none is sent).
    form = ProductForm(request.POST or None, initial={"vat_rate": DEFAULT_VAT_RATES.get(request.entity.country)})
    if request.method == "POST" and form.is_valid():
        try:
            product = services.product_create(entity=request.entity, actor=request.user, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Product {product.name} created.")
            return redirect("web:product_list")
    return render(request, "web/form.html", {"form": form, "title": "New loan product", "cancel_url": "web:product_list"}, status=form_status(form))


@right_required(Right.MANAGE_PRODUCTS)
def product_edit_view(request, product_id: int):
    product = get_object_or_404(Product, entity=request.entity, pk=product_id)
    form = ProductForm(request.POST or None, instance=product)
    if request.method == "POST" and form.is_valid():
        try:
            services.product_update(product=Product.objects.get(pk=product.pk), actor=request.user, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Product saved.")
            return redirect("web:product_list")
    return render(request, "web/form.html", {"form": form, "title": f"Edit product {product.name}", "cancel_url": "web:product_list"}, status=form_status(form))


# --- loans ---------------------------------------------------------------------------------------
@right_required(Right.VIEW_CLIENTS, methods=("GET", "HEAD"))
def loan_list_view(request):
    status = request.GET.get("status") or None
    if status not in LoanStatus.values:
        status = None
    query = " ".join(request.GET.get("q", "").split())[:100]
    loans = selectors.loan_list(entity=request.entity, status=status, client_query=query or None)
    page = Paginator(loans, 50).get_page(request.GET.get("page"))
    return render(request, "web/loans/list.html", {"page": page, "statuses": LoanStatus.choices, "status": status, "q": query})


@right_required(Right.CAPTURE_LOANS)
def loan_apply_view(request, client_id: int):
    client = get_object_or_404(Client, entity=request.entity, pk=client_id)
    standing = client_standing(entity=request.entity, client=client)
    form = ApplicationForm(request.POST or None, entity=request.entity, standing=standing)
    refusal = services.borrower_refusal(client)
    if request.method == "GET" and refusal:
        # Said before the form is filled in: the application would be refused on submit.
        messages.warning(request, refusal)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            loan = services.loan_apply(entity=request.entity, actor=request.user, client=client, product=data["product"],
                                       principal=data["principal"], instalments=data["instalments"], pay_day=data["pay_day"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Application captured: {loan.total_repayable:,.2f} repayable.")
            return redirect("web:loan_detail", loan_id=loan.pk)
    return render(request, "web/loans/apply.html", {"form": form, "title": f"Loan application for {client}",
                                                    "client": client, "standing": standing,
                                                    "cancel_url": "web:client_detail", "cancel_arg": client.pk}, status=form_status(form))


@right_required(Right.VIEW_CLIENTS, methods=("GET", "HEAD"))
def loan_detail_view(request, loan_id: int):
    return _detail_page(request, _loan(request, loan_id))


def _detail_page(request, loan: Loan, approve_form: ApproveForm | None = None):
    """The loan's page; with `approve_form` the approval posted and refused, its errors on the page (400)."""
    as_of, as_of_error = _as_of(request)
    user = request.user
    page = queries.loan_page(loan=loan, as_of=as_of)
    # Before a new loan goes ahead, the client's standing is shown beside it.
    if approve_form is not None:
        standing = approve_form.standing
    elif loan.status in (LoanStatus.APPLICATION, LoanStatus.APPROVED):
        standing = client_standing(entity=request.entity, client=loan.client)
    else:
        standing = None
    signature = agreement_signature(entity=request.entity, loan=loan)
    return render(request, "web/loans/detail.html", {
        "loan": loan,
        "as_of": as_of,
        "as_of_error": as_of_error,
        "schedule": page.schedule,
        "figures": page.figures,
        "in_default": loan.default_since is not None and loan.status in (LoanStatus.ACTIVE, LoanStatus.HANDED_OVER),
        "receipts": selectors.receipt_list(entity=request.entity, loan_id=loan.pk),
        "refunds": queries.change_refund_list(entity=request.entity, loan_id=loan.pk),
        "audit_trail": queries.loan_audit_trail(entity=request.entity, loan=loan, limit=30),
        "signing_block": (services.disbursement_signing_block(entity=request.entity, loan=loan)
                          if loan.status == LoanStatus.APPROVED else ""),
        "can_refund": loan.change_total > 0 and user.has_right(Right.CAPTURE_RECEIPTS),
        "outstanding": page.figures.outstanding,
        "settlement": page.settlement,
        # The way to e-sign from the loan itself (else only Loans → Agreements to sign leads there).
        "can_sign": (signature is None and agreement_signable(status=loan.status, paid_out=loan.disbursed_on is not None)
                     and user.has_right(Right.CAPTURE_LOANS)),
        "can_approve": loan.status == LoanStatus.APPLICATION and user.has_right(Right.APPROVE_LOANS),
        "can_disburse": loan.status == LoanStatus.APPROVED and user.has_right(Right.DISBURSE_LOANS),
        "can_cancel": loan.status in (LoanStatus.APPLICATION, LoanStatus.APPROVED) and user.has_right(Right.CAPTURE_LOANS),
        "can_receipt": loan.status in (LoanStatus.ACTIVE, LoanStatus.HANDED_OVER) and user.has_right(Right.CAPTURE_RECEIPTS),
        "can_reverse": user.has_right(Right.REVERSE_RECEIPTS),
        "can_write_off": loan.status in (LoanStatus.ACTIVE, LoanStatus.HANDED_OVER) and user.has_right(Right.APPROVE_LOANS),
        "can_hand_over": loan.status == LoanStatus.ACTIVE and user.has_right(Right.APPROVE_LOANS),
        "standing": standing,
        "approve_form": approve_form or (ApproveForm(standing=standing) if loan.status == LoanStatus.APPLICATION else None),
        "signature": signature,
        "signature_summary": wording.signature_summary(signature, request.entity.time_zone) if signature else "",
        "can_open_agreement": user.has_right(Right.CAPTURE_LOANS) or user.has_right(Right.REPORT_CONTRACTS_ISSUED),
    }, status=form_status(approve_form))


@require_POST
@right_required(Right.APPROVE_LOANS)
def loan_approve_view(request, loan_id: int):
    loan = _loan(request, loan_id)
    form = ApproveForm(request.POST, standing=client_standing(entity=request.entity, client=loan.client))
    if form.is_valid():
        try:
            services.loan_approve(loan=loan, actor=request.user)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Loan approved.")
            return redirect("web:loan_detail", loan_id=loan.pk)
    return _detail_page(request, loan, approve_form=form)


@right_required(Right.CAPTURE_LOANS)
def loan_cancel_view(request, loan_id: int):
    loan = _loan(request, loan_id)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.loan_cancel(loan=loan, actor=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Loan cancelled.")
            return redirect("web:loan_detail", loan_id=loan.pk)
    return render(request, "web/form.html", {"form": form, "title": f"Cancel loan {loan.pk}",
                                             "cancel_url": "web:loan_detail", "cancel_arg": loan.pk}, status=form_status(form))


def _close_view(request, loan_id: int, *, close, title: str, done: str, effect: str):
    loan = _loan(request, loan_id)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            close(loan=loan, actor=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, done)
            return redirect("web:loan_detail", loan_id=loan.pk)
    return render(request, "web/loans/close.html", {
        "form": form, "title": f"{title} loan {loan.pk}", "loan": loan, "effect": effect,
        "outstanding": selectors.loan_outstanding(loan=loan),
        "audit_trail": queries.loan_audit_trail(entity=request.entity, loan=loan, limit=30),
    }, status=form_status(form))


# Taking a loan off the book or passing it to collectors is an approver's decision.
@right_required(Right.APPROVE_LOANS)
def loan_write_off_view(request, loan_id: int):
    return _close_view(request, loan_id, close=services.loan_write_off, title="Write off", done="Loan written off.",
                       effect="The loan leaves the book: its instalments stop counting as owed. The client becomes "
                              "Bad and may take no new loans.")


@right_required(Right.APPROVE_LOANS)
def loan_hand_over_view(request, loan_id: int):
    return _close_view(request, loan_id, close=services.loan_hand_over, title="Hand over", done="Loan handed over.",
                       effect="The loan stays on the book and receipts can still be posted to it. The client becomes "
                              "Handed over and may take no new loans.")


@right_required(Right.DISBURSE_LOANS)
def loan_disburse_view(request, loan_id: int):
    loan = _loan(request, loan_id)
    standing = client_standing(entity=request.entity, client=loan.client)
    form = DisburseForm(request.POST or None, loan=loan, standing=standing,
                        initial={"disbursed_on": services.local_today(request.entity)})
    if request.method == "POST" and form.is_valid():
        try:
            services.loan_disburse(loan=loan, actor=request.user, payout_account=form.cleaned_data["payout_account"],
                                   disbursed_on=form.cleaned_data["disbursed_on"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Loan disbursed.")
            return redirect("web:loan_detail", loan_id=loan.pk)
    # Said before the form is filled in: an unsigned agreement under Loan OTP is refused anyway.
    block = services.disbursement_signing_block(entity=request.entity, loan=loan) if loan.status == LoanStatus.APPROVED else ""
    return render(request, "web/loans/disburse.html", {"form": form, "loan": loan, "signing_block": block,
                                                       "standing": standing, "client": loan.client,
                                                       "title": f"Disburse loan {loan.pk} ({loan.principal:,.2f})"}, status=form_status(form))


@right_required(Right.CAPTURE_RECEIPTS)
def receipt_create_view(request, loan_id: int):
    loan = _loan(request, loan_id)
    today = services.local_today(request.entity)
    form = ReceiptForm(request.POST or None, initial={"value_date": today}, country=request.entity.country)
    if loan.status in OPEN_STATUSES:
        maximum = selectors.loan_receipt_maximum(loan=loan, as_of=today)
        form.fields["amount"].help_text = (f"At most {maximum.amount:,.2f} today (the balance of {maximum.balance:,.2f} "
                                           f"plus a tolerance of {maximum.tolerance:,.2f}); any excess is change available.")
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            receipt = services.receipt_post(entity=request.entity, actor=request.user, loan=loan, amount=data["amount"],
                                            value_date=data["value_date"], payback_type=data["payback_type"],
                                            external_reference=data["external_reference"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            note = f" Change available: {receipt.change:,.2f}." if receipt.change else ""
            messages.success(request, f"Receipt of {receipt.amount:,.2f} posted.{note}")
            return redirect("web:loan_detail", loan_id=loan.pk)
    return render(request, "web/form.html", {"form": form, "title": f"Receipt on loan {loan.pk}",
                                             "cancel_url": "web:loan_detail", "cancel_arg": loan.pk}, status=form_status(form))


@right_required(Right.REVERSE_RECEIPTS)
def receipt_reverse_view(request, receipt_id: int):
    receipt = get_object_or_404(Receipt.objects.select_related("loan"), entity=request.entity, pk=receipt_id)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.receipt_reverse(receipt=receipt, actor=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Receipt reversed.")
            return redirect("web:loan_detail", loan_id=receipt.loan_id)
    return render(request, "web/form.html", {"form": form, "title": f"Reverse receipt {receipt.pk} ({receipt.amount:,.2f})",
                                             "cancel_url": "web:loan_detail", "cancel_arg": receipt.loan_id}, status=form_status(form))


# --- change refunds ------------------------------------------------------------------------------
# Paying change back is a cashier's counter operation, like taking the receipt that made it;
# undoing one is a reversal like a receipt's.
@right_required(Right.CAPTURE_RECEIPTS)
def change_refund_create_view(request, loan_id: int):
    loan = _loan(request, loan_id)
    form = ChangeRefundForm(request.POST or None, initial={
        "paid_on": services.local_today(request.entity), "amount": loan.change_total, "method": RefundMethod.EFT})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            refund = services.change_refund(entity=request.entity, actor=request.user, loan=loan, amount=data["amount"],
                                            paid_on=data["paid_on"], method=data["method"], reference=data["reference"],
                                            reason=data["reason"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Change of {refund.amount:,.2f} paid back to the client.")
            return redirect("web:loan_detail", loan_id=loan.pk)
    loan.refresh_from_db(fields=["change_total"])
    return render(request, "web/loans/change_refund.html", {"form": form, "loan": loan,
                                                            "title": f"Pay back change on loan {loan.pk}"}, status=form_status(form))


@right_required(Right.REVERSE_RECEIPTS)
def change_refund_reverse_view(request, changerefund_id: int):
    refund = get_object_or_404(ChangeRefund.objects.select_related("loan"), entity=request.entity, pk=changerefund_id)
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.change_refund_reverse(refund=refund, actor=request.user, reason=form.cleaned_data["reason"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Change refund reversed: {refund.amount:,.2f} is change available again.")
            return redirect("web:loan_detail", loan_id=refund.loan_id)
    return render(request, "web/form.html", {"form": form, "title": f"Reverse change refund {refund.pk} ({refund.amount:,.2f})",
                                             "cancel_url": "web:loan_detail", "cancel_arg": refund.loan_id}, status=form_status(form))


# --- non-loan debits -----------------------------------------------------------------------------
@right_required(Right.VIEW_CLIENTS, methods=("GET", "HEAD"))
def client_debits_view(request, client_id: int):
    client = get_object_or_404(Client, entity=request.entity, pk=client_id)
    user = request.user
    can_add = user.has_right(Right.MANAGE_CLIENTS)
    return render(request, "web/loans/debits.html", {
        "client": client,
        "debits": queries.non_loan_debit_list(entity=request.entity, client_id=client.pk),
        "open_total": queries.non_loan_debt(entity=request.entity, client_id=client.pk),
        "loans_with_change": queries.loans_with_change(entity=request.entity, client_id=client.pk),
        "form": NonLoanDebitForm(initial={"debit_date": services.local_today(request.entity)}) if can_add else None,
        "can_settle": user.has_right(Right.CAPTURE_RECEIPTS),
    })


# Adding a debt to a client's record is an edit of the client; settling it is taking the money.
@right_required(Right.MANAGE_CLIENTS)
def non_loan_debit_create_view(request, client_id: int):
    client = get_object_or_404(Client, entity=request.entity, pk=client_id)
    form = NonLoanDebitForm(request.POST or None, initial={"debit_date": services.local_today(request.entity)})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            debit = services.non_loan_debit_add(entity=request.entity, actor=request.user, client=client,
                                                description=data["description"], amount=data["amount"],
                                                debit_date=data["debit_date"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Debit of {debit.amount:,.2f} added.")
            return redirect("web:client_debits", client_id=client.pk)
    return render(request, "web/form.html", {"form": form, "title": f"New non-loan debit for {client}",
                                             "cancel_url": "web:client_debits", "cancel_arg": client.pk}, status=form_status(form))


@right_required(Right.CAPTURE_RECEIPTS)
def non_loan_debit_settle_view(request, nonloandebit_id: int):
    debit = get_object_or_404(NonLoanDebit.objects.select_related("client"), entity=request.entity, pk=nonloandebit_id)
    form = SettleForm(request.POST or None, initial={"settled_on": services.local_today(request.entity)})
    if request.method == "POST" and form.is_valid():
        try:
            services.non_loan_debit_settle(debit=debit, actor=request.user, settled_on=form.cleaned_data["settled_on"])
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Debit '{debit.description}' settled.")
            return redirect("web:client_debits", client_id=debit.client_id)
    return render(request, "web/form.html", {
        "form": form, "title": f"Settle '{debit.description}' ({debit.amount:,.2f}, {debit.debit_date:%Y-%m-%d})",
        "cancel_url": "web:client_debits", "cancel_arg": debit.client_id}, status=form_status(form))


@right_required(Right.VIEW_CLIENTS, methods=("GET", "HEAD"))
def client_figures_view(request, client_id: int):
    """Every derived figure of the book for one client on a day (today unless ?as_of= is given)."""
    client = get_object_or_404(Client, entity=request.entity, pk=client_id)
    as_of, as_of_error = _as_of(request)
    return render(request, "web/loans/figures.html", {
        "client": client, "as_of": as_of, "as_of_error": as_of_error,
        "figures": selectors.client_figures(entity=request.entity, client_id=client.pk, as_of=as_of),
    })


@right_required(Right.VIEW_CLIENTS, methods=("GET", "HEAD"))
def client_statement_view(request, client_id: int):
    client = get_object_or_404(Client, entity=request.entity, pk=client_id)
    pdf = client_statement_pdf(entity=request.entity, client=client, as_of=services.local_today(request.entity))
    response = HttpResponse(pdf, content_type="application/pdf")
    response["Content-Disposition"] = f'inline; filename="statement-{client.number}.pdf"'
    return response


urlpatterns = [
    path("loans/", loan_list_view, name="loan_list"),
    path("loans/products/", product_list_view, name="product_list"),
    path("loans/products/new/", product_create_view, name="product_create"),
    path("loans/products/<int:product_id>/edit/", product_edit_view, name="product_edit"),
    path("loans/apply/<int:client_id>/", loan_apply_view, name="loan_apply"),
    path("loans/<int:loan_id>/", loan_detail_view, name="loan_detail"),
    path("loans/<int:loan_id>/approve/", loan_approve_view, name="loan_approve"),
    path("loans/<int:loan_id>/cancel/", loan_cancel_view, name="loan_cancel"),
    path("loans/<int:loan_id>/disburse/", loan_disburse_view, name="loan_disburse"),
    path("loans/<int:loan_id>/write-off/", loan_write_off_view, name="loan_write_off"),
    path("loans/<int:loan_id>/hand-over/", loan_hand_over_view, name="loan_hand_over"),
    path("loans/<int:loan_id>/receipts/new/", receipt_create_view, name="receipt_create"),
    path("loans/receipts/<int:receipt_id>/reverse/", receipt_reverse_view, name="receipt_reverse"),
    path("loans/statement/<int:client_id>/", client_statement_view, name="client_statement"),
    path("loans/<int:loan_id>/change/refund/", change_refund_create_view, name="change_refund_create"),
    path("loans/change-refunds/<int:changerefund_id>/reverse/", change_refund_reverse_view, name="change_refund_reverse"),
    path("loans/clients/<int:client_id>/figures/", client_figures_view, name="client_figures"),
    path("loans/clients/<int:client_id>/debits/", client_debits_view, name="client_debits"),
    path("loans/clients/<int:client_id>/debits/new/", non_loan_debit_create_view, name="non_loan_debit_create"),
    path("loans/debits/<int:nonloandebit_id>/settle/", non_loan_debit_settle_view, name="non_loan_debit_settle"),
]
