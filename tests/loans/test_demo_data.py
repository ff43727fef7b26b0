"""The generator extension: loans in every state whose figures hold together."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal as D

import pytest
from django.db.models import Count, F

from imali.core.money import aggregate_money, from_cents, sum_cents
from imali.demo.generator import generate_book
from imali.loans import selectors
from imali.loans.daily_close import daily_close_run
from imali.loans.demo_data import add_loans
from imali.loans.models import Instalment, Loan, Receipt, ReceiptAllocation
from imali.tenancy.models import Entity

pytestmark = pytest.mark.django_db


def test_generated_loans_are_consistent(operator):
    summary = generate_book(clients=400, seed=11, actor=operator, countries=("ZA", "NA"), extensions=[add_loans],
                            code_prefix="lx")
    loans = Loan.objects.filter(entity_id__in=[b.entity_id for b in summary.entities])
    states = set(loans.values_list("status", flat=True))
    assert {"active", "paid_up", "cancelled"} <= states
    assert len(states) >= 5, states
    assert 1.1 < loans.count() / 400 < 1.9
    # Instalments add up to the total repayable on every disbursed loan.
    # Sums in whole cents (core.money.sum_cents): SQLite's SUM over a decimal column adds floats.
    sums = loans.exclude(disbursed_on=None).annotate(s=sum_cents("schedule__amount"), n=Count("schedule")).filter(n__gt=0)
    assert all(from_cents(loan.s) == loan.total_repayable for loan in sums)
    assert not Instalment.objects.filter(paid__gt=F("amount")).exists()
    # Receipts equal their allocations plus change; instalments' paid equals allocations.
    for receipt in Receipt.objects.annotate(a=sum_cents(F("allocations__fee") + F("allocations__vat") + F("allocations__interest")
                                                       + F("allocations__capital")))[:300]:
        assert from_cents(receipt.a) == receipt.allocated and receipt.allocated + receipt.change == receipt.amount
    assert aggregate_money(ReceiptAllocation.objects, s=F("fee") + F("vat") + F("interest") + F("capital"))["s"] == \
        aggregate_money(Instalment.objects.filter(entity_id__in=[b.entity_id for b in summary.entities]), s="paid")["s"]
    # The loans' running receipt totals agree with their receipts.
    for loan in loans.annotate(r=sum_cents("receipts__allocated"), c=sum_cents("receipts__change"))[:300]:
        assert loan.received_total == from_cents(loan.r) and loan.change_total == from_cents(loan.c)
    # Arrears exist, and the whole-book selectors and the daily close run on it.
    za = Entity.objects.get(pk=summary.entities[0].entity_id)
    as_of = summary.now.date()
    snap = selectors.portfolio_snapshot(entity=za, as_of=as_of)
    assert any(f.arrears_amount > 0 for f in snap.values())
    assert any(f.date_totally_paid for f in snap.values())
    close, ran = daily_close_run(entity=za, business_date=as_of)
    assert ran and close.loans_defaulted > 0


def test_same_seed_same_loans(operator):
    def amounts(prefix):
        summary = generate_book(clients=60, seed=5, actor=operator, countries=("ZA",), extensions=[add_loans], code_prefix=prefix,
                                now=dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
        return list(Loan.objects.filter(entity_id=summary.entities[0].entity_id).order_by("pk")
                    .values_list("status", "principal", "instalments", "total_repayable"))
    assert amounts("sa") == amounts("sb")
    assert random.Random(1) is not None and D("1")


def test_generated_applications_and_approved_loans_can_be_paid_out_today(operator):
    """A later short-term loan in the year is charged at most the repeat cap, as loan_apply lowers
    it: else the loan book refuses to pay it out (the demo's one approved loan once could not be)."""
    from django.core.exceptions import ValidationError

    from imali.clients.models import AccountPurpose, ClientAccount
    from imali.loans.services import borrower_refusal, loan_payout_check

    summary = generate_book(clients=200, seed=11, actor=operator, countries=("ZA",), extensions=[add_loans],
                            code_prefix="lp")
    entity_id = summary.entities[0].entity_id
    waiting = (Loan.objects.filter(entity_id=entity_id, status__in=("application", "approved"))
               .select_related("entity", "client", "product"))
    today = summary.now.date()
    checked = repeats = 0
    for loan in waiting:
        repeats += Loan.objects.filter(client_id=loan.client_id, product__credit_type="short_term", status="active",
                                       disbursed_on__year=today.year).exists() and loan.product.credit_type == "short_term"
        account = ClientAccount.objects.filter(client_id=loan.client_id, is_active=True,
                                               purpose__in=(AccountPurpose.PAYOUT, AccountPurpose.BOTH)).first()
        if account is None or borrower_refusal(loan.client):
            continue  # refused for its own reason (a client who died since applying may not be paid)
        loan.status = "approved"  # an application is checked as it will be once approved
        Loan.objects.filter(pk=loan.pk).update(status="approved")
        try:
            loan_payout_check(loan=loan, payout_account=account, on=today)
        except ValidationError as exc:
            raise AssertionError(f"loan {loan.pk}: {exc.messages}") from None
        checked += 1
    assert checked >= 3 and repeats >= 1, (checked, repeats)


def test_a_cap_refusal_names_the_cap_in_words(entity, lender):
    """Not an internal key such as short_term_first_loan_rate."""
    from django.core.exceptions import ValidationError

    from imali.loans.services import loan_apply

    from .conftest import make_borrower, make_product

    client, _ = make_borrower(entity)
    with pytest.raises(ValidationError) as refused:
        loan_apply(entity=entity, actor=lender, client=client, product=make_product(entity), principal="2000",
                   instalments=3, interest_rate_pm="6")
    message = " ".join(refused.value.messages)
    assert "Interest may be at most 5.00% per month on this loan (Short-term credit: interest on a first loan)." in message
    assert "_rate" not in message and "cap:" not in message
