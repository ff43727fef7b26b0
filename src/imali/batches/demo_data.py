"""Demo data of message batches: each demo lender has its own saved template for every batch
type (shown and editable under Message templates), so a person can run any batch from the first
sign-in; the texts are the supplied defaults."""

from __future__ import annotations

from imali.messaging.defaults import DEFAULT_TEXTS
from imali.messaging.models import Channel, MessageTemplate
from imali.messaging.services import template_update
from imali.tenancy.models import Entity, User

from .types import MESSAGE_TYPE


def demo_batch_templates_ensure(*, entities) -> bool:
    """Save the default template of each batch type where the entity has none. Returns whether
    anything was saved (a second load changes nothing)."""
    changed = False
    for entity in entities:
        entity = entity if isinstance(entity, Entity) else Entity.objects.get(pk=entity)
        saved = set(MessageTemplate.objects.filter(entity=entity, channel=Channel.SMS).values_list("message_type", flat=True))
        admin = User.objects.filter(entity=entity, roles__name="Administrator").order_by("pk").first()
        if admin is None:
            continue
        for message_type in sorted(set(MESSAGE_TYPE.values()) - saved):
            template_update(actor=admin, entity=entity, message_type=message_type, text=DEFAULT_TEXTS[message_type])
            changed = True
    return changed
