"""The answering worker: `manage.py smsbanking_answer` (started by `make demo` beside the SMS
dispatcher). The receiving process stores each burst of inbound SMS in one go and queues one
`AnswerJob` per message (`queue_answers`, an `INBOUND_BATCH_HANDLERS` entry), so taking messages
in never waits on answering them; this worker takes the queue in batches and answers each message
with the keyword engine, the batch's look-ups and writes made together (`engine.Lookups`,
`engine.finish_many`), and its replies queued as Replies, the first in the outbox after OTPs.

A batch is one transaction: the jobs are taken under row locks (PostgreSQL skips the rows another
worker holds, so several workers share the queue; SQLite runs one writer at a time anyway), each
message is answered in its own savepoint (a failing one is logged by id and answered "failed",
never holding up the others) and the jobs are deleted with the answers. A worker that dies
mid-batch leaves the jobs to be taken again; the replies' idempotency keys and the request log's
one row per message make a retaken message answer once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from django.db import connection, transaction
from django.utils import timezone

from imali.messaging.models import InboundMessage
from imali.signing import security as otp_security

from . import engine, services
from .models import AnswerJob

logger = logging.getLogger(__name__)


def queue_answers(messages: list[InboundMessage]) -> None:
    """Called by messaging with every message a receiving pass stored, in the transaction that
    stored them: one INSERT for them all. A message whose command can carry a PIN or a code (as
    the engine reads it) is masked in the stored message here and now, its original sealed in the
    job for the worker: the database never holds it in clear, not even while the worker is down."""
    now = timezone.now()
    aliases: dict[int | None, dict[str, str]] = {}
    jobs, masked_messages = [], []
    for message in messages:
        if message.entity_id not in aliases:
            aliases[message.entity_id] = services.aliases_of(entity_id=message.entity_id) if message.entity_id else {}
        masked = engine.mask_on_receipt(message.text, aliases[message.entity_id])
        sealed = ""
        if masked != message.text:
            sealed = otp_security.seal(code=message.text, nonce=f"answer{message.pk}", offset=0)
            masked_messages.append(InboundMessage(pk=message.pk, text=masked))
            message.text = masked
        jobs.append(AnswerJob(inbound_id=message.pk, created_at=now, sealed=sealed))
    if masked_messages:
        InboundMessage.objects.bulk_update(masked_messages, ["text"], batch_size=1000)
    AnswerJob.objects.bulk_create(jobs, ignore_conflicts=True)


def _unsealed(message: InboundMessage, sealed: str) -> None:
    """The message's original text back, for the engine to read (and mask again as it decides):
    written inside the message's savepoint, so a failed answer leaves the stored text masked."""
    original = otp_security.unseal_for_submit(otp_security.MASK_CHAR * len(message.text), sealed)
    InboundMessage.objects.filter(pk=message.pk).update(text=original)
    message.text = original


class Answerer:
    """Answers the queued inbound messages, `batch` at a time; keeps the lenders' settings, aliases
    and providers for `cache_seconds` (a change in Setup applies within that).

    A batch's transaction is committed once `hold_seconds` have gone by (the messages not reached
    stay queued for the next), so its replies reach the dispatcher soon; on SQLite, where every
    transaction holds the one write lock, the worker then leaves the lock free for `gap_seconds`
    (default 0.1 s: SQLite's busy handler looks every 100 ms at most) so the dispatcher's claims and
    records and the receiver's stores get their turn: back-to-back batches would starve them past
    the busy timeout."""

    # Messages read and rate-counted together within a batch.
    CHUNK = 10

    def __init__(self, *, batch: int = 50, cache_seconds: float = 5.0, hold_seconds: float = 0.3,
                 gap_seconds: float | None = None):
        self.batch = batch
        self.lookups = engine.Lookups(seconds=cache_seconds)
        self.answered = 0
        self.hold_seconds = hold_seconds
        self.gap_seconds = gap_seconds if gap_seconds is not None else (0.1 if connection.vendor == "sqlite" else 0.0)

    def step(self) -> int:
        """Answer one batch. Returns the number of messages taken (0: the queue is empty)."""
        skip_locked = connection.features.has_select_for_update_skip_locked
        if not AnswerJob.objects.exists():  # a plain read: no transaction (on SQLite, no write lock) when idle
            return 0
        with transaction.atomic():
            started = time.monotonic()
            rows = list(AnswerJob.objects.select_for_update(skip_locked=skip_locked).order_by("id")
                        .values_list("id", "inbound_id", "sealed")[: self.batch])
            if not rows:
                return 0
            jobs = [(job, inbound) for job, inbound, _ in rows]
            sealed = {inbound: blob for _, inbound, blob in rows if blob}
            messages = list(InboundMessage.objects.filter(pk__in=[i for _, i in jobs]).order_by("id"))
            lookups = self.lookups
            lookups.pending, lookups.refused = [], set()
            taken: set[int] = {i for _, i in jobs} - {m.pk for m in messages}  # jobs whose message is gone
            try:
                # In chunks, each read (and rate-counted) together: once `hold_seconds` have gone by
                # the rest is left queued, uncounted, for the next step.
                for at in range(0, len(messages), self.CHUNK):
                    if at and time.monotonic() - started > self.hold_seconds:
                        break
                    chunk = messages[at : at + self.CHUNK]
                    lookups.prefetch(chunk)
                    for message in chunk:
                        taken.add(message.pk)
                        mark = len(lookups.pending)
                        try:
                            with transaction.atomic():
                                if message.pk in sealed:
                                    _unsealed(message, sealed[message.pk])
                                engine.handle_inbound(message, lookups=lookups)
                        except Exception:
                            del lookups.pending[mark:]
                            logger.exception("SMS banking could not answer inbound message %s", message.pk)
                try:
                    with transaction.atomic():
                        engine.finish_many(lookups.pending)
                except Exception:
                    logger.exception("SMS banking could not finish inbound messages %s…%s", messages[0].pk,
                                     messages[-1].pk)
            finally:
                lookups.pending = None
            done = [j for j, i in jobs if i in taken]
            AnswerJob.objects.filter(pk__in=done).delete()
        self.answered += len(done)
        return len(done)

    def run_until_empty(self) -> int:
        """Answer everything queued (tests, the demo's one-off use). Returns the messages taken."""
        total = 0
        while taken := self.step():
            total += taken
        return total

    def run(self, *, stop: Callable[[], bool] = lambda: False, idle_sleep: float = 0.05,
            max_seconds: float | None = None) -> None:
        """Answer until stopped; an empty queue is looked at again every `idle_sleep` seconds (one
        indexed read), so a message waits at most that long before its batch starts."""
        started = time.monotonic()
        while not stop():
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                return
            if not self.step():
                time.sleep(idle_sleep)
            elif self.gap_seconds:
                time.sleep(self.gap_seconds)


def answer_pending() -> int:
    """Answer what is queued now, in this process (tests and one-off use)."""
    return Answerer(cache_seconds=0).run_until_empty()
