"""Importing a day's collection results into the loan book against a raw write of the same
receipt and allocation rows, in the same run.

    .venv/bin/python benchmarks/collections_bench.py [--count 100000] [--instalments 3]
    DATABASE_URL=postgres://... IMALI_PG_TEST_DB=imali_collections_bench .venv/bin/python benchmarks/collections_bench.py

Set-up (not timed, bulk-loaded, not through the services): one entity, a product and one loan
made through the loan services (the template: real terms, a real schedule), copied `count` times
(loans, their `--instalments` monthly instalments and an active NAEDO note with its instalments
each), spread over a few hundred clients. The day's file: one result per loan for its first
instalment (due in the last weeks), 90% collected for the instalment's amount, 10% declined with
a reason.

Ours (timed): `paystream.collections.collections_import` of the file — match every result to its
note instalment and loan, lock the loans, post each collection by the loan book's rules (status,
value date, receipt maximum, allocation fees/VAT/interest/capital, paid-up), write the receipts,
allocations, results, instalments, loans and note instalments, one audit entry per chunk of
5,000, exactly once per reference. Raw (timed): the same receipt and allocation rows, built in
advance (ids, amounts, allocations as ours writes them), written by the database's fastest plain
path (one COPY each on PostgreSQL, executemany on SQLite), in one transaction; no matching, no
rules, no results, no updates, no exactly-once check.

Both sides run with Django's production setting (no debug cursor), on PostgreSQL after an ANALYZE
of the built book (as autovacuum keeps a live one). `--profile`: no figures written; ours once
with each statement's time (and on PostgreSQL with COLLECTIONS_EXPLAIN=1 the first chunk's plans)
and the garbage collector's time, then once under cProfile.

Each side runs in a fresh clone of the built database, in both orders (raw then ours, ours then
raw); "ratio" is the worse of the two. Goal (issue 13): ratio <= 3. Also the same file imported a
second time (everything repeated, nothing posted). Figures go to
benchmarks/results/collections_<database>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from decimal import Decimal

from enqueue_bench import Template, make_entity, setup_database, teardown_database, write_result

CLIENTS = 200
# Production's setting on both sides: Django's debug cursor (every statement's text and parameters
# formatted and kept) is a development aid, not part of the work measured.
os.environ.setdefault("IMALI_DEBUG", "0")


def build(count: int, instalments: int) -> dict:
    """The book and the day's file; returns what the timed runs need (plain values)."""
    from django.db import connection, transaction
    from django.utils import timezone

    from imali.clients.models import AccountKind, ClientAccount
    from imali.clients.services import client_create, employer_create
    from imali.core import bulk
    from imali.demo.generator import reserve_ids, table_columns, write_rows
    from imali.loans import services as loans
    from imali.loans.models import Instalment, Loan
    from imali.paystream.models import NoteInstalment, PromissoryNote, StreamAccount
    from imali.tenancy.models import User

    entity, operator = make_entity("collect")
    actor = User.objects.create(username="bench-officer", entity=entity, disbursement_limit=Decimal("1000000"))
    employer = employer_create(entity=entity, actor=actor, data={"name": "Bench employer", "classification": "government",
                                                                  "economic_sector": "government"})
    product = loans.product_create(entity=entity, actor=actor, data={
        "name": "Bench", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100", "max_principal": "20000",
        "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})
    start = loans.local_today(entity) - dt.timedelta(days=45)
    branch = entity.branches.first()
    clients, accounts = [], []
    for i in range(CLIENTS):
        client = client_create(entity=entity, actor=actor, data={
            "branch": branch, "full_names": "Bench", "surname": f"Client{i}", "id_type": "sa_id",
            "id_number": "7503305044089", "date_of_birth": dt.date(1975, 3, 30), "gender": "M", "employer": employer})
        account = ClientAccount.objects.create(client=client, kind=AccountKind.BANK, bank_name="ABSA", branch_code="632005",
                                               account_number="4012345679", account_type="cheque")
        clients.append(client)
        accounts.append(StreamAccount.objects.create(entity=entity, client=client, account=account, reference=f"A{i}"))
    # The template loan, through the services: real terms and a real schedule.
    template = loans.loan_apply(entity=entity, actor=actor, client=clients[0], product=product, principal="4000",
                                instalments=instalments, applied_on=start, pay_day=start.day)
    loans.loan_approve(loan=template, actor=actor)
    template = loans.loan_disburse(loan=template, actor=actor, payout_account=accounts[0].account, disbursed_on=start)
    loan_row = {k: bulk.stamp(v) if isinstance(v, dt.datetime) else v
                for k, v in Loan.objects.filter(pk=template.pk).values().get().items()}
    inst_rows = list(Instalment.objects.filter(loan=template).order_by("seq").values())
    first_due = inst_rows[0]["due_date"]
    on = min(first_due, loans.local_today(entity))
    now = bulk.stamp(timezone.now())
    loan_cols = [c for c in loan_row if c != "id"] + ["id"]
    inst_cols = [c for c in inst_rows[0] if c != "id"] + ["id"]
    note_cols = ["id", "entity_id", "client_id", "loan_id", "stream", "account_id", "status", "reference", "tracking_days",
                 "total", "created_at"]
    ni_cols = ["id", "note_id", "seq", "action_date", "amount", "tracking_days", "status"]
    outcomes = []
    with transaction.atomic():
        first_loan = reserve_ids(connection, Loan, count)
        first_inst = reserve_ids(connection, Instalment, count * instalments)
        first_note = reserve_ids(connection, PromissoryNote, count)
        first_ni = reserve_ids(connection, NoteInstalment, count * instalments)
        loan_out, inst_out, note_out, ni_out = [], [], [], []
        for k in range(count):
            client, account = clients[k % CLIENTS], accounts[k % CLIENTS]
            loan_id = first_loan + k
            loan_out.append(tuple({**loan_row, "client_id": client.pk, "created_by_id": None, "disbursed_by_id": None,
                                   "approved_by_id": None, "payout_account_id": account.account_id}[c] for c in loan_cols[:-1])
                            + (loan_id,))
            for j, row in enumerate(inst_rows):
                inst_out.append(tuple({**row, "client_id": client.pk, "loan_id": loan_id}[c] for c in inst_cols[:-1])
                                + (first_inst + k * instalments + j,))
            note_id = first_note + k
            note_out.append((note_id, entity.pk, client.pk, loan_id, "naedo", account.pk, "active", f"N{k}", 0,
                             loan_row["total_repayable"], now))
            for j, row in enumerate(inst_rows):
                ni_out.append((first_ni + k * instalments + j, note_id, row["seq"], row["due_date"], row["amount"], 0, "pending"))
            declined = k % 10 == 9
            outcomes.append((k, f"R{k:09d}", f"N{k}", 1, "failed" if declined else "collected", inst_rows[0]["amount"], on,
                             "Insufficient Funds" if declined else ""))
        for model, cols, rows in ((Loan, loan_cols, loan_out), (Instalment, inst_cols, inst_out),
                                  (PromissoryNote, note_cols, note_out), (NoteInstalment, ni_cols, ni_out)):
            table, columns, extras = table_columns(model, cols)
            write_rows(connection, table, columns, (row + extras for row in rows))
    return {"entity": entity.pk, "actor": actor.pk, "first_loan": first_loan, "first_inst": first_inst, "first_note": first_note,
            "first_ni": first_ni,
            "instalments": instalments, "clients": [c.pk for c in clients], "template_instalment": inst_rows[0],
            "outcomes": outcomes, "on": on}


def raw_rows(facts: dict):
    """The receipt and allocation rows ours writes, built in advance (the allocation by the same
    pure code: the first instalment paid in full, fees, VAT, interest, capital)."""
    from django.utils import timezone

    from imali.core import bulk
    from imali.loans.allocation import Owing, allocate

    first = facts["template_instalment"]
    line = allocate(first["amount"], [Owing(key=0, due_date=first["due_date"], fee=first["fee"], vat=first["vat"],
                                            interest=first["interest"], capital=first["capital"])]).lines[0]
    created = bulk.stamp(timezone.now())
    receipts, allocations = [], []
    for position, reference, _note, _seq, result, amount, on, _reason in facts["outcomes"]:
        if result != "collected":
            continue
        receipt_id = 10_000_000 + position
        loan_id = facts["first_loan"] + position
        client_id = facts["clients"][position % CLIENTS]
        receipts.append((receipt_id, facts["entity"], client_id, loan_id, amount, amount, Decimal("0.00"), on, "naedo", reference,
                         "active", None, False, "", facts["actor"], created))
        allocations.append((receipt_id, facts["first_inst"] + position * facts["instalments"], line.fee, line.vat,
                            line.interest, line.capital, None))
    return receipts, allocations


def floor_rows(facts: dict, receipts: list) -> dict:
    """Everything else ours writes, built in advance: the result rows, the paid instalments, the
    loans' totals and the note instalments' statuses (the write floor: ours less matching, reading,
    rules and the exactly-once check)."""
    from django.utils import timezone

    from imali.core import bulk
    from imali.loans.allocation import Owing, allocate

    first = facts["template_instalment"]
    line = allocate(first["amount"], [Owing(key=0, due_date=first["due_date"], fee=first["fee"], vat=first["vat"],
                                            interest=first["interest"], capital=first["capital"])]).lines[0]
    now = bulk.stamp(timezone.now())
    receipt_of = {r[9]: r[0] for r in receipts}
    n = facts["instalments"]
    results, instalments, loans, statuses = [], [], [], {"collected": [], "failed": []}
    for position, reference, _note, _seq, result, amount, on, reason in facts["outcomes"]:
        results.append((facts["entity"], facts["first_note"] + position, facts["first_ni"] + position * n, reference, result,
                        amount, on, reason, "", receipt_of.get(reference), "", now))
        statuses[result].append(facts["first_ni"] + position * n)
        if result == "collected":
            instalments.append((facts["first_inst"] + position * n, line.fee, line.vat, line.interest, line.capital, amount, on))
            loans.append((facts["first_loan"] + position, amount, Decimal("0.00"), on, on.toordinal(), "active", None, None))
    return {"results": results, "instalments": instalments, "loans": loans, "statuses": statuses}


def time_floor(receipts, allocations, floor: dict) -> float:
    from django.db import connection, transaction

    from imali.core import bulk
    from imali.loans.models import Instalment, Loan, Receipt, ReceiptAllocation
    from imali.loans.services import (
        ALLOCATION_COLUMNS,
        INSTALMENT_PAID_FIELDS,
        LOAN_TOTAL_FIELDS,
        RECEIPT_COLUMNS,
    )
    from imali.paystream.collections import RESULT_COLUMNS
    from imali.paystream.models import CollectionResult, NoteInstalment

    started = time.perf_counter()
    with transaction.atomic():
        bulk.insert_rows(Receipt, RECEIPT_COLUMNS, receipts)
        bulk.insert_rows(ReceiptAllocation, ALLOCATION_COLUMNS, allocations)
        bulk.insert_rows(CollectionResult, RESULT_COLUMNS, floor["results"])
        bulk.update_rows(Instalment, INSTALMENT_PAID_FIELDS, floor["instalments"],
                         casts=("numeric", "numeric", "numeric", "numeric", "numeric", "date"))
        bulk.update_rows(Loan, LOAN_TOTAL_FIELDS, floor["loans"],
                         casts=("numeric", "numeric", "date", "integer", "text", "date", "integer"))
        with connection.cursor() as cursor:
            for status, ids in floor["statuses"].items():
                for start in range(0, len(ids), 5_000):
                    part = ids[start:start + 5_000]
                    cursor.execute(f"UPDATE {NoteInstalment._meta.db_table} SET status = %s WHERE id IN ({bulk.placeholders(len(part))})",
                                   [status, *part])
    return time.perf_counter() - started


def time_raw(receipts, allocations) -> float:
    from django.db import transaction

    from imali.core import bulk
    from imali.loans.models import Receipt, ReceiptAllocation
    from imali.loans.services import ALLOCATION_COLUMNS, RECEIPT_COLUMNS

    started = time.perf_counter()
    with transaction.atomic():
        bulk.insert_rows(Receipt, RECEIPT_COLUMNS, receipts)
        bulk.insert_rows(ReceiptAllocation, ALLOCATION_COLUMNS, allocations)
    return time.perf_counter() - started


def time_ours(facts: dict, outcomes) -> tuple[float, dict, float, dict]:
    from django.db.models import Sum

    from imali.loans.models import Loan, Receipt
    from imali.paystream.collections import collections_import
    from imali.tenancy.models import Entity, User

    entity = Entity.objects.get(pk=facts["entity"])
    actor = User.objects.get(pk=facts["actor"])
    started = time.perf_counter()
    summary = collections_import(entity=entity, actor=actor, outcomes=outcomes)
    ours = time.perf_counter() - started
    # The book moved as it should: one receipt per collection, each loan's total what it received.
    receipts = Receipt.objects.filter(entity=entity).aggregate(n=Sum("amount"))["n"]
    assert summary.collected == Receipt.objects.filter(entity=entity).count(), summary
    assert Loan.objects.filter(entity=entity).aggregate(n=Sum("received_total"))["n"] == receipts
    started = time.perf_counter()
    again = collections_import(entity=entity, actor=actor, outcomes=outcomes)
    repeat = time.perf_counter() - started
    assert again.repeated == len(outcomes) and Receipt.objects.filter(entity=entity).count() == summary.collected
    return ours, summary.as_dict(), repeat, again.as_dict()


def profile(template, facts: dict, outcomes) -> None:
    import cProfile
    import gc
    import pstats

    from django.db import connection

    # Each statement's time, by the statement's opening words (the first import and its repeat).
    spent: dict[str, list] = {}

    explained: set[str] = set()

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        key = " ".join(sql.split())[:90]
        if (os.environ.get("COLLECTIONS_EXPLAIN") and connection.vendor == "postgresql" and not many
                and key.startswith(("UPDATE", "CREATE TEMP TABLE", "INSERT INTO \"loans_receiptallocation"))
                and key not in explained):
            # The first chunk's plan of each set-based statement (EXPLAIN ANALYZE runs it: in its place).
            explained.add(key)
            result = execute("EXPLAIN (ANALYZE, BUFFERS) " + sql, params, many, context)
            print(key, *(row[0] for row in context["cursor"].fetchall()), sep="\n  ")
            return result
        try:
            return execute(sql, params, many, context)
        finally:
            entry = spent.setdefault(key, [0, 0.0])
            entry[0] += 1
            entry[1] += time.perf_counter() - started

    # And the time the garbage collector takes (it walks every live object; the bench's own rows too).
    collecting = {"since": 0.0, "seconds": 0.0, "runs": 0}

    def collector(phase, info):
        if phase == "start":
            collecting["since"] = time.perf_counter()
        else:
            collecting["seconds"] += time.perf_counter() - collecting["since"]
            collecting["runs"] += 1

    template.fresh("profile")
    gc.callbacks.append(collector)
    with connection.execute_wrapper(timed):
        ours, summary, _, _ = time_ours(facts, outcomes)
    gc.callbacks.remove(collector)
    connection.close()
    print(f"ours {ours:.2f}s {summary}; garbage collection {collecting['seconds']:.2f}s in {collecting['runs']} runs; "
          f"statements (calls, seconds), the repeat import included:")
    for key, (calls, seconds) in sorted(spent.items(), key=lambda kv: -kv[1][1])[:25]:
        print(f"  {seconds:7.3f}s {calls:5d}x  {key}")
    template.fresh("profile2")
    profiler = cProfile.Profile()
    profiler.enable()
    ours, summary, _, _ = time_ours(facts, outcomes)
    profiler.disable()
    connection.close()
    print(f"ours {ours:.2f}s under cProfile (the repeat import included in the profile below)")
    stats = pstats.Stats(profiler)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=100_000, help="results in the day's file (one per loan)")
    parser.add_argument("--instalments", type=int, default=3, help="instalments per loan")
    parser.add_argument("--profile", action="store_true",
                        help="no figures written: ours once under cProfile, the top functions printed")
    args = parser.parse_args()
    connection, old = setup_database()
    template = Template(connection)
    try:
        from imali.paystream.adapters.base import CollectionOutcome

        started = time.perf_counter()
        facts = build(args.count, args.instalments)
        built = time.perf_counter() - started
        outcomes = [CollectionOutcome(position=p, reference=r, note_reference=n, seq=s, result=k, amount=a, on=o, reason=why)
                    for p, r, n, s, k, a, o, why in facts["outcomes"]]
        receipts, allocations = raw_rows(facts)
        floor = floor_rows(facts, receipts)
        with connection.cursor() as cur:
            if connection.vendor == "sqlite":
                cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                # The planner's statistics of the bulk-loaded tables, as autovacuum keeps them on a
                # live book (cloned with the template: both sides plan from the same figures).
                cur.execute("ANALYZE")
        connection.close()
        if args.profile:
            profile(template, facts, outcomes)
            return
        runs = []
        for order in (("raw", "floor", "ours"), ("ours", "floor", "raw")):
            run = {}
            for side in order:
                template.fresh(f"{side}{len(runs)}")
                if side == "raw":
                    run["raw_seconds"] = time_raw(receipts, allocations)
                elif side == "floor":
                    run["write_floor_seconds"] = time_floor(receipts, allocations, floor)
                else:
                    run["ours_seconds"], run["summary"], run["repeat_seconds"], run["repeat_summary"] = time_ours(facts, outcomes)
                connection.close()
            run["order"] = " then ".join(order)
            run["ratio"] = round(run["ours_seconds"] / run["raw_seconds"], 2)
            run["ratio_to_write_floor"] = round(run["ours_seconds"] / run["write_floor_seconds"], 2)
            runs.append(run)
            template.use_template()
        worst = max(runs, key=lambda r: r["ratio"])
        result = {"benchmark": "collections", "database": connection.vendor, "results": len(outcomes),
                  "instalments_per_loan": args.instalments, "receipt_rows": len(receipts), "allocation_rows": len(allocations),
                  "build_seconds": round(built, 1), "ratio": worst["ratio"], "goal_ratio": 3,
                  "ours_seconds": round(worst["ours_seconds"], 3), "raw_seconds": round(worst["raw_seconds"], 3),
                  "write_floor_seconds": round(worst["write_floor_seconds"], 3),
                  "ratio_to_write_floor": max(r["ratio_to_write_floor"] for r in runs),
                  "results_per_second": round(len(outcomes) / worst["ours_seconds"], 1),
                  "runs": [{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()} for r in runs],
                  "load_average": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}
        path = write_result(f"collections_{connection.vendor}.json", result)
        for r in runs:
            print(f"{r['order']}: ours {r['ours_seconds']:.2f}s, raw {r['raw_seconds']:.3f}s, ratio {r['ratio']}; "
                  f"write floor {r['write_floor_seconds']:.2f}s (ours {r['ratio_to_write_floor']}x); "
                  f"repeat {r['repeat_seconds']:.2f}s ({r['repeat_summary']['repeated']} repeated)")
        print(f"collections: {len(outcomes)} results ({worst['summary']}), ratio {result['ratio']} (goal <= 3), "
              f"load {result['load_average']} → {path}")
    finally:
        template.use_template()
        teardown_database(connection, old)


if __name__ == "__main__":
    main()
