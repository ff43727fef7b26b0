"""Mobile disbursement (DOMAIN §8): approved loans are marked "payment pending", consolidated into
one table ("send mobile payments") whose total is checked against the user's disbursement limit
(or approved by a user whose limit covers it), sent through M-PESA B2C or a MoMo transfer, and
tracked pending → successful / failed with the time and the provider's confirmation number. The
loan is paid out (loans.services.loan_disburse) only on success.

Never paying twice: each disbursement's originator id (OriginatorConversationID / X-Reference-Id)
is made once and committed, with the row in SENDING, *before* the request leaves. A process that
dies between the send and the record leaves that row; recovery asks the provider about that id
and sends again — with the same id — only when the provider says it never arrived. A time-out
(M-PESA's QueueTimeOutURL, or no answer) is handled the same way: status first, then resend."""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from imali.clients.models import AccountKind, AccountPurpose, ClientAccount
from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.core.money import from_cents, sum_cents
from imali.loans.models import Loan, LoanStatus
from imali.loans.services import loan_disburse, loan_payout_check

from .adapters import ProviderError, ProviderUnavailable
from .adapters.base import PaymentResult, PaymentState
from .adapters.mpesa import STATUS_NOT_FOUND_CODES
from .errors import MobileMoneyError, error
from .models import (
    IN_FLIGHT_STATUSES,
    Disbursement,
    DisbursementBatch,
    DisbursementStatus,
    Provider,
    ProviderSetup,
)
from .services import callback_url, provider_adapter

log = logging.getLogger("imali.mobilemoney")

ZERO = Decimal("0.00")


def active_setup(entity) -> ProviderSetup | None:
    """The setup disbursements go out through: M-PESA if set up and active, else MoMo."""
    setups = {s.provider: s for s in ProviderSetup.objects.filter(entity=entity, is_active=True).select_related("entity")}
    return setups.get(Provider.MPESA) or setups.get(Provider.MOMO)


def payout_wallet(loan: Loan) -> ClientAccount | None:
    return (ClientAccount.objects.filter(client_id=loan.client_id, kind=AccountKind.WALLET, is_active=True,
                                         purpose__in=(AccountPurpose.PAYOUT, AccountPurpose.BOTH))
            .exclude(wallet_number="").order_by("id").first())


def payout_refusal(loan: Loan, wallet: ClientAccount | None) -> str:
    """Why the loan book would not mark `loan` paid out to `wallet` today, or "": asked before the
    loan is marked and again just before its money is sent, since a payment made is final."""
    try:
        loan_payout_check(loan=loan, payout_account=wallet)
    except ValidationError as exc:
        return f"Loan {loan.pk} cannot be paid out: {' '.join(exc.messages)}"
    return ""


def disbursement_mark(*, loan: Loan, actor) -> Disbursement:
    """"Make mobile disbursement": the approved loan waits, payment pending, for the next send."""
    loan = Loan.objects.select_related("client", "entity").get(pk=loan.pk, entity_id=loan.entity_id)
    entity = loan.entity
    if loan.status != LoanStatus.APPROVED:
        raise error("loan", MobileMoneyError.WRONG_STATUS, f"Loan {loan.pk} is {loan.get_status_display()}: only an approved loan is paid out.")
    if active_setup(entity) is None:
        raise error("loan", MobileMoneyError.NO_SETUP, "Set up M-PESA or MTN MoMo first.")
    wallet = payout_wallet(loan)
    if wallet is None:
        raise error("payout_account", MobileMoneyError.NO_WALLET,
                    f"Loan {loan.pk}: client {loan.client} has no active mobile-money payout wallet. Add a wallet "
                    f"account for payouts on the client's page, then make the disbursement.")
    refusal = payout_refusal(loan, wallet)  # the loan book's payout rules, its signature among them
    if refusal:
        raise error("loan", MobileMoneyError.WRONG_STATUS, refusal)
    try:
        with transaction.atomic():
            disbursement = Disbursement.objects.create(entity=entity, loan=loan, payout_account=wallet, msisdn=wallet.wallet_number,
                                                       amount=loan.principal, created_by=actor)
            audit_record(action=AuditAction.MOBILE_DISBURSEMENT_MARKED, actor=actor, entity=entity, target=disbursement,
                         subject=str(loan.client.number), after={"loan_id": loan.pk, "amount": str(loan.principal),
                                                                 "msisdn": wallet.wallet_number})
    except IntegrityError:
        raise error("loan", MobileMoneyError.WRONG_STATUS, f"Loan {loan.pk} already has a mobile payment pending or made.") from None
    return disbursement


