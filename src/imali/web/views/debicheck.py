"""DebiCheck mandate screens of a loan: the list with each mandate's status (polled while the bank
waits for the client, via htmx), creating one, sending it to the bank once signed, amending and
cancelling. Signing itself is the signing module's screen (OTP or by hand). Thin: forms parse,
services decide; every lookup is inside the user's entity."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse

from imali.core.forms import StrictIntegerFormField, StrictModelChoiceField
from imali.loans.models import Loan
from imali.paystream import mandates as services
from imali.paystream import selectors
from imali.paystream.models import (
    AdjustmentCategory,
    AuthenticationType,
    DebiCheckMandate,
    DebitSequence,
    MandateAmendment,
    MandateFrequency,
    MandateState,
    MandateValueType,
)
from imali.tenancy.rights import Right

from ..access import right_required
from ..forms import IsoDateInput, MoneyFormField, RateFormField, apply_service_errors

RIGHT = Right.PAYMENT_STREAM_WEB_SERVICES
POST_ONLY = ("POST",)


class MandateForm(forms.Form):
    account = StrictModelChoiceField(queryset=None, label="Debtor bank account")
    authentication = forms.ChoiceField(choices=AuthenticationType.choices, label="How the client authenticates")
    value_type = forms.ChoiceField(choices=MandateValueType.choices, label="Value type")
    debit_sequence = forms.ChoiceField(choices=DebitSequence.choices, label="Debit sequence")
    instalment_amount = MoneyFormField(label="Instalment")
    maximum_collection = MoneyFormField(label="Maximum collection", help_text="At least the instalment, at most 1.5 times it")
    frequency = forms.ChoiceField(choices=MandateFrequency.choices, initial=MandateFrequency.MONTHLY, label="Frequency")
    collection_day = StrictIntegerFormField(min_value=1, max_value=99, label="Collection day",
                                        help_text="Weekly 1–7, fortnightly 1–14, monthly 1–30 or 99 for the last day")
    first_collection_date = forms.DateField(widget=IsoDateInput(), label="First collection")
    date_adjustment = forms.BooleanField(required=False, label="Allow date adjustment")
    adjustment_category = forms.ChoiceField(choices=AdjustmentCategory.choices, label="Instalment adjustment")
    adjustment_amount = MoneyFormField(required=False, label="Adjustment amount")
    adjustment_rate = RateFormField(places=3, required=False, label="Adjustment rate (%)")
    tracking_days = StrictIntegerFormField(min_value=0, max_value=10, initial=0, label="Tracking (days)")
    contract_reference = forms.CharField(max_length=20, required=False, label="Contract reference",
                                         help_text="Blank: Imali makes one. Never reused, also after a cancel")

    def __init__(self, *args, accounts, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["account"].queryset = accounts


class AmendForm(forms.Form):
    instalment_amount = MoneyFormField(label="New instalment")
    maximum_collection = MoneyFormField(label="New maximum collection")
    collection_day = StrictIntegerFormField(min_value=1, max_value=99, label="New collection day")


def _loan(request, loan_id: int) -> Loan:
    return get_object_or_404(Loan.objects.select_related("entity", "client"), entity=request.entity, pk=loan_id)


def _mandate(request, debicheckmandate_id: int) -> DebiCheckMandate:
    return get_object_or_404(DebiCheckMandate.objects.select_related("loan", "client", "account", "document"),
                             entity=request.entity, pk=debicheckmandate_id)


def _rows(request, loan: Loan) -> list[DebiCheckMandate]:
    return selectors.loan_debicheck_mandates(entity=request.entity, loan=loan)


def _waiting(rows) -> bool:
    return any(m.status == MandateState.AUTHENTICATING or any(a.status == MandateState.AUTHENTICATING for a in m.amendments.all())
               for m in rows)


def _panel_context(request, loan: Loan, rows) -> dict:
    return {"loan": loan, "mandates": rows, "currency": request.entity.currency, "time_zone": request.entity.time_zone,
            "poll": reverse("web:paystream_mandates_panel", kwargs={"loan_id": loan.pk}) if _waiting(rows) else ""}


def _page(request, loan: Loan, *, form=None, amend_form=None, amended=None, errors=None, status=200):
    services.signatures_sync(entity=request.entity, loan=loan)
    accounts = selectors.stream_accounts_qs(entity=request.entity, client=loan.client).filter(account__kind="bank")
    maximum = (loan.instalment_amount * services.DEFAULT_MAXIMUM_FACTOR).quantize(Decimal("0.01"), ROUND_DOWN)
    initial = {"instalment_amount": loan.instalment_amount, "maximum_collection": maximum,
               "collection_day": loan.pay_day or 25, "value_type": MandateValueType.FIXED,
               "debit_sequence": DebitSequence.RECURRING, "adjustment_category": AdjustmentCategory.NEVER,
               # The first way the banks take now: after 20:30 TT1 would only be refused once signed.
               "authentication": services.authentication_open_now()}
    return render(request, "web/paystream/mandates.html", {
        **_panel_context(request, loan, _rows(request, loan)),
        "form": form or MandateForm(accounts=accounts, initial=initial), "amend_form": amend_form or AmendForm(),
        "amended": amended, "errors": errors or []}, status=status)


def _messages_of(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [m for errs in exc.error_dict.values() for e in errs for m in e.messages]
    return list(exc.messages)


@right_required(RIGHT, methods=("GET",))
def mandates_view(request, loan_id: int):
    return _page(request, _loan(request, loan_id))


@right_required(RIGHT, methods=("GET",))
def mandates_panel_view(request, loan_id: int):
    """The status list, polled every 2 s while the bank waits for the client: reads the database
    only (the consumer asks the bank, tasks.paystream_mandate_follow), so a page left open costs
    the bank nothing; polling stops once every answer is in."""
    loan = _loan(request, loan_id)
    services.signatures_sync(entity=request.entity, loan=loan)
    return render(request, "web/paystream/_mandates.html", _panel_context(request, loan, _rows(request, loan)))


@right_required(RIGHT, methods=POST_ONLY)
def mandates_ask_view(request, loan_id: int):
    """"Ask the bank now" about the loan's mandates waiting for the client: a person's explicit
    call, rate-limited and audited by the service."""
    loan = _loan(request, loan_id)
    try:
        asked = services.mandates_ask(entity=request.entity, actor=request.user, loan=loan)
    except ValidationError as exc:
        return _page(request, loan, errors=_messages_of(exc), status=400)
    messages.info(request, "The bank was asked." if asked else "No mandate is waiting for the client.")
    return redirect("web:paystream_mandates", loan_id=loan.pk)


@right_required(RIGHT, methods=POST_ONLY)
def mandate_create_view(request, loan_id: int):
    loan = _loan(request, loan_id)
    accounts = selectors.stream_accounts_qs(entity=request.entity, client=loan.client).filter(account__kind="bank")
    form = MandateForm(request.POST, accounts=accounts)
    if form.is_valid():
        data = dict(form.cleaned_data)
        account = data.pop("account")
        try:
            mandate = services.mandate_create(entity=request.entity, actor=request.user, loan=loan, account=account, data=data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"DebiCheck mandate {mandate.contract_reference} created: have the client sign it, "
                                      "then send it to the bank.")
            return redirect("web:paystream_mandates", loan_id=loan.pk)
    return _page(request, loan, form=form, status=400)


@right_required(RIGHT, methods=POST_ONLY)
def mandate_send_view(request, debicheckmandate_id: int):
    mandate = _mandate(request, debicheckmandate_id)
    try:
        mandate = services.mandate_submit(entity=request.entity, actor=request.user, mandate=mandate)
    except ValidationError as exc:
        return _page(request, mandate.loan, errors=_messages_of(exc), status=400)
    messages.success(request, f"Mandate {mandate.contract_reference} sent to the bank: "
                              f"{mandate.get_status_display().lower()}.")
    return redirect("web:paystream_mandates", loan_id=mandate.loan_id)


@right_required(RIGHT, methods=POST_ONLY)
def mandate_amend_view(request, debicheckmandate_id: int):
    mandate = _mandate(request, debicheckmandate_id)
    form = AmendForm(request.POST)
    if form.is_valid():
        try:
            amendment = services.mandate_amend(entity=request.entity, actor=request.user, mandate=mandate, data=form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Amendment {amendment.number} of {mandate.contract_reference} made: the client signs the "
                                      "new terms, then send it to the bank.")
            return redirect("web:paystream_mandates", loan_id=mandate.loan_id)
    return _page(request, mandate.loan, amend_form=form, amended=mandate.pk, status=400)


@right_required(RIGHT, methods=POST_ONLY)
def amendment_send_view(request, mandateamendment_id: int):
    amendment = get_object_or_404(MandateAmendment.objects.select_related("mandate__loan"), mandate__entity=request.entity,
                                  pk=mandateamendment_id)
    try:
        amendment = services.amendment_submit(entity=request.entity, actor=request.user, amendment=amendment)
    except ValidationError as exc:
        return _page(request, amendment.mandate.loan, errors=_messages_of(exc), status=400)
    messages.success(request, f"Amendment {amendment.number} sent to the bank: {amendment.get_status_display().lower()}.")
    return redirect("web:paystream_mandates", loan_id=amendment.mandate.loan_id)


@right_required(RIGHT, methods=POST_ONLY)
def mandate_cancel_view(request, debicheckmandate_id: int):
    mandate = _mandate(request, debicheckmandate_id)
    try:
        mandate = services.mandate_cancel(entity=request.entity, actor=request.user, mandate=mandate,
                                          reason=request.POST.get("reason", ""))
    except ValidationError as exc:
        return _page(request, mandate.loan, errors=_messages_of(exc), status=400)
    messages.success(request, f"Mandate {mandate.contract_reference} cancelled. Its contract reference is not used again.")
    return redirect("web:paystream_mandates", loan_id=mandate.loan_id)


urlpatterns = [
    path("loans/<int:loan_id>/payment-stream/mandates/", mandates_view, name="paystream_mandates"),
    path("loans/<int:loan_id>/payment-stream/mandates/panel/", mandates_panel_view, name="paystream_mandates_panel"),
    path("loans/<int:loan_id>/payment-stream/mandates/ask/", mandates_ask_view, name="paystream_mandates_ask"),
    path("loans/<int:loan_id>/payment-stream/mandates/new/", mandate_create_view, name="paystream_mandate_create"),
    path("payment-stream/mandates/<int:debicheckmandate_id>/send/", mandate_send_view, name="paystream_mandate_send"),
    path("payment-stream/mandates/<int:debicheckmandate_id>/amend/", mandate_amend_view, name="paystream_mandate_amend"),
    path("payment-stream/mandates/<int:debicheckmandate_id>/cancel/", mandate_cancel_view, name="paystream_mandate_cancel"),
    path("payment-stream/mandate-amendments/<int:mandateamendment_id>/send/", amendment_send_view, name="paystream_amendment_send"),
]
