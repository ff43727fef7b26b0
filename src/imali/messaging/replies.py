"""SMS replies (DOMAIN §3, issue 11 §5): collected once a day and on demand ("Get SMS Responses").

A reply reaches Imali in one of two ways: pushed by a gateway as it arrives (an SMSC's deliver_sm,
an aggregator's callback), stored at once by `inbound_receive` (which also turns STOP into an
opt-out); or pulled, for aggregators whose API lists incoming messages. Of the aggregators Imali
speaks, Africa's Talking has such an API (GET /version1/messaging?username=&lastReceivedId=);
Clickatell's One API has none (incoming messages only by callback), and an SMSC pushes.

A replies run, per entity:
1. pulls from every active Africa's Talking gateway what arrived after its cursor (stored the same
   way as a pushed reply, once per provider id, so a reply seen both ways is stored once);
2. takes the entity's replies not yet collected, in one set-based pass: the client by number when
   the reply arrived without one, and the outbound message it answers, the latest SMS of the
   entity to that number sent before the reply arrived;
3. writes a process-log entry (who, when, counts, errors) and an audit entry;
4. tells the users named in the reply-notification setup: an in-app notice, and/or an email
   through the email channel (one email credit each, type "Reply").

Two runs at once never take the same reply (row locks, skipped by the second on PostgreSQL);
a rerun finds nothing new.
"""

from __future__ import annotations

import logging
import zoneinfo
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.utils import timezone

from imali.clients.models import Client
from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.tenancy.models import Entity, User
from imali.tenancy.rights import Right

from .inbound import inbound_receive
from .models import (
    Channel,
    Gateway,
    GatewayKind,
    InboundCursor,
    InboundMessage,
    MessageType,
    OutboxMessage,
    ProcessLog,
    ReplyNotice,
    ReplyNotifyRecipient,
)

log = logging.getLogger("imali.messaging.replies")

RUN_KIND = "get_sms_responses"
DAILY, ON_DEMAND = "daily", "on demand"
# Replies listed in a notification email; the rest are counted ("and 12 more").
EMAIL_LIST_LIMIT = 30
CHUNK = 1000


# ---------------------------------------------------------------------------------------------
# Reply-notification setup


def reply_notify_list(*, entity: Entity) -> list[ReplyNotifyRecipient]:
    return list(ReplyNotifyRecipient.objects.filter(entity=entity).select_related("user").order_by("user__username"))


def reply_notify_set(*, actor, entity: Entity, user: User, by_email: bool, in_app: bool) -> ReplyNotifyRecipient | None:
    """Name `user` to be told of new replies (by email and/or in the app), or remove them (both
    off). The user must be active in the entity and may read replies ("Reports: Reply Detail");
    email needs an email address. Audited."""
    if not actor.has_right(Right.MAXSMS_REPLIES_SETUP) or actor.entity_id != entity.pk:
        raise PermissionDenied(f"You need the {Right.MAXSMS_REPLIES_SETUP.label} right of this entity.")
    if user.entity_id != entity.pk:
        raise PermissionDenied("The user belongs to another entity.")
    if (by_email or in_app) and not user.is_active:
        raise ValidationError({"user": [ValidationError(f"{user} is not active.", code="inactive_user")]})
    if (by_email or in_app) and not user.has_right(Right.REPORT_REPLY_DETAIL):
        raise ValidationError({"user": [ValidationError(
            f"{user} may not read replies: give them the right '{Right.REPORT_REPLY_DETAIL.label}' first.",
            code="no_reply_right")]})
    if by_email and not user.email:
        raise ValidationError({"by_email": [ValidationError(f"{user} has no email address.", code="no_email")]})
    with transaction.atomic():
        current = ReplyNotifyRecipient.objects.select_for_update().filter(entity=entity, user=user).first()
        before = {"by_email": current.by_email, "in_app": current.in_app} if current else {"by_email": False, "in_app": False}
        after = {"by_email": bool(by_email), "in_app": bool(in_app)}
        if before == after:
            return current
        if not (by_email or in_app):
            current.delete()
            current = None
        elif current is None:
            current = ReplyNotifyRecipient.objects.create(entity=entity, user=user, updated_by=actor, **after)
        else:
            current.by_email, current.in_app, current.updated_by = after["by_email"], after["in_app"], actor
            current.save(update_fields=["by_email", "in_app", "updated_by", "updated_at"])
        audit_record(action=AuditAction.REPLY_NOTIFY_CHANGED, actor=actor, entity=entity, target=user,
                     subject=user.username, before=before, after=after)
    return current


# ---------------------------------------------------------------------------------------------
# Pulling from aggregators


