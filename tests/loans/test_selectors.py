"""The set-based snapshot against the pure definitions, loan by loan."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal as D

import pytest

from imali.loans import rules, selectors, services
from imali.loans.models import OPEN_STATUSES, Instalment
from tests.loans.conftest import make_borrower, make_loan, make_product

pytestmark = pytest.mark.django_db


def expected_for(client, as_of):
    """Figures computed instalment by instalment in Python from the pure rules."""
    rows = list(Instalment.objects.filter(client=client, open=True).select_related("loan"))
    owing = [(i, i.amount - i.paid) for i in rows]
    arrears = [(i, o) for i, o in owing if i.due_date < as_of and o > 0]
    future = sorted([(i, o) for i, o in owing if i.due_date >= as_of and o > 0], key=lambda x: x[0].due_date)
    buckets = dict.fromkeys(rules.BUCKET_NAMES, D("0.00"))
    for i, o in future:
        buckets[rules.bucket_name(due_date=i.due_date, as_of=as_of)] += o
    next_date = future[0][0].due_date if future else None
    days = (as_of - min(i.due_date for i, _ in arrears)).days if arrears else 0
    return {
        "outstanding": sum((o for _, o in owing), D("0.00")),
        "arrears_amount": sum((o for _, o in arrears), D("0.00")),
        "arrears_days": days,
        "arrears_months": rules.months_in_arrears(days),
        "next_due_date": next_date,
        "next_amount_due": sum((o for i, o in future if i.due_date == next_date), D("0.00")),
        # Loan by loan, and only loans on the book.
        "settlement": sum((rules.settlement_amount([rules.SettlementLine.of(i) for i in rows if i.loan_id == loan_id],
                                                   as_of=as_of)
                           for loan_id in {i.loan_id for i in rows if i.loan.status in OPEN_STATUSES}), D("0.00")),
        **buckets,
    }


def test_snapshot_matches_pure_rules_on_a_mixed_book(entity, lender):
    rng = random.Random(7)
    weekly = make_product(entity, name="Weekly", frequency="weekly", max_instalments=26)
    unsecured = make_product(entity, name="Unsecured", credit_type="unsecured", max_principal="50000",
                             max_instalments=24, interest_rate_pm="2.3")
    products = [make_product(entity, name="Monthly"), weekly, unsecured]
    clients = []
    for n in range(12):
        client, _ = make_borrower(entity)
        clients.append(client)
        for k in range(1 + n % 2):
            product = products[(n + k) % 3]
            loan = make_loan(entity, user=lender, product=product, client=client,
                             principal=str(rng.randint(5, 70) * 100 if product is unsecured else rng.randint(5, 80) * 100),
                             instalments=rng.randint(1, 6 if product.frequency == "monthly" else 12),
                             disbursed_on=dt.date(2026, 1, 5) + dt.timedelta(days=rng.randint(0, 90)))
            for j in range(rng.randint(0, 4)):
                services.receipt_post(entity=entity, actor=lender, loan=loan, amount=str(rng.randint(50, 1500)),
                                      value_date=loan.disbursed_on + dt.timedelta(days=30 * (j + 1)), payback_type="eft")
                loan.refresh_from_db()
                if loan.status != "active":
                    break
    for as_of in (dt.date(2026, 2, 14), dt.date(2026, 4, 30), dt.date(2026, 9, 1)):
        snap = selectors.portfolio_snapshot(entity=entity, as_of=as_of)
        assert set(snap) == {c.pk for c in clients}
        for client in clients:
            got = snap[client.pk]
            for name, value in expected_for(client, as_of).items():
                assert getattr(got, name) == value, (client.pk, as_of, name)
            one = selectors.client_figures(entity=entity, client_id=client.pk, as_of=as_of)
            assert one == got


def test_snapshot_receipts_loans_debits_and_isolation(entity, other_entity, lender):
    client, _ = make_borrower(entity)
    product = make_product(entity, name="Short")
    loan = make_loan(entity, user=lender, product=product, client=client, principal="2000", instalments=3)
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount="905.01", value_date=dt.date(2026, 1, 23), payback_type="cash")
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount="2000", value_date=dt.date(2026, 2, 10), payback_type="eft")
    services.non_loan_debit_add(entity=entity, actor=lender, client=client, description="Card fee", amount="20", debit_date=dt.date(2026, 2, 1))
    fig = selectors.client_figures(entity=entity, client_id=client.pk, as_of=dt.date(2026, 3, 1))
    assert fig.outstanding == 0 and fig.open_loans == 0
    assert fig.date_totally_paid == dt.date(2026, 2, 10)
    assert fig.change_available == D("2905.01") - D("2715.00")
    assert fig.last_receipt_date == dt.date(2026, 2, 10) and fig.days_since_last_receipt == 19
    assert fig.last_agreement_date == dt.date(2026, 1, 5) and fig.last_agreement_product == "Short"
    assert fig.days_since_last_loan == 55
    assert fig.non_loan_debt == D("20.00")
    assert fig.pct_of_all_capital_pd == D("100.00")
    assert selectors.portfolio_snapshot(entity=other_entity, as_of=dt.date(2026, 3, 1)) == {}


def test_instalment_status_on_schedule(entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3)
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount="1000", value_date=dt.date(2026, 1, 20), payback_type="eft")
    got = [s for _, s in selectors.instalments_with_status(loan=loan, as_of=dt.date(2026, 2, 1))]
    assert got == ["paid", "partly_paid", "pending"]
    got = [s for _, s in selectors.instalments_with_status(loan=loan, as_of=dt.date(2026, 2, 26))]
    assert got == ["paid", "in_arrears", "pending"]


def test_values_reads_every_figure_as_the_attributes_do(entity, lender):
    client, _ = make_borrower(entity)
    loan = make_loan(entity, user=lender, product=make_product(entity, name="Short"), client=client, principal="2000", instalments=3)
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount="2905.01", value_date=dt.date(2026, 2, 10), payback_type="eft")
    services.non_loan_debit_add(entity=entity, actor=lender, client=client, description="Card fee", amount="20", debit_date=dt.date(2026, 2, 1))
    other, _ = make_borrower(entity)
    make_loan(entity, user=lender, product=make_product(entity, name="Monthly"), client=other, principal="3000", instalments=4)
    for as_of in (dt.date(2026, 1, 20), dt.date(2026, 3, 1), dt.date(2026, 7, 1)):
        for figures in selectors.portfolio_snapshot(entity=entity, as_of=as_of).values():
            assert figures.values() == tuple(getattr(figures, name) for name in selectors.ClientFigures.FIELDS)
            assert figures.outstanding == figures.arrears_amount + figures.due_30 + figures.due_60 + figures.due_90 \
                + figures.due_120 + figures.due_120_plus


def test_settlement_credits_instalments_paid_ahead_in_full(entity, lender):
    client, _ = make_borrower(entity)
    loan = make_loan(entity, user=lender, product=make_product(entity, name="Monthly"), client=client, principal="3000",
                     instalments=4)
    first, second, third = Instalment.objects.filter(loan=loan).order_by("seq")[:3]
    # One receipt pays instalment 1 and all of instalment 2 ahead, and a little of instalment 3.
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount=str(first.amount + second.amount + D("50")),
                          value_date=first.start_date + dt.timedelta(days=3), payback_type="eft")
    as_of = first.due_date + dt.timedelta(days=2)  # instalment 2 is not due yet: it is paid ahead in full
    second.refresh_from_db()
    assert second.paid == second.amount and second.due_date > as_of
    rows = list(Instalment.objects.filter(loan=loan, open=True))
    expected = rules.settlement_amount([rules.SettlementLine.of(i) for i in rows], as_of=as_of)
    # Of instalment 2 only its capital and the interest earned so far were owed on settlement.
    accrued = rules.accrued_interest(interest=second.interest, start=second.start_date, due=second.due_date, as_of=as_of)
    without_it = rules.settlement_amount([rules.SettlementLine.of(i) for i in rows if i.pk != second.pk], as_of=as_of)
    assert expected == without_it + second.capital + accrued - second.amount
    assert expected < without_it
    figures = selectors.client_figures(entity=entity, client_id=client.pk, as_of=as_of)
    assert figures.settlement == expected == selectors.loan_settlement(loan=loan, as_of=as_of)


def test_last_agreement_of_two_paid_out_on_one_day_is_the_later_loan(entity, lender):
    client, _ = make_borrower(entity)
    first_product, second_product = make_product(entity, name="Alpha"), make_product(entity, name="Beta")
    make_loan(entity, user=lender, product=second_product, client=client, principal="2000", instalments=3)
    later = make_loan(entity, user=lender, product=first_product, client=client, principal="1500", instalments=2)
    figures = selectors.client_figures(entity=entity, client_id=client.pk, as_of=dt.date(2026, 2, 1))
    assert figures.last_agreement_date == later.disbursed_on
    assert figures.last_agreement_product == "Alpha"  # the later loan's, though its product id is the lower


def test_snapshot_leaves_the_garbage_collector_as_it_found_it(entity, lender):
    import gc

    make_loan(entity, user=lender, principal="2000", instalments=3)
    assert gc.isenabled()
    assert len(selectors.portfolio_snapshot(entity=entity, as_of=dt.date(2026, 2, 1))) == 1
    assert gc.isenabled()
    gc.disable()
    try:
        selectors.portfolio_snapshot(entity=entity, as_of=dt.date(2026, 2, 1))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_next_amount_due_when_nothing_falls_due_within_30_days_or_two_days_do(entity, lender):
    client, _ = make_borrower(entity)
    product = make_product(entity, name="Monthly")
    for principal in ("2000", "3000"):  # two loans due on the same days
        make_loan(entity, user=lender, product=product, client=client, principal=principal, instalments=3)
    first = Instalment.objects.filter(client=client).order_by("due_date").first().due_date
    weekly = make_product(entity, name="Weekly", frequency="weekly", max_instalments=26)
    other, _ = make_borrower(entity)
    make_loan(entity, user=lender, product=weekly, client=other, principal="2000", instalments=8)
    for as_of in (first - dt.timedelta(days=45), first - dt.timedelta(days=10), first, first + dt.timedelta(days=1)):
        snap = selectors.portfolio_snapshot(entity=entity, as_of=as_of)
        for someone in (client, other):
            expected = expected_for(someone, as_of)
            got = snap[someone.pk]
            assert (got.next_due_date, got.next_amount_due) == (expected["next_due_date"], expected["next_amount_due"]), \
                (as_of, someone.pk)
    early = selectors.client_figures(entity=entity, client_id=client.pk, as_of=first - dt.timedelta(days=45))
    assert early.next_due_date == first and early.due_30 == 0 and early.next_amount_due > 0
