"""The loan's day numbers (disbursed_ord, paid_up_ord, last_receipt_ord), which the whole-book
figures group instead of the dates: every service that writes a date keeps its day number equal,
the migration fills them for loans already there, and the database refuses a paid-out loan
without an agreement day."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.db import IntegrityError, connection, transaction

from imali.loans import selectors, services
from imali.loans.models import DAY_NUMBER_FIELDS, Loan, LoanStatus
from tests.loans.conftest import make_borrower, make_loan, make_product

pytestmark = pytest.mark.django_db


def day_numbers(loan: Loan) -> dict:
    loan.refresh_from_db()
    return {ord_field: getattr(loan, ord_field) for ord_field in DAY_NUMBER_FIELDS.values()}


def dates_as_numbers(loan: Loan) -> dict:
    loan.refresh_from_db()
    return {ord_field: getattr(loan, date_field).toordinal() if getattr(loan, date_field) else None
            for date_field, ord_field in DAY_NUMBER_FIELDS.items()}


class _Editor:
    """What the migration's function uses of a schema editor (SQLite's refuses to open inside the
    test's transaction): the connection, name quoting and running SQL."""

    connection = connection

    @staticmethod
    def quote_name(name: str) -> str:
        return connection.ops.quote_name(name)

    @staticmethod
    def execute(sql: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(sql)


def test_disburse_receipts_reversal_and_settling_keep_the_day_numbers(entity, lender):
    loan = make_loan(entity, user=lender, principal="2000", instalments=3, disbursed_on=dt.date(2026, 1, 5))
    assert day_numbers(loan) == {"disbursed_ord": dt.date(2026, 1, 5).toordinal(), "paid_up_ord": None,
                                 "last_receipt_ord": None}

    first = services.receipt_post(entity=entity, actor=lender, loan=loan, amount="500", value_date=dt.date(2026, 2, 5),
                                  payback_type="eft")
    assert day_numbers(loan)["last_receipt_ord"] == dt.date(2026, 2, 5).toordinal()
    # An older value date than the last receipt's leaves the last receipt where it is.
    older = services.receipt_post(entity=entity, actor=lender, loan=loan, amount="10", value_date=dt.date(2026, 2, 1),
                                  payback_type="eft")
    assert day_numbers(loan)["last_receipt_ord"] == dt.date(2026, 2, 5).toordinal()

    # Settling: everything still owed, paid on a day, pays the loan up on that day.
    settle_on = dt.date(2026, 3, 10)
    owed = selectors.loan_outstanding(loan=Loan.objects.get(pk=loan.pk))
    settling = services.receipt_post(entity=entity, actor=lender, loan=Loan.objects.get(pk=loan.pk), amount=owed,
                                     value_date=settle_on, payback_type="eft")
    loan.refresh_from_db()
    assert loan.status == LoanStatus.PAID_UP
    assert day_numbers(loan) == {"disbursed_ord": dt.date(2026, 1, 5).toordinal(),
                                 "paid_up_ord": settle_on.toordinal(), "last_receipt_ord": settle_on.toordinal()}
    figures = selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=dt.date(2026, 4, 1))
    assert (figures.date_totally_paid, figures.last_receipt_date, figures.days_since_last_receipt) == (
        settle_on, settle_on, 22)

    # Reversing the settling receipt reopens the loan: no paid-up day, the last receipt the one before.
    services.receipt_reverse(receipt=settling, actor=lender, reason="Bounced")
    assert day_numbers(loan) == {"disbursed_ord": dt.date(2026, 1, 5).toordinal(), "paid_up_ord": None,
                                 "last_receipt_ord": dt.date(2026, 2, 5).toordinal()}
    services.receipt_reverse(receipt=first, actor=lender, reason="Bounced")
    assert day_numbers(loan)["last_receipt_ord"] == dt.date(2026, 2, 1).toordinal()
    services.receipt_reverse(receipt=older, actor=lender, reason="Bounced")
    assert day_numbers(loan)["last_receipt_ord"] is None
    assert day_numbers(loan) == dates_as_numbers(loan)
    figures = selectors.client_figures(entity=entity, client_id=loan.client_id, as_of=dt.date(2026, 4, 1))
    assert (figures.date_totally_paid, figures.last_receipt_date, figures.last_agreement_date) == (
        None, None, dt.date(2026, 1, 5))


