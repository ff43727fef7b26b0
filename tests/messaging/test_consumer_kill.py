"""A consumer process killed with SIGKILL at several points of a batch loses no message, and
sends at most one claimed batch twice per kill. Real processes (`manage.py messaging_dispatch`) on a
throw-away SQLite file, the local SMSC on 127.0.0.1 in this process; bounded in time."""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imali.peers.smsc import SmscConfig, run_in_thread

ROOT = Path(__file__).resolve().parents[2]
COUNT = 400
BATCH = 40

SEED = """
from imali.tenancy.models import User, Branch
from imali.tenancy.services import entity_create
from imali.messaging.credits import credits_assign
from imali.messaging.models import Gateway
from imali.messaging.services import BulkRecipient, messages_enqueue_bulk
op = User.objects.create(username="op", is_operator=True)
e = entity_create(actor=op, data={{"name": "Kill test", "code": "kill", "country": "ZA", "modules": ["maxsms"]}})
credits_assign(actor=op, entity=e, channel="sms", amount={count})
Gateway.objects.create(name="local", host="127.0.0.1", port={port}, system_id="imali", password="secret", window=10)
messages_enqueue_bulk(entity=e, actor=op, message_type="arrears", text="Hello from the kill test",
                      recipients=[BulkRecipient(f"k{{i}}", f"+2782{{i:07d}}") for i in range({count})])
"""


def _wait(predicate, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _children(pid):
    """Processes whose parent is `pid` (the receiver a consumer starts beside itself)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue  # ended meanwhile
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _gone(pid):
    """Ended: no such process, or a zombie nobody reaped yet (its work is over)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


@pytest.fixture
def env(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(IMALI_VAR_DIR=str(tmp_path), IMALI_SQLITE_PATH=str(tmp_path / "kill.sqlite3"), PYTHONPATH=str(ROOT / "src"))
    return env


def _manage(env, *args, timeout=120):
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT, timeout=timeout,
                          capture_output=True, text=True, check=True)


def test_sigkill_mid_batch_loses_nothing(env, tmp_path, migrated_sqlite_file):
    # Slow enough that each kill lands with a batch in flight.
    peer = run_in_thread(SmscConfig(throttle_per_second=400))
    procs = []
    try:
        migrated_sqlite_file(tmp_path / "kill.sqlite3")
        _manage(env, "shell", "-c", SEED.format(count=COUNT, port=peer.port))

        def consumer(*extra):
            p = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "messaging_dispatch", "--batch", str(BATCH),
                                  "--lease-seconds", "2", "--backoff-base", "0.05", *extra],
                                 env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            procs.append(p)
            return p

        kills = 0
        for threshold in (60, 180, 300):
            p = consumer()
            assert _wait(lambda t=threshold: peer.peer.stats["accepted"] >= t, 300), dict(peer.peer.stats)  # incl. start-up
            receivers = _children(p.pid)
            assert len(receivers) == 1  # the receiver process it started for the receiver bind
            p.send_signal(signal.SIGKILL)
            p.wait(10)
            kills += 1
            # Orphaned, the receiver notices and ends itself.
            assert _wait(lambda r=receivers[0]: _gone(r), 60)
        last = consumer("--until-idle", "--max-seconds", "240")
        assert last.wait(300) == 0

        db = sqlite3.connect(tmp_path / "kill.sqlite3")
        rows = dict(db.execute("SELECT status, COUNT(*) FROM messaging_outboxmessage GROUP BY status").fetchall())
        balance = db.execute("SELECT balance_after FROM messaging_creditentry ORDER BY id DESC LIMIT 1").fetchone()[0]
        db.close()
        # Nothing lost: every message left the queue and reached its number at the SMSC.
        assert set(rows) <= {"delivered", "submitted"} and sum(rows.values()) == COUNT, rows
        accepted = [number for _, number in peer.peer.accepted_parts]
        assert len(set(accepted)) == COUNT
        duplicates = len(accepted) - COUNT
        # Each kill can repeat at most the batch it had claimed and not yet recorded.
        assert 0 <= duplicates <= kills * BATCH, duplicates
        assert balance == 0
        # A receipt the SMPP library acknowledged in the instant before a SIGKILL is gone with the
        # process: its message stays "Sent". Counted, and bounded by what was in flight.
        receipts_lost = rows.get("submitted", 0)
        assert receipts_lost <= kills * BATCH, receipts_lost
        print(f"kills={kills} duplicates={duplicates} receipts_lost={receipts_lost}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
        peer.stop()
