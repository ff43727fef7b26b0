"""The set-based import of a day's collection results gives the loan book the one-by-one path
gives, figure for figure: two identical books, the same hand-built results, one book through
`collections_import` (in chunks of several sizes, so loans and unpaids fall across chunk edges),
the other through `collections_import_each` (each result through receipt_post / receipt_reverse);
then every loan's figures, instalments, receipts, allocations, results and note instalments are
compared."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest

from imali.clients.models import AccountKind, ClientAccount
from imali.core.models import AuditAction, AuditEntry
from imali.loans import services as loans
from imali.loans.models import Instalment, Loan, Receipt, ReceiptAllocation
from imali.paystream import collections
from imali.paystream.adapters.base import CollectionOutcome
from imali.paystream.models import CollectionResult, NoteInstalment, PromissoryNote, StreamAccount
from imali.tenancy.rights import Right
from tests import factories

LOANS = 7
TODAY = dt.date.today()


def _book(code: str):
    """An entity with LOANS loans of four monthly instalments paid out 100 days ago, each with an
    active NAEDO note (rows written directly: the stream is not what is compared)."""
    entity = factories.make_entity(country="ZA", code=code)
    actor = factories.make_user(entity=entity, rights=[Right.CAPTURE_LOANS, Right.APPROVE_LOANS, Right.DISBURSE_LOANS])
    actor.disbursement_limit = Decimal("100000")
    actor.save(update_fields=["disbursement_limit"])
    product = loans.product_create(entity=entity, actor=actor, data={
        "name": "Monthly", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100",
        "max_principal": "20000", "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})
    start = TODAY - dt.timedelta(days=100)
    employer = factories.make_employer(entity=entity)
    made = []
    for k in range(LOANS):
        client = factories.make_client(entity=entity, employer=employer)
        account = ClientAccount.objects.create(client=client, kind=AccountKind.BANK, bank_name="ABSA", branch_code="632005",
                                               account_number="4012345679", account_type="cheque")
        loan = loans.loan_apply(entity=entity, actor=actor, client=client, product=product, principal="3000", instalments=4,
                                applied_on=start, pay_day=25)
        loans.loan_approve(loan=loan, actor=actor)
        loan = loans.loan_disburse(loan=loan, actor=actor, payout_account=account, disbursed_on=start)
        stream_account = StreamAccount.objects.create(entity=entity, client=client, account=account, reference=f"A{k}")
        note = PromissoryNote.objects.create(entity=entity, client=client, loan=loan, stream="naedo", account=stream_account,
                                             status="active", reference=f"N{k}", total=loan.total_repayable)
        NoteInstalment.objects.bulk_create([NoteInstalment(note=note, seq=i.seq, action_date=i.due_date, amount=i.amount)
                                            for i in Instalment.objects.filter(loan=loan).order_by("seq")])
        made.append(loan)
    # A receipt captured by hand whose reference a result reuses later (the loan book refuses it).
    loans.receipt_post(entity=entity, actor=actor, loan=made[6], amount="10", value_date=TODAY, payback_type="eft",
                       external_reference="MANUAL-1")
    return entity, actor, made


def _instalment(loan, seq) -> Instalment:
    return Instalment.objects.get(loan=loan, seq=seq)


def _out(n, note, seq, result, amount, on, reason="", original=""):
    return CollectionOutcome(position=n, reference=f"R{n}", note_reference=f"N{note}", seq=seq, result=result,
                             amount=Decimal(amount), on=on, reason=reason, original_reference=original)


def _files(book_loans):
    """Two days of results, built from the first book's schedule (both books have the same one)."""
    inst = {(k, s): _instalment(book_loans[k], s) for k in range(LOANS) for s in range(1, 5)}
    due = {key: min(i.due_date, TODAY) for key, i in inst.items()}
    settle = sum((i.amount for i in Instalment.objects.filter(loan=book_loans[2])), Decimal(0))
    first = [
        _out(1, 0, 1, "collected", inst[0, 1].amount, due[0, 1]),
        _out(2, 0, 2, "collected", inst[0, 2].amount, due[0, 2]),
        _out(3, 1, 1, "failed", inst[1, 1].amount, due[1, 1], "Insufficient Funds"),
        _out(4, 1, 2, "collected", inst[1, 2].amount + 100, due[1, 2]),            # clears the declined one first
        _out(5, 2, 1, "collected", settle + 50, due[2, 1]),                           # pays up, with change
        _out(6, 2, 2, "collected", "10.00", due[2, 2]),                               # a paid-up loan takes nothing
        _out(7, 3, 1, "collected", "999999.00", due[3, 1]),                           # over the receipt maximum
        _out(8, 3, 2, "collected", inst[3, 2].amount, TODAY + dt.timedelta(days=1)),  # dated in the future
        _out(9, 3, 3, "collected", inst[3, 3].amount, TODAY - dt.timedelta(days=101)),  # before the payout
        _out(10, 4, 1, "collected", inst[4, 1].amount, due[4, 1]),
        _out(11, 4, 1, "unpaid", inst[4, 1].amount, due[4, 2], "Account closed", original="R10"),
        _out(12, 4, 2, "collected", inst[4, 2].amount, due[4, 2]),                   # after the reversal: seq 1 again
        _out(1, 0, 1, "collected", inst[0, 1].amount, due[0, 1]),                    # the same reference again
        CollectionOutcome(position=14, reference="R14", note_reference="NOPE", seq=1, result="collected",
                          amount=Decimal("5"), on=TODAY),                              # no such note
        _out(15, 5, 1, "collected", "100.37", due[5, 1]),                             # part of an instalment
        _out(16, 5, 2, "unpaid", "1.00", due[5, 2], "Stopped", original="R999"),     # returns nothing known
        _out(17, 6, 1, "collected", inst[6, 1].amount, due[6, 1]),
        CollectionOutcome(position=18, reference="MANUAL-1", note_reference="N6", seq=2, result="collected",
                          amount=inst[6, 2].amount, on=due[6, 2]),                     # reference posted by hand
        _out(19, 5, 3, "collected", "250.00", due[5, 3]),
        _out(20, 1, 3, "failed", inst[1, 3].amount, due[1, 3], "Account Closed"),
    ]
    second = [
        _out(21, 0, 1, "unpaid", inst[0, 1].amount, TODAY, "Debit reversed", original="R1"),  # returns yesterday's
        _out(22, 0, 3, "collected", inst[0, 3].amount, due[0, 3]),
        _out(23, 5, 4, "collected", "75.10", TODAY),
        *first[:4],                                                                    # yesterday's again: repeats
    ]
    return first, second


