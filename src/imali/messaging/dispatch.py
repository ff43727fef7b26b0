"""The dispatcher: claims queued messages in priority order, routes each to a gateway, submits
them with the transport's window and rate limit, and records the outcome; applies delivery
receipts and hands mobile-originated messages to the inbound service.

Claims are leases (`claimed_until`), taken with `FOR UPDATE SKIP LOCKED` on PostgreSQL so any
number of consumers on any number of machines share the queue without waiting on each other. A
consumer that dies leaves its leased rows to be claimed again when the lease lapses: the only
duplicates are the messages it had submitted but not yet recorded, at most one batch (the window).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from imali.signing.security import SEAL_PREFIX, SealError, unseal_for_submit
from imali.tenancy.models import Entity

from . import credits
from .adapters.base import (
    MobileOriginated,
    MobileOriginatedPart,
    Outcome,
    Receipt,
    Submission,
    SubmitResult,
    Transport,
)
from .gateways import HealthReporter
from .inbound import inbound_part_receive, inbound_parts_expire, inbound_receive_many
from .models import (
    DeliveryReport,
    Gateway,
    MarketingOptOut,
    OutboxMessage,
    OutboxStatus,
    Priority,
    Route,
)

log = logging.getLogger("imali.messaging.dispatch")

OUTBOX = OutboxMessage._meta.db_table


@dataclass(frozen=True)
class DispatchPolicy:
    batch: int = 100
    lease_seconds: float = 60.0
    backoff_base: float = 2.0
    backoff_max: float = 300.0
    # A throttled message goes back to the queue for about this long (jittered ±50 %), whatever
    # its attempts: being told "slower" says nothing about the message.
    throttle_retry_seconds: float = 1.0
    # Receipts are applied as they arrive and as submissions are recorded; this sweep (every so
    # often, not every batch) catches the one that raced its submission's record in another consumer.
    sweep_seconds: float = 60.0
    # How often to look whether the queue's statistics are stale (PostgreSQL; see statistics_refresh).
    statistics_seconds: float = 10.0
    # Parts of a long inbound message still incomplete after this are stored as they are, flagged.
    mo_part_timeout: dt.timedelta = dt.timedelta(minutes=10)
    # After this age a message is no longer worth sending: an OTP is stale in minutes.
    max_age: Mapping[int, dt.timedelta] = None  # type: ignore[assignment]

    def age_limit(self, priority: int) -> dt.timedelta:
        limits = self.max_age or {Priority.OTP: dt.timedelta(minutes=10), Priority.TRANSACTIONAL: dt.timedelta(hours=24),
                                  Priority.BULK: dt.timedelta(hours=24)}
        return limits.get(priority, dt.timedelta(hours=24))

    def backoff(self, attempts: int) -> float:
        return min(self.backoff_base * (2 ** max(attempts - 1, 0)), self.backoff_max)

    def retry_delay(self, attempts: int, rng: random.Random) -> float:
        """Exponential back-off with "equal jitter": between half and all of `backoff`, so the
        messages of one failed batch do not all fall due in the same instant again."""
        full = self.backoff(attempts)
        return full / 2 + rng.random() * full / 2

    def throttle_delay(self, rng: random.Random) -> float:
        return self.throttle_retry_seconds * (0.5 + rng.random())


@dataclass
class Claimed:
    id: int
    entity_id: int
    number: str
    country: str
    text: str
    priority: int
    credits: int
    attempts: int
    created_at: dt.datetime
    key: str = ""
    due: dt.datetime | None = None  # next_attempt_at: with priority and id, its place in the claim order
    message_type: str = ""


def _outside_marketing_hours(later_by_id: Mapping[int, dt.datetime]) -> dict[int, dt.datetime]:
    """Of the messages to be tried again at `later_by_id`, the direct-marketing ones whose time
    falls outside the CPA Regulation 4 hours, with the next allowed minute instead."""
    from .policy import DIRECT_MARKETING_TYPES, next_allowed_send

    if not later_by_id:
        return {}
    rows = list(OutboxMessage.objects.filter(pk__in=list(later_by_id), message_type__in=DIRECT_MARKETING_TYPES)
                .values_list("id", "message_type", "entity_id"))
    if not rows:
        return {}
    entities = Entity.objects.in_bulk({entity_id for _, _, entity_id in rows})
    held = {}
    for pk, message_type, entity_id in rows:
        allowed = next_allowed_send(entity=entities[entity_id], message_type=message_type, at=later_by_id[pk])
        if allowed != later_by_id[pk]:
            held[pk] = allowed
    return held


def claim_batch(*, limit: int, lease_seconds: float, now: dt.datetime | None = None,
                after: tuple[int, dt.datetime, int] | None = None,
                entities: dict[int, Entity] | None = None,
                before: tuple[str, list] | None = None) -> list[Claimed]:
    """Lease up to `limit` queued messages that are due, in claim order (priority, due time, id);
    `after`: only those past that place in the order (see `Dispatcher._claim`).

    Direct marketing is checked again here, when it is about to be sent, not only when it was
    queued: a batch queued at 19:50 drains past 20:00, a lease that lapsed is claimed again on a
    Sunday, a number answers STOP while its message waits. Those rows are never returned (see
    `_hold_direct_marketing`). When a whole batch is held, the next is claimed (the held rows are
    no longer due), so an empty answer still means nothing sendable is due. `entities`: the
    caller's cache of entities (time zone, country) for that check, kept across claims. `before`: a
    statement (SQL, parameters) run first in the claim's transaction (see `Dispatcher.record`)."""
    now = now or timezone.now()
    entities = {} if entities is None else entities
    while True:
        claimed = _claim_rows(limit=limit, lease_seconds=lease_seconds, now=now, after=after, before=before)
        before = None
        sendable = _hold_direct_marketing(claimed, now=now, entities=entities)
        if sendable or len(claimed) < limit:
            return sendable


