"""Every write of mobile money: provider setups, payments in (callbacks, statements, MoMo requests
to pay), the suspense queue, and mobile disbursements. Keyword-only arguments, one transaction
each, audited."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import time
import zoneinfo
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from imali.clients.models import Client
from imali.core import destination
from imali.core.audit import audit_record, audit_record_once, changed_only, snapshot
from imali.core.models import AuditAction
from imali.core.money import parse_amount
from imali.loans.errors import LoanError
from imali.loans.models import OPEN_STATUSES, Loan, PaybackType
from imali.loans.services import receipt_post
from imali.tenancy.models import Entity

from .adapters import DestinationRefused, MobileMoneyAdapter, ProviderError, adapter_for
from .errors import MobileMoneyError, error
from .models import (
    ConfirmationSms,
    Provider,
    ProviderSetup,
    ProviderTransaction,
    Source,
    TransactionStatus,
)

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
    currency = str(data.get("currency") or "").strip().upper()
    if currency and currency != entity.currency:
        # The loan book is kept in the entity's currency: a provider account in another one would
        # post its amounts as if they were the entity's (a ZMW receipt for EUR 100).
        found["currency"] = (f"The provider account must be in {entity.currency}, the currency of this lender's loan "
                             f"book; leave it blank for {entity.currency}.")
    errors = {k: [ValidationError(v, code=MobileMoneyError.INVALID if k == "currency" else MobileMoneyError.REQUIRED)]
              for k, v in found.items()}
    if "currency" in data:
        data = {**data, "currency": currency}  # stored as the code is sent: "ZMW", not "zmw"
    if "base_url" in data and "base_url" not in errors:
        # The server connects to it with the setup's credentials: not to an internal address (SSRF).
        problem = destination.base_url_problem(str(data["base_url"]).strip(), **destination.rules())
        if problem:
            errors["base_url"] = [ValidationError(problem, code=MobileMoneyError.DESTINATION_REFUSED)]
    if errors:
        raise ValidationError(errors)
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


# A refused address is audited once an hour per setup and reason (each refusal is still logged): the
# recovery of stuck payments meets it on every row it retries.
REFUSAL_AUDITED_EVERY = dt.timedelta(hours=1)


def provider_adapter(setup: ProviderSetup, *, timeout: float = 10.0) -> MobileMoneyAdapter:
    """The adapter for `setup`, once its base URL passes the destination rule as it resolves now (a
    row saved under older rules or settings, a name that points somewhere internal since). A refusal
    sends nothing: it is logged, audited and raised as DestinationRefused, which the callers treat
    as any refusal by the provider."""
    problem = destination.resolved_problem(setup.base_url, **destination.rules())
    if problem:
        host = _host(setup.base_url) or "?"
        log.warning("mobile-money setup %s: base URL refused (%s): %s", setup.pk, host, problem)
        audit_record_once(within=REFUSAL_AUDITED_EVERY, action=AuditAction.MOBILE_MONEY_DESTINATION_REFUSED,
                          entity=setup.entity, target=setup, subject=setup.get_provider_display(),
                          after={"field": "base_url", "host": host, "reason": problem})
        raise DestinationRefused(f"The provider's address is refused (Setup → Mobile money): {problem}",
                                 code=MobileMoneyError.DESTINATION_REFUSED.value)
    return adapter_for(setup, timeout=timeout)


def _host(url: str) -> str:
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""


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
        provider_adapter(setup).register_urls(validation_url=callback_url(setup, "validation"),
                                              confirmation_url=callback_url(setup, "confirmation"))
    except DestinationRefused as exc:
        raise error("base_url", MobileMoneyError.DESTINATION_REFUSED, str(exc)) from None
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


@dataclass(frozen=True)
class Reference:
    """What a payer's account reference names, read one way for every matcher (one payment,
    a batch of callbacks, a whole statement): kind "loan" (value: the loan number), "client" (the
    client number), "phone" (no reference: the paying cellphone, "+<digits>") or "none" (value:
    why nothing can be matched)."""

    kind: str
    value: int | str


def reference_read(reference: str, msisdn: str = "") -> Reference:
    ref = (reference or "").strip().upper().replace(" ", "")
    if ref.startswith("L") and _is_number(ref[1:]):
        return Reference("loan", int(ref[1:]))
    if _is_number(ref):
        return Reference("client", int(ref))
    digits = "".join(c for c in msisdn if c.isascii() and c.isdigit())
    if digits and not ref:
        return Reference("phone", f"+{digits}")
    return Reference("none", f"Account reference '{reference}' is not a client or loan number." if ref
                     else "No account reference.")


NOT_ONE_CLIENTS_PHONE = "No account reference, and the phone is not one client's."


def match_payment(*, entity: Entity, reference: str, msisdn: str = "") -> Match:
    """The loan a payment is for: "L<loan number>" is that loan; a client number is the client's
    oldest loan on the book; with no usable reference, the one client whose cellphone paid."""
    read = reference_read(reference, msisdn)
    if read.kind == "loan":
        loan = Loan.objects.filter(entity=entity, pk=read.value).select_related("client").first()
        if loan is None:
            return Match(None, f"No loan {read.value}.")
        if loan.status not in OPEN_STATUSES:
            return Match(None, f"Loan {loan.pk} is {loan.get_status_display()}, not on the book.")
        return Match(loan)
    if read.kind == "client":
        client = Client.objects.filter(entity=entity, number=read.value).only("pk").first()
        if client is None:
            return Match(None, f"No client number {read.value}.")
        loan = _oldest_open_loan(entity, [client.pk])
        return Match(loan, "" if loan else f"Client {read.value} has no loan on the book.")
    if read.kind == "phone":
        clients = list(Client.objects.filter(entity=entity, cellphone=read.value).values_list("pk", flat=True)[:2])
        if len(clients) == 1:
            loan = _oldest_open_loan(entity, clients)
            return Match(loan, "" if loan else "The paying phone's client has no loan on the book.")
        return Match(None, NOT_ONE_CLIENTS_PHONE)
    return Match(None, read.value)


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
    matched → a receipt on the loan carrying the provider's number; otherwise it waits in suspense.
    Returns (the transaction, created now).

    The transaction holds as few locks as it can (the unique (setup, transaction id) index entry and
    the loan's row, through receipt_post): a burst of confirmations for different loans runs side
    by side. The client's SMS is only *marked* here (`confirmation_sms` PENDING, durable with the
    receipt) and queued after the commit (`payment_confirmation_send`, on the Huey consumer), because
    queuing an SMS takes the entity's credit-ledger lock: inside this transaction it would make every
    callback of the entity wait for the one before it."""
    entity = setup.entity
    try:
        # No look-up first: the unique (setup, transaction id) index refuses a replay at the insert
        # (one query less for every new payment, which is nearly all of them), and is the lock a
        # concurrent callback with the same id waits on.
        with transaction.atomic():
            txn = ProviderTransaction.objects.create(
                entity=entity, setup=setup, provider_transaction_id=payment.provider_transaction_id, source=source,
                status=TransactionStatus.SUSPENSE, amount=payment.amount, msisdn=payment.msisdn[:20],
                payer_name=payment.payer_name[:120], account_reference=payment.account_reference[:40],
                transacted_at=payment.transacted_at)
            match = match_payment(entity=entity, reference=payment.account_reference, msisdn=payment.msisdn)
            receipt, reason = None, match.reason
            if match.loan is not None:
                receipt, reason = _post_receipt(txn, match.loan, actor=actor)
            else:
                receipt = _earlier_receipt(entity, payment.provider_transaction_id)
                reason = _BY_HAND if receipt is not None else reason
            if reason == _BY_HAND:
                # Captured by hand before the provider told us: the same money, recorded already.
                return _recorded_by_hand(txn, receipt), False
            if receipt is not None:
                txn.status, txn.receipt, txn.loan = TransactionStatus.POSTED, receipt, match.loan
                if match.loan.client.cellphone:
                    txn.confirmation_sms = ConfirmationSms.PENDING
            else:
                txn.suspense_reason = reason[:200]
            txn.save(update_fields=["status", "receipt", "loan", "suspense_reason", "confirmation_sms"])
            audit_record(action=AuditAction.MOBILE_PAYMENT_RECEIVED, actor=actor, entity=entity, target=txn,
                         subject=txn.provider_transaction_id,
                         after={"amount": str(txn.amount), "status": txn.status, "source": source,
                                "loan_id": txn.loan_id, "reason": txn.suspense_reason})
            if txn.confirmation_sms == ConfirmationSms.PENDING:
                txn_id = txn.pk
                transaction.on_commit(lambda: _confirmation_later(txn_id))
    except IntegrityError:
        # The same transaction id recorded before (a replay) or by a concurrent callback (or import) first.
        existing = ProviderTransaction.objects.filter(setup=setup, provider_transaction_id=payment.provider_transaction_id).first()
        if existing is None:
            raise
        return existing, False
    return txn, True


