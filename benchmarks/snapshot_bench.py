"""Benchmark of the portfolio snapshot (every figure of the loan book for every client).

    .venv/bin/python benchmarks/snapshot_bench.py [--clients 1000000] [--seed 42] [--repeat 3]
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/snapshot_bench.py --clients 1000000

Builds a book with the demo generator and its loan extension (SQLite: a fresh database in a
temporary directory; PostgreSQL: a fresh database `imali_snapshot_bench` on the server of
DATABASE_URL, dropped afterwards), then times in the same process:
- snapshot: `portfolio_snapshot(entity=, as_of=)` for every entity (all clients' figures);
- scan: the floor, per entity one bare aggregate over exactly the rows the snapshot reads, through
  the same indexes: the unpaid instalments (instalment_unpaid_cover), the instalments paid ahead
  (instalment_paid_ahead_cover), every loan (loan_client_figures_cover) and the unsettled non-loan
  debits, each column the snapshot reads summed once, no grouping and no figure logic. Receipts
  are not read: the snapshot takes their figures from running totals on the loans.
Each is the best of --repeat runs. ratio = snapshot ÷ scan (goal ≤ 3). The snapshot computes every
figure exactly (cents, day ordinals, counts) and converts to Decimal and dates when a figure is read;
every_figure_read_ratio also times the snapshot and reading all 23 figures of every client
(ClientFigures.values), for consumers that do (goal ≤ 3 too). `indexes_used` records each snapshot
query's plan beside its floor's (both must read the same indexes), and `parts` each query's time
beside its floor's (where the snapshot's time goes). Writes
benchmarks/results/snapshot_<database>.json.

A 1M-client book takes many minutes to build, so `--keep NAME` keeps it for later runs (SQLite:
/tmp/NAME.sqlite3; PostgreSQL: database NAME; the book's facts in /tmp/NAME.json) and reuses it
when it exists; `--build-only` stops after building. `--from-book NAME` runs on a private copy of
the kept book NAME and leaves it as it is (benchmarks/_book.py, shared with the other benches).
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

from _book import add_book_arguments, open_book  # noqa: E402 - the benchmarks' one book set-up

PG_BENCH_DB = "imali_snapshot_bench"


def _baseline_sql(*, vendor: str) -> dict[str, str]:
    """The floor: per entity, one bare aggregate over exactly the rows the snapshot reads, through
    the same indexes (same tables, same WHERE clauses, every column the snapshot reads summed or
    counted once, no grouping and no figure logic). Receipts are not here because the snapshot does
    not read them (their figures are running totals on the loans); neither are the few rows of the
    paid-beyond-quote check, which are read per loan only for the loans the grouped pass flags."""
    from imali.loans.models import Instalment, Loan, NonLoanDebit

    instalments, loans, debits = Instalment._meta.db_table, Loan._meta.db_table, NonLoanDebit._meta.db_table
    # SQLite: the snapshot holds the paid-ahead read to its partial index with INDEXED BY; so does the floor.
    paid_ahead_hint = " INDEXED BY instalment_paid_ahead_cover" if vendor == "sqlite" else ""
    # PostgreSQL, left to itself, reads a bare aggregate over an entity's loans through the entity
    # index and the table (measured slower); taking the rows in client order, as the snapshot's
    # grouping does, reads them from the covering index alone (in that order already: no sort).
    loans_in_client_order = (f"{loans} WHERE entity_id = %(entity)s" if vendor == "sqlite" else
                             f"(SELECT * FROM {loans} WHERE entity_id = %(entity)s ORDER BY client_id) l")
    return {
        # selectors._unpaid_sql: the unpaid instalments of loans on the book (instalment_unpaid_cover).
        "instalments_unpaid": f"SELECT COUNT(i.client_id), SUM(i.due_ord), SUM(i.start_ord), SUM(i.amount), SUM(i.paid), "
                              f"SUM(i.capital), SUM(i.interest) FROM {instalments} i "
                              f"WHERE i.entity_id = %(entity)s AND i.open AND i.paid < i.amount",
        # selectors._paid_ahead_sql: instalments paid in full not yet due (instalment_paid_ahead_cover).
        "instalments_paid_ahead": f"SELECT COUNT(i.client_id), SUM(i.loan_id), SUM(i.start_ord), SUM(i.due_ord), "
                                  f"SUM(i.capital), SUM(i.interest), SUM(i.paid) FROM {instalments} i{paid_ahead_hint} "
                                  f"WHERE i.entity_id = %(entity)s AND i.open AND i.paid >= i.amount AND i.due_ord > %(aso)s",
        # selectors._simple_sql["loans"]: every loan of the entity (loan_client_figures_cover).
        "loans": f"SELECT COUNT(client_id), MAX(status), SUM(disbursed_ord), SUM(id), SUM(product_id), SUM(paid_up_ord), "
                 f"SUM(total_repayable), SUM(last_receipt_ord), SUM(change_total), SUM(received_total) "
                 f"FROM {loans_in_client_order}",
        # selectors._simple_sql["debts"]: the unsettled non-loan debits.
        "debts": f"SELECT COUNT(client_id), SUM(amount) FROM {debits} WHERE entity_id = %(entity)s AND settled_on IS NULL",
    }


def _session(cursor) -> None:
    """The snapshot's session settings (PostgreSQL, as portfolio_snapshot sets them), so the floor is
    measured and both plans are shown under the same ones."""
    from django.db import connection

    if connection.vendor == "postgresql":
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL enable_hashagg = off")  # no grouping in the floor; the snapshot's plans need it


class _Timer:
    """Wall time, and this process's CPU time (on SQLite all of the work: the database runs in the
    process, so on a machine shared with other loads the CPU ratio is the one they do not skew)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def _scan(entities, as_of, *, serial: bool = False) -> _Timer:
    """The floor: the bare aggregates of _baseline_sql for every entity. PostgreSQL runs a bare
    aggregate with parallel workers (the snapshot's client-ordered groupings run in one process);
    `serial` measures it without them too."""
    from django.db import connection, transaction

    queries = list(_baseline_sql(vendor=connection.vendor).values())
    with _Timer() as timer, transaction.atomic(), connection.cursor() as cursor:
        _session(cursor)
        if serial:
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        for entity in entities:
            params = {"entity": entity.pk, "aso": as_of.toordinal()}
            for sql in queries:
                cursor.execute(sql, params)
                cursor.fetchall()
    return timer


