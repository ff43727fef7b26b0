"""Receipts taken on a receiver bind apart from the submitting path (the default for SMPP
gateways: transmitter + receiver): applied in bulk, once each, also when a receipt overtakes the
record of its submission and when the consumer dies between submitting and recording. Real SMPP
against the local SMSC on 127.0.0.1, bounded in time."""

import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imali.messaging.dispatch import (
    Dispatcher,
    DispatchPolicy,
    Receiver,
    claim_batch,
    transports_from_gateways,
)
from imali.messaging.models import BindMode, DeliveryReport, Gateway, OutboxMessage
from imali.messaging.services import message_enqueue
from imali.peers.smsc import SmscConfig, run_in_thread

OUTBOX = OutboxMessage._meta.db_table
REPORTS = DeliveryReport._meta.db_table


@pytest.fixture
def smsc():
    peer = run_in_thread(SmscConfig())
    yield peer
    peer.stop()


@pytest.fixture
def split_transports(smsc):
    """The dispatcher's transports (transmitter only) and the receiver's (receiver only), as
    `messaging_dispatch` and the receiver process it starts open them."""
    gateway = Gateway.objects.create(name="local", host="127.0.0.1", port=smsc.port, system_id="imali", password="secret")
    assert gateway.bind_mode == BindMode.TRANSMITTER_RECEIVER  # the default
    sending = transports_from_gateways([gateway], role="send")
    receiving = transports_from_gateways([gateway], role="receive")
    yield sending, receiving
    for t in [*sending.values(), *receiving.values()]:
        t.close()


def _enqueue(entity, count, prefix="m"):
    return [message_enqueue(entity=entity, number=f"+2782{i:07d}", text="Your loan is approved", message_type="new_loan",
                            idempotency_key=f"{prefix}{i}").pk for i in range(count)]


