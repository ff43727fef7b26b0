"""The worked examples of docs/loans.md, each reproduced through the services; the figures the
test checks must also be the ones printed in the document."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from pathlib import Path

import pytest

from imali.loans import selectors, services
from imali.loans.daily_close import daily_close_run
from imali.loans.models import Instalment, InstalmentKind
from tests.loans.conftest import make_borrower, make_loan, make_product

pytestmark = pytest.mark.django_db

DOC = (Path(__file__).resolve().parents[2] / "docs" / "loans.md").read_text()


def in_doc(*figures: str) -> None:
    for figure in figures:
        assert figure in DOC, f"{figure} is not in docs/loans.md"


def rows(loan):
    return [(str(i.due_date), i.capital, i.interest, i.fee, i.vat, i.amount) for i in Instalment.objects.filter(loan=loan).order_by("seq")]


def test_example_1_short_term_loan(entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    assert rows(loan) == [
        ("2026-01-23", D("634.42"), D("100.00"), D("148.34"), D("22.25"), D("905.01")),
        ("2026-02-25", D("666.14"), D("68.28"), D("148.33"), D("22.25"), D("905.00")),
        ("2026-03-25", D("699.44"), D("34.97"), D("148.33"), D("22.25"), D("904.99")),
    ]
    assert loan.initiation_fee == D("265.00") and loan.total_repayable == D("2715.00")
    in_doc("| 1 | 2026-01-23 | 634.42 | 100.00 | 148.34 | 22.25 | 905.01 |", "| 3 | 2026-03-25 | 699.44 | 34.97 | 148.33 | 22.25 | 904.99 |",
           "R2,715.00 = 2,000.00 + 203.25 interest + 445.00 fees + 66.75 VAT")


def test_example_2_unsecured_loan(entity, lender):
    product = make_product(entity, name="Unsecured 12", credit_type="unsecured", max_principal="50000",
                           max_instalments=24, interest_rate_pm="2.3125")
    client, _ = make_borrower(entity, payment_move_direction="after")
    loan = make_loan(entity, user=lender, product=product, client=client, principal="20000", instalments=12,
                     disbursed_on=dt.date(2026, 2, 2))
    got = rows(loan)
    assert got[0] == ("2026-02-25", D("1465.17"), D("462.50"), D("147.50"), D("22.13"), D("2097.30"))
    assert got[2] == ("2026-04-28", D("1533.72"), D("393.95"), D("147.50"), D("22.13"), D("2097.30"))
    assert got[11] == ("2027-01-25", D("1884.17"), D("43.57"), D("147.50"), D("22.12"), D("2097.36"))
    assert loan.initiation_fee == D("1050.00") and loan.total_repayable == D("25167.61")
    in_doc("| 1 | 2026-02-25 | 1,465.17 | 462.50 | 147.50 | 22.13 | 2,097.30 |",
           "| 3 | 2026-04-28 | 1,533.72 | 393.95 | 147.50 | 22.13 | 2,097.30 |",
           "| 12 | 2027-01-25 | 1,884.17 | 43.57 | 147.50 | 22.12 | 2,097.36 |",
           "R25,167.61 = 20,000.00 + 3,132.11 interest + 1,770.00 fees + 265.50 VAT")
    # One basis point over the cap is refused, naming it.
    with pytest.raises(Exception) as exc:
        make_product(entity, name="Too dear", credit_type="unsecured", max_principal="50000", max_instalments=24,
                     interest_rate_pm="2.3126")
    assert "(Unsecured credit: repo rate plus margin)" in str(exc.value)


def test_example_3_settlement_quote(entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount="905.01", value_date=dt.date(2026, 1, 23), payback_type="eft")
    as_of = dt.date(2026, 2, 9)
    assert selectors.loan_settlement(loan=loan, as_of=as_of) == D("1400.75")
    assert selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=as_of).settlement == D("1400.75")
    in_doc("68.28 × 17 / 33 = 35.17", "Settlement **R1,400.75**")


def test_example_4_in_duplum(entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    daily_close_run(entity=entity, business_date=dt.date(2026, 2, 23))
    loan.refresh_from_db()
    assert loan.default_balance == D("2270.59")
    daily_close_run(entity=entity, business_date=dt.date(2027, 6, 1))
    daily_close_run(entity=entity, business_date=dt.date(2029, 6, 1))
    charges = [i.amount for i in Instalment.objects.filter(loan=loan, kind=InstalmentKind.CHARGE).order_by("seq")]
    assert charges == [D("169.00")] * 10 + [D("136.18")]
    assert selectors.loan_outstanding(loan=loan) == D("4541.18")
    in_doc("**R2,270.59**", "**136.18**", "**R4,541.18**", "238.86 + 205.55 = 444.41")
