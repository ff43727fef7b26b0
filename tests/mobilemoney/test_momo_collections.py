"""MTN MoMo request-to-pay over loopback: the client approves on the peer's phone page, MoMo calls
back, we read the state back from MoMo and record the payment once; a lost callback is recovered
by polling; a forged callback body is never trusted."""

from __future__ import annotations

import datetime as dt
import json
import urllib.request
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from imali.loans.models import Receipt
from imali.mobilemoney.adapters import ProviderError
from imali.mobilemoney.adapters.momo import MomoAdapter
from imali.mobilemoney.collections import collection_request, collections_poll
from imali.mobilemoney.models import CollectionRequest
from imali.mobilemoney.services import callback_url

from .conftest import momo_setup, open_loan, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def setup(entity, lender_user, momo_peer, live_server):
    return momo_setup(entity, lender_user, momo_peer, live_server.url)


def test_request_to_pay_approved_posts_one_receipt(entity, lender_user, setup, momo_peer):
    loan = open_loan(entity, lender_user)
    request = collection_request(setup=setup, loan=loan, amount="120.00", actor=lender_user)
    assert momo_peer.resources[("collection", str(request.reference_id))].status == "PENDING"
    momo_peer.faults.duplicate_callbacks = True
    momo_peer.customer_decides(str(request.reference_id), approve=True)
    # Waiting on the last write of the callback's transaction (on SQLite the live server shares the
    # test's connection, so a row written earlier in it shows before the commit).
    assert wait_for(lambda: CollectionRequest.objects.get(pk=request.pk).status == "SUCCESSFUL")
    resource = momo_peer.resources[("collection", str(request.reference_id))]
    receipt = Receipt.objects.get(loan=loan)
    assert receipt.external_reference == resource.financial_transaction_id and receipt.amount == Decimal("120.00")
    assert wait_for(lambda: len(momo_peer.callbacks_sent) == 2 and all(status for _, status, _ in momo_peer.callbacks_sent))
    assert Receipt.objects.filter(loan=loan).count() == 1


def test_refused_request_records_the_reason_and_no_receipt(entity, lender_user, setup, momo_peer):
    loan = open_loan(entity, lender_user)
    request = collection_request(setup=setup, loan=loan, amount="10.00", actor=lender_user)
    momo_peer.customer_decides(str(request.reference_id), approve=False)
    assert wait_for(lambda: CollectionRequest.objects.get(pk=request.pk).status == "FAILED")
    assert CollectionRequest.objects.get(pk=request.pk).reason == "APPROVAL_REJECTED"
    assert not Receipt.objects.exists()


def test_lost_callback_is_recovered_by_polling(entity, lender_user, setup, momo_peer):
    loan = open_loan(entity, lender_user)
    momo_peer.faults.lose_callbacks = True
    request = collection_request(setup=setup, loan=loan, amount="33.00", actor=lender_user)
    momo_peer.customer_decides(str(request.reference_id), approve=True)
    assert not Receipt.objects.exists()
    CollectionRequest.objects.filter(pk=request.pk).update(created_at=timezone.now() - dt.timedelta(minutes=5))
    assert collections_poll() == 1
    assert Receipt.objects.filter(loan=loan, amount=Decimal("33.00")).count() == 1
    assert collections_poll() == 0


def test_a_forged_success_callback_is_not_trusted(entity, lender_user, setup, momo_peer):
    loan = open_loan(entity, lender_user)
    request = collection_request(setup=setup, loan=loan, amount="44.00", actor=lender_user)
    body = json.dumps({"referenceId": str(request.reference_id), "status": "SUCCESSFUL", "financialTransactionId": "1",
                       "amount": "44.00"}).encode()
    url = callback_url(setup, "collection", reference=str(request.reference_id))
    with urllib.request.urlopen(urllib.request.Request(url, data=body, method="PUT"), timeout=10) as answer:
        assert answer.status == 200
    # MoMo still says PENDING: nothing is recorded.
    assert CollectionRequest.objects.get(pk=request.pk).status == "PENDING"
    assert not Receipt.objects.exists()


def test_peer_enforces_the_open_api(momo_peer):
    c = momo_peer.config
    adapter = MomoAdapter(base_url=momo_peer.base_url, api_user=c.api_user, api_key=c.api_key,
                          subscription_key=c.subscription_key, target_environment=c.target_environment, currency="USD")
    with pytest.raises(ProviderError, match="currency"):
        adapter.request_to_pay(reference_id=str(uuid.uuid4()), msisdn="+27821234567", amount=Decimal("1.00"),
                               external_id="x", message="m", callback_url="")
    wrong = MomoAdapter(base_url=momo_peer.base_url, api_user=c.api_user, api_key="wrong",
                        subscription_key=c.subscription_key, target_environment=c.target_environment, currency=c.currency)
    with pytest.raises(ProviderError):
        wrong.token("collection")
    good = MomoAdapter(base_url=momo_peer.base_url, api_user=c.api_user, api_key=c.api_key,
                       subscription_key=c.subscription_key, target_environment=c.target_environment, currency=c.currency)
    with pytest.raises(ProviderError, match="UUID"):
        good.request_to_pay(reference_id="not-a-uuid", msisdn="+27821234567", amount=Decimal("1.00"), external_id="x",
                            message="m", callback_url="")
    ref = str(uuid.uuid4())
    good.request_to_pay(reference_id=ref, msisdn="+27821234567", amount=Decimal("1.00"), external_id="x", message="m",
                        callback_url="")
    # The same reference again is a 409 at MoMo, which the adapter reads as "already arrived".
    good.request_to_pay(reference_id=ref, msisdn="+27821234567", amount=Decimal("1.00"), external_id="x", message="m",
                        callback_url="")
    assert len(momo_peer.resources) == 1
    assert good.request_status(reference_id=str(uuid.uuid4())).state == "NOT_FOUND"
    # A collection token does not open the disbursement API.
    token = good.token("collection")
    request = urllib.request.Request(f"{momo_peer.base_url}/disbursement/v1_0/transfer/{ref}", headers={
        "Authorization": f"Bearer {token}", "Ocp-Apim-Subscription-Key": c.subscription_key,
        "X-Target-Environment": c.target_environment})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 401
