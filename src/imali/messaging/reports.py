"""Messaging reports: messages per local day by status and the delivery rate (the usage screen),
the SMS Detail report, the process log, and their streamed CSV / XLSX exports.

Reads are set-based: the per-day chart is one grouped query, a report page is a count and a
slice, an export is one server-side cursor read in chunks. "Daily" means the entity's local day:
day boundaries are computed here in Python (zoneinfo, so a daylight-saving zone gets its 23- or
25-hour days right) and the database only compares timestamps with them, which SQLite and
PostgreSQL do alike.
"""

from __future__ import annotations

import csv
import datetime as dt
import tempfile
import zoneinfo
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Case, CharField, Count, IntegerField, Max, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.tenancy.models import Entity

from .models import (
    Channel,
    MessageType,
    OutboxMessage,
    OutboxStatus,
    ProcessLog,
    criteria_label,
    process_kind_label,
)
from .selectors import SCHEDULED, is_scheduled, scheduled_response

# Rows an export reads per round trip: large enough to keep the round trips few, small enough
# that memory stays flat whatever the number of rows.
EXPORT_CHUNK_ROWS = 2000
# Bytes gathered before a piece of a streamed file is handed to the server.
STREAM_PIECE_BYTES = 64 * 1024
# An XLSX file is assembled in memory up to this size, on disk beyond it.
XLSX_SPOOL_BYTES = 8 * 1024 * 1024
# The chart draws one bar per day; a longer range would be unreadable and the day CASE long.
CHART_MAX_DAYS = 366
CHART_DEFAULT_DAYS = 30


# --- Local days -------------------------------------------------------------------------------


def entity_zone(entity: Entity) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(entity.time_zone)


def local_midnight(entity: Entity, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=entity_zone(entity))


def local_range(entity: Entity, first: dt.date | None, last: dt.date | None) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start of `first`, start of the day after `last`) in the entity's time zone; None = open."""
    return (local_midnight(entity, first) if first else None,
            local_midnight(entity, last + dt.timedelta(days=1)) if last else None)


def local_today(entity: Entity, now: dt.datetime | None = None) -> dt.date:
    return (now or dt.datetime.now(dt.UTC)).astimezone(entity_zone(entity)).date()


# --- Messages per day by status, and the delivery rate ----------------------------------------

@dataclass(frozen=True)
class Series:
    key: str
    label: str
    statuses: tuple[str, ...]


# The client-history vocabulary (Queued / Sent / Delivered / Failed). Expired messages gave up
# after retries and never reached the phone: Failed. Cancelled ones were withdrawn before they
# were sent, which is no outcome of sending, so they get their own series.
SERIES = (
    Series("queued", "Queued", (OutboxStatus.QUEUED,)),
    Series("sent", "Sent", (OutboxStatus.SUBMITTED,)),
    Series("delivered", "Delivered", (OutboxStatus.DELIVERED,)),
    Series("failed", "Failed", (OutboxStatus.FAILED, OutboxStatus.EXPIRED)),
    Series("cancelled", "Cancelled", (OutboxStatus.CANCELLED,)),
)
_SERIES_OF_STATUS = {status: s.key for s in SERIES for status in s.statuses}

DELIVERY_RATE_DEFINITION = (
    "Delivery rate = Delivered ÷ (Delivered + Failed): of the messages whose outcome is known, the "
    "share the network confirmed on the phone. Failed includes messages that expired after retries. "
    "Queued and Sent messages (no receipt yet) and cancelled ones are left out.")


@dataclass
class DayCounts:
    day: dt.date
    counts: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def in_series_order(self) -> list[int]:
        return [self.counts[s.key] for s in SERIES]


@dataclass
class DailyUsage:
    first: dt.date
    last: dt.date
    days: list[DayCounts]
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def sent(self) -> int:
        """Messages of the period except those cancelled before sending."""
        return self.total - self.totals["cancelled"]

    @property
    def totals_in_series_order(self) -> list[int]:
        return [self.totals[s.key] for s in SERIES]

    @property
    def finished(self) -> int:
        return self.totals["delivered"] + self.totals["failed"]

    @property
    def delivery_rate(self) -> Decimal | None:
        """Delivered ÷ (Delivered + Failed) as a percentage with one decimal; None when nothing finished."""
        if not self.finished:
            return None
        return (Decimal(100) * self.totals["delivered"] / self.finished).quantize(Decimal("0.1"), ROUND_HALF_UP)

    @property
    def peak(self) -> int:
        return max((d.total for d in self.days), default=0)


def local_day_bounds(entity: Entity, first: dt.date, last: dt.date) -> list[dt.datetime]:
    """The local midnights from `first` to the day after `last`: n days have n + 1 bounds."""
    n = (last - first).days + 1
    return [local_midnight(entity, first + dt.timedelta(days=i)) for i in range(n + 1)]


