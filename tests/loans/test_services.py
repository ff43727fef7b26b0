"""Products, the loan life cycle, receipts and reversals, through the real services."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError

from imali.core.models import AuditAction, AuditEntry
from imali.loans import services
from imali.loans.models import Instalment, LoanStatus, Receipt
from tests import factories
from tests.loans.conftest import make_borrower, make_loan, make_product

pytestmark = pytest.mark.django_db


def codes(exc: ValidationError) -> dict[str, list[str]]:
    return {f: [e.code for e in errs] for f, errs in exc.error_dict.items()}


def test_product_over_caps_is_refused_naming_each_cap(entity):
    with pytest.raises(ValidationError) as exc:
        make_product(entity, max_principal="9000", max_instalments=7, interest_rate_pm="6", service_fee_pm="70")
    got = codes(exc.value)
    assert got == {
        "max_principal": ["cap_short_term_max_principal"], "max_instalments": ["cap_short_term_max_term"],
        "interest_rate_pm": ["cap_short_term_first_loan_rate"], "service_fee_pm": ["cap_service_fee"],
    }
    assert "(Short-term credit: maximum principal)" in str(exc.value)  # the cap in words; its key is the code


def test_unsecured_product_over_repo_plus_21_refused(entity):
    with pytest.raises(ValidationError) as exc:
        make_product(entity, name="Unsec", credit_type="unsecured", max_principal="50000", max_instalments=24,
                     interest_rate_pm="2.5")
    assert codes(exc.value) == {"interest_rate_pm": ["cap_unsecured_rate"]}


def test_product_errors_name_fields(entity):
    with pytest.raises(ValidationError) as exc:
        services.product_create(entity=entity, actor=None, data={"name": "", "credit_type": "x", "frequency": "daily",
                                                                  "min_principal": "abc", "max_principal": "1",
                                                                  "max_instalments": "", "interest_rate_pm": "1"})
    assert set(exc.value.error_dict) >= {"name", "credit_type", "frequency", "min_principal", "max_instalments"}


def test_life_cycle_short_term_loan(entity, lender):
    loan = make_loan(entity, user=lender)
    assert loan.status == LoanStatus.ACTIVE
    rows = list(loan.schedule.order_by("seq"))
    assert [r.due_date for r in rows] == [dt.date(2026, 1, 23), dt.date(2026, 2, 25), dt.date(2026, 3, 25)]
    assert [r.amount for r in rows] == [D("905.01"), D("905.00"), D("904.99")]
    assert loan.total_repayable == D("2715.00") == sum(r.amount for r in rows)
    assert loan.initiation_fee == D("265.00")
    actions = list(AuditEntry.objects.filter(object_type="loans.Loan", object_id=str(loan.pk)).values_list("action", flat=True))
    assert set(actions) == {AuditAction.LOAN_APPLIED, AuditAction.LOAN_APPROVED, AuditAction.LOAN_DISBURSED}


def test_repeat_short_term_loan_same_year_priced_at_three_percent(entity, lender):
    first = make_loan(entity, user=lender)
    product = first.product
    second = services.loan_apply(entity=entity, actor=lender, client=first.client, product=product, principal="1000",
                                 instalments=2, applied_on=dt.date(2026, 4, 1))
    assert second.interest_rate_pm == D("3.0000")
    with pytest.raises(ValidationError) as exc:
        services.loan_apply(entity=entity, actor=lender, client=first.client, product=product, principal="1000",
                            instalments=2, applied_on=dt.date(2026, 4, 1), interest_rate_pm="4")
    assert codes(exc.value) == {"interest_rate_pm": ["cap_short_term_repeat_loan_rate"]}
    next_year = services.loan_apply(entity=entity, actor=lender, client=first.client, product=product, principal="1000",
                                    instalments=2, applied_on=dt.date(2027, 1, 4))
    assert next_year.interest_rate_pm == D("5.0000")


def test_loan_refused_for_client_not_allowed_and_out_of_range(entity, lender):
    product = make_product(entity)
    client, _ = make_borrower(entity, status="blacklisted")
    with pytest.raises(ValidationError) as exc:
        services.loan_apply(entity=entity, actor=lender, client=client, product=product, principal="9000", instalments=9)
    assert set(exc.value.error_dict) == {"client", "principal", "instalments"}


def test_disbursement_limit_and_payout_account(entity, lender):
    product = make_product(entity)
    client, account = make_borrower(entity)
    loan = services.loan_apply(entity=entity, actor=lender, client=client, product=product, principal="3000", instalments=3)
    services.loan_approve(loan=loan, actor=lender)
    small = factories.make_admin(entity=entity)
    small.disbursement_limit = D("2999.99")
    with pytest.raises(ValidationError) as exc:
        services.loan_disburse(loan=loan, actor=small, payout_account=account)
    assert codes(exc.value) == {"principal": ["over_disbursement_limit"]}
    other, other_account = make_borrower(entity)
    with pytest.raises(ValidationError) as exc:
        services.loan_disburse(loan=loan, actor=lender, payout_account=other_account)
    assert codes(exc.value) == {"payout_account": ["payout_account"]}
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPROVED and not loan.schedule.exists()


def test_status_transitions_are_guarded(entity, lender):
    product = make_product(entity)
    client, account = make_borrower(entity)
    loan = services.loan_apply(entity=entity, actor=lender, client=client, product=product, principal="1000", instalments=2)
    with pytest.raises(ValidationError):
        services.loan_disburse(loan=loan, actor=lender, payout_account=account)
    cancelled = services.loan_cancel(loan=loan, actor=lender, reason="Client withdrew")
    assert cancelled.status == LoanStatus.CANCELLED
    with pytest.raises(ValidationError):
        services.loan_approve(loan=loan, actor=lender)


def snapshot_state(loan):
    return [
        (i.pk, i.fee_paid, i.vat_paid, i.interest_paid, i.capital_paid, i.paid, i.paid_on)
        for i in Instalment.objects.filter(loan=loan).order_by("seq")
    ], type(loan).objects.values_list("status", "paid_up_on", "received_total", "change_total", "last_receipt_on").get(pk=loan.pk)


def test_receipt_allocation_change_and_exact_reversal(entity, lender):
    loan = make_loan(entity, user=lender)
    before = snapshot_state(loan)
    r1 = services.receipt_post(entity=entity, actor=lender, loan=loan, amount="1000.00", value_date=dt.date(2026, 1, 23),
                               payback_type="eft", external_reference="EFT-1")
    first, second, _ = Instalment.objects.filter(loan=loan).order_by("seq")
    assert first.paid == D("905.01") and first.paid_on == dt.date(2026, 1, 23)
    # 94.99 left for the second: fee 148.33 first, so nothing reaches interest or capital.
    assert (second.fee_paid, second.vat_paid, second.interest_paid, second.capital_paid) == (D("94.99"), 0, 0, 0)
    assert r1.allocated + r1.change == r1.amount
    middle = snapshot_state(loan)
    r2 = services.receipt_post(entity=entity, actor=lender, loan=loan, amount="2000.00", value_date=dt.date(2026, 2, 20),
                               payback_type="debicheck")
    assert r2.change == D("285.00")  # 2715 owed in all; 1000 + 2000 paid
    loan.refresh_from_db()
    assert (loan.received_total, loan.change_total, loan.last_receipt_on) == (D("2715.00"), D("285.00"), dt.date(2026, 2, 20))
    assert loan.status == LoanStatus.PAID_UP and loan.paid_up_on == dt.date(2026, 2, 20)
    services.receipt_reverse(receipt=r2, actor=lender, reason="Bounced")
    assert snapshot_state(loan) == middle
    services.receipt_reverse(receipt=r1, actor=lender, reason="Wrong client")
    assert snapshot_state(loan) == before
    with pytest.raises(ValidationError):
        services.receipt_reverse(receipt=r1, actor=lender, reason="again")
    assert AuditEntry.objects.filter(action=AuditAction.RECEIPT_REVERSED).count() == 2


def test_external_reference_posts_once_per_entity(entity, other_entity, lender):
    loan = make_loan(entity, user=lender)
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount="100", value_date=dt.date(2026, 1, 10),
                          payback_type="naedo", external_reference="NAEDO-77")
    other_loan = make_loan(entity, user=lender)
    with pytest.raises(ValidationError) as exc:
        services.receipt_post(entity=entity, actor=lender, loan=other_loan, amount="100", value_date=dt.date(2026, 1, 10),
                              payback_type="naedo", external_reference="NAEDO-77")
    assert codes(exc.value) == {"external_reference": ["duplicate_reference"]}
    assert Receipt.objects.filter(external_reference="NAEDO-77").count() == 1


def test_receipt_input_errors_name_fields(entity, lender):
    loan = make_loan(entity, user=lender)
    with pytest.raises(ValidationError) as exc:
        services.receipt_post(entity=entity, actor=lender, loan=loan, amount="-5", value_date=None, payback_type="cheque")
    assert set(exc.value.error_dict) == {"amount", "value_date", "payback_type"}


def test_write_off_and_hand_over_move_client(entity, lender):
    loan = make_loan(entity, user=lender)
    services.loan_write_off(loan=loan, actor=lender, reason="Untraceable")
    loan.client.refresh_from_db()
    assert (loan.client.status, loan.client.new_loans_allowed) == ("bad", False)
    assert not Instalment.objects.filter(loan=loan, open=True).exists()
    loan2 = make_loan(entity, user=lender)
    services.loan_hand_over(loan=loan2, actor=lender, reason="To attorneys")
    loan2.client.refresh_from_db()
    assert loan2.client.status == "handed_over"


def test_non_loan_debits(entity, lender):
    client, _ = make_borrower(entity)
    debit = services.non_loan_debit_add(entity=entity, actor=lender, client=client, description="Returned debit fee",
                                        amount="35.50", debit_date=dt.date(2026, 1, 3))
    assert debit.amount == D("35.50")
    services.non_loan_debit_settle(debit=debit, actor=lender, settled_on=dt.date(2026, 1, 9))
    with pytest.raises(ValidationError):
        services.non_loan_debit_add(entity=entity, actor=lender, client=client, description="", amount="0", debit_date=dt.date(2026, 1, 3))


def test_other_entity_objects_refused(entity, other_entity, lender):
    product = make_product(other_entity)
    client, _ = make_borrower(entity)
    with pytest.raises(ValidationError) as exc:
        services.loan_apply(entity=entity, actor=lender, client=client, product=product, principal="1000", instalments=2)
    assert codes(exc.value) == {"product": ["other_entity"]}
