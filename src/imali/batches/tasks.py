"""Huey tasks of message batches: thin, they call services."""

from __future__ import annotations

from huey.contrib.djhuey import db_task

from .services import batch_run


@db_task()
def batch_run_task(batch_id: int) -> None:
    """A large batch, run on the consumer; the batch page shows its progress meanwhile."""
    batch_run(batch_id=batch_id)
