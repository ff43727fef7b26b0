"""Paying money out through the stream is a disbursement: the right "Disburse" and the user's
disbursement limit apply, on the screen and over the API (the peer over loopback receives nothing
when refused)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from imali.paystream import services
from imali.paystream.models import CreditPayment
from imali.tenancy.rights import Right
from tests import factories

from .conftest import ABSA_OK, approved_loan

STREAM_ONLY = [Right.PAYMENT_STREAM_WEB_SERVICES, Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS, Right.CAPTURE_LOANS]


def _user(entity, rights, limit):
    user = factories.make_user(entity=entity, rights=rights)
    user.disbursement_limit = Decimal(limit)
    user.save(update_fields=["disbursement_limit"])
    return user


@pytest.fixture
def payable(ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    return account, approved_loan(ps_entity, clerk, borrower, principal="3000")


def test_web_payout_needs_the_disburse_right(client, ps_entity, borrower, payable, peer):
    account, loan = payable
    client.force_login(_user(ps_entity, STREAM_ONLY, "100000"))
    response = client.post(reverse("web:paystream_loan_pay", kwargs={"loan_id": loan.pk}),
                           {"account_1": account.pk, "amount_1": "3000.00", "cash_amount": "0"})
    assert response.status_code == 403
    assert peer.state.payments == {} and not CreditPayment.objects.exists()
    # The screen does not offer what the user may not do.
    page = client.get(reverse("web:paystream_loan", kwargs={"loan_id": loan.pk})).content.decode()
    assert 'id="payout-form"' not in page and "needs the right" in page


def test_web_payout_above_the_limit_names_the_limit(client, ps_entity, borrower, payable, peer):
    account, loan = payable
    client.force_login(_user(ps_entity, [*STREAM_ONLY, Right.DISBURSE_LOANS], "1000"))
    response = client.post(reverse("web:paystream_loan_pay", kwargs={"loan_id": loan.pk}),
                           {"account_1": account.pk, "amount_1": "3000.00", "cash_amount": "0"})
    assert response.status_code == 400
    assert "above your disbursement limit of 1,000.00" in response.content.decode()
    assert peer.state.payments == {} and not CreditPayment.objects.exists()


def test_api_payout_needs_the_disburse_right_and_respects_the_limit(client, ps_entity, borrower, payable, peer):
    account, loan = payable
    body = {"client": borrower.pk, "loan": loan.pk, "accounts": [{"account": account.pk, "amount": "3000.00"}]}
    client.force_login(_user(ps_entity, STREAM_ONLY, "100000"))
    assert client.post("/api/payment-stream/payments/", body, content_type="application/json").status_code == 403
    client.force_login(_user(ps_entity, [*STREAM_ONLY, Right.DISBURSE_LOANS], "2999.99"))
    over = client.post("/api/payment-stream/payments/", body, content_type="application/json")
    assert over.status_code == 400
    assert over.json()["amount_1"] == ["The payout of 3,000.00 is above your disbursement limit of 2,999.99."]
    # A payment with no loan is money out too.
    plain = client.post("/api/payment-stream/payments/", {"client": borrower.pk, "accounts": [{"account": account.pk, "amount": "3000.00"}]},
                        content_type="application/json")
    assert plain.status_code == 400 and "disbursement limit" in plain.json()["amount_1"][0]
    assert peer.state.payments == {} and not CreditPayment.objects.exists()
    client.force_login(_user(ps_entity, [*STREAM_ONLY, Right.DISBURSE_LOANS], "3000"))
    assert client.post("/api/payment-stream/payments/", body, content_type="application/json").status_code == 201