def messages_per_day(*, entity: Entity, first: dt.date, last: dt.date) -> DailyUsage:
    """SMS created on each local day from `first` to `last`, counted by their status now: one query
    grouped by (day ordinal, status). The ordinal is a CASE over the day bounds, so the database
    never converts time zones."""
    if last < first:
        raise ValueError("last must not be before first")
    if (last - first).days + 1 > CHART_MAX_DAYS:
        raise ValueError(f"at most {CHART_MAX_DAYS} days")
    bounds = local_day_bounds(entity, first, last)
    ordinal = Case(*[When(created_at__lt=bound, then=Value(i)) for i, bound in enumerate(bounds[1:])],
                   output_field=IntegerField())
    grouped = (OutboxMessage.objects
               .filter(entity=entity, channel=Channel.SMS, created_at__gte=bounds[0], created_at__lt=bounds[-1])
               .annotate(day_ordinal=ordinal).values("day_ordinal", "status")
               .annotate(n=Count("id")).order_by())
    days = [DayCounts(first + dt.timedelta(days=i), {s.key: 0 for s in SERIES}) for i in range(len(bounds) - 1)]
    totals = {s.key: 0 for s in SERIES}
    for row in grouped:
        key = _SERIES_OF_STATUS.get(row["status"])
        if key is None:
            continue
        days[row["day_ordinal"]].counts[key] += row["n"]
        totals[key] += row["n"]
    return DailyUsage(first=first, last=last, days=days, totals=totals)


def sms_sent_count(*, entity: Entity, start: dt.datetime, end: dt.datetime | None = None) -> int:
    """SMS written to the outbox in [start, end), whatever became of them, except those cancelled
    before sending: "sent this month" on the usage screen."""
    qs = OutboxMessage.objects.filter(entity=entity, channel=Channel.SMS, created_at__gte=start).exclude(
        status=OutboxStatus.CANCELLED)
    if end is not None:
        qs = qs.filter(created_at__lt=end)
    return qs.count()


# --- SMS Detail report ------------------------------------------------------------------------

SYSTEM_USER = "system"


@dataclass(frozen=True)
class SmsDetailFilters:
    """What the SMS Detail report is narrowed by. Dates are the entity's local days, inclusive.
    `user` is a user id, SYSTEM_USER for automated messages, or None for everyone."""

    message_type: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    status: str | None = None
    branch_id: int | None = None
    user: int | str | None = None
    number: str | None = None

    def as_record(self) -> dict:
        """The filters as the audit entry of an export records them."""
        return {k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in asdict(self).items() if v not in (None, "")}


SMS_DETAIL_HEADER = ["Date", "Time", "Client no.", "Client", "Number", "Type", "Message", "Status", "Segments",
                     "Credits", "Response", "User", "Branch"]
# Columns holding free text (names, message text, errors): kept as text in exports.
SMS_DETAIL_TEXT_COLUMNS = frozenset({3, 6, 10, 11, 12})

_TYPE_LABELS = dict(MessageType.choices)
_STATUS_LABELS = dict(OutboxStatus.choices)


def _sms_detail_filtered(*, entity: Entity, filters: SmsDetailFilters) -> QuerySet[OutboxMessage]:
    qs = OutboxMessage.objects.filter(entity=entity, channel=Channel.SMS)
    f = filters
    if f.message_type:
        qs = qs.filter(message_type=f.message_type)
    if f.status:
        qs = qs.filter(status=f.status)
    start, end = local_range(entity, f.date_from, f.date_to)
    if start is not None:
        qs = qs.filter(created_at__gte=start)
    if end is not None:
        qs = qs.filter(created_at__lt=end)
    if f.branch_id is not None:
        # A message's branch is its client's; a message to a user (OTP, MIS) has that user's home branch.
        qs = qs.filter(Q(client__branch_id=f.branch_id) | Q(client__isnull=True, user__home_branch_id=f.branch_id))
    if f.user == SYSTEM_USER:
        qs = qs.filter(created_by__isnull=True)
    elif f.user is not None:
        qs = qs.filter(created_by_id=f.user)
    if f.number:
        qs = qs.filter(number__contains=number_fragment(f.number))
    return qs


def number_fragment(typed: str) -> str:
    """What to look for in the stored E.164 numbers when a user types part of one as the screens
    show it ("083 123 4567"): spaces and dashes go, and so does a national trunk 0."""
    fragment = "".join(ch for ch in typed if ch not in " -()")
    return fragment[1:] if fragment.startswith("0") and len(fragment) > 1 else fragment