def disbursement_cancel(*, disbursement: Disbursement, actor) -> Disbursement:
    with transaction.atomic():
        locked = Disbursement.objects.select_for_update().get(pk=disbursement.pk)
        if locked.status not in (DisbursementStatus.PAYMENT_PENDING, DisbursementStatus.AWAITING_APPROVAL):
            raise error("disbursement", MobileMoneyError.WRONG_STATUS,
                        f"A payment that is {locked.get_status_display().lower()} cannot be cancelled.")
        before = locked.status
        locked.status = DisbursementStatus.CANCELLED
        locked.save(update_fields=["status"])
        audit_record(action=AuditAction.MOBILE_DISBURSEMENT_CANCELLED, actor=actor, entity=locked.entity, target=locked,
                     subject=str(locked.loan_id), before={"status": before}, after={"status": locked.status})
    return locked


def payments_send(*, entity, actor, disbursement_ids: list[int] | None = None) -> DisbursementBatch:
    """"Send mobile payments": consolidate what is pending into one batch; within the user's limit it
    goes out now, above it the batch waits for a user whose limit covers the total."""
    setup = active_setup(entity)
    if setup is None:
        raise error("provider", MobileMoneyError.NO_SETUP, "Set up M-PESA or MTN MoMo first.")
    with transaction.atomic():
        pending = Disbursement.objects.select_for_update().filter(entity=entity, status=DisbursementStatus.PAYMENT_PENDING)
        if disbursement_ids is not None:
            pending = pending.filter(pk__in=disbursement_ids)
        rows = list(pending.order_by("id"))
        if not rows:
            raise error("disbursements", MobileMoneyError.NOTHING_TO_SEND)
        total = sum((d.amount for d in rows), ZERO)
        limit = actor.disbursement_limit or ZERO
        within = total <= limit
        batch = DisbursementBatch.objects.create(entity=entity, setup=setup, total=total, count=len(rows), created_by=actor,
                                                 approved_by=actor if within else None,
                                                 approved_at=timezone.now() if within else None)
        # sent_at is the claim time: a row left SENDING by a process that died (or a send that raised)
        # before its turn in the batch is then found by the recovery pass, which asks first.
        Disbursement.objects.filter(pk__in=[d.pk for d in rows]).update(
            batch=batch, status=DisbursementStatus.SENDING if within else DisbursementStatus.AWAITING_APPROVAL,
            sent_at=timezone.now() if within else None)
        audit_record(action=AuditAction.MOBILE_DISBURSEMENT_BATCH, actor=actor, entity=entity, target=batch,
                     subject=f"{len(rows)} payments",
                     after={"total": str(total), "count": len(rows), "limit": str(limit),
                            "status": "sending" if within else "awaiting approval"})
    if within:
        _send_batch(batch)
    return batch


def batch_approve(*, batch: DisbursementBatch, actor) -> DisbursementBatch:
    """A user whose disbursement limit covers the total approves a batch that was over its maker's."""
    if batch.entity_id != getattr(actor, "entity_id", None):
        raise error("batch", MobileMoneyError.OTHER_ENTITY)
    if actor.pk == batch.created_by_id:
        raise error("batch", MobileMoneyError.SELF_APPROVAL)
    if batch.total > (actor.disbursement_limit or ZERO):
        raise error("batch", MobileMoneyError.OVER_LIMIT,
                    f"The total {batch.total:,.2f} is above your disbursement limit of {actor.disbursement_limit or ZERO:,.2f}.")
    with transaction.atomic():
        locked = DisbursementBatch.objects.select_for_update().get(pk=batch.pk)
        if locked.approved_by_id is not None:
            raise error("batch", MobileMoneyError.WRONG_STATUS, "The batch is approved already.")
        locked.approved_by, locked.approved_at = actor, timezone.now()
        locked.save(update_fields=["approved_by", "approved_at"])
        Disbursement.objects.filter(batch=locked, status=DisbursementStatus.AWAITING_APPROVAL).update(
            status=DisbursementStatus.SENDING, sent_at=timezone.now())
        audit_record(action=AuditAction.MOBILE_DISBURSEMENT_APPROVED, actor=actor, entity=locked.entity, target=locked,
                     subject=f"{locked.count} payments", after={"total": str(locked.total)})
    _send_batch(locked)
    return locked


