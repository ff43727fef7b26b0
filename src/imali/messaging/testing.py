"""Messaging objects for the entity-isolation test's book of another entity's data."""

from __future__ import annotations

from imali.tenancy.models import User


def isolation_objects(*, entity, actor, client) -> dict:
    from .credits import credits_assign
    from .inbound import inbound_receive
    from .services import BulkRecipient, message_enqueue, messages_enqueue_bulk, template_update

    marker = client.surname
    operator = User.objects.filter(is_operator=True).first() or User.objects.create(username=f"op-{entity.code}", is_operator=True)
    credits_assign(actor=operator, entity=entity, channel="sms", amount=100, note=f"{marker} invoice")
    message = message_enqueue(entity=entity, number=client.cellphone, text=f"Hello {marker}", message_type="crm",
                              idempotency_key=f"isolation:{client.pk}", client=client, actor=actor)
    template_update(actor=actor, entity=entity, message_type="crm", text=f"Dear {{^Client Name^}} from {marker}")
    log = messages_enqueue_bulk(entity=entity, actor=actor, message_type="crm", text=f"Bulk {marker}",
                                recipients=[BulkRecipient(f"isolation-bulk:{client.pk}", client.cellphone, client_id=client.pk)],
                                criteria={"note": marker})
    inbound, _ = inbound_receive(gateway="isolation", provider_id=f"iso-{client.pk}", number=client.cellphone, text=f"Reply {marker}")
    return {"outbox_message": message, "process_log": log, "inbound_message": inbound}
