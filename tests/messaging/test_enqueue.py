import datetime as dt
import threading
import time

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction

from imali.clients.models import Client
from imali.core.models import AuditAction, AuditEntry
from imali.messaging.credits import credit_balance, credits_assign
from imali.messaging.models import (
    CreditEntry,
    CreditReservation,
    OutboxMessage,
    OutboxStatus,
    Priority,
    ProcessLog,
)
from imali.messaging.selectors import outbox_claim_order
from imali.messaging.services import (
    BulkRecipient,
    client_recipients,
    message_enqueue,
    messages_enqueue_bulk,
    single_sms_send,
)
from tests import factories


def test_single_enqueue_debits_segments_and_is_idempotent(funded, sms_client):
    m = message_enqueue(entity=funded, number="082 123 4567", text="a" * 161, message_type="otp",
                        idempotency_key="otp:loan1", client=sms_client)
    assert m.number == "+27821234567" and m.segments == 2 and m.priority == Priority.OTP
    assert m.status == OutboxStatus.QUEUED and m.country == "ZA"
    again = message_enqueue(entity=funded, number="0821234567", text="a" * 161, message_type="otp", idempotency_key="otp:loan1")
    assert again.pk == m.pk
    assert credit_balance(entity=funded) == 998


def test_enqueue_rolls_back_with_the_caller(funded):
    with pytest.raises(RuntimeError), transaction.atomic():
        message_enqueue(entity=funded, number="0821234567", text="hi", message_type="new_loan", idempotency_key="k1")
        raise RuntimeError("the event failed")
    assert not OutboxMessage.objects.exists()
    assert credit_balance(entity=funded) == 1000


def test_enqueue_names_bad_number_and_refuses_without_credits(entity):
    with pytest.raises(ValidationError) as exc:
        message_enqueue(entity=entity, number="123", text="hi", message_type="otp", idempotency_key="k")
    assert "number" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        message_enqueue(entity=entity, number="0821234567", text="hi", message_type="otp", idempotency_key="k")
    assert exc.value.error_dict["credits"][0].code == "insufficient_credits"
    assert not OutboxMessage.objects.exists()


def test_single_sms_by_a_user(funded, sms_client):
    user = factories.make_admin(entity=funded)
    m = single_sms_send(actor=user, entity=funded, client=sms_client, text="Please call us", idempotency_key="ui:1")
    assert m.created_by == user and m.client == sms_client


def test_priority_order_otp_transactional_bulk(funded):
    message_enqueue(entity=funded, number="0821234561", text="m", message_type="marketing", idempotency_key="a")
    message_enqueue(entity=funded, number="0821234562", text="n", message_type="new_loan", idempotency_key="b")
    message_enqueue(entity=funded, number="0821234563", text="o", message_type="otp", idempotency_key="c")
    assert [m.message_type for m in outbox_claim_order()] == ["otp", "new_loan", "marketing"]


def _make_clients(entity, n):
    branch = entity.branches.first()
    Client.objects.bulk_create([
        Client(entity=entity, branch=branch, number=1000 + i, full_names="Lerato", name="Lerato", surname=f"S{i}",
               id_number=f"X{i}", id_type="passport", gender="F", date_of_birth="1990-01-01",
               cellphone=f"+2782{i:07d}" if i % 10 else "")
        for i in range(n)
    ])


def test_bulk_enqueue_one_debit_rerun_adds_nothing(funded, admin_user):
    _make_clients(funded, 50)
    Client.objects.update(marketing_consent=True)  # birthday greetings are direct marketing (consent_required)
    text = "Dear {^Client Name^} {^Client Surname^} happy birthday from {^Legal Entity Name^}"
    run = lambda: messages_enqueue_bulk(entity=funded, actor=admin_user, message_type="birthday", text=text,  # noqa: E731
                                        recipients=client_recipients(entity=funded, clients=Client.objects.all(),
                                                                     event="2026-11-25", message_type="birthday"),
                                        criteria={"date": "2026-11-25"}, now=tuesday_morning)
    # Birthday greetings are direct marketing: sent inside the CPA hours (a Tuesday morning here).
    tuesday_morning = dt.datetime(2026, 11, 24, 8, 0, tzinfo=dt.UTC)
    log = run()
    assert log.queued == 45 and log.skipped == 5 and log.skipped_reasons == {"no_cellphone": 5}
    assert log.credits == 45
    assert CreditEntry.objects.filter(entity=funded, kind="debit").count() == 1
    assert credit_balance(entity=funded) == 955
    m = OutboxMessage.objects.get(client__surname="S1")
    assert m.text == f"Dear Lerato S1 happy birthday from {funded.name} - Reply STOP to opt out" and m.priority == Priority.BULK
    assert m.created_at is not None and m.next_attempt_at == m.created_at
    second = run()
    assert second.queued == 0 and second.credits == 0 and second.skipped_reasons == {"no_cellphone": 5, "already_queued": 45}
    assert OutboxMessage.objects.count() == 45 and credit_balance(entity=funded) == 955
    assert ProcessLog.objects.filter(entity=funded).count() == 2