def _indexes_used(cursor, sql: str, params: dict) -> list[str]:
    """The indexes (and tables read in full) in the plan of one query, in plan order."""
    from django.db import connection

    if connection.vendor == "postgresql":
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        raw = cursor.fetchone()[0]
        plan = json.loads(raw) if isinstance(raw, str) else raw
        found: list[str] = []

        def walk(node: dict) -> None:
            if "Index Name" in node:
                found.append(f"{node['Node Type']} {node['Index Name']}")
            elif node.get("Node Type") == "Seq Scan":
                found.append(f"Seq Scan {node['Relation Name']}")
            for child in node.get("Plans", []):
                walk(child)

        walk(plan[0]["Plan"])
        return found
    cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
    return [row[-1] for row in cursor.fetchall() if row[-1].startswith(("SCAN", "SEARCH"))]


def _plans(entity, as_of) -> dict:
    """Each snapshot query's plan beside its floor's, so the results show both read the same indexes."""
    from django.db import connection, transaction

    from imali.loans import selectors

    params = {"entity": entity.pk, "aso": as_of.toordinal()}
    simple = selectors._simple_sql("", vendor=connection.vendor)
    snapshot = {"instalments_unpaid": selectors._unpaid_sql("", vendor=connection.vendor),
                "instalments_paid_ahead": selectors._paid_ahead_sql("", vendor=connection.vendor),
                "loans": simple["loans"], "debts": simple["debts"]}
    baseline = _baseline_sql(vendor=connection.vendor)
    with transaction.atomic(), connection.cursor() as cursor:
        _session(cursor)
        return {name: {"snapshot": _indexes_used(cursor, snapshot[name], params),
                       "floor": _indexes_used(cursor, baseline[name], params)} for name in baseline}


def _parts(entities, as_of, *, repeat: int) -> dict:
    """Each of the snapshot's queries beside its floor's, timed alone for every entity (rows fetched,
    nothing else done with them), best of `repeat`: where the snapshot's time goes. Seconds of wall
    time, and on SQLite of this process's CPU time. On PostgreSQL each floor query is the faster of
    with and without parallel workers."""
    from django.db import connection, transaction

    from imali.loans import selectors

    simple = selectors._simple_sql("", vendor=connection.vendor)
    snapshot = {"instalments_unpaid": selectors._unpaid_sql("", vendor=connection.vendor),
                "instalments_paid_ahead": selectors._paid_ahead_sql("", vendor=connection.vendor),
                "loans": simple["loans"], "debts": simple["debts"]}
    baseline = _baseline_sql(vendor=connection.vendor)

    def best(sql: str, *, serial: bool = False) -> _Timer:
        timers = []
        for _ in range(repeat):
            with _Timer() as timer, transaction.atomic(), connection.cursor() as cursor:
                _session(cursor)
                if serial:
                    cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
                for entity in entities:
                    cursor.execute(sql, {"entity": entity.pk, "aso": as_of.toordinal()})
                    cursor.fetchall()
            timers.append(timer)
        return min(timers, key=lambda t: t.wall)

    def seconds(timer: _Timer) -> dict:
        found = {"seconds": round(timer.wall, 3)}
        if connection.vendor == "sqlite":
            found["cpu_seconds"] = round(timer.cpu, 3)
        return found

    def floor(sql: str) -> _Timer:
        # PostgreSQL may run a bare aggregate with parallel workers, which on a busy machine can
        # cost more than they bring (workers started per query): the faster of both is the floor.
        if connection.vendor != "postgresql":
            return best(sql)
        return min(best(sql), best(sql, serial=True), key=lambda t: t.wall)

    return {name: {"snapshot": seconds(best(snapshot[name])), "floor": seconds(floor(baseline[name]))}
            for name in baseline}


