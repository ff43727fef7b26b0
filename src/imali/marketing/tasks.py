"""Huey tasks of client marketing: thin, they call services."""

from __future__ import annotations

from huey.contrib.djhuey import db_task

from .services import dataset_run


@db_task()
def dataset_run_task(dataset_id: int) -> None:
    """Collect a data set on the consumer; its page shows the progress meanwhile."""
    dataset_run(dataset_id=dataset_id)


@db_task()
def send_run_task(send_id: int) -> None:
    """A large send from a data set, run on the consumer."""
    from .sending import send_run

    send_run(send_id=send_id)
