"""Huey tasks of messaging: thin, they call services."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, lock_task

from .services import bulk_reservations_settle_stale


@db_periodic_task(crontab(minute="*/5"))
@lock_task("messaging-reservations-settle-stale")
def messaging_reservations_settle_stale() -> int:
    """Every five minutes: bulk runs that died (no chunk written for ten minutes) have their
    credit reservations settled, so their unused credits come back."""
    return bulk_reservations_settle_stale()