def _send_batch(batch: DisbursementBatch) -> None:
    DisbursementBatch.objects.filter(pk=batch.pk).update(sent_at=timezone.now())
    # One adapter (and one check of the provider's address) for the batch, not one per row; a
    # refusal is not kept, so each row meets it and fails with the reason as before.
    adapters: dict[int, object] = {}

    def adapter_of(setup: ProviderSetup):
        if setup.pk not in adapters:
            adapters[setup.pk] = provider_adapter(setup)
        return adapters[setup.pk]

    for disbursement in Disbursement.objects.filter(batch=batch, status=DisbursementStatus.SENDING).order_by("id"):
        _send(disbursement, adapter_of=adapter_of)


def _claim(disbursement: Disbursement, *, allowed: tuple[str, ...]) -> Disbursement | None:
    """Commit SENDING (and the attempt) before anything leaves: what a crash leaves behind."""
    with transaction.atomic():
        # What the send reads next (the payout check, the provider call), in this one query.
        locked = (Disbursement.objects.select_for_update(of=("self",))
                  .select_related("batch__setup__entity", "loan__entity", "loan__client", "payout_account")
                  .get(pk=disbursement.pk))
        if locked.status not in allowed:
            return None
        locked.status = DisbursementStatus.SENDING
        locked.attempts += 1
        locked.sent_at = timezone.now()
        locked.save(update_fields=["status", "attempts", "sent_at"])
    return locked


def _send(disbursement: Disbursement, *, allowed: tuple[str, ...] = (DisbursementStatus.SENDING,),
          adapter_of=provider_adapter) -> Disbursement:
    claimed = _claim(disbursement, allowed=allowed)
    if claimed is None:
        return disbursement
    setup = claimed.batch.setup
    if refusal := payout_refusal(claimed.loan, claimed.payout_account):
        # Nothing has left for this row (a resend comes only after the provider said it has none):
        # the loan book would refuse to mark the loan paid out (a cap that applies since it was
        # marked, a client no longer allowed to borrow, a payout wallet closed), so no money goes.
        return _set(claimed, DisbursementStatus.FAILED, reason=f"Not sent. {refusal}"[:200],
                    only_from=(DisbursementStatus.SENDING,))
    extra = {"originator": str(claimed.originator_id)}
    try:
        answer = adapter_of(setup).send_payment(
            originator_id=str(claimed.originator_id), msisdn=claimed.msisdn, amount=claimed.amount,
            remarks=f"Loan {claimed.loan_id} payout", result_url=result_url(setup, claimed),
            timeout_url=callback_url(setup, "timeout", **extra))
    except ProviderUnavailable as exc:
        # It may have arrived: UNKNOWN means "ask before sending again".
        return _set(claimed, DisbursementStatus.UNKNOWN, reason=str(exc), only_from=(DisbursementStatus.SENDING,))
    except ProviderError as exc:
        return _set(claimed, DisbursementStatus.FAILED, reason=str(exc), only_from=(DisbursementStatus.SENDING,))
    return _set(claimed, DisbursementStatus.SENT, conversation_id=answer.conversation_id, only_from=(DisbursementStatus.SENDING,))


def result_url(setup: ProviderSetup, disbursement: Disbursement) -> str:
    """Where the provider reports the payment's result: M-PESA's body names our originator id; a
    MoMo callback is only a prompt to read the transfer back, so its URL says which one."""
    if setup.provider == Provider.MPESA:
        return callback_url(setup, "result")
    return callback_url(setup, "disbursement", originator=str(disbursement.originator_id))