def _claim_rows(*, limit: int, lease_seconds: float, now: dt.datetime,
                after: tuple[int, dt.datetime, int] | None, before: tuple[str, list] | None = None) -> list[Claimed]:
    ops = connection.ops
    now_db = ops.adapt_datetimefield_value(now)
    until_db = ops.adapt_datetimefield_value(now + dt.timedelta(seconds=lease_seconds))
    skip_locked = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    postgresql = connection.vendor == "postgresql"
    # PostgreSQL: the two times as microseconds since the epoch (exact). Read as timestamptz they go
    # through Django's Python time-zone loader, measured 8.5 µs a row more than a bigint and the
    # conversion below: about a twentieth of the consumer's CPU per message.
    aged_from = _epoch_us("COALESCE(scheduled_for, created_at)") if postgresql else "COALESCE(scheduled_for, created_at)"
    due = _epoch_us("next_attempt_at") if postgresql else "next_attempt_at"
    sql = (
        f"UPDATE {OUTBOX} SET claimed_until = %s WHERE id IN ("
        f"SELECT id FROM {OUTBOX} WHERE status = %s AND next_attempt_at <= %s "
        f"AND (claimed_until IS NULL OR claimed_until < %s){' AND (priority, next_attempt_at, id) > (%s, %s, %s)' if after else ''} "
        f"ORDER BY priority, next_attempt_at, id LIMIT %s{skip_locked}) "
        # A scheduled message (direct marketing waiting for the allowed hours) ages from its schedule.
        f"RETURNING id, entity_id, number, country, text, priority, credits, attempts, "
        f"{aged_from}, idempotency_key, {due}, message_type")
    cursor_args = [after[0], ops.adapt_datetimefield_value(after[1]), after[2]] if after else []
    params = [until_db, OutboxStatus.QUEUED.value, now_db, now_db, *cursor_args, limit]
    rows = _claim_in_one_round_trip(sql, params, before) if postgresql else None
    if rows is None:
        with transaction.atomic(), connection.cursor() as cur:
            if before is not None:
                _commit_without_waiting_for_disk(cur)
                cur.execute(*before)
            if postgresql:
                cur.execute(_CLAIM_SETTINGS)
            cur.execute(sql, params)
            rows = cur.fetchall()
    convert = _datetime_converter()
    claimed = [Claimed(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], convert(r[8]), r[9], convert(r[10]), r[11])
               for r in rows]
    claimed.sort(key=lambda c: (c.priority, c.id))
    return claimed


def _hold_direct_marketing(claimed: list[Claimed], *, now: dt.datetime, entities: dict[int, Entity]) -> list[Claimed]:
    """The claimed messages that may be submitted now. Direct marketing outside the CPA
    Regulation 4 hours goes back to the queue, Scheduled for the next allowed minute (no attempt
    counted, lease released); direct marketing to a number that answered STOP is cancelled and
    its credits refunded. Costs nothing for a batch without direct marketing; otherwise one query
    for the opt-outs, one for entities not yet in `entities`, one write for the held rows."""
    from .inbound import queued_marketing_cancel_opted_out
    from .policy import DIRECT_MARKETING_TYPES, next_allowed_send

    marketing = [c for c in claimed if c.message_type in DIRECT_MARKETING_TYPES]
    if not marketing:
        return claimed
    missing = {c.entity_id for c in marketing} - entities.keys()
    if missing:
        entities.update(Entity.objects.only("id", "time_zone", "country", "name").in_bulk(missing))
    opted_out = set(MarketingOptOut.objects.filter(entity_id__in={c.entity_id for c in marketing},
                                                   number__in={c.number for c in marketing})
                    .values_list("entity_id", "number"))
    held: dict[int, dt.datetime] = {}
    stopped: list[int] = []
    for c in marketing:
        if (c.entity_id, c.number) in opted_out:
            stopped.append(c.id)
            continue
        allowed = next_allowed_send(entity=entities[c.entity_id], message_type=c.message_type, at=now)
        if allowed != now:
            held[c.id] = allowed
    if not (held or stopped):
        return claimed
    q = OutboxStatus.QUEUED.value
    ops = connection.ops
    with transaction.atomic(), connection.cursor() as cur:
        _commit_without_waiting_for_disk(cur)
        if held:
            # Shown as Scheduled, and aged from then (like a message queued outside the hours).
            cur.executemany(
                f"UPDATE {OUTBOX} SET next_attempt_at = %s, scheduled_for = %s, claimed_until = NULL "
                f"WHERE id = %s AND status = '{q}'",
                [(ops.adapt_datetimefield_value(at), ops.adapt_datetimefield_value(at), i) for i, at in held.items()])
        if stopped:
            queued_marketing_cancel_opted_out(OutboxMessage.objects.filter(pk__in=stopped), now=now,
                                              reference="dispatch:opted_out", leased_too=True)
    skipped = held.keys() | set(stopped)
    return [c for c in claimed if c.id not in skipped]


# PostgreSQL: the claim must walk the claim index in order and stop after `limit` rows, whatever the
# statistics say. Right after a bulk enqueue they still describe the table as it was (a few rows),
# and the planner then reads and sorts the whole queue for every claim: measured 20-40 ms per claim
# at 20,000 queued, growing with the queue. Sorting and bitmap or sequential scans are ruled out for
# this statement only. The claim also commits without waiting for the disk (see
# _commit_without_waiting_for_disk).
_CLAIM_SETTINGS = ("SET LOCAL enable_sort = off; SET LOCAL enable_bitmapscan = off; "
                   "SET LOCAL enable_seqscan = off; SET LOCAL synchronous_commit = off")


def _claim_in_one_round_trip(sql: str, params: list, before: tuple[str, list] | None = None) -> list[tuple] | None:
    """PostgreSQL, outside any transaction of the caller: the claim's transaction (BEGIN, its
    settings, `before` if given, the UPDATE, COMMIT) in one round trip, through the client-side
    binding cursor Django uses with psycopg 3. On a loaded machine each round trip costs
    milliseconds, and the claim of the next batch is what a consumer waits on once the window's
    submits are answered. None when that cannot be done here (the caller's transaction is open,
    or the connection binds parameters on the server): claim the ordinary way."""
    if connection.in_atomic_block:
        return None
    import psycopg

    with connection.cursor() as cur:
        raw = cur.cursor
        if not isinstance(raw, psycopg.ClientCursor):
            return None
        try:
            if before is None:
                raw.execute(f"BEGIN; {_CLAIM_SETTINGS}; {sql}; COMMIT", params)
            else:  # before the claim's plan settings, which are for the claim alone
                raw.execute(f"BEGIN; SET LOCAL synchronous_commit = off; {before[0]}; {_CLAIM_SETTINGS}; {sql}; COMMIT",
                            [*before[1], *params])
        except Exception:
            # A statement failed inside the explicit transaction: end it before anything else runs.
            with contextlib.suppress(Exception):
                raw.execute("ROLLBACK")
            raise
        rows: list[tuple] = []
        while True:
            if raw.description is not None:  # the UPDATE's RETURNING rows
                rows = raw.fetchall()
            if not raw.nextset():
                return rows


