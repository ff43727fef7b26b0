"""Set-based posting of a confirmed statement: thousands of lines in a few statements per chunk,
by the loan book's own rules.

The lines are grouped by loan first (`loan_chunks`): every line that may land on a loan (naming
it, or its client's number) goes into the same chunk, in file order, so a loan is locked, read
and written once per import however many lines pay it. One chunk (about CHUNK_LINES lines) is one
transaction:
1. which transaction numbers are recorded already (a notification, an earlier import, a receipt
   captured by hand): two reads for the whole chunk;
2. the loans the lines name, locked, with their open instalments (`loans.services.loans_hold`:
   loan id order, so two imports never deadlock on each other; plain rows, not model objects);
3. each line in file order, in memory, through `loans.services.receipt_input` and
   `loans.posting.post_held` (status, payout date, receipt maximum, oldest instalment first, fees,
   VAT, interest, capital): the functions `receipt_post` posts one receipt with, so a statement
   line lands exactly as a callback would. A refusal puts the line in suspense with the loan
   book's reason, and the next line for that loan sees the loan as the receipts before it left it;
4. the writes, each one statement per table (`loans.services.receipts_write_held` for the
   receipts, allocation lines, instalments and loans; the provider transactions likewise): COPY
   on PostgreSQL, prepared executemany on SQLite; and one audit entry for the chunk (its part
   number, lines, first and last line and counts), not one per receipt. Each receipt carries the provider's transaction number
   (its external reference) and its provider transaction row names the import (statement_id):
   every receipt is traced to its line; the import's own entry (services) gives the totals.

Exactly once: a provider transaction number is unique per setup and a receipt's reference per
entity; if a callback records a line of the chunk meanwhile, the insert is refused, the chunk rolls
back and is read again (it then finds that line recorded). After RETRIES refusals the chunk goes
line by line through `payment_in_record`.

`timings` (when a dict) gathers the seconds of each phase, for the benchmark's profile."""

from __future__ import annotations

import time
import zoneinfo
from collections.abc import Callable, Sequence
from contextlib import contextmanager

from django.core.exceptions import ValidationError
from django.db import IntegrityError, OperationalError, connection, transaction
from django.utils import timezone

from imali.clients.models import Client
from imali.core import bulk
from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.loans import posting
from imali.loans.models import OPEN_STATUSES, Loan, LoanStatus, PaybackType, Receipt
from imali.loans.services import (
    HeldReceipt,
    loans_hold,
    local_today,
    receipt_input,
    receipts_write_held,
)

from .models import ConfirmationSms, ProviderTransaction, Source, TransactionStatus

CHUNK_LINES = 5000
RETRIES = 3
# The IN lists of the reads (well under SQLite's limit of host parameters).
READ_BATCH = 5000

TRANSACTION_COLUMNS = ("entity_id", "setup_id", "provider_transaction_id", "source", "status", "amount", "msisdn",
                       "payer_name", "account_reference", "transacted_at", "receipt_id", "loan_id", "suspense_reason",
                       "confirmation_sms", "statement_id", "created_at")

timings: dict[str, float] | None = None


@contextmanager
def phase(name: str):
    if timings is None:
        yield
        return
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started


def _messages(exc: ValidationError) -> str:
    messages = [m for ms in getattr(exc, "message_dict", {"": exc.messages}).values() for m in ms]
    return " ".join(messages) or "The loan book refused the receipt."


def _deadlock(exc: OperationalError) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) == "40P01"


