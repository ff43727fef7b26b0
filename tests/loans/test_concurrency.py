"""Concurrent postings of one external reference: exactly one receipt stands."""

from __future__ import annotations

import datetime as dt
import threading
from decimal import Decimal as D

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, connections

from imali.loans import services
from imali.loans.models import Instalment, Receipt
from tests import factories
from tests.loans.conftest import make_loan


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_reference_posts_once():
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(("file:memorydb", ":memory:")):
        pytest.skip("in-memory SQLite cannot be shared between threads; covered on PostgreSQL and file SQLite")
    entity = factories.make_entity(country="ZA")
    user = factories.make_admin(entity=entity)
    user.disbursement_limit = D("100000")
    user.save()
    loans = [make_loan(entity, user=user) for _ in range(2)]
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def post(loan):
        try:
            barrier.wait()
            services.receipt_post(entity=entity, actor=user, loan=loan, amount="300", value_date=dt.date(2026, 1, 20),
                                  payback_type="debit_order", external_reference="DO-2026-01-20-1")
            outcomes.append("posted")
        except ValidationError as exc:
            outcomes.append(exc.error_dict["external_reference"][0].code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=(loans[i % 2],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["duplicate_reference"] * 3 + ["posted"]
    assert Receipt.objects.filter(external_reference="DO-2026-01-20-1").count() == 1
    assert sum(i.paid for i in Instalment.objects.filter(loan__in=loans)) == D("300")


@pytest.mark.django_db(transaction=True)
def test_concurrent_change_refunds_never_pay_out_more_than_is_available():
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(("file:memorydb", ":memory:")):
        pytest.skip("in-memory SQLite cannot be shared between threads; covered on PostgreSQL and file SQLite")
    from imali.loans.models import ChangeRefund, Loan

    entity = factories.make_entity(country="ZA")
    user = factories.make_admin(entity=entity)
    user.disbursement_limit = D("100000")
    user.save()
    loan = make_loan(entity, user=user)
    services.receipt_post(entity=entity, actor=user, loan=loan, amount="3015.00", value_date=dt.date(2026, 2, 20),
                          payback_type="eft")  # R2,715.00 owed: R300.00 change
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def refund():
        try:
            barrier.wait()
            services.change_refund(entity=entity, actor=user, loan=loan, amount="200", paid_on=dt.date(2026, 2, 21),
                                   method="cash", reason="Paid at the counter")
            outcomes.append("paid")
        except ValidationError as exc:
            outcomes.append(exc.error_dict["amount"][0].code)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=refund) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["over_change_available"] * 3 + ["paid"]
    assert ChangeRefund.objects.filter(loan=loan).count() == 1
    assert Loan.objects.get(pk=loan.pk).change_total == D("100.00")
