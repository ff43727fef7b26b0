"""The mobile-money API: secrets never returned, suspense allocation, disbursement marking and
the send within/over the limit, rights and entity isolation of bodies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from imali.mobilemoney.models import Disbursement, DisbursementStatus
from imali.mobilemoney.services import PaymentIn, payment_in_record, setup_save
from imali.tenancy.rights import Right
from tests import factories

from .conftest import open_loan
from .test_disbursements import approved_loan

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(lender_user):
    client = APIClient()
    client.force_authenticate(lender_user)
    return client


@pytest.fixture
def setup(entity, lender_user):
    # Nothing listens on port 9: a send here is "unavailable", which is what the over-limit case needs (nothing leaves).
    return setup_save(entity=entity, actor=lender_user, data={
        "provider": "mpesa", "base_url": "http://127.0.0.1:9", "short_code": "600777", "consumer_key": "k",
        "consumer_secret": "the-secret", "security_credential": "cred", "callback_base_url": "http://127.0.0.1:8000/"})


def test_providers_list_names_stored_secrets_without_values(api, setup):
    body = api.get("/api/mobile-money/providers/").json()
    assert body["results"][0]["secrets_stored"] == ["consumer_secret", "security_credential"]
    assert "the-secret" not in str(body) and "cred" not in str(body["results"][0].get("security_credential", ""))


def test_allocate_from_suspense_and_refuse_a_loan_of_another_entity(api, entity, lender_user, setup, other_entity):
    loan = open_loan(entity, lender_user)
    txn, _ = payment_in_record(setup=setup, source="callback", payment=PaymentIn(
        provider_transaction_id="APISUSP001", amount=Decimal("30.00"), transacted_at=timezone.now(), account_reference="x"))
    listed = api.get("/api/mobile-money/payments/?status=suspense").json()
    assert [r["provider_transaction_id"] for r in listed["results"]] == ["APISUSP001"]
    their_admin = factories.make_admin(entity=other_entity)
    their_admin.disbursement_limit = Decimal("100000")
    their_admin.save()
    theirs = open_loan(other_entity, their_admin, cellphone="0811234567")
    refused = api.post(f"/api/mobile-money/payments/{txn.pk}/allocate/", {"loan": theirs.pk}, format="json")
    assert refused.status_code == 400 and "loan" in refused.json()
    done = api.post(f"/api/mobile-money/payments/{txn.pk}/allocate/", {"loan": loan.pk}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "allocated"
    again = api.post(f"/api/mobile-money/payments/{txn.pk}/allocate/", {"loan": loan.pk}, format="json")
    assert again.status_code == 400
    assert api.get("/api/mobile-money/payments/?status=nonsense").status_code == 400


def test_disbursement_marked_and_sent_over_the_limit_waits(api, entity, lender_user, setup):
    loan = approved_loan(entity, lender_user, principal="900")
    made = api.post("/api/mobile-money/disbursements/", {"loan": loan.pk}, format="json")
    assert made.status_code == 201 and made.json()["status"] == DisbursementStatus.PAYMENT_PENDING
    lender_user.disbursement_limit = Decimal("100")
    lender_user.save()
    batch = api.post("/api/mobile-money/disbursements/send/", format="json")
    assert batch.status_code == 201 and batch.json()["approved_by"] is None and batch.json()["total"] == "900.00"
    assert Disbursement.objects.get().status == DisbursementStatus.AWAITING_APPROVAL
    assert api.post(f"/api/mobile-money/batches/{batch.json()['id']}/approve/").status_code == 400


def test_rights(entity, setup):
    viewer = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    client = APIClient()
    client.force_authenticate(viewer)
    for url in ("/api/mobile-money/providers/", "/api/mobile-money/payments/", "/api/mobile-money/disbursements/",
                "/api/mobile-money/batches/", "/api/mobile-money/requests-to-pay/"):
        assert client.get(url).status_code == 403, url


def test_schema_documents_the_api_and_not_the_callbacks(api):
    schema = api.get("/api/schema/?format=json").json()
    paths = schema["paths"]
    assert "/api/mobile-money/disbursements/send/" in paths
    assert not [p for p in paths if "callbacks/mpesa" in p or "callbacks/momo" in p]


def test_no_loan_of_today_is_paid_in_the_future(entity, lender_user, setup):
    loan = open_loan(entity, lender_user)
    txn, _ = payment_in_record(setup=setup, source="callback", payment=PaymentIn(
        provider_transaction_id="FUTURE0001", amount=Decimal("30.00"), account_reference=f"L{loan.pk}",
        transacted_at=timezone.now() + dt.timedelta(days=3)))
    assert txn.status == "suspense" and "future" in txn.suspense_reason