def _set(disbursement: Disbursement, status: str, *, reason: str = "", conversation_id: str = "",
         only_from: tuple[str, ...]) -> Disbursement:
    with transaction.atomic():
        locked = Disbursement.objects.select_for_update().get(pk=disbursement.pk)
        if locked.status not in only_from:
            return locked  # a result callback overtook the answer: it wins
        before = locked.status
        locked.status = status
        if reason:
            locked.failure_reason = reason[:200]
        if conversation_id:
            locked.conversation_id = conversation_id[:64]
        if status == DisbursementStatus.FAILED:
            locked.completed_at = timezone.now()
        locked.save(update_fields=["status", "failure_reason", "conversation_id", "completed_at"])
        audit_record(action=AuditAction.MOBILE_DISBURSEMENT_SENT if status in IN_FLIGHT_STATUSES else AuditAction.MOBILE_DISBURSEMENT_RESULT,
                     entity=locked.entity, target=locked, subject=str(locked.originator_id),
                     before={"status": before}, after={"status": status, "reason": locked.failure_reason,
                                                       "attempt": locked.attempts})
    return locked


def _succeeded(disbursement: Disbursement, *, confirmation: str, completed_at: dt.datetime, amount: Decimal | None) -> Disbursement:
    """Money has left: record it whatever else happens, then pay the loan out."""
    with transaction.atomic():
        locked = Disbursement.objects.select_for_update(of=("self",)).select_related("batch", "loan__entity", "payout_account").get(pk=disbursement.pk)
        if locked.status in (DisbursementStatus.SUCCESSFUL, DisbursementStatus.CANCELLED):
            return locked
        if amount is not None and amount != locked.amount:
            log.error("disbursement %s: provider paid %s, we sent %s", locked.pk, amount, locked.amount)
        before = locked.status
        note = ""
        if before == DisbursementStatus.FAILED:
            # The provider paid after we recorded a failure: the money has left, so the success is
            # recorded and the loan paid out rather than dropped; a person should know it happened.
            log.warning("disbursement %s (loan %s): money left after a failure was recorded (%s)",
                        locked.pk, locked.loan_id, locked.failure_reason)
            note = "Paid after a failure was recorded"
            if _other_payment_for_loan(locked, lock=True):
                # The loan was marked again and that payment is on its way or made: the loan must not
                # be paid out twice. Keep the confirmation on this row for a person to reclaim.
                locked.confirmation_number = confirmation[:64]
                locked.completed_at = completed_at
                locked.failure_reason = (note + ", but the loan has another mobile payment: reclaim one of them.")[:200]
                locked.save(update_fields=["confirmation_number", "completed_at", "failure_reason"])
                log.error("disbursement %s: loan %s has another payment in flight or made; both may be paid",
                          locked.pk, locked.loan_id)
                audit_record(action=AuditAction.MOBILE_DISBURSEMENT_RESULT, entity=locked.entity, target=locked,
                             subject=str(locked.originator_id), before={"status": before},
                             after={"status": locked.status, "confirmation_number": locked.confirmation_number,
                                    "completed_at": completed_at.isoformat(), "note": locked.failure_reason})
                return locked
            locked.failure_reason = ""
        locked.status = DisbursementStatus.SUCCESSFUL
        locked.confirmation_number = confirmation[:64]
        locked.completed_at = completed_at
        actor = locked.batch.approved_by
        local_day = completed_at.astimezone(zoneinfo.ZoneInfo(locked.entity.time_zone)).date()
        try:
            with transaction.atomic():
                loan_disburse(loan=locked.loan, actor=actor, payout_account=locked.payout_account, disbursed_on=local_day)
        except ValidationError as exc:
            # Paid but the loan book refused: shown on the disbursement screen for a person to resolve.
            locked.failure_reason = ("Paid, but the loan could not be marked paid out: " + " ".join(exc.messages))[:200]
        else:
            if note:
                locked.failure_reason = note[:200]
        locked.save(update_fields=["status", "confirmation_number", "completed_at", "failure_reason"])
        audit_record(action=AuditAction.MOBILE_DISBURSEMENT_RESULT, entity=locked.entity, target=locked,
                     subject=str(locked.originator_id), before={"status": before},
                     after={"status": locked.status, "confirmation_number": locked.confirmation_number,
                            "completed_at": completed_at.isoformat(), "note": locked.failure_reason})
    return locked


