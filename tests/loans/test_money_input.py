"""Amounts are read one way in every layer (core.money): the services refuse what the API and the
web forms refuse, with an error naming the field and nothing written; and a receipt is capped at
the loan's balance plus a tolerance (a receipt of 10,000,000,000 once left 9,999,999,767.53 of
"change available")."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from imali.core.models import AuditEntry
from imali.core.money import MAX_AMOUNT, parse_amount
from imali.loans import rules, services
from imali.loans.models import ChangeRefund, Instalment, Loan, NonLoanDebit, Product, Receipt
from imali.signing.models import Mandate
from imali.web.forms import ClientForm, UserForm
from imali.web.views.loans import (
    ApplicationForm,
    ChangeRefundForm,
    NonLoanDebitForm,
    ProductForm,
    ReceiptForm,
)
from imali.web.views.signing import MandateForm, SetupForm
from tests.loans.conftest import make_loan

pytestmark = pytest.mark.django_db

BAD = ["99999999999999999999", "1e10", "1.005", "NaN", "Infinity", "١٠٠", "１００", "-5", "0", "", D("1E+20"), D("NaN"),
       10_000_000_000.0, None, True]


def _state() -> tuple:
    return (list(Receipt.objects.values_list("pk", "amount")), list(NonLoanDebit.objects.values_list("pk", "amount")),
            list(ChangeRefund.objects.values_list("pk", "amount")),
            list(Loan.objects.values_list("pk", "principal", "change_total", "received_total")),
            list(Instalment.objects.values_list("pk", "paid")), list(Product.objects.values_list("pk", "max_principal")),
            list(Mandate.objects.values_list("pk", "instalment_amount")), AuditEntry.objects.count())


@pytest.fixture
def paid_with_change(entity, lender):
    loan = make_loan(entity, user=lender, principal="1000", instalments=1)
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount=str(loan.total_repayable + 50),
                          value_date=dt.date(2026, 1, 20), payback_type="eft")
    return loan


def _calls(entity, lender, loan, paid):
    product = Product.objects.filter(entity=entity).first()
    return {
        "receipt": lambda v: services.receipt_post(entity=entity, actor=lender, loan=loan, amount=v,
                                                   value_date=dt.date(2026, 1, 20), payback_type="eft"),
        "non-loan debit": lambda v: services.non_loan_debit_add(entity=entity, actor=lender, client=loan.client,
                                                                description="Fee", amount=v, debit_date=dt.date(2026, 1, 20)),
        "change refund": lambda v: services.change_refund(entity=entity, actor=lender, loan=paid, amount=v,
                                                          paid_on=dt.date(2026, 1, 21), method="cash", reason="Change"),
        "principal": lambda v: services.loan_apply(entity=entity, actor=lender, client=loan.client, product=product,
                                                   principal=v, instalments=3),
        "max_principal": lambda v: services.product_update(product=product, actor=lender, data={"max_principal": v}),
    }


@pytest.mark.parametrize("call", ["receipt", "non-loan debit", "change refund", "principal", "max_principal"])
def test_services_refuse_bad_amounts_naming_the_field(entity, lender, paid_with_change, call):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3)
    field = "amount" if call in ("receipt", "non-loan debit", "change refund") else call
    before = _state()
    for value in BAD:
        with pytest.raises(ValidationError) as caught:
            _calls(entity, lender, loan, paid_with_change)[call](value)
        assert field in caught.value.message_dict, (value, caught.value.message_dict)
        assert _state() == before, value


def test_parse_amount_reads_plain_amounts_only():
    assert parse_amount("1 250.5") == D("1250.50") and parse_amount(D("7")) == D("7.00") and parse_amount(12) == D("12.00")
    assert parse_amount("0", allow_zero=True) == D("0.00") and parse_amount(str(MAX_AMOUNT)) == MAX_AMOUNT
    for value, code in [("1.005", "too_many_places"), ("1e10", "invalid_amount"), ("١٠٠", "invalid_amount"),
                        ("99999999999999999999", "out_of_range"), ("-0.01", "out_of_range"), ("", "required")]:
        with pytest.raises(ValidationError) as caught:
            parse_amount(value, field="premium")
        assert caught.value.error_dict["premium"][0].code == code, value
    with pytest.raises(TypeError):
        parse_amount(0.1)


# --- the receipt cap ------------------------------------------------------------------------------
def test_receipt_maximum_rule():
    small = rules.receipt_maximum(outstanding=D("2000.00"), settlement=D("1800.00"))
    assert (small.balance, small.tolerance, small.amount) == (D("2000.00"), D("1000.00"), D("3000.00"))
    large = rules.receipt_maximum(outstanding=D("50000.00"), settlement=D("43000.10"))
    assert (large.tolerance, large.amount) == (D("5000.00"), D("55000.00"))
    charged = rules.receipt_maximum(outstanding=D("100.00"), settlement=D("120.55"), tolerance_amount=D("0"),
                                    tolerance_percent=D("0"))
    assert charged.amount == D("120.55")


def test_receipt_above_the_maximum_is_refused_with_the_maximum(entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3)
    owed = loan.total_repayable
    maximum = owed + D("1000.00")  # the tolerance: the larger of 1,000.00 and 10% of the balance
    before = _state()
    with pytest.raises(ValidationError) as caught:
        services.receipt_post(entity=entity, actor=lender, loan=loan, amount=str(maximum + D("0.01")),
                              value_date=dt.date(2026, 1, 20), payback_type="eft")
    error = caught.value.error_dict["amount"][0]
    assert error.code == "over_receipt_maximum" and f"{maximum:,.2f}" in error.messages[0]
    assert _state() == before
    receipt = services.receipt_post(entity=entity, actor=lender, loan=loan, amount=str(maximum),
                                    value_date=dt.date(2026, 1, 20), payback_type="eft")
    assert (receipt.allocated, receipt.change) == (owed, D("1000.00"))


@override_settings(IMALI_RECEIPT_TOLERANCE_AMOUNT="0", IMALI_RECEIPT_TOLERANCE_PERCENT="0")
def test_receipt_tolerance_is_a_setting(entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3)
    with pytest.raises(ValidationError):
        services.receipt_post(entity=entity, actor=lender, loan=loan, amount=str(loan.total_repayable + D("0.01")),
                              value_date=dt.date(2026, 1, 20), payback_type="eft")


@pytest.mark.parametrize("amount", ["10000000000", "1e10", 1e10, "5001"])
def test_api_refuses_a_receipt_of_ten_billion(entity, lender, amount):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3)
    api = APIClient()
    api.force_login(lender)
    before = _state()
    response = api.post("/api/receipts/", {"loan": loan.pk, "amount": amount, "value_date": "2026-01-20",
                                           "payback_type": "eft"}, format="json")
    assert response.status_code == 400 and "amount" in response.json(), response.json()
    assert _state() == before
    # Every page of the client still answers.
    for url in (f"/api/loans/{loan.pk}/", f"/api/client-figures/{loan.client_id}/", f"/api/loans/{loan.pk}/settlement/",
                "/api/receipts/", "/api/non-loan-debits/"):
        assert api.get(url).status_code == 200, url


# --- the web forms --------------------------------------------------------------------------------
def _forms(entity, lender, loan):
    return {
        "receipt": (lambda d: ReceiptForm(d, country=entity.country), {"value_date": "2026-01-20", "payback_type": "eft"}, "amount"),
        "debit": (lambda d: NonLoanDebitForm(d), {"description": "Fee", "debit_date": "2026-01-20"}, "amount"),
        "refund": (lambda d: ChangeRefundForm(d), {"paid_on": "2026-01-20", "method": "cash", "reason": "x"}, "amount"),
        "application": (lambda d: ApplicationForm(d, entity=entity),
                        {"product": loan.product_id, "instalments": "3"}, "principal"),
        "product": (lambda d: ProductForm(d), {"name": "P", "credit_type": "short_term", "frequency": "monthly",
                                              "min_principal": "500", "min_instalments": "1", "max_instalments": "6",
                                              "interest_rate_pm": "5", "service_fee_pm": "0", "vat_rate": "15"},
                    "max_principal"),
        "user limit": (lambda d: UserForm(d, entity=entity), {"username": "u", "first_name": "A", "last_name": "B",
                                                             "cellphone": "0821234567"}, "disbursement_limit"),
        "client salary": (lambda d: ClientForm(d, entity=entity), {}, "salary"),
        "Loan OTP amount": (lambda d: SetupForm(d), {"code_length": "6", "validity_minutes": "5", "tries_per_code": "3"},
                            "threshold"),
        "mandate": (lambda d: MandateForm(d, client=loan.client), {"kind": "debicheck", "collection_day": "25"},
                    "instalment_amount"),
    }


FORMS = ["receipt", "debit", "refund", "application", "product", "user limit", "client salary", "Loan OTP amount", "mandate"]


@pytest.mark.parametrize("name", FORMS)
def test_web_forms_refuse_bad_amounts_on_the_field(entity, lender, name):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3)
    make_form, data, field = _forms(entity, lender, loan)[name]
    for value in ("99999999999999999999", "1e10", "1.005", "NaN", "Infinity", "١٠٠", "１００", "-5"):
        form = make_form({**data, field: value})
        assert not form.is_valid() and field in form.errors, (value, form.errors)


def test_web_receipt_of_ten_billion_writes_nothing(client, entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3)
    client.force_login(lender)
    form_page = client.get(reverse("web:receipt_create", kwargs={"loan_id": loan.pk})).content.decode()
    assert f"At most {loan.total_repayable + 1000:,.2f} today" in form_page
    before = _state()
    for amount, message in (("10000000000", "at most"), ("1e10", "is not a number"), ("5001", "the maximum is")):
        page = client.post(reverse("web:receipt_create", kwargs={"loan_id": loan.pk}),
                           {"amount": amount, "value_date": "2026-01-20", "payback_type": "eft"})
        text = page.content.decode()
        assert page.status_code == 400 and message in text, amount
    assert _state() == before


def test_user_disbursement_limit_is_read_as_money(entity, lender):
    from imali.tenancy.models import User
    from imali.tenancy.services import user_create, user_update

    data = {"username": "limits", "first_name": "A", "last_name": "B", "cellphone": "0821234567"}
    for value in ("99999999999999999999", "1e10", "1.005", "١٠٠", "-1"):
        with pytest.raises(ValidationError) as caught:
            user_create(actor=lender, entity=entity, data={**data, "disbursement_limit": value}, password="a-long-Passw0rd!")
        assert "disbursement_limit" in caught.value.message_dict, value
        assert not User.objects.filter(username="limits").exists()
    user = user_create(actor=lender, entity=entity, data={**data, "disbursement_limit": "5000"}, password="a-long-Passw0rd!")
    with pytest.raises(ValidationError):
        user_update(actor=lender, user=user, data={"disbursement_limit": "1e10"})
    user.refresh_from_db()
    assert user.disbursement_limit == D("5000.00")
