"""The confirmation callback's own work, pinned: it authenticates, stores the payment (RECEIVED,
unique per setup and TransID) and answers — one INSERT, no loan, audit or messaging table touched —
and after the commit asks the consumer to post. The consumer posts every stored payment set-based
(`received.payments_received_post`): a fixed number of statements per batch however many payments
it holds, landing on the loans exactly as the one-at-a-time path would, then queues the clients'
SMSs in one go. A payment whose task was lost is posted by the recovery pass."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imali.core.models import AuditEntry
from imali.loans.models import Instalment, Receipt, ReceiptAllocation
from imali.loans.services import receipt_post
from imali.messaging.credits import credit_balance
from imali.messaging.models import OutboxMessage
from imali.mobilemoney.models import ProviderTransaction
from imali.mobilemoney.received import payments_received_post
from imali.mobilemoney.services import (
    PaymentIn,
    callback_url,
    payment_confirmations_sweep,
    payment_in_receive,
    payment_in_record,
    setup_save,
)
from imali.mobilemoney.tasks import mobile_money_recover

from .conftest import open_loan

pytestmark = pytest.mark.django_db

# The setup (1) and the payment row (1: no look-up before it, the unique index refuses a replay),
# in the callback's savepoint inside the test's transaction (2).
CONFIRMATION_QUERIES = 4
# A replay: the setup (1), the insert the unique index refuses, in its savepoint (4: savepoint,
# insert, rollback to and release it), the payment recorded before (1).
REPLAY_QUERIES = 6


@pytest.fixture
def setup(entity, lender_user):
    return setup_save(entity=entity, actor=lender_user, data={
        "provider": "mpesa", "base_url": "http://127.0.0.1:9", "short_code": "600777", "consumer_key": "k",
        "consumer_secret": "s", "callback_base_url": "http://testserver/"})


def confirmation(setup, loan, trans_id: str, amount: str = "10.00", reference: str | None = None) -> dict:
    return {"TransactionType": "Pay Bill", "TransID": trans_id, "TransTime": "20261207010000", "TransAmount": amount,
            "BusinessShortCode": setup.short_code, "BillRefNumber": f"L{loan.pk}" if reference is None else reference,
            "InvoiceNumber": "", "OrgAccountBalance": "", "ThirdPartyTransID": "", "MSISDN": "27821234567",
            "FirstName": "Jane", "MiddleName": "", "LastName": "Doe"}


def payment(trans_id: str, loan, amount: str = "10.00") -> PaymentIn:
    return PaymentIn(provider_transaction_id=trans_id, amount=Decimal(amount),
                     transacted_at=dt.datetime(2026, 12, 7, 1, 0, tzinfo=dt.UTC), msisdn="27821234567",
                     payer_name="Jane Doe", account_reference=f"L{loan.pk}")


def test_a_confirmation_stores_the_payment_in_one_insert_and_the_consumer_posts_it_with_its_sms(
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
        assert not [q for q in sql if "loans_" in q or "messaging_" in q or "core_auditentry" in q], sql
        assert not [q for q in sql if "FOR UPDATE" in q], sql
        txn = ProviderTransaction.objects.get(provider_transaction_id=f"QC{n:08d}")
        assert (txn.status, txn.receipt_id, txn.confirmation_sms) == ("received", None, "")  # stored, durable, answered
        assert not Receipt.objects.filter(external_reference=f"QC{n:08d}").exists()
        assert len(after_commit) == 1
        after_commit[0]()  # the consumer's work, inline (Huey immediate): posted, then the SMS
        txn.refresh_from_db()
        assert txn.status == "posted" and txn.loan_id == loan.pk and txn.confirmation_sms == "queued"
        assert Receipt.objects.get(external_reference=f"QC{n:08d}").pk == txn.receipt_id
    sent = OutboxMessage.objects.filter(client=loan.client, message_type="payment_received").order_by("pk")
    assert [m.idempotency_key for m in sent] == [f"mm-payment:{setup.pk}:QC{n:08d}" for n in range(3)]
    assert all("10.00" in m.text and f"loan {loan.pk}" in m.text for m in sent)
    assert credit_balance(entity=entity) == credits_before - sum(m.credits for m in sent)
    actions = list(AuditEntry.objects.filter(action__in=["receipt.posted", "mobilemoney.payment_received"])
                   .exclude(subject="").values_list("action", "subject"))
    for n in range(3):
        assert ("receipt.posted", f"QC{n:08d}") in actions and ("mobilemoney.payment_received", f"QC{n:08d}") in actions


def _post_queries() -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        payments_received_post()
    return [q["sql"] for q in queries.captured_queries]


def test_posting_is_a_fixed_number_of_statements_however_many_payments_wait(entity, lender_user, setup,
                                                                             django_capture_on_commit_callbacks):
    loans = [open_loan(entity, lender_user, cellphone=f"08212345{n:02d}") for n in range(3)]
    with django_capture_on_commit_callbacks(execute=False):
        payment_in_receive(setup=setup, payment=payment("ONE0000001", loans[0]), source="callback")
    one = _post_queries()
    with django_capture_on_commit_callbacks(execute=False):
        for n in range(9):
            payment_in_receive(setup=setup, payment=payment(f"MANY00000{n}", loans[n % 3], "5.00"), source="callback")
    many = _post_queries()
    assert len(many) == len(one), "\n".join(many)
    assert ProviderTransaction.objects.filter(status="posted").count() == 10
    assert OutboxMessage.objects.filter(message_type="payment_received").count() == 10
    # One debit for the batch's SMSs, not one per SMS.
    assert len([q for q in many if q.startswith("INSERT") and "messaging_creditentry" in q]) == 1, "\n".join(many)
    idle = _post_queries()  # nothing waiting: one read (in its savepoint here)
    assert len([q for q in idle if not q.startswith(("SAVEPOINT", "RELEASE"))]) == 1, idle


def test_a_batch_lands_on_the_loans_exactly_as_payments_posted_one_at_a_time(
        entity, lender_user, setup, django_capture_on_commit_callbacks):
    """The same payments, one loan paid through the one-at-a-time path and its twin through the
    consumer's batch: the same receipts, allocations, instalments and loan figures, and the same
    refusal (above the receipt maximum) left in suspense with the same reason."""
    one = open_loan(entity, lender_user)
    twin = open_loan(entity, lender_user, cellphone="0821234568")
    amounts = ["150.00", "0.50", "900.00", "99999.00", "300.00"]
    with django_capture_on_commit_callbacks(execute=True):  # its SMSs queued after each commit
        for n, amount in enumerate(amounts):
            payment_in_record(setup=setup, payment=payment(f"SYNC{n:06d}", one, amount), source="callback")
    with django_capture_on_commit_callbacks(execute=False):
        for n, amount in enumerate(amounts):
            payment_in_receive(setup=setup, payment=payment(f"BTCH{n:06d}", twin, amount), source="callback")
    payments_received_post()

    def book(loan, prefix):
        loan.refresh_from_db()
        txns = ProviderTransaction.objects.filter(provider_transaction_id__startswith=prefix).order_by("pk")
        receipts = Receipt.objects.filter(loan=loan).order_by("pk")
        return {
            "loan": (loan.status, loan.received_total, loan.change_total, loan.last_receipt_on, loan.paid_up_on),
            "txns": [(t.status, t.suspense_reason.replace(f"loan {loan.pk} ", "loan N "), t.confirmation_sms, t.amount)
                     for t in txns],
            "receipts": [(r.amount, r.allocated, r.change, r.value_date, r.loan_status_before) for r in receipts],
            "allocations": [(a.instalment.seq, a.fee, a.vat, a.interest, a.capital, a.paid_on_before)
                            for a in ReceiptAllocation.objects.filter(receipt__loan=loan).order_by("receipt_id", "instalment__seq")],
            "instalments": [(i.seq, i.fee_paid, i.vat_paid, i.interest_paid, i.capital_paid, i.paid, i.paid_on, i.open)
                            for i in Instalment.objects.filter(loan=loan).order_by("seq")],
        }

    sync, batched = book(one, "SYNC"), book(twin, "BTCH")
    assert batched == sync
    assert [t[0] for t in batched["txns"]] == ["posted", "posted", "posted", "suspense", "posted"]


def test_unmatched_and_by_hand_payments_are_settled_like_the_one_at_a_time_path(
        entity, lender_user, setup, django_capture_on_commit_callbacks):
    loan = open_loan(entity, lender_user)
    receipt_post(entity=entity, actor=lender_user, loan=loan, amount="20.00", value_date=dt.date.today(),
                 payback_type="mobile_money", external_reference="HAND000001")
    with django_capture_on_commit_callbacks(execute=False):
        payment_in_receive(setup=setup, payment=payment("HAND000001", loan, "20.00"), source="callback")
        payment_in_receive(setup=setup, source="callback", payment=PaymentIn(
            provider_transaction_id="NOLOAN0001", amount=Decimal("5.00"), transacted_at=dt.datetime(2026, 12, 7, tzinfo=dt.UTC),
            account_reference="L999999"))
        payment_in_receive(setup=setup, source="callback", payment=PaymentIn(
            provider_transaction_id="NOREF00001", amount=Decimal("5.00"), transacted_at=dt.datetime(2026, 12, 7, tzinfo=dt.UTC),
            account_reference="hello"))
    assert payments_received_post() == 3
    hand = ProviderTransaction.objects.get(provider_transaction_id="HAND000001")
    assert hand.status == "posted" and hand.receipt.external_reference == "HAND000001" and hand.confirmation_sms == ""
    assert Receipt.objects.filter(external_reference="HAND000001").count() == 1
    reasons = dict(ProviderTransaction.objects.filter(status="suspense").values_list("provider_transaction_id", "suspense_reason"))
    assert reasons == {"NOLOAN0001": "No loan 999999.",
                       "NOREF00001": "Account reference 'hello' is not a client or loan number."}
    assert not OutboxMessage.objects.exists()


def test_a_payment_naming_another_entitys_loan_waits_in_suspense(entity, lender_user, setup,
                                                                   django_capture_on_commit_callbacks):
    from tests import factories

    other = factories.make_entity()
    officer = factories.make_admin(entity=other)
    officer.disbursement_limit = Decimal("100000")
    officer.save()
    foreign = open_loan(other, officer)
    with django_capture_on_commit_callbacks(execute=False):
        payment_in_receive(setup=setup, payment=payment("FOREIGN001", foreign), source="callback")
    payments_received_post()
    txn = ProviderTransaction.objects.get(provider_transaction_id="FOREIGN001")
    assert txn.status == "suspense" and txn.suspense_reason == f"No loan {foreign.pk}."
    assert not Receipt.objects.filter(loan=foreign).exists()


def test_a_confirmation_whose_task_was_lost_is_posted_once_by_the_recovery_pass(
        client, entity, lender_user, setup, django_capture_on_commit_callbacks):
    loan = open_loan(entity, lender_user)
    url = callback_url(setup, "confirmation").replace("http://testserver", "")
    credits_before = credit_balance(entity=entity)
    with django_capture_on_commit_callbacks(execute=False):  # committed, then the process died
        client.post(url, json.dumps(confirmation(setup, loan, "LOST000001")), content_type="application/json")
    assert ProviderTransaction.objects.get(provider_transaction_id="LOST000001").status == "received"
    mobile_money_recover.call_local()
    mobile_money_recover.call_local()
    txn = ProviderTransaction.objects.get(provider_transaction_id="LOST000001")
    assert txn.status == "posted" and txn.confirmation_sms == "queued"
    assert Receipt.objects.filter(external_reference="LOST000001").count() == 1
    sms = OutboxMessage.objects.get(client=loan.client, message_type="payment_received")
    assert "LOST000001" in sms.text and "10.00" in sms.text
    assert credit_balance(entity=entity) == credits_before - sms.credits


def test_an_sms_left_pending_after_posting_is_sent_once_by_the_sweep(
        entity, lender_user, setup, django_capture_on_commit_callbacks):
    loan = open_loan(entity, lender_user)
    with django_capture_on_commit_callbacks(execute=False):
        txn, _ = payment_in_receive(setup=setup, payment=payment("SWEEP00001", loan), source="callback")
    from imali.mobilemoney import received

    with django_capture_on_commit_callbacks(execute=False):
        received._post_batch_retrying(received.BATCH)  # posted; the process died before the SMS
    txn.refresh_from_db()
    assert txn.status == "posted" and txn.confirmation_sms == "pending"
    assert payment_confirmations_sweep() == 0  # too young: its task may still be on its way
    assert payment_confirmations_sweep(older_than=dt.timedelta(0)) == 1
    assert payment_confirmations_sweep(older_than=dt.timedelta(0)) == 0
    assert OutboxMessage.objects.filter(client=loan.client, message_type="payment_received").count() == 1


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
    loan = open_loan(entity, lender_user)
    url = callback_url(setup, "confirmation").replace("http://testserver", "")
    body = json.dumps(confirmation(setup, loan, "REPLAY0001"))
    with django_capture_on_commit_callbacks(execute=False) as first:
        assert client.post(url, body, content_type="application/json").status_code == 200

    def state():
        loan.refresh_from_db()
        return (Receipt.objects.count(), AuditEntry.objects.count(), OutboxMessage.objects.count(), loan.received_total,
                list(ProviderTransaction.objects.values_list("pk", "status", "receipt_id", "confirmation_sms")))

    for posted in (False, True):  # replayed while it waits to be posted, and after
        before = state()
        for _ in range(2):
            with django_capture_on_commit_callbacks(execute=True) as after_commit, \
                    CaptureQueriesContext(connection) as queries:
                answer = client.post(url, body, content_type="application/json")
            assert answer.status_code == 200 and answer.json()["ResultCode"] == 0  # M-PESA need not send it again
            sql = [q["sql"] for q in queries.captured_queries]
            assert len(sql) == REPLAY_QUERIES, "\n".join(sql)
            assert not [q for q in sql if "loans_" in q or "core_auditentry" in q or q.startswith("UPDATE")], sql
            assert not after_commit
        assert state() == before
        if not posted:
            first[0]()
    assert Receipt.objects.filter(external_reference="REPLAY0001").count() == 1
    assert OutboxMessage.objects.filter(message_type="payment_received").count() == 1
