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