def payment_in_receive(*, setup: ProviderSetup, payment: PaymentIn, source: str) -> tuple[ProviderTransaction, bool]:
    """Store one payment a provider confirmed, exactly once per provider transaction id, and have
    it posted in the background: one INSERT (RECEIVED), committed before the provider is answered,
    so the payment is durable; the unique (setup, transaction id) index refuses a replay or a
    concurrent callback with the same id (which then changes nothing), and a statement line for it
    later finds it recorded. After the commit the consumer is asked to post (received.post_soon):
    the match, the receipt on the loan or the suspense queue, the audit and then the client's SMS,
    set-based for every payment waiting (received.payments_received_post). Returns (the payment,
    stored now)."""
    from . import received

    row = ProviderTransaction(
        entity=setup.entity, setup=setup, provider_transaction_id=payment.provider_transaction_id, source=source,
        status=TransactionStatus.RECEIVED, amount=payment.amount, msisdn=payment.msisdn[:20],
        payer_name=payment.payer_name[:120], account_reference=payment.account_reference[:40],
        transacted_at=payment.transacted_at)
    try:
        if connection.in_atomic_block:
            # Inside the caller's transaction: a savepoint, so a refused replay leaves it usable.
            with transaction.atomic():
                row.save(force_insert=True)
        else:
            # The web request: one INSERT that commits itself (no BEGIN and COMMIT round trips).
            row.save(force_insert=True)
        txn = row
    except IntegrityError:
        existing = ProviderTransaction.objects.filter(setup=setup, provider_transaction_id=payment.provider_transaction_id).first()
        if existing is None:
            raise
        return existing, False
    transaction.on_commit(received.post_soon)  # at once when the insert committed itself
    return txn, True


