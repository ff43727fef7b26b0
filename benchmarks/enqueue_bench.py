"""Bulk enqueue of personalised messages against writing the same rows raw, in the same run.

    .venv/bin/python benchmarks/enqueue_bench.py [--count 1000000]
    DATABASE_URL=postgres://... IMALI_PG_TEST_DB=imali_bench .venv/bin/python benchmarks/enqueue_bench.py

Ours: `messages_enqueue_bulk` from recipients with merge values to committed rows: render each
text, count its segments, skip duplicates by idempotency key, insert (executemany on SQLite, COPY
+ INSERT ... SELECT on PostgreSQL), one credit debit, process log. Raw: the same rows, pre-built
as tuples, written straight into the same table by the database's fastest plain path (executemany
INSERT on SQLite, COPY on PostgreSQL). Goal: ratio ours/raw <= 2.0. Also checks a rerun adds
nothing and costs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imali.config.settings")


def setup_database():
    import django

    django.setup()
    from django.db import connection

    test = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        # A file, as in production; the test runner's in-memory default would flatter the figures.
        test["NAME"] = str(Path(tempfile.mkdtemp(prefix="imali-bench-")) / "bench.sqlite3")
    else:
        test["NAME"] = os.environ.get("IMALI_PG_TEST_DB", "imali_bench")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    return connection, old_name


def teardown_database(connection, old_name):
    connection.creation.destroy_test_db(old_name, verbosity=0)


def make_entity(code: str):
    from imali.tenancy.models import Branch, User
    from imali.tenancy.services import entity_create

    operator = User.objects.filter(is_operator=True).first()
    if operator is None:
        operator = User.objects.create(username="bench-operator", is_operator=True)
    entity = entity_create(actor=operator, data={"name": f"Bench {code}", "code": code, "country": "ZA", "modules": ["maxsms"]})
    Branch.objects.create(entity=entity, code="HO", name="Head Office", telephone="0110000000")
    return entity, operator


def write_result(name: str, data: dict) -> Path:
    out = ROOT / "benchmarks" / "results" / name
    data = {**data, "python": platform.python_version(), "machine": platform.machine()}
    out.write_text(json.dumps(data, indent=2) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=1_000_000)
    args = parser.parse_args()
    connection, old = setup_database()
    try:
        run(connection, args.count)
    finally:
        teardown_database(connection, old)


def run(connection, count: int) -> None:
    from django.db import transaction
    from django.utils import timezone

    from imali.messaging.credits import credit_balance, credits_assign
    from imali.messaging.models import OutboxMessage
    from imali.messaging.segments import segment_count
    from imali.messaging.services import _OUTBOX_COLUMNS, BulkRecipient, messages_enqueue_bulk
    from imali.messaging.templating import Compiled

    entity, operator = make_entity("benchours")
    raw_entity, _ = make_entity("benchraw")
    credits_assign(actor=operator, entity=entity, channel="sms", amount=count * 4)
    text = ("Dear {^Client Name^} {^Client Surname^} your instalment of {^Instalment Amount^} is due on "
            "{^Next Date Due^} Call {^Branch Name^} on {^Branch Telephone^}")
    names = ["Thabo", "Naledi", "Sipho", "Lerato", "Mpho", "Ayanda", "Kagiso", "Zanele", "Tumelo", "Dineo"]
    recipients = [
        BulkRecipient(f"arrears:2026-11:c{i}", f"+2782{i:07d}", {
            "Client Name": names[i % 10], "Client Surname": f"Surname{i}", "Instalment Amount": f"R{100 + i % 900}.00",
            "Next Date Due": "2026-12-01", "Branch Name": "Head Office", "Branch Telephone": "0110000000"},
            client_id=None)
        for i in range(count)
    ]
    # The raw rows: identical content, rendered in advance (not timed).
    compiled = Compiled(text)
    now_db = connection.ops.adapt_datetimefield_value(timezone.now())
    raw_rows = []
    for r in recipients:
        body = compiled.render(r.values)
        segs = segment_count(body)
        raw_rows.append((raw_entity.pk, None, None, None, "sms", r.number, "ZA", "arrears", body, segs, segs, 2,
                         r.idempotency_key, "queued", "", "", 0, now_db, None, "", now_db))

    table = OutboxMessage._meta.db_table
    cols = ", ".join(_OUTBOX_COLUMNS)
    t0 = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            with cur.cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in raw_rows:
                    copy.write_row(row)
        else:
            placeholders = ", ".join(["%s"] * len(_OUTBOX_COLUMNS))
            for i in range(0, len(raw_rows), 20000):
                cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({placeholders})", raw_rows[i : i + 20000])
    raw_s = time.perf_counter() - t0
    del raw_rows
    # Both writes start from the same (empty) table: a table already holding a million rows
    # makes every index insert dearer, which would be charged to whichever runs second.
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"DELETE FROM {table} WHERE entity_id = %s", [raw_entity.pk])
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(f"VACUUM ANALYZE {table}")

    t0 = time.perf_counter()
    log = messages_enqueue_bulk(entity=entity, actor=operator, message_type="arrears", text=text, recipients=recipients)
    ours_s = time.perf_counter() - t0
    balance_after_first = credit_balance(entity=entity)

    t0 = time.perf_counter()
    rerun = messages_enqueue_bulk(entity=entity, actor=operator, message_type="arrears", text=text, recipients=recipients)
    rerun_s = time.perf_counter() - t0

    assert log.queued == count, log.queued
    assert rerun.queued == 0 and rerun.credits == 0 and credit_balance(entity=entity) == balance_after_first
    ratio = ours_s / raw_s
    result = {
        "benchmark": "bulk enqueue", "database": connection.vendor, "count": count,
        "raw_seconds": round(raw_s, 3), "ours_seconds": round(ours_s, 3), "rerun_seconds": round(rerun_s, 3),
        "ratio": round(ratio, 3), "goal_ratio_max": 2.0, "ours_per_s": round(count / ours_s),
        "credits_debited": log.credits, "rerun_added": rerun.queued, "rerun_credits": rerun.credits,
    }
    path = write_result(f"enqueue_{connection.vendor}.json", result)
    print(result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
