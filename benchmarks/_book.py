"""The loan book the benchmarks run on: one set-up for snapshot_bench, batch_bench and reminders_bench.

A book is built with the demo generator and its loan extension, in one of three ways:
- fresh (the default): SQLite, a file in the run's temporary directory; PostgreSQL, a database
  `fresh_db` on the server of DATABASE_URL, dropped afterwards;
- kept (`--keep NAME`): SQLite /tmp/NAME.sqlite3, PostgreSQL database NAME, the book's facts in
  /tmp/NAME.json; built when /tmp/NAME.json is missing, reused (and changed by the run) when present;
- a private copy of a kept book (`--from-book NAME`): SQLite, the file copied into the run's
  temporary directory (SQLite's online backup, read-only on the kept file); PostgreSQL,
  `CREATE DATABASE <copy> TEMPLATE NAME`, dropped afterwards. The kept book is never written,
  so a 1M-client book built once (hours on a small machine) serves any number of runs.

    with open_book(workdir=Path(tmp), keep=args.keep, from_book=args.from_book, fresh_db="imali_x_bench",
                   clients=args.clients, seed=args.seed) as book:
        ...  # Django is set up on the book's database; book.facts: clients, entity_ids, as_of, generate_seconds
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEPT_DIR = Path("/tmp")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,50}$")


def add_book_arguments(parser: argparse.ArgumentParser, *, clients: int, seed: int, keep: bool = True) -> None:
    """The book options of a bench: --clients, --seed, --from-book NAME and, for a bench that may
    run again on the book it leaves behind (`keep`), --keep NAME."""
    parser.add_argument("--clients", type=int, default=clients, help="clients of a book built for this run")
    parser.add_argument("--seed", type=int, default=seed)
    books = parser.add_mutually_exclusive_group()
    if keep:
        books.add_argument("--keep", metavar="NAME", help="keep the book under this name and reuse it when it exists")
    else:
        parser.set_defaults(keep=None)
    books.add_argument("--from-book", metavar="NAME",
                       help="run on a private copy of the kept book NAME (left as it is); --clients and --seed "
                            "are the book's")


@dataclass
class Book:
    facts: dict
    source: str  # "fresh", "kept" or "copy of NAME"
    copy_seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """The book's facts for a result file."""
        return {"book": self.source, "book_copy_seconds": round(self.copy_seconds, 1)}


def _facts_path(name: str) -> Path:
    return KEPT_DIR / f"{name}.json"


def _check_name(name: str, option: str) -> None:
    if not _NAME.match(name):
        raise SystemExit(f"{option}: a book's name is lower-case letters, digits and _ (it is a database name): {name!r}")


