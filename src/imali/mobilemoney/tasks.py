"""Background work of mobile money: the confirmation callbacks' payments posted (set-based, with
their SMSs), confirmation SMSs queued after their receipt committed, the statement confirm, and the periodic fallbacks (lost callbacks recovered by asking the providers,
confirmations whose task was lost)."""

from __future__ import annotations

from huey import crontab
from huey.contrib.djhuey import db_periodic_task, db_task, lock_task


@db_task(retries=3, retry_delay=30)
def payment_confirmation_task(txn_id: int) -> None:
    from .services import payment_confirmation_send

    payment_confirmation_send(txn_id=txn_id)


@db_task(retries=3, retry_delay=10)
def payments_received_post_task() -> None:
    """Post every stored confirmation (received.payments_received_post). The flag that keeps the
    web workers from enqueuing one task per callback is cleared first: a payment stored after this
    task read the rows then finds it clear and enqueues the next task."""
    from .received import payments_received_post, post_flag_clear

    post_flag_clear()
    payments_received_post()


@db_task()
def statement_confirm_task(statement_id: int) -> None:
    from .services import statement_confirm_run

    statement_confirm_run(statement_id=statement_id)


@db_periodic_task(crontab(minute="*"))
@lock_task("mobilemoney-recover")
def mobile_money_recover() -> None:
    from .collections import collections_poll
    from .disbursements import disbursements_recover
    from .received import payments_received_post, post_flag_clear
    from .services import payment_confirmations_sweep, statement_confirms_resume

    # Confirmations whose posting task was lost (the queue was down, the consumer died): the flag
    # is cleared too, or the web workers would go on thinking a task is on its way.
    post_flag_clear()
    payments_received_post()
    disbursements_recover()
    collections_poll()
    payment_confirmations_sweep()
    statement_confirms_resume()
