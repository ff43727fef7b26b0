"""Every money field of the API reads an amount one way (api.serializers.fields.MoneyField over
core.money.parse_amount): a bad amount is a 400 naming the field, and nothing is written.

Before, `POST /api/non-loan-debits/` and `POST /api/receipts/` with amount "99999999999999999999"
answered 500 and kept the row (after which every page of that client answered 500), and "1e10" was
a receipt of ten billion."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from rest_framework.test import APIClient

from imali.clients.models import Client
from imali.core.models import AuditEntry
from imali.loans import services
from imali.loans.models import ChangeRefund, Loan, NonLoanDebit, Product, Receipt
from imali.signing.models import Mandate, OtpSetup
from tests import factories
from tests.api.conftest import client_payload
from tests.loans.conftest import make_loan, make_product

pytestmark = pytest.mark.django_db

# Refused by every money field, zero allowed or not.
BAD_AMOUNTS = [
    "99999999999999999999",  # overflowed the 14-digit columns: a 500 and a row that broke every page of the client
    "1000000000",  # above core.money.MAX_AMOUNT
    "1e10",  # exponent notation (Decimal reads it as ten billion)
    "1.005",  # a third decimal place is refused, not rounded
    "NaN",
    "Infinity",
    "١٠٠",  # Arabic-Indic digits (Decimal reads them as 100)
    "１００",  # fullwidth digits
    "-5",
    "",
    "12,50",
    1e20,  # a JSON number too large (and a float: see JSON_FLOATS)
    True,
]


@pytest.fixture
def book(entity):
    lender = factories.make_admin(entity=entity)
    lender.disbursement_limit = D("100000")
    lender.save()
    loan = make_loan(entity, user=lender, principal="3000", instalments=6)
    # A loan paid up with an overpayment, so the change refund endpoint has change to refund.
    paid = make_loan(entity, user=lender, principal="1000", instalments=1)
    services.receipt_post(entity=entity, actor=lender, loan=paid, amount=str(paid.total_repayable + 200),
                          value_date=dt.date(2026, 2, 1), payback_type="eft")
    product = make_product(entity, name="Money fields")
    OtpSetup.objects.get_or_create(entity=entity)
    api = APIClient()
    api.force_login(lender)
    return {"api": api, "loan": loan, "paid": paid, "client": loan.client, "product": product, "entity": entity}


# endpoint name → (method, url, a valid body without the money field, the money field, zero allowed)
def _endpoints(book) -> dict:
    loan, client, product, entity = book["loan"], book["client"], book["product"], book["entity"]
    account = client.accounts.first().pk
    return {
        "receipt": ("post", "/api/receipts/", {"loan": loan.pk, "value_date": "2026-02-02", "payback_type": "eft"},
                    "amount", False),
        "non-loan debit": ("post", "/api/non-loan-debits/", {"client": client.pk, "description": "Card fee",
                                                              "debit_date": "2026-02-02"}, "amount", False),
        "change refund": ("post", "/api/change-refunds/", {"loan": book["paid"].pk, "paid_on": "2026-02-02", "method": "cash",
                                                           "reason": "Change"}, "amount", False),
        "loan application": ("post", "/api/loans/", {"client": client.pk, "product": product.pk, "instalments": 3},
                             "principal", False),
        "product minimum": ("post", "/api/loan-products/", _product_body(max_principal="8000"), "min_principal", False),
        "product maximum": ("post", "/api/loan-products/", _product_body(min_principal="500"), "max_principal", False),
        "product fee": ("post", "/api/loan-products/", _product_body(min_principal="500", max_principal="8000"),
                        "service_fee_pm", True),
        "product change": ("patch", f"/api/loan-products/{product.pk}/", {}, "max_principal", False),
        "client salary": ("post", "/api/clients/", client_payload(entity), "salary", True),
        "client credit limit": ("patch", f"/api/clients/{client.pk}/", {}, "credit_limit", True),
        "Loan OTP amount": ("put", "/api/signing/setup/", {}, "threshold", True),
        "mandate instalment": ("post", f"/api/signing/loans/{loan.pk}/mandates/",
                               {"kind": "debicheck", "collection_day": 25, "account": account}, "instalment_amount", False),
        "mandate maximum": ("post", f"/api/signing/loans/{loan.pk}/mandates/",
                            {"kind": "debicheck", "collection_day": 25, "account": account, "instalment_amount": "600"},
                            "maximum_collection", False),
    }


ENDPOINTS = ["receipt", "non-loan debit", "change refund", "loan application", "product minimum", "product maximum",
             "product fee", "product change", "client salary", "client credit limit", "Loan OTP amount",
             "mandate instalment", "mandate maximum"]
GOOD = {"receipt": "100.50", "non-loan debit": "20", "change refund": "10.05", "loan application": "2000",
        "product minimum": "500", "product maximum": "8000", "product fee": "0", "product change": "7000",
        "client salary": "0", "client credit limit": "15000.5", "Loan OTP amount": "0", "mandate instalment": "600",
        "mandate maximum": "700"}


def _product_body(**fields) -> dict:
    return {"name": "New product", "credit_type": "short_term", "frequency": "monthly", "max_instalments": 6,
            "interest_rate_pm": "5", "service_fee_pm": "60", "vat_rate": "15", **fields}


def _state(entity) -> tuple:
    """Everything a money request could have written, as comparable values."""
    return (
        list(Receipt.objects.order_by("pk").values_list("pk", "amount")),
        list(NonLoanDebit.objects.order_by("pk").values_list("pk", "amount")),
        list(ChangeRefund.objects.order_by("pk").values_list("pk", "amount")),
        list(Loan.objects.order_by("pk").values_list("pk", "principal", "change_total", "received_total")),
        list(Product.objects.order_by("pk").values_list("pk", "min_principal", "max_principal", "service_fee_pm")),
        list(Client.objects.order_by("pk").values_list("pk", "salary", "credit_limit")),
        list(OtpSetup.objects.order_by("pk").values_list("pk", "threshold")),
        list(Mandate.objects.order_by("pk").values_list("pk", "instalment_amount", "maximum_collection")),
        AuditEntry.objects.count(),
    )


def _send(book, name, value):
    method, url, body, field, _ = _endpoints(book)[name]
    return getattr(book["api"], method)(url, {**body, field: value}, format="json"), field


# Optional amounts a client may clear: blank is "none" there (null), not a bad amount.
BLANK_MEANS_NONE = {"client salary", "client credit limit"}


@pytest.mark.parametrize("name", ENDPOINTS)
def test_bad_amount_is_a_400_naming_the_field_and_writes_nothing(book, name):
    before = _state(book["entity"])
    for value in BAD_AMOUNTS:
        if value == "" and name in BLANK_MEANS_NONE:
            continue
        response, field = _send(book, name, value)
        assert response.status_code == 400, (value, response.status_code, response.content[:300])
        assert field in response.json(), (value, response.json())
        assert _state(book["entity"]) == before, value


@pytest.mark.parametrize("name", ENDPOINTS)
def test_zero_is_refused_where_an_amount_must_be_positive(book, name):
    *_, allows_zero = _endpoints(book)[name]
    before = _state(book["entity"])
    response, field = _send(book, name, "0.00")
    if allows_zero:
        assert response.status_code in (200, 201), response.json()
    else:
        assert response.status_code == 400 and field in response.json(), response.json()
        assert _state(book["entity"]) == before


@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_good_amount_is_taken(book, name):
    response, field = _send(book, name, GOOD[name])
    assert response.status_code in (200, 201), response.json()
    assert D(str(response.json().get(field) or GOOD[name])) == D(GOOD[name])


# JSON numbers with a fraction or an exponent reach the field as binary floats: 9999999.999999999999
# arrives as 10000000.0 and 123456789.129999999999999 as 123456789.13, amounts never sent, which
# were taken before ("read by their shortest text"). Refused, naming the field, with the remedy.
JSON_FLOATS = [20.1, 0.1, 1e20, 1.0, 9999999.999999999999, 123456789.129999999999999, -0.0]


@pytest.mark.parametrize("name", ENDPOINTS)
def test_a_json_number_with_a_fraction_is_refused_with_the_remedy_and_writes_nothing(book, name):
    before = _state(book["entity"])
    for value in JSON_FLOATS:
        response, field = _send(book, name, value)
        assert response.status_code == 400, (value, response.status_code, response.content[:300])
        assert response.json()[field] == ['Send money as a string, e.g. "12.50".'], (value, response.json())
        assert _state(book["entity"]) == before, value


def test_a_json_integer_and_a_string_are_taken_exactly(book):
    response, _ = _send(book, "non-loan debit", 20)
    assert response.status_code == 201 and response.json()["amount"] == "20.00"
    response, _ = _send(book, "non-loan debit", "20.10")
    assert response.status_code == 201 and response.json()["amount"] == "20.10"


def test_a_rate_as_a_json_number_with_a_fraction_is_refused_naming_the_field(book):
    before = _state(book["entity"])
    response = book["api"].post("/api/loan-products/", _product_body(min_principal="500", max_principal="8000",
                                                                     interest_rate_pm=3.5), format="json")
    assert response.status_code == 400
    assert response.json() == {"interest_rate_pm": ['Send the rate as a string, e.g. "3.5".']}
    assert _state(book["entity"]) == before
