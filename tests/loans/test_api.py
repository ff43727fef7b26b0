"""The loan and receipt API: the same life cycle, rights, errors naming fields."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from rest_framework.test import APIClient

from imali.loans.models import Product
from imali.tenancy.rights import Right
from tests import factories
from tests.loans.conftest import make_borrower, make_loan

pytestmark = pytest.mark.django_db


def api_for(user) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


def test_api_life_cycle(entity, lender):
    api = api_for(lender)
    r = api.post("/api/loan-products/", {"name": "ST", "credit_type": "short_term", "frequency": "monthly",
                                          "min_principal": "500", "max_principal": "8000", "max_instalments": 6,
                                          "interest_rate_pm": "5.5", "service_fee_pm": "60"}, format="json")
    assert r.status_code == 400 and "(Short-term credit: interest on a first loan)" in r.json()["interest_rate_pm"][0]
    r = api.post("/api/loan-products/", {"name": "ST", "credit_type": "short_term", "frequency": "monthly",
                                          "min_principal": "500", "max_principal": "8000", "max_instalments": 6,
                                          "interest_rate_pm": "5", "service_fee_pm": "60"}, format="json")
    assert r.status_code == 201, r.json()
    product_id = r.json()["id"]
    borrower, account = make_borrower(entity)
    r = api.post("/api/loans/", {"client": borrower.pk, "product": product_id, "principal": "2000", "instalments": 3}, format="json")
    assert r.status_code == 201, r.json()
    loan_id = r.json()["id"]
    assert api.post(f"/api/loans/{loan_id}/approve/").json()["status"] == "approved"
    r = api.post(f"/api/loans/{loan_id}/disburse/", {"payout_account": account.pk, "disbursed_on": "2026-01-05"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert [i["amount"] for i in r.json()["schedule"]] == ["905.01", "905.00", "904.99"]
    r = api.post("/api/receipts/", {"loan": loan_id, "amount": "905.01", "value_date": "2026-01-23",
                                    "payback_type": "mobile_money", "external_reference": "MM-9"}, format="json")
    assert r.status_code == 201
    receipt_id = r.json()["id"]
    r = api.post("/api/receipts/", {"loan": loan_id, "amount": "905.01", "value_date": "2026-01-23",
                                    "payback_type": "mobile_money", "external_reference": "MM-9"}, format="json")
    assert r.status_code == 400 and "external_reference" in r.json()
    r = api.get(f"/api/loans/{loan_id}/settlement/?as_of=2026-02-09")
    # Capital 2,000 − 634.42 + 17/33 of 68.28 interest (35.17); no fee due yet.
    assert r.json()["settlement"] == str(D("1365.58") + D("35.17"))
    assert api.get(f"/api/loans/{loan_id}/settlement/?as_of=nope").status_code == 400
    assert api.post(f"/api/receipts/{receipt_id}/reverse/", {"reason": "Reversed by provider"}, format="json").json()["is_reversed"]
    assert len(api.get("/api/receipts/", {"loan": loan_id}).json()["results"]) == 1


def test_api_rights_and_other_entity(entity, other_entity, lender):
    loan = make_loan(entity, user=lender)
    viewer = api_for(factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS]))
    assert viewer.get(f"/api/loans/{loan.pk}/").status_code == 200
    assert viewer.post(f"/api/loans/{loan.pk}/approve/").status_code == 403
    assert viewer.post("/api/receipts/", {"loan": loan.pk, "amount": "1", "value_date": "2026-01-23",
                                          "payback_type": "cash"}, format="json").status_code == 403
    stranger = api_for(factories.make_admin(entity=other_entity))
    assert stranger.get(f"/api/loans/{loan.pk}/").status_code == 404
    r = stranger.post("/api/receipts/", {"loan": loan.pk, "amount": "1", "value_date": "2026-01-23", "payback_type": "cash"}, format="json")
    assert r.status_code == 400 and "loan" in r.json()


def test_api_write_off_and_hand_over(entity, other_entity, lender):
    from imali.core.models import AuditEntry
    from imali.loans.models import Instalment

    api = api_for(lender)
    handed = make_loan(entity, user=lender)
    r = api.post(f"/api/loans/{handed.pk}/hand-over/", {"reason": ""}, format="json")
    assert r.status_code == 400 and "reason" in r.json()
    r = api.post(f"/api/loans/{handed.pk}/hand-over/", {"reason": "No payment for 90 days"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "handed_over"
    handed.client.refresh_from_db()
    assert handed.client.status == "handed_over" and not handed.client.new_loans_allowed
    # A handed-over loan can still be written off; then its instalments are off the book.
    r = api.post(f"/api/loans/{handed.pk}/write-off/", {"reason": "Collector gave up"}, format="json")
    assert r.status_code == 200 and r.json()["status"] == "written_off"
    assert not Instalment.objects.filter(loan=handed, open=True).exists()
    assert AuditEntry.objects.filter(entity=entity, action__in=["loan.handed_over", "loan.written_off"]).count() == 2
    # Written off is final: a second write-off or a hand-over is refused, naming the status.
    r = api.post(f"/api/loans/{handed.pk}/hand-over/", {"reason": "again"}, format="json")
    assert r.status_code == 400
    other = make_loan(entity, user=lender)
    viewer = api_for(factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS]))
    assert viewer.post(f"/api/loans/{other.pk}/write-off/", {"reason": "x"}, format="json").status_code == 403
    stranger = api_for(factories.make_admin(entity=other_entity))
    assert stranger.post(f"/api/loans/{other.pk}/hand-over/", {"reason": "x"}, format="json").status_code == 404
    other.refresh_from_db()
    assert other.status == "active"


def test_product_credit_type_and_frequency_are_choices_in_the_schema_and_refused_by_name(entity, lender):
    from drf_spectacular.generators import SchemaGenerator

    schema = SchemaGenerator().get_schema(request=None, public=True)
    write = schema["components"]["schemas"]["ProductWriteRequest"]["properties"]
    assert write["credit_type"] == {"$ref": "#/components/schemas/CreditTypeEnum"}
    assert write["frequency"] == {"$ref": "#/components/schemas/PaymentFrequencyEnum"}
    api = api_for(lender)
    r = api.post("/api/loan-products/", {"name": "ST", "credit_type": "payday", "frequency": "hourly",
                                          "min_principal": "500", "max_principal": "8000", "max_instalments": 6,
                                          "interest_rate_pm": "5", "service_fee_pm": "60"}, format="json")
    assert r.status_code == 400 and set(r.json()) == {"credit_type", "frequency"}
    assert not Product.objects.filter(name="ST").exists()


PRODUCT_FORM = {"name": "ST form", "credit_type": "short_term", "frequency": "monthly", "min_principal": "500",
                "max_principal": "8000", "max_instalments": "6", "interest_rate_pm": "5", "service_fee_pm": "60"}


def test_a_form_encoded_product_without_the_fee_box_keeps_the_south_african_fee(entity, lender):
    # A form body leaves a box it does not mention out, as JSON does: the service's default decides
    # (in South Africa, the NCA cap's fee), not DRF's "an absent checkbox is unticked".
    assert entity.country == "ZA"
    api = api_for(lender)
    r = api.post("/api/loan-products/", PRODUCT_FORM)  # multipart, as a form posts
    assert r.status_code == 201, r.json()
    assert r.json()["charge_initiation_fee"] is True
    product = Product.objects.get(pk=r.json()["id"])
    assert product.charge_initiation_fee is True


def test_a_form_encoded_product_change_leaves_the_boxes_it_does_not_name(entity, lender):
    api = api_for(lender)
    product_id = api.post("/api/loan-products/", PRODUCT_FORM, format="json").json()["id"]
    assert api.patch(f"/api/loan-products/{product_id}/", {"is_active": False}, format="json").status_code == 200
    r = api.patch(f"/api/loan-products/{product_id}/", {"name": "ST renamed"})  # multipart, naming one field
    assert r.status_code == 200, r.json()
    product = Product.objects.get(pk=product_id)
    assert (product.name, product.charge_initiation_fee, product.is_active) == ("ST renamed", True, False)