def _commit_without_waiting_for_disk(cur) -> None:
    """PostgreSQL: this transaction's commit returns before its WAL reaches the disk (it gets
    there within a few hundred milliseconds, and with the next ordinary commit of any session).
    Used for claims and outcome records only: a database crash in that instant loses a claim
    (the rows are claimed again) or a record (the message is sent again once its lease lapses,
    the same duplicate a consumer crash causes). Receipts applied inside a record share its
    fate: a lost one is applied again by the sweep (its report's `applied` flag is lost with it),
    and a refund is lost only together with the record that made it. A commit that waits for the
    disk costs more than the SMPP submits of a batch on a busy machine."""
    if connection.vendor == "postgresql":
        cur.execute("SET LOCAL synchronous_commit TO OFF")


def _epoch_us(column: str) -> str:
    return f"(EXTRACT(EPOCH FROM {column}) * 1000000)::bigint"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _datetime_converter() -> Callable:
    if connection.vendor == "postgresql":  # microseconds since the epoch (see _claim_rows)
        return lambda us: _EPOCH + dt.timedelta(microseconds=us)
    if connection.vendor == "sqlite":
        from django.utils.dateparse import parse_datetime

        def convert(value):
            if isinstance(value, dt.datetime):
                return value if timezone.is_aware(value) else value.replace(tzinfo=dt.UTC)
            parsed = parse_datetime(value)
            return parsed if timezone.is_aware(parsed) else parsed.replace(tzinfo=dt.UTC)
        return convert
    return lambda v: v


class Router:
    """Gateways for an entity and a country, best first: routes for the entity before routes for
    anyone, a country's routes before any-country routes, then by rank."""

    def __init__(self, refresh_seconds: float = 30.0):
        self.refresh_seconds = refresh_seconds
        self._loaded = 0.0
        self._routes: list[tuple[int | None, str, str, int]] = []
        self._gateways: list[str] = []
        self._cache: dict[tuple[int, str], list[str]] = {}

    def _load(self) -> None:
        if time.monotonic() - self._loaded < self.refresh_seconds:
            return
        self._routes = list(Route.objects.filter(gateway__is_active=True).values_list("entity_id", "country", "gateway__name", "rank"))
        self._gateways = list(Gateway.objects.filter(is_active=True).order_by("name").values_list("name", flat=True))
        self._cache.clear()
        self._loaded = time.monotonic()

    def gateways(self, entity_id: int, country: str) -> list[str]:
        self._load()
        key = (entity_id, country)
        if key not in self._cache:
            matching = [(e is None, c == "", rank, name) for e, c, name, rank in self._routes
                        if (e is None or e == entity_id) and (c == "" or c == country)]
            names = [name for *_, name in sorted(matching)] if self._routes else list(self._gateways)
            self._cache[key] = list(dict.fromkeys(names))
        return self._cache[key]