def post_lines(*, statement, lines: Sequence, index, actor, on_progress: Callable[[int], None] | None = None,
               chunk_lines: int | None = None) -> None:
    """Post a statement's lines (statement.Line, file order) chunk by chunk; `index` is the
    entity's book (services._BookIndex). Lines that are invalid, not payments in, or repeat a
    transaction number of an earlier line are left out; what each line became is on its
    ProviderTransaction (statement = this import)."""
    from .services import PaymentIn, payment_in_record

    seen: set[str] = set()
    payments = []
    for line in lines:
        if line.problem or line.skip or line.transaction_id in seen:
            continue
        seen.add(line.transaction_id)
        payments.append(line)
    with phase("match"):
        candidates = {line.transaction_id: index.candidates(line.account_reference, line.msisdn) for line in payments}
        chunks = loan_chunks(payments, candidates, chunk_lines or CHUNK_LINES)
    done = len(lines) - len(payments)
    for part, chunk in enumerate(chunks, start=1):
        for attempt in range(RETRIES + 1):
            if attempt == RETRIES:
                for line in chunk:  # the slow path: a chunk that kept meeting concurrent callbacks
                    payment_in_record(setup=statement.setup, source=Source.STATEMENT, actor=actor, payment=PaymentIn(
                        provider_transaction_id=line.transaction_id, amount=line.amount, transacted_at=line.completed_at,
                        msisdn=line.msisdn, payer_name=line.payer_name, account_reference=line.account_reference))
                break
            try:
                # COPY runs on the driver's cursor: its errors are made Django's here, as execute's are.
                with phase("chunk transactions in all (the phases above and the commits)"), transaction.atomic(), \
                        connection.wrap_database_errors:
                    _post_chunk(statement=statement, lines=chunk, candidates=candidates, actor=actor, part=part)
                break
            except IntegrityError:
                continue
            except OperationalError as exc:
                # A callback holding a line's uncommitted row while waiting for a loan this chunk
                # locked: PostgreSQL ends one of the two; this chunk is read and posted again.
                if not _deadlock(exc):
                    raise
                continue
        done += len(chunk)
        if on_progress is not None:
            on_progress(done)
    if on_progress is not None and not chunks:
        on_progress(done)


def loan_chunks(lines: Sequence, candidates: dict[str, tuple[list[int], str]], size: int) -> list[list]:
    """The lines in chunks of about `size`, each loan's lines all in one chunk, in file order.
    Lines that may land on the same loan (a client number may go to any of the client's loans)
    stay together, so each loan is locked, read and written once per import, not once per chunk
    it appears in, and posts its lines in the order they were paid. A set of loans with more than
    `size` lines is one chunk of its own."""
    parent: dict[int, int] = {}

    def root(pk: int) -> int:
        while parent.setdefault(pk, pk) != pk:
            parent[pk] = parent[parent[pk]]
            pk = parent[pk]
        return pk

    for found, _ in candidates.values():
        for pk in found[1:]:
            a, b = root(found[0]), root(pk)
            if a != b:
                parent[b] = a
    groups: dict[object, list] = {}
    for n, line in enumerate(lines):
        found = candidates[line.transaction_id][0]
        groups.setdefault(root(found[0]) if found else ("alone", n), []).append(line)
    chunks: list[list] = []
    current: list = []
    for group in groups.values():
        if current and len(current) + len(group) > size:
            chunks.append(current)
            current = []
        current.extend(group)
    if current:
        chunks.append(current)
    for chunk in chunks:
        chunk.sort(key=lambda line: line.number)
    return chunks


def _select(sql: str, params: list, values: list) -> list[tuple]:
    """`sql` with one `{}` for "<column> IN <values>": on PostgreSQL one array parameter
    (`= ANY(%s)`: planned as cheaply for 5,000 values as for one), elsewhere READ_BATCH
    placeholders at a time."""
    if not values:
        return []
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(sql.format("= ANY(%s)"), [*params, list(values)])
            return cursor.fetchall()
        rows: list[tuple] = []
        for start in range(0, len(values), READ_BATCH):
            part = values[start:start + READ_BATCH]
            cursor.execute(sql.format(f"IN ({bulk.placeholders(len(part))})"), [*params, *part])
            rows.extend(cursor.fetchall())
        return rows


def loans_with_phone(loan_ids) -> set[int]:
    """The loans among `loan_ids` whose client has a cellphone (a confirmation SMS is due)."""
    return {pk for (pk,) in _select(
        f"SELECT l.id FROM {Loan._meta.db_table} l JOIN {Client._meta.db_table} c "
        f"ON c.id = l.client_id WHERE c.cellphone <> '' AND l.id {{}}", [], list(loan_ids))}


def payment_post_held(*, entity, loans: dict, found: list[int], reason: str, amount, value_date, reference: str,
                      today) -> tuple[HeldReceipt | None, str]:
    """One mobile payment posted in memory onto the first of its candidate loans `found` still on
    the book (`loans`: held by loans_hold, changed in place), by the loan book's rules
    (receipt_input, posting.post_held): (its receipt, "") or (None, why it waits in suspense).
    The statement import and the posting of stored confirmations both post through this."""
    loan = next((loans[pk] for pk in found if pk in loans and loans[pk].status in OPEN_STATUSES), None)
    if loan is None:
        gone = loans.get(found[0]) if found else None
        return None, (f"Loan {gone.pk} is {LoanStatus(gone.status).label}, not on the book." if gone is not None
                      else reason)[:200]
    try:
        money, reference = receipt_input(entity=entity, amount=amount, payback_type=PaybackType.MOBILE_MONEY,
                                         value_date=value_date, external_reference=reference, today=today)
        # Recorded references were set aside by the caller (captured by hand), so none is taken here.
        done = posting.post_held(loan, loan.instalments, money=money, value_date=value_date, reference=reference,
                                 reference_taken=False)
    except ValidationError as exc:
        return None, _messages(exc)[:200]
    return HeldReceipt(loan=loan, amount=money, value_date=value_date, payback_type=PaybackType.MOBILE_MONEY,
                       reference=reference, posted=done), ""


