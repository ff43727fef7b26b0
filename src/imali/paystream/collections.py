"""The stream's collection results into the loan book, exactly once per stream reference.

Two paths share every rule (the loan book's `receipt_input` and `posting.post_held`):

- `collections_import`: a day's results set-based, in chunks of IMPORT_CHUNK, one transaction
  each: the results matched to notes and instalments in two queries, the chunk's loans locked once
  (in id order). A collection that is its loan's only one in the chunk, passes the receipt's own
  rules, the loan's status, payout date and reference checks, and is at most what the loan's open
  instalments owe (most of a day's file) is posted by the database, set-based
  (`posting.post_whole`: the receipts staged in a temporary table, the allocation computed by a
  window over the loans' instalments, the instalments and loans updated from it in one statement
  each). Every other collection is posted in memory in file order by `posting.post_held` on its
  loan read whole (which also raises the loan book's errors). Then the results and note
  instalments are written in bulk, and one audit entry is written for the chunk (each receipt
  carries the result's reference; each result row names its receipt). Exactly once: a result whose reference is stored already (or met earlier in
  the file) is a repeat; the unique constraint on (entity, reference) refuses a concurrent writer,
  and the chunk is then tried again, seeing what the other committed.
- `collection_result_post`: one result through `receipt_post` / `receipt_reverse` (a callback, or
  a loan whose chunk holds an unpaid: a reversal in the middle of a loan's collections must happen
  in file order, so such loans take this path, inside the chunk's transaction).

Both give the same loan book, figure for figure (tests/paystream/test_collections_bulk.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from imali.core import bulk
from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.loans import posting
from imali.loans.errors import LoanError, error
from imali.loans.models import OPEN_STATUSES, Loan, Receipt
from imali.loans.services import (
    HeldReceipt,
    loans_hold,
    local_today,
    receipt_input,
    receipts_write_held,
)
from imali.tenancy.models import Entity

from . import notices
from .adapters.base import CollectionOutcome
from .models import (
    CollectionKind,
    CollectionResult,
    NoteInstalment,
    NoteInstalmentStatus,
    PromissoryNote,
)

logger = logging.getLogger(__name__)

# Results per transaction: big enough that the per-chunk queries and the commit are a small part,
# small enough that the loans stay locked for about a second.
IMPORT_CHUNK = 5_000
RESULT_COLUMNS = ("entity_id", "note_id", "instalment_id", "reference", "kind", "amount", "result_date", "reason",
                  "original_reference", "receipt_id", "problem", "imported_at")


@dataclass
class ImportSummary:
    collected: int = 0
    declined: int = 0
    returned: int = 0
    repeated: int = 0
    problems: int = 0
    unknown: int = 0
    malformed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in ("collected", "declined", "returned", "repeated", "problems", "unknown",
                                              "malformed")}

    def add(self, other: ImportSummary) -> None:
        for name, value in other.as_dict().items():
            setattr(self, name, getattr(self, name) + value)


def _rows(sql: str, column: str, values: list, *leading) -> list[tuple]:
    """`sql` with its one "{}" filled by "`column` is one of `values`" (core.bulk.among; the
    leading parameters first); no query for no values."""
    if not values:
        return []
    condition, params = bulk.among(column, values)
    with connection.cursor() as cursor:
        cursor.execute(sql.format(condition), [*leading, *params])
        return cursor.fetchall()


def _stored(entity: Entity, references: list[str]) -> set[str]:
    return {r for (r,) in _rows(f"SELECT reference FROM {CollectionResult._meta.db_table} WHERE entity_id = %s "
                                f"AND {{}}", "reference", references, entity.pk)}


def _loans_lock(*, entity: Entity, loan_ids) -> dict[int, tuple]:
    """Lock the loans (in id order, as loans_hold does) and read what the set-based posting checks:
    {loan id: (client id, status, disbursed on, paid up on)}."""
    ids = sorted(loan_ids)
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    columns = (("id", "int"), ("client_id", "int"), ("status", "str"), ("disbursed_on", "date"), ("paid_up_on", "date"))
    out = {}
    for start in range(0, len(ids), IMPORT_CHUNK):
        part = ids[start:start + IMPORT_CHUNK]
        condition, params = bulk.among("id", part)
        for loan_id, *rest in bulk.select_rows(
                f"SELECT {bulk.select_sql(columns)} FROM {Loan._meta.db_table} WHERE entity_id = %s "
                f"AND {condition} ORDER BY id{lock}", [entity.pk, *params], [k for _, k in columns]):
            out[loan_id] = tuple(rest)
    return out


def _problem(exc: ValidationError) -> str:
    return "; ".join(m for m in exc.messages)[:200]


# -- set-based ---------------------------------------------------------------------------------
def collections_import(*, entity: Entity, actor, outcomes: list[CollectionOutcome], audit: bool = True,
                       progress: Callable[[int, int], None] | None = None) -> ImportSummary:
    """Apply the stream's results to the loan book, each exactly once per stream reference: a
    collection posts a receipt (payback type of the note's stream, the result's reference as the
    receipt's external reference) and marks the note's instalment Collected; a decline marks it
    Failed and keeps the bank's reason, date and amount; an unpaid marks it Failed and reverses the
    receipt of the collection it returns. A result the loan book cannot take (the loan not paid
    out, say) is kept with the reason, not lost. `audit`: one entry per chunk (the feed fetch
    writes its own per page instead). `progress(done, total)` after each committed chunk."""
    with bulk.collector_paused():
        return _import(entity=entity, actor=actor, outcomes=outcomes, audit=audit, progress=progress)


def _import(*, entity: Entity, actor, outcomes: list[CollectionOutcome], audit: bool,
            progress: Callable[[int, int], None] | None) -> ImportSummary:
    summary = ImportSummary()
    today = local_today(entity)
    total = len(outcomes)
    for first in range(0, total, IMPORT_CHUNK):
        chunk = outcomes[first:first + IMPORT_CHUNK]
        try:
            part = _import_chunk(entity=entity, actor=actor, outcomes=chunk, today=today, audit=audit)
        except IntegrityError:
            # Another writer stored some of these references between our read and our insert (the
            # constraint refused the chunk, nothing of it was written): read again and apply the rest.
            logger.info("collections chunk met a concurrent writer; retrying", extra={"entity": entity.pk})
            part = _import_chunk(entity=entity, actor=actor, outcomes=chunk, today=today, audit=audit)
        summary.add(part)
        done = min(first + IMPORT_CHUNK, total)
        logger.info("collection results imported", extra={"entity": entity.pk, "done": done, "total": total})
        if progress is not None:
            progress(done, total)
    return summary


def _import_chunk(*, entity: Entity, actor, outcomes: list[CollectionOutcome], today, audit: bool) -> ImportSummary:
    summary = ImportSummary()
    # Matching: notes by the stream's reference (the lowest id of a reference, as the per-result
    # path finds it), instalments by (note, seq). Read without the ORM's per-value work.
    wanted = sorted({o.note_reference for o in outcomes})
    notes: dict[str, tuple[int, int, str]] = {}
    for reference, note_id, loan_id, stream in _rows(
            f"SELECT reference, id, loan_id, stream FROM {PromissoryNote._meta.db_table} WHERE entity_id = %s "
            f"AND {{}} ORDER BY id DESC", "reference", wanted, entity.pk):
        notes[reference] = (note_id, loan_id, stream)
    seqs = sorted({o.seq for o in outcomes if isinstance(o.seq, int)})  # a day's file: a few
    slots = {(note_id, seq): pk for note_id, seq, pk in _rows(
        f"SELECT note_id, seq, id FROM {NoteInstalment._meta.db_table} WHERE seq IN ({bulk.placeholders(len(seqs))}) "
        f"AND {{}}", "note_id", sorted({n[0] for n in notes.values()}), *seqs)} if seqs else {}
    matched = []
    for outcome in outcomes:
        note = notes.get(outcome.note_reference)
        instalment_id = slots.get((note[0], outcome.seq)) if note is not None else None
        if instalment_id is None:
            summary.unknown += 1
            continue
        matched.append((outcome, note, instalment_id))
    # A loan with an unpaid in this chunk (or whose collection an unpaid here returns) takes the
    # per-result path in file order: its reversal must fall between the right receipts.
    by_reference = {o.reference: note[1] for o, note, _ in matched}
    unpaid = [o for o, _, _ in matched if o.result == CollectionKind.UNPAID]
    in_order: set[int] = {note[1] for o, note, _ in matched if o.result == CollectionKind.UNPAID}
    if unpaid:
        originals = {o.original_reference for o in unpaid}
        in_order.update(by_reference[r] for r in originals if r in by_reference)
        in_order.update(CollectionResult.objects.filter(entity=entity, reference__in=originals)
                        .values_list("note__loan_id", flat=True))
    # Results stored already are repeats: no lock, no read of their loans (a file imported twice
    # costs little). The rest are read again under the lock below.
    stored = _stored(entity, [o.reference for o, _, _ in matched])
    fresh = [m for m in matched if m[0].reference not in stored]
    references = [o.reference for o, _, _ in fresh]
    with transaction.atomic():
        # Every fresh result's loan is locked before any row is written, declines too: a result
        # row is only ever inserted under its loan's lock (here and in collection_result_post), so
        # a callback and an import waiting on each other's uncommitted row cannot deadlock.
        loans = _loans_lock(entity=entity, loan_ids={note[1] for _, note, _ in fresh})
        # Read after the loans are locked: a concurrent import of the same results has committed.
        seen = stored | _stored(entity, references)
        posted_references = {r for (r,) in _rows(f"SELECT external_reference FROM {Receipt._meta.db_table} "
                                                 f"WHERE entity_id = %s AND {{}}", "external_reference", references,
                                                 entity.pk)}
        # Which collections post set-based in SQL (posting.post_whole): the only collection of its
        # loan in the chunk, its own fields and the loan's status, payout date and the reference
        # passing the loan book's rules, and at most what the loan's open instalments still owe.
        # Everything else is posted in memory by posting.post_held, which raises the errors.
        collections_of: dict[int, int] = {}
        for outcome, note, _ in matched:
            if outcome.reference not in seen and outcome.result == CollectionKind.COLLECTED:
                collections_of[note[1]] = collections_of.get(note[1], 0) + 1
        whole_input: dict[str, tuple[int, int]] = {}  # reference: (loan id, cents)
        firsts: set[str] = set()
        inputs: dict[tuple, Decimal | None] = {}
        for outcome, note, _ in matched:
            loan_id = note[1]
            loan = loans.get(loan_id)
            if (outcome.result != CollectionKind.COLLECTED or outcome.reference in seen or outcome.reference in firsts
                    or loan_id in in_order or collections_of.get(loan_id) != 1 or loan is None):
                continue
            firsts.add(outcome.reference)
            # The receipt's own rules depend on the amount, the payback type and the value date
            # only: a day's file repeats a few of each, so each combination is read once.
            key = (type(outcome.amount), str(outcome.amount), note[2], outcome.on)
            money = inputs.get(key, False)
            if money is False:
                try:
                    money, _ = receipt_input(entity=entity, amount=outcome.amount, payback_type=note[2],
                                             value_date=outcome.on, today=today)
                except ValidationError:
                    money = None
                inputs[key] = money
            if money is None:
                continue
            reference = (outcome.reference or "").strip()  # as receipt_input reads it
            if (loan[1] in OPEN_STATUSES and not (loan[2] and outcome.on < loan[2]) and reference
                    and reference not in posted_references):
                whole_input[outcome.reference] = (loan_id, int(money.scaleb(2)))
        balances = posting.open_balances(sorted({loan_id for loan_id, _ in whole_input.values()}))
        # Within what the loan's open instalments owe (and they are regular): {reference: cents}.
        whole_cents = {reference: cents for reference, (loan_id, cents) in whole_input.items()
                       if (balance := balances.get(loan_id)) is not None and balance[1] and cents <= balance[0]}
        whole: dict[str, tuple] = {}  # reference: the WholeReceipt's fields but its id
        later: list[tuple[CollectionOutcome, tuple, int]] = []
        rows: list[list] = []
        receipts: list[HeldReceipt] = []
        statuses: dict[int, str] = {}
        now = bulk.stamp(timezone.now())
        # The loans of the other collections, read whole (their open instalments) for post_held.
        held = loans_hold(entity=entity, loan_ids={
            note[1] for o, note, _ in fresh if o.result == CollectionKind.COLLECTED and note[1] not in in_order
            and o.reference not in whole_cents})
        for outcome, note, instalment_id in matched:
            if outcome.reference in seen:
                summary.repeated += 1
                continue
            seen.add(outcome.reference)
            note_id, loan_id, stream = note
            if loan_id in in_order:
                later.append((outcome, note, instalment_id))
                continue
            receipt, problem = None, ""
            if outcome.result == CollectionKind.COLLECTED:
                statuses[instalment_id] = NoteInstalmentStatus.COLLECTED
                cents = whole_cents.get(outcome.reference)
                if cents is not None:
                    loan = loans[loan_id]
                    reference = (outcome.reference or "").strip()
                    receipt = whole[outcome.reference] = (loan_id, loan[0], cents, outcome.on, stream, reference, loan[1],
                                                          loan[3], cents == balances[loan_id][0])
                    posted_references.add(reference)
                    summary.collected += 1
                else:
                    try:
                        money, reference = receipt_input(entity=entity, amount=outcome.amount, payback_type=stream,
                                                         value_date=outcome.on, external_reference=outcome.reference,
                                                         today=today)
                        loan = held.get(loan_id)
                        if loan is None:
                            raise error("loan", LoanError.OTHER_ENTITY)
                        done = posting.post_held(loan, loan.instalments, money=money, value_date=outcome.on,
                                                 reference=reference, reference_taken=reference in posted_references)
                        receipt = HeldReceipt(loan=loan, amount=money, value_date=outcome.on, payback_type=stream,
                                              reference=reference, posted=done)
                        receipts.append(receipt)
                        posted_references.add(reference)
                        summary.collected += 1
                    except ValidationError as exc:
                        problem = _problem(exc)
                        summary.problems += 1
            else:
                statuses[instalment_id] = NoteInstalmentStatus.FAILED
                summary.declined += 1
            rows.append([entity.pk, note_id, instalment_id, outcome.reference, outcome.result, outcome.amount, outcome.on,
                         outcome.reason[:120], outcome.original_reference, receipt, problem, now])
        receipts_write_held(entity=entity, actor=actor, receipts=receipts)
        # After the in-memory ones: on SQLite new ids are counted on from the highest written.
        whole_ids = dict(zip(whole, bulk.new_ids(Receipt, len(whole)), strict=True))
        posting.post_whole(entity_id=entity.pk, actor_id=getattr(actor, "pk", None), created=now,
                           receipts=[posting.WholeReceipt(whole_ids[reference], *fields) for reference, fields in whole.items()])
        for row in rows:
            receipt = row[9]
            row[9] = None if receipt is None else whole_ids[row[3]] if isinstance(receipt, tuple) else receipt.id
        bulk.insert_rows(CollectionResult, RESULT_COLUMNS, [tuple(row) for row in rows])
        for status in (NoteInstalmentStatus.COLLECTED, NoteInstalmentStatus.FAILED):
            ids = [pk for pk, s in statuses.items() if s == status]
            if ids:
                condition, params = bulk.among("id", ids)
                with connection.cursor() as cursor:
                    cursor.execute(f"UPDATE {NoteInstalment._meta.db_table} SET status = %s WHERE {condition}",
                                   [status, *params])
        declined = [row[3] for row in rows if row[4] == CollectionKind.FAILED]
        if declined and notices.decline_sms_enabled(entity=entity):
            # The clients' SMS in the same transaction as the results they tell of (the outbox rule);
            # the switch read once per chunk.
            for result in (CollectionResult.objects.filter(entity=entity, reference__in=declined)
                           .select_related("note__client")):
                notices.collection_notice(entity=entity, result=result, note=result.note, enabled=True)
        for outcome, _, _ in later:
            collection_result_post(entity=entity, actor=actor, outcome=outcome, summary=summary)
        if audit and (rows or later):
            first, last = outcomes[0], outcomes[-1]
            audit_record(action=AuditAction.PAYSTREAM_COLLECTIONS_IMPORTED, actor=actor, entity=entity,
                         subject=f"results {first.reference} to {last.reference}"[:150],
                         after={**summary.as_dict(), "results": len(outcomes)})
    return summary


# -- one result --------------------------------------------------------------------------------
def collection_result_post(*, entity: Entity, actor, outcome: CollectionOutcome,
                           summary: ImportSummary | None = None) -> ImportSummary:
    """Apply one result through the loan book's single services (a callback; or a loan whose
    chunk holds an unpaid). Exactly once: the result's row is written first, in a savepoint, and
    a repeat (the unique constraint) rolls back alone."""
    from imali.loans.services import receipt_post, receipt_reverse

    summary = summary if summary is not None else ImportSummary()
    note = (PromissoryNote.objects.filter(entity=entity, reference=outcome.note_reference).order_by("id")
            .select_related("loan").first())
    instalment = NoteInstalment.objects.filter(note=note, seq=outcome.seq).first() if note is not None else None
    if instalment is None:
        summary.unknown += 1
        return summary
    try:
        with transaction.atomic():
            # The loans first (in id order), then the result's row: as the set-based import does.
            loan_ids = {note.loan_id}
            if outcome.result == CollectionKind.UNPAID:
                loan_ids.update(CollectionResult.objects.filter(entity=entity, reference=outcome.original_reference)
                                .values_list("note__loan_id", flat=True))
            list(Loan.objects.select_for_update().filter(pk__in=sorted(loan_ids)).order_by("pk").values_list("pk", flat=True))
            row = CollectionResult.objects.create(
                entity=entity, note=note, instalment=instalment, reference=outcome.reference, kind=outcome.result,
                amount=outcome.amount, result_date=outcome.on, reason=outcome.reason[:120],
                original_reference=outcome.original_reference)
            if outcome.result == CollectionKind.COLLECTED:
                NoteInstalment.objects.filter(pk=instalment.pk).update(status=NoteInstalmentStatus.COLLECTED)
                try:
                    with transaction.atomic():
                        row.receipt = receipt_post(entity=entity, actor=actor, loan=note.loan, amount=outcome.amount,
                                                   value_date=outcome.on, payback_type=note.stream,
                                                   external_reference=outcome.reference)
                    summary.collected += 1
                except ValidationError as exc:
                    row.problem = _problem(exc)
                    summary.problems += 1
            elif outcome.result == CollectionKind.FAILED:
                NoteInstalment.objects.filter(pk=instalment.pk).update(status=NoteInstalmentStatus.FAILED)
                summary.declined += 1
            else:
                NoteInstalment.objects.filter(pk=instalment.pk).update(status=NoteInstalmentStatus.FAILED)
                original = (CollectionResult.objects.filter(entity=entity, reference=outcome.original_reference,
                                                            kind=CollectionKind.COLLECTED).select_related("receipt").first())
                receipt = original.receipt if original is not None else None
                if receipt is not None and not Receipt.objects.filter(pk=receipt.pk, is_reversed=True).exists():
                    try:
                        with transaction.atomic():
                            receipt_reverse(receipt=receipt, actor=actor, reason=f"Returned unpaid: {outcome.reason or 'no reason given'}")
                        summary.returned += 1
                    except ValidationError as exc:
                        row.problem = _problem(exc)
                        summary.problems += 1
                else:
                    row.problem = "No posted collection with that reference to reverse."
                    summary.problems += 1
            row.save(update_fields=["receipt", "problem"])
            notices.collection_notice(entity=entity, result=row, note=note)  # the client's SMS on a decline or unpaid
    except IntegrityError:
        summary.repeated += 1
    return summary


def collections_import_each(*, entity: Entity, actor, outcomes: list[CollectionOutcome]) -> ImportSummary:
    """The results one by one through `collection_result_post`, each in its own transaction: the
    reference the set-based import is held to (tests), and what a caller with a few results uses."""
    summary = ImportSummary()
    for outcome in outcomes:
        with transaction.atomic():
            collection_result_post(entity=entity, actor=actor, outcome=outcome, summary=summary)
    return summary