# receipt_post's answer when the provider's number is on a receipt already (captured by hand).
_BY_HAND = "recorded by hand"


def _earlier_receipt(entity: Entity, reference: str):
    from imali.loans.models import Receipt

    return Receipt.objects.filter(entity=entity, external_reference=reference).first()


def _recorded_by_hand(txn: ProviderTransaction, receipt) -> ProviderTransaction:
    txn.status, txn.receipt, txn.loan_id = TransactionStatus.POSTED, receipt, receipt.loan_id
    txn.save(update_fields=["status", "receipt", "loan"])
    return txn


def _confirmation_later(txn_id: int) -> None:
    """After the receipt committed: hand the SMS to the consumer. If the queue cannot take it now,
    the PENDING mark stays and the sweep (mobile_money_recover) sends it."""
    from .tasks import payment_confirmation_task

    try:
        payment_confirmation_task(txn_id)
    except Exception:  # the task queue is down: the payment stands, the sweep will send the SMS
        log.warning("payment %s: confirmation SMS left to the sweep (task queue unavailable)", txn_id, exc_info=True)


def _value_date(txn: ProviderTransaction) -> dt.date:
    return txn.transacted_at.astimezone(zoneinfo.ZoneInfo(txn.entity.time_zone)).date()


def _post_receipt(txn: ProviderTransaction, loan: Loan, *, actor):
    """(receipt, "") or (None, why not): a refusal by the loan book leaves the payment in suspense;
    (the earlier receipt, _BY_HAND) when the provider's number was captured by hand already."""
    try:
        # receipt_post writes inside its own savepoint: a refusal leaves this transaction as it was.
        receipt = receipt_post(entity=txn.entity, actor=actor, loan=loan, amount=txn.amount,
                               value_date=_value_date(txn), payback_type=PaybackType.MOBILE_MONEY,
                               external_reference=txn.provider_transaction_id)
    except ValidationError as exc:
        if LoanError.DUPLICATE_REFERENCE.value in _codes(exc):
            earlier = _earlier_receipt(txn.entity, txn.provider_transaction_id)
            if earlier is not None:
                return earlier, _BY_HAND
        messages = [m for ms in getattr(exc, "message_dict", {"": exc.messages}).values() for m in ms]
        return None, " ".join(messages) or "The loan book refused the receipt."
    return receipt, ""


