"""Benchmark of the portfolio snapshot (every figure of the loan book for every client).

    .venv/bin/python benchmarks/snapshot_bench.py [--clients 1000000] [--seed 42] [--repeat 3]
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/snapshot_bench.py --clients 1000000

Builds a book with the demo generator and its loan extension (SQLite: a fresh database in a
temporary directory; PostgreSQL: a fresh database `imali_snapshot_bench` on the server of
DATABASE_URL, dropped afterwards), then times in the same process:
- snapshot: `portfolio_snapshot(entity=, as_of=)` for every entity (all clients' figures);
- scan: the baseline, a bare full scan summing the same tables (instalments, loans, receipts,
  non-loan debits) per entity with one plain SUM query each.
Each is the best of --repeat runs. ratio = snapshot ÷ scan (goal ≤ 3). The snapshot computes every
figure exactly (cents, day ordinals, counts) and converts to Decimal and dates when a figure is read;
every_figure_read_ratio also times reading all 23 figures of every client (ClientFigures.values), for
consumers that do. Writes
benchmarks/results/snapshot_<database>.json.

A 1M-client book takes many minutes to build, so `--keep NAME` keeps it for later runs (SQLite:
/tmp/NAME.sqlite3; PostgreSQL: database NAME; the book's facts in /tmp/NAME.json) and reuses it
when it exists; `--build-only` stops after building.
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
PG_BENCH_DB = "imali_snapshot_bench"


def _setup_django(workdir: Path, keep: str | None) -> tuple[str, bool]:
    """Point Django at the bench database; returns (server URL to drop it from, whether a kept book exists)."""
    os.environ["IMALI_VAR_DIR"] = str(workdir / "var")
    os.environ.pop("REDIS_URL", None)
    os.environ["IMALI_ENV"] = "development"
    os.environ["IMALI_DEBUG"] = "0"  # DEBUG keeps every query in memory
    os.environ["DJANGO_SETTINGS_MODULE"] = "imali.config.settings"
    url = os.environ.get("DATABASE_URL", "")
    kept = bool(keep) and Path(f"/tmp/{keep}.json").exists()
    if url:
        import psycopg

        base, _, _ = url.rpartition("/")
        name = keep or PG_BENCH_DB
        if not kept:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {name}")
                conn.execute(f"CREATE DATABASE {name}")
        os.environ["DATABASE_URL"] = f"{base}/{name}"
    else:
        path = Path(f"/tmp/{keep}.sqlite3") if keep else workdir / "bench.sqlite3"
        if keep and not kept and path.exists():
            path.unlink()
        os.environ["IMALI_SQLITE_PATH"] = str(path)
    sys.path.insert(0, str(ROOT / "src"))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return ("" if keep else url), kept


def _drop_pg(url: str) -> None:
    from django.db import connections

    connections.close_all()
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {PG_BENCH_DB}")


def _scan(entities) -> float:
    """The floor: one plain SUM per table per entity, reading the same rows the snapshot reads."""
    from django.db import connection

    from imali.loans.models import Instalment, Loan, NonLoanDebit, Receipt

    started = time.perf_counter()
    with connection.cursor() as cursor:
        for entity in entities:
            for model, columns in ((Instalment, "SUM(amount), SUM(paid), SUM(capital_paid)"),
                                   (Loan, "SUM(principal), COUNT(*)"), (Receipt, "SUM(amount), SUM(change)"),
                                   (NonLoanDebit, "SUM(amount)")):
                cursor.execute(f"SELECT {columns} FROM {model._meta.db_table} WHERE entity_id = %s", [entity.pk])
                cursor.fetchall()
    return time.perf_counter() - started


def _snapshot(entities, as_of) -> tuple[float, int]:
    from imali.loans.selectors import portfolio_snapshot

    started = time.perf_counter()
    clients = 0
    for entity in entities:
        clients += len(portfolio_snapshot(entity=entity, as_of=as_of))
    return time.perf_counter() - started, clients


def _snapshot_read_all(entities, as_of) -> float:
    """The snapshot, then every figure of every client read as the caller sees it (Decimal, dates):
    ClientFigures converts on access, so this is the cost of a consumer that reads everything."""
    from imali.loans.selectors import ClientFigures, portfolio_snapshot

    every_figure = ClientFigures.values
    started = time.perf_counter()
    for entity in entities:
        for figures in portfolio_snapshot(entity=entity, as_of=as_of).values():
            every_figure(figures)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", help="keep the book under this name and reuse it when it exists")
    parser.add_argument("--build-only", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pg_url, kept = _setup_django(Path(tmp), args.keep)
        try:
            from django.db import connection

            from imali.demo.generator import generate_book
            from imali.loans.demo_data import add_loans
            from imali.loans.models import Instalment, Loan, Receipt
            from imali.tenancy.models import Entity, User

            if kept:
                book = json.loads(Path(f"/tmp/{args.keep}.json").read_text())
            else:
                operator = User.objects.create(username="bench-operator", is_operator=True)
                started = time.perf_counter()
                summary = generate_book(clients=args.clients, seed=args.seed, actor=operator, extensions=[add_loans])
                book = {"clients": summary.clients, "entity_ids": [b.entity_id for b in summary.entities],
                        "as_of": summary.now.date().isoformat(), "generate_seconds": time.perf_counter() - started}
                if args.keep:
                    Path(f"/tmp/{args.keep}.json").write_text(json.dumps(book))
            with connection.cursor() as cursor:
                # As after any bulk load: fresh statistics so both sides get the planner's best, and on
                # PostgreSQL a vacuumed visibility map so index-only scans need not visit the heap.
                if connection.vendor == "postgresql":
                    cursor.execute("VACUUM ANALYZE")
                else:
                    cursor.execute("PRAGMA analysis_limit = 2000")  # sampled statistics: minutes less on 1M
                    cursor.execute("ANALYZE")
            if args.build_only:
                print(json.dumps(book))
                return
            generate_seconds = book["generate_seconds"]
            entities = list(Entity.objects.filter(pk__in=book["entity_ids"]))
            as_of = dt.date.fromisoformat(book["as_of"])
            counts = {"clients": book["clients"], "loans": Loan.objects.count(), "instalments": Instalment.objects.count(),
                      "receipts": Receipt.objects.count()}
            scans, snaps, read_alls = [], [], []
            figures_clients = 0
            for _ in range(args.repeat):
                scans.append(_scan(entities))
                seconds, figures_clients = _snapshot(entities, as_of)
                snaps.append(seconds)
                read_alls.append(_snapshot_read_all(entities, as_of))
            scan, snap, read_all = min(scans), min(snaps), min(read_alls)
            result = {
                "benchmark": "portfolio_snapshot vs bare full scan",
                "database": connection.vendor,
                **counts,
                "clients_with_figures": figures_clients,
                "generate_seconds": round(generate_seconds, 1),
                "snapshot_seconds": round(snap, 3),
                "scan_seconds": round(scan, 3),
                "ratio": round(snap / scan, 2),
                "snapshot_every_figure_read_seconds": round(read_all, 3),
                "every_figure_read_ratio": round(read_all / scan, 2),
                "goal": "ratio <= 3",
                "repeat": args.repeat,
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        finally:
            if pg_url:
                _drop_pg(pg_url)
    out = ROOT / "benchmarks" / "results" / f"snapshot_{result['database']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"ratio (snapshot ÷ scan) = {result['ratio']}")


if __name__ == "__main__":
    main()
