"""Reads for the SMS-banking screens and the branch manager's phone pages; entity first, one
query per list."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import F, Q, QuerySet

from imali.core.money import aggregate_money
from imali.loans.models import OPEN_STATUSES, Instalment, Loan, LoanStatus, Receipt
from imali.loans.services import local_today
from imali.messaging.models import OutboxMessage, OutboxStatus
from imali.tenancy.models import Entity, User

from .models import (
    BankingRequest,
    CollectionSheet,
    CollectionStatus,
    FieldCollection,
    KeywordAlias,
    PaymentProvider,
    ProviderPayment,
)


def collection_list(*, entity: Entity, status: str | None = CollectionStatus.UNVERIFIED, branch_id: int | None = None
                    ) -> QuerySet[FieldCollection]:
    qs = (FieldCollection.objects.filter(entity=entity).select_related("client", "officer", "loan", "decided_by", "receipt")
          .order_by("created_at", "id"))
    if status:
        qs = qs.filter(status=status)
    if branch_id:
        qs = qs.filter(client__branch_id=branch_id)
    return qs


def provider_payment_list(*, entity: Entity, status: str | None = CollectionStatus.UNVERIFIED,
                          branch_id: int | None = None) -> QuerySet[ProviderPayment]:
    """`branch_id`: the notices of that branch's clients, and those that matched no client (any
    branch may be the one to sort them out)."""
    qs = (ProviderPayment.objects.filter(entity=entity).select_related("provider", "client", "decided_by")
          .order_by("created_at", "id"))
    if branch_id:
        qs = qs.filter(Q(client__branch_id=branch_id) | Q(client__isnull=True))
    return qs.filter(status=status) if status else qs


def sheet_list(*, entity: Entity) -> QuerySet[CollectionSheet]:
    return CollectionSheet.objects.filter(entity=entity).select_related("officer", "created_by")


def sheet_get(*, entity: Entity, sheet_id: int) -> CollectionSheet:
    return CollectionSheet.objects.select_related("officer").get(entity=entity, pk=sheet_id)


def officers(*, entity: Entity) -> QuerySet[User]:
    """Users who can receive a sheet's code: active, with a cellphone."""
    return User.objects.filter(entity=entity, is_active=True).exclude(cellphone="").order_by("first_name", "last_name", "username")


def request_list(*, entity: Entity) -> QuerySet[BankingRequest]:
    return BankingRequest.objects.filter(entity=entity).select_related("inbound", "reply")


def alias_list(*, entity: Entity) -> QuerySet[KeywordAlias]:
    return KeywordAlias.objects.filter(entity=entity)


def provider_list(*, entity: Entity) -> QuerySet[PaymentProvider]:
    return PaymentProvider.objects.filter(entity=entity)


def pending_applications(*, entity: Entity, branch_id: int | None = None) -> QuerySet[Loan]:
    qs = (Loan.objects.filter(entity=entity, status=LoanStatus.APPLICATION).select_related("client", "product")
          .order_by("applied_on", "id"))
    if branch_id:
        qs = qs.filter(client__branch_id=branch_id)
    return qs


@dataclass(frozen=True)
class BranchStatus:
    day: dt.date
    disbursed: Decimal
    disbursed_count: int
    collected: Decimal
    receipts_count: int
    arrears: Decimal
    sms_sent: int
    pending_applications: int
    pending_collections: int


def branch_status(*, entity: Entity, branch_id: int | None = None) -> BranchStatus:
    """Today's figures (the entity's local day) for one branch, or the whole entity. SMS count the
    entity's messages created today that left for the network (SMS carry no branch)."""
    today = local_today(entity)
    branch = {"client__branch_id": branch_id} if branch_id else {}
    loans = Loan.objects.filter(entity=entity, disbursed_on=today, **branch)
    receipts = Receipt.objects.filter(entity=entity, value_date=today, is_reversed=False, **branch)
    overdue = Instalment.objects.filter(entity=entity, open=True, loan__status__in=OPEN_STATUSES, due_date__lt=today,
                                        paid__lt=F("amount"), **branch)
    start = dt.datetime.combine(today, dt.time.min, tzinfo=ZoneInfo(entity.time_zone))
    return BranchStatus(
        day=today,
        disbursed=aggregate_money(loans, total=F("principal"))["total"],
        disbursed_count=loans.count(),
        collected=aggregate_money(receipts, total=F("amount"))["total"],
        receipts_count=receipts.count(),
        arrears=aggregate_money(overdue, total=F("amount") - F("paid"))["total"],
        sms_sent=OutboxMessage.objects.filter(entity=entity, created_at__gte=start,
                                              status__in=[OutboxStatus.SUBMITTED, OutboxStatus.DELIVERED]).count(),
        pending_applications=pending_applications(entity=entity, branch_id=branch_id).count(),
        pending_collections=collection_list(entity=entity, branch_id=branch_id).count(),
    )
