"""Client marketing ("Processing: Client Marketing", seed 002): run a data set from filters on the
Huey consumer with progress, keep it (who, when, filters, rows, duration), run it again, export it,
send an SMS or email custom message to its clients through the message-batch path, and keep the
entity's named custom messages. Every write here checks the right, stays inside the entity and is
audited."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo
from collections.abc import Mapping

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from imali.core.audit import audit_record
from imali.core.bulk import insert_rows
from imali.core.models import AuditAction
from imali.tenancy.models import Entity
from imali.tenancy.rights import Right

from . import selectors
from .columns import KEYS
from .errors import MarketingError
from .filters import filters_check, filters_description
from .models import CustomMessage, DataSet, DataSetRow, DataSetState, MessageChannel

# Rows written per transaction while a data set is kept (and the progress bar moves by).
CHUNK_ROWS = 2000


def _error(field: str, code: MarketingError, message: str) -> ValidationError:
    return ValidationError({field: [ValidationError(message, code=code.value)]})


def local_today(entity: Entity) -> dt.date:
    return timezone.localdate(timezone=zoneinfo.ZoneInfo(entity.time_zone))


def require_right(actor, entity: Entity, right: Right = Right.CLIENT_MARKETING) -> None:
    if not getattr(actor, "pk", None) or actor.entity_id != entity.pk or not actor.has_right(right):
        raise PermissionDenied(f"You need the '{right.label}' right of this entity.")


# --- run ---------------------------------------------------------------------------------------
def dataset_start(*, actor, entity: Entity, filters: Mapping, as_of: dt.date | None = None,
                  rerun_of: DataSet | None = None, background: bool = True) -> DataSet:
    """Record a data set from checked filters and collect it: on the Huey consumer after the commit
    (the page shows its progress), or here when `background` is False. Audited."""
    require_right(actor, entity)
    cleaned = filters_check(entity=entity, data=filters)
    as_of = as_of or local_today(entity)
    with transaction.atomic():
        dataset = DataSet.objects.create(entity=entity, created_by=actor, filters=cleaned, as_of=as_of, rerun_of=rerun_of)
        audit_record(action=AuditAction.MARKETING_DATASET_RUN, actor=actor, entity=entity, target=dataset,
                     subject="Client marketing data set",
                     after={"filters": cleaned, "as_of": as_of.isoformat(), "rerun_of": rerun_of.pk if rerun_of else None})
    if background:
        from .tasks import dataset_run_task

        transaction.on_commit(lambda: dataset_run_task(dataset.pk))
    else:
        dataset_run(dataset_id=dataset.pk)
        dataset.refresh_from_db()
    return dataset


def dataset_rerun(*, actor, entity: Entity, dataset_id: int, background: bool = True) -> DataSet:
    """Run a kept data set's filters again, on today's figures: a new data set, the old one kept."""
    require_right(actor, entity)
    try:
        earlier = DataSet.objects.get(entity=entity, pk=dataset_id)
    except DataSet.DoesNotExist:
        raise _error("dataset", MarketingError.UNKNOWN_OBJECT, "No such data set in your entity.") from None
    return dataset_start(actor=actor, entity=entity, filters=earlier.filters, rerun_of=earlier, background=background)


def dataset_run(*, dataset_id: int) -> DataSet:
    """Collect a recorded data set once: choose the clients, read every column set-based, keep the
    rows chunk by chunk (the progress). A data set already started is left alone, so a task
    delivered twice runs once. A failure keeps nothing half: its rows are removed, the error kept."""
    started = timezone.now()
    if not DataSet.objects.filter(pk=dataset_id, state=DataSetState.QUEUED).update(state=DataSetState.RUNNING,
                                                                                   started_at=started):
        return DataSet.objects.get(pk=dataset_id)
    dataset = DataSet.objects.select_related("entity", "created_by").get(pk=dataset_id)
    clock = time.monotonic()
    written = 0
    try:
        rows = selectors.dataset_rows(
            entity=dataset.entity, filters=dataset.filters, as_of=dataset.as_of, with_settlement=dataset.with_settlement,
            on_total=lambda n: DataSet.objects.filter(pk=dataset_id).update(total=n))
        chunk: list[tuple] = []
        for row in rows:
            chunk.append((dataset_id, row[0], written + len(chunk) + 1, *row[1:]))
            if len(chunk) >= CHUNK_ROWS:
                written = _write(dataset_id, chunk, written)
                chunk = []
        if chunk:
            written = _write(dataset_id, chunk, written)
    except Exception as exc:
        DataSetRow.objects.filter(dataset_id=dataset_id).delete()
        message = "; ".join(getattr(exc, "messages", None) or [str(exc)])[:500]
        DataSet.objects.filter(pk=dataset_id).update(state=DataSetState.FAILED, error=message, progress=0, row_count=0,
                                                     finished_at=timezone.now(),
                                                     duration_ms=int((time.monotonic() - clock) * 1000))
        raise
    DataSet.objects.filter(pk=dataset_id).update(state=DataSetState.DONE, row_count=written, progress=written,
                                                 total=written, finished_at=timezone.now(),
                                                 duration_ms=int((time.monotonic() - clock) * 1000))
    dataset.refresh_from_db()
    return dataset


# The kept row's columns in the order of a collected row: data set, client, place, then every column.
_ROW_COLUMNS = tuple(DataSetRow._meta.get_field(name).column for name in ("dataset", "client", "seq", *KEYS))


def _write(dataset_id: int, chunk: list[tuple], written: int) -> int:
    """Keep a chunk of collected rows (tuples in _ROW_COLUMNS order) and move the progress, in one
    transaction. The values are already what the columns hold (text, integers, Decimals of the
    columns' places, dates, flags), so they go in as they are through the set-based insert (COPY on
    PostgreSQL, a prepared INSERT per row on SQLite): no model object is made per row, and a
    million-row data set spends its time on its figures, not on 70-field objects."""
    with transaction.atomic():
        insert_rows(DataSetRow, _ROW_COLUMNS, chunk)
        written += len(chunk)
        DataSet.objects.filter(pk=dataset_id).update(progress=written)
    return written


def dataset_export_record(*, actor, entity: Entity, dataset: DataSet, fmt: str, ip_address: str | None = None) -> None:
    """The audit entry of one export of a data set."""
    audit_record(action=AuditAction.REPORT_EXPORTED, actor=actor, entity=entity, target=dataset,
                 subject=f"client-marketing ({fmt})",
                 after={"report": "client-marketing", "format": fmt, "dataset": dataset.pk, "rows": dataset.row_count},
                 ip_address=ip_address)


def dataset_filters_shown(*, dataset: DataSet) -> list[tuple[str, str]]:
    return filters_description(entity=dataset.entity, filters=dataset.filters)


# --- custom messages ---------------------------------------------------------------------------
SETUP_RIGHT = {MessageChannel.SMS: Right.MAXSMS_MESSAGE_SETUP, MessageChannel.EMAIL: Right.MAXMAIL_MESSAGE_SETUP}


def custom_message_save(*, actor, entity: Entity, channel: str, name: str, text: str, subject: str = "",
                        is_active: bool = True, message_id: int | None = None) -> CustomMessage:
    """Create or change a named custom message. Needs the channel's message-setup right (MAXSMS /
    MAXMAIL Message Setup). The text obeys the template rules of its channel (known merge fields,
    spaces, length); an email needs a one-line subject. Audited with what changed."""
    from imali.messaging.templating import saved_template_problems, template_problems

    if channel not in MessageChannel.values:
        raise _error("channel", MarketingError.INVALID_CHOICE, "Choose SMS or email.")
    require_right(actor, entity, SETUP_RIGHT[MessageChannel(channel)])
    errors: dict[str, list[ValidationError]] = {}
    name = " ".join((name or "").split())
    if not name:
        errors["name"] = [ValidationError("Give the message a name.", code=MarketingError.REQUIRED.value)]
    elif len(name) > 80:
        errors["name"] = [ValidationError("A name is at most 80 characters.", code=MarketingError.TOO_LONG.value)]
    problems = saved_template_problems(text or "", channel=channel, message_type="marketing")
    if problems:
        errors["text"] = [ValidationError(p.message, code=MarketingError.TEMPLATE.value) for p in problems]
    subject = (subject or "").strip()
    if channel == MessageChannel.EMAIL:
        if not subject:
            errors["subject"] = [ValidationError("An email needs a subject.", code=MarketingError.REQUIRED.value)]
        elif len(subject) > 200 or "\n" in subject:
            errors["subject"] = [ValidationError("The subject is one line of at most 200 characters.",
                                                 code=MarketingError.TOO_LONG.value)]
        elif template_problems(subject):
            errors["subject"] = [ValidationError(p.message, code=MarketingError.TEMPLATE.value)
                                 for p in template_problems(subject)]
    else:
        subject = ""
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        if message_id is None:
            message = CustomMessage(entity=entity, channel=channel, created_by=actor)
            before = None
        else:
            try:
                message = CustomMessage.objects.select_for_update().get(entity=entity, pk=message_id)
            except CustomMessage.DoesNotExist:
                raise _error("message", MarketingError.UNKNOWN_MESSAGE, "No such custom message in your entity.") from None
            if message.channel != channel:
                raise _error("channel", MarketingError.INVALID_CHOICE, "A message keeps its channel.")
            before = {"name": message.name, "subject": message.subject, "text": message.text, "is_active": message.is_active}
        message.name, message.subject, message.text, message.is_active = name, subject, text, is_active
        try:
            with transaction.atomic():
                message.save()
        except IntegrityError:
            raise _error("name", MarketingError.NAME_TAKEN,
                         f"Your entity has a {MessageChannel(channel).label} message named '{name}' already.") from None
        after = {"name": name, "subject": subject, "text": text, "is_active": is_active}
        audit_record(action=AuditAction.MARKETING_MESSAGE_SAVED, actor=actor, entity=entity, target=message,
                     subject=f"{MessageChannel(channel).label} custom message {name}", before=before, after=after)
    return message
