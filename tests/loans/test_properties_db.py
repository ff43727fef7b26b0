"""Hypothesis properties through the services and the database (the pure versions are in
test_pure.py): a receipt's reversal is its exact inverse on the stored book, and no loan the
services accept is over a statutory cap while every loan within the caps is accepted."""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_DOWN, Decimal

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imali.loans import selectors, services
from imali.loans.models import Instalment, Loan, Product
from tests.loans.conftest import make_borrower, make_loan, make_product

pytestmark = pytest.mark.django_db

D = Decimal
DB_SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _book_state(loan: Loan):
    """Every stored column of the loan and its instalments."""
    return (Loan.objects.filter(pk=loan.pk).values().get(),
            list(Instalment.objects.filter(loan=loan).order_by("seq").values()))


receipt_plans = st.lists(
    st.tuples(st.integers(0, 40), st.decimals(min_value=D("0.01"), max_value=D("1500.00"), places=2)),
    min_size=1, max_size=5,
)


@DB_SETTINGS
@given(plan=receipt_plans)
def test_reversal_is_the_exact_inverse_of_posting_on_the_stored_book(entity, lender, plan):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    day = dt.date(2026, 1, 5)
    states, receipts = [], []
    for gap, amount in plan:
        loan.refresh_from_db()
        if loan.status != "active":
            break  # paid up: nothing more can be posted
        day += dt.timedelta(days=gap)
        # Within what the loan takes (its balance plus the tolerance; more is refused, test_money_input).
        amount = min(amount, selectors.loan_receipt_maximum(loan=loan, as_of=day).amount)
        states.append(_book_state(loan))
        receipt = services.receipt_post(entity=entity, actor=lender, loan=loan, amount=amount, value_date=day,
                                        payback_type="cash")
        assert receipt.allocated + receipt.change == amount  # money is conserved
        receipts.append(receipt)
    # The newest receipt undone gives back the book as it was just before it, then the next, ...
    for receipt, before in zip(reversed(receipts), reversed(states), strict=True):
        services.receipt_reverse(receipt=receipt, actor=lender, reason="property")
        assert _book_state(loan) == before


def _cap_rate(credit_type: str) -> Decimal:
    # ZA, DOMAIN §10: short-term 5% a month on a first loan; unsecured repo + 21% a year, the repo
    # rate 6.75% since 21 November 2025.
    return D("5") if credit_type == "short_term" else (D("6.75") + 21) / 12


def _cap_initiation_fee(principal: Decimal) -> Decimal:
    return min(D("165") + max(D("0"), principal - 1000) * D("0.10"), D("1050"), principal * D("0.15"))


@DB_SETTINGS
@given(
    credit_type=st.sampled_from(["short_term", "unsecured"]),
    principal=st.decimals(min_value=D("500.00"), max_value=D("8000.00"), places=2),
    instalments=st.integers(1, 6),
    rate=st.decimals(min_value=D("0"), max_value=D("7"), places=4),
    fee=st.decimals(min_value=D("0"), max_value=D("1500"), places=2),
)
def test_a_loan_is_accepted_exactly_when_it_is_within_every_cap(entity, lender, credit_type, principal, instalments,
                                                               rate, fee):
    # One product per credit type at the cap's rate and the R60 service fee, made on first use.
    product = Product.objects.filter(entity=entity, name=f"Caps {credit_type}").first() or make_product(
        entity, name=f"Caps {credit_type}", credit_type=credit_type,
        interest_rate_pm=str(_cap_rate(credit_type).quantize(D("0.0001"), rounding=ROUND_DOWN)))
    client, _ = make_borrower(entity)
    within = rate <= _cap_rate(credit_type) and fee <= _cap_initiation_fee(principal)
    try:
        loan = services.loan_apply(entity=entity, actor=lender, client=client, product=product, principal=principal,
                                   instalments=instalments, applied_on=dt.date(2026, 3, 2), interest_rate_pm=rate,
                                   initiation_fee=fee)
    except ValidationError as exc:
        codes = {e.code for errors in exc.error_dict.values() for e in errors}
        assert not within, f"refused within the caps: {exc}"
        assert codes <= {"cap_short_term_first_loan_rate", "cap_unsecured_rate", "cap_initiation_fee"}, codes
        assert not Loan.objects.filter(client=client).exists()
    else:
        assert within, "accepted over a cap"
        assert loan.interest_rate_pm <= _cap_rate(credit_type) and loan.initiation_fee <= _cap_initiation_fee(principal)
        assert loan.service_fee_pm <= D("60")
