"""Statement import of a large provider statement against a raw write of the same receipts, in the
same run on the same database.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python benchmarks/mobile_statement_bench.py [--lines 100000]

A fresh migrated database with one lender, its M-PESA setup and `--loans` loans on the book (one
loan made through the loan services, then copied row for row: clients, loans and instalments, so
the book is real and the load is quick). A CSV in the M-PESA portal layout with `--lines` payment
lines: most name a loan (L<number>), some a client number, 2 % an account nobody has (suspense).

Measured:
- import: `statement_confirm_run`, the background job a confirm starts: read the CSV from the
  database, match every line (one read of the book), post the receipts set-based by the loan
  book's rules (mobilemoney.bulk, per chunk of 5,000 lines: the recorded check, the loans locked
  with their open instalments, allocation in memory, then receipts, allocation lines,
  instalments, loans and provider transactions written one statement per table, one audit entry
  per chunk), count and audit the import. The clients have no cellphone here, so no confirmation
  SMS is due: those are queued after the import, one short transaction each, and are not part of
  this figure. "import_phases_seconds" says where the time went.
- raw write (baseline): the same number of receipts and one allocation line each, built in memory
  beforehand, written in chunks of the same size, one transaction per chunk, two ways: Django's
  bulk_create ("orm") and explicit ids plus the database's fastest plain path ("copy": COPY on
  PostgreSQL, executemany on SQLite: the primitive the import writes with), each once before the
  import and once after it. The rows are deleted afterwards (not timed).

"ratio" = import seconds / the fastest of the four raw writes (goal <= 3); "ratio_to_orm_bulk_create"
against the faster bulk_create run. Checks exactly once: every matched line
became one receipt, and importing the same file again adds nothing. Writes
benchmarks/results/mobile_statement_<vendor>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import sys
import tempfile
import time
import zoneinfo
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "imali.config.settings")


def seed(loans: int):
    """One lender, an M-PESA setup, and `loans` disbursed loans of clients without a cellphone."""
    from django.db import transaction
    from tests import factories

    from imali.clients.models import Client
    from imali.clients.services import client_account_add
    from imali.loans.models import Instalment, Loan
    from imali.loans.services import loan_apply, loan_approve, loan_disburse, product_create
    from imali.mobilemoney.services import setup_save
    from imali.tenancy.models import Branch, User
    from imali.tenancy.rights import Right
    from imali.tenancy.services import entity_create

    operator = User.objects.create(username="bench-op", is_operator=True)
    entity = entity_create(actor=operator, data={"name": "Bench lender", "code": "bench", "country": "ZA", "modules": ["maxsms"]})
    Branch.objects.create(entity=entity, code="HO", name="Head Office", telephone="")
    user = factories.make_user(entity=entity, rights=list(Right), username="bench")
    user.disbursement_limit = Decimal("100000000")
    user.save()
    product = product_create(entity=entity, actor=user, data={
        "name": "Bench", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100",
        "max_principal": "50000", "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "0", "vat_rate": "15"})
    today = dt.date.today() - dt.timedelta(days=3)
    client = factories.make_client(entity=entity, id_type="passport", id_number="B00000000", cellphone="")
    account = client_account_add(client=client, actor=None, data={
        "kind": "bank", "purpose": "both", "bank_name": "Capitec", "branch_code": "470010",
        "account_number": "1234567890", "account_type": "savings"})
    loan = loan_apply(entity=entity, actor=user, client=client, product=product, principal="20000", instalments=12,
                      applied_on=today)
    loan_approve(loan=loan, actor=user)
    loan = loan_disburse(loan=loan, actor=user, payout_account=account, disbursed_on=today)
    template_instalments = list(Instalment.objects.filter(loan=loan))
    with transaction.atomic():
        def copy_of(row, **changes):
            values = {f.attname: getattr(row, f.attname) for f in type(row)._meta.concrete_fields}
            values.update(id=None, **changes)
            return type(row)(**values)

        template_client, template_loan = Client.objects.get(pk=client.pk), Loan.objects.get(pk=loan.pk)
        clients = [copy_of(template_client, number=client.number + i, id_number=f"B{i:08d}") for i in range(1, loans)]
        Client.objects.bulk_create(clients, batch_size=2000)
        copies = [copy_of(template_loan, client_id=c.pk) for c in clients]
        Loan.objects.bulk_create(copies, batch_size=2000)
        rows = []
        for copy in copies:
            rows.extend(copy_of(inst, loan_id=copy.pk, client_id=copy.client_id) for inst in template_instalments)
        Instalment.objects.bulk_create(rows, batch_size=5000)
    setup = setup_save(entity=entity, actor=user, data={
        "provider": "mpesa", "base_url": "http://127.0.0.1:9", "short_code": "600000", "consumer_key": "k",
        "consumer_secret": "s", "callback_base_url": "http://127.0.0.1:1/"})
    book = [(loan.pk, client.number)] + [(c.pk, cl.number) for c, cl in zip(copies, clients, strict=True)]
    return entity, setup, user, book


def statement_csv(entity, book, lines: int) -> tuple[bytes, int]:
    rng = random.Random(14)
    zone = zoneinfo.ZoneInfo(entity.time_zone)
    when = (dt.datetime.now(zone) - dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    out = ["Receipt No.,Completion Time,Initiation Time,Details,Transaction Status,Paid In,Withdrawn,Balance,"
           "Reason Type,Other Party Info,A/C No."]
    unmatched = 0
    for n in range(lines):
        loan_id, client_number = rng.choice(book)
        pick = rng.random()
        if pick < 0.02:
            reference, unmatched = f"NOBODY{n}", unmatched + 1
        elif pick < 0.10:
            reference = str(client_number)
        else:
            reference = f"L{loan_id}"
        out.append(f"BS{n:08d},{when},{when},Pay Bill,Completed,10.00,,,Pay Bill,27820000000 - BENCH PAYER,{reference}")
    return ("\n".join(out) + "\n").encode(), unmatched


def raw_rows(entity, book, lines: int):
    """`lines` receipts and one allocation line each, as the import writes them (one loan picked
    per line as the statement does), built beforehand: (receipt objects, receipt tuples,
    allocation tuples without the receipt id)."""
    from django.utils import timezone

    from imali.core import bulk
    from imali.loans.models import Instalment, Loan, Receipt

    first_instalment = dict(Instalment.objects.filter(loan__entity=entity, seq=1).values_list("loan_id", "pk"))
    clients = dict(Loan.objects.filter(entity=entity).values_list("pk", "client_id"))
    rng = random.Random(15)
    value_date = dt.date.today()
    created = bulk.stamp(timezone.now())
    objects, tuples, allocations = [], [], []
    ten, nought = Decimal("10.00"), Decimal("0.00")
    for n in range(lines):
        loan_id = rng.choice(book)[0]
        objects.append(Receipt(entity=entity, client_id=clients[loan_id], loan_id=loan_id, amount=ten, allocated=ten,
                               change=nought, value_date=value_date, payback_type="mobile_money",
                               external_reference=f"RAW{n:08d}", loan_status_before="active"))
        # RECEIPT_COLUMNS order, the id filled in when written.
        tuples.append([None, entity.pk, clients[loan_id], loan_id, ten, ten, nought, value_date, "mobile_money",
                       f"RAW{n:08d}", "active", None, False, "", None, created])
        allocations.append((first_instalment[loan_id], ten, nought, nought, nought, None))
    return objects, tuples, allocations


def raw_write(rows, chunk: int, how: str) -> float:
    """Insert the receipts and their allocation lines in chunks of the import's size, one
    transaction each; the seconds of the inserts. how="orm": Django's bulk_create (the usual plain
    write); how="copy": ids from the sequence and the database's fastest plain path (COPY on
    PostgreSQL, executemany on SQLite), the primitive the import itself writes with."""
    from django.db import transaction

    from imali.core import bulk
    from imali.loans.models import Receipt, ReceiptAllocation
    from imali.loans.services import ALLOCATION_COLUMNS, RECEIPT_COLUMNS

    objects, tuples, allocations = rows
    lines = len(objects)
    started = time.perf_counter()
    for start in range(0, lines, chunk):
        with transaction.atomic():
            if how == "orm":
                part = objects[start:start + chunk]
                for receipt in part:
                    receipt.pk = None
                Receipt.objects.bulk_create(part, batch_size=1000)
                ReceiptAllocation.objects.bulk_create(
                    [ReceiptAllocation(receipt=r, instalment_id=a[0], fee=a[1], vat=a[2], interest=a[3], capital=a[4])
                     for r, a in zip(part, allocations[start:start + chunk], strict=True)], batch_size=2000)
            else:
                part = tuples[start:start + chunk]
                ids = bulk.new_ids(Receipt, len(part))
                for new_id, row in zip(ids, part, strict=True):
                    row[0] = new_id
                bulk.insert_rows(Receipt, RECEIPT_COLUMNS, [tuple(row) for row in part])
                bulk.insert_rows(ReceiptAllocation, ALLOCATION_COLUMNS,
                                 [(new_id, *a) for new_id, a in zip(ids, allocations[start:start + chunk], strict=True)])
    seconds = time.perf_counter() - started
    # Plain deletes (Django's delete() would load every row to cascade).
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {ReceiptAllocation._meta.db_table} WHERE receipt_id IN "
                       f"(SELECT id FROM {Receipt._meta.db_table} WHERE external_reference LIKE 'RAW%%')")
        cursor.execute(f"DELETE FROM {Receipt._meta.db_table} WHERE external_reference LIKE 'RAW%%'")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--loans", type=int, default=10_000)
    parser.add_argument("--profile", action="store_true", help="print where the import spends its time")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection

    test = connection.settings_dict.setdefault("TEST", {})
    if connection.vendor == "sqlite":
        test["NAME"] = str(Path(tempfile.mkdtemp(prefix="imali-bench-")) / "bench.sqlite3")
    else:
        test["NAME"] = os.environ.get("IMALI_PG_TEST_DB", "imali_bench_mobile_statement")
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        from imali.loans.models import Receipt
        from imali.mobilemoney import bulk
        from imali.mobilemoney.models import ProviderTransaction, StatementImport
        from imali.mobilemoney.services import statement_confirm_run, statement_upload

        started = time.perf_counter()
        entity, setup, user, book = seed(args.loans)
        seed_seconds = time.perf_counter() - started
        content, unmatched = statement_csv(entity, book, args.lines)

        rows = raw_rows(entity, book, args.lines)
        raws = {"before": {how: raw_write(rows, bulk.CHUNK_LINES, how) for how in ("orm", "copy")}}

        preview_started = time.perf_counter()
        preview = statement_upload(setup=setup, actor=user, file_name="bench.csv", content=content, columns={})
        preview_seconds = time.perf_counter() - preview_started
        statement = preview.statement
        StatementImport.objects.filter(pk=statement.pk).update(state="queued", confirmed_by=user)
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        bulk.timings = {}
        import_started = time.perf_counter()
        done = statement_confirm_run(statement_id=statement.pk)
        import_seconds = time.perf_counter() - import_started
        phases = {name: round(seconds, 3) for name, seconds in bulk.timings.items()}
        bulk.timings = None
        if profiler is not None:
            import pstats

            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        assert done.state == "done", done.failure

        receipts = Receipt.objects.filter(entity=entity, external_reference__startswith="BS").count()
        raws["after"] = {how: raw_write(rows, bulk.CHUNK_LINES, how) for how in ("copy", "orm")}
        raw_seconds = min(seconds for run in raws.values() for seconds in run.values())
        again = statement_upload(setup=setup, actor=user, file_name="bench-again.csv", content=content, columns={})
        StatementImport.objects.filter(pk=again.statement.pk).update(state="queued", confirmed_by=user)
        again_started = time.perf_counter()
        redone = statement_confirm_run(statement_id=again.statement.pk)
        again_seconds = time.perf_counter() - again_started
        exactly_once = (receipts == done.posted == args.lines - unmatched and done.suspense == unmatched
                        and redone.posted == 0 and redone.suspense == 0
                        and Receipt.objects.filter(entity=entity, external_reference__startswith="BS").count() == receipts
                        and ProviderTransaction.objects.filter(setup=setup).count() == args.lines)
        result = {
            "benchmark": "mobile_statement", "vendor": connection.vendor, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(), "load_average": [round(x, 2) for x in os.getloadavg()],
            "lines": args.lines, "loans": args.loans, "chunk_lines": bulk.CHUNK_LINES, "seed_seconds": round(seed_seconds, 1),
            "preview_seconds": round(preview_seconds, 3),
            "import": {"seconds": round(import_seconds, 3), "lines_per_s": round(args.lines / import_seconds, 1),
                       "posted": done.posted, "suspense": done.suspense, "already_recorded": done.already_recorded},
            "import_phases_seconds": phases,
            "raw_write": {"seconds": round(raw_seconds, 3), "rows_per_s": round(args.lines / raw_seconds, 1),
                          "runs": {when: {how: round(x, 3) for how, x in run.items()} for when, run in raws.items()}},
            "reimport": {"seconds": round(again_seconds, 3), "posted": redone.posted, "already_recorded": redone.already_recorded},
            "exactly_once": exactly_once,
            "ratio": round(import_seconds / raw_seconds, 3),
            "ratio_to_orm_bulk_create": round(import_seconds / min(run["orm"] for run in raws.values()), 3),
            "goals": {"ratio": "<= 3"},
        }
        if not args.profile:  # a profiled run is several times slower: its figures are not results
            out = ROOT / "benchmarks" / "results" / f"mobile_statement_{connection.vendor}.json"
            out.write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


if __name__ == "__main__":
    main()