@dataclass
class PullResult:
    fetched: int = 0
    stored: int = 0  # new to Imali (not already pushed by a callback)
    gateways: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def pullable_gateways():
    """Active gateways whose API lists incoming messages (Africa's Talking)."""
    return Gateway.objects.filter(is_active=True, kind=GatewayKind.AFRICASTALKING).order_by("name")


def replies_pull(*, gateways=None, timeout: float = 15.0) -> PullResult:
    """Fetch the incoming messages each pullable gateway holds after its cursor and store them.
    A gateway that cannot be reached is an error of this run (named in the result), never a stop."""
    from .adapters.africastalking import AfricasTalkingTransport, GatewayUnavailable
    from .dispatch import gateway_destination_refused, gateway_guard

    result = PullResult()
    for gateway in (pullable_gateways() if gateways is None else gateways):
        refused = gateway_destination_refused(gateway)
        if refused:
            result.errors.append(f"{gateway.name}: the incoming messages were not fetched (destination refused: {refused})")
            continue
        cursor, _ = InboundCursor.objects.get_or_create(gateway=gateway.name)
        transport = AfricasTalkingTransport(name=gateway.name, base_url=gateway.base_url, api_key=gateway.api_key,
                                            username=gateway.account, window=1, rate_per_second=gateway.rate_per_second,
                                            timeout=timeout, guard=gateway_guard(gateway))
        try:
            messages = transport.fetch_inbound(cursor.last_received_id)
        except (GatewayUnavailable, ValueError, KeyError, TypeError) as exc:
            result.errors.append(f"{gateway.name}: the incoming messages could not be fetched ({str(exc)[:160]})")
            continue
        finally:
            transport.close()
        result.gateways.append(gateway.name)
        for m in messages:
            _, created = inbound_receive(gateway=m.gateway, provider_id=m.provider_id, number=m.number, text=m.text,
                                         to_address=m.to_address)
            result.fetched += 1
            result.stored += created
        with transaction.atomic():
            locked = InboundCursor.objects.select_for_update().get(pk=cursor.pk)
            if transport.last_received_id > locked.last_received_id:  # a run at the same time may have gone further
                locked.last_received_id = transport.last_received_id
                locked.save(update_fields=["last_received_id", "updated_at"])
    return result


# ---------------------------------------------------------------------------------------------
# Collecting


@dataclass
class CollectResult:
    process: ProcessLog | None
    collected: int = 0
    matched_clients: int = 0
    matched_messages: int = 0
    stops: int = 0
    pull: PullResult | None = None
    notified_in_app: int = 0
    notified_by_email: int = 0
    errors: list[str] = field(default_factory=list)


def replies_collect(*, entity: Entity, actor=None, trigger: str = ON_DEMAND, pull: bool = True,
                    pulled: PullResult | None = None) -> CollectResult:
    """One replies run for `entity` (see the module docstring). `actor` None is the daily task
    ("System"); a user needs "Processing: MAXSMS". A daily run that finds nothing writes no
    process-log entry; one a user started always does, so they see it ran."""
    if actor is not None and (not actor.has_right(Right.MAXSMS_PROCESSING) or actor.entity_id != entity.pk):
        raise PermissionDenied(f"You need the {Right.MAXSMS_PROCESSING.label} right of this entity.")
    if pulled is None and pull:
        pulled = replies_pull()
    now = timezone.now()
    result = CollectResult(process=None, pull=pulled)
    with transaction.atomic():
        pending = (InboundMessage.objects.select_for_update(skip_locked=True)
                   .filter(entity=entity, collected_at__isnull=True).order_by("id"))
        ids = list(pending.values_list("id", flat=True))
        if not ids and trigger == DAILY and not (pulled and pulled.errors):
            return result
        for start in range(0, len(ids), CHUNK):
            _match_chunk(entity, ids[start:start + CHUNK], now)
        counts = (InboundMessage.objects.filter(pk__in=ids).aggregate(
            clients=Count("id", filter=Q(client__isnull=False)), answered=Count("id", filter=Q(in_reply_to__isnull=False)),
            stops=Count("id", filter=Q(is_stop=True)))) if ids else {"clients": 0, "answered": 0, "stops": 0}
        result.collected, result.matched_clients = len(ids), counts["clients"]
        result.matched_messages, result.stops = counts["answered"], counts["stops"]
        result.errors = list(pulled.errors) if pulled else []
        criteria = {"trigger": trigger, "collected": result.collected, "matched_to_client": result.matched_clients,
                    "matched_to_message": result.matched_messages, "stop": result.stops}
        if pulled is not None:
            criteria.update({"pulled_from": pulled.gateways, "fetched": pulled.fetched, "new_from_fetch": pulled.stored})
        process = ProcessLog.objects.create(entity=entity, actor=actor if getattr(actor, "pk", None) else None,
                                            kind=RUN_KIND, message_type=MessageType.REPLY, criteria=criteria,
                                            errors=result.errors, finished_at=now)
        result.process = process
        recipients = [r for r in ReplyNotifyRecipient.objects.filter(entity=entity).select_related("user")
                      if r.user.is_active] if ids else []
        in_app = [r for r in recipients if r.in_app]
        ReplyNotice.objects.bulk_create([ReplyNotice(entity=entity, user=r.user, process=process, replies=len(ids),
                                                     stops=result.stops) for r in in_app])
        result.notified_in_app = len(in_app)
        audit_record(action=AuditAction.REPLIES_COLLECTED, actor=process.actor, entity=entity, target=process,
                     subject=trigger, after={**criteria, "errors": len(result.errors), "notified_in_app": len(in_app)})
    by_email = [r for r in recipients if r.by_email and r.user.email]
    if by_email:
        _email_notice(entity=entity, process=process, ids=ids, recipients=by_email, result=result)
    return result