def _codes(exc: ValidationError) -> set[str]:
    if hasattr(exc, "error_dict"):
        return {e.code for errs in exc.error_dict.values() for e in errs if e.code}
    return {e.code for e in exc.error_list if e.code}


def _confirmation_text(txn: ProviderTransaction, loan: Loan, *, template: str | None = None) -> str:
    """The client's confirmation: amount, loan and transaction number, then the entity's "Payment
    received" text (`template`, when the caller read it once for many), which ends with the lender's
    name as a signature does: "ZAR 500.00 received for loan 578 (M-PESA ref SB12). Dear Thabo thank
    you, your payment was received. Thuso Finance"."""
    from imali.messaging.models import MessageType
    from imali.messaging.services import merge_values, template_text
    from imali.messaging.templating import render

    entity = txn.entity
    values = merge_values(entity=entity, client=loan.client)
    if template is None:
        template = template_text(entity=entity, message_type=MessageType.PAYMENT_RECEIVED)
    try:
        greeting = render(template, values, missing="")
    except Exception:  # an entity template naming loan fields we do not fill here
        greeting = f"Dear {values.get('Client Name', '')} thank you, your payment was received."
    return (f"{entity.currency} {txn.amount:,.2f} received for loan {loan.pk} "
            f"({txn.setup.get_provider_display().split(' ')[0]} ref {txn.provider_transaction_id}). {greeting}").strip()


def _confirm_by_sms(txn: ProviderTransaction, loan: Loan) -> str:
    """Queue the client's confirmation SMS (the entity's "Payment received" text + amount, loan and
    transaction number). A refusal by messaging (no credits, a number it cannot send to) never
    undoes the payment: it is logged, and the state says so. Returns the new confirmation_sms."""
    from imali.messaging.models import MessageType
    from imali.messaging.services import message_enqueue

    client = loan.client
    if not client.cellphone:
        return ConfirmationSms.NONE
    entity = txn.entity
    text = _confirmation_text(txn, loan)
    try:
        with transaction.atomic():
            message_enqueue(entity=entity, number=client.cellphone, text=text, message_type=MessageType.PAYMENT_RECEIVED,
                            idempotency_key=f"mm-payment:{txn.setup_id}:{txn.provider_transaction_id}", client=client)
    except (ValidationError, PermissionError) as exc:
        log.warning("payment %s: confirmation SMS not queued: %s", txn.provider_transaction_id, exc)
        return ConfirmationSms.NOT_SENT
    return ConfirmationSms.QUEUED


