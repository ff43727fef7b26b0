"""Reads of the automatic SMS and the MIS SMS: who gets which automatic message on a day (set-based,
one grouped query per type), the MIS figures (through the home page's selectors and the same
definitions by branch), and the lists the screens show.

Definitions, the same as the loan book's (loans.selectors, web.selectors):
- arrears: what is unpaid on open instalments (loans on the book) due before the day; a client's
  arrears start on the oldest such due date;
- payment due: what is unpaid on open instalments due on a given date;
- loans issued on a day: loans paid out (agreement date) that day, in any disbursed status;
- receipts on a day: receipts not reversed with that value date;
- book outstanding: amount − paid over the open instalments.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Case, Count, DecimalField, F, Min, Q, QuerySet, Value, When

from imali.clients.models import Client, ClientStatus
from imali.core.money import from_cents, sum_cents
from imali.loans.models import DISBURSED_STATUSES, Instalment, Loan, Receipt
from imali.messaging.models import Channel, MessageType, OutboxMessage
from imali.tenancy.models import Entity

from .models import AutomaticSetup, DailyRun, MisRecipient, MisSetup


def _unpaid_instalments(entity: Entity) -> QuerySet[Instalment]:
    return Instalment.objects.filter(entity=entity, open=True, paid__lt=F("amount"))


def arrears_by_client(*, entity: Entity, day: dt.date, minimum: Decimal) -> QuerySet:
    """(client id, arrears in cents, oldest unpaid due ordinal) of every client owing at least
    `minimum` in arrears on `day`, in one grouped query."""
    return (_unpaid_instalments(entity).filter(due_ord__lt=day.toordinal()).values("client")
            .annotate(cents=sum_cents(F("amount") - F("paid")), oldest=Min("due_ord"))
            .filter(cents__gte=int(minimum * 100)).values_list("client", "cents", "oldest"))


def due_on_by_client(*, entity: Entity, due_date: dt.date) -> QuerySet:
    """(client id, amount due in cents) of every client with something unpaid due on `due_date`."""
    return (_unpaid_instalments(entity).filter(due_ord=due_date.toordinal()).values("client")
            .annotate(cents=sum_cents(F("amount") - F("paid"))).filter(cents__gt=0).values_list("client", "cents"))


# How far back the "Payment received" SMS looks for receipts not yet messaged: a receipt captured
# after the day's run, or back-dated, is still reached by the next run (keyed on the receipt, so
# never twice), while a receipt older than this is left alone rather than thanked for weeks late.
RECEIVED_WINDOW_DAYS = 3


def received_to_notify(*, entity: Entity, now: dt.datetime, today: dt.date) -> QuerySet:
    """Receipts (not reversed) of clients in good standing (DOMAIN §5: Good, new loans allowed)
    captured within RECEIVED_WINDOW_DAYS of `now`, with a value date no older than that before
    `today`, whose "Payment received" SMS is not yet in the outbox — one query: (receipt id,
    client id, amount, then the client columns of `client_rows`)."""
    from django.db.models import CharField, Exists, OuterRef
    from django.db.models.functions import Cast, Concat

    since = today - dt.timedelta(days=RECEIVED_WINDOW_DAYS)
    sent = OutboxMessage.objects.filter(entity=entity, idempotency_key=OuterRef("notice_key"))
    return (Receipt.objects.filter(entity=entity, is_reversed=False, value_date__gte=since,
                                   created_at__gte=now - dt.timedelta(days=RECEIVED_WINDOW_DAYS),
                                   client__status=ClientStatus.GOOD, client__new_loans_allowed=True)
            .annotate(notice_key=Concat(Value(RECEIVED_KEY_PREFIX), Cast("id", CharField()), output_field=CharField()))
            .exclude(Exists(sent))
            .order_by("id")
            .values_list("id", "client_id", "amount", "client__number", "client__name", "client__full_names",
                         "client__surname", "client__cellphone", "client__branch__name", "client__branch__telephone"))


# The outbox key of a receipt's "Payment received" SMS is this prefix and the receipt id.
RECEIVED_KEY_PREFIX = "auto:payment_received:r"


def client_rows(clients: QuerySet[Client]):
    """The columns a client's message needs, streamed: (id, number, name, full names, surname,
    cellphone, branch name, branch telephone)."""
    return clients.values_list("id", "number", "name", "full_names", "surname", "cellphone", "branch__name",
                               "branch__telephone").order_by().iterator(chunk_size=5000)


def birthday_clients(*, entity: Entity, day: dt.date) -> QuerySet[Client]:
    """Clients born on `day`'s month and day; those born on 29 February are greeted on the 28th in
    other years."""
    born = Q(date_of_birth__month=day.month, date_of_birth__day=day.day)
    if day.month == 2 and day.day == 28 and not _leap(day.year):
        born |= Q(date_of_birth__month=2, date_of_birth__day=29)
    return Client.objects.filter(born, entity=entity).exclude(status=ClientStatus.DECEASED)


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


# --- MIS figures ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Figures:
    """What a manager reads each morning about `day` (the day before the MIS SMS goes)."""

    day: dt.date
    loans_issued: int
    loans_issued_value: Decimal
    receipts: int
    receipts_value: Decimal
    arrears_clients: int
    arrears_value: Decimal
    outstanding: Decimal


def arrears_clients_count(*, entity: Entity, as_of: dt.date, branch_id: int | None = None) -> int:
    """Clients with something unpaid on an open instalment due before `as_of`."""
    qs = _unpaid_instalments(entity).filter(due_ord__lt=as_of.toordinal())
    if branch_id is not None:
        qs = qs.filter(client__branch_id=branch_id)
    return qs.values("client").distinct().count()


def entity_figures(*, entity: Entity, day: dt.date) -> Figures:
    """The entity's figures for `day`, read through the home page's selector (web.selectors.book_morning):
    loans issued and receipts of `day`, and the book and its arrears at the start of the next day."""
    from imali.web.selectors import book_morning

    of_day = book_morning(entity=entity, today=day)
    next_morning = book_morning(entity=entity, today=day + dt.timedelta(days=1))
    return Figures(day=day, loans_issued=of_day.disbursements_today.count,
                   loans_issued_value=of_day.disbursements_today.amount,
                   receipts=of_day.collections_today.count, receipts_value=of_day.collections_today.amount,
                   arrears_clients=arrears_clients_count(entity=entity, as_of=day + dt.timedelta(days=1)),
                   arrears_value=next_morning.arrears_total, outstanding=next_morning.outstanding)


@dataclass(frozen=True)
class MonthFigures:
    month: dt.date  # its first day
    loans_issued: int
    loans_issued_value: Decimal
    receipts: int
    receipts_value: Decimal
    arrears_clients: int
    arrears_value: Decimal
    outstanding: Decimal


def month_figures(*, entity: Entity, month_end: dt.date) -> MonthFigures:
    """The month ending on `month_end`: loans issued and receipts in it (the home page's month to
    date on its last day), and the book and its arrears the morning after."""
    from imali.web.selectors import book_morning

    of_month = book_morning(entity=entity, today=month_end)
    after = month_end + dt.timedelta(days=1)
    next_morning = book_morning(entity=entity, today=after)
    return MonthFigures(month=month_end.replace(day=1), loans_issued=of_month.disbursements_month.count,
                        loans_issued_value=of_month.disbursements_month.amount,
                        receipts=of_month.collections_month.count, receipts_value=of_month.collections_month.amount,
                        arrears_clients=arrears_clients_count(entity=entity, as_of=after),
                        arrears_value=next_morning.arrears_total, outstanding=next_morning.outstanding)


def branch_figures(*, entity: Entity, day: dt.date) -> dict[int, Figures]:
    """The same figures as `entity_figures`, per branch of the client, in three grouped queries
    (loans, receipts, open instalments). Every branch of the entity has an entry."""
    after = (day + dt.timedelta(days=1)).toordinal()
    issued = {b: (n, c) for b, n, c in Loan.objects.filter(entity=entity, status__in=DISBURSED_STATUSES, disbursed_on=day)
              .values("client__branch").annotate(n=Count("id"), c=sum_cents("principal"))
              .values_list("client__branch", "n", "c")}
    received = {b: (n, c) for b, n, c in Receipt.objects.filter(entity=entity, value_date=day, is_reversed=False)
                .values("client__branch").annotate(n=Count("id"), c=sum_cents("amount"))
                .values_list("client__branch", "n", "c")}
    owing = F("amount") - F("paid")
    late = Q(due_ord__lt=after)
    book = {b: (o, a, n) for b, o, a, n in _unpaid_instalments(entity).values("client__branch").annotate(
        o=sum_cents(owing), a=sum_cents(_only_when(late, owing)), n=Count("client", distinct=True, filter=late))
        .values_list("client__branch", "o", "a", "n")}
    figures = {}
    for branch_id in entity.branches.values_list("id", flat=True):
        n_issued, c_issued = issued.get(branch_id, (0, 0))
        n_received, c_received = received.get(branch_id, (0, 0))
        outstanding, arrears, arrears_n = book.get(branch_id, (0, 0, 0))
        figures[branch_id] = Figures(day=day, loans_issued=n_issued, loans_issued_value=from_cents(c_issued),
                                     receipts=n_received, receipts_value=from_cents(c_received),
                                     arrears_clients=arrears_n, arrears_value=from_cents(arrears),
                                     outstanding=from_cents(outstanding))
    return figures


def _only_when(condition: Q, value):
    return Case(When(condition, then=value), default=Value(Decimal("0.00")),
                output_field=DecimalField(max_digits=14, decimal_places=2))


# --- Lists -----------------------------------------------------------------------------------------

def recent_runs(*, entity: Entity, limit: int = 20) -> QuerySet[DailyRun]:
    return DailyRun.objects.filter(entity=entity).order_by("-business_date", "kind")[:limit]


def automatic_setup_of(*, entity: Entity) -> AutomaticSetup:
    """The entity's automatic SMS setup for reading (a screen, the API): its row, or the defaults
    unsaved. Reading writes nothing; the row is made by the first change (services)."""
    return AutomaticSetup.objects.filter(entity=entity).select_related("updated_by").first() or AutomaticSetup(entity=entity)


def mis_setup_of(*, entity: Entity) -> MisSetup:
    """The entity's MIS SMS setup for reading: its row, or the defaults unsaved (see automatic_setup_of)."""
    return MisSetup.objects.filter(entity=entity).select_related("updated_by").first() or MisSetup(entity=entity)