def _match_chunk(entity: Entity, ids: list[int], now) -> None:
    """Client by number where the reply came without one, and the outbound message it answers;
    three UPDATE statements for the whole chunk."""
    chunk = InboundMessage.objects.filter(pk__in=ids)
    chunk.filter(client__isnull=True).update(client=Subquery(
        Client.objects.filter(entity=entity, cellphone=OuterRef("number")).order_by("id").values("id")[:1]))
    chunk.update(in_reply_to=Subquery(
        OutboxMessage.objects.filter(entity=entity, channel=Channel.SMS, number=OuterRef("number"),
                                     created_at__lte=OuterRef("received_at"))
        .order_by("-created_at", "-id").values("id")[:1]))
    chunk.update(collected_at=now)


def _safe(text: str) -> str:
    # A client's words must not be read as merge fields by the email template engine.
    return text.replace("{^", "{ ^").replace("^}", "^ }").replace("\r", " ").replace("\n", " ")


def _email_notice(*, entity: Entity, process: ProcessLog, ids: list[int], recipients, result: CollectResult) -> None:
    from .email.services import EmailRecipient, emails_send

    zone = zoneinfo.ZoneInfo(entity.time_zone)
    rows = (InboundMessage.objects.filter(pk__in=ids).select_related("client").order_by("received_at", "id")
            [:EMAIL_LIST_LIMIT])
    lines = []
    for m in rows:
        who = f"{m.client.display_name} ({m.client.number})" if m.client_id else "unknown number"
        lines.append(f"{m.received_at.astimezone(zone):%Y-%m-%d %H:%M} {m.number} {_safe(who)}: {_safe(m.text)}"
                     + (" [STOP: opted out of marketing]" if m.is_stop else ""))
    if len(ids) > EMAIL_LIST_LIMIT:
        lines.append(f"... and {len(ids) - EMAIL_LIST_LIMIT} more: see the Reply Detail report.")
    subject = f"{len(ids)} new SMS repl{'y' if len(ids) == 1 else 'ies'} for {_safe(entity.name)}"
    body = "\n".join([f"New SMS replies collected ({process.criteria.get('trigger', '')}):", "", *lines])
    for r in recipients:
        try:
            emails_send(actor=None, entity=entity, message_type=MessageType.REPLY, subject=subject, text=body,
                        recipients=[EmailRecipient(r.user.email)], idempotency_key=f"replies:{process.pk}:{r.user_id}",
                        kind="reply_notification", right=None, criteria={"replies_run": process.pk})
            result.notified_by_email += 1
        except ValidationError as exc:
            result.errors.append(f"Email to {r.user.username} not sent: {'; '.join(exc.messages)[:200]}")
    if result.errors != process.errors:
        process.errors = result.errors
        process.save(update_fields=["errors"])


def replies_collect_all(*, trigger: str = DAILY) -> list[CollectResult]:
    """The daily run: pull once from the aggregators, then collect for every active entity."""
    pulled = replies_pull()
    if pulled.errors:
        log.warning("replies pull: %s", "; ".join(pulled.errors))
    results = []
    for entity in Entity.objects.filter(is_active=True).order_by("pk"):
        results.append(replies_collect(entity=entity, actor=None, trigger=trigger, pull=False, pulled=pulled))
    return results


# ---------------------------------------------------------------------------------------------
# In-app notices


def reply_notices_unread(*, user) -> list[ReplyNotice]:
    return list(ReplyNotice.objects.filter(user=user, entity_id=user.entity_id, read_at__isnull=True)
                .order_by("-created_at", "-id")[:50])


def reply_notices_mark_read(*, user) -> int:
    return ReplyNotice.objects.filter(user=user, entity_id=user.entity_id, read_at__isnull=True).update(read_at=timezone.now())

