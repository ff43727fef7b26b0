"""Whole numbers and ids read strictly by every serializer (api.serializers.fields.StrictIntegerField,
EntityRelatedField): a JSON integer or a string of ASCII digits. Before, Python's int() read
"١٢" (Arabic-Indic digits) and "１２" (fullwidth) as 12, and DRF's IntegerField took "12.0" and
"12.00" as 12: a probe of the API found them accepted on marketing filters and loan products."""

from __future__ import annotations

import pytest

from imali.loans.models import Product, Receipt
from tests.api.test_money_fields import _product_body, _state, book  # noqa: F401 - the shared fixture

pytestmark = pytest.mark.django_db

# Each would read as 5 (or 1) by a lax parser, and 5 instalments are within the product caps: a 400
# here is the parsing, not a cap.
BAD_INTEGERS = ["٥", "５", "5.0", "5.00", "5e0", " 5", "5 ", "0x5", 5.0, 5.5, True, "", "five", [5], {"n": 5}]


@pytest.mark.parametrize("value", BAD_INTEGERS, ids=repr)
def test_a_bad_whole_number_is_a_400_naming_the_field_and_writes_nothing(book, value):  # noqa: F811
    before = _state(book["entity"])
    response = book["api"].post("/api/loan-products/", _product_body(min_principal="500", max_principal="8000",
                                                                       max_instalments=value), format="json")
    assert response.status_code == 400, (value, response.content[:300])
    assert "max_instalments" in response.json()
    assert _state(book["entity"]) == before


@pytest.mark.parametrize("value", [5, "5"], ids=repr)
def test_a_whole_number_as_a_json_integer_or_ascii_digits_is_taken(book, value):  # noqa: F811
    response = book["api"].post("/api/loan-products/", _product_body(min_principal="500", max_principal="8000",
                                                                       max_instalments=value), format="json")
    assert response.status_code == 201, response.content[:300]
    assert Product.objects.get(pk=response.json()["id"]).max_instalments == 5


def test_an_id_in_other_digits_is_refused_not_read_as_the_number(book):  # noqa: F811
    loan = book["loan"]
    digits = str(loan.pk).translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩"))
    before = _state(book["entity"])
    for value in (digits, f"{loan.pk}.0", True, float(loan.pk)):
        response = book["api"].post("/api/receipts/", {"loan": value, "amount": "100.00", "value_date": "2026-02-02",
                                                       "payback_type": "eft"}, format="json")
        assert response.status_code == 400, (value, response.content[:300])
        assert "loan" in response.json(), value
    assert _state(book["entity"]) == before
    taken = book["api"].post("/api/receipts/", {"loan": str(loan.pk), "amount": "100.00", "value_date": "2026-02-02",
                                                "payback_type": "eft"}, format="json")
    assert taken.status_code == 201, taken.content[:300]
    assert Receipt.objects.filter(loan=loan, amount="100.00").exists()


def test_marketing_client_number_in_other_digits_is_refused(book):  # noqa: F811
    response = book["api"].post("/api/marketing/datasets/", {"number_from": "١٢"}, format="json")
    assert response.status_code in (400, 403), response.content[:300]
    if response.status_code == 400:
        assert "number_from" in response.json()
