"""Each filter of client marketing alone, on hand-built books (real services); the totally-paid /
months-outstanding combinations of the seed; consent on and off; bad and contradictory filters are
errors naming the field; the selection's queries do not grow with the clients."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imali.clients.models import Client
from imali.clients.services import client_account_add, employer_create, paypoint_create
from imali.loans.services import non_loan_debit_add
from imali.marketing.filters import filters_check
from imali.marketing.selectors import dataset_rows, dataset_selection
from imali.tenancy.models import Branch, Entity, Region
from tests import factories

from .conftest import TODAY

pytestmark = pytest.mark.django_db


def chosen(entity, **filters) -> set[int]:
    cleaned = filters_check(entity=entity, data=filters)
    return set(dataset_selection(entity=entity, filters=cleaned, as_of=TODAY).values_list("pk", flat=True))


def errors_of(entity, **filters) -> dict:
    with pytest.raises(ValidationError) as caught:
        filters_check(entity=entity, data=filters)
    return caught.value.message_dict


def employer(entity, name, classification="government", sector="government"):
    return employer_create(entity=entity, actor=None, data={"name": name, "classification": classification,
                                                           "economic_sector": sector})


# --- each filter alone --------------------------------------------------------------------------
def test_client_attribute_filters_each_alone(entity, book, no_consent_needed):
    region = Region.objects.create(entity=entity, name="North")
    north = Branch.objects.create(entity=entity, code="N1", name="Polokwane", region=region)
    seller = factories.make_user(entity=entity)
    creator = factories.make_user(entity=entity)
    state = employer(entity, "State", "government", "government")
    mine = employer(entity, "Mine Co", "mining", "mining")
    pay_a = paypoint_create(employer=state, actor=None, number="P1", name="Pretoria")
    pay_b = paypoint_create(employer=state, actor=None, number="P2", name="Durban")

    plain = book.borrower()
    in_north = book.borrower(branch=north)
    sold = book.borrower(salesperson=seller)
    weekly = book.borrower(payment_frequency="weekly", payment_day=5)
    in_area = book.borrower(area="Soweto")
    by_debit = book.borrower(payback_type="debit_order")
    at_state_a = book.borrower(employer=state, paypoint=pay_a)
    at_state_b = book.borrower(employer=state, paypoint=pay_b)
    at_mine = book.borrower(employer=mine)
    bad = book.borrower()
    Client.objects.filter(pk=bad.pk).update(status="bad")
    made = book.borrower()
    Client.objects.filter(pk=made.pk).update(created_by=creator)
    everyone = set(Client.objects.filter(entity=entity).values_list("pk", flat=True))

    assert chosen(entity) == everyone
    assert chosen(entity, branch=north.pk) == {in_north.pk}
    assert chosen(entity, region=region.pk) == {in_north.pk}
    assert chosen(entity, created_by=creator.pk) == {made.pk}
    assert chosen(entity, salesperson=seller.pk) == {sold.pk}
    assert chosen(entity, client_status="bad") == {bad.pk}
    assert chosen(entity, payment_frequency="weekly") == {weekly.pk}
    assert chosen(entity, area="Soweto") == {in_area.pk}
    assert chosen(entity, payback_type="debit_order") == {by_debit.pk}
    assert chosen(entity, employer=state.pk) == {at_state_a.pk, at_state_b.pk}
    assert chosen(entity, paypoint=pay_b.pk) == {at_state_b.pk}
    assert chosen(entity, employer_classification="mining") == {at_mine.pk}
    assert chosen(entity, economic_sector="government") == {at_state_a.pk, at_state_b.pk}
    numbers = sorted(Client.objects.filter(pk__in=[sold.pk, weekly.pk, in_area.pk]).values_list("number", flat=True))
    assert chosen(entity, number_from=numbers[0], number_to=numbers[-1]) == {sold.pk, weekly.pk, in_area.pk}
    assert plain.pk not in chosen(entity, number_from=numbers[0])


def test_bank_and_account_type_filters(entity, book, no_consent_needed):
    both = book.borrower()  # Capitec, payout and payback
    payout_only = factories.make_client(entity=entity, cellphone="0829990001")
    client_account_add(client=payout_only, actor=None, data={
        "kind": "bank", "purpose": "payout", "bank_name": "FNB", "branch_code": "250655", "account_number": "62000000001",
        "account_type": "cheque"})
    no_account = factories.make_client(entity=entity, cellphone="0829990002")

    assert chosen(entity, bank="Capitec") == {both.pk}
    assert chosen(entity, bank="FNB") == {payout_only.pk}
    assert chosen(entity, bank_account_type="payout") == {both.pk, payout_only.pk}
    assert chosen(entity, bank_account_type="payback") == {both.pk}
    assert no_account.pk not in chosen(entity, bank_account_type="payout")
    assert chosen(entity, bank="FNB", bank_account_type="payback") == set()


def test_client_creation_date_range_is_the_entitys_local_days(entity, book, no_consent_needed):
    early, late = book.borrower(), book.borrower()
    zone = dt.timezone(dt.timedelta(hours=2))  # SAST
    Client.objects.filter(pk=early.pk).update(created_at=dt.datetime(2026, 2, 1, 0, 30, tzinfo=zone))
    Client.objects.filter(pk=late.pk).update(created_at=dt.datetime(2026, 2, 28, 23, 30, tzinfo=zone))
    assert chosen(entity, created_from="2026-02-01", created_to="2026-02-28") == {early.pk, late.pk}
    assert chosen(entity, created_from="2026-02-02") == {late.pk}
    assert chosen(entity, created_to="2026-02-27") == {early.pk}


def test_overdues_include_exclude_only(entity, book, no_consent_needed):
    late = book.loan()  # two instalments due before TODAY, unpaid
    paid_ahead = book.loan()
    first, second, _ = book.dues(paid_ahead)
    book.pay_instalments(paid_ahead, 2, on=second)
    no_loan = book.borrower()
    assert chosen(entity, overdues="include") == {late.client_id, paid_ahead.client_id, no_loan.pk}
    assert chosen(entity, overdues="exclude") == {paid_ahead.client_id, no_loan.pk}
    assert chosen(entity, overdues="only") == {late.client_id}


def test_only_change_available_and_non_loan_debt(entity, book, lender, no_consent_needed):
    overpaid = book.loan()
    book.pay(overpaid, "3000", on=TODAY)  # more than everything owed (2,715.00): change
    in_debt = book.borrower()
    non_loan_debit_add(entity=entity, actor=lender, client=in_debt, description="Bank charge", amount="55.00",
                       debit_date=TODAY)
    book.loan()
    assert chosen(entity, only_change_and_debt=True) == {overpaid.client_id, in_debt.pk}


# --- totally paid and months outstanding (seed 002) ------------------------------------------
@pytest.fixture
def lifecycle(entity, book, no_consent_needed):
    """Clients at each point of a loan's life on TODAY (2026-03-10), loans paid on the 25th."""
    paid_feb = book.loan(instalments=1, disbursed_on=dt.date(2026, 1, 5))  # due 2026-01-25
    book.pay_instalments(paid_feb, 1, on=dt.date(2026, 2, 10))
    paid_jan = book.loan(instalments=1, disbursed_on=dt.date(2025, 12, 1))  # due 2025-12-25
    book.pay_instalments(paid_jan, 1, on=dt.date(2026, 1, 10))
    ends_in_1 = book.loan(instalments=3, disbursed_on=dt.date(2026, 1, 5))  # last due 2026-03-25
    ends_in_3 = book.loan(instalments=4, disbursed_on=dt.date(2026, 2, 2))  # last due 2026-05-25
    ends_later = book.loan(instalments=6, disbursed_on=dt.date(2026, 3, 2))  # last due 2026-08-25
    never = book.borrower()
    return {"paid_feb": paid_feb.client_id, "paid_jan": paid_jan.client_id, "ends_in_1": ends_in_1.client_id,
            "ends_in_3": ends_in_3.client_id, "ends_later": ends_later.client_id, "never": never.pk}