class Dispatcher:
    def __init__(self, transports: Mapping[str, Transport], policy: DispatchPolicy | None = None, router: Router | None = None):
        self.transports = dict(transports)
        self.policy = policy or DispatchPolicy()
        self.router = router or Router()
        self.counters: dict[str, int] = defaultdict(int)
        self.rng = random.Random()
        self._swept = self._stats_checked = time.monotonic()
        # Receipts this consumer stored that matched no submitted message yet: provider id -> when.
        self._unmatched: dict[str, float] = {}
        self._cursor: tuple[int, dt.datetime, int] | None = None
        self._full_claimed = float("-inf")
        # Entities (time zone, country) of the direct marketing claimed, for the hours check.
        self._entities: dict[int, Entity] = {}
        # Each gateway's state, for the operator's screen (web process): on change and once a minute.
        self.health = HealthReporter(self.transports)

    # PostgreSQL: how often a claim looks from the start of the queue rather than past this
    # consumer's last claim. Every message sent leaves dead entries in the claim index (its claim
    # and its record each write a new row version) at the front of the queue's range until a
    # vacuum, and a claim from the start walks them all: measured 40-100 ms per claim after 10,000
    # messages, more than the window's submits. Past the last claim there are none. A look from
    # the start finds what the cursor cannot (a more urgent message enqueued meanwhile, a lease
    # that lapsed): an OTP enqueued during a bulk run waits this much longer at most.
    FULL_CLAIM_SECONDS = 0.5

    def _claim(self, lease_seconds: float, *, before: tuple[str, list] | None = None) -> list[Claimed]:
        now = time.monotonic()
        cursor = self._cursor if connection.vendor == "postgresql" and now - self._full_claimed < self.FULL_CLAIM_SECONDS else None
        claimed = claim_batch(limit=self.policy.batch, lease_seconds=lease_seconds, after=cursor,
                              entities=self._entities, before=before)
        if cursor is None or len(claimed) < self.policy.batch:
            if cursor is not None:  # past the cursor ran dry: the rest from the start
                claimed += claim_batch(limit=self.policy.batch - len(claimed), lease_seconds=lease_seconds,
                                       entities=self._entities)
                claimed.sort(key=lambda c: (c.priority, c.id))
            self._full_claimed = now
        if claimed:
            last = max(claimed, key=lambda c: (c.priority, c.due, c.id))
            self._cursor = (last.priority, last.due, last.id)
        return claimed

    # -- one pass -----------------------------------------------------------------------------
    def step(self) -> int:
        """Apply events, then claim, submit and record one batch. Returns the number claimed."""
        self.apply_events()
        claimed = claim_batch(limit=self.policy.batch, lease_seconds=self.policy.lease_seconds, entities=self._entities)
        if claimed:
            self.record(claimed, self._submit(claimed)())
        return len(claimed)

    def _submit(self, claimed: list[Claimed]) -> Callable[[], dict[int, tuple[str, SubmitResult]]]:
        """Route the batch and put it on the wire; returns the function that waits for the results."""
        by_gateway: dict[str, list[Claimed]] = defaultdict(list)
        results: dict[int, tuple[str, SubmitResult]] = {}
        for c in claimed:
            names = [n for n in self.router.gateways(c.entity_id, c.country) if n in self.transports]
            up = next((n for n in names if self.transports[n].is_up), None)
            if up is None:
                reason = "no gateway up for this route" if names else "no gateway routes to this country"
                # Why each is down (a refused password, nothing listening), so staff know whom to call.
                why = "; ".join(f"{n}: {self.transports[n].problem}" for n in names
                                if getattr(self.transports[n], "problem", ""))
                reason = f"{reason} ({why})"[:200] if why else reason
                results[c.id] = ("", SubmitResult(c.id, Outcome.RETRY, error=reason))
            else:
                by_gateway[up].append(c)
        waiting = []
        timeout = self._wait_per_gateway()
        for name, items in by_gateway.items():
            subs = []
            for c in items:
                try:
                    subs.append(Submission(c.id, c.number, _text_for_submit(c)))
                except SealError as exc:
                    results[c.id] = ("", SubmitResult(c.id, Outcome.PERMANENT, error=f"sealed OTP unusable: {exc}"))
            transport = self.transports[name]
            start = getattr(transport, "submit_batch_start", None)
            if start is not None:
                waiting.append((name, start(subs)))
            else:  # a transport that cannot submit in the background submits now
                done = transport.submit_batch(subs, timeout=timeout)
                waiting.append((name, lambda _timeout, done=done: done))

        def wait() -> dict[int, tuple[str, SubmitResult]]:
            for name, result_of in waiting:
                for r in result_of(timeout):
                    results[r.outbox_id] = (name, r)
            return results

        return wait

    def _wait_per_gateway(self) -> float:
        return max(30.0, self.policy.lease_seconds / 2)

    def record(self, claimed: list[Claimed], results: Mapping[int, tuple[str, SubmitResult]], *,
               claim_next: bool = False) -> list[Claimed]:
        """Record the outcome of a submitted batch; `claim_next`: then claim the next batch and
        return it (on PostgreSQL in the same round trip when every message was accepted: the
        next batch goes on the wire as soon as this one is recorded, one round trip later)."""
        now = timezone.now()
        ops = connection.ops
        now_db = ops.adapt_datetimefield_value(now)
        submitted, retry, finished = [], [], []
        throttled = []
        refunds: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for c in claimed:
            gateway, r = results[c.id]
            if r.outcome is Outcome.SUBMITTED:
                submitted.append((gateway, r.provider_message_id, now_db, c.attempts + 1, c.id))
                self.counters["submitted"] += 1
            elif r.outcome is Outcome.THROTTLED and now - c.created_at < self.policy.age_limit(c.priority):
                # Not an attempt that failed: the message keeps its attempts (and so its back-off).
                later = now + dt.timedelta(seconds=self.policy.throttle_delay(self.rng))
                throttled.append((later, r.error[:200], c.id))
                self.counters["throttled"] += 1
            elif r.outcome is Outcome.RETRY and now - c.created_at < self.policy.age_limit(c.priority):
                delay = self.policy.retry_delay(c.attempts + 1, self.rng)
                later = now + dt.timedelta(seconds=delay)
                retry.append((later, c.attempts + 1, r.error[:200], c.id))
                self.counters["retried"] += 1
            else:
                status = OutboxStatus.FAILED if r.outcome is Outcome.PERMANENT else OutboxStatus.EXPIRED
                tried = c.attempts + (r.outcome is not Outcome.THROTTLED)
                error = r.error if r.outcome is Outcome.PERMANENT else f"expired after {tried} attempts: {r.error}"
                finished.append((status.value, error[:200], now_db, tried, c.id))
                self.counters[status.value] += 1
                # Never submitted (or refused outright): the credits go back.
                refunds[c.entity_id][0] += c.credits
                refunds[c.entity_id][1] += 1
        # A direct-marketing message tried again must still go out inside the CPA Regulation 4
        # hours: a retry falling outside them waits for the next allowed minute (one look-up,
        # only when something is retried).
        held = _outside_marketing_hours({row[-1]: row[0] for row in (*throttled, *retry)})
        throttled = [(ops.adapt_datetimefield_value(held.get(i, later)), error, i) for later, error, i in throttled]
        retry = [(ops.adapt_datetimefield_value(held.get(i, later)), attempts, error, i) for later, attempts, error, i in retry]
        q = OutboxStatus.QUEUED.value
        # Receipts that come over the consumer's own session are known here when they overtook
        # the record; receipts that come by HTTP callback (to the web process) are not, so for
        # those gateways every recorded id is looked up. A send-only SMPP transport's receipts go to
        # the receiver process, which retries those that overtook their record: nothing to look up.
        waiting = [(g, pid) for g, pid, *_ in submitted
                   if pid in self._unmatched or not _receipts_come_back(self.transports.get(g))]
        if (connection.vendor == "postgresql" and submitted and not (throttled or retry or finished)
                and not connection.in_atomic_block):
            # The common round (every message accepted): one statement, its own transaction,
            # committed without waiting for the disk. One round trip instead of three (BEGIN,
            # UPDATE, COMMIT) on the path every batch waits on, and the claim of the next batch in
            # that same round trip and transaction.
            if claim_next:
                following = self._claim(self.policy.lease_seconds, before=self._record_submitted_sql(submitted, now))
            else:
                with connection.cursor() as cur:
                    self._record_submitted_pg(cur, submitted, now)
                following = []
            self._apply_waiting(waiting)
            return following
        with transaction.atomic(), connection.cursor() as cur:
            if not (submitted and connection.vendor == "postgresql"):
                _commit_without_waiting_for_disk(cur)
            if submitted and connection.vendor == "postgresql":
                self._record_submitted_pg(cur, submitted, now)
            elif submitted:
                cur.executemany(
                    f"UPDATE {OUTBOX} SET status = '{OutboxStatus.SUBMITTED.value}', gateway = %s, provider_message_id = %s, "
                    f"submitted_at = %s, attempts = %s, claimed_until = NULL, error = '' WHERE id = %s AND status = '{q}'",
                    submitted)
            if throttled:
                cur.executemany(
                    f"UPDATE {OUTBOX} SET next_attempt_at = %s, error = %s, claimed_until = NULL "
                    f"WHERE id = %s AND status = '{q}'", throttled)
            if retry:
                cur.executemany(
                    f"UPDATE {OUTBOX} SET next_attempt_at = %s, attempts = %s, error = %s, claimed_until = NULL "
                    f"WHERE id = %s AND status = '{q}'", retry)
            if held:
                # Shown as Scheduled meanwhile, and aged from then.
                cur.executemany(f"UPDATE {OUTBOX} SET scheduled_for = %s WHERE id = %s",
                                [(ops.adapt_datetimefield_value(at), i) for i, at in held.items()])
            if finished:
                cur.executemany(
                    f"UPDATE {OUTBOX} SET status = %s, error = %s, finished_at = %s, attempts = %s, claimed_until = NULL "
                    f"WHERE id = %s AND status = '{q}'", finished)
            for entity_id, (amount, count) in refunds.items():
                credits.credits_refund(entity=Entity(pk=entity_id), channel="sms", amount=amount, messages=count,
                                       reference="dispatch:not_sent")
        self._apply_waiting(waiting)
        return self._claim(self.policy.lease_seconds) if claim_next else []

    def _apply_waiting(self, waiting: list[tuple[str, str]]) -> None:
        """Apply the receipts that overtook the record of their submission, once that record is
        committed. Looked up inside the record's transaction, a receipt arriving by HTTP callback
        while it is open is missed by both sides: the callback commits its report and then looks
        for the message, which it cannot see submitted yet; the record looked for the report before
        the callback committed it. After the commit the two cannot both miss: the callback's look-up
        starts after its report is committed, this one after the submission is, so whichever comes
        second sees the other's row."""
        if not waiting:
            return
        self.counters["receipts_applied"] += receipts_apply(keys=waiting)
        for _, pid in waiting:
            self._unmatched.pop(pid, None)

    @staticmethod
    def _record_submitted_sql(submitted: list[tuple], now: dt.datetime, *, sync_off: str = "") -> tuple[str, list]:
        """One statement for the whole batch (a round trip per row would cost more than the SMPP submits)."""
        q = OutboxStatus.QUEUED.value
        gateways, provider_ids, _, attempts, ids = (list(col) for col in zip(*submitted, strict=True))
        return (
            f"UPDATE {OUTBOX} AS o SET status = '{OutboxStatus.SUBMITTED.value}', gateway = v.gateway, "
            f"provider_message_id = v.pid, submitted_at = %s, attempts = v.attempts, claimed_until = NULL, error = '' "
            f"FROM (SELECT unnest(%s::bigint[]) AS id, unnest(%s::text[]) AS gateway, unnest(%s::text[]) AS pid, "
            f"unnest(%s::int[]) AS attempts) AS v{sync_off} WHERE o.id = v.id AND o.status = '{q}'",
            [now, ids, gateways, provider_ids, attempts])

    @classmethod
    def _record_submitted_pg(cls, cur, submitted: list[tuple], now: dt.datetime) -> None:
        """The batch's record in one statement, committing without waiting for the disk
        (`_commit_without_waiting_for_disk`): in the caller's transaction or its own."""
        cur.execute(*cls._record_submitted_sql(
            submitted, now, sync_off=", (SELECT set_config('synchronous_commit', 'off', true) AS sync_off) AS cfg"))

    # -- receipts and inbound -----------------------------------------------------------------
    def apply_events(self) -> None:
        """Store and apply the receipts that arrived since the last pass (those only: a pass
        costs the same however many receipts wait in the table), store inbound messages, and
        every `sweep_seconds` run the sweeps."""
        self.health.report()
        receipts = take_events(self.transports, self.counters)
        if receipts:
            keys = [(r.gateway, r.provider_message_id) for r in receipts]
            with transaction.atomic():  # one commit for storing and applying them
                changed, done = receipts_take(receipts)
                self.counters["receipts_applied"] += changed
            # Those that matched nothing yet: their submission is being recorded (here, in
            # `record`, which applies them) or by another consumer (the sweep applies them).
            now = time.monotonic()
            for _, pid in keys:
                if pid not in done:
                    self._unmatched[pid] = now
        if time.monotonic() - self._swept >= self.policy.sweep_seconds:
            self.sweep()
        elif time.monotonic() - self._stats_checked >= self.policy.statistics_seconds:
            self._stats_checked = time.monotonic()
            statistics_refresh()

    def sweep(self) -> None:
        """The safety nets, run now and then: a receipt stored while its submission was being
        recorded by another consumer (each missed the other's uncommitted row), and long inbound
        messages whose last parts never came."""
        self._swept = time.monotonic()
        statistics_refresh()
        self.counters["receipts_applied"] += receipts_apply()
        stale = self._swept - self.policy.sweep_seconds
        self._unmatched = {pid: t for pid, t in self._unmatched.items() if t >= stale}
        self.counters["inbound"] += inbound_parts_expire(older_than=self.policy.mo_part_timeout)

    # -- loops --------------------------------------------------------------------------------
    def run(self, *, stop: Callable[[], bool] = lambda: False, idle_sleep: float = 0.2,
            until_idle: bool = False, until_empty: bool = False, max_seconds: float | None = None) -> None:
        """Dispatch until stopped (or, `until_idle`, until nothing is queued or awaiting a receipt;
        `until_empty`, until nothing is queued).

        While a batch is on the wire the consumer applies the receipts that came in. The next batch
        is claimed when the current one is recorded (on PostgreSQL in the same round trip: see
        `record`) and goes on the wire right after: a consumer killed at any point has at most one
        batch submitted and not recorded (what a restart may send twice), and a claimed batch is
        submitted at once, well within its lease."""
        claimed: list[Claimed] = []
        statistics_refresh()
        try:
            self._run(claimed, stop, idle_sleep, until_idle, until_empty, max_seconds)
        finally:
            if claimed:  # claimed ahead and never submitted: free for any consumer now, not at lease end
                OutboxMessage.objects.filter(pk__in=[c.id for c in claimed], status=OutboxStatus.QUEUED).update(
                    claimed_until=None)

    def _run(self, claimed: list[Claimed], stop, idle_sleep, until_idle, until_empty, max_seconds) -> None:
        started = time.monotonic()
        while not stop():
            if max_seconds is not None and time.monotonic() - started > max_seconds:
                return
            if not claimed:
                self.apply_events()
                claimed[:] = self._claim(self.policy.lease_seconds)
            if not claimed:
                if until_empty or (until_idle and not _work_left()):
                    return
                time.sleep(idle_sleep)
                continue
            # Handed over before it goes on the wire: if anything below raises, `run` frees only
            # what was never submitted; the batch on the wire keeps its lease (the kill window).
            current = list(claimed)
            claimed.clear()
            wait = self._submit(current)
            self.apply_events()
            claimed[:] = self.record(current, wait(), claim_next=True)


