"""Mobile-originated messages: stored once per provider id, matched to a client or user by number,
STOP turned into a permanent marketing opt-out."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Callable

from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.utils import timezone

from imali.clients.models import Client
from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.tenancy.models import Entity, User

from . import credits
from .models import InboundMessage, InboundPart, MarketingOptOut, OutboxMessage, OutboxStatus
from .segments import join_parts

logger = logging.getLogger(__name__)

# Features that answer inbound messages (SMS banking) append a callable here in their
# AppConfig.ready(). Each is called once per newly stored message, in its own savepoint: a failing
# handler is logged (by message id only: texts may hold PINs) and never loses the message.
INBOUND_HANDLERS: list[Callable[[InboundMessage], None]] = []
# The same, called once with every message a pass stored (a burst of MOs is stored in one go by
# `inbound_receive_many`): a feature that answers in a worker of its own queues them here in one
# statement, so the receiving process never waits on the answers.
INBOUND_BATCH_HANDLERS: list[Callable[[list[InboundMessage]], None]] = []

STOP_WORDS = frozenset({"STOP", "STOP ALL", "STOPALL", "UNSUBSCRIBE", "OPT OUT", "OPTOUT", "END", "CANCEL", "QUIT"})


def is_stop(text: str) -> bool:
    return " ".join(text.upper().split()).strip(".!") in STOP_WORDS


def _match(number: str):
    """The entity, client and user a number belongs to. A number known to several lenders answers
    the one that messaged it last."""
    last = (OutboxMessage.objects.filter(number=number).order_by("-created_at", "-id")
            .values_list("entity_id", "client_id", "user_id").first())
    if last is not None:
        entity_id, client_id, user_id = last
        if client_id is None:
            client_id = Client.objects.filter(entity_id=entity_id, cellphone=number).order_by("id").values_list("id", flat=True).first()
        return entity_id, client_id, user_id
    client = Client.objects.filter(cellphone=number).order_by("-id").values_list("entity_id", "id").first()
    if client is not None:
        return client[0], client[1], None
    user = User.objects.filter(cellphone=number, entity__isnull=False).order_by("id").values_list("entity_id", "id").first()
    if user is not None:
        return user[0], None, user[1]
    return None, None, None


def inbound_receive(*, gateway: str, provider_id: str, number: str, text: str, to_address: str = "",
                    incomplete: bool = False) -> tuple[InboundMessage, bool]:
    """Store one mobile-originated message. Returns (message, created); the same provider id again
    returns the stored message and changes nothing."""
    found = InboundMessage.objects.filter(gateway=gateway, provider_id=provider_id).first()
    if found is not None:
        return found, False
    entity_id, client_id, user_id = _match(number)
    stop = is_stop(text)
    try:
        with transaction.atomic():
            message = InboundMessage.objects.create(gateway=gateway, provider_id=provider_id, entity_id=entity_id,
                                                    client_id=client_id, user_id=user_id, number=number,
                                                    to_address=to_address, text=text, is_stop=stop,
                                                    incomplete=incomplete)
            if stop and entity_id is not None:
                _opt_out(message)
    except IntegrityError:  # another consumer stored it first
        return InboundMessage.objects.get(gateway=gateway, provider_id=provider_id), False
    _hand_on(message)
    return message, True


def _hand_on(message: InboundMessage) -> None:
    _hand_on_many([message])


def _hand_on_many(messages: list[InboundMessage]) -> None:
    if not messages:
        return
    for message in messages:
        for handler in INBOUND_HANDLERS:
            try:
                with transaction.atomic():
                    handler(message)
            except Exception:
                logger.exception("Inbound handler %s failed on inbound message %s", getattr(handler, "__name__", handler),
                                 message.pk)
    for batch_handler in INBOUND_BATCH_HANDLERS:
        try:
            with transaction.atomic():
                batch_handler(messages)
        except Exception:
            logger.exception("Inbound handler %s failed on inbound messages %s…%s",
                             getattr(batch_handler, "__name__", batch_handler), messages[0].pk, messages[-1].pk)


def _match_many(numbers: set[str]) -> dict[str, tuple[int | None, int | None, int | None]]:
    """`_match` for many numbers in a handful of statements whatever their count: the latest
    outbound message of each number, then the clients and users with those numbers."""
    found: dict[str, tuple[int | None, int | None, int | None]] = {}
    numbers = set(numbers)
    if not numbers:
        return found
    latest_at = dict(OutboxMessage.objects.filter(number__in=numbers).order_by().values("number")
                     .annotate(at=Max("created_at")).values_list("number", "at"))
    if latest_at:
        at_latest = Q()
        for number, at in latest_at.items():
            at_latest |= Q(number=number, created_at=at)
        last: dict[str, tuple[int, int, int | None, int | None]] = {}
        for pk, number, entity_id, client_id, user_id in (OutboxMessage.objects.filter(at_latest)
                                                          .values_list("id", "number", "entity_id", "client_id", "user_id")):
            if number not in last or pk > last[number][0]:
                last[number] = (pk, entity_id, client_id, user_id)
        for number, (_, entity_id, client_id, user_id) in last.items():
            found[number] = (entity_id, client_id, user_id)
    clients = list(Client.objects.filter(cellphone__in=numbers).order_by("id").values_list("entity_id", "cellphone", "id"))
    for number, (entity_id, client_id, user_id) in list(found.items()):
        if client_id is None:  # the lender's first client with the number, as `_match`
            client_id = next((c for e, n, c in clients if e == entity_id and n == number), None)
            found[number] = (entity_id, client_id, user_id)
    for entity_id, number, client_id in reversed(clients):  # the newest client of any lender
        if number not in found:
            found[number] = (entity_id, client_id, None)
    rest = numbers - found.keys()
    if rest:
        for entity_id, number, user_id in (User.objects.filter(cellphone__in=rest, entity__isnull=False).order_by("-id")
                                           .values_list("entity_id", "cellphone", "id")):
            found[number] = (entity_id, None, user_id)  # ordered newest first: the oldest user wins
    return found


def inbound_receive_many(events) -> list[InboundMessage]:
    """Store the mobile-originated messages a receiver took in one pass (objects with gateway,
    provider_id, number, to_address and text), as `inbound_receive` would one by one, in a
    handful of statements for the whole burst; then hand the new ones on together. STOP messages
    and a burst that races another consumer storing the same ids go one by one. Returns the
    messages stored now."""
    unique = list({(e.gateway, e.provider_id): e for e in events}.values())
    if not unique:
        return []
    known = set()
    for gateway in {e.gateway for e in unique}:
        ids = [e.provider_id for e in unique if e.gateway == gateway]
        known |= {(gateway, pid) for pid in InboundMessage.objects.filter(gateway=gateway, provider_id__in=ids)
                  .values_list("provider_id", flat=True)}
    fresh = [e for e in unique if (e.gateway, e.provider_id) not in known]
    stops = [e for e in fresh if is_stop(e.text)]
    plain = [e for e in fresh if not is_stop(e.text)]
    stored: list[InboundMessage] = []
    if plain:
        matched = _match_many({e.number for e in plain})
        rows = []
        for e in plain:
            entity_id, client_id, user_id = matched.get(e.number, (None, None, None))
            rows.append(InboundMessage(gateway=e.gateway, provider_id=e.provider_id, entity_id=entity_id,
                                       client_id=client_id, user_id=user_id, number=e.number,
                                       to_address=e.to_address or "", text=e.text, is_stop=False,
                                       incomplete=bool(getattr(e, "incomplete", False))))
        try:
            with transaction.atomic():
                stored = InboundMessage.objects.bulk_create(rows)
        except IntegrityError:  # another consumer stored some of them meanwhile: one by one
            stored = []
            stops = fresh
    if stored and stored[0].pk is None:  # a database that cannot return the ids of a bulk insert
        stored = list(InboundMessage.objects.filter(
            gateway__in={m.gateway for m in stored}, provider_id__in=[m.provider_id for m in stored]).order_by("id"))
    _hand_on_many(stored)
    for e in stops:
        message, created = inbound_receive(gateway=e.gateway, provider_id=e.provider_id, number=e.number, text=e.text,
                                           to_address=e.to_address or "")
        if created:
            stored.append(message)
    return stored


# Where a part of a long message never arrived.
MISSING_PART = "[…]"


def inbound_part_receive(*, gateway: str, provider_id: str, number: str, to_address: str, reference: int, total: int,
                         seq: int, text: str) -> InboundMessage | None:
    """Keep one part of a concatenated message; once every part of its set is here (in any
    order, through any consumer), store the message whole and drop the parts. Returns the
    message when this part completed it. A part received twice is kept once."""
    if total < 2 or not 1 <= seq <= total:
        message, _ = inbound_receive(gateway=gateway, provider_id=provider_id, number=number, text=text,
                                     to_address=to_address)
        return message
    InboundPart.objects.bulk_create(
        [InboundPart(gateway=gateway, number=number, to_address=to_address, reference=reference, total=total, seq=seq,
                     text=text, provider_id=provider_id, received_at=timezone.now())],
        ignore_conflicts=True)
    return _assemble(gateway=gateway, number=number, to_address=to_address, reference=reference, total=total,
                     incomplete_ok=False)


def inbound_parts_expire(*, older_than: dt.timedelta) -> int:
    """Store the sets whose first part came more than `older_than` ago with the parts that did
    arrive, flagged incomplete, gaps marked. Returns the number of messages stored."""
    cutoff = timezone.now() - older_than
    stale = (InboundPart.objects.values("gateway", "number", "to_address", "reference", "total")
             .annotate(first=Min("received_at")).filter(first__lt=cutoff))
    stored = 0
    for key in list(stale):
        key.pop("first")
        if _assemble(**key, incomplete_ok=True) is not None:
            stored += 1
    return stored


def _assemble(*, gateway: str, number: str, to_address: str, reference: int, total: int,
              incomplete_ok: bool) -> InboundMessage | None:
    with transaction.atomic():
        # The lock makes two consumers finishing the same set (or one finishing it while another
        # expires it) take turns: the second finds the parts gone and stores nothing.
        parts = list(InboundPart.objects.select_for_update()
                     .filter(gateway=gateway, number=number, to_address=to_address, reference=reference, total=total)
                     .order_by("seq"))
        if not parts or (len(parts) < total and not incomplete_ok):
            return None
        by_seq = {p.seq: p for p in parts}
        text = join_parts([by_seq[i].text if i in by_seq else MISSING_PART for i in range(1, total + 1)])
        # The same parts give the same id whichever consumer assembles them.
        naming = "|".join([gateway, number, to_address, str(reference), str(total), *sorted(p.provider_id for p in parts)])
        provider_id = "c" + hashlib.sha256(naming.encode()).hexdigest()[:40]
        message, _ = inbound_receive(gateway=gateway, provider_id=provider_id, number=number, text=text,
                                     to_address=to_address, incomplete=len(parts) < total)
        InboundPart.objects.filter(pk__in=[p.pk for p in parts]).delete()
    return message


OPTED_OUT_ERROR = "opted out: the number answered STOP"


def queued_marketing_cancel_opted_out(messages: QuerySet, *, now: dt.datetime, reference: str,
                                      leased_too: bool = False) -> int:
    """Cancel the queued direct-marketing messages among `messages` (their number answered STOP)
    and give their credits back through the ledger, as `message_cancel` does. Messages a consumer
    holds under a lease are left to it unless `leased_too` (the consumer itself cancelling what it
    claimed): it checks opt-outs before it submits. Returns the number cancelled."""
    from .policy import DIRECT_MARKETING_TYPES

    with transaction.atomic():
        rows = messages.filter(status=OutboxStatus.QUEUED, message_type__in=DIRECT_MARKETING_TYPES)
        if not leased_too:
            rows = rows.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
        ids = list(rows.select_for_update().values_list("pk", flat=True))
        if not ids:
            return 0
        cancelled = OutboxMessage.objects.filter(pk__in=ids, status=OutboxStatus.QUEUED)
        refunds = list(cancelled.order_by().values("entity_id", "channel").annotate(amount=Sum("credits"), count=Count("pk")))
        changed = cancelled.update(status=OutboxStatus.CANCELLED, finished_at=now, error=OPTED_OUT_ERROR,
                                   claimed_until=None)
        for r in refunds:
            credits.credits_refund(entity=Entity(pk=r["entity_id"]), channel=r["channel"], amount=r["amount"] or 0,
                                   messages=r["count"], reference=reference)
    return changed


def _opt_out(message: InboundMessage) -> None:
    optout, created = MarketingOptOut.objects.get_or_create(
        entity_id=message.entity_id, number=message.number,
        defaults={"client_id": message.client_id, "inbound": message})
    clients = list(Client.objects.filter(entity_id=message.entity_id, cellphone=message.number, marketing_consent=True))
    Client.objects.filter(pk__in=[c.pk for c in clients]).update(marketing_consent=False)
    # Marketing already queued or scheduled for the number is withdrawn too: STOP means from now.
    cancelled = queued_marketing_cancel_opted_out(
        OutboxMessage.objects.filter(entity_id=message.entity_id, number=message.number),
        now=timezone.now(), reference=f"opt_out:{message.pk}")
    if created or clients or cancelled:
        audit_record(action=AuditAction.MARKETING_OPTED_OUT, actor=None, entity=message.entity, target=optout,
                     subject=message.number, before={"marketing_consent": [c.pk for c in clients]},
                     after={"opted_out": True, "inbound": message.pk, "queued_marketing_cancelled": cancelled})