def test_totally_paid_range_alone_keeps_only_clients_paid_up_in_it(entity, lifecycle):
    c = lifecycle
    assert chosen(entity, paid_from="2026-02-01", paid_to="2026-02-28") == {c["paid_feb"]}
    assert chosen(entity, paid_from="2026-01-01", paid_to="2026-02-28") == {c["paid_feb"], c["paid_jan"]}


def test_months_outstanding_alone_keeps_only_clients_that_many_months_from_paid_up(entity, lifecycle):
    c = lifecycle
    assert chosen(entity, months_outstanding="1") == {c["ends_in_1"]}
    assert chosen(entity, months_outstanding="2") == {c["ends_in_1"]}
    assert chosen(entity, months_outstanding="3") == {c["ends_in_1"], c["ends_in_3"]}
    assert chosen(entity, months_outstanding="all") == {c["ends_in_1"], c["ends_in_3"], c["ends_later"]}


def test_both_set_keep_the_clients_of_either(entity, lifecycle):
    c = lifecycle
    assert chosen(entity, paid_from="2026-02-01", paid_to="2026-02-28", months_outstanding="1") == {
        c["paid_feb"], c["ends_in_1"]}
    assert chosen(entity, paid_from="2026-01-01", paid_to="2026-01-31", months_outstanding="all") == {
        c["paid_jan"], c["ends_in_1"], c["ends_in_3"], c["ends_later"]}