def _receipts_come_back(transport) -> bool:
    """Whether this process learns of the receipts of what it submits through `transport`: in band
    (they come to it) or through the receiver (which applies those that raced their record)."""
    return bool(getattr(transport, "receipts_in_band", False) or getattr(transport, "receipts_retried_by_receiver", False))


def take_events(transports: Mapping[str, Transport], counters: dict[str, int]) -> list[Receipt]:
    """Drain every transport's events: inbound messages are stored here, receipts returned."""
    receipts: list[Receipt] = []
    whole: list[MobileOriginated] = []
    for transport in transports.values():
        for event in transport.drain_events():
            if isinstance(event, Receipt):
                receipts.append(event)
            elif isinstance(event, MobileOriginatedPart):
                inbound_part_receive(gateway=event.gateway, provider_id=event.provider_id, number=event.number,
                                     to_address=event.to_address, reference=event.reference, total=event.total,
                                     seq=event.seq, text=event.text)
                counters["inbound_parts"] += 1
            elif isinstance(event, MobileOriginated):
                whole.append(event)
    if whole:  # a burst of MOs is stored in a few statements, not a few per message
        inbound_receive_many(whole)
        counters["inbound"] += len(whole)
    return receipts


class Receiver:
    """Receipts and replies taken on receiver binds, apart from the submitting path: run by
    `manage.py messaging_receive` (which `messaging_dispatch` starts beside itself for every
    transmitter + receiver gateway), so taking in and applying receipts costs the submits nothing.

    Each pass stores the receipts that came in and applies them in bulk (one INSERT, then two
    UPDATEs per 500 receipts, never one per message). A receipt often arrives before the
    dispatcher has recorded its submission (the record waits for the whole window's answers): it
    is stored pending and tried again with later passes, 0.2 s after it came, then after 0.4 s,
    0.8 s... for `retry_seconds` (a dispatcher records a batch well within that unless its gateway
    hangs); past that the sweep applies it, and a receipt for a message this database never sent
    (another system on the same SMPP account) costs a handful of tries, not one per pass. Applying
    is idempotent (a message moves from Submitted once, a report is marked applied once its message
    has moved), so several receivers, the sweeps and the dispatcher's own look-up never apply a
    receipt twice."""

    FIRST_RETRY = 0.2

    def __init__(self, transports: Mapping[str, Transport], policy: DispatchPolicy | None = None,
                 retry_seconds: float = 10.0):
        self.transports = dict(transports)
        self.policy = policy or DispatchPolicy()
        self.retry_seconds = retry_seconds
        self.counters: dict[str, int] = defaultdict(int)
        # Stored, not applied yet: (gateway, provider id) -> (first seen, next try).
        self._unmatched: dict[tuple[str, str], tuple[float, float]] = {}
        self._swept = time.monotonic()
        self.health = HealthReporter(self.transports)

    @property
    def waiting(self) -> int:
        """Receipts stored that matched no recorded submission yet and are still being retried."""
        return len(self._unmatched)

    def step(self, *, last: bool = False) -> int:
        """Take the events that came in, store and apply the receipts among them together with the
        earlier unmatched ones now due (`last`: all of them, the receiver is stopping); every
        `sweep_seconds` the sweeps. Returns the receipts taken."""
        self.health.report()
        receipts = take_events(self.transports, self.counters)
        now = time.monotonic()
        self._unmatched = {k: v for k, v in self._unmatched.items() if now - v[0] < self.retry_seconds}
        due = [k for k, (_, next_try) in self._unmatched.items() if last or next_try <= now]
        if receipts or due:
            fresh = [(r.gateway, r.provider_message_id) for r in receipts]
            with transaction.atomic():  # one commit for storing and applying them
                changed, done = receipts_take(receipts)
                if due:
                    more, also = _receipts_apply_chunks(due, dt.timedelta(hours=6))
                    changed, done = changed + more, done | also
            self.counters["receipts"] += len(receipts)
            self.counters["receipts_applied"] += changed
            for key in fresh + due:
                if key[1] in done:
                    self._unmatched.pop(key, None)
                else:
                    first = self._unmatched.get(key, (now, now))[0]
                    self._unmatched[key] = (first, now + max(self.FIRST_RETRY, now - first))
        if now - self._swept >= self.policy.sweep_seconds:
            self.sweep()
        return len(receipts)

    def sweep(self) -> None:
        self._swept = time.monotonic()
        self.counters["receipts_applied"] += receipts_apply()
        self.counters["inbound"] += inbound_parts_expire(older_than=self.policy.mo_part_timeout)

    def run(self, *, stop: Callable[[], bool] = lambda: False, pass_seconds: float = 0.2,
            max_seconds: float | None = None) -> None:
        """A pass every `pass_seconds` at most: the receipts of that time go in one transaction
        (on SQLite every write transaction makes the dispatchers' claims and records wait)."""
        started = time.monotonic()
        while not stop():
            begun = time.monotonic()
            if max_seconds is not None and begun - started > max_seconds:
                return
            self.step()
            time.sleep(max(0.0, pass_seconds - (time.monotonic() - begun)))


