"""M-PESA payments in, end to end over loopback: the peer's customer pays the paybill, the peer
calls our validation and confirmation URLs on a live test server, a receipt lands on the loan once
per TransID with the provider's number, and the client's confirmation SMS is queued."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal

import pytest

from imali.core.models import AuditEntry
from imali.loans.models import Receipt
from imali.messaging.models import OutboxMessage
from imali.mobilemoney.adapters import ProviderError, ProviderUnavailable
from imali.mobilemoney.adapters.mpesa import MpesaAdapter
from imali.mobilemoney.models import ProviderTransaction, TransactionStatus
from imali.mobilemoney.services import callback_url, setup_register_urls

from .conftest import mpesa_setup, open_loan

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def wired(entity, lender_user, mpesa_peer, live_server):
    setup = mpesa_setup(entity, lender_user, mpesa_peer, live_server.url)
    setup_register_urls(setup=setup, actor=lender_user)
    return setup


def post(url, body, method="POST"):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_register_urls_reaches_the_peer_with_our_tokenised_urls(wired, mpesa_peer):
    registered = mpesa_peer.registrations[wired.short_code]
    assert registered["ConfirmationURL"] == callback_url(wired, "confirmation")
    assert registered["ResponseType"] == "Cancelled"
    assert wired.registered_at is not None


def test_a_customer_payment_posts_one_receipt_with_the_transaction_number_and_an_sms(entity, lender_user, wired, mpesa_peer):
    loan = open_loan(entity, lender_user)
    paid = mpesa_peer.customer_pays(msisdn="27821234567", amount="150.00", reference=f"L{loan.pk}")
    assert paid.accepted, paid.note
    receipt = Receipt.objects.get(loan=loan)
    assert receipt.amount == Decimal("150.00")
    assert receipt.external_reference == paid.trans_id
    assert receipt.payback_type == "mobile_money"
    txn = ProviderTransaction.objects.get(provider_transaction_id=paid.trans_id)
    assert txn.status == TransactionStatus.POSTED and txn.receipt_id == receipt.pk
    sms = OutboxMessage.objects.get(entity=entity, client=loan.client, message_type="payment_received")
    assert paid.trans_id in sms.text and "150.00" in sms.text
    # The figures first, then the lender's text, whose last words (the lender's name) end the SMS.
    assert sms.text.startswith(f"{entity.currency} 150.00 received for loan {loan.pk} (M-PESA ref {paid.trans_id}). Dear ")
    assert sms.text.endswith(entity.name)
    assert AuditEntry.objects.filter(action="mobilemoney.payment_received", subject=paid.trans_id).exists()


def test_payment_by_client_number_goes_to_the_clients_loan(entity, lender_user, wired, mpesa_peer):
    loan = open_loan(entity, lender_user)
    paid = mpesa_peer.customer_pays(msisdn="27821234567", amount="99.50", reference=str(loan.client.number))
    assert paid.accepted
    assert Receipt.objects.get(external_reference=paid.trans_id).loan_id == loan.pk


def test_validation_refuses_an_unknown_account_and_nothing_is_recorded(entity, lender_user, wired, mpesa_peer):
    open_loan(entity, lender_user)
    paid = mpesa_peer.customer_pays(msisdn="27821234567", amount="50.00", reference="L999999")
    assert not paid.accepted
    assert "C2B00012" in paid.note
    assert not ProviderTransaction.objects.exists() and not Receipt.objects.exists()


def test_duplicate_confirmations_post_once(entity, lender_user, wired, mpesa_peer):
    loan = open_loan(entity, lender_user)
    mpesa_peer.faults.duplicate_callbacks = True
    paid = mpesa_peer.customer_pays(msisdn="27821234567", amount="75.00", reference=f"L{loan.pk}")
    assert paid.confirmations == [200, 200]
    assert Receipt.objects.filter(loan=loan).count() == 1
    assert OutboxMessage.objects.filter(client=loan.client, message_type="payment_received").count() == 1


def test_forged_and_replayed_confirmations_change_nothing(entity, lender_user, wired, mpesa_peer):
    loan = open_loan(entity, lender_user)
    paid = mpesa_peer.customer_pays(msisdn="27821234567", amount="60.00", reference=f"L{loan.pk}")
    body = next(b for url, _, b in mpesa_peer.callbacks_sent if "confirmation" in url)
    good = callback_url(wired, "confirmation")
    forged = good.replace("token=", "token=0")
    status, _ = post(forged, {**body, "TransID": "FORGED0001"})
    assert status == 403
    status, _ = post(good.split("?")[0] + f"?setup={wired.pk}", {**body, "TransID": "FORGED0002"})
    assert status == 403
    status, answer = post(good, body)  # the real one again
    assert status == 200 and str(answer["ResultCode"]) == "0"
    wrong_code = {**body, "TransID": "OTHERCODE1", "BusinessShortCode": "999999"}
    assert post(good, wrong_code)[0] == 400
    assert list(Receipt.objects.values_list("external_reference", flat=True)) == [paid.trans_id]


def test_unmatched_confirmation_waits_in_suspense(entity, lender_user, wired):
    status, answer = post(callback_url(wired, "confirmation"), {
        "TransactionType": "Pay Bill", "TransID": "SUSP000001", "TransTime": "20260105101500", "TransAmount": "40.00",
        "BusinessShortCode": wired.short_code, "BillRefNumber": "nobody", "InvoiceNumber": "", "OrgAccountBalance": "1.00",
        "ThirdPartyTransID": "", "MSISDN": "27820000000", "FirstName": "Sam", "MiddleName": "", "LastName": "Doe"})
    assert status == 200 and str(answer["ResultCode"]) == "0"
    txn = ProviderTransaction.objects.get(provider_transaction_id="SUSP000001")
    assert txn.status == TransactionStatus.SUSPENSE and "nobody" in txn.suspense_reason
    assert txn.amount == Decimal("40.00") and txn.payer_name == "Sam Doe"
    assert not Receipt.objects.exists()


def test_unreadable_confirmation_is_refused_naming_the_field(wired):
    status, answer = post(callback_url(wired, "confirmation"), {
        "TransID": "BAD0000001", "TransTime": "2026-01-05", "TransAmount": "40.00", "BusinessShortCode": wired.short_code})
    assert status == 400 and "TransTime" in answer["errors"]
    status, answer = post(callback_url(wired, "confirmation"), {
        "TransID": "BAD0000002", "TransTime": "20260105101500", "TransAmount": "1e3", "BusinessShortCode": wired.short_code})
    assert status == 400 and "TransAmount" in answer["errors"]
    assert not ProviderTransaction.objects.exists()


def test_adapter_refusals_and_outages_are_told_apart(mpesa_peer):
    c = mpesa_peer.config
    wrong = MpesaAdapter(base_url=mpesa_peer.base_url, consumer_key=c.consumer_key, consumer_secret="wrong", short_code=c.short_code)
    with pytest.raises(ProviderError) as refused:
        wrong.token()
    assert not isinstance(refused.value, ProviderUnavailable) and "Invalid Authentication" in str(refused.value)
    adapter = MpesaAdapter(base_url=mpesa_peer.base_url, consumer_key=c.consumer_key, consumer_secret=c.consumer_secret,
                           short_code=c.short_code, timeout=0.3)
    mpesa_peer.faults.down = True
    with pytest.raises(ProviderUnavailable):
        adapter.token()
    mpesa_peer.faults.down = False
    mpesa_peer.faults.slow_seconds = 1.0
    with pytest.raises(ProviderUnavailable):
        adapter.token()
    mpesa_peer.faults.slow_seconds = 0
    assert adapter.token()
    down = MpesaAdapter(base_url="http://127.0.0.1:9", consumer_key="k", consumer_secret="s", short_code="1")
    with pytest.raises(ProviderUnavailable):
        down.token()


def test_peer_enforces_register_url_rules(mpesa_peer):
    c = mpesa_peer.config
    adapter = MpesaAdapter(base_url=mpesa_peer.base_url, consumer_key=c.consumer_key, consumer_secret=c.consumer_secret,
                           short_code="111111")
    with pytest.raises(ProviderError, match="ShortCode"):
        adapter.register_urls(validation_url="http://127.0.0.1/v", confirmation_url="http://127.0.0.1/c")
    status, _ = post(f"{mpesa_peer.base_url}/mpesa/c2b/v2/registerurl", {"ShortCode": c.short_code})
    assert status == 401  # no token


def test_unreachable_validation_follows_the_registered_response_type(entity, lender_user, wired, mpesa_peer):
    loan = open_loan(entity, lender_user)
    registration = mpesa_peer.registrations[wired.short_code]
    registration["ValidationURL"] = "http://127.0.0.1:9/validation"  # nothing listens there
    refused = mpesa_peer.customer_pays(msisdn="27821234567", amount="10.00", reference=f"L{loan.pk}")
    assert not refused.accepted and "Cancelled" in refused.note  # what we register: unchecked money is refused
    assert not Receipt.objects.exists()
    registration["ResponseType"] = "Completed"
    taken = mpesa_peer.customer_pays(msisdn="27821234567", amount="10.00", reference=f"L{loan.pk}")
    assert taken.accepted
    assert Receipt.objects.get(external_reference=taken.trans_id).loan_id == loan.pk


@pytest.mark.parametrize("setup_id", ["\u00b2", "\u0661", "9" * 30])
def test_a_setup_id_that_is_not_a_plain_number_is_refused_not_a_server_error(wired, setup_id):
    """"²" and Arabic-Indic digits pass str.isdigit() but not int(); 30 digits overflow the column."""
    from urllib.parse import quote

    good = callback_url(wired, "confirmation")
    token = good.split("token=")[1].split("&")[0]
    status, answer = post(good.split("?")[0] + f"?setup={quote(setup_id)}&token={token}", {"TransID": "X"})
    assert status == 403 and answer["ResultCode"] == "C2B00016"


@pytest.mark.parametrize("reference", ["L\u00b2", "\u00b2\u00b3", "L" + "9" * 30])
def test_a_reference_of_unicode_digits_is_refused_by_validation_not_a_server_error(entity, lender_user, wired, mpesa_peer,
                                                                                    reference):
    open_loan(entity, lender_user)
    paid = mpesa_peer.customer_pays(msisdn="27821234567", amount="50.00", reference=reference)
    assert not paid.accepted and "C2B00012" in paid.note


def test_adapter_uses_httpx_with_time_limits_and_ignores_proxy_settings(mpesa_peer, monkeypatch):
    import httpx

    c = mpesa_peer.config
    adapter = MpesaAdapter(base_url=mpesa_peer.base_url, consumer_key=c.consumer_key, consumer_secret=c.consumer_secret,
                           short_code=c.short_code, timeout=0.3)
    assert isinstance(adapter.client, httpx.Client)
    # A proxy in the environment is not used: the provider is called directly.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    assert adapter.token()
    mpesa_peer.faults.slow_seconds = 1.0
    slow = MpesaAdapter(base_url=mpesa_peer.base_url, consumer_key=c.consumer_key, consumer_secret=c.consumer_secret,
                        short_code=c.short_code, timeout=0.3)
    with pytest.raises(ProviderUnavailable, match="did not answer in time"):
        slow.token()
    mpesa_peer.faults.slow_seconds = 0
