"""Set-based posting of a confirmed statement: thousands of lines in a few queries per chunk, by the
loan book's own rules.

One chunk of lines (CHUNK_LINES) is one transaction:
1. which transaction numbers are recorded already (a notification, an earlier import, a receipt
   captured by hand) — two queries for the whole chunk;
2. the loans the lines name, and their open instalments, locked in one query each (loan id order,
   so two imports never deadlock on each other);
3. each line in file order, in memory, through `loans.services.receipt_input` and
   `loans.posting.post_held` (status, payout date, receipt maximum, oldest instalment first, fees,
   VAT, interest, capital) — the functions `receipt_post` posts one receipt with, so a statement line lands exactly as a callback would; a refusal puts the line in
   suspense with the loan book's reason, and the next line for that loan sees the loan as the
   receipts before it left it;
4. the writes: receipts, their allocations, the changed instalments and loans, the provider
   transactions, one RECEIPT_POSTED audit entry per receipt — bulk inserts, and on PostgreSQL one
   `UPDATE … FROM (VALUES …)` per table for the changes.

Exactly once: a provider transaction number is unique per setup and a receipt's reference per
entity; if a callback records a line of the chunk meanwhile, the insert is refused, the chunk rolls
back and is read again (it then finds that line recorded). After RETRIES refusals the chunk goes
line by line through `payment_in_record`.

The same set-based shape as the collection-result posting of imali.paystream; the rules live once,
in imali.loans.services."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Iterable, Sequence

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, models, transaction
from django.db.models import F

from imali.core.audit import snapshot
from imali.core.models import AuditAction, AuditEntry
from imali.loans import posting
from imali.loans.models import (
    OPEN_STATUSES,
    Instalment,
    Loan,
    PaybackType,
    Receipt,
    ReceiptAllocation,
    day_number,
)
from imali.loans.services import (
    INSTALMENT_PAID_FIELDS,
    local_today,
    receipt_input,
)

from .models import ConfirmationSms, ProviderTransaction, Source, TransactionStatus

CHUNK_LINES = 5000
RETRIES = 3
UPDATE_ROWS = 2000


def update_rows(model: type[models.Model], objs: Sequence[models.Model], fields: Iterable[str]) -> None:
    """Write `fields` of `objs` (rows the caller holds locked). PostgreSQL: one
    `UPDATE … FROM UNNEST(<one array per column>)` per UPDATE_ROWS rows — a handful of parameters
    whatever the row count, as Django's bulk insert does; elsewhere Django's bulk_update."""
    fields = list(dict.fromkeys(fields))
    if not objs or not fields:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_update(objs, fields, batch_size=500)
        return
    meta = model._meta
    concrete = [meta.get_field(name) for name in fields]
    qn = connection.ops.quote_name
    columns = [meta.pk, *concrete]
    arrays = ", ".join(f"%s::{f.db_type(connection)}[]" for f in columns)
    names = ", ".join(f"c{n}" for n in range(len(columns)))
    sets = ", ".join(f"{qn(f.column)} = v.c{n}" for n, f in enumerate(concrete, start=1))
    sql = (f"UPDATE {qn(meta.db_table)} AS t SET {sets} FROM UNNEST({arrays}) AS v({names}) "
           f"WHERE t.{qn(meta.pk.column)} = v.c0")
    with connection.cursor() as cursor:
        for start in range(0, len(objs), UPDATE_ROWS):
            part = objs[start:start + UPDATE_ROWS]
            cursor.execute(sql, [[f.get_db_prep_save(getattr(obj, f.attname), connection) for obj in part] for f in columns])


def _messages(exc: ValidationError) -> str:
    messages = [m for ms in getattr(exc, "message_dict", {"": exc.messages}).values() for m in ms]
    return " ".join(messages) or "The loan book refused the receipt."


def post_lines(*, statement, lines: Sequence, index, actor, on_progress: Callable[[int], None] | None = None,
               chunk_lines: int = CHUNK_LINES) -> None:
    """Post a statement's lines (statement.Line, file order) chunk by chunk; `index` is the
    entity's book (services._BookIndex). Lines that are invalid, not payments in, or repeat a
    transaction number of an earlier line are left out; what each line became is on its
    ProviderTransaction (statement = this import)."""
    from .services import PaymentIn, payment_in_record

    seen: set[str] = set()
    done = 0
    for start in range(0, len(lines), chunk_lines):
        chunk = lines[start:start + chunk_lines]
        payments = []
        for line in chunk:
            if line.problem or line.skip or line.transaction_id in seen:
                continue
            seen.add(line.transaction_id)
            payments.append(line)
        for attempt in range(RETRIES + 1):
            if attempt == RETRIES:
                for line in payments:  # the slow path: a chunk that kept meeting concurrent callbacks
                    payment_in_record(setup=statement.setup, source=Source.STATEMENT, actor=actor, payment=PaymentIn(
                        provider_transaction_id=line.transaction_id, amount=line.amount, transacted_at=line.completed_at,
                        msisdn=line.msisdn, payer_name=line.payer_name, account_reference=line.account_reference))
                break
            try:
                with transaction.atomic():
                    _post_chunk(statement=statement, lines=payments, index=index, actor=actor)
                break
            except IntegrityError:
                continue
        done += len(chunk)
        if on_progress is not None:
            on_progress(done)


def _post_chunk(*, statement, lines: list, index, actor) -> None:
    entity, setup = statement.entity, statement.setup
    ids = [line.transaction_id for line in lines]
    recorded = set(ProviderTransaction.objects.filter(setup=setup, provider_transaction_id__in=ids)
                   .values_list("provider_transaction_id", flat=True))
    by_hand = {ref: (pk, loan_id) for ref, pk, loan_id in
               Receipt.objects.filter(entity=entity, external_reference__in=[i for i in ids if i not in recorded])
               .values_list("external_reference", "pk", "loan_id")}
    todo = [line for line in lines if line.transaction_id not in recorded]
    candidates = {line.transaction_id: index.candidates(line.account_reference, line.msisdn) for line in todo
                  if line.transaction_id not in by_hand}
    loan_ids = sorted({pk for found, _ in candidates.values() for pk in found})
    loans = {loan.pk: loan for loan in Loan.objects.select_for_update(of=("self",)).annotate(client_cellphone=F("client__cellphone"))
             .filter(entity=entity, pk__in=loan_ids).order_by("pk")}
    instalments: dict[int, list[Instalment]] = {pk: [] for pk in loans}
    for inst in (Instalment.objects.select_for_update().filter(loan_id__in=list(loans), open=True)
                 .order_by("loan_id", "due_date", "seq")):
        instalments[inst.loan_id].append(inst)

    zone = zoneinfo.ZoneInfo(entity.time_zone)
    today = local_today(entity)
    txns: list[ProviderTransaction] = []
    receipts: list[Receipt] = []
    allocations = []
    changed_instalments: dict[int, Instalment] = {}
    changed_loans: dict[int, Loan] = {}
    loan_fields: set[str] = set()
    receipt_of: dict[int, Receipt] = {}  # txns index → its receipt, whose id is known once inserted
    for line in todo:
        txn = ProviderTransaction(
            entity_id=entity.pk, setup_id=setup.pk, provider_transaction_id=line.transaction_id, source=Source.STATEMENT,
            status=TransactionStatus.SUSPENSE, amount=line.amount, msisdn=line.msisdn[:20], payer_name=line.payer_name[:120],
            account_reference=line.account_reference[:40], transacted_at=line.completed_at, statement_id=statement.pk)
        txns.append(txn)
        if line.transaction_id in by_hand:
            # Captured by hand before the statement came: the same money, recorded already (not this import's).
            txn.receipt_id, txn.loan_id = by_hand[line.transaction_id]
            txn.status, txn.statement_id = TransactionStatus.POSTED, None
            continue
        found, reason = candidates[line.transaction_id]
        loan = next((loans[pk] for pk in found if pk in loans and loans[pk].status in OPEN_STATUSES), None)
        if loan is None:
            gone = loans.get(found[0]) if found else None
            txn.suspense_reason = (f"Loan {gone.pk} is {gone.get_status_display()}, not on the book." if gone is not None
                                   else reason)[:200]
            continue
        value_date = line.completed_at.astimezone(zone).date()
        try:
            money, reference = receipt_input(entity=entity, amount=line.amount, payback_type=PaybackType.MOBILE_MONEY,
                                             value_date=value_date, external_reference=line.transaction_id, today=today)
            # Recorded references were set aside above (by_hand), so none is taken here.
            posted = posting.post_held(loan, instalments[loan.pk], money=money, value_date=value_date,
                                       reference=reference, reference_taken=False)
        except ValidationError as exc:
            txn.suspense_reason = _messages(exc)[:200]
            continue
        receipt = Receipt(entity_id=entity.pk, client_id=loan.client_id, loan_id=loan.pk, amount=money, allocated=posted.allocated,
                          change=posted.change, value_date=value_date, payback_type=PaybackType.MOBILE_MONEY,
                          external_reference=reference, loan_status_before=posted.status_before,
                          loan_paid_up_on_before=posted.paid_up_on_before, captured_by_id=getattr(actor, "pk", None))
        rows = [ReceiptAllocation(receipt=receipt, instalment=p.instalment, fee=p.line.fee, vat=p.line.vat,
                                  interest=p.line.interest, capital=p.line.capital, paid_on_before=p.paid_on_before)
                for p in posted.lines]
        loan_fields.update(("received_total", "change_total"))
        if posted.last_receipt_moved:
            loan.last_receipt_ord = day_number(loan.last_receipt_on)
            loan_fields.update(("last_receipt_on", "last_receipt_ord"))
        if posted.paid_up:
            loan.paid_up_ord = day_number(loan.paid_up_on)
            loan_fields.update(("status", "paid_up_on", "paid_up_ord"))
        receipts.append(receipt)
        allocations.extend(rows)
        changed_instalments.update((p.instalment.pk, p.instalment) for p in posted.lines)
        changed_loans[loan.pk] = loan
        txn.status, txn.loan_id = TransactionStatus.POSTED, loan.pk
        receipt_of[len(txns) - 1] = receipt
        if loan.client_cellphone:
            txn.confirmation_sms = ConfirmationSms.PENDING

    Receipt.objects.bulk_create(receipts, batch_size=1000)
    ReceiptAllocation.objects.bulk_create(allocations, batch_size=2000)
    update_rows(Instalment, list(changed_instalments.values()), INSTALMENT_PAID_FIELDS)
    update_rows(Loan, list(changed_loans.values()), sorted(loan_fields))
    for n, receipt in receipt_of.items():
        txns[n].receipt_id = receipt.pk
    ProviderTransaction.objects.bulk_create(txns, batch_size=1000)
    actor_id = getattr(actor, "pk", None)
    AuditEntry.objects.bulk_create([
        AuditEntry(action=AuditAction.RECEIPT_POSTED, actor_id=actor_id, entity_id=entity.pk, object_type=Receipt._meta.label,
                   object_id=str(r.pk), subject=r.external_reference, after=snapshot(r)) for r in receipts], batch_size=1000)