def statistics_refresh() -> list[str]:
    """PostgreSQL: ANALYZE the outbox and the receipts when a tenth of them changed since their
    statistics were taken. A bulk enqueue writes a million rows in seconds and the autovacuum
    daemon analyzes them a minute or more later; meanwhile the planner believes the queue is
    nearly empty and applies each batch's receipts by reading every submitted message (measured:
    40 ms a pass at 10,000 submitted, growing with the table). Run when a consumer starts and
    every `statistics_seconds`; one catalogue read when nothing needs it. Returns the tables analyzed."""
    if connection.vendor != "postgresql":
        return []
    tables = [OUTBOX, DeliveryReport._meta.db_table]
    with connection.cursor() as cur:
        cur.execute("SELECT relname FROM pg_stat_user_tables WHERE relname = ANY(%s) "
                    "AND n_mod_since_analyze > 500 + 0.1 * GREATEST(n_live_tup, 0)", [tables])
        stale = [row[0] for row in cur.fetchall()]
        for table in stale:
            cur.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    return stale


def _text_for_submit(c: Claimed) -> str:
    """The text as the phone must read it. An OTP is stored masked, its code sealed in the
    idempotency key by the signing app: it is unsealed here, on the way out, and never stored."""
    if c.key.startswith(SEAL_PREFIX):
        return unseal_for_submit(c.text, c.key)
    return c.text


