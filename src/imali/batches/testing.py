"""Message-batch objects for the entity-isolation test's book of another entity's data."""

from __future__ import annotations


def isolation_objects(*, entity, actor, client) -> dict:
    from .services import batch_send

    sent = batch_send(actor=actor, entity=entity, batch_type="crm", criteria={}, idempotency_key=f"isolation:{entity.pk}",
                      background=False)
    from .models import BatchPreviewRun

    preview = BatchPreviewRun.objects.create(entity=entity, created_by=actor, batch_type="crm", criteria={},
                                             selected=0)
    return {"message_batch": sent.batch, "batch_preview_run": preview}