def _state(entity, made) -> dict:
    index = {loan.pk: k for k, loan in enumerate(made)}
    def words(text):
        return re.sub(r"[Ll]oan (\d+)", lambda m: f"loan #{index.get(int(m.group(1)), '?')}", text)
    loans_state = [Loan.objects.filter(pk=loan.pk).values(
        "status", "received_total", "change_total", "last_receipt_on", "last_receipt_ord", "paid_up_on", "paid_up_ord",
        "default_since").get() for loan in made]
    instalments = [list(Instalment.objects.filter(loan=loan).order_by("seq").values_list(
        "seq", "open", "fee_paid", "vat_paid", "interest_paid", "capital_paid", "paid", "paid_on")) for loan in made]
    receipts = sorted((index[r["loan_id"]], r["external_reference"], r["amount"], r["allocated"], r["change"], r["value_date"],
                       r["payback_type"], r["loan_status_before"], r["loan_paid_up_on_before"], r["is_reversed"],
                       r["reversal_reason"])
                      for r in Receipt.objects.filter(entity=entity).values())
    allocations = sorted((a.receipt.external_reference, index[a.instalment.loan_id], a.instalment.seq, a.fee, a.vat, a.interest,
                          a.capital, a.paid_on_before)
                         for a in ReceiptAllocation.objects.filter(receipt__entity=entity).select_related("receipt", "instalment"))
    results = sorted((c.reference, c.kind, c.amount, c.result_date, c.reason, c.original_reference, words(c.problem),
                      c.receipt.external_reference if c.receipt_id else None, c.instalment.seq, c.note.reference)
                     for c in CollectionResult.objects.filter(entity=entity).select_related("receipt", "instalment", "note"))
    statuses = sorted(NoteInstalment.objects.filter(note__entity=entity).values_list("note__reference", "seq", "status"))
    return {"loans": loans_state, "instalments": instalments, "receipts": receipts, "allocations": allocations,
            "results": results, "note_instalments": statuses}