# TransactionStatus values of a status result that mean the payment will never be made. Only these
# fail a payment: any other value (Pending, Queued, ...) leaves it in flight.
MPESA_FAILED_STATUSES = frozenset({"failed", "cancelled", "canceled", "declined", "reversed", "expired", "rejected"})


def _other_payment_for_loan(disbursement: Disbursement, *, lock: bool) -> bool:
    """After a recorded failure the loan may have been marked again. A newer payment not yet sent is
    cancelled (this one paid the loan); one in flight or made means the loan is covered already."""
    others = Disbursement.objects.filter(loan_id=disbursement.loan_id).exclude(pk=disbursement.pk)
    if others.filter(status__in=IN_FLIGHT_STATUSES + (DisbursementStatus.SUCCESSFUL,)).exists():
        return True
    waiting = (DisbursementStatus.PAYMENT_PENDING, DisbursementStatus.AWAITING_APPROVAL)
    for other in (others.select_for_update() if lock else others).filter(status__in=waiting):
        before = other.status
        other.status = DisbursementStatus.CANCELLED
        other.failure_reason = "Cancelled: an earlier payment of this loan was made after all"
        other.save(update_fields=["status", "failure_reason"])
        audit_record(action=AuditAction.MOBILE_DISBURSEMENT_CANCELLED, entity=other.entity, target=other,
                     subject=str(other.loan_id), before={"status": before},
                     after={"status": other.status, "reason": other.failure_reason})
    return False


def _failed(disbursement: Disbursement, reason: str) -> Disbursement:
    return _set(disbursement, DisbursementStatus.FAILED, reason=reason or "Refused by the provider",
                only_from=IN_FLIGHT_STATUSES)


# --- provider answers -----------------------------------------------------------------------------
def _parameters(result: dict) -> dict:
    items = ((result.get("ResultParameters") or {}).get("ResultParameter")) or []
    if isinstance(items, dict):
        items = [items]
    return {str(i.get("Key")): i.get("Value") for i in items if isinstance(i, dict)}


def _mpesa_time(value, fmt: str, entity) -> dt.datetime:
    try:
        return dt.datetime.strptime(str(value), fmt).replace(tzinfo=zoneinfo.ZoneInfo(entity.time_zone))
    except ValueError:
        return timezone.now()


def mpesa_result_apply(*, setup: ProviderSetup, result: dict, originator: str = "",
                       is_status_result: bool = False) -> Disbursement | None:
    """A B2C result, or a transaction-status result (our ResultURL of the query says so and names
    the payment: the result's own ids are the query's)."""
    originator = originator if is_status_result else str(result.get("OriginatorConversationID") or "")
    disbursement = _by_originator(setup, originator)
    if disbursement is None:
        return None
    code = str(result.get("ResultCode", ""))
    params = _parameters(result)
    if is_status_result:
        if code in STATUS_NOT_FOUND_CODES:
            # The payment never reached M-PESA: now, and only now, send it again (same id).
            return _send(disbursement, allowed=(DisbursementStatus.UNKNOWN, DisbursementStatus.SENDING, DisbursementStatus.SENT))
        if code != "0":
            return disbursement  # the query itself failed: the next recovery pass asks again
        transaction_status = str(params.get("TransactionStatus", "")).strip().lower()
        if transaction_status == "completed":
            return _succeeded(disbursement, confirmation=str(params.get("ReceiptNo") or result.get("TransactionID") or ""),
                              completed_at=_mpesa_time(params.get("FinalisedTime"), "%Y%m%d%H%M%S", setup.entity),
                              amount=_decimal(params.get("Amount")))
        if transaction_status in MPESA_FAILED_STATUSES:
            return _failed(disbursement, str(params.get("ReasonType") or "Failed at M-PESA"))
        # "Pending", "Queued", anything unknown: M-PESA has not decided yet. Calling it failed would
        # let the loan be paid again while this payment may still go out; it stays in flight and the
        # next recovery pass asks again.
        return _set(disbursement, DisbursementStatus.SENT, only_from=(DisbursementStatus.UNKNOWN, DisbursementStatus.SENDING))
    if code == "0":
        return _succeeded(disbursement, confirmation=str(params.get("TransactionReceipt") or result.get("TransactionID") or ""),
                          completed_at=_mpesa_time(params.get("TransactionCompletedDateTime"), "%d.%m.%Y %H:%M:%S", setup.entity),
                          amount=_decimal(params.get("TransactionAmount")))
    return _failed(disbursement, f"{code}: {result.get('ResultDesc', '')}")


