"""Mobile disbursement end to end over loopback: payment pending → consolidated send within the
user's limit (or approved by a user whose limit covers it) → B2C / MoMo transfer → result callback
→ the loan is paid out only on success, with the time and the provider's confirmation number. A
time-out queries the status before any resend; a crash between send and record never pays twice."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from imali.clients.services import client_account_add
from imali.loans.models import Loan, LoanStatus
from imali.loans.services import loan_apply, loan_approve, loan_disburse
from imali.mobilemoney import disbursements
from imali.mobilemoney.adapters import adapter_for
from imali.mobilemoney.models import Disbursement, DisbursementStatus
from imali.mobilemoney.services import callback_url
from tests import factories
from tests.loans.conftest import make_product

from .conftest import momo_setup, mpesa_setup, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def approved_loan(entity, user, *, principal="1500", cellphone="0821234567", wallet="0821234567"):
    client = factories.make_client(entity=entity, cellphone=cellphone, payment_day=25, payment_move_direction="before")
    client_account_add(client=client, actor=None, data={"kind": "wallet", "purpose": "payout", "wallet_provider": "M-PESA",
                                                        "wallet_number": wallet})
    product = make_product(entity, name=f"P{client.pk}")
    loan = loan_apply(entity=entity, actor=user, client=client, product=product, principal=principal, instalments=3,
                      applied_on=dt.date.today())
    return loan_approve(loan=loan, actor=user)


def status_of(d):
    return Disbursement.objects.get(pk=d.pk).status


@pytest.fixture
def mpesa(entity, lender_user, mpesa_peer, live_server):
    return mpesa_setup(entity, lender_user, mpesa_peer, live_server.url)


def test_within_the_limit_it_is_sent_and_the_loan_paid_out_on_success(entity, lender_user, mpesa, mpesa_peer):
    loan = approved_loan(entity, lender_user)
    d = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.APPROVED
    batch = disbursements.payments_send(entity=entity, actor=lender_user)
    assert batch.approved_by == lender_user and batch.total == Decimal("1500.00")
    assert wait_for(lambda: status_of(d) == DisbursementStatus.SUCCESSFUL)
    d.refresh_from_db()
    paid = mpesa_peer.payments[str(d.originator_id)]
    assert d.confirmation_number == paid.receipt and d.completed_at is not None
    loan.refresh_from_db()
    assert loan.status == LoanStatus.ACTIVE and loan.disbursed_by == lender_user
    assert paid.party_b == "27821234567" and paid.amount == Decimal("1500.00") and paid.requests == 1


def test_over_the_limit_it_waits_for_a_user_whose_limit_covers_it(entity, lender_user, mpesa, mpesa_peer):
    maker = factories.make_admin(entity=entity)
    maker.disbursement_limit = Decimal("1000")
    maker.save()
    loans = [approved_loan(entity, lender_user, principal="800", cellphone=f"082123456{i}", wallet=f"082123456{i}")
             for i in range(2)]
    for loan in loans:
        disbursements.disbursement_mark(loan=loan, actor=maker)
    batch = disbursements.payments_send(entity=entity, actor=maker)
    assert batch.approved_by is None and batch.total == Decimal("1600.00")
    assert set(Disbursement.objects.values_list("status", flat=True)) == {DisbursementStatus.AWAITING_APPROVAL}
    assert not mpesa_peer.payments
    with pytest.raises(ValidationError, match="Another user"):
        disbursements.batch_approve(batch=batch, actor=maker)
    low = factories.make_admin(entity=entity)
    low.disbursement_limit = Decimal("1599.99")
    low.save()
    with pytest.raises(ValidationError, match="above your disbursement limit"):
        disbursements.batch_approve(batch=batch, actor=low)
    disbursements.batch_approve(batch=batch, actor=lender_user)
    assert wait_for(lambda: set(Disbursement.objects.values_list("status", flat=True)) == {DisbursementStatus.SUCCESSFUL})
    assert len(mpesa_peer.payments) == 2
    assert set(Loan.objects.filter(pk__in=[x.pk for x in loans]).values_list("status", flat=True)) == {LoanStatus.ACTIVE}


def test_a_failed_payment_leaves_the_loan_unpaid_with_the_reason(entity, lender_user, mpesa, mpesa_peer):
    mpesa_peer.config.failing_prefixes = ("2782999",)
    loan = approved_loan(entity, lender_user, cellphone="0829991234", wallet="0829991234")
    d = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    disbursements.payments_send(entity=entity, actor=lender_user)
    assert wait_for(lambda: status_of(d) == DisbursementStatus.FAILED)
    d.refresh_from_db()
    assert "2001" in d.failure_reason
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.APPROVED
    # Marked again after a failure: a new originator id, a new attempt.
    again = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    assert again.originator_id != d.originator_id


def test_a_queue_timeout_queries_the_status_before_any_resend(entity, lender_user, mpesa, mpesa_peer):
    mpesa_peer.timeout_results = True
    loan = approved_loan(entity, lender_user)
    d = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    disbursements.payments_send(entity=entity, actor=lender_user)
    assert wait_for(lambda: status_of(d) == DisbursementStatus.SUCCESSFUL)
    d.refresh_from_db()
    paid = mpesa_peer.payments[str(d.originator_id)]
    assert paid.requests == 1 and d.confirmation_number == paid.receipt
    assert any("timeout" in url for url, _, _ in mpesa_peer.callbacks_sent)
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.ACTIVE


def _crash_after_send(d, *, send: bool):
    """What a process that died between the send and the record leaves: the row committed SENDING
    with its originator id, and (if it got that far) the request at the provider; nothing else."""
    claimed = disbursements._claim(d, allowed=(DisbursementStatus.SENDING,))
    setup = claimed.batch.setup
    if send:
        adapter_for(setup).send_payment(
            originator_id=str(claimed.originator_id), msisdn=claimed.msisdn, amount=claimed.amount, remarks="payout",
            result_url=disbursements.result_url(setup, claimed),
            timeout_url=callback_url(setup, "timeout", originator=str(claimed.originator_id)))
    Disbursement.objects.filter(pk=d.pk).update(sent_at=timezone.now() - dt.timedelta(minutes=5))


def recover_until_final(d, progress, passes: int = 4) -> None:
    """The periodic recovery, run as the clock would: each pass finds the payment stale again (its
    results are lost), asks the provider, and waits for the provider's side to settle."""
    for _ in range(passes):
        if status_of(d) in (DisbursementStatus.SUCCESSFUL, DisbursementStatus.FAILED):
            return
        Disbursement.objects.filter(pk=d.pk).update(sent_at=timezone.now() - dt.timedelta(minutes=10))
        before = progress()
        disbursements.disbursements_recover()
        wait_for(lambda before=before: progress() != before or status_of(d) == DisbursementStatus.SUCCESSFUL, seconds=10)
    assert status_of(d) == DisbursementStatus.SUCCESSFUL