def _differences(part, got, want) -> str:
    """What differs, item by item (the set-based book's item first)."""
    lines = [f"{part}: {len(got)} against {len(want)} items"]
    for k in range(max(len(got), len(want))):
        a, b = (got[k] if k < len(got) else None), (want[k] if k < len(want) else None)
        if a != b:
            lines.append(f"  [{k}] set-based {a!r}\n  [{k}] one by one {b!r}")
    return "\n".join(lines)


@pytest.mark.parametrize("chunk", [2, 3, 5000])
def test_set_based_import_equals_one_by_one(db, monkeypatch, chunk):
    one_entity, one_actor, one_loans = _book("ONE")
    set_entity, set_actor, set_loans = _book("SET")
    first, second = _files(one_loans)
    monkeypatch.setattr(collections, "IMPORT_CHUNK", chunk)
    summaries = []
    for day in (first, second):
        each = collections.collections_import_each(entity=one_entity, actor=one_actor, outcomes=day)
        bulk = collections.collections_import(entity=set_entity, actor=set_actor, outcomes=day)
        summaries.append((each.as_dict(), bulk.as_dict()))
    assert summaries[0][0] == {"collected": 9, "declined": 2, "returned": 1, "repeated": 1, "problems": 6, "unknown": 1,
                               "malformed": 0}
    assert summaries[1][0] == {"collected": 2, "declined": 0, "returned": 1, "repeated": 4, "problems": 0, "unknown": 0,
                               "malformed": 0}
    for each, bulk in summaries:
        assert bulk == each
    one, bulk = _state(one_entity, one_loans), _state(set_entity, set_loans)
    for part in one:
        assert bulk[part] == one[part], _differences(part, bulk[part], one[part])
    # The book really moved (not two empty books compared): paid up with change, a reversal, problems.
    assert one["loans"][2]["status"] == "paid_up" and one["loans"][2]["change_total"] == Decimal("50.00")
    assert sum(1 for r in one["receipts"] if r[9]) == 2
    assert any("receipt maximum" in r[6] or "can take" in r[6] for r in one["results"])


def test_set_based_import_audits_once_per_chunk_not_per_receipt(db, monkeypatch):
    entity, actor, made = _book("AUD")
    first, _ = _files(made)
    monkeypatch.setattr(collections, "IMPORT_CHUNK", 10)
    before = AuditEntry.objects.filter(entity=entity, action=AuditAction.RECEIPT_POSTED).count()
    seen = []
    collections.collections_import(entity=entity, actor=actor, outcomes=first, progress=lambda done, total: seen.append((done, total)))
    entries = AuditEntry.objects.filter(entity=entity, action=AuditAction.PAYSTREAM_COLLECTIONS_IMPORTED).order_by("id")
    assert [e.after["results"] for e in entries] == [10, 10]
    assert entries[0].actor == actor
    assert sum(e.after["collected"] for e in entries) == 9
    assert seen == [(10, 20), (20, 20)]
    # Loans whose chunk held an unpaid went through receipt_post (its own entry); the rest did not.
    posted_each = AuditEntry.objects.filter(entity=entity, action=AuditAction.RECEIPT_POSTED).count() - before
    # Chunk two holds unpaids for loans 4 and 5: their collections there (R12; R15, R19) went one by one.
    assert posted_each == 3


def test_the_same_file_twice_posts_nothing_twice(db):
    entity, actor, made = _book("TWO")
    first, _ = _files(made)
    collections.collections_import(entity=entity, actor=actor, outcomes=first)
    receipts = Receipt.objects.filter(entity=entity).count()
    figures = list(Loan.objects.filter(entity=entity).order_by("pk").values_list("received_total", "change_total", "status"))
    again = collections.collections_import(entity=entity, actor=actor, outcomes=first)
    assert (again.collected, again.returned, again.declined, again.repeated, again.unknown) == (0, 0, 0, 19, 1)
    assert Receipt.objects.filter(entity=entity).count() == receipts
    assert list(Loan.objects.filter(entity=entity).order_by("pk").values_list("received_total", "change_total", "status")) == figures