def sms_detail_count(*, entity: Entity, filters: SmsDetailFilters) -> int:
    """The number of rows, counted without the joins the listed columns need."""
    return _sms_detail_filtered(entity=entity, filters=filters).count()


_SMS_DETAIL_VALUES = ("id", "created_at", "scheduled_for", "number", "message_type", "text", "status", "segments", "credits", "error",
                      "client_id", "client__number", "client__name", "client__surname", "created_by_id",
                      "created_by__username", "created_by__first_name", "created_by__last_name", "branch_name")


def sms_detail_list(*, entity: Entity, filters: SmsDetailFilters, up_to_id: int | None = None) -> QuerySet:
    """The report's rows, newest first, as value dicts (turn each into a row with `sms_detail_row`)."""
    qs = _sms_detail_filtered(entity=entity, filters=filters)
    if up_to_id is not None:
        qs = qs.filter(id__lte=up_to_id)
    return (qs.annotate(branch_name=Coalesce("client__branch__name", "user__home_branch__name", Value(""),
                                             output_field=CharField()))
            .values(*_SMS_DETAIL_VALUES).order_by("-created_at", "-id"))


@dataclass(frozen=True)
class SmsDetailRow:
    id: int
    created_at: dt.datetime
    date: dt.date
    time: dt.time
    client_id: int | None
    client_number: int | None
    client: str
    number: str
    message_type: str
    type_label: str
    message: str
    status: str
    status_label: str
    segments: int
    credits: int
    response: str
    user_id: int | None
    user: str
    branch: str

    def cells(self) -> list:
        return [self.date, self.time.strftime("%H:%M:%S"), self.client_number, self.client, self.number, self.type_label,
                self.message, self.status_label, self.segments, self.credits, self.response, self.user, self.branch]


def sms_detail_row(values: dict, zone: dt.tzinfo, now: dt.datetime | None = None) -> SmsDetailRow:
    local = values["created_at"].astimezone(zone)
    scheduled_for = values.get("scheduled_for")
    scheduled = is_scheduled(status=values["status"], scheduled_for=scheduled_for, now=now or timezone.now())
    client = " ".join(p for p in (values["client__name"], values["client__surname"]) if p) if values["client_id"] else ""
    if values["created_by_id"] is None:
        user = "System"
    else:  # as User.__str__: the full name, else the username
        user = f"{values['created_by__first_name']} {values['created_by__last_name']}".strip() or values["created_by__username"]
    return SmsDetailRow(
        id=values["id"], created_at=values["created_at"], date=local.date(), time=local.time().replace(microsecond=0),
        client_id=values["client_id"], client_number=values["client__number"], client=client, number=values["number"],
        message_type=values["message_type"], type_label=_TYPE_LABELS.get(values["message_type"], values["message_type"]),
        message=values["text"], status=values["status"],
        status_label=SCHEDULED if scheduled else _STATUS_LABELS.get(values["status"], values["status"]),
        segments=values["segments"], credits=values["credits"],
        response=scheduled_response(scheduled_for=scheduled_for, tz=zone) if scheduled else values["error"],
        user_id=values["created_by_id"],
        user=user, branch=values["branch_name"] or "")


def sms_detail_rows(values: Iterable[dict], *, entity: Entity) -> Iterator[SmsDetailRow]:
    zone = entity_zone(entity)
    now = timezone.now()
    for v in values:
        yield sms_detail_row(v, zone, now)


@dataclass(frozen=True)
class ExportSnapshot:
    """What an export will contain: the row count and the last id when it started. New messages
    written while the file streams are left out, so the audited count is the file's count."""

    rows: int
    up_to_id: int | None


def sms_detail_snapshot(*, entity: Entity, filters: SmsDetailFilters) -> ExportSnapshot:
    agg = _sms_detail_filtered(entity=entity, filters=filters).aggregate(rows=Count("id"), last=Max("id"))
    return ExportSnapshot(agg["rows"], agg["last"] if agg["last"] is not None else 0)


def sms_detail_export_rows(*, entity: Entity, filters: SmsDetailFilters, snapshot: ExportSnapshot) -> Iterator[list]:
    values = sms_detail_list(entity=entity, filters=filters, up_to_id=snapshot.up_to_id).iterator(chunk_size=EXPORT_CHUNK_ROWS)
    for row in sms_detail_rows(values, entity=entity):
        yield row.cells()


# --- Process log ------------------------------------------------------------------------------

PROCESS_LOG_HEADER = ["Date", "Time", "Who", "Run", "Type", "Criteria", "Queued", "Skipped", "Skipped reasons",
                      "Credits", "Errors"]
PROCESS_LOG_TEXT_COLUMNS = frozenset({2, 3, 5, 8, 10})


