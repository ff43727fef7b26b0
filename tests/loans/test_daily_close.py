"""The daily close: default and in duplum, post-term charges, client statuses; once per day."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from django.db.models import F

from imali.core.money import aggregate_money
from imali.loans import selectors, services
from imali.loans.daily_close import daily_close_run, entities_due_for_close
from imali.loans.models import DailyClose, Instalment, InstalmentKind
from tests.loans.conftest import make_loan

pytestmark = pytest.mark.django_db


def book_state(entity):
    return (
        list(Instalment.objects.filter(entity=entity).order_by("pk").values_list("pk", "amount", "paid", "open")),
        list(type(entity).objects.get(pk=entity.pk).loans.order_by("pk").values_list("status", "default_since", "default_balance", "next_charge_on")),
        list(type(entity).objects.get(pk=entity.pk).clients.order_by("pk").values_list("status", "new_loans_allowed")),
    )


def test_default_entry_and_second_run_changes_nothing(entity, lender):
    loan = make_loan(entity, user=lender)  # R2,000, 3 monthly, first due 23 Jan 2026, nothing paid
    close, ran = daily_close_run(entity=entity, business_date=dt.date(2026, 2, 22))
    assert ran and close.loans_defaulted == 0  # 30 days overdue: not yet in default
    close, ran = daily_close_run(entity=entity, business_date=dt.date(2026, 2, 23))
    assert ran and close.loans_defaulted == 1
    loan.refresh_from_db()
    assert loan.default_since == dt.date(2026, 2, 23)
    # Capital 2,000 + the first instalment's fee, VAT and interest (148.34 + 22.25 + 100.00).
    assert loan.default_balance == D("2270.59")
    before = book_state(entity)
    again, ran = daily_close_run(entity=entity, business_date=dt.date(2026, 2, 23))
    assert not ran and again.pk == close.pk
    assert book_state(entity) == before
    assert DailyClose.objects.filter(entity=entity).count() == 2


def test_in_duplum_caps_post_term_charges(entity, lender):
    loan = make_loan(entity, user=lender)
    daily_close_run(entity=entity, business_date=dt.date(2026, 2, 23))
    loan.refresh_from_db()
    cap = loan.default_balance
    close, _ = daily_close_run(entity=entity, business_date=dt.date(2028, 1, 4))
    charges = Instalment.objects.filter(loan=loan, kind=InstalmentKind.CHARGE).order_by("seq")
    # Scheduled charges after default: 238.86 + 205.55 = 444.41; room 1,826.18 = ten full months
    # of 169.00 (interest 100, fee 60, VAT 9) and a last, cut charge of 136.18.
    assert [c.amount for c in charges] == [D("169.00")] * 10 + [D("136.18")]
    assert charges[0].due_date == dt.date(2026, 4, 25)
    since = aggregate_money(Instalment.objects.filter(loan=loan, due_date__gt=loan.default_since),
                            s=F("fee") + F("vat") + F("interest"))["s"]
    assert since == cap
    daily_close_run(entity=entity, business_date=dt.date(2028, 6, 4))
    assert Instalment.objects.filter(loan=loan, kind=InstalmentKind.CHARGE).count() == 11
    fig = selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=dt.date(2028, 6, 4))
    assert fig.outstanding == D("2715.00") + D("1826.18")
    assert fig.settlement == fig.outstanding  # everything is due


def test_client_status_bad_then_inactive_after_paying(entity, lender):
    loan = make_loan(entity, user=lender)
    daily_close_run(entity=entity, business_date=dt.date(2026, 4, 23))  # oldest arrears 90 days
    loan.client.refresh_from_db()
    assert loan.client.status == "good"
    daily_close_run(entity=entity, business_date=dt.date(2026, 4, 24))
    loan.client.refresh_from_db()
    assert (loan.client.status, loan.client.new_loans_allowed) == ("bad", False)
    owed = selectors.loan_outstanding(loan=loan)
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount=owed, value_date=dt.date(2026, 4, 25), payback_type="cash")
    daily_close_run(entity=entity, business_date=dt.date(2026, 4, 25))
    loan.client.refresh_from_db()
    assert (loan.client.status, loan.client.new_loans_allowed) == ("inactive", True)


def test_cure_leaves_default(entity, lender):
    loan = make_loan(entity, user=lender)
    daily_close_run(entity=entity, business_date=dt.date(2026, 2, 23))
    first = Instalment.objects.get(loan=loan, seq=1)
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount=first.amount, value_date=dt.date(2026, 2, 24), payback_type="eft")
    close, _ = daily_close_run(entity=entity, business_date=dt.date(2026, 2, 24))
    loan.refresh_from_db()
    assert close.loans_cured == 1 and loan.default_since is None and loan.default_balance is None


def test_entities_due_for_close_uses_local_day(entity):
    import zoneinfo
    now = dt.datetime(2026, 3, 2, 0, 30, tzinfo=zoneinfo.ZoneInfo("Africa/Johannesburg"))
    assert (entity, dt.date(2026, 3, 1)) in entities_due_for_close(now)
    daily_close_run(entity=entity, business_date=dt.date(2026, 3, 1))
    assert (entity, dt.date(2026, 3, 1)) not in entities_due_for_close(now)


def test_periodic_task_closes_every_entity_once(entity, other_entity):
    from imali.loans.tasks import loans_daily_close

    loans_daily_close.call_local()
    loans_daily_close.call_local()
    assert DailyClose.objects.filter(entity=entity).count() == 1
    assert DailyClose.objects.filter(entity=other_entity).count() == 1


def test_missed_days_are_closed_in_order_up_to_a_month_back(entity, lender):
    import zoneinfo

    from imali.loans.daily_close import CATCH_UP_DAYS

    loan = make_loan(entity, user=lender)  # first instalment due 23 Jan 2026, nothing paid
    daily_close_run(entity=entity, business_date=dt.date(2026, 2, 20))
    # No worker ran from 21 February until the morning of 26 February (Johannesburg).
    now = dt.datetime(2026, 2, 26, 6, 0, tzinfo=zoneinfo.ZoneInfo("Africa/Johannesburg"))
    due = [day for e, day in entities_due_for_close(now) if e == entity]
    assert due == [dt.date(2026, 2, d) for d in range(21, 26)]
    for day in due:
        daily_close_run(entity=entity, business_date=day)
    loan.refresh_from_db()
    # The loan went into default on the day it passed 30 days overdue, not on the day work resumed.
    assert loan.default_since == dt.date(2026, 2, 23)
    long_after = dt.datetime(2026, 9, 1, 6, 0, tzinfo=zoneinfo.ZoneInfo("Africa/Johannesburg"))
    due = [day for e, day in entities_due_for_close(long_after) if e == entity]
    assert len(due) == CATCH_UP_DAYS and due[-1] == dt.date(2026, 8, 31)


def test_default_on_a_loan_with_later_instalments_paid_ahead_still_closes(entity, lender):
    """A receipt for the first instalment reversed after later ones were paid ahead leaves a hole:
    the loan goes into default with instalments already paid after the default date. In duplum
    cuts the charges not yet paid, never below what was paid (the constraint paid ≤ amount holds)."""
    loan = make_loan(entity, user=lender, principal="500", instalments=6)
    schedule = list(Instalment.objects.filter(loan=loan).order_by("seq"))
    first = services.receipt_post(entity=entity, actor=lender, loan=loan, amount=schedule[0].amount,
                                  value_date=dt.date(2026, 1, 23), payback_type="debit_order", external_reference="DO-A")
    ahead = sum(i.amount for i in schedule[1:])  # every later instalment paid ahead (the loan is paid up)
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount=ahead, value_date=dt.date(2026, 2, 10),
                          payback_type="eft", external_reference="EFT-B")
    services.receipt_reverse(receipt=first, actor=lender, reason="Debit order returned")
    close, ran = daily_close_run(entity=entity, business_date=dt.date(2026, 2, 23))
    assert ran and close.loans_defaulted == 1
    loan.refresh_from_db()
    cap = loan.default_balance
    rows = list(Instalment.objects.filter(loan=loan).order_by("seq"))
    assert all(i.paid <= i.amount for i in rows)
    assert all(i.paid == i.amount for i in rows[1:])  # what was paid stays paid
    later = [i for i in rows if i.due_date > loan.default_since]
    charged = sum(i.fee + i.vat + i.interest for i in later)
    paid_charges = sum(i.fee_paid + i.vat_paid + i.interest_paid for i in later)
    # Within the cap, except for charges the client had paid before the default.
    assert charged <= max(cap, paid_charges)
    assert [(i.amount, i.paid) for i in rows[1:]] == [(i.amount, i.amount) for i in schedule[1:]]
    # The hole is what is owed, and the loan is in default on it.
    assert selectors.loan_outstanding(loan=loan) == schedule[0].amount