def _batch_without_sending(entity, user, loan):
    d = disbursements.disbursement_mark(loan=loan, actor=user)
    limit = user.disbursement_limit
    user.disbursement_limit = Decimal("0")
    batch = disbursements.payments_send(entity=entity, actor=user)
    user.disbursement_limit = limit
    approver = factories.make_admin(entity=entity)
    approver.disbursement_limit = Decimal("100000")
    approver.save()
    from imali.mobilemoney.models import DisbursementBatch

    DisbursementBatch.objects.filter(pk=batch.pk).update(approved_by=approver, approved_at=timezone.now())
    Disbursement.objects.filter(pk=d.pk).update(status=DisbursementStatus.SENDING)
    return d


@pytest.mark.parametrize("arrived", [True, False], ids=["request-arrived", "request-never-arrived"])
def test_mpesa_crash_between_send_and_record_never_pays_twice(entity, lender_user, mpesa, mpesa_peer, arrived):
    loan = approved_loan(entity, lender_user)
    d = _batch_without_sending(entity, lender_user, loan)
    mpesa_peer.faults.lose_callbacks = True  # the crashed process would not have heard the result either
    _crash_after_send(d, send=arrived)
    assert status_of(d) == DisbursementStatus.SENDING
    recover_until_final(d, lambda: len(mpesa_peer.callbacks_sent))
    payment = mpesa_peer.payments[str(d.originator_id)]
    assert payment.requests == 1 and len(mpesa_peer.payments) == 1
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.ACTIVE
    assert disbursements.disbursements_recover() == 0


