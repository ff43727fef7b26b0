"""The client's SMS when the stream declines a collection or returns one unpaid, where the entity
switched it on (Setup → Payment stream: "SMS the client on a declined or returned debit"). The text
is the entity's template of the message type "Debit order declined or returned unpaid" (Setup → SMS
templates; the type can also be switched off there), followed by what happened: the amount, the
loan, the date and the bank's reason.

Called once per imported result, inside the transaction that records it (the outbox rule), with the
result's stream reference in the idempotency key: a result seen twice queues one SMS. A refusal by
messaging (no credits, no cellphone, the type switched off) never undoes the import: it is logged
and the import goes on."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from imali.core.formatting import format_money

from .models import CollectionKind, CollectionResult, PromissoryNote, StreamSettings

log = logging.getLogger("imali.paystream")
NOTICE_KINDS = (CollectionKind.FAILED, CollectionKind.UNPAID)


def notice_key(*, entity_id: int, reference: str) -> str:
    return f"paystream-collection:{entity_id}:{reference}"


def decline_sms_enabled(*, entity) -> bool:
    return bool(StreamSettings.objects.filter(entity=entity).values_list("decline_sms", flat=True).first())


def collection_notice(*, entity, result: CollectionResult, note: PromissoryNote, enabled: bool | None = None):
    """Queue the client's SMS for a declined or returned collection (None when there is none to
    send). `enabled`: the entity's switch when the caller read it already (once per import)."""
    from imali.messaging.models import MessageType
    from imali.messaging.services import merge_values, message_enqueue, template_text
    from imali.messaging.templating import render

    if result.kind not in NOTICE_KINDS or (result.problem and result.kind == CollectionKind.UNPAID):
        # An unpaid that reversed nothing (no posted collection) tells the client nothing true.
        return None
    if not (decline_sms_enabled(entity=entity) if enabled is None else enabled):
        return None
    client = note.client
    if not client.cellphone:
        return None
    values = merge_values(entity=entity, client=client)
    try:
        opening = render(template_text(entity=entity, message_type=MessageType.COLLECTION_FAILED), values, missing="")
    except Exception:  # noqa: BLE001 - an entity template naming loan fields we do not fill here
        opening = f"Dear {values.get('Client Name', '')} your debit order to {entity.name} was not paid."
    what = "was returned unpaid" if result.kind == CollectionKind.UNPAID else "was declined"
    reason = f": {result.reason}" if result.reason else ""
    text = (f"{opening} {format_money(result.amount, entity.currency)} for loan {note.loan_id} on "
            f"{result.result_date.isoformat()} {what}{reason}.")
    try:
        with transaction.atomic():
            return message_enqueue(entity=entity, number=client.cellphone, text=text,
                                   message_type=MessageType.COLLECTION_FAILED,
                                   idempotency_key=notice_key(entity_id=entity.pk, reference=result.reference), client=client)
    except (ValidationError, PermissionDenied, PermissionError) as exc:
        log.warning("collection result %s: client SMS not queued: %s", result.reference,
                    "; ".join(getattr(exc, "messages", [str(exc)])))
        return None
