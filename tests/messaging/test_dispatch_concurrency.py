"""Several consumers on one outbox, and receipts applied once each rather than re-run by every
consumer on every batch."""

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from imali.messaging.adapters.base import Receipt
from imali.messaging.credits import credits_assign
from imali.messaging.dispatch import (
    Dispatcher,
    DispatchPolicy,
    receipts_record,
    transports_from_gateways,
)
from imali.messaging.models import DeliveryReport, Gateway, OutboxMessage
from imali.messaging.services import BulkRecipient, message_enqueue, messages_enqueue_bulk
from imali.peers.smsc import SmscConfig, run_in_thread
from tests import factories

ROOT = Path(__file__).resolve().parents[2]


def _read_until(process: subprocess.Popen, marker: str, *, seconds: float) -> str:
    """The process's output up to and including the first line holding `marker`."""
    deadline = time.monotonic() + seconds
    lines = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break  # the process ended before it got there
        lines.append(line)
        if marker in line:
            return "".join(lines)
    raise AssertionError(f"no {marker!r} within {seconds} s: {''.join(lines)}")


@pytest.fixture
def smsc():
    peer = run_in_thread(SmscConfig())
    yield peer
    peer.stop()


def test_a_pass_applies_the_receipts_it_received_and_no_others(funded, smsc):
    gateway = Gateway.objects.create(name="local", host="127.0.0.1", port=smsc.port, system_id="imali", password="secret")
    # A receipt stored while another consumer was recording its submission: neither applied it.
    raced = message_enqueue(entity=funded, number="+27829990000", text="Raced", message_type="new_loan",
                            idempotency_key="raced")
    OutboxMessage.objects.filter(pk=raced.pk).update(status="submitted", gateway="local", provider_message_id="raced-1")
    receipts_record([Receipt("local", "raced-1", "DELIVRD")])
    # And many receipts for messages this database never sent (another system on the same account).
    receipts_record([Receipt("local", f"other-{i}", "DELIVRD") for i in range(300)])
    for i in range(10):
        message_enqueue(entity=funded, number=f"+2782000000{i}", text="Hello", message_type="new_loan",
                        idempotency_key=f"m{i}")
    transports = transports_from_gateways([gateway])
    try:
        assert transports["local"].wait_bound(5)
        dispatcher = Dispatcher(transports, DispatchPolicy(batch=50))
        with CaptureQueriesContext(connection) as queries:
            # Until the ten are delivered (the raced message waits for the sweep, so never idle),
            # not for a fixed 3 s that a loaded machine may need more than.
            dispatcher.run(stop=lambda: OutboxMessage.objects.filter(status="delivered").count() >= 10,
                           max_seconds=60, idle_sleep=0.02)
    finally:
        for t in transports.values():
            t.close()
    assert OutboxMessage.objects.filter(status="delivered").count() == 10
    # No pass went over the whole pending set: each receipt statement names the receipts it applies
    # (in a list, or in the arrays the receipts just taken in are stored and applied from).
    receipt_writes = [q["sql"] for q in queries.captured_queries
                      if q["sql"].startswith(("UPDATE", "WITH")) and DeliveryReport._meta.db_table in q["sql"]]
    assert receipt_writes and all("provider_message_id IN" in sql or "unnest(" in sql for sql in receipt_writes)
    assert OutboxMessage.objects.get(pk=raced.pk).status == "submitted"
    # The sweep, now and then, is the safety net for the race.
    dispatcher.sweep()
    assert OutboxMessage.objects.get(pk=raced.pk).status == "delivered"
    assert DeliveryReport.objects.filter(applied=False).count() == 300


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_three_consumer_processes_share_one_outbox_without_duplicates():
    # PostgreSQL only: concurrent consumers rely on FOR UPDATE SKIP LOCKED to claim disjoint rows;
    # SQLite serialises writers, so there the test would prove nothing about concurrency.
    if connection.vendor != "postgresql":
        pytest.skip("concurrent consumers are exercised on PostgreSQL (SQLite serialises writers by design)")
    count = 900
    entity = factories.make_entity()
    operator = factories.make_operator()
    credits_assign(actor=operator, entity=entity, channel="sms", amount=count)
    peer = run_in_thread(SmscConfig())
    procs = []
    try:
        Gateway.objects.create(name="local", host="127.0.0.1", port=peer.port, system_id="imali", password="secret",
                               window=20)
        messages_enqueue_bulk(entity=entity, actor=operator, message_type="arrears", text="Hello from three consumers",
                              recipients=[BulkRecipient(f"c{i}", f"+2782{i:07d}") for i in range(count)])
        # Held back until every consumer is up: a consumer that starts late on a loaded machine would
        # otherwise find the work done by the other two, and "all three took part" would be luck.
        held = OutboxMessage.objects.filter(entity=entity)
        held.update(next_attempt_at=timezone.now() + dt.timedelta(hours=1))
        db = connection.settings_dict
        url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(ROOT / "src")}
        for _ in range(3):
            procs.append(subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), "messaging_dispatch", "--until-idle", "--max-seconds", "120",
                 "--backoff-base", "0.05"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True))
        started = [_read_until(p, "Dispatching through", seconds=180) for p in procs]
        held.update(next_attempt_at=timezone.now())
        outputs = [head + p.communicate(timeout=150)[0] for head, p in zip(started, procs, strict=True)]
        assert [p.returncode for p in procs] == [0, 0, 0], outputs
        by_status = dict(OutboxMessage.objects.filter(entity=entity).values("status").annotate(n=Count("id"))
                         .values_list("status", "n"))
        assert by_status == {"delivered": count}
        accepted = peer.call(lambda: [number for _, number in peer.peer.accepted_parts])
        # No kill here, so no window for a duplicate: every message submitted exactly once.
        assert len(accepted) == len(set(accepted)) == count
        # All three took part.
        assert all("'submitted': " in out for out in outputs), outputs
        print(f"\n{count} messages by 3 consumers: " + "; ".join(o.strip().splitlines()[-1] for o in outputs))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        peer.stop()