def _stale(d):
    Disbursement.objects.filter(pk=d.pk).update(sent_at=timezone.now() - dt.timedelta(minutes=10))


def test_a_pending_status_keeps_the_payment_in_flight_and_the_late_success_pays_the_loan(entity, lender_user, mpesa, mpesa_peer):
    """Daraja's status result says ResultCode 0 with TransactionStatus "Pending" while the payment
    is still processed: that is not a failure, the loan must not be offered for payment again."""
    mpesa_peer.faults.lose_callbacks = True  # the B2C result does not come; recovery asks
    mpesa_peer.status_pending = True
    loan = approved_loan(entity, lender_user)
    d = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    disbursements.payments_send(entity=entity, actor=lender_user)
    assert status_of(d) == DisbursementStatus.SENT
    mpesa_peer.faults.lose_callbacks = False
    _stale(d)
    sent = len(mpesa_peer.callbacks_sent)
    assert disbursements.disbursements_recover() == 1
    assert wait_for(lambda: len(mpesa_peer.callbacks_sent) > sent)
    status_result = mpesa_peer.callbacks_sent[-1][2]["Result"]["ResultParameters"]["ResultParameter"]
    assert {"Key": "TransactionStatus", "Value": "Pending"} in status_result
    wait_for(lambda: status_of(d) != DisbursementStatus.SENT, seconds=1.5)
    assert status_of(d) == DisbursementStatus.SENT  # still in flight, not failed
    with pytest.raises(ValidationError, match="already has a mobile payment"):
        disbursements.disbursement_mark(loan=loan, actor=lender_user)
    # M-PESA finishes: the next pass reads Completed and the loan is paid out, once.
    mpesa_peer.status_pending = False
    _stale(d)
    disbursements.disbursements_recover()
    assert wait_for(lambda: status_of(d) == DisbursementStatus.SUCCESSFUL)
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.ACTIVE
    assert mpesa_peer.payments[str(d.originator_id)].requests == 1


def test_a_success_after_a_recorded_failure_is_kept_and_pays_the_loan(entity, lender_user, mpesa, mpesa_peer, caplog):
    from imali.core.models import AuditAction, AuditEntry

    mpesa_peer.faults.lose_callbacks = True
    loan = approved_loan(entity, lender_user)
    d = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    disbursements.payments_send(entity=entity, actor=lender_user)
    # A failure was recorded (as the old reading of a "Pending" status did) ...
    disbursements._failed(Disbursement.objects.get(pk=d.pk), "Pending at M-PESA")
    assert status_of(d) == DisbursementStatus.FAILED
    # ... and the loan marked again, waiting for the next send.
    again = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    # Then M-PESA's result arrives: the money left.
    mpesa_peer.faults.lose_callbacks = False
    payment = mpesa_peer.payments[str(d.originator_id)]
    with caplog.at_level("WARNING", logger="imali.mobilemoney"):
        mpesa_peer.call_later(payment.result_url, mpesa_peer._result(payment))
        assert wait_for(lambda: status_of(d) == DisbursementStatus.SUCCESSFUL)
    d.refresh_from_db()
    assert d.confirmation_number == payment.receipt and "after a failure" in d.failure_reason
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.ACTIVE
    assert status_of(again) == DisbursementStatus.CANCELLED  # the second payment never goes out
    assert any("after a failure was recorded" in r.getMessage() for r in caplog.records)
    assert AuditEntry.objects.filter(action=AuditAction.MOBILE_DISBURSEMENT_RESULT, after__status="successful").exists()
    assert len(mpesa_peer.payments) == 1


