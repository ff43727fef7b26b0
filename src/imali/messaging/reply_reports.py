"""The Reply Detail report (right "Reports: Reply Detail"): the entity's SMS replies with the client
they came from and the outbound message they answer, filtered, listed in one query per page and
exported whole as CSV or XLSX (the SMS Detail report's helpers and audit)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass

from django.db.models import Count, Max, QuerySet

from imali.tenancy.models import Entity

from .models import InboundMessage, MessageType
from .reports import EXPORT_CHUNK_ROWS, ExportSnapshot, entity_zone, local_range, number_fragment

YES, NO = "yes", "no"

REPLY_DETAIL_HEADER = ["Date", "Time", "Number", "Client no.", "Client", "Reply", "STOP", "Answers (type)",
                       "Answered message", "Answered on", "Collected", "Gateway"]
# Free text (names, the reply, the message answered): kept as text in exports, never a formula.
REPLY_DETAIL_TEXT_COLUMNS = frozenset({4, 5, 8})

_TYPE_LABELS = dict(MessageType.choices)


@dataclass(frozen=True)
class ReplyDetailFilters:
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    number: str | None = None
    client_matched: str | None = None  # "yes" / "no"
    stop: str | None = None  # "yes" / "no"
    answered_type: str | None = None  # the message type of the SMS answered
    collected: str | None = None  # "yes": taken by a replies run; "no": new since the last run

    def as_record(self) -> dict:
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in asdict(self).items() if v not in (None, "")}


def _filtered(*, entity: Entity, filters: ReplyDetailFilters) -> QuerySet[InboundMessage]:
    f = filters
    qs = InboundMessage.objects.filter(entity=entity)
    start, end = local_range(entity, f.date_from, f.date_to)
    if start is not None:
        qs = qs.filter(received_at__gte=start)
    if end is not None:
        qs = qs.filter(received_at__lt=end)
    if f.number:
        qs = qs.filter(number__contains=number_fragment(f.number))
    if f.client_matched in (YES, NO):
        qs = qs.filter(client__isnull=f.client_matched == NO)
    if f.stop in (YES, NO):
        qs = qs.filter(is_stop=f.stop == YES)
    if f.answered_type:
        qs = qs.filter(in_reply_to__message_type=f.answered_type)
    if f.collected in (YES, NO):
        qs = qs.filter(collected_at__isnull=f.collected == NO)
    return qs


_VALUES = ("id", "received_at", "number", "text", "is_stop", "incomplete", "gateway", "collected_at", "client_id",
           "client__number", "client__name", "client__surname", "in_reply_to_id", "in_reply_to__message_type",
           "in_reply_to__text", "in_reply_to__created_at")


def reply_detail_count(*, entity: Entity, filters: ReplyDetailFilters) -> int:
    return _filtered(entity=entity, filters=filters).count()


def reply_detail_list(*, entity: Entity, filters: ReplyDetailFilters, up_to_id: int | None = None) -> QuerySet:
    qs = _filtered(entity=entity, filters=filters)
    if up_to_id is not None:
        qs = qs.filter(id__lte=up_to_id)
    return qs.values(*_VALUES).order_by("-received_at", "-id")


@dataclass(frozen=True)
class ReplyDetailRow:
    id: int
    received_at: dt.datetime
    date: dt.date
    time: dt.time
    number: str
    client_id: int | None
    client_number: int | None
    client: str
    reply: str
    stop: bool
    answered_id: int | None
    answered_type: str
    answered_type_label: str
    answered_text: str
    answered_at: str  # local "YYYY-MM-DD HH:MM", empty when no message was matched
    collected: str  # local "YYYY-MM-DD HH:MM", or "New"
    gateway: str

    def cells(self) -> list:
        return [self.date, self.time.strftime("%H:%M:%S"), self.number, self.client_number, self.client, self.reply,
                "Yes" if self.stop else "", self.answered_type_label, self.answered_text, self.answered_at,
                self.collected, self.gateway]


def reply_detail_row(values: dict, zone) -> ReplyDetailRow:
    local = values["received_at"].astimezone(zone)
    client = " ".join(p for p in (values["client__name"], values["client__surname"]) if p) if values["client_id"] else ""
    answered_at = values["in_reply_to__created_at"]
    collected = values["collected_at"]
    reply = values["text"] + (" [incomplete]" if values["incomplete"] else "")
    return ReplyDetailRow(
        id=values["id"], received_at=values["received_at"], date=local.date(), time=local.time().replace(microsecond=0),
        number=values["number"], client_id=values["client_id"], client_number=values["client__number"], client=client,
        reply=reply, stop=values["is_stop"], answered_id=values["in_reply_to_id"],
        answered_type=values["in_reply_to__message_type"] or "",
        answered_type_label=_TYPE_LABELS.get(values["in_reply_to__message_type"], "") if values["in_reply_to_id"] else "",
        answered_text=values["in_reply_to__text"] or "",
        answered_at=f"{answered_at.astimezone(zone):%Y-%m-%d %H:%M}" if answered_at else "",
        collected=f"{collected.astimezone(zone):%Y-%m-%d %H:%M}" if collected else "New", gateway=values["gateway"])


def reply_detail_rows(values: Iterable[dict], *, entity: Entity) -> Iterator[ReplyDetailRow]:
    zone = entity_zone(entity)
    for v in values:
        yield reply_detail_row(v, zone)


def reply_detail_snapshot(*, entity: Entity, filters: ReplyDetailFilters) -> ExportSnapshot:
    agg = _filtered(entity=entity, filters=filters).aggregate(rows=Count("id"), last=Max("id"))
    return ExportSnapshot(agg["rows"], agg["last"] if agg["last"] is not None else 0)


def reply_detail_export_rows(*, entity: Entity, filters: ReplyDetailFilters, snapshot: ExportSnapshot) -> Iterator[list]:
    values = reply_detail_list(entity=entity, filters=filters, up_to_id=snapshot.up_to_id).iterator(chunk_size=EXPORT_CHUNK_ROWS)
    for row in reply_detail_rows(values, entity=entity):
        yield row.cells()
