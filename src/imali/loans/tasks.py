"""Huey tasks of the loan book: thin, they call services."""

from __future__ import annotations

from django.utils import timezone
from huey import crontab
from huey.contrib.djhuey import db_periodic_task, lock_task

from .daily_close import daily_close_run, entities_due_for_close


@db_periodic_task(crontab(minute="*/15"))
@lock_task("loans-daily-close")
def loans_daily_close():
    """Every quarter hour: close each entity's last ended local day if it has not been closed."""
    for entity, business_date in entities_due_for_close(timezone.now()):
        daily_close_run(entity=entity, business_date=business_date)
