"""A loan paid out through PayToClientAccount: once, only when approved, not beside a mobile-money
payout, marked paid out when the stream accepts it, and a payment return recorded. Through the
httpx adapter and the local peer over loopback."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from imali.loans.models import Instalment, LoanStatus
from imali.mobilemoney.models import Disbursement, DisbursementStatus
from imali.paystream import services
from imali.paystream.models import CreditPayment, CreditPaymentStatus
from imali.tenancy.rights import Right
from tests import factories

from .conftest import ABSA_OK, approved_loan


def _messages(caught) -> str:
    return " ".join(caught.value.messages)


def test_accepted_payout_marks_the_loan_paid_out_and_a_rejected_one_does_not(ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    peer.configure(reject_next=1)
    with pytest.raises(ValidationError):
        services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPROVED and not Instalment.objects.filter(loan=loan).exists()
    payment = services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    assert payment.status == CreditPaymentStatus.ACCEPTED and payment.problem == ""
    loan.refresh_from_db()
    assert loan.status == LoanStatus.ACTIVE
    assert loan.disbursed_by_id == clerk.pk and loan.payout_account_id == account.account_id
    assert Instalment.objects.filter(loan=loan).count() == 3


def test_only_an_approved_loan_is_paid_out(ps_entity, clerk, borrower, peer):
    from imali.loans import services as loans

    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    loans.loan_cancel(loan=loan, actor=clerk, reason="Client changed their mind")
    loan.refresh_from_db()
    with pytest.raises(ValidationError) as caught:
        services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    assert "only an approved loan is paid out" in _messages(caught)
    assert peer.state.payments == {} and not CreditPayment.objects.exists()


def test_open_mobile_money_payout_blocks_the_stream_payout(ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    mobile = Disbursement.objects.create(entity=ps_entity, loan=loan, payout_account=account.account, msisdn="+27821234567",
                                         amount=loan.principal, created_by=clerk, status=DisbursementStatus.SENT)
    with pytest.raises(ValidationError) as caught:
        services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    assert "mobile-money payout" in _messages(caught)
    assert peer.state.payments == {}
    # Once the mobile payout failed, the stream may pay the loan.
    Disbursement.objects.filter(pk=mobile.pk).update(status=DisbursementStatus.FAILED)
    payment = services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    assert payment.status == CreditPaymentStatus.ACCEPTED


def test_database_refuses_a_second_live_payment_for_a_loan(ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    row = {"entity": ps_entity, "client": borrower, "loan": loan, "account_1": account, "amount_1": Decimal("3000"),
           "total": Decimal("3000"), "created_by": clerk}
    CreditPayment.objects.create(**row, status=CreditPaymentStatus.REJECTED)
    CreditPayment.objects.create(**row)
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditPayment.objects.create(**row)


def test_payment_return_is_recorded_for_a_person_to_resolve(ps_entity, clerk, borrower, peer):
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    payment = services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    peer.return_payment(payment.reference, "Account closed")
    document, _ = services.client_credit_print(entity=ps_entity, actor=clerk, payment=payment)
    assert document.fields["status"] == "RETURNED"
    payment.refresh_from_db()
    assert payment.status == CreditPaymentStatus.RETURNED
    assert "Account closed" in payment.problem and f"Loan {loan.pk}" in payment.problem
    # A returned payout is not a reason to pay the (now active) loan out a second time.
    with pytest.raises(ValidationError):
        services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    assert len(peer.state.payments) == 1


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_double_click_pays_the_loan_out_once(ps_entity, clerk, borrower, peer):
    # PostgreSQL only: the row lock on the loan is what serialises two requests; SQLite
    # serialises every writer, so there the race cannot happen and the test would prove nothing.
    if connection.vendor != "postgresql":
        pytest.skip("the double-click race is exercised on PostgreSQL (SQLite serialises writers by design)")
    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    barrier = threading.Barrier(2, timeout=20)
    outcomes: list[str] = []

    def click():
        try:
            barrier.wait()
            services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
            outcomes.append("paid")
        except ValidationError as exc:
            outcomes.append(" ".join(exc.messages))
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(outcomes)[-1] == "paid" and len(outcomes) == 2
    assert outcomes.count("paid") == 1, outcomes
    assert len(peer.state.payments) == 1 and CreditPayment.objects.filter(loan=loan).count() == 1
    loan.refresh_from_db()
    assert loan.status == LoanStatus.ACTIVE


def test_the_hourly_task_finds_a_payment_return_without_printing(ps_entity, clerk, borrower, peer):
    """A return comes days later: the task asks the stream about recent accepted payments (as the
    user who made each) and records it once; older payments and settled ones are not asked about."""
    import datetime as dt

    from django.utils import timezone

    from imali.core.models import AuditAction, AuditEntry
    from imali.paystream.tasks import paystream_payment_returns

    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    payment = services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    paystream_payment_returns.call_local()
    payment.refresh_from_db()
    assert payment.status == CreditPaymentStatus.ACCEPTED and payment.problem == ""
    peer.return_payment(payment.reference, "Account closed")
    paystream_payment_returns.call_local()
    paystream_payment_returns.call_local()
    payment.refresh_from_db()
    assert payment.status == CreditPaymentStatus.RETURNED
    assert "Account closed" in payment.problem and f"Loan {loan.pk} was marked paid out" in payment.problem
    returned = AuditEntry.objects.filter(action=AuditAction.PAYSTREAM_PAYMENT_REJECTED, object_id=str(payment.pk))
    assert returned.count() == 1 and returned.get().actor_id == clerk.pk
    asked = peer.state.calls.get("PrintClientCredit", 0)
    assert asked == 2  # the returned payment is not asked about again
    # A payment older than the window is left alone.
    other = factories.make_client(entity=ps_entity, employer=borrower.employer)
    other_account = services.account_register(entity=ps_entity, actor=clerk, client=other, **ABSA_OK)
    old = services.credit_pay(entity=ps_entity, actor=clerk, client=other, parts=[(other_account, "100.00")])
    type(old).objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=services.RETURN_WINDOW_DAYS + 1))
    paystream_payment_returns.call_local()
    assert peer.state.calls.get("PrintClientCredit", 0) == asked


def test_a_person_asks_about_a_return_from_the_loan_page(client, ps_entity, clerk, borrower, peer):
    from django.urls import reverse

    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    payment = services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    client.force_login(clerk)
    loan_page = reverse("web:paystream_loan", kwargs={"loan_id": loan.pk})
    check = reverse("web:paystream_payment_check", kwargs={"creditpayment_id": payment.pk})
    assert check in client.get(loan_page).content.decode()
    nothing = client.post(check, {"next": "loan"}, follow=True)
    assert nothing.redirect_chain[-1][0] == loan_page and "no return reported" in nothing.content.decode()
    peer.return_payment(payment.reference, "Account closed")
    returned = client.post(check, {"next": "loan"}, follow=True).content.decode()
    assert "Returned by the receiving bank (Account closed)" in returned
    payment.refresh_from_db()
    assert payment.status == CreditPaymentStatus.RETURNED
    assert check not in returned  # nothing more to ask about
    # Another entity's user gets a 404.
    from .conftest import stream_entity

    other = stream_entity(factories.make_entity(), peer)
    client.force_login(factories.make_user(entity=other, rights=[Right.PAYMENT_STREAM_WEB_SERVICES]))
    assert client.post(check).status_code == 404


def test_a_loan_the_book_would_refuse_to_mark_paid_out_is_not_paid(ps_entity, clerk, borrower, peer):
    """The client may no longer borrow since the loan was approved (new loans stopped): the stream
    is not asked to pay (money sent is final, and the loan book would then refuse to mark the loan
    paid out)."""
    from imali.clients.models import Client

    account = services.account_register(entity=ps_entity, actor=clerk, client=borrower, **ABSA_OK)
    loan = approved_loan(ps_entity, clerk, borrower)
    Client.objects.filter(pk=borrower.pk).update(new_loans_allowed=False)
    with pytest.raises(ValidationError) as caught:
        services.credit_pay(entity=ps_entity, actor=clerk, client=borrower, loan=loan, parts=[(account, "3000.00")])
    assert f"Loan {loan.pk} cannot be paid out: The client may not take a new loan" in _messages(caught)
    assert peer.state.payments == {} and not CreditPayment.objects.filter(loan=loan).exists()
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPROVED
