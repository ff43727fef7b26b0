"""Reads of messaging that screens and reports use: set-based, one query each."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from imali.tenancy.models import Entity

from .models import Channel, InboundMessage, OutboxMessage, OutboxStatus, ProcessLog


def outbox_claim_order() -> QuerySet[OutboxMessage]:
    """The order consumers send in: OTP first, then transactional, then bulk; oldest first within each."""
    return OutboxMessage.objects.filter(status=OutboxStatus.QUEUED).order_by("priority", "next_attempt_at", "id")


def client_sms_history(*, entity: Entity, client_id: int) -> QuerySet[OutboxMessage]:
    return (OutboxMessage.objects.filter(entity=entity, client_id=client_id, channel=Channel.SMS)
            .select_related("created_by").order_by("-created_at", "-id"))


# The four states the client SMS history shows (DOMAIN §3). An expired message was never
# delivered and a cancelled one never left: to the reader both failed, and Response says why.
HISTORY_STATUS = {
    OutboxStatus.QUEUED: "Queued",
    OutboxStatus.SUBMITTED: "Sent",
    OutboxStatus.DELIVERED: "Delivered",
    OutboxStatus.FAILED: "Failed",
    OutboxStatus.EXPIRED: "Failed",
    OutboxStatus.CANCELLED: "Failed",
}


SCHEDULED = "Scheduled"


def is_scheduled(*, status: str, scheduled_for: dt.datetime | None, now: dt.datetime) -> bool:
    """A queued message waiting for the direct-marketing hours (CPA Regulation 4) to open."""
    return status == OutboxStatus.QUEUED and scheduled_for is not None and scheduled_for > now


def status_label(*, status: str, scheduled_for: dt.datetime | None, now: dt.datetime) -> str:
    """The history's word for a message: Scheduled / Queued / Sent / Delivered / Failed."""
    if is_scheduled(status=status, scheduled_for=scheduled_for, now=now):
        return SCHEDULED
    return HISTORY_STATUS.get(status, OutboxStatus(status).label if status in OutboxStatus.values else status)


def scheduled_response(*, scheduled_for: dt.datetime, tz) -> str:
    return f"Scheduled for {scheduled_for.astimezone(tz):%Y-%m-%d %H:%M} (direct-marketing hours)"


@dataclass(frozen=True)
class SmsHistoryRow:
    id: int
    date: str  # in the entity's time zone
    time: str
    type: str
    message: str
    status: str  # Scheduled / Queued / Sent / Delivered / Failed
    response: str
    user: str  # "System" for automated messages


def _response(m: OutboxMessage) -> str:
    """The provider's answer or the error, as a user reads it."""
    if m.status == OutboxStatus.QUEUED:
        return f"Waiting to be sent, attempt {m.attempts + 1}: {m.error}" if m.error else "Waiting to be sent"
    # People words: which gateway took it and the reference it gave, e.g. "Accepted by the SMS
    # gateway (local-smsc), reference 3".
    accepted = f"accepted by the SMS gateway ({m.gateway})" + (
        f", reference {m.provider_message_id}" if m.provider_message_id else "")
    if m.status == OutboxStatus.SUBMITTED:
        return "A" + accepted[1:] + "; awaiting the delivery report"
    if m.status == OutboxStatus.DELIVERED:
        return f"Delivered to the handset ({accepted})"
    if m.status == OutboxStatus.EXPIRED:
        return f"Expired: {m.error}" if m.error else "Expired before it could be sent"
    if m.status == OutboxStatus.CANCELLED:
        return m.error.capitalize() if m.error else "Cancelled"
    return m.error or "Failed"


def _user_label(user) -> str:
    if user is None:
        return "System"
    return user.get_full_name() or user.username


def sms_history_rows(*, entity: Entity, messages: Iterable[OutboxMessage]) -> list[SmsHistoryRow]:
    """The client SMS history's columns for `messages` (read with `created_by`), dates and times in
    the entity's time zone."""
    tz = zoneinfo.ZoneInfo(entity.time_zone)
    now = timezone.now()
    rows = []
    for m in messages:
        local = m.created_at.astimezone(tz)
        scheduled = is_scheduled(status=m.status, scheduled_for=m.scheduled_for, now=now)
        rows.append(SmsHistoryRow(m.pk, local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S"), m.get_message_type_display(),
                                  m.text, SCHEDULED if scheduled else HISTORY_STATUS.get(m.status, m.get_status_display()),
                                  scheduled_response(scheduled_for=m.scheduled_for, tz=tz) if scheduled else _response(m),
                                  _user_label(m.created_by)))
    return rows


