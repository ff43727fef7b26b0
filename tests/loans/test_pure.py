"""The pure loan rules: caps, schedules, allocation, settlement, in duplum (no database)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from imali.loans import allocation as alloc
from imali.loans import pricing, rules
from imali.loans.schedule import (
    build_schedule,
    due_dates,
    is_business_day,
    months_between,
    split_exact,
)

D = Decimal
ZA = pricing.PRICING_CAPS["ZA"]

money = st.decimals(min_value=D("100.00"), max_value=D("250000.00"), places=2)
frequencies = st.sampled_from(["monthly", "fortnightly", "weekly"])
dates = st.dates(min_value=dt.date(2024, 1, 1), max_value=dt.date(2030, 12, 31))


# --- caps -------------------------------------------------------------------------------------
def test_initiation_fee_cap_za():
    rule = ZA.initiation_fee
    assert pricing.max_initiation_fee(D("1000.00"), rule) == D("150.00")  # 15% beats R165
    assert pricing.max_initiation_fee(D("2000.00"), rule) == D("265.00")  # 165 + 10% of 1000
    assert pricing.max_initiation_fee(D("500.00"), rule) == D("75.00")
    assert pricing.max_initiation_fee(D("20000.00"), rule) == D("1050.00")


@given(principal=money)
def test_initiation_fee_never_exceeds_any_cap(principal):
    fee = pricing.max_initiation_fee(principal, ZA.initiation_fee)
    assert fee <= D("1050.00")
    assert fee <= principal * D("0.15")
    assert fee <= D("165.00") + max(D(0), principal - 1000) * D("0.10")


def test_short_term_caps_are_named():
    found = pricing.check_product_terms(
        country="ZA", credit_type="short_term", frequency="monthly", max_principal=D("9000.00"),
        max_instalments=7, interest_rate_pm=D("5.5"), service_fee_pm=D("69.00"), on=dt.date(2026, 1, 5),
    )
    assert {c.cap for c in found} == {
        pricing.CapCode.SHORT_TERM_MAX_PRINCIPAL, pricing.CapCode.SHORT_TERM_MAX_TERM,
        pricing.CapCode.SHORT_TERM_FIRST_LOAN_RATE, pricing.CapCode.SERVICE_FEE,
    }
    assert all(f"({c.cap.label})" in c.message and c.cap.value not in c.message for c in found)  # in words, not keys


def test_repeat_short_term_loan_capped_at_three_percent():
    found = pricing.check_loan_terms(
        country="ZA", credit_type="short_term", principal=D("2000.00"), interest_rate_pm=D("5"),
        initiation_fee=D("265.00"), service_fee_pm=D("60.00"), on=dt.date(2026, 3, 1),
        is_repeat_in_year=True, months_to_last_due=3,
    )
    assert [c.cap for c in found] == [pricing.CapCode.SHORT_TERM_REPEAT_LOAN_RATE]


def test_unsecured_rate_follows_repo_rate_data():
    rate, code = pricing.max_rate_per_month(caps=ZA, credit_type="unsecured", on=dt.date(2026, 1, 1), is_repeat_in_year=False)
    assert code == pricing.CapCode.UNSECURED_RATE
    assert rate == (D("6.75") + 21) / 12
    earlier, _ = pricing.max_rate_per_month(caps=ZA, credit_type="unsecured", on=dt.date(2024, 10, 1), is_repeat_in_year=False)
    assert earlier == (D("8.00") + 21) / 12


def test_country_without_caps_checks_nothing_statutory():
    assert pricing.check_product_terms(
        country="NA", credit_type="short_term", frequency="monthly", max_principal=D("90000"),
        max_instalments=24, interest_rate_pm=D("9"), service_fee_pm=D("100"), on=dt.date(2026, 1, 1)) == []


# --- schedules -------------------------------------------------------------------------------
def test_monthly_dates_move_off_holidays_and_weekends():
    # 16 Dec 2026 is the Day of Reconciliation (Wednesday); 25 Dec 2026 is a Friday holiday.
    got = due_dates(start=dt.date(2026, 11, 20), count=2, frequency="monthly", pay_day=16, country="ZA", move_direction="before")
    assert got == [dt.date(2026, 12, 15), dt.date(2027, 1, 15)]
    got = due_dates(start=dt.date(2026, 11, 28), count=1, frequency="monthly", pay_day=25, country="ZA", move_direction="after")
    assert got == [dt.date(2026, 12, 28)]  # 25 Fri Christmas, 26 Sat Day of Goodwill (not moved), 27 Sun
    assert is_business_day(got[0], "ZA")


@settings(max_examples=200, deadline=None)
@given(start=dates, count=st.integers(1, 36), frequency=frequencies, pay_day=st.integers(1, 31),
       direction=st.sampled_from(["before", "after"]), country=st.sampled_from(["ZA", "NA", "BW", "SZ", "ZM"]))
def test_due_dates_ascend_and_avoid_holidays(start, count, frequency, pay_day, direction, country):
    if frequency != "monthly":
        pay_day = pay_day % 7 + 1
    got = due_dates(start=start, count=count, frequency=frequency, pay_day=pay_day, country=country, move_direction=direction)
    assert len(got) == count
    assert got[0] > start
    assert all(a < b for a, b in zip(got, got[1:], strict=False))
    assert all(is_business_day(d, country) for d in got)


@settings(max_examples=300, deadline=None)
@given(principal=money, count=st.integers(1, 60), rate=st.decimals(min_value=D("0"), max_value=D("5"), places=4),
       frequency=frequencies, fee=st.decimals(min_value=D("0"), max_value=D("1050"), places=2),
       service=st.decimals(min_value=D("0"), max_value=D("60"), places=2), start=dates)
def test_instalments_sum_exactly_to_total(principal, count, rate, frequency, fee, service, start):
    ds = due_dates(start=start, count=count, frequency=frequency, pay_day=None, country="ZA", move_direction="before")
    per = pricing.service_fee_per_instalment(service, frequency)
    s = build_schedule(principal=principal, rate_pm=rate, frequency=frequency, dates=ds, start=start,
                       initiation_fee=fee, service_fee_per_instalment=per, vat_rate=D("15"))
    rows = s.instalments
    assert sum(r.amount for r in rows) == s.total_repayable
    assert sum(r.capital for r in rows) == principal
    assert sum(r.fee for r in rows) == fee + per * count
    assert sum(r.vat for r in rows) == pricing.vat_on(fee + per * count, D("15"))
    assert all(r.capital >= 0 and r.interest >= 0 and r.fee >= 0 and r.vat >= 0 for r in rows)
    assert all(r.amount.as_tuple().exponent >= -2 for r in rows)
    # Service fee per instalment never passes the monthly cap over a month of instalments.
    assert per * pricing.periods_per_year(frequency) <= service * 12


@given(total=st.decimals(min_value=D("0"), max_value=D("100000"), places=2),
       weights=st.lists(st.decimals(min_value=D("0"), max_value=D("1000"), places=2), min_size=1, max_size=30))
def test_split_exact_adds_up(total, weights):
    parts = split_exact(total, weights)
    assert sum(parts) == total and len(parts) == len(weights)


@settings(max_examples=100, deadline=None)
@given(principal=st.decimals(min_value=D("500"), max_value=D("8000"), places=2), count=st.integers(1, 26),
       frequency=frequencies, start=dates, repeat=st.booleans())
def test_capped_short_term_loans_never_exceed_caps(principal, count, frequency, start, repeat):
    """A loan priced at the maximum the caps allow passes every check; one cent more does not."""
    rate, _ = pricing.max_rate_per_month(caps=ZA, credit_type="short_term", on=start, is_repeat_in_year=repeat)
    fee = pricing.max_initiation_fee(principal, ZA.initiation_fee)
    ds = due_dates(start=start, count=count, frequency=frequency, pay_day=None, country="ZA", move_direction="before")
    months = months_between(start, ds[-1])
    found = pricing.check_loan_terms(country="ZA", credit_type="short_term", principal=principal, interest_rate_pm=rate,
                                     initiation_fee=fee, service_fee_pm=D("60"), on=start, is_repeat_in_year=repeat,
                                     months_to_last_due=months)
    assert [c for c in found if c.cap != pricing.CapCode.SHORT_TERM_MAX_TERM] == []
    over = pricing.check_loan_terms(country="ZA", credit_type="short_term", principal=principal, interest_rate_pm=rate,
                                    initiation_fee=fee + D("0.01"), service_fee_pm=D("60.01"), on=start,
                                    is_repeat_in_year=repeat, months_to_last_due=1)
    assert {c.cap for c in over} == {pricing.CapCode.INITIATION_FEE, pricing.CapCode.SERVICE_FEE}


# --- allocation --------------------------------------------------------------------------------
cents = st.decimals(min_value=D("0"), max_value=D("2000"), places=2)
owing_lists = st.lists(
    st.tuples(st.integers(0, 400), cents, cents, cents, cents), min_size=0, max_size=12,
).map(lambda rows: [alloc.Owing(key=i, due_date=dt.date(2026, 1, 1) + dt.timedelta(days=d), fee=f, vat=v, interest=n, capital=c)
                    for i, (d, f, v, n, c) in enumerate(rows)])


@settings(max_examples=300)
@given(owing=owing_lists, amount=st.decimals(min_value=D("0"), max_value=D("20000"), places=2))
def test_allocation_conserves_money_and_reverses_exactly(owing, amount):
    a = alloc.allocate(amount, owing)
    assert a.allocated + a.change == amount
    after = alloc.apply_allocation(owing, a)
    assert sum(o.total for o in owing) - sum(o.total for o in after) == a.allocated
    assert a.change == max(D(0), amount - sum(o.total for o in owing))
    assert alloc.reverse_allocation(after, a) == owing


@settings(max_examples=200)
@given(owing=owing_lists, amount=st.decimals(min_value=D("0"), max_value=D("20000"), places=2))
def test_allocation_in_order_takes_items_only_until_the_money_runs_out(owing, amount):
    ordered = sorted(owing, key=alloc.allocation_order)
    taken = []

    def one_at_a_time():
        for item in ordered:
            taken.append(item)
            yield item

    assert alloc.allocate_in_order(amount, one_at_a_time()) == alloc.allocate(amount, owing)
    # Every item taken was reached with money left: none is built beyond what the receipt pays
    # (the loop stops once the money is gone, before asking for the next item).
    left = amount
    for item in taken:
        assert left > 0
        left -= min(left, item.total)
    assert len(taken) == len(ordered) or left <= 0


def test_allocation_order_oldest_first_fees_interest_capital():
    owing = [
        alloc.Owing(key=2, due_date=dt.date(2026, 2, 25), fee=D("60"), vat=D("9"), interest=D("100"), capital=D("500")),
        alloc.Owing(key=1, due_date=dt.date(2026, 1, 25), fee=D("60"), vat=D("9"), interest=D("100"), capital=D("500")),
    ]
    a = alloc.allocate(D("900.00"), owing)
    assert a.lines[0] == alloc.AllocationLine(key=1, fee=D("60"), vat=D("9"), interest=D("100"), capital=D("500"))
    assert a.lines[1] == alloc.AllocationLine(key=2, fee=D("60"), vat=D("9"), interest=D("100"), capital=D("62"))
    assert a.change == 0
    over = alloc.allocate(D("1500.00"), owing)
    assert over.change == D("162.00")


# --- settlement, in duplum, buckets, statuses ----------------------------------------------------
def _line(start, due, *, capital, interest, fee, paid="0"):
    return rules.SettlementLine(start_date=start, due_date=due, amount=D(capital) + D(interest) + D(fee),
                                capital=D(capital), interest=D(interest), paid=D(paid))


def test_settlement_accrues_current_period_interest_pro_rata():
    lines = [
        _line(dt.date(2026, 1, 1), dt.date(2026, 1, 31), capital="400", interest="100", fee="69"),
        _line(dt.date(2026, 1, 31), dt.date(2026, 3, 2), capital="500", interest="60", fee="69"),
    ]
    # 10 Feb: first instalment in full; second: capital + 10/30 of 60 interest, no fee yet.
    assert rules.settlement_amount(lines, as_of=dt.date(2026, 2, 10)) == D("400") + D("100") + D("69") + D("500") + D("20.00")


def test_settlement_credits_what_was_paid_ahead():
    due, current, later = (_line(dt.date(2026, 1, 1), dt.date(2026, 1, 31), capital="400", interest="100", fee="69"),
                           _line(dt.date(2026, 1, 31), dt.date(2026, 3, 2), capital="500", interest="60", fee="69"),
                           _line(dt.date(2026, 3, 2), dt.date(2026, 4, 1), capital="600", interest="30", fee="69"))
    as_of = dt.date(2026, 2, 10)
    quote = rules.settlement_amount([due, current, later], as_of=as_of)
    assert quote == D("569") + D("520.00") + D("600")
    # 100 paid ahead on the current instalment went to its fee (69) and interest (31): the fee is not
    # charged on settlement and 11 of that interest is not earned yet, so the whole 100 comes off.
    paid_current = _line(dt.date(2026, 1, 31), dt.date(2026, 3, 2), capital="500", interest="60", fee="69", paid="100")
    assert rules.settlement_amount([due, paid_current, later], as_of=as_of) == quote - D("100")
    # A later instalment paid in full: only its capital was owed on settlement, so the rest comes off.
    paid_later = _line(dt.date(2026, 3, 2), dt.date(2026, 4, 1), capital="600", interest="30", fee="69", paid="699")
    assert rules.settlement_amount([due, current, paid_later], as_of=as_of) == quote - D("699")
    # Paid on an instalment already due: simply less owed.
    paid_due = _line(dt.date(2026, 1, 1), dt.date(2026, 1, 31), capital="400", interest="100", fee="69", paid="300")
    assert rules.settlement_amount([paid_due, current, later], as_of=as_of) == quote - D("300")


@given(cap=cents, charges=st.lists(cents, max_size=20))
def test_in_duplum_never_exceeded(cap, charges):
    allowed = rules.in_duplum_trim(cap=cap, charges=charges)
    assert sum(allowed, D(0)) <= cap
    assert all(0 <= a <= c for a, c in zip(allowed, charges, strict=True))
    if sum(charges, D(0)) <= cap:
        assert allowed == charges


@given(cap=cents, rows=st.lists(st.tuples(cents, cents), max_size=20))
def test_in_duplum_keeps_what_was_paid_and_cuts_the_unpaid_charges(cap, rows):
    charges = [c for c, _ in rows]
    floors = [min(f, c) for c, f in rows]
    allowed = rules.in_duplum_trim(cap=cap, charges=charges, floors=floors)
    assert all(f <= a <= c for a, c, f in zip(allowed, charges, floors, strict=True))
    paid, total = sum(floors, D(0)), sum(charges, D(0))
    # What was paid stays; the unpaid parts fill what room the cap leaves, oldest first.
    assert sum(allowed, D(0)) == max(paid, min(total, cap))
    room = max(D(0), cap - paid)
    for a, c, f in zip(allowed, charges, floors, strict=True):
        assert a - f == min(c - f, room)
        room -= a - f


def test_buckets_and_status():
    as_of = dt.date(2026, 1, 1)
    assert rules.bucket_name(due_date=as_of, as_of=as_of) == "due_30"
    assert rules.bucket_name(due_date=as_of + dt.timedelta(days=31), as_of=as_of) == "due_60"
    assert rules.bucket_name(due_date=as_of + dt.timedelta(days=121), as_of=as_of) == "due_120_plus"
    assert rules.bucket_name(due_date=as_of - dt.timedelta(days=1), as_of=as_of) is None
    assert rules.months_in_arrears(1) == 1 and rules.months_in_arrears(30) == 1 and rules.months_in_arrears(31) == 2
    s = rules.instalment_status
    assert s(amount=D(10), paid=D(10), due_date=as_of, as_of=as_of) == "paid"
    assert s(amount=D(10), paid=D(5), due_date=as_of, as_of=as_of) == "partly_paid"
    assert s(amount=D(10), paid=D(5), due_date=as_of, as_of=as_of + dt.timedelta(days=1)) == "in_arrears"
    assert s(amount=D(10), paid=D(0), due_date=as_of, as_of=as_of) == "pending"


def test_client_status_rules():
    f = rules.client_status_after
    assert f(status="good", new_loans_allowed=True, has_open_loans=True, oldest_arrears_days=91, has_written_off=False) == ("bad", False)
    assert f(status="bad", new_loans_allowed=False, has_open_loans=True, oldest_arrears_days=0, has_written_off=False) == ("good", True)
    assert f(status="good", new_loans_allowed=True, has_open_loans=False, oldest_arrears_days=0, has_written_off=False) == ("inactive", True)
    assert f(status="deceased", new_loans_allowed=True, has_open_loans=True, oldest_arrears_days=0, has_written_off=False) == ("deceased", False)


def test_post_held_pays_the_oldest_instalment_first_whatever_order_it_is_given():
    """post_held takes the instalments in allocation order from its callers; given them in another
    order it still pays the oldest first (due date, then id)."""
    from imali.loans.posting import HeldInstalment, HeldLoan, post_held

    def instalment(pk, due):
        return HeldInstalment(pk, dt.date(2026, 1, 1), due, D("10.00"), D("1.50"), D("20.00"), D("100.00"), D("131.50"),
                              D("0.00"), D("0.00"), D("0.00"), D("0.00"), D("0.00"), None)

    for order in ([3, 2, 1], [2, 3, 1], [1, 2, 3]):
        by_pk = {1: instalment(1, dt.date(2026, 2, 1)), 2: instalment(2, dt.date(2026, 3, 1)),
                 3: instalment(3, dt.date(2026, 3, 1))}
        loan = HeldLoan(7, 1, "active", dt.date(2026, 1, 1), None, None, D("0.00"), D("0.00"))
        loan.instalments = [by_pk[pk] for pk in order]
        done = post_held(loan, loan.instalments, money=D("150.00"), value_date=dt.date(2026, 2, 2), reference="",
                         reference_taken=False)
        assert [(line.instalment.pk, line.line.total) for line in done.lines] == [(1, D("131.50")), (2, D("18.50"))]
        assert by_pk[1].paid_on == dt.date(2026, 2, 2) and by_pk[2].fee_paid == D("10.00") and by_pk[3].paid == 0
        assert not done.paid_up and done.change == 0
        # The rest pays the loan up: the change is what is left over.
        done = post_held(loan, loan.instalments, money=D("300.00"), value_date=dt.date(2026, 2, 3), reference="",
                         reference_taken=False)
        assert done.paid_up and done.change == D("300.00") - D("131.50") * 2 + D("18.50") and loan.status == "paid_up"
