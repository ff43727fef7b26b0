"""Huey tasks of the automatic and MIS SMS: thin, they call services."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, lock_task

from .services import runs_due_execute


@db_periodic_task(crontab(minute="*/5"))
@lock_task("reminders-daily-runs")
def reminders_daily_runs() -> int:
    """Every five minutes: each entity's automatic SMS and MIS SMS of every local day whose
    configured time has passed and that has not run yet (missed days in order)."""
    return len(runs_due_execute())
