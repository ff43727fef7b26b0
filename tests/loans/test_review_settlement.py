"""Review of the settlement quote after "credits what was paid ahead" (d33ce1d) and of the lazy
client figures: reversal, post-term charges, in duplum, paid-up loans, clients with only non-loan
debits. The pure rule (rules.settlement_amount), the one-loan quote (selectors.loan_settlement),
the loan page (queries.loan_page) and the snapshot (selectors.client_figures) must agree. The
three defects the review found (a paid-up loan credited to another, a quote below zero, in duplum
broken by a reversal in default) each have their test here."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from imali.loans import queries, rules, selectors, services
from imali.loans.daily_close import daily_close_run
from imali.loans.models import Instalment, InstalmentKind, LoanStatus
from tests.loans.conftest import make_borrower, make_loan, make_product

pytestmark = pytest.mark.django_db

ZERO = D("0.00")


def quotes(loan, as_of):
    """The loan's quote by the pure rule, the one-loan selector and the loan page, which must agree."""
    lines = [rules.SettlementLine.of(i) for i in Instalment.objects.filter(loan=loan, open=True)]
    pure = rules.settlement_amount(lines, as_of=as_of)
    one = selectors.loan_settlement(loan=loan, as_of=as_of)
    page = queries.loan_page(loan=loan, as_of=as_of).settlement
    assert pure == one == page
    return pure


def test_reversal_restores_the_quote_everywhere(entity, lender):
    loan = make_loan(entity, user=lender, principal="3000", instalments=4)
    first = Instalment.objects.filter(loan=loan).order_by("seq").first()
    as_of = first.due_date + dt.timedelta(days=2)
    before = quotes(loan, as_of)
    snapshot_before = selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=as_of)
    assert snapshot_before.settlement == before
    # Pays instalment 1 and instalment 2 ahead in full, and part of 3: both indexes are involved.
    second = Instalment.objects.filter(loan=loan).order_by("seq")[1]
    receipt = services.receipt_post(entity=entity, actor=lender, loan=loan, amount=str(first.amount + second.amount + D("50")),
                                    value_date=first.start_date + dt.timedelta(days=3), payback_type="eft")
    assert quotes(loan, as_of) < before
    services.receipt_reverse(receipt=receipt, actor=lender, reason="bounced")
    assert quotes(loan, as_of) == before
    assert selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=as_of) == snapshot_before


def test_post_term_charges_and_in_duplum_quote_the_same_everywhere(entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    daily_close_run(entity=entity, business_date=dt.date(2026, 2, 23))
    daily_close_run(entity=entity, business_date=dt.date(2026, 7, 1))
    loan.refresh_from_db()
    charges = list(Instalment.objects.filter(loan=loan, kind=InstalmentKind.CHARGE).order_by("seq"))
    assert charges and all(c.start_date < c.due_date for c in charges)
    # Inside a charge's period (accrued pro rata), on its due day, and after the in-duplum cap.
    for as_of in (charges[0].start_date + dt.timedelta(days=10), charges[0].due_date, dt.date(2026, 7, 1)):
        quote = quotes(loan, as_of)
        assert selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=as_of).settlement == quote
        # Within in duplum: never more than what is owed on the book.
        assert quote <= selectors.loan_outstanding(loan=loan)
    # A part payment of the first charge, then its reversal: the quotes still agree.
    receipt = services.receipt_post(entity=entity, actor=lender, loan=loan, amount="3000.00",
                                    value_date=dt.date(2026, 7, 1), payback_type="cash")
    as_of = dt.date(2026, 7, 1)
    assert selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=as_of).settlement == quotes(loan, as_of)
    services.receipt_reverse(receipt=receipt, actor=lender, reason="bounced")
    assert selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=as_of).settlement == quotes(loan, as_of)


def test_client_with_only_a_non_loan_debit(entity, lender):
    client, _ = make_borrower(entity)
    services.non_loan_debit_add(entity=entity, actor=lender, client=client, description="Funeral cover",
                                amount="120.50", debit_date=dt.date(2026, 3, 1))
    figures = selectors.client_figures(entity=entity, client_id=client.pk, as_of=dt.date(2026, 4, 1))
    values = figures.as_dict()
    assert values["non_loan_debt"] == D("120.50")
    assert values["outstanding"] == values["settlement"] == values["pct_of_all_capital_pd"] == ZERO
    assert values["last_agreement_date"] is None and values["days_since_last_loan"] is None
    assert values["last_receipt_date"] is None and values["date_totally_paid"] is None
    assert values["open_loans"] == 0 and values["arrears_days"] == 0
    # A client with nothing at all: the default figures read without a book day.
    nobody, _ = make_borrower(entity)
    assert selectors.client_figures(entity=entity, client_id=nobody.pk, as_of=dt.date(2026, 4, 1)).as_dict()["outstanding"] == ZERO


