"""The per-number rate limit holds when one phone's messages are handled at the same moment by
several consumers (PostgreSQL: real parallel transactions)."""

import itertools
import threading

import pytest
from django.db import connection, connections

from imali.messaging.inbound import inbound_receive
from imali.smsbanking import services
from imali.smsbanking.models import BankingRequest

from .conftest import OTHER_PHONE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_only]

_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers, so two consumers never race; this proves the PostgreSQL path")


def test_parallel_messages_of_one_phone_stay_within_the_limit(bank, manager):
    services.settings_update(actor=manager, entity=bank, data={"requests_per_hour": 3})
    senders = 8
    barrier = threading.Barrier(senders)
    failures = []

    def send(n):
        try:
            barrier.wait(10)
            inbound_receive(gateway="race", provider_id=f"r{n}", number=OTHER_PHONE, text="HELP", to_address="Imali")
        except Exception as exc:  # reported below: any error fails the test
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send, args=(next(_ids),)) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    outcomes = list(BankingRequest.objects.filter(number=OTHER_PHONE).values_list("outcome", flat=True))
    assert len(outcomes) == senders
    assert outcomes.count("help") == 3
