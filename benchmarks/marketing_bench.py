"""The client-marketing data set with every column against a bare read of the same rows and
columns, in the same run; and the export of the kept data sets to CSV and XLSX, peak memory.

    .venv/bin/python benchmarks/marketing_bench.py [--clients 100000] [--seed 42] [--keep NAME | --from-book NAME]
    DATABASE_URL=postgres://... .venv/bin/python benchmarks/marketing_bench.py --from-book book1m_pg

The book (benchmarks/_book.py): built for the run (SQLite: a file in a temporary directory;
PostgreSQL: a database `imali_marketing_bench`, dropped afterwards), kept with `--keep NAME`, or
`--from-book NAME`: a private copy of a book kept by `snapshot_bench.py --keep NAME` (the kept
book is never written). Every entity is set "marketing consent not required" (so every client is
in the data set), then for every entity:
- ours: `marketing.selectors.dataset_rows` with "Calculate settlement amount" — the selection with
  its joined client columns, bank account and last notes (one query, streamed), the whole-book
  loan figures (`portfolio_snapshot`) and every one of the 68 columns made for every client,
  materialised;
- floor: a bare read of the same rows and columns: the client columns with the same joins
  (branch, salesperson, employer, paypoint) fetched whole, the entity's active bank accounts and
  notes fetched whole, and the bare aggregates over the loan rows the figures read (the snapshot
  benchmark's floor: same tables, same indexes, no grouping, no figure logic).
The pair runs twice (floor then ours, ours then floor); "ratio" is the worse of ours ÷ floor.
Goal: ratio <= 3. Also the full run as the screen does it (`dataset_run`: rows kept in the
database, 2,000 per transaction), reported beside, not in the ratio.

Export: all the kept data sets (one per entity: every client of the book) are exported in a
child process, once to CSV and once to XLSX, by `marketing.export` (the code of the screen and the
API) to a throw-away file; the child's peak RSS (its VmHWM) and seconds. Goal: peak_rss_mb < 300
at 1M rows. Writes benchmarks/results/marketing_<db>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from _book import add_book_arguments, open_book  # noqa: E402 - the benchmarks' one book set-up

PG_BENCH_DB = "imali_marketing_bench"


def _ours(entities, as_of) -> tuple[float, int]:
    from imali.marketing.selectors import dataset_rows

    started = time.perf_counter()
    rows = 0
    for entity in entities:
        got = list(dataset_rows(entity=entity, filters={"calculate_settlement": True}, as_of=as_of, with_settlement=True))
        rows += len(got)
        del got
    return time.perf_counter() - started, rows


def _floor(entities, as_of) -> tuple[float, int]:
    from django.db import connection, transaction
    from snapshot_bench import _baseline_sql, _session

    from imali.clients.models import Client, ClientAccount, ClientNote, Employer, Paypoint
    from imali.tenancy.models import Branch, User

    c, b, u = Client._meta.db_table, Branch._meta.db_table, User._meta.db_table
    e, p = Employer._meta.db_table, Paypoint._meta.db_table
    a, n = ClientAccount._meta.db_table, ClientNote._meta.db_table
    columns = ", ".join(f"c.{f.column}" for f in Client._meta.concrete_fields)
    clients = (f"SELECT {columns}, b.name, u.first_name, u.last_name, u.username, e.name, e.classification, e.telephone, "
               f"p.number FROM {c} c JOIN {b} b ON b.id = c.branch_id LEFT JOIN {u} u ON u.id = c.salesperson_id "
               f"LEFT JOIN {e} e ON e.id = c.employer_id LEFT JOIN {p} p ON p.id = c.paypoint_id "
               f"WHERE c.entity_id = %(entity)s AND c.status <> 'deceased' ORDER BY c.number")
    accounts = (f"SELECT a.client_id, a.bank_name, a.account_type, a.account_number, a.branch_code FROM {a} a "
                f"JOIN {c} c ON c.id = a.client_id WHERE c.entity_id = %(entity)s AND a.kind = 'bank' AND a.is_active")
    notes = (f"SELECT t.client_id, t.text, t.is_display_note, t.created_at FROM {n} t JOIN {c} c ON c.id = t.client_id "
             f"WHERE c.entity_id = %(entity)s")
    figures = _baseline_sql(vendor=connection.vendor)
    started = time.perf_counter()
    rows = 0
    for entity in entities:
        params = {"entity": entity.pk, "aso": as_of.toordinal()}
        with transaction.atomic(), connection.cursor() as cursor:
            _session(cursor)
            cursor.execute(clients, params)
            rows += len(cursor.fetchall())
            for sql in (accounts, notes, *figures.values()):
                cursor.execute(sql, params)
                cursor.fetchall()
    return time.perf_counter() - started, rows


def _export_child(dataset_ids: list[int], fmt: str) -> int:
    """In the child process: export each data set, as the screen does, to a throw-away file; the
    bytes written."""
    from imali.marketing.export import dataset_csv, dataset_xlsx
    from imali.marketing.models import DataSet
    from imali.messaging import reports

    written = 0
    for dataset in DataSet.objects.filter(pk__in=dataset_ids):
        pieces = dataset_csv(dataset) if fmt == "csv" else reports.file_stream(dataset_xlsx(dataset)[0])
        with open(os.devnull, "wb") as sink:
            for piece in pieces:
                written += sink.write(piece)
    return written


def _export(dataset_ids: list[int], fmt: str) -> tuple[float, float, float]:
    """(seconds, peak RSS in MB, file size in MB) of a child process exporting the data sets."""
    started = time.perf_counter()
    child = subprocess.run([sys.executable, __file__, "--export-child", fmt, "--datasets",
                            ",".join(map(str, dataset_ids))], env=os.environ.copy(), capture_output=True, text=True)
    if child.returncode:
        raise SystemExit(f"export child failed ({fmt}): {child.returncode}\n{child.stderr[-2000:]}")
    said = json.loads(child.stdout.strip().splitlines()[-1])
    return time.perf_counter() - started, said["peak_kb"] / 1024, said["bytes"] / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_book_arguments(parser, clients=100_000, seed=42)
    parser.add_argument("--export-child", choices=["csv", "xlsx"], help=argparse.SUPPRESS)
    parser.add_argument("--datasets", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.export_child:
        sys.path.insert(0, str(ROOT / "src"))
        import django

        django.setup()
        written = _export_child([int(i) for i in args.datasets.split(",")], args.export_child)
        # This process's own peak (VmHWM of its memory map): wait4's ru_maxrss would also count the
        # parent's memory the child shared before exec.
        peak_kb = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                       if line.startswith("VmHWM:"))
        print(json.dumps({"peak_kb": peak_kb, "bytes": written}))
        return

    with tempfile.TemporaryDirectory() as tmp, open_book(
            workdir=Path(tmp), fresh_db=PG_BENCH_DB, clients=args.clients, seed=args.seed, keep=args.keep,
            from_book=args.from_book) as opened:
        result = _measure(opened)
    out = ROOT / "benchmarks" / "results" / f"marketing_{result['database']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"ratio (data set ÷ floor) = {result['ratio']}, export peak_rss_mb = {result['peak_rss_mb']}")


def _measure(opened) -> dict:
    import datetime as dt

    from django.db import connection, connections

    from imali.loans.models import Instalment, Loan
    from imali.marketing.models import DataSet, DataSetRow
    from imali.marketing.services import dataset_run
    from imali.tenancy.models import Entity, User

    book = opened.facts
    Entity.objects.filter(pk__in=book["entity_ids"]).update(marketing_consent_not_required=True)
    entities = list(Entity.objects.filter(pk__in=book["entity_ids"]).order_by("pk"))
    as_of = dt.date.fromisoformat(book["as_of"])
    load_before = os.getloadavg()[0]
    _log(f"book ready ({opened.source}, copied in {opened.copy_seconds:.0f} s): {book['clients']} clients")
    floor_a, floor_rows = _floor(entities, as_of)
    _log(f"floor {floor_a:.1f} s")
    ours_a, ours_rows = _ours(entities, as_of)
    _log(f"ours {ours_a:.1f} s")
    ours_b, _ = _ours(entities, as_of)
    _log(f"ours {ours_b:.1f} s")
    floor_b, _ = _floor(entities, as_of)
    _log(f"floor {floor_b:.1f} s")
    ratio = max(ours_a / floor_a, ours_b / floor_b)

    # The run as the screen starts it, rows kept; then the exports of what it kept.
    started = time.perf_counter()
    dataset_ids = []
    for entity in entities:
        admin = User.objects.filter(entity=entity).order_by("pk").first()
        dataset = DataSet.objects.create(entity=entity, created_by=admin, as_of=as_of,
                                         filters={"calculate_settlement": True})
        dataset = dataset_run(dataset_id=dataset.pk)
        assert dataset.state == "done", dataset.error
        dataset_ids.append(dataset.pk)
    run_seconds = time.perf_counter() - started
    kept_rows = DataSetRow.objects.filter(dataset_id__in=dataset_ids).count()
    _log(f"run with rows kept {run_seconds:.1f} s ({kept_rows} rows)")
    result = {
        "benchmark": "client-marketing data set (every column) vs a bare read of the same rows and columns",
        "database": connection.vendor,
        "clients": book["clients"], "loans": Loan.objects.count(), "instalments": Instalment.objects.count(),
        "entities": len(entities),
        **opened.describe(),
        "data_set_rows": ours_rows, "floor_client_rows": floor_rows,
        "generate_seconds": round(book["generate_seconds"], 1),
        "ours_seconds": [round(ours_a, 3), round(ours_b, 3)],
        "floor_seconds": [round(floor_a, 3), round(floor_b, 3)],
        "ratio": round(ratio, 2),
        "run_with_rows_kept_seconds": round(run_seconds, 2), "rows_kept": kept_rows,
        "selection_plan": _selection_plan(entities[0], as_of),
    }
    connections.close_all()  # the children open their own; a PostgreSQL copy is dropped only when none is left
    csv_seconds, csv_mb, csv_size = _export(dataset_ids, "csv")
    _log(f"csv {csv_seconds:.1f} s, peak RSS {csv_mb:.0f} MB, file {csv_size:.0f} MB")
    xlsx_seconds, xlsx_mb, xlsx_size = _export(dataset_ids, "xlsx")
    _log(f"xlsx {xlsx_seconds:.1f} s, peak RSS {xlsx_mb:.0f} MB, file {xlsx_size:.0f} MB")
    load_after = os.getloadavg()[0]
    result.update({
        "export_rows": kept_rows,
        "export_csv_seconds": round(csv_seconds, 2), "export_csv_peak_rss_mb": round(csv_mb, 1),
        "export_xlsx_seconds": round(xlsx_seconds, 2), "export_xlsx_peak_rss_mb": round(xlsx_mb, 1),
        "export_csv_file_mb": round(csv_size, 1), "export_xlsx_file_mb": round(xlsx_size, 1),
        "peak_rss_mb": round(max(csv_mb, xlsx_mb), 1),
        "load_average_1min": [round(load_before, 1), round(load_after, 1)],
        "cpus": os.cpu_count(),
        "goal": "ratio <= 3; peak_rss_mb < 300 at 1M rows",
        "python": platform.python_version(),
        "machine": platform.machine(),
    })
    return result


def _selection_plan(entity, as_of) -> list[str]:
    """The database's plan of the data set's one selection query (clients with their joined
    columns, bank account and last notes), as the planner states it."""
    from django.db import connection

    from imali.marketing import selectors

    filters = {"calculate_settlement": True}
    query = selectors.client_columns(selectors.dataset_selection(entity=entity, filters=filters, as_of=as_of),
                                     filters=filters)
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("EXPLAIN " + sql, params)
            return [row[0] for row in cursor.fetchall()]
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return [row[-1] for row in cursor.fetchall()]


def _log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S', time.gmtime())} {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
