"""The same TransID from two confirmation callbacks at the same moment posts one receipt: the
unique constraint on (setup, provider transaction id) decides, on PostgreSQL's real concurrency."""

from __future__ import annotations

import threading
import zoneinfo

import pytest
from django.db import connection, connections
from django.utils import timezone

from imali.loans.models import Receipt
from imali.mobilemoney.models import ProviderTransaction
from imali.mobilemoney.services import mpesa_confirm

from .conftest import mpesa_setup, open_loan

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_only]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers, so two callbacks never race; this proves the PostgreSQL path")


def test_same_trans_id_from_two_callbacks_at_once_posts_one_receipt(entity, lender_user, mpesa_peer):
    setup = mpesa_setup(entity, lender_user, mpesa_peer, "http://127.0.0.1:1")
    loan = open_loan(entity, lender_user)
    now = timezone.now().astimezone(zoneinfo.ZoneInfo(entity.time_zone))
    body = {"TransactionType": "Pay Bill", "TransID": "RACE000001", "TransTime": now.strftime("%Y%m%d%H%M%S"), "TransAmount": "25.00",
            "BusinessShortCode": setup.short_code, "BillRefNumber": f"L{loan.pk}", "MSISDN": "27821234567",
            "FirstName": "A", "MiddleName": "", "LastName": "B"}
    for round_ in range(5):
        body["TransID"] = f"RACE00000{round_}"
        barrier = threading.Barrier(2)
        results, failures = [], []

        def confirm(barrier=barrier, results=results, failures=failures):
            try:
                barrier.wait(5)
                results.append(mpesa_confirm(setup=setup, body=dict(body))[1])
            except Exception as exc:  # reported below: any error fails the test
                failures.append(exc)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=confirm) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert not failures, failures
        assert sorted(results) == [False, True]
        assert Receipt.objects.filter(external_reference=body["TransID"]).count() == 1
        assert ProviderTransaction.objects.filter(provider_transaction_id=body["TransID"]).count() == 1