@pytest.mark.django_db(transaction=True)
def test_the_same_file_from_two_importers_at_once_posts_once():
    """Two set-based imports of one file and a one-by-one import of it, started together: the
    loan locks and the unique reference leave each collection posted once."""
    import threading

    from django.db import connection, connections

    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(("file:memorydb", ":memory:")):
        pytest.skip("in-memory SQLite cannot be shared between threads; covered on PostgreSQL and file SQLite")
    entity, actor, made = _book("RACE")
    first, _ = _files(made)
    single = _book("SOLO")
    collections.collections_import_each(entity=single[0], actor=single[1], outcomes=first)
    barrier = threading.Barrier(3)
    summaries, failures = [], []

    def run(importer):
        try:
            barrier.wait()
            summaries.append(importer(entity=entity, actor=actor, outcomes=first).as_dict())
        except Exception as exc:  # noqa: BLE001 - reported below, the test fails on any
            failures.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(f,)) for f in
               (collections.collections_import, collections.collections_import, collections.collections_import_each)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not failures and len(summaries) == 3
    assert sum(s["collected"] for s in summaries) == 9
    assert sum(s["declined"] for s in summaries) == 2
    assert sum(s["returned"] for s in summaries) == 1
    assert _state(entity, made) == _state(single[0], single[2])


def test_collections_within_the_open_balance_post_set_based_as_one_by_one(db, monkeypatch):
    """One collection per loan within what it owes posts set-based in SQL (posting.post_whole):
    exactly the balance (paid up), part of an instalment, several instalments and part of the
    next, after an earlier receipt; the same book as one by one. A collection beyond the balance
    (change) in the same file takes the in-memory path."""
    from imali.loans import posting

    one_entity, one_actor, one_loans = _book("WONE")
    set_entity, set_actor, set_loans = _book("WSET")
    inst = {(k, s): _instalment(one_loans[k], s) for k in range(LOANS) for s in range(1, 5)}
    owed = {k: sum((i.amount - i.paid for i in Instalment.objects.filter(loan=one_loans[k])), Decimal(0)) for k in range(LOANS)}
    on = min(inst[0, 2].due_date, TODAY)
    day = [
        _out(1, 0, 1, "collected", owed[0], on),                                     # the whole balance: paid up
        _out(2, 1, 1, "collected", "100.37", on),                                     # part of the first instalment
        _out(3, 2, 1, "collected", inst[2, 1].amount + inst[2, 2].amount + 7, on),   # two and a bit
        _out(4, 3, 1, "failed", inst[3, 1].amount, on, "Insufficient Funds"),
        _out(5, 4, 1, "collected", inst[4, 1].amount, on),
        _out(6, 5, 1, "collected", owed[5] + 5, on),                                  # beyond the balance: change
        _out(7, 6, 1, "collected", inst[6, 1].amount, on),                            # after the receipt by hand
    ]
    posted_whole = []
    real = posting.post_whole

    def recording(**kwargs):
        posted_whole.extend(r.reference for r in kwargs["receipts"])
        return real(**kwargs)

    monkeypatch.setattr(posting, "post_whole", recording)
    each = collections.collections_import_each(entity=one_entity, actor=one_actor, outcomes=day)
    bulk = collections.collections_import(entity=set_entity, actor=set_actor, outcomes=day)
    assert bulk.as_dict() == each.as_dict() == {"collected": 6, "declined": 1, "returned": 0, "repeated": 0, "problems": 0,
                                                "unknown": 0, "malformed": 0}
    assert sorted(posted_whole) == ["R1", "R2", "R3", "R5", "R7"]
    one, got = _state(one_entity, one_loans), _state(set_entity, set_loans)
    for part in one:
        assert got[part] == one[part], _differences(part, got[part], one[part])
    assert one["loans"][0]["status"] == "paid_up" and one["loans"][0]["paid_up_on"] == on
    assert one["loans"][5]["change_total"] == Decimal("5.00")
    assert [row[6] for row in one["instalments"][1]] == [Decimal("100.37"), 0, 0, 0]
    assert [row[7] is not None for row in one["instalments"][2]] == [True, True, False, False]
    # The same file again: nothing posted twice.
    again = collections.collections_import(entity=set_entity, actor=set_actor, outcomes=day)
    assert again.repeated == len(day) and _state(set_entity, set_loans) == got
