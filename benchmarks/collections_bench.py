"""Importing a day's collection results into the loan book against a raw write of the same
receipt rows, in the same run.

    .venv/bin/python benchmarks/collections_bench.py [--count 2000] [--per-loan 4]

Set-up (not timed): `count / per-loan` loans paid out through the loan services 120 days back,
each with a promissory note of its open instalments (rows written directly: creating notes is
not what is measured). Ours (timed): `paystream.services.collections_import` of one result per
instalment — 90% collected (each posts a receipt through `loans.services.receipt_post`: locks
the loan, allocates fees/VAT/interest/capital, updates the instalments and the loan, audits),
10% declined with a reason — exactly once per stream reference. Baseline (timed): one
`bulk_create` of the same number of bare Receipt rows (no allocation, no instalment updates, no
audit, no exactly-once check). Goal (issue 13): ratio <= 3. Figures go to
benchmarks/results/collections_<database>.json with figure "ratio".
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from decimal import Decimal

from enqueue_bench import make_entity, setup_database, teardown_database, write_result


def build(count: int, per_loan: int):
    from imali.clients.models import AccountKind, ClientAccount
    from imali.clients.services import client_create, employer_create
    from imali.loans import services as loans
    from imali.loans.models import Instalment
    from imali.paystream.adapters.base import CollectionOutcome
    from imali.paystream.models import NoteInstalment, PromissoryNote, StreamAccount
    from imali.tenancy.models import User

    entity, operator = make_entity("collect")
    actor = User.objects.create(username="bench-officer", entity=entity, disbursement_limit=Decimal("1000000"))
    employer = employer_create(entity=entity, actor=actor, data={"name": "Bench employer", "classification": "government",
                                                                  "economic_sector": "government"})
    product = loans.product_create(entity=entity, actor=actor, data={
        "name": "Bench", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100", "max_principal": "20000",
        "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})
    start = dt.date.today() - dt.timedelta(days=30 * per_loan + 10)
    outcomes, n = [], 0
    for i in range(count // per_loan):
        client = client_create(entity=entity, actor=actor, data={
            "branch": entity.branches.first(), "full_names": "Bench", "surname": f"Client{i}", "id_type": "sa_id",
            "id_number": "7503305044089", "date_of_birth": dt.date(1975, 3, 30), "gender": "M", "employer": employer})
        account = ClientAccount.objects.create(client=client, kind=AccountKind.BANK, bank_name="ABSA", branch_code="632005",
                                               account_number="4012345679", account_type="cheque")
        loan = loans.loan_apply(entity=entity, actor=actor, client=client, product=product, principal="4000",
                                instalments=per_loan, applied_on=start, pay_day=25)
        loans.loan_approve(loan=loan, actor=actor)
        loan = loans.loan_disburse(loan=loan, actor=actor, payout_account=account, disbursed_on=start)
        stream_account = StreamAccount.objects.create(entity=entity, client=client, account=account, reference=f"A{i}")
        note = PromissoryNote.objects.create(entity=entity, client=client, loan=loan, stream="naedo", account=stream_account,
                                             status="active", reference=f"N{i}", total=loan.total_repayable)
        for row in Instalment.objects.filter(loan=loan).order_by("seq"):
            NoteInstalment.objects.create(note=note, seq=row.seq, action_date=row.due_date, amount=row.amount)
            n += 1
            declined = n % 10 == 0
            outcomes.append(CollectionOutcome(position=n, reference=f"R{n:09d}", note_reference=note.reference, seq=row.seq,
                                              result="failed" if declined else "collected", amount=row.amount,
                                              on=min(row.due_date, dt.date.today()), reason="Insufficient Funds" if declined else ""))
    return entity, outcomes


def raw(entity, outcomes) -> float:
    from imali.loans.models import Loan, Receipt

    loan_of = dict(Loan.objects.filter(entity=entity).values_list("promissory_notes__reference", "id"))
    client_of = dict(Loan.objects.filter(entity=entity).values_list("id", "client_id"))
    rows = [Receipt(entity=entity, client_id=client_of[loan_of[o.note_reference]], loan_id=loan_of[o.note_reference],
                    amount=o.amount, value_date=o.on, payback_type="naedo", external_reference=f"RAW{o.reference}",
                    loan_status_before="active") for o in outcomes]
    started = time.perf_counter()
    Receipt.objects.bulk_create(rows, batch_size=1000)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--per-loan", type=int, default=4)
    args = parser.parse_args()
    connection, old = setup_database()
    try:
        from imali.paystream.services import collections_import

        entity, outcomes = build(args.count, args.per_loan)
        raw_seconds = raw(entity, outcomes)
        started = time.perf_counter()
        summary = collections_import(entity=entity, actor=None, outcomes=outcomes)
        ours = time.perf_counter() - started
        started = time.perf_counter()
        repeated = collections_import(entity=entity, actor=None, outcomes=outcomes)
        again = time.perf_counter() - started
        result = {"benchmark": "collections", "database": connection.vendor, "results": len(outcomes),
                  "ours_seconds": round(ours, 3), "raw_seconds": round(raw_seconds, 3), "ratio": round(ours / raw_seconds, 1),
                  "results_per_second": round(len(outcomes) / ours, 1), "summary": summary.as_dict(),
                  "repeat_seconds": round(again, 3), "repeat_summary": repeated.as_dict(), "goal_ratio": 3}
        path = write_result(f"collections_{connection.vendor}.json", result)
        print(f"collections: {len(outcomes)} results imported in {ours:.2f}s ({result['results_per_second']}/s); "
              f"raw receipt rows {raw_seconds:.3f}s; ratio {result['ratio']} (goal <= 3); repeat {again:.2f}s, "
              f"{repeated.repeated} repeated → {path}")
    finally:
        teardown_database(connection, old)


if __name__ == "__main__":
    main()