@pytest.mark.parametrize("how", ["send", "approve"])
def test_rows_a_dead_batch_never_sent_are_recovered(entity, lender_user, mpesa, mpesa_peer, monkeypatch, how):
    """The batch is committed SENDING, then the process dies before sending: recovery must find
    every row (status first: nothing is there, so it is sent, with the same originator id)."""
    loans = [approved_loan(entity, lender_user, cellphone=f"082123450{i}", wallet=f"082123450{i}") for i in range(2)]
    rows = [disbursements.disbursement_mark(loan=loan, actor=lender_user) for loan in loans]

    class ProcessDied(Exception):
        """Stands for the process dying between committing the batch and sending it."""

    def die(batch):
        raise ProcessDied

    monkeypatch.setattr(disbursements, "_send_batch", die)
    with pytest.raises(ProcessDied):
        if how == "send":
            disbursements.payments_send(entity=entity, actor=lender_user)
        else:
            lender_user.disbursement_limit, limit = Decimal("0"), lender_user.disbursement_limit
            batch = disbursements.payments_send(entity=entity, actor=lender_user)
            approver = factories.make_admin(entity=entity)
            approver.disbursement_limit = limit
            approver.save()
            disbursements.batch_approve(batch=batch, actor=approver)
    monkeypatch.undo()
    assert {status_of(d) for d in rows} == {DisbursementStatus.SENDING} and not mpesa_peer.payments
    assert disbursements.disbursements_recover(sending_older_than=dt.timedelta(0)) == 2
    assert wait_for(lambda: {status_of(d) for d in rows} == {DisbursementStatus.SUCCESSFUL})
    assert set(mpesa_peer.payments) == {str(d.originator_id) for d in rows}
    assert all(p.requests == 1 for p in mpesa_peer.payments.values())


@pytest.fixture
def momo(entity, lender_user, momo_peer, live_server):
    return momo_setup(entity, lender_user, momo_peer, live_server.url)


def test_momo_transfer_success_by_callback(entity, lender_user, momo, momo_peer):
    loan = approved_loan(entity, lender_user)
    d = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    disbursements.payments_send(entity=entity, actor=lender_user)
    assert wait_for(lambda: status_of(d) == DisbursementStatus.SUCCESSFUL)
    d.refresh_from_db()
    resource = momo_peer.resources[("disbursement", str(d.originator_id))]
    assert d.confirmation_number == resource.financial_transaction_id and momo_peer.transfers_paid == 1
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.ACTIVE


def test_momo_failure_reason_and_lost_callback_recovered_by_polling(entity, lender_user, momo, momo_peer):
    momo_peer.faults.lose_callbacks = True
    momo_peer.balance = Decimal("1000.00")
    poor = approved_loan(entity, lender_user, principal="1500")
    rich = approved_loan(entity, lender_user, principal="900", cellphone="0821234560", wallet="0821234560")
    a = disbursements.disbursement_mark(loan=poor, actor=lender_user)
    b = disbursements.disbursement_mark(loan=rich, actor=lender_user)
    disbursements.payments_send(entity=entity, actor=lender_user)
    assert wait_for(lambda: all(r.status != "PENDING" for r in momo_peer.resources.values()))
    assert {status_of(a), status_of(b)} == {DisbursementStatus.SENT}
    Disbursement.objects.update(sent_at=timezone.now() - dt.timedelta(minutes=10))
    assert disbursements.disbursements_recover() == 2
    a.refresh_from_db()
    b.refresh_from_db()
    assert a.status == DisbursementStatus.FAILED and a.failure_reason == "NOT_ENOUGH_FUNDS"
    assert b.status == DisbursementStatus.SUCCESSFUL
    assert Loan.objects.get(pk=poor.pk).status == LoanStatus.APPROVED
    assert Loan.objects.get(pk=rich.pk).status == LoanStatus.ACTIVE


