"""The snapshot's money sums are exact: every amount is turned into whole cents row by row and only
integers are summed. (SQLite stores a decimal column as a binary float and sums it as one: past
2**46 rand a float cannot hold every cent, so a sum taken in floats and rounded afterwards can be a
cent out. These amounts are chosen so that it is.)"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

import pytest

from imali.loans import selectors
from imali.loans.models import Instalment, Loan, LoanStatus, NonLoanDebit
from tests.loans.conftest import make_borrower, make_loan, make_product
from tests.loans.test_selectors import expected_for

pytestmark = pytest.mark.django_db

AS_OF = dt.date(2026, 3, 1)
ROWS = 80  # 80 amounts near R1 trillion: sums near R8e13, where a float's step is 1/64 of a rand


def big_amounts(count: int, *, offset: int = 0) -> list[D]:
    """Amounts within the money fields' 14 digits whose float sum, rounded to the cent, is wrong."""
    return [D("999999999000.00") + D((k + offset) * 7919 % 100000) / 100 for k in range(count)]


def test_instalment_sums_are_exact_to_the_cent(entity, lender):
    client, _ = make_borrower(entity)
    loan = make_loan(entity, user=lender, product=make_product(entity, name="Monthly"), client=client,
                     principal="2000", instalments=3)
    rows = []
    for k, amount in enumerate(big_amounts(ROWS)):
        due = AS_OF + dt.timedelta(days=7 * k - 200)  # arrears, and every obligation bucket
        start = due - dt.timedelta(days=30)
        interest = D("1234.57") + k
        paid = D(k * 131 % 5000) / 100  # a part paid on most, never all
        rows.append(Instalment(entity=entity, client=client, loan=loan, seq=100 + k, start_date=start, due_date=due,
                               start_ord=start.toordinal(), due_ord=due.toordinal(), fee=D("0.00"), vat=D("0.00"),
                               interest=interest, capital=amount - interest, amount=amount, paid=paid,
                               capital_paid=paid))
    # Paid ahead in full and not yet due: their credit to the settlement quote is summed too.
    for k, amount in enumerate(big_amounts(ROWS, offset=ROWS)):
        due = AS_OF + dt.timedelta(days=400 + 7 * k)
        start = due - dt.timedelta(days=30)
        interest = D("987.65") + k
        rows.append(Instalment(entity=entity, client=client, loan=loan, seq=300 + k, start_date=start, due_date=due,
                               start_ord=start.toordinal(), due_ord=due.toordinal(), fee=D("0.00"), vat=D("0.00"),
                               interest=interest, capital=amount - interest, amount=amount, paid=amount,
                               capital_paid=amount - interest, interest_paid=interest))
    Instalment.objects.bulk_create(rows)

    got = selectors.client_figures(entity=entity, client_id=client.pk, as_of=AS_OF)
    for name, value in expected_for(client, AS_OF).items():
        assert getattr(got, name) == value, name
    assert got.outstanding > D("7e13")  # the sums are in the range where floats lose cents


def test_loan_and_debit_sums_are_exact_to_the_cent(entity, lender):
    client, _ = make_borrower(entity)
    loan = make_loan(entity, user=lender, product=make_product(entity, name="Monthly"), client=client,
                     principal="2000", instalments=3)
    Loan.objects.filter(pk=loan.pk).update(total_repayable=D("0.01"), received_total=D("0.00"), change_total=D("0.00"))
    totals, received, change = big_amounts(ROWS), big_amounts(ROWS, offset=1), big_amounts(ROWS, offset=2)
    received = [r - D("500000000000.00") for r in received]  # part paid, so the percentage is not 100
    Loan.objects.bulk_create([
        Loan(entity=entity, client=client, product=loan.product, status=LoanStatus.PAID_UP, principal=D("1000.00"),
             instalments=1, frequency=loan.frequency, move_direction=loan.move_direction,
             interest_rate_pm=loan.interest_rate_pm, initiation_fee=D("0.00"), service_fee_pm=D("0.00"),
             vat_rate=loan.vat_rate, total_repayable=t, received_total=r, change_total=c, applied_on=loan.applied_on,
             disbursed_on=loan.disbursed_on, paid_up_on=loan.disbursed_on, disbursed_ord=loan.disbursed_ord,
             paid_up_ord=loan.disbursed_ord)
        for t, r, c in zip(totals, received, change, strict=True)])
    debts = big_amounts(ROWS, offset=3)
    NonLoanDebit.objects.bulk_create([
        NonLoanDebit(entity=entity, client=client, description="Large charge", amount=amount, debit_date=AS_OF)
        for amount in debts])

    got = selectors.client_figures(entity=entity, client_id=client.pk, as_of=AS_OF)
    assert got.change_available == sum(change, D("0.00"))
    assert got.non_loan_debt == sum(debts, D("0.00"))
    total, paid = sum(totals, D("0.01")), sum(received, D("0.00"))
    assert got.pct_of_all_capital_pd == (100 * paid / total).quantize(D("0.01"), rounding=ROUND_HALF_UP)


@pytest.mark.parametrize(("total", "received"), [("300.00", "100.00"), ("100.00", "250.05"), ("0.03", "1000.00")])
def test_percentage_of_capital_paid_within_and_beyond_the_total(entity, lender, total, received):
    """Percentages up to 100 come from the snapshot's table of hundredths; a client paid beyond the
    total (received above it) gets the exact figure past the table too."""
    client, _ = make_borrower(entity)
    loan = make_loan(entity, user=lender, product=make_product(entity, name="Monthly"), client=client,
                     principal="2000", instalments=3)
    Loan.objects.filter(pk=loan.pk).update(total_repayable=D(total), received_total=D(received))
    got = selectors.client_figures(entity=entity, client_id=client.pk, as_of=AS_OF)
    assert got.pct_of_all_capital_pd == (100 * D(received) / D(total)).quantize(D("0.01"), rounding=ROUND_HALF_UP)
    assert got.values()[selectors.ClientFigures.FIELDS.index("pct_of_all_capital_pd")] == got.pct_of_all_capital_pd
