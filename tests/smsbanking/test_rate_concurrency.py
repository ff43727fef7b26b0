"""The per-number rate limit holds when one phone's messages are handled at the same moment by
several consumers (PostgreSQL: real parallel transactions)."""

import itertools
import threading

import pytest
from django.db import connection, connections

from imali.messaging.inbound import inbound_receive
from imali.smsbanking import services
from imali.smsbanking.answering import Answerer
from imali.smsbanking.models import BankingRequest

from .conftest import OTHER_PHONE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres_only]

_ids = itertools.count(1)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite serialises writers, so two consumers never race; this proves the PostgreSQL path")


def test_parallel_messages_of_one_phone_stay_within_the_limit(bank, manager):
    """Eight messages of one phone answered by eight answering workers at the same moment, one
    message each."""
    services.settings_update(actor=manager, entity=bank, data={"requests_per_hour": 3})
    senders = 8
    for _ in range(senders):
        inbound_receive(gateway="race", provider_id=f"r{next(_ids)}", number=OTHER_PHONE, text="HELP", to_address="Imali")
    barrier = threading.Barrier(senders)
    failures = []

    def answer():
        try:
            barrier.wait(10)
            Answerer(batch=1, cache_seconds=0).step()
        except Exception as exc:  # reported below: any error fails the test
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=answer) for _ in range(senders)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures
    Answerer(cache_seconds=0).run_until_empty()  # a worker that found every row locked took none
    outcomes = list(BankingRequest.objects.filter(number=OTHER_PHONE).values_list("outcome", flat=True))
    assert len(outcomes) == senders
    assert outcomes.count("help") == 3
