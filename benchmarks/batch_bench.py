"""A manual Payment Arrears batch against the bare floor of the same work, in the same run.

    .venv/bin/python benchmarks/batch_bench.py [--clients 100000] [--seed 42] [--keep NAME | --from-book NAME]
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/batch_bench.py --clients 100000

Builds a book with the demo generator and its loan extension (SQLite: a fresh file in a temporary
directory; PostgreSQL: a fresh database `imali_batch_bench`, dropped afterwards; or `--from-book
NAME`: a private copy of a book kept by `snapshot_bench.py --keep NAME`, see benchmarks/_book.py), funds every
entity, then for every entity times:
- ours: `batch_run` of an arrears batch (instalments due in the last year, any amount): the
  selection (one query over the loan book), merge values, each text rendered and its segments
  counted, the credits reserved and settled, the outbox rows written, the process log;
- floor: a bare read of the same instalment rows (the unpaid overdue instalments the selection
  groups, from the same covering index) and of the same client rows (the chosen clients' columns
  and branch, by primary key), plus a raw write of the same outbox rows (pre-built tuples:
  executemany INSERT on SQLite, COPY on PostgreSQL), in one transaction per entity.
Between runs the written rows are deleted, and the pair runs twice (floor then ours, ours then
floor); "ratio" is the worse of ours ÷ floor. Goal: ratio <= 3.

Run twice over: with the entity's arrears template as supplied (client fields only), and with a
template naming loan fields (Next Amount Due, Next Date Due, outstanding), whose merge values come
from the whole-book figures selector ("ratio_loan_fields"). Writes benchmarks/results/batch_<db>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _book import add_book_arguments, bench_operator, open_book  # noqa: E402 - the benchmarks' one book set-up

PG_BENCH_DB = "imali_batch_bench"
LOAN_FIELDS_TEXT = ("Dear {^Client Name^} your loan is in arrears. Please pay {^Next Amount Due^} by {^Next Date Due^} "
                    "- you owe {^Client Total Outstanding Loan Amount^} in all. Call {^Branch Telephone^} today.")


def _criteria(today: dt.date) -> dict:
    return {"due_from": (today - dt.timedelta(days=366)).isoformat(), "due_to": (today - dt.timedelta(days=1)).isoformat()}


def _ours(entities, actor_of, today, tag) -> tuple[float, int, list]:
    """The batch, as batch_send records and runs it; returns (seconds, rows, process ids)."""
    from imali.batches.services import batch_send

    started = time.perf_counter()
    rows, batches = 0, []
    for entity in entities:
        sent = batch_send(actor=actor_of[entity.pk], entity=entity, batch_type="arrears", criteria=_criteria(today),
                          idempotency_key=f"bench-{tag}-{entity.pk}", today=today, background=False)
        assert sent.batch.state == "done", sent.batch.error
        rows += sent.batch.queued
        batches.append(sent.batch)
    return time.perf_counter() - started, rows, batches


def _floor(entities, today, rows_of, *, loan_rows: bool = False) -> float:
    """Bare reads of the same instalment and client rows as the batch, each by the cheapest path (the
    unpaid overdue instalments from the covering partial index by day number, as the selection reads
    them; the chosen clients with their branch by primary key), and the raw write of the same outbox
    rows, in one transaction per entity. No grouping, no rules, no rendering, no ledger. With
    `loan_rows` (a template naming loan fields) also the rows those values come from: every unpaid
    instalment and every loan of the chosen clients."""
    from django.db import connection, transaction

    from imali.clients.models import Client
    from imali.loans.models import Instalment, Loan
    from imali.messaging.models import OutboxMessage
    from imali.tenancy.models import Branch

    clients, instalments, outbox = Client._meta.db_table, Instalment._meta.db_table, OutboxMessage._meta.db_table
    branches, loans = Branch._meta.db_table, Loan._meta.db_table
    started = time.perf_counter()
    for entity in entities:
        rows = rows_of[entity.pk]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT i.client_id, i.due_ord, i.amount, i.paid FROM {instalments} i WHERE i.entity_id = %s "
                           f"AND i.open AND i.paid < i.amount AND i.due_ord < %s", [entity.pk, today.toordinal()])
            cursor.fetchall()
            ids = ", ".join(str(i) for i in sorted({r[1] for r in rows})) or "0"
            cursor.execute(f"SELECT c.id, c.number, c.name, c.full_names, c.surname, c.cellphone, c.marketing_consent, "
                           f"b.name, b.telephone FROM {clients} c JOIN {branches} b ON b.id = c.branch_id "
                           f"WHERE c.id IN ({ids})")
            cursor.fetchall()
            if loan_rows:
                cursor.execute(f"SELECT i.client_id, i.due_ord, i.start_ord, i.amount, i.paid, i.capital, i.interest "
                               f"FROM {instalments} i WHERE i.entity_id = %s AND i.open AND i.paid < i.amount "
                               f"AND i.client_id IN ({ids})", [entity.pk])
                cursor.fetchall()
                cursor.execute(f"SELECT l.client_id, l.status, l.disbursed_on, l.principal, l.instalment_amount, "
                               f"l.change_total FROM {loans} l WHERE l.entity_id = %s AND l.client_id IN ({ids})", [entity.pk])
                cursor.fetchall()
            cols = ", ".join(_COLUMNS)
            if connection.vendor == "postgresql":
                with cursor.cursor.copy(f"COPY {outbox} ({cols}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cursor.executemany(f"INSERT INTO {outbox} ({cols}) VALUES ({', '.join(['%s'] * len(_COLUMNS))})", rows)
    return time.perf_counter() - started


_COLUMNS = ("entity_id", "client_id", "user_id", "created_by_id", "channel", "number", "country", "message_type", "text",
            "segments", "credits", "priority", "idempotency_key", "status", "gateway", "provider_message_id", "attempts",
            "next_attempt_at", "error", "created_at")


def _captured_rows(entities) -> dict[int, list[tuple]]:
    """The outbox rows the batch wrote, as tuples (keys changed so the floor may write them again)."""
    from imali.messaging.models import OutboxMessage

    found: dict[int, list[tuple]] = {}
    for entity in entities:
        rows = OutboxMessage.objects.filter(entity=entity).values_list(*[c.removesuffix("_id") if c in (
            "entity_id", "client_id", "user_id", "created_by_id") else c for c in _COLUMNS])
        found[entity.pk] = [(*r[:12], "floor:" + r[12], *r[13:]) for r in rows]
    return found


def _clear() -> None:
    from django.db import connection

    from imali.batches.models import MessageBatch
    from imali.messaging.models import CreditReservation, OutboxMessage

    OutboxMessage.objects.all().delete()
    MessageBatch.objects.all().delete()
    CreditReservation.objects.all().delete()
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _measure(entities, actor_of, today, label, *, loan_rows: bool = False) -> dict:
    tag = label
    first, rows, _ = _ours(entities, actor_of, today, f"{tag}-1")
    captured = _captured_rows(entities)
    _clear()
    floor_first = _floor(entities, today, captured, loan_rows=loan_rows)
    _clear()
    floor_second = _floor(entities, today, captured, loan_rows=loan_rows)
    _clear()
    second, rows2, _ = _ours(entities, actor_of, today, f"{tag}-2")
    assert rows2 == rows
    _clear()
    ratios = [first / floor_first, second / floor_second]
    return {"rows": rows, "ours_seconds": [round(first, 3), round(second, 3)],
            "floor_seconds": [round(floor_first, 3), round(floor_second, 3)],
            "ratios": [round(r, 2) for r in ratios], "ratio": round(max(ratios), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_book_arguments(parser, clients=100_000, seed=42)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, open_book(
            workdir=Path(tmp), fresh_db=PG_BENCH_DB, clients=args.clients, seed=args.seed, keep=args.keep,
            from_book=args.from_book) as opened:
        book = opened.facts
        from django.db import connection
        from tests import factories

        from imali.loans.models import Instalment, Loan
        from imali.messaging.credits import credits_assign
        from imali.messaging.models import MessageTemplate
        from imali.messaging.services import template_update
        from imali.tenancy.models import Entity, User

        operator = bench_operator()
        entities = list(Entity.objects.filter(pk__in=book["entity_ids"]).order_by("pk"))
        today = dt.date.fromisoformat(book["as_of"])
        actor_of = {}
        # A kept book may carry an earlier run's template and sender: the supplied text first, each time.
        MessageTemplate.objects.filter(entity__in=entities, message_type="arrears").delete()
        for entity in entities:
            credits_assign(actor=operator, entity=entity, channel="sms", amount=50_000_000)
            actor_of[entity.pk] = (User.objects.filter(username=f"bench-sender-{entity.pk}").first()
                                   or factories.make_admin(entity=entity, username=f"bench-sender-{entity.pk}"))
        load_before = os.getloadavg()[0]
        supplied = _measure(entities, actor_of, today, "supplied")
        for entity in entities:
            template_update(actor=actor_of[entity.pk], entity=entity, message_type="arrears", text=LOAN_FIELDS_TEXT)
        loan_fields = _measure(entities, actor_of, today, "loanfields", loan_rows=True)
        load_after = os.getloadavg()[0]
        result = {
            "benchmark": "manual arrears batch (selection, merge values, segments, credits, outbox rows) vs a bare "
                         "read of the same client and instalment rows plus a raw write of the same outbox rows",
            "database": connection.vendor,
            "clients": book["clients"], "entities": len(entities), "loans": Loan.objects.count(),
            "instalments": Instalment.objects.count(),
            "generate_seconds": round(book["generate_seconds"], 1),
            **opened.describe(),
            "messages": supplied["rows"],
            "ratio": supplied["ratio"],
            "supplied_template": supplied,
            "ratio_loan_fields": loan_fields["ratio"],
            "loan_fields_template": {**loan_fields, "text": LOAN_FIELDS_TEXT},
            "goal": "ratio <= 3",
            "load_average_1min": [round(load_before, 1), round(load_after, 1)],
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
    out = ROOT / "benchmarks" / "results" / f"batch_{result['database']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"ratio (batch ÷ floor) = {result['ratio']}; with loan fields {result['ratio_loan_fields']}")


if __name__ == "__main__":
    main()
