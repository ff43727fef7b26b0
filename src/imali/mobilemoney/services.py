"""Every write of mobile money: provider setups, payments in (callbacks, statements, MoMo requests
to pay), the suspense queue, and mobile disbursements. Keyword-only arguments, one transaction
each, audited."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from imali.clients.models import Client
from imali.core.audit import audit_record, changed_only, snapshot
from imali.core.models import AuditAction
from imali.core.money import parse_amount
from imali.loans.models import OPEN_STATUSES, Loan, PaybackType
from imali.loans.services import receipt_post
from imali.tenancy.models import Entity

from .adapters import ProviderError, adapter_for
from .errors import MobileMoneyError, error
from .models import Provider, ProviderSetup, ProviderTransaction, Source, TransactionStatus

log = logging.getLogger("imali.mobilemoney")

SETUP_FIELDS = ("provider", "is_active", "base_url", "short_code", "target_environment", "currency", "consumer_key",
                "consumer_secret", "subscription_key", "initiator_name", "security_credential", "callback_base_url")


# --- setups and callback URLs -------------------------------------------------------------------
def callback_token(setup: ProviderSetup) -> str:
    """The credential our callback URLs carry (providers take only a URL): derived, never stored."""
    message = f"imali-mobilemoney:{setup.provider}:{setup.pk}:{setup.callback_salt}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()[:40]


CALLBACK_PATHS = {
    "validation": "callbacks/mpesa/validation/",
    "confirmation": "callbacks/mpesa/confirmation/",
    "result": "callbacks/mpesa/result/",
    "timeout": "callbacks/mpesa/timeout/",
    "collection": "callbacks/momo/collection/",
    "disbursement": "callbacks/momo/disbursement/",
}


def callback_url(setup: ProviderSetup, event: str, **extra: str) -> str:
    query = urlencode({"setup": setup.pk, "token": callback_token(setup), **extra})
    return f"{setup.callback_base_url.rstrip('/')}/api/{CALLBACK_PATHS[event]}?{query}"


def setup_save(*, entity: Entity, actor, data: dict[str, Any], setup: ProviderSetup | None = None) -> ProviderSetup:
    """Create or change a provider setup. A secret left blank keeps the stored one; the audit entry
    says a secret changed, never its value."""
    found: dict[str, ValidationError] = {}
    provider = data.get("provider", setup.provider if setup else "")
    if provider not in Provider.values:
        found["provider"] = "Choose M-PESA or MTN MoMo."
    for name in ("base_url", "consumer_key", "callback_base_url"):
        if not str(data.get(name) or (getattr(setup, name, "") if setup else "")).strip():
            found[name] = "This field is required."
    if provider == Provider.MPESA and not str(data.get("short_code") or "").strip():
        found["short_code"] = "M-PESA needs the paybill short code."
    if provider == Provider.MOMO and not str(data.get("target_environment") or "").strip():
        found["target_environment"] = "MoMo needs the target environment (e.g. mtnzambia)."
    if setup is None and not str(data.get("consumer_secret") or "").strip():
        found["consumer_secret"] = "This field is required."
    if found:
        raise ValidationError({k: [ValidationError(v, code=MobileMoneyError.REQUIRED)] for k, v in found.items()})
    with transaction.atomic():
        if setup is None:
            if ProviderSetup.objects.filter(entity=entity, provider=provider).exists():
                raise error("provider", MobileMoneyError.INVALID, "This provider is set up already: edit that setup.")
            setup = ProviderSetup(entity=entity, callback_salt=secrets.token_hex(8))
            before = {}
        else:
            setup = ProviderSetup.objects.select_for_update().get(pk=setup.pk, entity=entity)
            before = snapshot(setup, exclude=ProviderSetup.SECRET_FIELDS + ("callback_salt",))
        secrets_changed = []
        for name in SETUP_FIELDS:
            if name not in data:
                continue
            value = data[name]
            if name in ProviderSetup.SECRET_FIELDS:
                if not str(value or "").strip():
                    continue
                if value != getattr(setup, name):
                    secrets_changed.append(name)
            setattr(setup, name, value.strip() if isinstance(value, str) else value)
        setup.save()
        after = snapshot(setup, exclude=ProviderSetup.SECRET_FIELDS + ("callback_salt",))
        before, after = changed_only(before, after)
        if secrets_changed:
            after["secrets_changed"] = secrets_changed
        audit_record(action=AuditAction.MOBILE_MONEY_SETUP_CHANGED, actor=actor, entity=entity, target=setup,
                     subject=setup.get_provider_display(), before=before, after=after)
    return setup


def setup_rotate_callback_token(*, setup: ProviderSetup, actor) -> ProviderSetup:
    """A new callback token: every URL registered before stops working (register again)."""
    with transaction.atomic():
        ProviderSetup.objects.filter(pk=setup.pk).update(callback_salt=secrets.token_hex(8), registered_at=None)
        setup.refresh_from_db()
        audit_record(action=AuditAction.MOBILE_MONEY_SETUP_CHANGED, actor=actor, entity=setup.entity, target=setup,
                     subject=setup.get_provider_display(), after={"callback_token": "rotated"})
    return setup


def setup_register_urls(*, setup: ProviderSetup, actor) -> ProviderSetup:
    """Tell M-PESA where to send validation and confirmation callbacks (C2B register URL)."""
    try:
        adapter_for(setup).register_urls(validation_url=callback_url(setup, "validation"),
                                          confirmation_url=callback_url(setup, "confirmation"))
    except ProviderError as exc:
        raise error("provider", MobileMoneyError.PROVIDER_REFUSED, str(exc)) from None
    with transaction.atomic():
        ProviderSetup.objects.filter(pk=setup.pk).update(registered_at=timezone.now())
        setup.refresh_from_db()
        audit_record(action=AuditAction.MOBILE_MONEY_URLS_REGISTERED, actor=actor, entity=setup.entity, target=setup,
                     subject=setup.short_code, after={"registered_at": setup.registered_at.isoformat()})
    return setup


# --- matching a payment to a loan -----------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    loan: Loan | None
    reason: str = ""


def _oldest_open_loan(entity: Entity, client_ids) -> Loan | None:
    return (Loan.objects.filter(entity=entity, client_id__in=client_ids, status__in=OPEN_STATUSES)
            .select_related("client").order_by("disbursed_on", "id").first())


def _is_number(text: str) -> bool:
    """Digits int() accepts and a database integer holds: str.isdigit() also passes "²" and other
    Unicode digits, which int() refuses (a 500 on whatever the payer typed as the reference)."""
    return text.isascii() and text.isdigit() and len(text) <= 18


def match_payment(*, entity: Entity, reference: str, msisdn: str = "") -> Match:
    """The loan a payment is for: "L<loan number>" is that loan; a client number is the client's
    oldest loan on the book; with no usable reference, the one client whose cellphone paid."""
    ref = (reference or "").strip().upper().replace(" ", "")
    if ref.startswith("L") and _is_number(ref[1:]):
        loan = Loan.objects.filter(entity=entity, pk=int(ref[1:])).select_related("client").first()
        if loan is None:
            return Match(None, f"No loan {ref[1:]}.")
        if loan.status not in OPEN_STATUSES:
            return Match(None, f"Loan {loan.pk} is {loan.get_status_display()}, not on the book.")
        return Match(loan)
    if _is_number(ref):
        client = Client.objects.filter(entity=entity, number=int(ref)).only("pk").first()
        if client is None:
            return Match(None, f"No client number {ref}.")
        loan = _oldest_open_loan(entity, [client.pk])
        return Match(loan, "" if loan else f"Client {ref} has no loan on the book.")
    digits = "".join(c for c in msisdn if c.isascii() and c.isdigit())
    if digits and not ref:
        clients = list(Client.objects.filter(entity=entity, cellphone=f"+{digits}").values_list("pk", flat=True)[:2])
        if len(clients) == 1:
            loan = _oldest_open_loan(entity, clients)
            return Match(loan, "" if loan else "The paying phone's client has no loan on the book.")
        return Match(None, "No account reference, and the phone is not one client's.")
    return Match(None, f"Account reference '{reference}' is not a client or loan number." if ref else "No account reference.")


# --- payments in ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class PaymentIn:
    provider_transaction_id: str
    amount: Decimal
    transacted_at: dt.datetime
    msisdn: str = ""
    payer_name: str = ""
    account_reference: str = ""


def payment_in_record(*, setup: ProviderSetup, payment: PaymentIn, source: str, actor=None) -> tuple[ProviderTransaction, bool]:
    """Record one payment into the entity's account exactly once per provider transaction id:
    matched → a receipt on the loan carrying the provider's number, and an SMS to the client;
    otherwise it waits in suspense. Returns (the transaction, created now)."""
    entity = setup.entity
    existing = ProviderTransaction.objects.filter(setup=setup, provider_transaction_id=payment.provider_transaction_id).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            txn = ProviderTransaction.objects.create(
                entity=entity, setup=setup, provider_transaction_id=payment.provider_transaction_id, source=source,
                status=TransactionStatus.SUSPENSE, amount=payment.amount, msisdn=payment.msisdn[:20],
                payer_name=payment.payer_name[:120], account_reference=payment.account_reference[:40],
                transacted_at=payment.transacted_at)
            from imali.loans.models import Receipt

            earlier = Receipt.objects.filter(entity=entity, external_reference=payment.provider_transaction_id).first()
            if earlier is not None:
                # Captured by hand before the provider told us: the same money, recorded already.
                txn.status, txn.receipt, txn.loan_id = TransactionStatus.POSTED, earlier, earlier.loan_id
                txn.save(update_fields=["status", "receipt", "loan"])
                return txn, False
            match = match_payment(entity=entity, reference=payment.account_reference, msisdn=payment.msisdn)
            receipt, reason = None, match.reason
            if match.loan is not None:
                receipt, reason = _post_receipt(txn, match.loan, actor=actor)
            if receipt is not None:
                txn.status, txn.receipt, txn.loan = TransactionStatus.POSTED, receipt, match.loan
            else:
                txn.suspense_reason = reason[:200]
            txn.save(update_fields=["status", "receipt", "loan", "suspense_reason"])
            audit_record(action=AuditAction.MOBILE_PAYMENT_RECEIVED, actor=actor, entity=entity, target=txn,
                         subject=txn.provider_transaction_id,
                         after={"amount": str(txn.amount), "status": txn.status, "source": source,
                                "loan_id": txn.loan_id, "reason": txn.suspense_reason})
    except IntegrityError:
        # The same transaction id committed by a concurrent callback (or import) first.
        existing = ProviderTransaction.objects.filter(setup=setup, provider_transaction_id=payment.provider_transaction_id).first()
        if existing is None:
            raise
        return existing, False
    return txn, True


def _value_date(txn: ProviderTransaction) -> dt.date:
    return txn.transacted_at.astimezone(zoneinfo.ZoneInfo(txn.entity.time_zone)).date()


def _post_receipt(txn: ProviderTransaction, loan: Loan, *, actor):
    """(receipt, "") or (None, why not): a refusal by the loan book leaves the payment in suspense."""
    try:
        with transaction.atomic():
            receipt = receipt_post(entity=txn.entity, actor=actor, loan=loan, amount=txn.amount,
                                   value_date=_value_date(txn), payback_type=PaybackType.MOBILE_MONEY,
                                   external_reference=txn.provider_transaction_id)
    except ValidationError as exc:
        messages = [m for ms in getattr(exc, "message_dict", {"": exc.messages}).values() for m in ms]
        return None, " ".join(messages) or "The loan book refused the receipt."
    _confirm_by_sms(txn, loan, receipt)
    return receipt, ""


def _confirm_by_sms(txn: ProviderTransaction, loan: Loan, receipt) -> None:
    """The client's confirmation SMS, in the same transaction as the receipt (the outbox rule); a
    refusal by messaging (no credits, no cellphone) never undoes the payment, it is logged."""
    from imali.messaging.models import MessageType
    from imali.messaging.services import merge_values, message_enqueue, template_text
    from imali.messaging.templating import render

    client = loan.client
    if not client.cellphone:
        return
    entity = txn.entity
    values = merge_values(entity=entity, client=client)
    try:
        greeting = render(template_text(entity=entity, message_type=MessageType.PAYMENT_RECEIVED), values, missing="")
    except Exception:  # an entity template naming loan fields we do not fill here
        greeting = f"Dear {values.get('Client Name', '')} thank you, your payment was received."
    text = (f"{greeting} {entity.currency} {txn.amount:,.2f} for loan {loan.pk}, "
            f"{txn.setup.get_provider_display().split(' ')[0]} ref {txn.provider_transaction_id}.")
    try:
        with transaction.atomic():
            message_enqueue(entity=entity, number=client.cellphone, text=text, message_type=MessageType.PAYMENT_RECEIVED,
                            idempotency_key=f"mm-payment:{txn.setup_id}:{txn.provider_transaction_id}", client=client)
    except (ValidationError, PermissionError) as exc:
        log.warning("payment %s: confirmation SMS not queued: %s", txn.provider_transaction_id, exc)


def suspense_allocate(*, txn: ProviderTransaction, actor, loan: Loan) -> ProviderTransaction:
    """A person puts a payment waiting in suspense on a loan: the receipt, the SMS, the audit."""
    if loan.entity_id != txn.entity_id:
        raise error("loan", MobileMoneyError.OTHER_ENTITY)
    with transaction.atomic():
        locked = ProviderTransaction.objects.select_for_update(of=("self",)).select_related("entity", "setup").get(pk=txn.pk)
        if locked.status != TransactionStatus.SUSPENSE:
            raise error("transaction", MobileMoneyError.NOT_IN_SUSPENSE)
        receipt = receipt_post(entity=locked.entity, actor=actor, loan=loan, amount=locked.amount,
                               value_date=_value_date(locked), payback_type=PaybackType.MOBILE_MONEY,
                               external_reference=locked.provider_transaction_id)
        _confirm_by_sms(locked, Loan.objects.select_related("client__branch").get(pk=loan.pk), receipt)
        locked.status, locked.receipt, locked.loan = TransactionStatus.ALLOCATED, receipt, loan
        locked.allocated_by, locked.allocated_at = actor, timezone.now()
        locked.save(update_fields=["status", "receipt", "loan", "allocated_by", "allocated_at"])
        audit_record(action=AuditAction.MOBILE_PAYMENT_ALLOCATED, actor=actor, entity=locked.entity, target=locked,
                     subject=locked.provider_transaction_id,
                     before={"status": TransactionStatus.SUSPENSE, "reason": locked.suspense_reason},
                     after={"status": locked.status, "loan_id": loan.pk, "receipt_id": receipt.pk})
    return locked


# --- M-PESA C2B callbacks --------------------------------------------------------------------------
C2B_ACCEPT = {"ResultCode": 0, "ResultDesc": "Accepted"}


def mpesa_payment(setup: ProviderSetup, body: dict) -> PaymentIn:
    """A validation or confirmation body read strictly; a field that does not read raises
    ValidationError naming it."""
    trans_id = str(body.get("TransID") or "").strip()
    if not trans_id or len(trans_id) > 64:
        raise error("TransID", MobileMoneyError.REQUIRED, "TransID is required.")
    amount = parse_amount(str(body.get("TransAmount", "")), field="TransAmount")
    raw_time = str(body.get("TransTime") or "")
    try:
        naive = dt.datetime.strptime(raw_time, "%Y%m%d%H%M%S")
    except ValueError:
        raise error("TransTime", MobileMoneyError.INVALID, "TransTime must be YYYYMMDDHHmmss.") from None
    names = " ".join(str(body.get(k) or "").strip() for k in ("FirstName", "MiddleName", "LastName")).split()
    return PaymentIn(provider_transaction_id=trans_id, amount=amount,
                     transacted_at=naive.replace(tzinfo=zoneinfo.ZoneInfo(setup.entity.time_zone)),
                     msisdn=str(body.get("MSISDN") or "")[:20], payer_name=" ".join(names),
                     account_reference=str(body.get("BillRefNumber") or "").strip())


def mpesa_validate(*, setup: ProviderSetup, body: dict) -> dict:
    """The answer to a validation callback: accept only a payment we can place (DOMAIN §11 codes)."""
    if str(body.get("BusinessShortCode", "")) != setup.short_code:
        return {"ResultCode": "C2B00015", "ResultDesc": "Invalid ShortCode"}
    try:
        payment = mpesa_payment(setup, body)
    except ValidationError as exc:
        if "TransAmount" in exc.message_dict:
            return {"ResultCode": "C2B00013", "ResultDesc": "Invalid Amount"}
        return {"ResultCode": "C2B00016", "ResultDesc": "Other Error"}
    match = match_payment(entity=setup.entity, reference=payment.account_reference)
    if match.loan is None:
        return {"ResultCode": "C2B00012", "ResultDesc": "Invalid Account Number"}
    return C2B_ACCEPT


def mpesa_confirm(*, setup: ProviderSetup, body: dict) -> tuple[ProviderTransaction, bool]:
    if str(body.get("BusinessShortCode", "")) != setup.short_code:
        raise error("BusinessShortCode", MobileMoneyError.INVALID, "The short code is not this setup's.")
    return payment_in_record(setup=setup, payment=mpesa_payment(setup, body), source=Source.CALLBACK)


# --- statement import ------------------------------------------------------------------------------
@dataclass
class PreviewLine:
    number: int
    transaction_id: str
    amount: Decimal | None
    account_reference: str
    kind: str  # matched | unmatched | recorded | invalid | skipped
    note: str
    loan_id: int | None = None


@dataclass
class StatementPreview:
    statement: Any
    lines: list[PreviewLine]

    def count(self, kind: str) -> int:
        return sum(1 for line in self.lines if line.kind == kind)

    @property
    def counts(self) -> dict[str, int]:
        return {k: self.count(k) for k in ("matched", "unmatched", "recorded", "invalid", "skipped")}


class _BookIndex:
    """The entity's loans on the book, read once, for matching a whole statement in memory by the
    rules of match_payment (a statement of 100,000 lines must not cost queries per line)."""

    def __init__(self, entity: Entity):
        rows = (Loan.objects.filter(entity=entity, status__in=OPEN_STATUSES)
                .order_by("disbursed_on", "id").values_list("pk", "client_id", "client__number", "client__cellphone"))
        self.loans: set[int] = set()
        self.by_client_number: dict[int, int] = {}
        self.by_cellphone: dict[str, set[int]] = {}
        for pk, client_id, number, cellphone in rows:
            self.loans.add(pk)
            self.by_client_number.setdefault(number, pk)
            if cellphone:
                self.by_cellphone.setdefault(cellphone, set()).add(client_id)
        self._first_by_phone = {}
        for pk, _client_id, _number, cellphone in rows:
            if cellphone and len(self.by_cellphone[cellphone]) == 1:
                self._first_by_phone.setdefault(cellphone, pk)

    def match(self, reference: str, msisdn: str) -> tuple[int | None, str]:
        ref = (reference or "").strip().upper().replace(" ", "")
        if ref.startswith("L") and _is_number(ref[1:]):
            return (int(ref[1:]), "") if int(ref[1:]) in self.loans else (None, f"No loan {ref[1:]} on the book.")
        if _is_number(ref):
            loan = self.by_client_number.get(int(ref))
            return (loan, "") if loan else (None, f"No client {ref} with a loan on the book.")
        digits = "".join(c for c in msisdn if c.isascii() and c.isdigit())
        if digits and not ref:
            loan = self._first_by_phone.get(f"+{digits}")
            return (loan, "") if loan else (None, "No account reference, and the phone is not one client's.")
        return None, (f"Account reference '{reference}' is not a client or loan number." if ref else "No account reference.")


def _statement_lines(statement) -> list:
    from .statement import read_statement

    return read_statement(bytes(statement.content), statement.file_name, columns=statement.columns,
                          time_zone=statement.entity.time_zone)


def statement_upload(*, setup: ProviderSetup, actor, file_name: str, content: bytes, columns: dict[str, str]) -> StatementPreview:
    """Read the file (refusing one that does not read, naming the line) and keep it for the confirm."""
    from .models import StatementImport
    from .statement import DEFAULT_COLUMNS

    if not content:
        raise error("file", MobileMoneyError.BAD_FILE, "The file is empty.")
    if not file_name.lower().endswith((".csv", ".xlsx", ".txt")):
        raise error("file", MobileMoneyError.BAD_FILE, "Upload a CSV or XLSX file.")
    columns = {k: (columns.get(k) or "").strip() or v for k, v in DEFAULT_COLUMNS.items()}
    statement = StatementImport(entity=setup.entity, setup=setup, file_name=file_name[:200],
                                file_sha256=hashlib.sha256(content).hexdigest(), content=content, columns=columns,
                                imported_by=actor)
    lines = _statement_lines(statement)  # raises ValidationError on an unreadable file
    with transaction.atomic():
        statement.lines = len(lines)
        statement.save()
        if columns != (setup.statement_columns or DEFAULT_COLUMNS):
            ProviderSetup.objects.filter(pk=setup.pk).update(statement_columns=columns)
    return statement_preview(statement=statement, lines=lines)


def statement_preview(*, statement, lines: list | None = None) -> StatementPreview:
    lines = _statement_lines(statement) if lines is None else lines
    entity = statement.entity
    ids = [line.transaction_id for line in lines if line.transaction_id]
    recorded: set[str] = set()
    for start in range(0, len(ids), 5000):
        chunk = ids[start:start + 5000]
        recorded.update(ProviderTransaction.objects.filter(setup=statement.setup, provider_transaction_id__in=chunk)
                        .values_list("provider_transaction_id", flat=True))
        from imali.loans.models import Receipt

        recorded.update(Receipt.objects.filter(entity=entity, external_reference__in=chunk)
                        .values_list("external_reference", flat=True))
    index = _BookIndex(entity)
    seen: dict[str, int] = {}
    out: list[PreviewLine] = []
    for line in lines:
        if line.problem:
            out.append(PreviewLine(line.number, line.transaction_id, line.amount, line.account_reference, "invalid", line.problem))
        elif line.skip:
            out.append(PreviewLine(line.number, line.transaction_id, line.amount, line.account_reference, "skipped", line.skip))
        elif line.transaction_id in recorded:
            out.append(PreviewLine(line.number, line.transaction_id, line.amount, line.account_reference, "recorded",
                                   "Recorded already."))
        elif line.transaction_id in seen:
            out.append(PreviewLine(line.number, line.transaction_id, line.amount, line.account_reference, "recorded",
                                   f"Same transaction as line {seen[line.transaction_id]}."))
        else:
            seen[line.transaction_id] = line.number
            loan_id, reason = index.match(line.account_reference, line.msisdn)
            out.append(PreviewLine(line.number, line.transaction_id, line.amount, line.account_reference,
                                   "matched" if loan_id else "unmatched", f"Loan {loan_id}" if loan_id else reason, loan_id))
    return StatementPreview(statement, out)


def statement_confirm(*, statement, actor) -> Any:
    """Post every line not recorded yet (each once: payment_in_record), then log the counts. A
    statement is confirmed once; the same file uploaded again adds nothing."""
    from .models import StatementImport

    with transaction.atomic():
        locked = StatementImport.objects.select_for_update(of=("self",)).select_related("entity", "setup__entity").get(pk=statement.pk)
        if locked.confirmed_at is not None:
            raise error("statement", MobileMoneyError.INVALID, "This statement has been imported already.")
        locked.confirmed_at = timezone.now()
        locked.save(update_fields=["confirmed_at"])
    counts = {"posted": 0, "suspense": 0, "already_recorded": 0, "invalid": 0, "skipped": 0}
    for line in _statement_lines(locked):
        if line.problem:
            counts["invalid"] += 1
            continue
        if line.skip:
            counts["skipped"] += 1
            continue
        txn, created = payment_in_record(setup=locked.setup, payment=PaymentIn(
            provider_transaction_id=line.transaction_id, amount=line.amount, transacted_at=line.completed_at,
            msisdn=line.msisdn, payer_name=line.payer_name, account_reference=line.account_reference),
            source=Source.STATEMENT, actor=actor)
        if not created:
            counts["already_recorded"] += 1
        elif txn.status == TransactionStatus.POSTED:
            counts["posted"] += 1
        else:
            counts["suspense"] += 1
    with transaction.atomic():
        StatementImport.objects.filter(pk=locked.pk).update(
            posted=counts["posted"], suspense=counts["suspense"], already_recorded=counts["already_recorded"],
            invalid=counts["invalid"], skipped=counts["skipped"], content=b"")
        locked.refresh_from_db()
        audit_record(action=AuditAction.MOBILE_STATEMENT_IMPORTED, actor=actor, entity=locked.entity, target=locked,
                     subject=locked.file_name, after={"lines": locked.lines, **counts, "sha256": locked.file_sha256})
    return locked
