"""Housekeeping done in the background. Tasks are thin: they call a service and return."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task

from .services import expired_sessions_purge


@db_periodic_task(crontab(minute="17", hour="3"))
def purge_expired_sessions() -> int:
    return expired_sessions_purge()


@db_task()
def purge_expired_sessions_now() -> int:
    return expired_sessions_purge()
