"""The automatic SMS and MIS SMS of one day on a loan book, on SQLite or PostgreSQL, measured.

    .venv/bin/python benchmarks/reminders_bench.py [--clients 50000] [--seed 7]
    .venv/bin/python benchmarks/reminders_bench.py --from-book book1m_sqlite      # a kept 1M-client book
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/reminders_bench.py --from-book book1m_pg

The book (benchmarks/_book.py): built with the demo generator and its loan extension in a fresh
database (SQLite: a file in a temporary directory; PostgreSQL: a database `imali_reminders_bench`,
dropped afterwards), or `--from-book NAME`: a private copy of a book kept by
`snapshot_bench.py --keep NAME --build-only` (the kept book is never changed).
Switches every automatic batch (payment due in 3 days, arrears from R50 every 7 days, payment
received, birthdays) and every MIS stream on for every entity, gives each entity enough credits,
and times, for the book's day:
- ours: `automatic_run_day` + `mis_run_day` for every entity (selection, merge values, segments,
  credits, outbox rows, process logs, the run records): `day_seconds`, measured on the book;
- floor: in the same database, a bare read of the same columns of every client of each entity
  (one scan) and the raw write of exactly the outbox rows ours wrote (read back, deleted, and
  inserted again in one transaction: executemany on SQLite, COPY on PostgreSQL).
ratio = ours ÷ floor. The goal of the issue is a 1M-client book's day in well under an hour: run
on a 1M book, `day_seconds` is that figure. A second run of the day (`rerun_seconds`, skipped with
--no-rerun) must add nothing. As an extra figure only, `extrapolated_1m_seconds` scales a smaller
book's day to 1M: the fixed cost per entity (an entity without clients, everything on) plus the
rest scaled linearly. Writes benchmarks/results/reminders_<database>.json.
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

from _book import add_book_arguments, bench_operator, open_book  # noqa: E402 - the benchmarks' one book set-up

PG_BENCH_DB = "imali_reminders_bench"


def _switch_on(entities, operator) -> None:
    from decimal import Decimal

    from imali.messaging.credits import credits_assign
    from imali.reminders.models import AutomaticSetup, MisRecipient, MisSetup, MisStream
    from imali.tenancy.models import User

    for entity in entities:
        AutomaticSetup.objects.update_or_create(entity=entity, defaults={
            "run_at": dt.time(0, 0), "due_enabled": True, "due_days_before": 3, "arrears_enabled": True,
            "arrears_minimum": Decimal("50.00"), "arrears_repeat_days": 7, "received_enabled": True,
            "birthday_enabled": True})
        MisSetup.objects.update_or_create(entity=entity, defaults={
            "run_at": dt.time(0, 0), **{f"{s}_enabled": True for s in MisStream.values}})
        managers = list(User.objects.filter(entity=entity).exclude(cellphone="").exclude(home_branch=None)[:5])
        MisRecipient.objects.bulk_create([MisRecipient(entity=entity, stream=s, user=u)
                                          for s in MisStream.values for u in managers])
        credits_assign(actor=operator, entity=entity, channel="sms", amount=entity.clients.count() * 8 + 1000)


def _floor(entities, process_ids) -> float:
    """The bare read of every client's columns plus the raw write of the rows ours wrote."""
    from django.db import connection, transaction

    from imali.messaging.models import OutboxMessage
    from imali.messaging.services import _OUTBOX_COLUMNS
    from imali.reminders import selectors

    rows = list(OutboxMessage.objects.filter(process_id__in=process_ids).order_by("id").values_list(*_OUTBOX_COLUMNS))
    OutboxMessage.objects.filter(process_id__in=process_ids).delete()
    table, cols = OutboxMessage._meta.db_table, ", ".join(_OUTBOX_COLUMNS)
    started = time.perf_counter()
    for entity in entities:
        for _ in selectors.client_rows(entity.clients.all()):
            pass
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            with cur.cursor.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(['%s'] * len(_OUTBOX_COLUMNS))})", rows)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # No --keep: a run leaves its day's runs, setups and messages in the book, so a second run on it
    # would measure nothing. Keep a book with snapshot_bench.py --keep NAME and use --from-book NAME.
    add_book_arguments(parser, clients=50_000, seed=7, keep=False)
    parser.add_argument("--no-rerun", action="store_true", help="skip the timed second run of the day")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, open_book(
            workdir=Path(tmp), fresh_db=PG_BENCH_DB, clients=args.clients, seed=args.seed, keep=args.keep,
            from_book=args.from_book) as opened:
        book = opened.facts
        from django.db import connection

        from imali.messaging.models import OutboxMessage, ProcessLog
        from imali.reminders.models import DailyRun
        from imali.reminders.services import automatic_run_day, mis_run_day
        from imali.tenancy.models import Branch, Entity, User
        from imali.tenancy.services import entity_create

        operator = bench_operator()
        entities = list(Entity.objects.filter(pk__in=book["entity_ids"]).order_by("pk"))
        _switch_on(entities, operator)
        day = dt.date.fromisoformat(book["as_of"])
        outbox_before = OutboxMessage.objects.count()
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        runs = [automatic_run_day(entity=entity, business_date=day) for entity in entities]
        automatic_seconds = time.perf_counter() - started
        started = time.perf_counter()
        runs += [mis_run_day(entity=entity, business_date=day) for entity in entities]
        mis_seconds = time.perf_counter() - started
        ours = automatic_seconds + mis_seconds
        errors = ["a run was held by another consumer" if r is None else f"{r.kind} of entity {r.entity_id}: {r.error}"
                  for r in runs if r is None or r.error]
        assert not errors, errors  # a run that failed would time nothing worth reporting
        logs = ProcessLog.objects.filter(entity__in=entities, kind__in=("automatic", "mis"))
        by_type: dict[str, int] = {}
        for message_type, queued in logs.values_list("message_type", "queued"):
            by_type[message_type] = by_type.get(message_type, 0) + queued
        queued = OutboxMessage.objects.filter(process__in=logs).count()
        rerun: dict = {}
        if not args.no_rerun:
            # A second run of the same day: every key is queued, nothing is written, nothing is paid.
            DailyRun.objects.all().delete()
            started = time.perf_counter()
            for entity in entities:
                automatic_run_day(entity=entity, business_date=day)
            rerun = {"rerun_seconds": round(time.perf_counter() - started, 3),
                     "rerun_messages_added": OutboxMessage.objects.count() - outbox_before - queued}
        floor = _floor(entities, list(logs.values_list("pk", flat=True)))
        # The fixed cost of a day: an entity without clients, everything on (its MIS SMS still go).
        empty = entity_create(actor=operator, data={"name": "Bench empty", "code": "bench-empty", "country": "ZA",
                                                    "modules": ["maxsms"]})
        branch = Branch.objects.create(entity=empty, code="HO", name="Head Office", telephone="0110000000")
        User.objects.create(username="bench-empty-manager", entity=empty, home_branch=branch,
                            cellphone="+27825550199")
        _switch_on([empty], operator)
        started = time.perf_counter()
        automatic_run_day(entity=empty, business_date=day)
        mis_run_day(entity=empty, business_date=day)
        fixed = time.perf_counter() - started
        variable = max(ours - fixed * len(entities), 0.0)
        load_after = os.getloadavg()[0]
        result = {
            "benchmark": "automatic SMS + MIS SMS of one day vs a bare client read and the raw write of the same rows",
            "database": connection.vendor,
            "clients": book["clients"],
            "entities": len(entities),
            "generate_seconds": round(book["generate_seconds"], 1),
            **opened.describe(),
            "messages_queued": queued,
            "queued_by_type": by_type,
            "automatic_seconds": round(automatic_seconds, 3),
            "mis_seconds": round(mis_seconds, 3),
            "day_seconds": round(ours, 3),
            "measured": f"the day of this {book['clients']:,}-client book, measured",
            "floor_seconds": round(floor, 3),
            "ratio": round(ours / floor, 2),
            **rerun,
            "fixed_seconds_per_entity": round(fixed, 3),
            "extrapolated_1m_seconds": round(fixed * len(entities) + variable * 1_000_000 / book["clients"], 1),
            "extrapolation": "an extra figure: fixed cost per entity (measured) + the rest of the day scaled linearly "
                             "to 1M clients; day_seconds is the measurement",
            "goal": "a 1M-client book's day well under 3600 s",
            "load_average_1min": [round(load_before, 1), round(load_after, 1)],
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
    out = ROOT / "benchmarks" / "results" / f"reminders_{result['database']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"day {result['day_seconds']} s measured for {result['clients']:,} clients, ratio {result['ratio']}; "
          f"(1M extrapolated {result['extrapolated_1m_seconds']} s)")


if __name__ == "__main__":
    main()