def _post_chunk(*, statement, lines: list, candidates: dict, actor, part: int) -> None:
    entity, setup = statement.entity, statement.setup
    with phase("read recorded"):
        ids = [line.transaction_id for line in lines]
        recorded = {r for (r,) in _select(
            f"SELECT provider_transaction_id FROM {ProviderTransaction._meta.db_table} "
            f"WHERE setup_id = %s AND provider_transaction_id {{}}", [setup.pk], ids)}
        by_hand = {ref: (pk, loan_id) for ref, pk, loan_id in _select(
            f"SELECT external_reference, id, loan_id FROM {Receipt._meta.db_table} "
            # The empty reference excluded as the unique index is: so that (partial) index answers.
            f"WHERE entity_id = %s AND NOT (external_reference = '') AND external_reference {{}}",
            [entity.pk], [i for i in ids if i not in recorded])}
        todo = [line for line in lines if line.transaction_id not in recorded]
        loan_ids = sorted({pk for line in todo if line.transaction_id not in by_hand
                           for pk in candidates[line.transaction_id][0]})
    with phase("lock and read loans"):
        loans = loans_hold(entity=entity, loan_ids=loan_ids)
        # The clients to confirm to by SMS, read under the loans' locks as the callback path does.
        with_phone = loans_with_phone(loans)

    with phase("post in memory"):
        zone = zoneinfo.ZoneInfo(entity.time_zone)
        today = local_today(entity)
        now = bulk.stamp(timezone.now())
        rows: list[list] = []
        receipts: list[HeldReceipt] = []
        receipt_row: list[tuple[list, HeldReceipt]] = []  # (row, receipt): the row's receipt id once written
        counts = {"posted": 0, "suspense": 0, "recorded by hand": 0, "already recorded": len(lines) - len(todo)}
        for line in todo:
            row = [entity.pk, setup.pk, line.transaction_id, Source.STATEMENT, TransactionStatus.SUSPENSE, line.amount,
                   line.msisdn[:20], line.payer_name[:120], line.account_reference[:40], bulk.stamp(line.completed_at),
                   None, None, "", ConfirmationSms.NONE, statement.pk, now]
            rows.append(row)
            if line.transaction_id in by_hand:
                # Captured by hand before the statement came: the same money, recorded already (not this import's).
                row[10], row[11] = by_hand[line.transaction_id]
                row[4], row[14] = TransactionStatus.POSTED, None
                counts["recorded by hand"] += 1
                continue
            found, reason = candidates[line.transaction_id]
            receipt, refusal = payment_post_held(entity=entity, loans=loans, found=found, reason=reason,
                                                 amount=line.amount, value_date=line.completed_at.astimezone(zone).date(),
                                                 reference=line.transaction_id, today=today)
            if receipt is None:
                row[12] = refusal
                counts["suspense"] += 1
                continue
            loan = receipt.loan
            receipts.append(receipt)
            receipt_row.append((row, receipt))
            row[4], row[11] = TransactionStatus.POSTED, loan.pk
            if loan.pk in with_phone:
                row[13] = ConfirmationSms.PENDING
            counts["posted"] += 1

    with phase("write receipts, allocations, instalments, loans"):
        receipts_write_held(entity=entity, actor=actor, receipts=receipts)
    with phase("write provider transactions and audit"):
        for row, receipt in receipt_row:
            row[10] = receipt.id
        bulk.insert_rows(ProviderTransaction, TRANSACTION_COLUMNS, [tuple(row) for row in rows])
        if rows:
            audit_record(action=AuditAction.MOBILE_STATEMENT_IMPORTED, actor=actor, entity=entity, target=statement,
                         subject=f"{statement.file_name} part {part}",
                         after={"part": part, "lines": len(lines), "first_line": lines[0].number,
                                "last_line": lines[-1].number, **counts})
    if connection.vendor == "postgresql" and timings is not None:
        # For the profile only: the foreign keys (deferred, as Django makes them) checked here
        # rather than inside COMMIT, so the commit's own time shows apart from them.
        with phase("foreign key checks"), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
