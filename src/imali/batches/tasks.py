"""Huey tasks of message batches: thin, they call services."""

from __future__ import annotations

from huey.contrib.djhuey import db_task

from .services import batch_preview_run, batch_run


@db_task()
def batch_run_task(batch_id: int) -> None:
    """A large batch, run on the consumer; the batch page shows its progress meanwhile."""
    batch_run(batch_id=batch_id)


@db_task()
def batch_preview_task(run_id: int) -> None:
    """A large batch's preview, made on the consumer; its page shows the progress meanwhile."""
    batch_preview_run(run_id=run_id)
