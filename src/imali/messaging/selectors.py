"""Reads of messaging that screens and reports use: set-based, one query each."""

from __future__ import annotations

import datetime as dt

from django.db.models import Count, Q, QuerySet

from imali.tenancy.models import Entity

from .models import InboundMessage, OutboxMessage, OutboxStatus, ProcessLog


def outbox_claim_order() -> QuerySet[OutboxMessage]:
    """The order consumers send in: OTP first, then transactional, then bulk; oldest first within each."""
    return OutboxMessage.objects.filter(status=OutboxStatus.QUEUED).order_by("priority", "next_attempt_at", "id")


def client_sms_history(*, entity: Entity, client_id: int) -> QuerySet[OutboxMessage]:
    return (OutboxMessage.objects.filter(entity=entity, client_id=client_id)
            .select_related("created_by").order_by("-created_at", "-id"))


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