def process_log_filtered(*, entity: Entity, start: dt.datetime | None, end: dt.datetime | None) -> QuerySet[ProcessLog]:
    qs = ProcessLog.objects.filter(entity=entity)
    if start is not None:
        qs = qs.filter(started_at__gte=start)
    if end is not None:
        qs = qs.filter(started_at__lt=end)
    return qs


def process_log_snapshot(*, entity: Entity, start: dt.datetime | None, end: dt.datetime | None) -> ExportSnapshot:
    agg = process_log_filtered(entity=entity, start=start, end=end).aggregate(rows=Count("id"), last=Max("id"))
    return ExportSnapshot(agg["rows"], agg["last"] if agg["last"] is not None else 0)


def _pairs(mapping) -> str:
    """A run's criteria or skip reasons in words: "Business date: 2026-12-07; Days before: 3"."""
    if not isinstance(mapping, dict):
        return str(mapping or "")
    return "; ".join(f"{criteria_label(k)}: {v}" for k, v in mapping.items())


def process_log_export_rows(*, entity: Entity, start: dt.datetime | None, end: dt.datetime | None,
                            snapshot: ExportSnapshot) -> Iterator[list]:
    zone = entity_zone(entity)
    labels = dict(MessageType.choices)
    qs = (process_log_filtered(entity=entity, start=start, end=end).filter(id__lte=snapshot.up_to_id)
          .select_related("actor").order_by("-started_at", "-id"))
    for log in qs.iterator(chunk_size=EXPORT_CHUNK_ROWS):
        local = log.started_at.astimezone(zone)
        errors = log.errors if isinstance(log.errors, list) else [log.errors]
        yield [local.date(), local.strftime("%H:%M:%S"), str(log.actor) if log.actor_id else "System",
               process_kind_label(log.kind), labels.get(log.message_type, log.message_type), _pairs(log.criteria),
               log.queued, log.skipped,
               _pairs(log.skipped_reasons), log.credits, "; ".join(str(e) for e in errors if e)]


# --- Exports ----------------------------------------------------------------------------------

def report_export_record(*, actor, entity: Entity, report: str, fmt: str, filters: dict, rows: int,
                         ip_address: str | None = None) -> None:
    """The audit entry of one export: who took which report, in which format, filtered how, how many rows."""
    audit_record(action=AuditAction.REPORT_EXPORTED, actor=actor, entity=entity, subject=f"{report} ({fmt})",
                 after={"report": report, "format": fmt, "filters": filters, "rows": rows}, ip_address=ip_address)


# Spreadsheet programs run a cell that starts with one of these as a formula (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_text(value):
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_stream(header: Sequence[str], rows: Iterable[Sequence], *, text_columns: frozenset[int] = frozenset(),
               byte_order_mark: bool = True) -> Iterator[bytes]:
    """A CSV file in pieces of about 64 KB, written as rows arrive. The byte-order mark makes
    spreadsheet programs read it as UTF-8; free-text columns are defused against formulas."""
    writer = csv.writer(_Echo())
    piece: list[str] = ["\ufeff"] if byte_order_mark else []
    size = 0
    piece.append(writer.writerow(header))
    for row in rows:
        line = writer.writerow([_csv_text(v) if i in text_columns else ("" if v is None else v) for i, v in enumerate(row)])
        piece.append(line)
        size += len(line)
        if size >= STREAM_PIECE_BYTES:
            yield "".join(piece).encode()
            piece, size = [], 0
    if piece:
        yield "".join(piece).encode()


def xlsx_file(title: str, header: Sequence[str], rows: Iterable[Sequence], *, text_columns: frozenset[int] = frozenset()):
    """An XLSX file written by openpyxl's write-only workbook (rows go to a temporary file as they
    come) into a spooled file (memory up to 8 MB, disk beyond): memory stays bounded. Returns the
    file, rewound, and its size. Free text is stored as text, never as a formula."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title[:31])
    sheet.append(list(header))
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            if isinstance(value, str):
                value = ILLEGAL_CHARACTERS_RE.sub("", value)
                if i in text_columns:
                    cell = WriteOnlyCell(sheet, value=value)
                    cell.data_type = "s"  # openpyxl would otherwise store "=…" as a formula
                    value = cell
            cells.append(value)
        sheet.append(cells)
    spool = tempfile.SpooledTemporaryFile(max_size=XLSX_SPOOL_BYTES)
    book.save(spool)
    size = spool.tell()
    spool.seek(0)
    return spool, size


def file_stream(handle, piece_bytes: int = STREAM_PIECE_BYTES) -> Iterator[bytes]:
    try:
        while chunk := handle.read(piece_bytes):
            yield chunk
    finally:
        handle.close()
