"""Every figure of the whole-book snapshot against an oracle computed loan by loan in Python, on a
generated book (the demo generator and its loans: schedules of every frequency, part payments,
arrears, paid-up, handed-over and written-off loans, receipts with change, non-loan debits), on
three days: the book's own day, before it and after it. The snapshot's grouped queries are tuned
for speed (see benchmarks/snapshot_bench.py); this holds any rework of them to the definitions."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP
from decimal import Decimal as D

import pytest
from django.db.models import Count, F

from imali.clients.models import Client
from imali.demo.generator import generate_book
from imali.loans import selectors
from imali.loans.demo_data import add_loans
from imali.loans.models import OPEN_STATUSES, Instalment, Loan, LoanStatus, NonLoanDebit
from imali.tenancy.models import Entity
from tests.loans.test_selectors import expected_for

pytestmark = pytest.mark.django_db

ZERO = D("0.00")


def loan_figures(entity: Entity, as_of: dt.date) -> dict[int, dict]:
    """The figures the snapshot takes from loans and debits, client by client, from model rows."""
    loans: dict[int, list[Loan]] = defaultdict(list)
    for loan in Loan.objects.filter(entity=entity).select_related("product"):
        loans[loan.client_id].append(loan)
    debts: dict[int, D] = defaultdict(lambda: ZERO)
    for debit in NonLoanDebit.objects.filter(entity=entity, settled_on__isnull=True):
        debts[debit.client_id] += debit.amount
    found = {}
    for client_id in loans.keys() | debts.keys():
        own = loans.get(client_id, [])
        paid_out = [loan for loan in own if loan.disbursed_on is not None]
        latest = max(paid_out, key=lambda loan: (loan.disbursed_on, loan.pk), default=None)
        open_loans = sum(loan.status in OPEN_STATUSES for loan in own)
        paid_up = [loan.paid_up_on for loan in own if loan.status == LoanStatus.PAID_UP and loan.paid_up_on]
        total = sum((loan.total_repayable for loan in paid_out), ZERO)
        received = sum((loan.received_total for loan in own), ZERO)
        last_receipt = max((loan.last_receipt_on for loan in own if loan.last_receipt_on), default=None)
        found[client_id] = {
            "pct_of_all_capital_pd": (100 * received / total).quantize(D("0.01"), rounding=ROUND_HALF_UP) if total else ZERO,
            "last_receipt_date": last_receipt,
            "days_since_last_receipt": (as_of - last_receipt).days if last_receipt else None,
            "change_available": sum((loan.change_total for loan in own), ZERO),
            "non_loan_debt": debts[client_id],
            "last_agreement_date": latest.disbursed_on if latest else None,
            "last_agreement_product": latest.product.name if latest else "",
            "days_since_last_loan": (as_of - latest.disbursed_on).days if latest else None,
            "open_loans": open_loans,
            "date_totally_paid": max(paid_up) if paid_up and not open_loans else None,
        }
    return found


def test_every_figure_of_a_generated_book_matches_the_definitions(operator):
    summary = generate_book(clients=160, seed=29, actor=operator, countries=("ZA",), extensions=[add_loans],
                            code_prefix="sg")
    entity = Entity.objects.get(pk=summary.entities[0].entity_id)
    today = summary.now.date()
    clients = {c.pk: c for c in Client.objects.filter(entity=entity)}
    # Change held on loans and debits not yet settled, which the generator leaves out; one debit of a
    # client without a loan, who is on the book for it alone.
    first_of_client = {}
    for loan in Loan.objects.filter(entity=entity, status=LoanStatus.ACTIVE).order_by("pk"):
        first_of_client.setdefault(loan.client_id, loan)
    on_book = list(first_of_client.values())[:3]
    assert len(on_book) == 3
    for k, loan in enumerate(on_book):
        Loan.objects.filter(pk=loan.pk).update(change_total=D("12.35") * (k + 1))
        NonLoanDebit.objects.create(entity=entity, client_id=loan.client_id, description="Card fee",
                                    amount=D("45.10") + k, debit_date=today)
    borrowers = set(Loan.objects.filter(entity=entity).values_list("client_id", flat=True))
    loanless = next(pk for pk in sorted(clients) if pk not in borrowers)
    NonLoanDebit.objects.create(entity=entity, client_id=loanless, description="Membership", amount=D("99.99"),
                                debit_date=today)
    NonLoanDebit.objects.create(entity=entity, client_id=on_book[0].client_id, description="Settled", amount=D("5.00"),
                                debit_date=today, settled_on=today)
    # The day most unpaid instalments fall due, seen from each edge of the ranges: due that day
    # (not yet in arrears), and exactly 30, 60, 90 and 120 days ahead (the last day of each bucket).
    busiest = (Instalment.objects.filter(entity=entity, open=True, paid__lt=F("amount")).values("due_date")
               .annotate(n=Count("id")).order_by("-n", "due_date")[0]["due_date"])
    edges = [busiest - dt.timedelta(days=days) for days in (0, 30, 60, 90, 120)]
    checked = 0
    for as_of in (today, today - dt.timedelta(days=75), today + dt.timedelta(days=45), *edges):
        snap = selectors.portfolio_snapshot(entity=entity, as_of=as_of)
        expected = loan_figures(entity, as_of)
        assert set(snap) == set(expected)
        for client_id, figures in snap.items():
            want = {"client_id": client_id, **expected[client_id], **expected_for(clients[client_id], as_of)}
            assert set(want) == set(selectors.ClientFigures.FIELDS)
            got = figures.as_dict()
            assert got == want, (client_id, as_of, {k: (got[k], want[k]) for k in want if got[k] != want[k]})
            # Money as two-place Decimals, as every screen and export shows them.
            assert all(len(str(got[k]).partition(".")[2]) == 2 for k in (
                "outstanding", "settlement", "due_30", "change_available", "non_loan_debt", "pct_of_all_capital_pd"))
            checked += 1
    # The book has what the definitions are about: arrears, buckets, settlements, paid-up clients.
    on_the_day = selectors.portfolio_snapshot(entity=entity, as_of=today)
    figures = list(on_the_day.values())
    assert sum(f.arrears_amount > 0 for f in figures) >= 5
    assert sum(f.due_60 > 0 for f in figures) >= 5
    assert sum(f.date_totally_paid is not None for f in figures) >= 5
    assert sum(f.change_available > 0 for f in figures) == 3
    assert sum(f.non_loan_debt > 0 for f in figures) == 4
    assert on_the_day[loanless].non_loan_debt == D("99.99") and on_the_day[loanless].open_loans == 0
    assert checked >= 8 * 100