def _decimal(value) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(Decimal("0.01")) if value not in (None, "") else None
    except ArithmeticError:
        return None


def mpesa_timeout_apply(*, setup: ProviderSetup, originator: str) -> Disbursement | None:
    disbursement = _by_originator(setup, originator)
    if disbursement is None:
        return None
    disbursement = _set(disbursement, DisbursementStatus.UNKNOWN, reason="M-PESA queue time-out: checking the status",
                        only_from=(DisbursementStatus.SENDING, DisbursementStatus.SENT))
    return disbursement_check(disbursement=disbursement)


def _by_originator(setup: ProviderSetup, originator: str) -> Disbursement | None:
    import uuid

    try:
        key = uuid.UUID(originator)
    except ValueError:
        return None
    return Disbursement.objects.filter(entity=setup.entity, batch__setup=setup, originator_id=key).first()


def disbursement_refresh_by_originator(*, setup: ProviderSetup, originator: str) -> Disbursement | None:
    disbursement = _by_originator(setup, originator)
    return disbursement_check(disbursement=disbursement) if disbursement is not None else None


def disbursement_check(*, disbursement: Disbursement) -> Disbursement:
    """Ask the provider where an in-flight payment stands, before anything is sent again."""
    disbursement = Disbursement.objects.select_related("batch__setup__entity").get(pk=disbursement.pk)
    if disbursement.status not in IN_FLIGHT_STATUSES:
        return disbursement
    setup = disbursement.batch.setup
    extra = {"originator": str(disbursement.originator_id)}
    try:
        # `status=1`: this result URL answers a status query, not the payment itself.
        result: PaymentResult = provider_adapter(setup).payment_status(
            originator_id=str(disbursement.originator_id), result_url=callback_url(setup, "result", status="1", **extra),
            timeout_url=callback_url(setup, "timeout", **extra))
    except ProviderError as exc:
        log.warning("disbursement %s: status not read: %s", disbursement.pk, exc)
        return disbursement
    if setup.provider == Provider.MPESA:
        return disbursement  # the answer arrives at the result URL (mpesa_result_apply)
    if result.state == PaymentState.NOT_FOUND:
        return _send(disbursement, allowed=IN_FLIGHT_STATUSES)
    if result.state == PaymentState.SUCCESSFUL:
        return _succeeded(disbursement, confirmation=result.transaction_id, completed_at=result.completed_at or timezone.now(),
                          amount=result.amount)
    if result.state == PaymentState.FAILED:
        return _failed(disbursement, result.reason)
    return _set(disbursement, DisbursementStatus.SENT, only_from=(DisbursementStatus.UNKNOWN, DisbursementStatus.SENDING))


def disbursements_recover(*, sending_older_than: dt.timedelta = dt.timedelta(seconds=60),
                          sent_older_than: dt.timedelta = dt.timedelta(minutes=5), limit: int = 200) -> int:
    """The periodic pass: payments left SENDING by a crash, UNKNOWN after a time-out, or SENT with no
    result for too long are checked with the provider (never blindly resent)."""
    now = timezone.now()
    stale = (Disbursement.objects.filter(
        Q(status=DisbursementStatus.UNKNOWN)
        | Q(status=DisbursementStatus.SENDING, sent_at__lt=now - sending_older_than)
        | Q(status=DisbursementStatus.SENT, sent_at__lt=now - sent_older_than))
        .exclude(batch__approved_by=None).order_by("sent_at")[:limit])
    rows = list(stale)
    for disbursement in rows:
        disbursement_check(disbursement=disbursement)
    return len(rows)


def batch_totals(*, entity) -> dict:
    from django.db.models import Count

    rows = (Disbursement.objects.filter(entity=entity).values("status")
            .annotate(n=Count("id"), cents=sum_cents("amount")))
    return {r["status"]: (r["n"], from_cents(r["cents"])) for r in rows}