def test_neither_set_keeps_everyone(entity, lifecycle):
    assert chosen(entity) == set(lifecycle.values())


def test_a_client_paid_up_but_borrowing_again_is_not_totally_paid(entity, book, lifecycle):
    again = Client.objects.get(pk=lifecycle["paid_feb"])
    book.loan(again, instalments=3, disbursed_on=dt.date(2026, 3, 1))
    assert chosen(entity, paid_from="2026-02-01", paid_to="2026-02-28") == set()


# --- consent --------------------------------------------------------------------------------------
def test_consent_needed_leaves_out_clients_without_it_and_the_entity_switch_ignores_it(entity, book):
    agreed = book.borrower(marketing_consent=True)
    not_agreed = book.borrower()
    dead = book.borrower(marketing_consent=True)
    Client.objects.filter(pk=dead.pk).update(status="deceased")
    assert chosen(entity) == {agreed.pk}
    Entity.objects.filter(pk=entity.pk).update(marketing_consent_not_required=True)
    entity.refresh_from_db()
    assert chosen(entity) == {agreed.pk, not_agreed.pk}  # never the deceased, whatever the switch


# --- bad and contradictory filters ---------------------------------------------------------------
def test_each_bad_filter_is_an_error_naming_it(entity, other_entity, no_consent_needed):
    foreign = Branch.objects.create(entity=other_entity, code="X", name="Elsewhere")
    assert set(errors_of(entity, branch=foreign.pk)) == {"branch"}
    assert set(errors_of(entity, number_from="abc")) == {"number_from"}
    assert set(errors_of(entity, number_from=0)) == {"number_from"}
    assert set(errors_of(entity, client_status="sleeping")) == {"client_status"}
    assert set(errors_of(entity, created_from="03/04/2026")) == {"created_from"}
    assert set(errors_of(entity, months_outstanding="4")) == {"months_outstanding"}
    assert set(errors_of(entity, area="Nowhere")) == {"area"}
    assert set(errors_of(entity, overdues="sometimes")) == {"overdues"}
    assert set(errors_of(entity, colour="blue")) == {"colour"}
    assert set(errors_of(entity, created_to="9999-12-31")) == {"created_to"}


def test_contradictory_filters_are_errors_naming_the_field(entity, no_consent_needed):
    region = Region.objects.create(entity=entity, name="South")
    branch = entity.branches.first()
    state = employer(entity, "State")
    other = employer(entity, "Other")
    pay = paypoint_create(employer=other, actor=None, number="P9", name="Far")
    assert set(errors_of(entity, number_from=10, number_to=5)) == {"number_to"}
    assert set(errors_of(entity, created_from="2026-03-01", created_to="2026-02-01")) == {"created_to"}
    assert set(errors_of(entity, paid_from="2026-03-01")) == {"paid_to"}
    assert set(errors_of(entity, branch=branch.pk, region=region.pk)) == {"branch"}
    assert set(errors_of(entity, employer=state.pk, paypoint=pay.pk)) == {"paypoint"}
    assert set(errors_of(entity, employer=state.pk, employer_classification="mining")) == {"employer_classification"}
    assert set(errors_of(entity, employer=state.pk, economic_sector="mining")) == {"economic_sector"}
    assert set(errors_of(entity, overdues="only", paid_from="2026-01-01", paid_to="2026-01-31")) == {"overdues"}


# --- set-based -----------------------------------------------------------------------------------
def _queries(entity) -> int:
    with CaptureQueriesContext(connection) as ctx:
        list(dataset_rows(entity=entity, filters={"calculate_settlement": True, "months_outstanding": "all"},
                          as_of=TODAY, with_settlement=True))
    return len(ctx.captured_queries)


def test_the_data_set_reads_the_same_number_of_queries_for_one_client_or_many(entity, book, no_consent_needed):
    book.loan()
    one = _queries(entity)
    for _ in range(6):
        book.loan()
    assert _queries(entity) == one
