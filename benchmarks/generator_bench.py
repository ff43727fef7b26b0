"""Benchmark of the book generator on a fresh database.

    .venv/bin/python benchmarks/generator_bench.py [--clients 1000000] [--seed 42]
    .venv/bin/python benchmarks/generator_bench.py --postgres postgres://postgres@127.0.0.1:5432/postgres

Migrates a new SQLite database in a temporary directory (or, with --postgres, a scratch database
created on that server and dropped afterwards), times `generate_book` for N clients, and in the
same process times a baseline: writing N pre-built minimal tuples (id, entity, number, surname)
into a scratch table through the same bulk path (executemany on SQLite, COPY on PostgreSQL) and
settings. The ratio generator ÷ baseline says how much the generator costs over the bare insert
floor of this machine, so it stays comparable when the machine is busy. Writes
benchmarks/results/generator.json (SQLite) or generator_postgresql.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "generator.json"


def _setup_django(workdir: Path, database_url: str | None) -> None:
    os.environ["IMALI_SQLITE_PATH"] = str(workdir / "bench.sqlite3")
    os.environ["IMALI_VAR_DIR"] = str(workdir / "var")
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ["IMALI_ENV"] = "development"
    os.environ["IMALI_DEBUG"] = "0"  # DEBUG keeps every query in memory
    os.environ["DJANGO_SETTINGS_MODULE"] = "imali.config.settings"
    sys.path.insert(0, str(ROOT / "src"))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _scratch_database(admin_url: str, name: str, *, drop: bool) -> str:
    """Create (or drop) database `name` on the server of `admin_url`; return its URL."""
    import psycopg

    with psycopg.connect(admin_url.replace("postgres://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        if not drop:
            conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.rsplit("/", 1)[0] + "/" + name


def _baseline(clients: int) -> float:
    """Seconds to bulk-write `clients` pre-built minimal rows into a scratch table, one transaction,
    through the generator's own write path."""
    from django.db import connection, transaction

    from imali.demo.generator import _SqliteBulkSettings, write_rows

    key = "INTEGER" if connection.vendor == "sqlite" else "bigint"
    rows = [(n, 1 + n % 5, n, f"Surname{n % 997}") for n in range(1, clients + 1)]
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE bench_scratch (id {key} PRIMARY KEY, entity_id {key}, number {key}, surname TEXT)")
    with _SqliteBulkSettings(connection):
        started = time.perf_counter()
        with transaction.atomic():
            for start in range(0, clients, 20_000):
                write_rows(connection, "bench_scratch", ("id", "entity_id", "number", "surname"), rows[start:start + 20_000])
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--entities-per-country", type=int, default=1)
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="Run on PostgreSQL: URL of a database on the server to create a scratch database from")
    parser.add_argument("--with-extensions", action="store_true",
                        help="Also run the registered BOOK_EXTENSIONS (loans, setups...); default: clients only")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    output = args.output or (RESULTS.with_name("generator_postgresql.json") if args.postgres else RESULTS)
    scratch = f"imali_genbench_{os.getpid()}"
    database_url = _scratch_database(args.postgres, scratch, drop=False) if args.postgres else None

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="imali-genbench-") as tmp:
        try:
            return _run(args, Path(tmp), database_url, output, load_before)
        finally:
            if args.postgres:
                from django.db import connections

                connections.close_all()
                _scratch_database(args.postgres, scratch, drop=True)


def _run(args, tmp: Path, database_url: str | None, output: Path, load_before) -> int:
    _setup_django(tmp, database_url)
    from django.db import connection

    from imali.demo.generator import BOOK_EXTENSIONS, generate_book
    from imali.tenancy.models import User

    operator = User(username="bench.operator", is_operator=True)
    operator.set_unusable_password()
    operator.save()

    def progress(done: int, total: int, message: str) -> None:
        print(f"  {done:>10,} / {total:,}  {message}", flush=True)

    extensions = list(BOOK_EXTENSIONS) if args.with_extensions else []
    started, cpu_started = time.perf_counter(), time.process_time()
    summary = generate_book(
        clients=args.clients, seed=args.seed, actor=operator,
        entities_per_country=args.entities_per_country, progress=progress, extensions=extensions,
    )
    seconds = time.perf_counter() - started
    # CPU time of this process only (SQLite runs in-process; PostgreSQL's server work is not in it):
    # steadier than wall time when other work competes for the cores.
    cpu_seconds = time.process_time() - cpu_started
    baseline = _baseline(args.clients)
    if connection.vendor == "sqlite":
        db_bytes = sum(p.stat().st_size for p in tmp.glob("bench.sqlite3*"))
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            db_bytes = cursor.fetchone()[0]
    vendor = connection.vendor
    server = connection.pg_version if vendor == "postgresql" else sqlite3.sqlite_version

    ratio = seconds / baseline if baseline else None
    result = {
        "clients": summary.clients,
        "accounts": summary.accounts,
        "entities": len(summary.entities),
        "seconds": round(seconds, 2),
        "clients_per_second": round(summary.clients / seconds) if seconds else None,
        "process_cpu_seconds": round(cpu_seconds, 2),
        # Of `seconds`: building rows in Python vs executemany into the indexed tables.
        "write_seconds": round(summary.write_seconds, 2),
        "build_and_setup_seconds": round(seconds - summary.write_seconds, 2),
        "baseline_seconds": round(baseline, 3),
        "baseline": ("the same number of pre-built 4-column tuples written to a scratch table, one transaction, "
                     + ("COPY" if vendor == "postgresql" else "executemany")),
        "ratio": round(ratio, 2) if ratio else None,
        "goal_seconds": 300,
        "database": vendor,
        "database_bytes": db_bytes,
        "seed": args.seed,
        "extensions": [f"{e.__module__}.{e.__qualname__}" for e in extensions],
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "database_version": server,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"generate_book ({vendor}): {summary.clients:,} clients + {summary.accounts:,} accounts in {seconds:.1f}s "
        f"({result['clients_per_second']:,}/s; writing {summary.write_seconds:.1f}s); baseline {baseline:.2f}s; ratio {result['ratio']}x; "
        f"goal < 300s: {'met' if seconds < 300 else 'NOT met'}"
    )
    print(f"written {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