def test_cancelled_loan_has_no_agreement_day(entity, lender):
    client, _ = make_borrower(entity)
    loan = services.loan_apply(entity=entity, actor=lender, client=client, product=make_product(entity, name="Short"),
                               principal="1000", instalments=2, applied_on=dt.date(2026, 1, 5))
    services.loan_cancel(loan=loan, actor=lender, reason="Client withdrew")
    assert day_numbers(loan) == {"disbursed_ord": None, "paid_up_ord": None, "last_receipt_ord": None}


def test_save_keeps_the_day_number_of_a_date_it_saves(entity, lender):
    loan = make_loan(entity, user=lender)
    loan.paid_up_on = dt.date(2026, 5, 1)
    loan.save(update_fields=["paid_up_on"])
    assert day_numbers(loan)["paid_up_ord"] == dt.date(2026, 5, 1).toordinal()


def test_a_paid_out_loan_without_an_agreement_day_is_refused(entity, lender):
    loan = make_loan(entity, user=lender)
    with pytest.raises(IntegrityError), transaction.atomic():
        Loan.objects.filter(pk=loan.pk).update(disbursed_ord=None)
    client, _ = make_borrower(entity)
    application = services.loan_apply(entity=entity, actor=lender, client=client, product=loan.product,
                                      principal="1000", instalments=2, applied_on=dt.date(2026, 1, 5))
    with pytest.raises(IntegrityError), transaction.atomic():
        Loan.objects.filter(pk=application.pk).update(disbursed_ord=dt.date(2026, 1, 5).toordinal())


def test_the_migration_fills_the_day_numbers_from_the_dates(entity, lender):
    loan = make_loan(entity, user=lender, disbursed_on=dt.date(2026, 1, 5))
    services.receipt_post(entity=entity, actor=lender, loan=loan, amount="300", value_date=dt.date(2026, 2, 28),
                          payback_type="eft")
    # Day numbers off by one, as if written before they were kept: the migration puts them right.
    Loan.objects.filter(pk=loan.pk).update(disbursed_ord=1, last_receipt_ord=2, paid_up_ord=3)
    migration = importlib.import_module("imali.loans.migrations.0009_loan_day_numbers")
    migration.fill_day_numbers(apps, _Editor())
    assert day_numbers(loan) == {"disbursed_ord": dt.date(2026, 1, 5).toordinal(), "paid_up_ord": None,
                                 "last_receipt_ord": dt.date(2026, 2, 28).toordinal()}


@pytest.mark.parametrize("packed", [True, False], ids=["packed key", "ids beyond the packed key"])
def test_latest_agreement_is_the_later_loan_of_the_latest_day(entity, lender, monkeypatch, packed):
    if not packed:
        # As for a book whose product ids do not fit the packed key: the latest loan id, then its product.
        monkeypatch.setattr(selectors, "_PACKED_PRODUCT_IDS", 0)
    client, _ = make_borrower(entity)
    older = make_product(entity, name="Older")
    first, second = make_product(entity, name="First of the day"), make_product(entity, name="Second of the day")
    make_loan(entity, user=lender, product=older, client=client, disbursed_on=dt.date(2026, 1, 5))
    make_loan(entity, user=lender, product=second, client=client, disbursed_on=dt.date(2026, 2, 2))
    make_loan(entity, user=lender, product=first, client=client, disbursed_on=dt.date(2026, 2, 2))
    figures = selectors.portfolio_snapshot(entity=entity, as_of=dt.date(2026, 3, 4))[client.pk]
    assert (figures.last_agreement_date, figures.last_agreement_product, figures.days_since_last_loan) == (
        dt.date(2026, 2, 2), "First of the day", 30)
    assert figures.open_loans == 3