def _snapshot(entities, as_of) -> tuple[_Timer, int]:
    from imali.loans.selectors import portfolio_snapshot

    clients = 0
    with _Timer() as timer:
        for entity in entities:
            clients += len(portfolio_snapshot(entity=entity, as_of=as_of))
    return timer, clients


def _snapshot_read_all(entities, as_of) -> _Timer:
    """The snapshot, then every figure of every client read as the caller sees it (Decimal, dates):
    ClientFigures converts on access, so this is the cost of a consumer that reads everything."""
    from imali.loans.selectors import ClientFigures, portfolio_snapshot

    every_figure = ClientFigures.values
    with _Timer() as timer:
        for entity in entities:
            for figures in portfolio_snapshot(entity=entity, as_of=as_of).values():
                every_figure(figures)
    return timer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_book_arguments(parser, clients=1_000_000, seed=42)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, open_book(
            workdir=Path(tmp), fresh_db=PG_BENCH_DB, clients=args.clients, seed=args.seed, keep=args.keep,
            from_book=args.from_book) as opened:
        book = opened.facts
        from django.db import connection

        from imali.loans.models import Instalment, Loan, Receipt
        from imali.tenancy.models import Entity

        if args.build_only:
            print(json.dumps(book))
            return
        generate_seconds = book["generate_seconds"]
        entities = list(Entity.objects.filter(pk__in=book["entity_ids"]))
        as_of = dt.date.fromisoformat(book["as_of"])
        counts = {"clients": book["clients"], "loans": Loan.objects.count(), "instalments": Instalment.objects.count(),
                  "receipts": Receipt.objects.count()}
        scans, snaps, read_alls, serial_scans = [], [], [], []
        figures_clients = 0
        load_before = os.getloadavg()[0]
        for _ in range(args.repeat):
            scans.append(_scan(entities, as_of))
            if connection.vendor == "postgresql":
                serial_scans.append(_scan(entities, as_of, serial=True))
            timer, figures_clients = _snapshot(entities, as_of)
            snaps.append(timer)
            read_alls.append(_snapshot_read_all(entities, as_of))
        load_after = os.getloadavg()[0]
        # The floor is the fastest honest bare read: on PostgreSQL the faster of with and without
        # parallel workers (a headline against the slower one would flatter the snapshot).
        scan, snap, read_all = (min(t.wall for t in ts) for ts in (scans + serial_scans, snaps, read_alls))
        cpu_scan, cpu_snap, cpu_read_all = (min(t.cpu for t in ts) for ts in (scans, snaps, read_alls))
        cpu = {
            # SQLite only: there the process's CPU time is all the work (PostgreSQL's is in the server).
            "cpu_snapshot_seconds": round(cpu_snap, 3), "cpu_scan_seconds": round(cpu_scan, 3),
            "cpu_ratio": round(cpu_snap / cpu_scan, 2),
            "cpu_snapshot_every_figure_read_seconds": round(cpu_read_all, 3),
            "cpu_every_figure_read_ratio": round(cpu_read_all / cpu_scan, 2),
        } if connection.vendor == "sqlite" else {
            # The floor without parallel workers, as the snapshot's groupings run (the headline's
            # floor is the faster of this and the parallel one).
            "scan_parallel_seconds": round(min(t.wall for t in scans), 3),
            "scan_serial_seconds": round(min(t.wall for t in serial_scans), 3),
            "ratio_serial": round(snap / min(t.wall for t in serial_scans), 2),
            "every_figure_read_ratio_serial": round(read_all / min(t.wall for t in serial_scans), 2),
        }
        result = {
            "benchmark": "portfolio_snapshot vs a bare aggregate over the rows it reads",
            "database": connection.vendor,
            **counts,
            "clients_with_figures": figures_clients,
            "generate_seconds": round(generate_seconds, 1),
            "snapshot_seconds": round(snap, 3),
            "scan_seconds": round(scan, 3),
            "ratio": round(snap / scan, 2),
            "snapshot_every_figure_read_seconds": round(read_all, 3),
            "every_figure_read_ratio": round(read_all / scan, 2),
            **cpu,
            "load_average_1min": [round(load_before, 1), round(load_after, 1)],
            "cpus": os.cpu_count(),
            "goal": "ratio <= 3 and every_figure_read_ratio <= 3",
            # Where the time goes: each query alone, the snapshot's beside its floor's; the rest of
            # the snapshot is Python (rows into the book), and every_figure_read less snapshot is
            # making every figure's value (Decimals, dates) for every client.
            "parts": _parts(entities, as_of, repeat=args.repeat),
            "indexes_used": _plans(entities[0], as_of),
            "repeat": args.repeat,
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
    out = ROOT / "benchmarks" / "results" / f"snapshot_{result['database']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"ratio (snapshot ÷ floor) = {result['ratio']}, every figure read {result['every_figure_read_ratio']}")


if __name__ == "__main__":
    main()