@pytest.mark.parametrize("arrived", [True, False], ids=["request-arrived", "request-never-arrived"])
def test_momo_crash_between_send_and_record_never_pays_twice(entity, lender_user, momo, momo_peer, arrived):
    loan = approved_loan(entity, lender_user)
    d = _batch_without_sending(entity, lender_user, loan)
    momo_peer.faults.lose_callbacks = True
    _crash_after_send(d, send=arrived)
    if arrived:
        assert wait_for(lambda: momo_peer.transfers_paid == 1)
    recover_until_final(d, lambda: momo_peer.transfers_paid)
    assert status_of(d) == DisbursementStatus.SUCCESSFUL
    assert momo_peer.transfers_paid == 1
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.ACTIVE


def test_mark_refuses_what_cannot_be_paid_out(entity, lender_user, mpesa):
    client = factories.make_client(entity=entity, cellphone="0821112222")
    product = make_product(entity, name="No wallet")
    loan = loan_approve(loan=loan_apply(entity=entity, actor=lender_user, client=client, product=product, principal="900",
                                        instalments=3, applied_on=dt.date.today()), actor=lender_user)
    with pytest.raises(ValidationError, match="wallet"):
        disbursements.disbursement_mark(loan=loan, actor=lender_user)
    ok = approved_loan(entity, lender_user)
    disbursements.disbursement_mark(loan=ok, actor=lender_user)
    with pytest.raises(ValidationError, match="already has a mobile payment"):
        disbursements.disbursement_mark(loan=ok, actor=lender_user)
    with pytest.raises(ValidationError, match="Set up M-PESA"):
        disbursements.payments_send(entity=factories.make_entity(), actor=lender_user)
    disbursements.disbursement_cancel(disbursement=Disbursement.objects.get(loan=ok), actor=lender_user)
    with pytest.raises(ValidationError, match="no mobile payments pending"):
        disbursements.payments_send(entity=entity, actor=lender_user)


def _another_loan_paid_out(loan, user):
    """Another short-term loan of the same client is paid out today: `loan` becomes a later loan in
    the same year, whose interest is capped lower (3 % in South Africa, against the product's 5 %)."""
    other = loan_apply(entity=loan.entity, actor=user, client=loan.client, product=loan.product, principal="1000",
                       instalments=2, applied_on=dt.date.today())
    loan_approve(loan=other, actor=user)
    loan_disburse(loan=other, actor=user, payout_account=loan.client.accounts.get())


def test_a_loan_the_book_would_not_mark_paid_out_is_not_marked(entity, lender_user, mpesa, mpesa_peer):
    loan = approved_loan(entity, lender_user)
    _another_loan_paid_out(loan, lender_user)
    with pytest.raises(ValidationError) as refused:
        disbursements.disbursement_mark(loan=loan, actor=lender_user)
    assert f"Loan {loan.pk} cannot be paid out: Interest may be at most 3.00% per month" in str(refused.value)
    assert not Disbursement.objects.filter(loan=loan).exists() and not mpesa_peer.payments


def test_no_money_leaves_for_a_loan_the_book_would_refuse_once_paid(entity, lender_user, mpesa, mpesa_peer):
    """Marked while it could be paid out; by the send another loan made it a repeat loan: the row
    fails with the reason before anything is sent (money sent is final, and the book would then
    refuse to mark the loan paid out), and the loan stays approved, free to be marked again."""
    loan = approved_loan(entity, lender_user)
    d = disbursements.disbursement_mark(loan=loan, actor=lender_user)
    _another_loan_paid_out(loan, lender_user)
    disbursements.payments_send(entity=entity, actor=lender_user)
    d.refresh_from_db()
    assert d.status == DisbursementStatus.FAILED and d.failure_reason.startswith(f"Not sent. Loan {loan.pk} cannot be paid out")
    assert not mpesa_peer.payments
    assert Loan.objects.get(pk=loan.pk).status == LoanStatus.APPROVED