def _until(predicate, receiver, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        receiver.step()
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _statuses(ids):
    return list(OutboxMessage.objects.filter(pk__in=ids).order_by("pk").values_list("status", flat=True))


def test_the_receiver_bind_applies_receipts_in_bulk_off_the_submitting_path(funded, smsc, split_transports):
    sending, receiving = split_transports
    assert sending["local"].wait_bound(5) and receiving["local"].wait_bound(5)
    assert (smsc.peer.stats["binds_tx"], smsc.peer.stats["binds_rx"], smsc.peer.stats["binds_trx"]) == (1, 1, 0)
    ids = _enqueue(funded, 200)
    dispatcher = Dispatcher(sending, DispatchPolicy(batch=50))
    with CaptureQueriesContext(connection) as dispatching:
        dispatcher.run(until_empty=True, idle_sleep=0)
    assert set(_statuses(ids)) == {"submitted"}
    # The dispatcher neither received a receipt nor looked one up: that is the receiver's work.
    # (PostgreSQL: the statistics check names the table among its parameters; it reads no receipt.)
    receipt_queries = [q["sql"] for q in dispatching.captured_queries
                       if REPORTS in q["sql"] and "pg_stat_user_tables" not in q["sql"] and not q["sql"].startswith("ANALYZE")]
    assert receipt_queries == []
    receiver = Receiver(receiving)
    with CaptureQueriesContext(connection) as receiving_queries:
        assert _until(lambda: set(_statuses(ids)) == {"delivered"}, receiver)
    assert receiver.counters["receipts"] == 200 and receiver.counters["receipts_applied"] == 200
    # In bulk: a statement per pass (and per 500 receipts), not one per message.
    # (PostgreSQL: the receipts are stored and applied in one statement, UPDATE inside a WITH.)
    outbox_updates = [q for q in receiving_queries.captured_queries if q["sql"].startswith(f"UPDATE {OUTBOX}")
                      or q["sql"].startswith(f'UPDATE "{OUTBOX}"')
                      or (q["sql"].startswith("WITH") and f"UPDATE {OUTBOX}" in q["sql"])]
    assert 1 <= len(outbox_updates) <= 5, len(outbox_updates)
    assert DeliveryReport.objects.filter(applied=True).count() == 200


def test_a_receipt_that_overtakes_its_record_is_applied_once_when_the_record_lands(funded, smsc, split_transports):
    sending, receiving = split_transports
    assert sending["local"].wait_bound(5) and receiving["local"].wait_bound(5)
    ids = _enqueue(funded, 3)
    dispatcher = Dispatcher(sending, DispatchPolicy(batch=10))
    receiver = Receiver(receiving)
    claimed = claim_batch(limit=10, lease_seconds=60)
    results = dispatcher._submit(claimed)()  # accepted by the SMSC, not recorded yet
    # The receipts reach the receiver first: stored, matching nothing yet, kept for another try.
    assert _until(lambda: receiver.counters["receipts"] == 3, receiver)
    assert receiver.waiting == 3 and receiver.counters["receipts_applied"] == 0
    assert set(_statuses(ids)) == {"queued"} and DeliveryReport.objects.filter(applied=False).count() == 3
    dispatcher.record(claimed, results)
    assert set(_statuses(ids)) == {"submitted"}
    assert _until(lambda: set(_statuses(ids)) == {"delivered"}, receiver)
    assert receiver.counters["receipts_applied"] == 3 and receiver.waiting == 0
    finished = list(OutboxMessage.objects.filter(pk__in=ids).order_by("pk").values_list("finished_at", flat=True))
    # Once: the sweeps and more passes find nothing left to apply.
    receiver.sweep()
    dispatcher.sweep()
    receiver.step()
    assert receiver.counters["receipts_applied"] == 3 and dispatcher.counters["receipts_applied"] == 0
    assert list(OutboxMessage.objects.filter(pk__in=ids).order_by("pk").values_list("finished_at", flat=True)) == finished
    assert DeliveryReport.objects.filter(applied=False).count() == 0


def test_a_consumer_dying_between_submit_and_record(funded, smsc, split_transports):
    sending, receiving = split_transports
    assert sending["local"].wait_bound(5) and receiving["local"].wait_bound(5)
    ids = _enqueue(funded, 2)
    receiver = Receiver(receiving, retry_seconds=1.0)
    claimed = claim_batch(limit=10, lease_seconds=0.5)
    Dispatcher(sending, DispatchPolicy(batch=10))._submit(claimed)()  # submitted; the consumer dies here
    assert _until(lambda: receiver.counters["receipts"] == 2, receiver)
    # Nothing recorded will ever match those receipts: the receiver gives up retrying them after
    # `retry_seconds` (the sweep still looks, and finds nothing to apply either).
    assert _until(lambda: receiver.waiting == 0, receiver, seconds=30)
    assert set(_statuses(ids)) == {"queued"}
    # The lease lapses; another consumer claims the messages and sends them again (the kill
    # window's duplicate), and their new receipts are applied.
    time.sleep(0.6)
    Dispatcher(sending, DispatchPolicy(batch=10)).run(until_empty=True, idle_sleep=0)
    assert _until(lambda: set(_statuses(ids)) == {"delivered"}, receiver)
    accepted = smsc.call(lambda: [number for _, number in smsc.peer.accepted_parts])
    assert sorted(accepted) == sorted(["+27820000000", "+27820000001"] * 2)
    assert receiver.counters["receipts_applied"] == 2
    assert DeliveryReport.objects.filter(applied=True).count() == 2
    # The first sending's receipts stay pending, matched to nothing: a sweep changes nothing.
    receiver.sweep()
    assert receiver.counters["receipts_applied"] == 2 and DeliveryReport.objects.filter(applied=False).count() == 2
    assert set(_statuses(ids)) == {"delivered"}


def test_transceiver_gateways_keep_receipts_in_band(funded, smsc):
    gateway = Gateway.objects.create(name="one-session", host="127.0.0.1", port=smsc.port, system_id="imali",
                                     password="secret", bind_mode=BindMode.TRANSCEIVER)
    # The receiver process has nothing to do for them; the dispatcher binds one session.
    assert transports_from_gateways([gateway], role="receive") == {}
    transports = transports_from_gateways([gateway], role="send")
    try:
        assert transports["one-session"].wait_bound(5)
        ids = _enqueue(funded, 5)
        Dispatcher(transports, DispatchPolicy(batch=10)).run(until_idle=True, max_seconds=20, idle_sleep=0.02)
        assert set(_statuses(ids)) == {"delivered"}
        assert smsc.peer.stats["binds_trx"] == 1 and not smsc.peer.stats["binds_tx"]
    finally:
        for t in transports.values():
            t.close()
