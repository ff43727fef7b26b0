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