def payment_confirmation_send(*, txn_id: int) -> str:
    """Queue the confirmation SMS of one posted payment whose mark is PENDING, once: the row is
    locked and the mark cleared in the same short transaction as the enqueue (whose idempotency
    key per setup and transaction id also makes a second attempt a no-op). Returns the new state,
    or "" when there was nothing to do."""
    with transaction.atomic():
        txn = (ProviderTransaction.objects.select_for_update(of=("self",))
               .select_related("entity", "setup", "loan__client", "loan__client__branch")
               .filter(pk=txn_id, confirmation_sms=ConfirmationSms.PENDING).first())
        if txn is None or txn.loan is None:
            return ""
        state = _confirm_by_sms(txn, txn.loan)
        ProviderTransaction.objects.filter(pk=txn.pk).update(confirmation_sms=state)
    return state


CONFIRMATION_SWEEP_AFTER = dt.timedelta(minutes=2)
CONFIRMATION_SWEEP_LIMIT = 500


def payment_confirmations_sweep(*, older_than: dt.timedelta = CONFIRMATION_SWEEP_AFTER,
                                limit: int = CONFIRMATION_SWEEP_LIMIT) -> int:
    """Send the confirmations still PENDING after `older_than` (their task was lost, or the queue
    was down when the receipt committed). Returns how many were queued or refused now."""
    cutoff = timezone.now() - older_than
    ids = list(ProviderTransaction.objects.filter(confirmation_sms=ConfirmationSms.PENDING, created_at__lt=cutoff)
               .order_by("created_at").values_list("pk", flat=True)[:limit])
    return sum(1 for pk in ids if payment_confirmation_send(txn_id=pk))


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
        # A person's action, one at a time: the SMS is queued in the same transaction (the outbox rule).
        sms = _confirm_by_sms(locked, Loan.objects.select_related("client__branch").get(pk=loan.pk))
        locked.status, locked.receipt, locked.loan = TransactionStatus.ALLOCATED, receipt, loan
        locked.allocated_by, locked.allocated_at, locked.confirmation_sms = actor, timezone.now(), sms
        locked.save(update_fields=["status", "receipt", "loan", "allocated_by", "allocated_at", "confirmation_sms"])
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
    """A confirmation callback: stored (RECEIVED) and answered; its receipt is posted within
    moments by the consumer (`received.payments_received_post`). Returns (the payment, stored now)."""
    if str(body.get("BusinessShortCode", "")) != setup.short_code:
        raise error("BusinessShortCode", MobileMoneyError.INVALID, "The short code is not this setup's.")
    return payment_in_receive(setup=setup, payment=mpesa_payment(setup, body), source=Source.CALLBACK)


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
        self.by_client_number: dict[int, list[int]] = {}
        clients_by_phone: dict[str, set[int]] = {}
        loans_by_phone: dict[str, list[int]] = {}
        for pk, client_id, number, cellphone in rows:
            self.loans.add(pk)
            self.by_client_number.setdefault(number, []).append(pk)
            if cellphone:
                clients_by_phone.setdefault(cellphone, set()).add(client_id)
                loans_by_phone.setdefault(cellphone, []).append(pk)
        self.by_phone = {phone: loans for phone, loans in loans_by_phone.items() if len(clients_by_phone[phone]) == 1}

    def candidates(self, reference: str, msisdn: str) -> tuple[list[int], str]:
        """The loans a payment may be for, first choice first (a client's loans oldest first: the
        first still on the book when the line is posted takes it), or ([], why none)."""
        read = reference_read(reference, msisdn)
        if read.kind == "loan":
            return ([read.value], "") if read.value in self.loans else ([], f"No loan {read.value} on the book.")
        if read.kind == "client":
            loans = self.by_client_number.get(read.value, [])
            return (loans, "") if loans else ([], f"No client {read.value} with a loan on the book.")
        if read.kind == "phone":
            loans = self.by_phone.get(read.value, [])
            return (loans, "") if loans else ([], NOT_ONE_CLIENTS_PHONE)
        return [], read.value

    def match(self, reference: str, msisdn: str) -> tuple[int | None, str]:
        loans, reason = self.candidates(reference, msisdn)
        return (loans[0], "") if loans else (None, reason)


