"""Background work of mobile money: confirmation SMSs queued after their receipt committed, the
statement confirm, and the periodic fallbacks (lost callbacks recovered by asking the providers,
confirmations whose task was lost)."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task, lock_task


@db_task(retries=3, retry_delay=30)
def payment_confirmation_task(txn_id: int) -> None:
    from .services import payment_confirmation_send

    payment_confirmation_send(txn_id=txn_id)


@db_task()
def statement_confirm_task(statement_id: int) -> None:
    from .services import statement_confirm_run

    statement_confirm_run(statement_id=statement_id)


@db_periodic_task(crontab(minute="*"))
@lock_task("mobilemoney-recover")
def mobile_money_recover() -> None:
    from .collections import collections_poll
    from .disbursements import disbursements_recover
    from .services import payment_confirmations_sweep, statement_confirms_resume

    disbursements_recover()
    collections_poll()
    payment_confirmations_sweep()
    statement_confirms_resume()
