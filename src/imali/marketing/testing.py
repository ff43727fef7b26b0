"""Client-marketing objects for the entity-isolation test's book of another entity's data."""

from __future__ import annotations


def isolation_objects(*, entity, actor, client) -> dict:
    from .services import custom_message_save, dataset_start

    dataset = dataset_start(actor=actor, entity=entity, filters={}, background=False)
    message = custom_message_save(actor=actor, entity=entity, channel="sms", name="Isolation offer",
                                  text="Hello {^Client Name^} a new offer awaits you")
    return {"dataset": dataset, "custommessage": message}