def test_client_with_loans_but_nothing_unpaid(entity, lender):
    loan = make_loan(entity, user=lender, principal="1000", instalments=1, disbursed_on=dt.date(2026, 1, 5))
    only = Instalment.objects.get(loan=loan)
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount=str(only.amount), value_date=only.due_date,
                          payback_type="eft")
    loan.refresh_from_db()
    assert loan.status == LoanStatus.PAID_UP
    as_of = only.due_date + dt.timedelta(days=40)
    figures = selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=as_of)
    assert figures.outstanding == figures.settlement == figures.arrears_amount == ZERO
    assert figures.date_totally_paid == only.due_date and figures.open_loans == 0
    assert figures.days_since_last_receipt == 40 and figures.pct_of_all_capital_pd == D("100.00")
    assert figures.values() == tuple(getattr(figures, name) for name in selectors.ClientFigures.FIELDS)


def test_a_loan_paid_up_ahead_quotes_nothing_and_takes_nothing_off_another_loan(entity, lender):
    client, _ = make_borrower(entity)
    product = make_product(entity, name="Monthly 4")
    early = make_loan(entity, user=lender, product=product, client=client, principal="3000", instalments=4)
    other = make_loan(entity, user=lender, product=product, client=client, principal="2000", instalments=3)
    first = Instalment.objects.filter(loan=early).order_by("seq").first()
    # The client pays the whole loan a few days after payout: it is paid up.
    services.receipt_post(entity=entity, actor=lender, loan=early, amount=str(early.total_repayable),
                          value_date=first.start_date + dt.timedelta(days=3), payback_type="eft")
    early.refresh_from_db()
    assert early.status == LoanStatus.PAID_UP
    as_of = first.start_date + dt.timedelta(days=5)
    figures = selectors.client_figures(entity=entity, client_id=client.pk, as_of=as_of)
    # The client's settlement is the other loan's alone; the paid-up loan quotes nothing.
    assert figures.settlement == selectors.loan_settlement(loan=other, as_of=as_of)
    assert selectors.loan_settlement(loan=early, as_of=as_of) == ZERO


def test_quote_is_never_negative(entity, lender):
    loan = make_loan(entity, user=lender, principal="3000", instalments=4)
    first = Instalment.objects.filter(loan=loan).order_by("seq").first()
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount=str(loan.total_repayable - D("10.00")),
                          value_date=first.start_date + dt.timedelta(days=3), payback_type="eft")
    as_of = first.start_date + dt.timedelta(days=5)
    assert quotes(loan, as_of) == ZERO
    # With a second loan, the snapshot's client total is that loan's quote: the first one's excess
    # is the client's, not a discount on the other.
    other = make_loan(entity, user=lender, client=loan.client, principal="2000", instalments=3)
    figures = selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=as_of)
    assert figures.settlement == quotes(other, as_of) > ZERO


def test_in_duplum_holds_after_a_paid_ahead_receipt_is_reversed_in_default(entity, lender):
    product = make_product(entity, name="Unsecured 12", credit_type="unsecured", max_principal="50000",
                           max_instalments=24, interest_rate_pm="2.3125")
    client, _ = make_borrower(entity, payment_move_direction="after")
    loan = make_loan(entity, user=lender, product=product, client=client, principal="20000", instalments=12,
                     disbursed_on=dt.date(2026, 2, 2))
    schedule = list(Instalment.objects.filter(loan=loan).order_by("seq"))
    first = services.receipt_post(entity=entity, actor=lender, loan=loan, amount=str(schedule[0].amount),
                                  value_date=dt.date(2026, 2, 10), payback_type="eft")
    ahead = services.receipt_post(entity=entity, actor=lender, loan=loan, amount=str(sum(i.amount for i in schedule[1:])),
                                  value_date=dt.date(2026, 2, 11), payback_type="eft")
    services.receipt_reverse(receipt=first, actor=lender, reason="bounced")
    # Instalment 1 unpaid more than 30 days: the loan enters default; the rest was paid ahead.
    daily_close_run(entity=entity, business_date=schedule[0].due_date + dt.timedelta(days=31))
    loan.refresh_from_db()
    assert loan.default_since is not None
    services.receipt_reverse(receipt=ahead, actor=lender, reason="bounced")
    daily_close_run(entity=entity, business_date=schedule[0].due_date + dt.timedelta(days=32))
    later = Instalment.objects.filter(loan=loan, due_date__gt=loan.default_since)
    charged = sum((i.fee + i.vat + i.interest for i in later), ZERO)
    assert charged <= loan.default_balance


def test_docs_example_3_paid_ahead(entity, lender):
    """docs/loans.md, worked example 3, "Paid ahead"."""
    from tests.loans.test_docs_examples import in_doc

    loan = make_loan(entity, user=lender, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount="1100.00", value_date=dt.date(2026, 1, 23),
                          payback_type="eft")
    second = Instalment.objects.get(loan=loan, seq=2)
    assert (second.fee_paid, second.vat_paid, second.interest_paid, second.capital_paid) == (
        D("148.33"), D("22.25"), D("24.41"), ZERO)
    as_of = dt.date(2026, 2, 9)
    assert quotes(loan, as_of) == D("1205.76") == D("1400.75") - D("194.99")
    assert selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=as_of).settlement == D("1205.76")
    in_doc("666.14 + 35.17 − 194.99 = 506.32", "Settlement **R1,205.76**")
