"""Huey tasks of OTP signing: thin, they call services."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, lock_task

from .services import challenges_expire


@db_periodic_task(crontab(minute="*/5"))
@lock_task("signing-challenges-expire")
def signing_challenges_expire() -> int:
    """Every five minutes: codes that ran out unused become expired in the audit."""
    return challenges_expire()