def _statement_lines(statement) -> list:
    from .statement import read_statement

    return read_statement(bytes(statement.content), statement.file_name, columns=statement.columns,
                          time_zone=statement.entity.time_zone)


def statement_upload(*, setup: ProviderSetup, actor, file_name: str, content: bytes, columns: dict[str, str]) -> StatementPreview:
    """Read the file (refusing one that does not read, naming the line) and keep it for the confirm."""
    from .models import StatementImport
    from .statement import DEFAULT_COLUMNS, MAX_FILE_BYTES

    if not content:
        raise error("file", MobileMoneyError.BAD_FILE, "The file is empty.")
    if len(content) > MAX_FILE_BYTES:
        raise error("file", MobileMoneyError.BAD_FILE, f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB: split it.")
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
        audit_record(action=AuditAction.MOBILE_STATEMENT_UPLOADED, actor=actor, entity=setup.entity, target=statement,
                     subject=statement.file_name, after={"lines": statement.lines, "sha256": statement.file_sha256,
                                                         "setup_id": setup.pk, "columns": columns})
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

        # The empty reference excluded as the unique index is: so that (partial) index answers.
        recorded.update(Receipt.objects.filter(~Q(external_reference=""), entity=entity, external_reference__in=chunk)
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
    """Start the import of a previewed statement (or again, of one whose import failed): it runs on
    the Huey consumer (`statement_confirm_run`), never in the web request, and the statement's page
    shows its progress. A statement is imported once; the same file again adds nothing."""
    from .models import ImportState, StatementImport

    with transaction.atomic():
        locked = StatementImport.objects.select_for_update(of=("self",)).select_related("entity", "setup__entity").get(
            pk=statement.pk, entity_id=statement.entity_id)
        if locked.state not in (ImportState.PREVIEW, ImportState.FAILED):
            raise error("statement", MobileMoneyError.INVALID, "This statement has been imported already."
                        if locked.state == ImportState.DONE else "This statement is being imported already.")
        locked.state, locked.confirmed_at, locked.confirmed_by = ImportState.QUEUED, timezone.now(), actor
        locked.progress, locked.failure, locked.heartbeat_at = 0, "", timezone.now()
        locked.save(update_fields=["state", "confirmed_at", "confirmed_by", "progress", "failure", "heartbeat_at"])
        audit_record(action=AuditAction.MOBILE_STATEMENT_CONFIRMED, actor=actor, entity=locked.entity, target=locked,
                     subject=locked.file_name, after={"lines": locked.lines, "sha256": locked.file_sha256})
        statement_id = locked.pk
        transaction.on_commit(lambda: _confirm_later(statement_id))
    return locked


def _confirm_later(statement_id: int) -> None:
    from .tasks import statement_confirm_task

    try:
        statement_confirm_task(statement_id)
    except Exception:  # the queue is down: statement_confirms_resume starts it within minutes
        log.warning("statement import %s left to the resume pass (task queue unavailable)", statement_id, exc_info=True)


PROGRESS_EVERY_SECONDS = 1.0
STALE_AFTER = dt.timedelta(minutes=10)


def statement_confirm_run(*, statement_id: int) -> Any:
    """The import itself (on the consumer): claims the statement (QUEUED, or RUNNING with no sign of
    life for STALE_AFTER: its worker died), posts the lines set-based (mobilemoney.bulk, each line
    once), records the counts from what was written (so a resumed run counts exactly), drops the
    file, audits, then queues the clients' confirmation SMSs."""
    from . import bulk
    from .models import ImportState, StatementImport

    now = timezone.now()
    claimed = (StatementImport.objects.filter(pk=statement_id)
               .filter(Q(state=ImportState.QUEUED) | Q(state=ImportState.RUNNING, heartbeat_at__lt=now - STALE_AFTER))
               .update(state=ImportState.RUNNING, heartbeat_at=now))
    statement = StatementImport.objects.select_related("entity", "setup__entity", "confirmed_by").get(pk=statement_id)
    if not claimed:
        return statement
    last = [time.monotonic()]

    def progress(done: int) -> None:
        if time.monotonic() - last[0] >= PROGRESS_EVERY_SECONDS or done >= statement.lines:
            last[0] = time.monotonic()
            StatementImport.objects.filter(pk=statement_id).update(progress=done, heartbeat_at=timezone.now())

    actor = statement.confirmed_by or statement.imported_by
    try:
        with bulk.phase("read the file"):
            lines = _statement_lines(statement)
        with bulk.phase("read the book"):
            index = _BookIndex(statement.entity)
        bulk.post_lines(statement=statement, lines=lines, index=index, actor=actor, on_progress=progress)
    except Exception as exc:
        log.exception("statement import %s failed", statement_id)
        StatementImport.objects.filter(pk=statement_id).update(state=ImportState.FAILED, failure=str(exc)[:300],
                                                               finished_at=timezone.now())
        statement.refresh_from_db()
        return statement
    with bulk.phase("count and audit the import"):
        statement = _statement_done(statement, lines, actor)
    statement_confirmations_send(statement_id=statement_id)
    return statement


def _statement_done(statement, lines: list, actor):
    from .models import ImportState, StatementImport

    statement_id = statement.pk
    invalid = sum(1 for line in lines if line.problem)
    skipped = sum(1 for line in lines if not line.problem and line.skip)
    mine = ProviderTransaction.objects.filter(statement_id=statement_id)
    posted = mine.filter(status=TransactionStatus.POSTED).count()
    suspense = mine.exclude(status=TransactionStatus.POSTED).count()
    counts = {"posted": posted, "suspense": suspense, "already_recorded": len(lines) - invalid - skipped - posted - suspense,
              "invalid": invalid, "skipped": skipped}
    with transaction.atomic():
        StatementImport.objects.filter(pk=statement_id).update(
            state=ImportState.DONE, progress=len(lines), finished_at=timezone.now(), content=b"", **counts)
        statement.refresh_from_db()
        audit_record(action=AuditAction.MOBILE_STATEMENT_IMPORTED, actor=actor, entity=statement.entity, target=statement,
                     subject=statement.file_name, after={"lines": statement.lines, **counts, "sha256": statement.file_sha256})
    return statement


def statement_confirmations_send(*, statement_id: int) -> int:
    """The confirmation SMS of every payment the import posted, each queued once (one short
    transaction each: the credit ledger is locked only for one message at a time)."""
    ids = list(ProviderTransaction.objects.filter(statement_id=statement_id, confirmation_sms=ConfirmationSms.PENDING)
               .order_by("pk").values_list("pk", flat=True))
    return sum(1 for pk in ids if payment_confirmation_send(txn_id=pk))


def statement_confirms_resume() -> int:
    """Queue again the imports whose task was lost (QUEUED for minutes) or whose worker died
    (RUNNING with no progress for STALE_AFTER). Returns how many were queued."""
    from .models import ImportState, StatementImport

    now = timezone.now()
    ids = list(StatementImport.objects.filter(
        Q(state=ImportState.QUEUED, heartbeat_at__lt=now - CONFIRMATION_SWEEP_AFTER)
        | Q(state=ImportState.RUNNING, heartbeat_at__lt=now - STALE_AFTER)).values_list("pk", flat=True)[:10])
    from .tasks import statement_confirm_task

    # Each on its own task: a long import must not hold up the recovery pass that called this. A
    # second task for the same import finds it claimed and does nothing.
    for pk in ids:
        statement_confirm_task(pk)
    return len(ids)
