"""Periodic fallbacks: lost callbacks are recovered by asking the providers."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, lock_task


@db_periodic_task(crontab(minute="*"))
@lock_task("mobilemoney-recover")
def mobile_money_recover() -> None:
    from .collections import collections_poll
    from .disbursements import disbursements_recover

    disbursements_recover()
    collections_poll()