def _django_env(workdir: Path) -> None:
    os.environ["IMALI_VAR_DIR"] = str(workdir / "var")
    os.environ.pop("REDIS_URL", None)
    os.environ["IMALI_ENV"] = "development"
    os.environ["IMALI_DEBUG"] = "0"  # DEBUG keeps every query in memory
    os.environ["DJANGO_SETTINGS_MODULE"] = "imali.config.settings"


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite file through the online backup API, the source opened read-only
    (its WAL, if any, is read, never checkpointed into the kept file)."""
    if not source.exists():
        raise SystemExit(f"--from-book: {source} is missing (build the book with --keep first)")
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()


def _pg_admin(url: str):
    import psycopg

    return psycopg.connect(url, autocommit=True)


def _pg_copy(url: str, kept: str, copy: str) -> None:
    """The kept database as a template of a new one. PostgreSQL refuses while anyone is connected to
    the template: say so rather than wait."""
    import psycopg

    with _pg_admin(url) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [kept]).fetchone() is None:
            raise SystemExit(f"--from-book: there is no database {kept} on the server of DATABASE_URL")
        conn.execute(f'DROP DATABASE IF EXISTS "{copy}"')
        try:
            conn.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{kept}"')
        except psycopg.errors.ObjectInUse as exc:
            raise SystemExit(f"--from-book: database {kept} is in use by another session; PostgreSQL copies a "
                             f"database only while nobody is connected to it ({exc})") from exc


def _pg_drop(url: str, name: str) -> None:
    from django.conf import settings

    if settings.configured:
        from django.db import connections

        connections.close_all()
    with _pg_admin(url) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


@contextlib.contextmanager
def open_book(*, workdir: Path, fresh_db: str, clients: int, seed: int, keep: str | None = None,
              from_book: str | None = None, analyze: bool = True) -> Iterator[Book]:
    """Set Django up on the run's book (see the module's docstring), build it when needed, yield it,
    and drop what the run made (a fresh or copied PostgreSQL database) however the run ends."""
    _django_env(workdir)
    url = os.environ.get("DATABASE_URL", "")
    drop: str | None = None
    copy_seconds = 0.0
    facts: dict | None = None
    if from_book:
        _check_name(from_book, "--from-book")
        facts_file = _facts_path(from_book)
        if not facts_file.exists():
            raise SystemExit(f"--from-book: {facts_file} is missing (build the book with --keep {from_book} first)")
        facts = json.loads(facts_file.read_text())
        source = f"copy of {from_book}"
        started = time.perf_counter()
        if url:
            copy = f"{from_book}_copy_{os.getpid()}"
            _pg_copy(url, from_book, copy)
            drop = copy
        else:
            target = workdir / "book.sqlite3"
            _copy_sqlite(KEPT_DIR / f"{from_book}.sqlite3", target)
            os.environ["IMALI_SQLITE_PATH"] = str(target)
        copy_seconds = time.perf_counter() - started
    elif keep:
        _check_name(keep, "--keep")
        source = "kept"
        if _facts_path(keep).exists():
            facts = json.loads(_facts_path(keep).read_text())
        if url:
            if facts is None:
                with _pg_admin(url) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{keep}"')
                    conn.execute(f'CREATE DATABASE "{keep}"')
        else:
            path = KEPT_DIR / f"{keep}.sqlite3"
            if facts is None:
                for stale in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
                    stale.unlink(missing_ok=True)
            os.environ["IMALI_SQLITE_PATH"] = str(path)
    else:
        source = "fresh"
        if url:
            with _pg_admin(url) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{fresh_db}"')
                conn.execute(f'CREATE DATABASE "{fresh_db}"')
            drop = fresh_db
        else:
            os.environ["IMALI_SQLITE_PATH"] = str(workdir / "bench.sqlite3")
    name = drop or keep or from_book
    if url and name:
        base, _, _ = url.rpartition("/")
        os.environ["DATABASE_URL"] = f"{base}/{name}"
    try:
        sys.path.insert(0, str(ROOT / "src"))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)  # on a copy: the copy only
        built = facts is None
        if built:
            facts = _build(clients=clients, seed=seed)
            if keep:
                _facts_path(keep).write_text(json.dumps(facts))
        # As after any bulk load: fresh statistics so every side gets the planner's best, and on
        # PostgreSQL a vacuumed visibility map so index-only scans need not visit the heap. A copy
        # carries the statistics its kept book was given when built.
        if analyze and not from_book:
            _analyze()
        yield Book(facts=facts, source=source, copy_seconds=copy_seconds)
    finally:
        if url and drop:
            _pg_drop(url, drop)


def _build(*, clients: int, seed: int) -> dict:
    from imali.demo.generator import generate_book
    from imali.loans.demo_data import add_loans
    from imali.tenancy.models import User

    operator = User.objects.create(username="bench-operator", is_operator=True)
    started = time.perf_counter()
    summary = generate_book(clients=clients, seed=seed, actor=operator, extensions=[add_loans])
    return {"clients": summary.clients, "entity_ids": [b.entity_id for b in summary.entities],
            "as_of": summary.now.date().isoformat(), "generate_seconds": time.perf_counter() - started}


def _analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE")
        else:
            cursor.execute("PRAGMA analysis_limit = 2000")  # sampled statistics: minutes less on 1M
            cursor.execute("ANALYZE")


def bench_operator():
    """The operator user of the book (the one that built it)."""
    from imali.tenancy.models import User

    return User.objects.filter(is_operator=True).order_by("pk").first() or User.objects.create(
        username="bench-operator", is_operator=True)
