"""The confirmation callback's own work, pinned: one short transaction that records the payment and
posts its receipt, locking only the loan — never the entity's SMS credit ledger, which would make
every callback of the entity wait for the one before it. The client's SMS is marked in that
transaction and queued after it commits; a mark whose task was lost is sent by the sweep."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imali.messaging.credits import credit_balance
from imali.messaging.models import OutboxMessage
from imali.mobilemoney.models import ProviderTransaction
from imali.mobilemoney.services import callback_url, payment_confirmations_sweep, setup_save

from .conftest import open_loan

pytestmark = pytest.mark.django_db

# The setup (1), the payment row (1: no look-up before it, the unique index refuses a replay), the
# loan matched (1), receipt_post (the loan locked, its reference, its instalments locked, the
# receipt, its allocation, the instalment, the loan, its audit: 8, in one savepoint: 2), the
# payment's outcome and audit (2), and the callback's savepoint inside the test's transaction (2).
CONFIRMATION_QUERIES = 17
# A replay: the setup (1), the insert the unique index refuses, in its savepoint (4: savepoint,
# insert, rollback to and release it), the payment recorded before (1).
REPLAY_QUERIES = 6


@pytest.fixture
def setup(entity, lender_user):
    return setup_save(entity=entity, actor=lender_user, data={
        "provider": "mpesa", "base_url": "http://127.0.0.1:9", "short_code": "600777", "consumer_key": "k",
        "consumer_secret": "s", "callback_base_url": "http://testserver/"})


def confirmation(setup, loan, trans_id: str) -> dict:
    return {"TransactionType": "Pay Bill", "TransID": trans_id, "TransTime": "20261207010000", "TransAmount": "10.00",
            "BusinessShortCode": setup.short_code, "BillRefNumber": f"L{loan.pk}", "InvoiceNumber": "",
            "OrgAccountBalance": "", "ThirdPartyTransID": "", "MSISDN": "27821234567", "FirstName": "Jane",
            "MiddleName": "", "LastName": "Doe"}


def test_a_confirmation_is_a_fixed_number_of_queries_and_never_touches_the_credit_ledger(
        client, entity, lender_user, setup, django_capture_on_commit_callbacks):
    loan = open_loan(entity, lender_user)
    url = callback_url(setup, "confirmation").replace("http://testserver", "")
    credits_before = credit_balance(entity=entity)
    for n in range(3):  # the first and later payments of the loan cost the same
        with django_capture_on_commit_callbacks(execute=False) as after_commit, \
                CaptureQueriesContext(connection) as queries:
            answer = client.post(url, json.dumps(confirmation(setup, loan, f"QC{n:08d}")), content_type="application/json")
        assert answer.status_code == 200 and answer.json()["ResultCode"] == 0
        sql = [q["sql"] for q in queries.captured_queries]
        assert len(sql) == CONFIRMATION_QUERIES, "\n".join(sql)
        assert not [q for q in sql if "messaging_" in q], "the callback's transaction touched messaging"
        locked = [q for q in sql if "FOR UPDATE" in q]
        assert all('FROM "loans_loan"' in q or 'FROM "loans_instalment"' in q for q in locked), locked
        # A bare FOR UPDATE over a join locks every joined row: the product's would be shared by all its loans.
        assert not [q for q in locked if "JOIN" in q and "FOR UPDATE OF" not in q], locked
        assert not [q for q in locked if "loans_product" in q.rsplit("FOR UPDATE", 1)[1]], locked
        txn = ProviderTransaction.objects.get(provider_transaction_id=f"QC{n:08d}")
        assert txn.status == "posted" and txn.confirmation_sms == "pending"
        assert len(after_commit) == 1
        after_commit[0]()  # the task: the consumer's work, inline
        txn.refresh_from_db()
        assert txn.confirmation_sms == "queued"
    sent = OutboxMessage.objects.filter(client=loan.client, message_type="payment_received").order_by("pk")
    assert [m.idempotency_key for m in sent] == [f"mm-payment:{setup.pk}:QC{n:08d}" for n in range(3)]
    assert credit_balance(entity=entity) == credits_before - sum(m.credits for m in sent)


def test_a_confirmation_whose_task_was_lost_is_sent_once_by_the_sweep(
        client, entity, lender_user, setup, django_capture_on_commit_callbacks):
    loan = open_loan(entity, lender_user)
    url = callback_url(setup, "confirmation").replace("http://testserver", "")
    credits_before = credit_balance(entity=entity)
    with django_capture_on_commit_callbacks(execute=False):  # committed, then the process died
        client.post(url, json.dumps(confirmation(setup, loan, "LOST000001")), content_type="application/json")
    assert not OutboxMessage.objects.exists()
    assert payment_confirmations_sweep() == 0  # too young: its task may still be on its way
    import datetime as dt

    assert payment_confirmations_sweep(older_than=dt.timedelta(0)) == 1
    assert payment_confirmations_sweep(older_than=dt.timedelta(0)) == 0
    sms = OutboxMessage.objects.get(client=loan.client, message_type="payment_received")
    assert "LOST000001" in sms.text and "10.00" in sms.text
    assert credit_balance(entity=entity) == credits_before - sms.credits
    assert ProviderTransaction.objects.get(provider_transaction_id="LOST000001").confirmation_sms == "queued"


def test_a_confirmation_messaging_refuses_leaves_the_payment_posted(
        client, entity, lender_user, setup, django_capture_on_commit_callbacks):
    from imali.messaging.credits import credit_settings_update

    loan = open_loan(entity, lender_user)
    credit_settings_update(actor=lender_user, entity=entity, channel="sms", monthly_limit=0, low_warning_amount=0,
                           low_warning_user=None)
    url = callback_url(setup, "confirmation").replace("http://testserver", "")
    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, json.dumps(confirmation(setup, loan, "NOCRED0001")), content_type="application/json")
    txn = ProviderTransaction.objects.get(provider_transaction_id="NOCRED0001")
    assert txn.status == "posted" and txn.receipt is not None and txn.confirmation_sms == "not_sent"
    assert not OutboxMessage.objects.exists()


def test_a_replayed_confirmation_is_refused_by_the_unique_index_and_writes_nothing(
        client, entity, lender_user, setup, django_capture_on_commit_callbacks):
    from imali.core.models import AuditEntry
    from imali.loans.models import Receipt

    loan = open_loan(entity, lender_user)
    url = callback_url(setup, "confirmation").replace("http://testserver", "")
    body = json.dumps(confirmation(setup, loan, "REPLAY0001"))
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(url, body, content_type="application/json").status_code == 200
    loan.refresh_from_db()
    state = (Receipt.objects.count(), AuditEntry.objects.count(), OutboxMessage.objects.count(), loan.received_total,
             list(ProviderTransaction.objects.values_list("pk", "status", "receipt_id", "confirmation_sms")))
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True) as after_commit, \
                CaptureQueriesContext(connection) as queries:
            answer = client.post(url, body, content_type="application/json")
        assert answer.status_code == 200 and answer.json()["ResultCode"] == 0  # M-PESA need not send it again
        sql = [q["sql"] for q in queries.captured_queries]
        assert len(sql) == REPLAY_QUERIES, "\n".join(sql)
        assert not [q for q in sql if "loans_" in q or "core_auditentry" in q or q.startswith("UPDATE")], sql
        assert not after_commit
    loan.refresh_from_db()
    assert (Receipt.objects.count(), AuditEntry.objects.count(), OutboxMessage.objects.count(), loan.received_total,
            list(ProviderTransaction.objects.values_list("pk", "status", "receipt_id", "confirmation_sms"))) == state