def mis_recipients(*, entity: Entity, stream: str) -> QuerySet:
    return MisRecipient.objects.filter(entity=entity, stream=stream, user__entity=entity, user__is_active=True)


@dataclass(frozen=True)
class MisDetailFilters:
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    stream: str | None = None
    status: str | None = None
    user_id: int | None = None


def mis_detail_list(*, entity: Entity, filters: MisDetailFilters) -> QuerySet[OutboxMessage]:
    """The MIS SMS sent to the entity's users, newest first, with the recipient user."""
    from imali.messaging.reports import local_range

    qs = OutboxMessage.objects.filter(entity=entity, channel=Channel.SMS, message_type=MessageType.MIS)
    start, end = local_range(entity, filters.date_from, filters.date_to)
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    if end is not None:
        qs = qs.filter(created_at__lt=end)
    if filters.stream:
        qs = qs.filter(idempotency_key__startswith=f"mis:{filters.stream}:")
    if filters.status:
        qs = qs.filter(status=filters.status)
    if filters.user_id is not None:
        qs = qs.filter(user_id=filters.user_id)
    return qs.select_related("user").order_by("-created_at", "-id")


def stream_of_key(key: str) -> str:
    """The MIS stream an outbox key names ("mis:<stream>:...")."""
    parts = key.split(":")
    return parts[1] if len(parts) > 2 and parts[0] == "mis" else ""
