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


@db_periodic_task(crontab(hour="3", minute="30"))
@lock_task("messaging-replies-collect-daily")
def messaging_replies_collect_daily() -> int:
    """Once a day (03:30 UTC: 05:30 in Southern Africa, before the branches open): pull replies
    from the aggregators that list them and collect every entity's new replies, telling the users
    of each entity's reply-notification setup. Returns the replies collected."""
    from .replies import replies_collect_all

    return sum(r.collected for r in replies_collect_all())