def _work_left() -> bool:
    return OutboxMessage.objects.filter(status__in=[OutboxStatus.QUEUED, OutboxStatus.SUBMITTED]).exists()


def receipts_record(receipts: list[Receipt]) -> None:
    """Store receipts once per (gateway, provider id): a receipt sent twice changes nothing."""
    table = DeliveryReport._meta.db_table
    now_db = connection.ops.adapt_datetimefield_value(timezone.now())
    rows = [(r.gateway, r.provider_message_id, r.state[:10], r.error_code[:10], now_db, False) for r in receipts]
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute(
                f"INSERT INTO {table} (gateway, provider_message_id, state, error_code, received_at, applied) "
                f"SELECT unnest(%s::text[]), unnest(%s::text[]), unnest(%s::text[]), unnest(%s::text[]), %s, false "
                f"ON CONFLICT (gateway, provider_message_id) DO NOTHING",
                [[r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows], [r[3] for r in rows], timezone.now()])
            return
        cur.executemany(
            f"INSERT INTO {table} (gateway, provider_message_id, state, error_code, received_at, applied) "
            f"VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (gateway, provider_message_id) DO NOTHING", rows)


def receipts_take(receipts: list[Receipt]) -> tuple[int, set[str]]:
    """Store receipts just taken in and apply them: (messages changed, provider ids of the
    receipts applied). On PostgreSQL one statement: the messages they name move from Submitted
    and the receipts are stored already marked applied (one write of each, none read back); a
    receipt whose message is not recorded as Submitted yet (or is past it) is stored pending, for
    `_receipts_apply_chunks` (the receiver's retries, the dispatcher's record, the sweep).
    Elsewhere: `receipts_record`, then the pending receipts named applied."""
    if not receipts:
        return 0, set()
    if connection.vendor != "postgresql":
        receipts_record(receipts)
        return _receipts_apply_chunks([(r.gateway, r.provider_message_id) for r in receipts], dt.timedelta(hours=6))
    # Once per (gateway, provider id), the first copy, as receipts_record stores them.
    fresh = list({(r.gateway, r.provider_message_id): r for r in reversed(receipts) if r.provider_message_id}.values())
    sub, delivered, failed = OutboxStatus.SUBMITTED.value, OutboxStatus.DELIVERED.value, OutboxStatus.FAILED.value
    reports = DeliveryReport._meta.db_table
    now = timezone.now()
    with connection.cursor() as cur:
        cur.execute(
            f"WITH v AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS v(gateway, pid, state, err)), "
            f"moved AS (UPDATE {OUTBOX} o SET "
            f"status = CASE WHEN v.state = 'DELIVRD' THEN '{delivered}' ELSE '{failed}' END, "
            f"error = CASE WHEN v.state = 'DELIVRD' THEN '' ELSE 'delivery receipt: ' || v.state || ' (error ' || "
            f"COALESCE(NULLIF(v.err, ''), 'none') || ')' END, finished_at = %s "
            f"FROM v WHERE o.provider_message_id = v.pid AND o.provider_message_id > '' AND o.gateway = v.gateway "
            f"AND o.status = '{sub}' RETURNING o.gateway, o.provider_message_id), "
            f"stored AS (INSERT INTO {reports} (gateway, provider_message_id, state, error_code, received_at, applied) "
            f"SELECT v.gateway, v.pid, v.state, v.err, %s, EXISTS (SELECT 1 FROM moved m WHERE m.gateway = v.gateway "
            f"AND m.provider_message_id = v.pid) FROM v ON CONFLICT (gateway, provider_message_id) DO NOTHING) "
            f"SELECT provider_message_id FROM moved",
            [[r.gateway for r in fresh], [r.provider_message_id for r in fresh], [r.state[:10] for r in fresh],
             [r.error_code[:10] for r in fresh], now, now])
        moved = cur.fetchall()
    return len(moved), {row[0] for row in moved}


def receipts_apply_pending(window: dt.timedelta = dt.timedelta(hours=6), *, only: Receipt | None = None) -> int:
    """Apply stored receipts: every pending one of the last `window` (the sweep), or `only` that
    one (an HTTP callback: each callback locks its own rows, never the whole pending set, so
    concurrent callbacks do not wait on or deadlock with each other)."""
    keys = [(only.gateway, only.provider_message_id)] if only is not None else None
    return receipts_apply(keys=keys, window=window)


# Keys per statement: well under SQLite's bound-parameter limit, a short IN list for PostgreSQL.
_RECEIPT_CHUNK = 500


def receipts_apply(*, keys: list[tuple[str, str]] | None = None, window: dt.timedelta = dt.timedelta(hours=6)) -> int:
    """Move submitted messages to Delivered / Failed from stored receipts not yet applied, in two
    set-based statements per chunk: those naming `keys` (gateway, provider message id), or with no
    keys every pending receipt of the last `window`. A receipt can overtake the record of its
    submission, so one that matches nothing yet stays pending; it is applied when the submission
    is recorded (`Dispatcher.record` passes its keys here) or by the sweep."""
    if keys is None:
        return _receipts_apply_chunk(None, window)[0]
    return _receipts_apply_chunks(keys, window)[0]


def _receipts_apply_chunks(keys: list[tuple[str, str]], window: dt.timedelta) -> tuple[int, set[str]]:
    """(messages changed, provider ids of the receipts now applied)."""
    keys = list(dict.fromkeys(k for k in keys if k[1]))
    changed, done = 0, set()
    for i in range(0, len(keys), _RECEIPT_CHUNK):
        n, ids = _receipts_apply_chunk(keys[i : i + _RECEIPT_CHUNK], window)
        changed += n
        done |= ids
    return changed, done


