"""MTN MoMo collections: ask a client to pay a loan from their wallet (request-to-pay), then record
the payment once MoMo says SUCCESSFUL — by its callback, or by polling when the callback never
comes. The X-Reference-Id is ours and stored before the request leaves, so a retry cannot ask
twice; the payment itself goes through payment_in_record (once per financial transaction id)."""

from __future__ import annotations

import datetime as dt
import logging

from django.db import transaction
from django.utils import timezone

from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.core.money import parse_amount
from imali.loans.models import OPEN_STATUSES, Loan

from .adapters import ProviderError, ProviderUnavailable
from .adapters.base import PaymentState
from .errors import MobileMoneyError, error
from .models import CollectionRequest, Provider, ProviderSetup, Source
from .services import PaymentIn, callback_url, payment_in_record, provider_adapter

log = logging.getLogger("imali.mobilemoney")


def collection_request(*, setup: ProviderSetup, loan: Loan, amount, actor) -> CollectionRequest:
    if setup.provider != Provider.MOMO:
        raise error("provider", MobileMoneyError.INVALID, "Requests to pay go through MTN MoMo.")
    if loan.entity_id != setup.entity_id:
        raise error("loan", MobileMoneyError.OTHER_ENTITY)
    if loan.status not in OPEN_STATUSES:
        raise error("loan", MobileMoneyError.INVALID, f"Loan {loan.pk} is {loan.get_status_display()}, not on the book.")
    money = parse_amount(amount, field="amount")
    if not loan.client.cellphone:
        raise error("loan", MobileMoneyError.INVALID, "The client has no cellphone to ask.")
    with transaction.atomic():
        request = CollectionRequest.objects.create(entity=setup.entity, setup=setup, loan=loan, amount=money,
                                                   msisdn=loan.client.cellphone, requested_by=actor)
        audit_record(action=AuditAction.MOBILE_COLLECTION_REQUESTED, actor=actor, entity=setup.entity, target=request,
                     subject=str(loan.client.number), after={"loan_id": loan.pk, "amount": str(money),
                                                             "reference_id": str(request.reference_id)})
    _send(request)
    return request


def _send(request: CollectionRequest) -> None:
    setup = request.setup
    try:
        provider_adapter(setup).request_to_pay(
            reference_id=str(request.reference_id), msisdn=request.msisdn, amount=request.amount,
            external_id=f"L{request.loan_id}", message=f"Loan {request.loan_id} payment to {setup.entity.name}"[:160],
            callback_url=callback_url(setup, "collection", reference=str(request.reference_id)))
    except ProviderUnavailable as exc:
        # It may have arrived: the poll asks MoMo, and sends again (same reference) only if it did not.
        log.warning("request to pay %s: %s", request.reference_id, exc)
    except ProviderError as exc:
        CollectionRequest.objects.filter(pk=request.pk).update(status="FAILED", reason=str(exc)[:60],
                                                               finished_at=timezone.now())


def collection_refresh(*, setup: ProviderSetup, reference_id: str) -> CollectionRequest | None:
    """Read a request-to-pay's state back from MoMo and record it (a callback only prompts this)."""
    request = (CollectionRequest.objects.select_related("setup__entity", "loan").filter(setup=setup, reference_id=reference_id)
               .first() if _is_uuid(reference_id) else None)
    if request is None or request.status != "PENDING":
        return request
    try:
        result = provider_adapter(setup).request_status(reference_id=str(request.reference_id))
    except ProviderError as exc:
        log.warning("request to pay %s: status not read: %s", reference_id, exc)
        return request
    if result.state == PaymentState.NOT_FOUND:
        _send(request)
        return request
    if result.state == PaymentState.PENDING:
        return request
    with transaction.atomic():
        locked = CollectionRequest.objects.select_for_update().get(pk=request.pk)
        if locked.status != "PENDING":
            return locked
        if result.state == PaymentState.SUCCESSFUL:
            txn, _ = payment_in_record(setup=setup, payment=PaymentIn(
                provider_transaction_id=result.transaction_id or str(locked.reference_id), amount=locked.amount,
                transacted_at=result.completed_at or timezone.now(), msisdn=locked.msisdn,
                account_reference=f"L{locked.loan_id}"), source=Source.STATUS)
            locked.transaction = txn
        locked.status, locked.reason = result.state, result.reason[:60]
        locked.finished_at = timezone.now()
        locked.save(update_fields=["status", "reason", "transaction", "finished_at"])
    return locked


def collections_poll(*, older_than: dt.timedelta = dt.timedelta(seconds=30), limit: int = 200) -> int:
    """The fallback for lost callbacks: every request still pending after `older_than` is read back."""
    cutoff = timezone.now() - older_than
    pending = list(CollectionRequest.objects.filter(status="PENDING", created_at__lt=cutoff)
                   .select_related("setup__entity").order_by("created_at")[:limit])
    for request in pending:
        collection_refresh(setup=request.setup, reference_id=str(request.reference_id))
    return len(pending)


def _is_uuid(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True