def test_bulk_refused_without_credits_writes_nothing(entity, operator, admin_user):
    credits_assign(actor=operator, entity=entity, channel="sms", amount=3)
    recipients = [BulkRecipient(f"k{i}", f"+2782000000{i}", {}) for i in range(5)]
    with pytest.raises(ValidationError):
        messages_enqueue_bulk(entity=entity, actor=admin_user, message_type="crm", text="Hello there", recipients=recipients)
    assert not OutboxMessage.objects.exists() and not ProcessLog.objects.exists()
    assert credit_balance(entity=entity) == 3


def test_bulk_counts_render_failures_and_bad_numbers(funded, admin_user):
    recipients = [
        BulkRecipient("a", "+27820000001", {"Client Name": "A"}),
        BulkRecipient("b", "0820000002", {"Client Name": "B"}),
        BulkRecipient("c", "+27820000003", {}),
    ]
    log = messages_enqueue_bulk(entity=funded, actor=admin_user, message_type="arrears", text="Hi {^Client Name^}",
                                recipients=recipients)
    assert log.queued == 1 and log.skipped_reasons == {"invalid_number": 1, "render_failed": 1}
    assert "Client Name" in log.errors[0]


@pytest.mark.django_db(transaction=True)
def test_eight_concurrent_bulk_enqueues_never_overspend():
    if connection.vendor != "postgresql":
        pytest.skip("row-lock concurrency is exercised on PostgreSQL (SQLite serialises writers by design)")
    entity = factories.make_entity()
    operator = factories.make_operator()
    credits_assign(actor=operator, entity=entity, channel="sms", amount=100)
    outcomes = []

    def run(i):
        try:
            recipients = [BulkRecipient(f"t{i}:{j}", f"+2782{i:02d}{j:05d}", {}) for j in range(30)]
            log = messages_enqueue_bulk(entity=entity, actor=None, message_type="crm", text="Hello", recipients=recipients)
            outcomes.append(log.queued)
        except ValidationError as exc:
            outcomes.append(exc.error_dict["credits"][0].code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(map(str, outcomes)) == ["30"] * 3 + ["insufficient_credits"] * 5
    assert credit_balance(entity=entity) == 10
    assert OutboxMessage.objects.filter(entity=entity).count() == 90
    entries = list(CreditEntry.objects.filter(entity=entity).order_by("id").values_list("amount", "balance_after"))
    running = 0
    for amount, after in entries:
        running += amount
        assert after == running >= 0


def test_cancel_a_queued_message_refunds(funded, admin_user):
    from imali.messaging.services import message_cancel

    m = message_enqueue(entity=funded, number="0821234567", text="a" * 200, message_type="crm", idempotency_key="c1")
    assert credit_balance(entity=funded) == 998
    message_cancel(actor=admin_user, entity=funded, message_id=m.pk)
    m.refresh_from_db()
    assert m.status == OutboxStatus.CANCELLED and credit_balance(entity=funded) == 1000
    with pytest.raises(ValidationError):
        message_cancel(actor=admin_user, entity=funded, message_id=m.pk)


def test_cancel_refuses_another_entitys_message(funded, other_entity, operator):
    from imali.messaging.services import message_cancel

    m = message_enqueue(entity=funded, number="0821234567", text="hi", message_type="crm", idempotency_key="c2")
    stranger = factories.make_admin(entity=other_entity)
    with pytest.raises(ValidationError):
        message_cancel(actor=stranger, entity=other_entity, message_id=m.pk)
    m.refresh_from_db()
    assert m.status == OutboxStatus.QUEUED


def test_bulk_rerun_with_some_new_keys_queues_and_charges_only_those(funded, admin_user):
    first = [BulkRecipient(f"p{i}", f"+2782000{i:04d}") for i in range(5)]
    messages_enqueue_bulk(entity=funded, actor=admin_user, message_type="crm", text="Hello", recipients=first)
    second = [BulkRecipient(f"p{i}", f"+2782000{i:04d}") for i in range(8)]
    log = messages_enqueue_bulk(entity=funded, actor=admin_user, message_type="crm", text="Hello", recipients=second)
    assert (log.queued, log.credits, log.skipped_reasons) == (3, 3, {"already_queued": 5})
    assert OutboxMessage.objects.filter(entity=funded).count() == 8 and credit_balance(entity=funded) == 992


def _ledger_is_exact(entity):
    """Every entry's balance is the running sum, and what the ledger spent on messages net of
    refunds is the credits of the outbox rows (nothing dispatched in these tests)."""
    from django.db.models import Sum

    running = 0
    for amount, after in CreditEntry.objects.filter(entity=entity).order_by("id").values_list("amount", "balance_after"):
        running += amount
        assert after == running >= 0
    spent = -(CreditEntry.objects.filter(entity=entity, kind__in=["debit", "refund"]).aggregate(t=Sum("amount"))["t"] or 0)
    assert spent == (OutboxMessage.objects.filter(entity=entity).aggregate(t=Sum("credits"))["t"] or 0)
    assert not CreditReservation.objects.filter(entity=entity, status="open").exists()
    return running


@pytest.mark.django_db(transaction=True)
def test_bulk_chunk_failing_on_a_constraint_keeps_what_was_written_refunds_the_rest_and_a_rerun_completes():
    # A recipient whose client is gone fails its chunk at commit on the real foreign key
    # (deferred to commit on both databases): chunk 1 stays, chunk 2 rolls back, the run stops.
    entity, operator = factories.make_entity(), factories.make_operator()
    credits_assign(actor=operator, entity=entity, channel="sms", amount=1000)
    missing_client = (Client.objects.order_by("-id").values_list("id", flat=True).first() or 0) + 1000

    def recipients(broken):
        return [BulkRecipient(f"f{i}", f"+2782{i:07d}", client_id=missing_client if (broken and i == 15) else None)
                for i in range(30)]

    with pytest.raises(IntegrityError):
        messages_enqueue_bulk(entity=entity, actor=None, message_type="crm", text="Hello", recipients=recipients(True),
                              chunk_rows=10)
    log = ProcessLog.objects.get(entity=entity)
    assert OutboxMessage.objects.filter(entity=entity).count() == 10 == log.queued and log.credits == 10
    assert log.finished_at is not None and "Writing stopped at chunk 2" in log.errors[-1]
    reservation = CreditReservation.objects.get(process=log)
    assert (reservation.amount, reservation.used, reservation.refunded, reservation.settled_by) == (30, 10, 20, "failed run")
    assert _ledger_is_exact(entity) == 990

    rerun = messages_enqueue_bulk(entity=entity, actor=None, message_type="crm", text="Hello", recipients=recipients(False),
                                  chunk_rows=10)
    assert (rerun.queued, rerun.credits, rerun.skipped_reasons) == (20, 20, {"already_queued": 10})
    again = messages_enqueue_bulk(entity=entity, actor=None, message_type="crm", text="Hello", recipients=recipients(False),
                                  chunk_rows=10)
    assert (again.queued, again.credits) == (0, 0)
    assert OutboxMessage.objects.filter(entity=entity).count() == 30
    assert _ledger_is_exact(entity) == 970


def test_rerun_of_a_queued_batch_is_not_refused_when_credits_are_short(funded, admin_user):
    # 1,000 credits: 600 queued leaves 400, less than the 700 a rerun with 100 new keys would
    # reserve in full; it is costed again without the keys already queued and pays for 100.
    first = [BulkRecipient(f"s{i}", f"+2782{i:07d}") for i in range(600)]
    messages_enqueue_bulk(entity=funded, actor=admin_user, message_type="crm", text="Hello", recipients=first)
    same = messages_enqueue_bulk(entity=funded, actor=admin_user, message_type="crm", text="Hello", recipients=first)
    assert (same.queued, same.credits, same.skipped_reasons) == (0, 0, {"already_queued": 600})
    more = [BulkRecipient(f"s{i}", f"+2782{i:07d}") for i in range(700)]
    log = messages_enqueue_bulk(entity=funded, actor=admin_user, message_type="crm", text="Hello", recipients=more)
    assert (log.queued, log.credits, log.skipped_reasons) == (100, 100, {"already_queued": 600})
    assert _ledger_is_exact(funded) == 300


def test_bulk_reservation_and_settlement_are_audited(funded, admin_user):
    recipients = [BulkRecipient(f"a{i}", f"+2782{i:07d}") for i in range(3)]
    log = messages_enqueue_bulk(entity=funded, actor=admin_user, message_type="crm", text="Hello", recipients=recipients)
    entries = AuditEntry.objects.filter(action=AuditAction.BULK_SEND_QUEUED, entity=funded).order_by("id")
    assert [e.after["stage"] for e in entries] == ["reserved", "settled"]
    assert entries[0].after["credits_reserved"] == 3 and entries[1].after["credits"] == 3
    assert all(e.actor == admin_user and e.object_id == str(log.pk) for e in entries)


@pytest.mark.postgres_only
@pytest.mark.django_db(transaction=True)
def test_otp_commits_while_a_large_bulk_enqueue_of_the_same_entity_is_still_writing():
    if connection.vendor != "postgresql":
        pytest.skip("the SQLite test database is in memory (shared cache), where a second writer fails at once "
                    "instead of waiting its turn; SQLite's figure is measured on a file by benchmarks/enqueue_bench.py")
    entity, operator = factories.make_entity(), factories.make_operator()
    credits_assign(actor=operator, entity=entity, channel="sms", amount=200_000)
    count = 100_000
    failures = []

    def bulk():
        try:
            messages_enqueue_bulk(entity=entity, actor=None, message_type="crm", text="Hello {^Client Name^}",
                                  recipients=[BulkRecipient(f"b{i}", f"+2782{i:07d}", {"Client Name": "Lerato"})
                                              for i in range(count)])
        except Exception as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            connection.close()

    worker = threading.Thread(target=bulk)
    worker.start()
    try:
        # Wait (bounded) for the bulk's first rows to be committed: the run is writing.
        deadline = time.monotonic() + 120
        while not OutboxMessage.objects.filter(entity=entity, message_type="crm").exists():
            assert time.monotonic() < deadline and worker.is_alive() and not failures, failures
            time.sleep(0.01)
        with transaction.atomic():
            otp = message_enqueue(entity=entity, number="0829999999", text="Your code is 123456", message_type="otp",
                                  idempotency_key="otp:during-bulk")
        # Committed, and the bulk had not finished: its process log is still open and rows are
        # still to come. Holding the ledger lock for the whole write, the OTP would have waited
        # for the bulk to commit and found it finished.
        assert OutboxMessage.objects.filter(pk=otp.pk).exists()
        log = ProcessLog.objects.get(entity=entity)
        assert log.finished_at is None
        assert OutboxMessage.objects.filter(entity=entity, message_type="crm").count() < count
    finally:
        worker.join(timeout=300)
    assert not failures, failures
    log.refresh_from_db()
    assert log.queued == count and log.finished_at is not None
    assert _ledger_is_exact(entity) == 200_000 - count - 1


KILL_SEED = """
from imali.tenancy.models import User
from imali.tenancy.services import entity_create
from imali.messaging.credits import credits_assign
op = User.objects.create(username="op", is_operator=True)
e = entity_create(actor=op, data={"name": "Kill bulk", "code": "killbulk", "country": "ZA", "modules": ["maxsms"]})
credits_assign(actor=op, entity=e, channel="sms", amount=100000)
"""
KILL_BULK = """
from imali.tenancy.models import Entity
from imali.messaging.services import BulkRecipient, messages_enqueue_bulk
messages_enqueue_bulk(entity=Entity.objects.get(code="killbulk"), actor=None, message_type="arrears", text="Hello {^Client Name^}",
                      recipients=[BulkRecipient(f"k{i}", f"+2782{i:07d}", {"Client Name": "Sipho"}) for i in range(50000)],
                      chunk_rows=500)
"""
KILL_SWEEP = """
import datetime as dt
from imali.messaging.services import bulk_reservations_settle_stale
print("settled", bulk_reservations_settle_stale(stale_after=dt.timedelta(0)))
"""


def test_bulk_run_killed_mid_write_leaves_the_ledger_exact_after_rerun_and_sweeper(tmp_path, migrated_sqlite_file):
    """A real process killed with SIGKILL while it writes its chunks: its reservation stays open
    (nothing settles it), the rerun writes only the rest and pays only for it, and the sweeper
    gives back the dead run's unused credits. Throw-away SQLite file; bounded in time."""
    import os
    import signal
    import sqlite3
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    db_file = tmp_path / "killbulk.sqlite3"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(IMALI_VAR_DIR=str(tmp_path), IMALI_SQLITE_PATH=str(db_file), PYTHONPATH=str(root / "src"))

    def manage(*args):
        return subprocess.run([sys.executable, str(root / "manage.py"), *args], env=env, cwd=root, timeout=900,
                              capture_output=True, text=True, check=True)

    def query(sql):
        db = sqlite3.connect(db_file)
        try:
            return db.execute(sql).fetchall()
        finally:
            db.close()

    migrated_sqlite_file(db_file)
    manage("shell", "-c", KILL_SEED)
    bulk = subprocess.Popen([sys.executable, str(root / "manage.py"), "shell", "-c", KILL_BULK], env=env, cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while query("SELECT COUNT(*) FROM messaging_outboxmessage")[0][0] < 2000:
            assert time.monotonic() < deadline and bulk.poll() is None, "the bulk run never got to writing"
            time.sleep(0.02)
        bulk.send_signal(signal.SIGKILL)
        bulk.wait(10)
    finally:
        if bulk.poll() is None:
            bulk.kill()
            bulk.wait(10)
    written_before_kill = query("SELECT COUNT(*) FROM messaging_outboxmessage")[0][0]
    assert 2000 <= written_before_kill < 50000
    assert query("SELECT status, amount FROM messaging_creditreservation") == [("open", 50000)]

    manage("shell", "-c", KILL_BULK)  # the rerun: writes the rest; the dead run's reservation is not stale yet
    assert manage("shell", "-c", KILL_SWEEP).stdout.strip().splitlines()[-1] == "settled 1"

    assert query("SELECT COUNT(*), SUM(credits) FROM messaging_outboxmessage") == [(50000, 50000)]
    assert query("SELECT status, amount, used, settled_by FROM messaging_creditreservation ORDER BY id") == [
        ("settled", 50000, written_before_kill, "sweeper"), ("settled", 50000, 50000 - written_before_kill, "run")]
    logs = query("SELECT queued, credits, finished_at IS NOT NULL FROM messaging_processlog ORDER BY id")
    assert logs == [(written_before_kill, written_before_kill, 1), (50000 - written_before_kill, 50000 - written_before_kill, 1)]
    running = 0
    for amount, after in query("SELECT amount, balance_after FROM messaging_creditentry ORDER BY id"):
        running += amount
        assert after == running >= 0
    assert running == 100000 - 50000


def test_sweeper_task_settles_only_the_reservations_of_runs_that_stopped(funded):
    import datetime as dt

    from django.utils import timezone

    from imali.messaging.credits import credits_reserve
    from imali.messaging.tasks import messaging_reservations_settle_stale

    with transaction.atomic():
        dead_log = ProcessLog.objects.create(entity=funded, kind="bulk_send", message_type="crm")
        dead = credits_reserve(entity=funded, channel="sms", amount=30, messages=30, process=dead_log)
        live_log = ProcessLog.objects.create(entity=funded, kind="bulk_send", message_type="crm")
        live = credits_reserve(entity=funded, channel="sms", amount=20, messages=20, process=live_log)
    # The dead run's last chunk committed eleven minutes ago; the live one's just now.
    CreditReservation.objects.filter(pk=dead.pk).update(heartbeat_at=timezone.now() - dt.timedelta(minutes=11))
    assert messaging_reservations_settle_stale.call_local() == 1
    assert messaging_reservations_settle_stale.call_local() == 0
    dead.refresh_from_db()
    live.refresh_from_db()
    assert (dead.status, dead.settled_by, dead.used, dead.refunded) == ("settled", "sweeper", 0, 30)
    assert live.status == "open" and credit_balance(entity=funded) == 980
    dead_log.refresh_from_db()
    assert dead_log.finished_at is not None and "stopped before it finished" in dead_log.errors[-1]