def _receipts_apply_chunk(keys: list[tuple[str, str]] | None, window: dt.timedelta) -> tuple[int, set[str]]:
    reports = DeliveryReport._meta.db_table
    since = connection.ops.adapt_datetimefield_value(timezone.now() - window)
    now_db = connection.ops.adapt_datetimefield_value(timezone.now())
    sub, delivered, failed = OutboxStatus.SUBMITTED.value, OutboxStatus.DELIVERED.value, OutboxStatus.FAILED.value
    one_d, one_r, one_args = "", "", []
    if keys is not None:
        if not keys:
            return 0, set()
        # By provider id (the index), then the gateway: a receipt of another gateway with the same
        # id is pending too, and applying it early is as right as applying it later.
        ids = [pid for _, pid in keys]
        gateways = sorted({g for g, _ in keys})
        marks, gmarks = ", ".join(["%s"] * len(ids)), ", ".join(["%s"] * len(gateways))
        one_d = f" AND d.provider_message_id IN ({marks}) AND d.gateway IN ({gmarks})"
        one_r = f" AND {reports}.provider_message_id IN ({marks}) AND {reports}.gateway IN ({gmarks})"
        one_args = [*ids, *gateways]
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(
            f"UPDATE {OUTBOX} SET "
            f"status = CASE WHEN d.state = 'DELIVRD' THEN '{delivered}' ELSE '{failed}' END, "
            f"error = CASE WHEN d.state = 'DELIVRD' THEN '' ELSE 'delivery receipt: ' || d.state || ' (error ' || "
            f"COALESCE(NULLIF(d.error_code, ''), 'none') || ')' END, finished_at = %s "
            f"FROM {reports} d WHERE d.applied = %s AND d.received_at >= %s{one_d} "
            f"AND {OUTBOX}.provider_message_id = d.provider_message_id AND {OUTBOX}.provider_message_id > '' "
            f"AND {OUTBOX}.gateway = d.gateway "
            f"AND {OUTBOX}.status = %s", [now_db, False, since, *one_args, sub])
        changed = cur.rowcount
        # A report is done once its message is past Submitted (just now, or by an earlier copy).
        cur.execute(
            f"UPDATE {reports} SET applied = %s WHERE applied = %s AND received_at >= %s{one_r} AND EXISTS ("
            f"SELECT 1 FROM {OUTBOX} o WHERE o.provider_message_id = {reports}.provider_message_id AND o.provider_message_id > '' "
            f"AND o.gateway = {reports}.gateway AND o.status <> %s) RETURNING provider_message_id",
            [True, False, since, *one_args, sub])
        done = {row[0] for row in cur.fetchall()}
    return max(changed, 0), done


def default_batch(gateways=None) -> int:
    """What a consumer claims per round unless told otherwise: the smallest window of the active
    gateways, so a consumer killed mid-round re-sends at most one window."""
    gateways = gateways if gateways is not None else Gateway.objects.filter(is_active=True)
    windows = [g.window for g in gateways]
    return min(windows) if windows else Gateway._meta.get_field("window").default


def gateway_guard(gateway: Gateway) -> Callable[[], str | None]:
    """What a gateway's transport asks before each connection: why its address may not be connected
    to now (Gateway.destination_problem, names resolved), or None. It runs on the transports' own
    threads, so it only reads: the audit entry is written by `gateway_destination_refused`."""
    def guard() -> str | None:
        refused = gateway.destination_problem(resolve=True)
        return f"{refused[0]}: {refused[1]}" if refused else None
    return guard


def gateway_destination_refused(gateway: Gateway) -> str | None:
    """Why the gateway's address is refused now, or None; a refusal is logged and audited
    (messaging.gateway_destination_refused: the operator's setting names an address the server may
    not connect to)."""
    from imali.core.audit import audit_record_once
    from imali.core.models import AuditAction

    refused = gateway.destination_problem(resolve=True)
    if refused is None:
        return None
    field, why = refused
    problem = f"{field}: {why}"
    log.warning("gateway %s: destination refused: %s", gateway.name, problem)
    # Once an hour for the same reason: a dispatcher restarted in a loop does not fill the log.
    audit_record_once(within=dt.timedelta(hours=1), action=AuditAction.GATEWAY_DESTINATION_REFUSED, target=gateway,
                      subject=gateway.name, after={"field": field, "reason": problem})
    return problem


def transports_from_gateways(gateways=None, *, role: str = "both") -> dict[str, Transport]:
    """A transport per gateway, by the protocol the gateway speaks (SMPP or an HTTP aggregator).

    `role` "both": every session in this process. "send" (the dispatcher when a receiver process
    runs beside it): a transmitter + receiver gateway binds its transmitter only. "receive" (that
    receiver process): the receiver sessions of the transmitter + receiver gateways, nothing else."""
    from .adapters.africastalking import http_transport_for
    from .adapters.smpp import BindMode, Role, SmppTransport

    gateways = gateways if gateways is not None else Gateway.objects.filter(is_active=True)
    transports: dict[str, Transport] = {}
    for g in gateways:
        split = not g.is_http and g.bind_mode == BindMode.TRANSMITTER_RECEIVER
        if role == Role.RECEIVE and not split:
            continue
        # A refused address gets its transport all the same, one that never connects (its guard
        # refuses each connection): the gateway is down, and its routes fail over.
        gateway_destination_refused(g)
        if g.is_http:
            transports[g.name] = http_transport_for(g, guard=gateway_guard(g))
        else:
            transports[g.name] = SmppTransport(
                name=g.name, host=g.host, port=g.port, system_id=g.system_id, password=g.password,
                source_addr=g.source_addr, window=g.window, rate_per_second=g.rate_per_second,
                source_addr_ton=g.source_addr_ton, source_addr_npi=g.source_addr_npi,
                dest_addr_ton=g.dest_addr_ton, dest_addr_npi=g.dest_addr_npi, bind_mode=g.bind_mode,
                role=role if split else Role.BOTH, guard=gateway_guard(g), receipt_id_format=g.receipt_id_format,
                home_country=_home_country(g))
    return transports


def _home_country(gateway: Gateway) -> str:
    """The one country the gateway's routes name, whose numbers its SMSC may write nationally in
    replies; "" when they name none or several (a national number is then kept as written)."""
    countries = set(Route.objects.filter(gateway=gateway).values_list("country", flat=True))
    return countries.pop() if len(countries) == 1 else ""


def receiver_needed(gateways=None) -> bool:
    """Whether some active gateway takes its receipts on a receiver bind of its own."""
    from .adapters.smpp import BindMode

    gateways = gateways if gateways is not None else Gateway.objects.filter(is_active=True)
    return any(g.kind == "smpp" and g.bind_mode == BindMode.TRANSMITTER_RECEIVER for g in gateways)