def outbox_list(*, entity: Entity, status: str | None = None, number: str | None = None) -> QuerySet[OutboxMessage]:
    qs = OutboxMessage.objects.filter(entity=entity).select_related("client", "created_by")
    if status:
        qs = qs.filter(status=status)
    if number:
        qs = qs.filter(number__contains=number)
    return qs.order_by("-created_at", "-id")


def outbox_status_counts(*, entity: Entity) -> dict[str, int]:
    return dict(OutboxMessage.objects.filter(entity=entity).values_list("status").annotate(n=Count("id")).values_list("status", "n"))


def process_log_list(*, entity: Entity, start: dt.datetime | None = None, end: dt.datetime | None = None) -> QuerySet[ProcessLog]:
    qs = ProcessLog.objects.filter(entity=entity).select_related("actor")
    if start is not None:
        qs = qs.filter(started_at__gte=start)
    if end is not None:
        qs = qs.filter(started_at__lt=end)
    return qs


def inbound_list(*, entity: Entity) -> QuerySet[InboundMessage]:
    return InboundMessage.objects.filter(entity=entity).select_related("client", "user")


def delivery_summary(*, entity: Entity, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    qs = OutboxMessage.objects.filter(entity=entity, created_at__gte=start, created_at__lt=end)
    return qs.aggregate(total=Count("id"), delivered=Count("id", filter=Q(status=OutboxStatus.DELIVERED)),
                        failed=Count("id", filter=Q(status__in=[OutboxStatus.FAILED, OutboxStatus.EXPIRED])))


def balances_by_entity() -> list[dict]:
    """For the operator: every entity with its SMS and email credits left, in two queries."""
    from django.db.models import OuterRef, Subquery

    from .models import CreditEntry

    def latest(channel):
        return Subquery(CreditEntry.objects.filter(entity=OuterRef("pk"), account__channel=channel)
                        .order_by("-id").values("balance_after")[:1])

    rows = Entity.objects.filter(is_active=True).annotate(sms=latest("sms"), email=latest("email")).values("id", "name", "code", "sms", "email")
    return [{**r, "sms": r["sms"] or 0, "email": r["email"] or 0} for r in rows]


# -- the operator's SMS gateways ----------------------------------------------------------------
@dataclass(frozen=True)
class GatewayState:
    """A gateway's live state in people's words: "connected", "down" (with `problem`), "stale"
    (no process has reported it lately: last seen `seen_at`) or "unseen"."""

    state: str
    problem: str = ""
    seen_at: dt.datetime | None = None
    since: dt.datetime | None = None


@dataclass(frozen=True)
class GatewayRow:
    gateway: object
    address: str
    routes: list[tuple[int, str]]  # (route id, in words)
    live: GatewayState


def gateway_state(health_rows, *, now: dt.datetime) -> GatewayState:
    """One state from the rows the processes wrote (the dispatcher's sessions, the receiver's):
    down when any current one is down, so a transmitter bound beside a refused receiver shows the
    refusal."""
    from .gateways import STALE_SECONDS

    rows = list(health_rows)
    if not rows:
        return GatewayState("unseen")
    seen = max(r.seen_at for r in rows)
    current = [r for r in rows if (now - r.seen_at).total_seconds() <= STALE_SECONDS]
    if not current:
        return GatewayState("stale", seen_at=seen)
    down = [r for r in current if not r.connected]
    if down:
        worst = min(down, key=lambda r: r.changed_at)
        return GatewayState("down", problem=worst.problem or "not bound", seen_at=seen, since=worst.changed_at)
    return GatewayState("connected", seen_at=seen, since=max(r.changed_at for r in current))


def gateways_overview(*, now: dt.datetime | None = None) -> list[GatewayRow]:
    """Every gateway with its routes and live state: three queries whatever the number."""
    from .gateways import route_words
    from .models import Gateway

    now = now or timezone.now()
    gateways = Gateway.objects.order_by("-is_active", "name").prefetch_related("health", "routes__entity")
    out = []
    for g in gateways:
        routes = [(r.pk, route_words(r)) for r in sorted(g.routes.all(), key=lambda r: (r.rank, r.id))]
        address = g.base_url if g.is_http else f"{g.host}:{g.port}"
        out.append(GatewayRow(g, address, routes, gateway_state(g.health.all(), now=now)))
    return out
