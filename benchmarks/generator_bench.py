"""Benchmark of the book generator on a fresh SQLite database.

    .venv/bin/python benchmarks/generator_bench.py [--clients 1000000] [--seed 42]

Migrates a new SQLite database in a temporary directory, times `generate_book` for N clients, and
in the same process times a baseline: `executemany` of N pre-built minimal tuples (id, entity,
number, surname) into a scratch table on the same connection and settings. The ratio generator ÷
baseline says how much the generator costs over the bare insert floor of this machine, so it
stays comparable when the machine is busy. Writes benchmarks/results/generator.json.
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


def _setup_django(workdir: Path) -> None:
    os.environ["IMALI_SQLITE_PATH"] = str(workdir / "bench.sqlite3")
    os.environ["IMALI_VAR_DIR"] = str(workdir / "var")
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


def _baseline(clients: int) -> float:
    """Seconds to executemany `clients` pre-built minimal rows into a scratch table, one transaction."""
    from django.db import connection, transaction

    rows = [(n, 1 + n % 5, n, f"Surname{n % 997}") for n in range(1, clients + 1)]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_scratch (id INTEGER PRIMARY KEY, entity_id INTEGER, number INTEGER, surname TEXT)")
    from imali.demo.generator import _SqliteBulkSettings

    with _SqliteBulkSettings(connection):
        started = time.perf_counter()
        with transaction.atomic():
            with connection.cursor() as cursor:
                for start in range(0, clients, 20_000):
                    cursor.executemany(
                        "INSERT INTO bench_scratch (id, entity_id, number, surname) VALUES (%s, %s, %s, %s)",
                        rows[start:start + 20_000],
                    )
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--entities-per-country", type=int, default=1)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="imali-genbench-") as tmp:
        _setup_django(Path(tmp))
        from imali.demo.generator import generate_book
        from imali.tenancy.models import User

        operator = User(username="bench.operator", is_operator=True)
        operator.set_unusable_password()
        operator.save()

        marks: list[tuple[float, int]] = []

        def progress(done: int, total: int, message: str) -> None:
            marks.append((time.perf_counter(), done))
            print(f"  {done:>10,} / {total:,}  {message}", flush=True)

        started = time.perf_counter()
        summary = generate_book(
            clients=args.clients, seed=args.seed, actor=operator,
            entities_per_country=args.entities_per_country, progress=progress,
        )
        seconds = time.perf_counter() - started
        baseline = _baseline(args.clients)
        db_bytes = sum(p.stat().st_size for p in Path(tmp).glob("bench.sqlite3*"))

    ratio = seconds / baseline if baseline else None
    result = {
        "clients": summary.clients,
        "accounts": summary.accounts,
        "entities": len(summary.entities),
        "seconds": round(seconds, 2),
        "clients_per_second": round(summary.clients / seconds) if seconds else None,
        # Of `seconds`: building rows in Python vs executemany into the indexed tables.
        "write_seconds": round(summary.write_seconds, 2),
        "build_and_setup_seconds": round(seconds - summary.write_seconds, 2),
        "baseline_seconds": round(baseline, 3),
        "baseline": "executemany of the same number of pre-built 4-column tuples into a scratch table, one transaction",
        "ratio": round(ratio, 2) if ratio else None,
        "goal_seconds": 300,
        "database": "sqlite",
        "database_bytes": db_bytes,
        "seed": args.seed,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"generate_book: {summary.clients:,} clients + {summary.accounts:,} accounts in {seconds:.1f}s "
        f"({result['clients_per_second']:,}/s; writing {summary.write_seconds:.1f}s); baseline {baseline:.2f}s; ratio {result['ratio']}x; "
        f"goal < 300s: {'met' if seconds < 300 else 'NOT met'}"
    )
    print(f"written {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
