"""Manual message batches ("Processing: MAXSMS"): criteria → preview → send.

The preview and the send walk the same recipients: the batch type's rules choose clients in one
query over the loan book; the walk drops (and counts) those without a cellphone, a number a client
earlier in the batch already has, and for marketing types those who answered STOP or gave no
consent; the entity's template (marketing types: with the sender's name and the opt-out
instruction, messaging.policy) is merged for each with values read set-based. The send hands the
recipients to messaging.services.messages_enqueue_bulk with the sender as the user of every
message and an idempotency key per batch and client, so a resubmitted form never sends twice. A
large batch runs on the Huey consumer and shows its progress.
"""

from __future__ import annotations

import datetime as dt
import itertools
import zoneinfo
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from imali.clients.models import ClientStatus, Employer
from imali.core.audit import audit_record
from imali.core.dates import DAY_RANGE_MESSAGE, day_in_range
from imali.core.models import AuditAction
from imali.core.money import MAX_AMOUNT, parse_amount
from imali.loans.models import LoanStatus
from imali.messaging import credits, policy
from imali.messaging.models import Channel, ProcessLog
from imali.messaging.segments import segment_count
from imali.messaging.services import (
    LOAN_FIELDS,
    BulkRecipient,
    merge_values,
    messages_enqueue_bulk,
    template_text,
)
from imali.messaging.templating import Compiled, TemplateError, fields_used
from imali.tenancy.models import Branch, Entity
from imali.tenancy.rights import Right

from . import selectors
from .errors import BatchError
from .models import BatchPreviewRun, BatchState, MessageBatch
from .types import CRITERIA, MARKETING_TYPES, MESSAGE_TYPE, REQUIRED, BatchType, DropReason

# A batch choosing more clients than this runs on the Huey consumer, with a progress bar.
BACKGROUND_FROM = 2000
PROGRESS_EVERY = 1000
# The longest date range a criterion may span (a year and a day: "last year" and its edges).
MAX_RANGE_DAYS = 367


def _error(field: str, code: BatchError, message: str) -> ValidationError:
    return ValidationError({field: [ValidationError(message, code=code.value)]})


def local_today(entity: Entity) -> dt.date:
    return timezone.localdate(timezone=zoneinfo.ZoneInfo(entity.time_zone))


def _require(actor, entity: Entity) -> None:
    if not getattr(actor, "pk", None) or actor.entity_id != entity.pk or not actor.has_right(Right.MAXSMS_PROCESSING):
        raise PermissionDenied(f"You need the '{Right.MAXSMS_PROCESSING.label}' right of this entity.")


# --- criteria ------------------------------------------------------------------------------------


def _date(value, field: str) -> dt.date:
    if not isinstance(value, dt.date):
        try:
            value = dt.date.fromisoformat(str(value))
        except ValueError:
            raise _error(field, BatchError.INVALID_DATE, f"'{str(value)[:20]}' is not a date; write it as YYYY-MM-DD.") from None
    if not day_in_range(value):
        raise _error(field, BatchError.INVALID_DATE, DAY_RANGE_MESSAGE)
    return value


def _range(found: dict, errors: dict, start: str, end: str) -> None:
    if start in found and end in found:
        if found[end] < found[start]:
            errors[end] = [ValidationError("The end date is before the start date.", code=BatchError.DATE_ORDER.value)]
        elif (found[end] - found[start]).days >= MAX_RANGE_DAYS:
            errors[start] = [ValidationError(f"Choose at most {MAX_RANGE_DAYS} days.", code=BatchError.RANGE_TOO_LONG.value)]


def criteria_clean(*, entity: Entity, batch_type: str, data: Mapping) -> dict:
    """The criteria of a batch, checked: each bad value is an error naming its field; a field the
    type does not take is refused rather than silently ignored. Returns JSON-ready values (dates
    as ISO text, money as text with two places, ids as numbers), the form the batch stores."""
    if batch_type not in BatchType.values:
        raise _error("batch_type", BatchError.UNKNOWN_TYPE, f"Unknown batch type '{batch_type}'.")
    takes = CRITERIA[batch_type]
    errors: dict[str, list[ValidationError]] = {}
    for name, value in data.items():
        if name not in takes and value not in (None, ""):
            errors[name] = [ValidationError(f"A {BatchType(batch_type).label} batch does not take this criterion.",
                                            code=BatchError.NOT_A_CRITERION.value)]
    found: dict = {}
    for name in takes:
        value = data.get(name)
        if value in (None, ""):
            if name in REQUIRED.get(batch_type, ()):
                errors[name] = [ValidationError("This is required.", code=BatchError.REQUIRED.value)]
            continue
        try:
            found[name] = _criterion(entity, name, value)
        except ValidationError as exc:
            errors.update(exc.error_dict)
    _range(found, errors, "due_from", "due_to")
    _range(found, errors, "paid_from", "paid_to")
    if errors:
        raise ValidationError(errors)
    return {k: (v.isoformat() if isinstance(v, dt.date) else str(v) if isinstance(v, Decimal) else v) for k, v in found.items()}


def _criterion(entity: Entity, name: str, value):
    if name in ("due_from", "due_to", "paid_from", "paid_to"):
        return _date(value, name)
    if name in ("min_arrears", "min_payment"):
        return parse_amount(value, field=name, allow_zero=True, maximum=MAX_AMOUNT)
    if name in ("employer", "branch"):
        model = Employer if name == "employer" else Branch
        key = value.pk if hasattr(value, "pk") else value
        if not (str(key).isascii() and str(key).isdigit()) or not model.objects.filter(entity=entity, pk=int(key)).exists():
            code = BatchError.UNKNOWN_EMPLOYER if name == "employer" else BatchError.UNKNOWN_BRANCH
            raise _error(name, code, f"No such {name} in your entity.")
        return int(key)
    choices = {"client_status": ClientStatus.values, "loan_status": LoanStatus.values, "has_open_loan": ["yes", "no"]}[name]
    if value not in choices:
        raise _error(name, BatchError.INVALID_CHOICE, f"Choose one of: {', '.join(choices)}.")
    return value


def criteria_description(*, entity: Entity, batch_type: str, criteria: Mapping) -> list[tuple[str, str]]:
    """The criteria in people's words, for the preview, the batch page and the process log."""
    labels = {"due_from": "Instalments due from", "due_to": "Instalments due to", "min_arrears": "Minimum arrears",
              "paid_from": "Paid from", "paid_to": "Paid to", "min_payment": "Minimum payment", "employer": "Employer",
              "branch": "Branch", "client_status": "Client status", "has_open_loan": "Loan on the book",
              "loan_status": "Loan status"}
    out = []
    for name in CRITERIA[batch_type]:
        value = criteria.get(name)
        if name == "employer":
            shown = Employer.objects.filter(entity=entity, pk=value).values_list("name", flat=True).first() if value else "All employers"
        elif name == "branch":
            shown = str(Branch.objects.filter(entity=entity, pk=value).first() or "") if value else "All branches"
        elif name in ("min_arrears", "min_payment"):
            shown = f"{entity.currency} {Decimal(value or 0):,.2f}"
        elif name == "client_status":
            shown = ClientStatus(value).label if value else "Any"
        elif name == "loan_status":
            shown = LoanStatus(value).label if value else ""
        elif name == "has_open_loan":
            shown = {"yes": "Yes", "no": "No"}.get(value, "Either")
        else:
            shown = value or ""
        out.append((labels[name], shown))
    return out


# --- the SMS type switch and the marketing text (messaging.policy) -------------------------------
def type_enabled(*, entity: Entity, message_type: str) -> bool:
    return policy.message_type_enabled(entity=entity, message_type=message_type)


def batch_text(*, entity: Entity, batch_type: str) -> str:
    """The text the batch sends: the entity's template of its message type; a marketing type's
    text names the sender and says how to opt out (added when the template lacks it)."""
    message_type = MESSAGE_TYPE[batch_type]
    text = template_text(entity=entity, message_type=message_type)
    if batch_type in MARKETING_TYPES:
        text = policy.marketing_text(entity=entity, text=text)
    return text


# --- the walk over the recipients ----------------------------------------------------------------
@dataclass
class Walk:
    """What walking a batch's recipients found: the drops by reason and, once rendered, the cost."""

    selected: int = 0
    dropped: Counter = field(default_factory=Counter)


def _recipients(*, entity: Entity, batch_type: str, criteria: Mapping, text: str, key_prefix: str, walk: Walk,
                today: dt.date, enabled: bool, on_row=None) -> Iterator[BulkRecipient]:
    """The batch's recipients with their merge values, dropping (and counting in `walk`) those who
    get no message. Queries: the selection (one), the opt-outs (marketing types, one) and, when the
    text uses loan fields, the loan values of the selection (set-based, see loan_merge_values)."""
    marketing = batch_type in MARKETING_TYPES
    consent_needed = marketing and not entity.marketing_consent_not_required
    selection = selectors.batch_selection(entity=entity, batch_type=batch_type, criteria=criteria, today=today)
    rows: Iterator[tuple] = selectors.recipient_rows(selection)
    loan_values: dict[int, dict] | None = None
    if LOAN_FIELDS.intersection(fields_used(text)):
        # The first rows of the one selection query tell whether the batch is small: then the loan
        # figures of those clients only, else of the whole book; the rows read go round again.
        head = list(itertools.islice(rows, selectors.FIGURES_BY_ID_UP_TO + 1))
        small = len(head) <= selectors.FIGURES_BY_ID_UP_TO
        loan_values = selectors.loan_merge_values(entity=entity, today=today,
                                                  client_ids=[r[0] for r in head] if small else None)
        rows = itertools.chain(head, rows)
    opted_out = selectors.opted_out_numbers(entity=entity) if marketing else set()
    common = merge_values(entity=entity, today=today)
    seen: set[str] = set()
    dropped = walk.dropped
    for row in rows:
        cid, number, name, full_names, surname, cellphone, consent, branch_name, branch_tel = row
        walk.selected += 1
        if on_row is not None:
            on_row(walk.selected)
        if not enabled:
            dropped[DropReason.TYPE_DISABLED.value] += 1
            continue
        if not cellphone:
            dropped[DropReason.NO_CELLPHONE.value] += 1
            continue
        if cellphone in seen:
            dropped[DropReason.DUPLICATE_NUMBER.value] += 1
            continue
        if cellphone in opted_out:
            dropped[DropReason.OPTED_OUT.value] += 1
            continue
        if consent_needed and not consent:
            dropped[DropReason.NO_CONSENT.value] += 1
            continue
        seen.add(cellphone)
        values = dict(common)
        values.update({"Client Name": name or full_names.split(" ")[0], "Client Surname": surname,
                       "Client Account Number": str(number), "Branch Name": branch_name,
                       "Branch Telephone": branch_tel})
        if loan_values is not None:
            values.update(loan_values.get(cid, {}))
        yield BulkRecipient(f"{key_prefix}:c{cid}", cellphone, values, client_id=cid)


# Reasons messages_enqueue_bulk itself may count, beside the batch's own.
_OTHER_REASONS = {"invalid_number": "Cellphone number not valid", "already_queued": "Already sent by this batch"}


def drop_label(reason: str) -> str:
    if reason in DropReason.values:
        return DropReason(reason).label
    return _OTHER_REASONS.get(reason, reason.replace("_", " ").capitalize())


def dropped_rows(dropped: Mapping[str, int]) -> list[tuple[str, str, int]]:
    """(reason, label, count) of each reason with a count, in the order of DropReason."""
    order = {r: i for i, r in enumerate(DropReason.values)}
    return [(r, drop_label(r), n) for r, n in sorted(dropped.items(), key=lambda p: order.get(p[0], 99)) if n]


@dataclass(frozen=True)
class BatchPreview:
    batch_type: str
    message_type: str
    criteria: dict
    criteria_shown: list[tuple[str, str]]
    type_enabled: bool
    selected: int  # clients the rules chose
    recipients: int  # messages that would go
    dropped: dict[str, int]  # reason → count
    template: str  # the text as written, merge fields and all
    sample: str  # the first recipient's message
    segments: int  # all messages' segments
    segments_most: int  # the longest message's
    credits_needed: int
    credits_left: int
    # Direct marketing previewed outside the CPA Regulation 4 hours: when its messages will go.
    waits_until: dt.datetime | None = None

    @property
    def dropped_rows(self) -> list[tuple[str, str, int]]:
        return dropped_rows(self.dropped)

    @property
    def enough_credits(self) -> bool:
        return self.credits_needed <= self.credits_left

    @property
    def can_send(self) -> bool:
        return self.type_enabled and self.recipients > 0 and self.enough_credits


def batch_preview(*, actor, entity: Entity, batch_type: str, criteria: Mapping, today: dt.date | None = None,
                  on_row=None) -> BatchPreview:
    """What a batch would send, nothing written: who it reaches, who is dropped and why, the text,
    its segments and the credits needed against the credits left. `on_row(n)` is told of each
    recipient walked (a background preview's progress)."""
    _require(actor, entity)
    cleaned = criteria_clean(entity=entity, batch_type=batch_type, data=criteria)
    today = today or local_today(entity)
    message_type = MESSAGE_TYPE[batch_type]
    enabled = type_enabled(entity=entity, message_type=message_type)
    text = batch_text(entity=entity, batch_type=batch_type)
    compiled = Compiled(text)
    walk = Walk()
    recipients = segments = most = 0
    sample = ""
    for r in _recipients(entity=entity, batch_type=batch_type, criteria=cleaned, text=text, key_prefix="preview",
                         walk=walk, today=today, enabled=enabled, on_row=on_row):
        try:
            body = compiled.render(r.values)
        except TemplateError:
            walk.dropped[DropReason.RENDER_FAILED.value] += 1
            continue
        n = segment_count(body)
        recipients += 1
        segments += n
        most = max(most, n)
        sample = sample or body
    now = timezone.now()
    send_at = policy.next_allowed_send(entity=entity, message_type=message_type, at=now)
    return BatchPreview(batch_type, message_type, cleaned, criteria_description(entity=entity, batch_type=batch_type,
                                                                                criteria=cleaned),
                        enabled, walk.selected, recipients, dict(walk.dropped), text, sample, segments, most, segments,
                        credits.credit_balance(entity=entity, channel=Channel.SMS),
                        send_at.astimezone(zoneinfo.ZoneInfo(entity.time_zone)) if send_at != now else None)


# --- large previews, on the consumer --------------------------------------------------------------
PREVIEW_KEPT = dt.timedelta(days=1)
# A preview renders and counts every recipient's SMS: tens of thousands take seconds, so a preview
# choosing BACKGROUND_FROM clients or more is made by the consumer while the page shows its progress.

def batch_preview_request(*, actor, entity: Entity, batch_type: str, criteria: Mapping, form_key: str = "",
                          today: dt.date | None = None) -> BatchPreview | BatchPreviewRun:
    """The preview at once when the criteria choose fewer than BACKGROUND_FROM clients (one count
    query tells), else a BatchPreviewRun handed to the consumer (after the commit), whose page
    shows its progress and then the preview."""
    _require(actor, entity)
    cleaned = criteria_clean(entity=entity, batch_type=batch_type, data=criteria)
    today = today or local_today(entity)
    count = selectors.batch_selection(entity=entity, batch_type=batch_type, criteria=cleaned, today=today).count()
    if count < BACKGROUND_FROM:
        return batch_preview(actor=actor, entity=entity, batch_type=batch_type, criteria=cleaned, today=today)
    # A preview is read within minutes; older ones (they hold a client's message) are swept here.
    BatchPreviewRun.objects.filter(entity=entity, created_at__lt=timezone.now() - PREVIEW_KEPT).delete()
    run = BatchPreviewRun.objects.create(entity=entity, created_by=actor, batch_type=batch_type,
                                         criteria={**cleaned, "today": today.isoformat()}, form_key=form_key[:64],
                                         selected=count)
    from .tasks import batch_preview_task

    transaction.on_commit(lambda: batch_preview_task(run.pk))
    return run


def batch_preview_run(*, run_id: int) -> BatchPreviewRun:
    """Make a queued preview (on the consumer), counting its progress; a run already started is
    left alone, so a task delivered twice makes it once."""
    if not BatchPreviewRun.objects.filter(pk=run_id, state=BatchState.QUEUED).update(state=BatchState.RUNNING):
        return BatchPreviewRun.objects.get(pk=run_id)
    run = BatchPreviewRun.objects.select_related("entity", "created_by").get(pk=run_id)
    criteria = {k: v for k, v in run.criteria.items() if k != "today"}

    def progress(n: int) -> None:
        if n % PROGRESS_EVERY == 0:
            BatchPreviewRun.objects.filter(pk=run_id).update(prepared=n)

    try:
        preview = batch_preview(actor=run.created_by, entity=run.entity, batch_type=run.batch_type, criteria=criteria,
                                today=dt.date.fromisoformat(run.criteria["today"]), on_row=progress)
    except ValidationError as exc:
        BatchPreviewRun.objects.filter(pk=run_id).update(state=BatchState.FAILED, error="; ".join(exc.messages)[:500],
                                                         finished_at=timezone.now())
        return BatchPreviewRun.objects.get(pk=run_id)
    except Exception as exc:
        BatchPreviewRun.objects.filter(pk=run_id).update(
            state=BatchState.FAILED, finished_at=timezone.now(),
            error=f"The preview could not be made ({type(exc).__name__}); please try again.")
        raise
    BatchPreviewRun.objects.filter(pk=run_id).update(
        state=BatchState.DONE, selected=preview.selected, prepared=preview.selected, finished_at=timezone.now(),
        result=_preview_record(preview))
    return BatchPreviewRun.objects.get(pk=run_id)


def _preview_record(preview: BatchPreview) -> dict:
    return {"recipients": preview.recipients, "dropped": preview.dropped, "template": preview.template,
            "sample": preview.sample, "segments": preview.segments, "segments_most": preview.segments_most,
            "credits_needed": preview.credits_needed, "type_enabled": preview.type_enabled,
            "criteria_shown": [[label, str(value)] for label, value in preview.criteria_shown],
            "waits_until": preview.waits_until.isoformat() if preview.waits_until else None}


def preview_of_run(*, run: BatchPreviewRun) -> BatchPreview:
    """The preview a finished run made; the credits left are read now (they may have changed)."""
    r = run.result
    waits = dt.datetime.fromisoformat(r["waits_until"]) if r.get("waits_until") else None
    criteria = {k: v for k, v in run.criteria.items() if k != "today"}
    return BatchPreview(run.batch_type, MESSAGE_TYPE[run.batch_type], criteria,
                        [(label, value) for label, value in r["criteria_shown"]], r["type_enabled"], run.selected,
                        r["recipients"], dict(r["dropped"]), r["template"], r["sample"], r["segments"],
                        r["segments_most"], r["credits_needed"], credits.credit_balance(entity=run.entity, channel=Channel.SMS),
                        waits)


# --- send ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SendResult:
    batch: MessageBatch
    repeated: bool  # the key was used already: nothing more was sent


def batch_send(*, actor, entity: Entity, batch_type: str, criteria: Mapping, idempotency_key: str,
               today: dt.date | None = None, background: bool | None = None) -> SendResult:
    """Send a batch: recorded once per (entity, key), run at once when small, on the Huey consumer
    when it chooses BACKGROUND_FROM clients or more (`background` forces either). The same key
    again returns the batch already sent and sends nothing, whatever its criteria."""
    _require(actor, entity)
    if not idempotency_key:
        raise _error("idempotency_key", BatchError.REQUIRED, "An idempotency key is required.")
    found = MessageBatch.objects.filter(entity=entity, idempotency_key=idempotency_key).first()
    if found is not None:
        return SendResult(found, True)
    cleaned = criteria_clean(entity=entity, batch_type=batch_type, data=criteria)
    today = today or local_today(entity)
    message_type = MESSAGE_TYPE[batch_type]
    if not type_enabled(entity=entity, message_type=message_type):
        raise _error("batch_type", BatchError.TYPE_DISABLED,
                     f"{BatchType(batch_type).label} SMSs are switched off for your entity (General Setup).")
    if background is None:
        count = selectors.batch_selection(entity=entity, batch_type=batch_type, criteria=cleaned, today=today).count()
        background = count >= BACKGROUND_FROM
    try:
        with transaction.atomic():
            batch = MessageBatch.objects.create(entity=entity, batch_type=batch_type, criteria={**cleaned, "today": today.isoformat()},
                                                idempotency_key=idempotency_key, created_by=actor, background=background)
            audit_record(action=AuditAction.BULK_SEND_QUEUED, actor=actor, entity=entity, target=batch,
                         subject=BatchType(batch_type).label,
                         after={"stage": "batch requested", "type": batch_type, "criteria": cleaned, "background": background})
    except IntegrityError:
        # A double click: the other request recorded this key a moment ago.
        return SendResult(MessageBatch.objects.get(entity=entity, idempotency_key=idempotency_key), True)
    if background:
        from .tasks import batch_run_task

        transaction.on_commit(lambda: batch_run_task(batch.pk))
    else:
        batch_run(batch_id=batch.pk)
        batch.refresh_from_db()
    return SendResult(batch, False)


def batch_run(*, batch_id: int) -> MessageBatch:
    """Run a recorded batch once: choose, merge and queue its messages (messages_enqueue_bulk),
    then record the counts on the batch and its process log. A batch already started is left
    alone, so a task delivered twice runs it once; and the keys per batch and client mean that
    even a second run would queue nothing new."""
    started = timezone.now()
    if not MessageBatch.objects.filter(pk=batch_id, state=BatchState.QUEUED).update(state=BatchState.RUNNING, started_at=started):
        return MessageBatch.objects.get(pk=batch_id)
    batch = MessageBatch.objects.select_related("entity", "created_by").get(pk=batch_id)
    entity, actor = batch.entity, batch.created_by
    criteria = {k: v for k, v in batch.criteria.items() if k != "today"}
    today = dt.date.fromisoformat(batch.criteria.get("today") or local_today(entity).isoformat())
    message_type = MESSAGE_TYPE[batch.batch_type]
    walk = Walk()

    def progress(n: int) -> None:
        if n % PROGRESS_EVERY == 0:
            MessageBatch.objects.filter(pk=batch_id).update(prepared=n)

    log = None
    try:
        if batch.background:
            # Counted first so that the progress bar knows its end while the messages are prepared.
            total = selectors.batch_selection(entity=entity, batch_type=batch.batch_type, criteria=criteria,
                                              today=today).count()
            MessageBatch.objects.filter(pk=batch_id).update(selected=total)
        text = batch_text(entity=entity, batch_type=batch.batch_type)
        enabled = type_enabled(entity=entity, message_type=message_type)
        recipients = _recipients(entity=entity, batch_type=batch.batch_type, criteria=criteria, text=text,
                                 key_prefix=f"batch:{batch.idempotency_key}", walk=walk, today=today, enabled=enabled,
                                 on_row=progress)
        log = messages_enqueue_bulk(
            entity=entity, actor=actor, message_type=message_type, text=text, recipients=recipients, kind=selectors.PROCESS_KIND,
            criteria={"batch": batch.pk, "type": batch.batch_type, **criteria})
    except Exception as exc:
        message = "; ".join(getattr(exc, "messages", None) or [str(exc)])[:500]
        _finish(batch, walk=walk, log=log, state=BatchState.FAILED, error=message)
        if isinstance(exc, ValidationError):
            return batch
        raise
    _finish(batch, walk=walk, log=log, state=BatchState.DONE, error="")
    return batch


def _finish(batch: MessageBatch, *, walk: Walk, log: ProcessLog | None, state: str, error: str) -> None:
    """Record the run's outcome on the batch and put the batch's own drops into its process log
    (one log entry per run, also for a run refused before anything was queued)."""
    # A resumed batch keeps what its earlier runs queued and paid; this run's keys skipped those.
    earlier_queued, earlier_credits = batch.queued, batch.credits
    with transaction.atomic():
        if log is None:
            log = (selectors.batch_run_log(batch=batch)
                   or ProcessLog.objects.create(entity=batch.entity, actor=batch.created_by, kind=selectors.PROCESS_KIND,
                                                message_type=MESSAGE_TYPE[batch.batch_type],
                                                criteria={"batch": batch.pk, "type": batch.batch_type, **batch.criteria}))
        log = ProcessLog.objects.select_for_update().get(pk=log.pk)
        reasons = Counter(log.skipped_reasons or {})
        reasons.update(walk.dropped)
        log.skipped_reasons = dict(reasons)
        log.skipped = sum(reasons.values())
        if error:
            log.errors = [*(log.errors or []), error]
        log.finished_at = log.finished_at or timezone.now()
        log.save(update_fields=["skipped_reasons", "skipped", "errors", "finished_at"])
        batch.state = state
        batch.error = error
        batch.process = log
        batch.selected = walk.selected
        batch.prepared = walk.selected
        batch.queued = earlier_queued + log.queued
        # "Already queued" are the earlier runs' messages (counted in queued above), not drops.
        drops = {r: n for r, n in log.skipped_reasons.items() if r != "already_queued"}
        batch.dropped = sum(drops.values())
        batch.dropped_reasons = drops
        batch.credits = earlier_credits + log.credits
        batch.finished_at = timezone.now()
        batch.save(update_fields=["state", "error", "process", "selected", "prepared", "queued", "dropped",
                                  "dropped_reasons", "credits", "finished_at"])
        audit_record(action=AuditAction.BULK_SEND_QUEUED, actor=batch.created_by, entity=batch.entity, target=batch,
                     subject=batch.get_batch_type_display(),
                     after={"stage": "batch " + state, "queued": batch.queued, "dropped": batch.dropped_reasons,
                            "credits": batch.credits, "error": error or None})


# A run that has written nothing to its process log this long after it started has died before
# queuing (rendering a million texts takes minutes, not this).
RUN_DIED_AFTER = dt.timedelta(hours=1)
_SWEPT = "The run stopped before it finished"


def batch_refresh_if_died(*, batch: MessageBatch) -> MessageBatch:
    """A batch still shown as sending whose run died (the worker was killed): its process log was
    settled by the sweeper (messaging's reservations), or it never got one; mark it failed with
    what was queued, so its page stops waiting. A live run is left alone."""
    if batch.state != BatchState.RUNNING:
        return batch
    log = selectors.batch_run_log(batch=batch)
    swept = log is not None and log.finished_at is not None and any(_SWEPT in e for e in (log.errors or []))
    never_logged = log is None and batch.started_at is not None and timezone.now() - batch.started_at > RUN_DIED_AFTER
    if not (swept or never_logged):
        return batch
    if not MessageBatch.objects.filter(pk=batch.pk, state=BatchState.RUNNING).update(state=BatchState.FAILED):
        batch.refresh_from_db()
        return batch
    batch.refresh_from_db()
    walk = Walk(selected=batch.selected)
    _finish(batch, walk=walk, log=log, state=BatchState.FAILED,
            error="The run stopped before it finished (the worker ended); what it queued stays, the rest of its "
                  "credits were refunded. Resume the batch to reach the others: those it queued "
                  "already are not sent again.")
    return batch


def batch_resume(*, actor, entity: Entity, batch_id: int) -> MessageBatch:
    """Run a failed batch again, the same batch row with the same key prefix: the clients its
    earlier run queued meet their outbox keys (`batch:<key>:c<client>`) and are skipped, so each
    client gets the batch once and pays once; those it had not reached yet are sent now, with
    the same criteria and day. Needs the same right as sending. Audited."""
    _require(actor, entity)
    with transaction.atomic():
        try:
            batch = MessageBatch.objects.select_for_update().get(entity=entity, pk=batch_id)
        except MessageBatch.DoesNotExist:
            raise _error("batch", BatchError.NOT_RESUMABLE, "No such batch in your entity.") from None
        if batch.state != BatchState.FAILED:
            raise _error("batch", BatchError.NOT_RESUMABLE,
                         f"Only a failed batch can be resumed; this one is {batch.get_state_display().lower()}.")
        before = {"state": batch.state, "queued": batch.queued, "error": batch.error}
        batch.state = BatchState.QUEUED
        batch.error = ""
        batch.process = None
        batch.finished_at = None
        batch.save(update_fields=["state", "error", "process", "finished_at"])
        audit_record(action=AuditAction.BULK_SEND_QUEUED, actor=actor, entity=entity, target=batch,
                     subject=batch.get_batch_type_display(), before=before,
                     after={"stage": "batch resumed", "state": batch.state, "background": batch.background})
    if batch.background:
        from .tasks import batch_run_task

        transaction.on_commit(lambda: batch_run_task(batch.pk))
    else:
        batch_run(batch_id=batch.pk)
        batch.refresh_from_db()
    return batch


# --- a recipient list chosen elsewhere (client marketing) ------------------------------------------
def recipient_list(*, entity: Entity, rows: Iterable[tuple[int, str, bool, Mapping]], key_prefix: str, walk: Walk,
                   on_row=None) -> Iterator[BulkRecipient]:
    """Recipients of a direct-marketing send to clients another screen chose (client marketing's
    ticked rows), with the same drops as a CRM batch: no cellphone, a number already in the list,
    answered STOP, no marketing consent (unless the entity needs none). `rows` are (client id,
    cellphone, consent, merge values), in the order to send; dropped clients are counted in `walk`."""
    consent_needed = not entity.marketing_consent_not_required
    opted_out = selectors.opted_out_numbers(entity=entity)
    seen: set[str] = set()
    dropped = walk.dropped
    for cid, cellphone, consent, values in rows:
        walk.selected += 1
        if on_row is not None:
            on_row(walk.selected)
        if not cellphone:
            dropped[DropReason.NO_CELLPHONE.value] += 1
        elif cellphone in seen:
            dropped[DropReason.DUPLICATE_NUMBER.value] += 1
        elif cellphone in opted_out:
            dropped[DropReason.OPTED_OUT.value] += 1
        elif consent_needed and not consent:
            dropped[DropReason.NO_CONSENT.value] += 1
        else:
            seen.add(cellphone)
            yield BulkRecipient(f"{key_prefix}:c{cid}", cellphone, values, client_id=cid)


def recipient_list_send(*, actor, entity: Entity, text: str, recipients: Iterable[BulkRecipient], walk: Walk,
                        kind: str, criteria: Mapping) -> ProcessLog:
    """Queue a direct-marketing text to a recipient list through the bulk path
    (messages_enqueue_bulk: credits reserved once, CPA hours, opt-out text, idempotent keys) and put
    the list's own drops into the run's one process-log entry."""
    from imali.messaging.models import MessageType

    text = policy.marketing_text(entity=entity, text=text)
    log = messages_enqueue_bulk(entity=entity, actor=actor, message_type=MessageType.MARKETING, text=text,
                                recipients=recipients, kind=kind, criteria=dict(criteria))
    with transaction.atomic():
        log = ProcessLog.objects.select_for_update().get(pk=log.pk)
        reasons = Counter(log.skipped_reasons or {})
        reasons.update(walk.dropped)
        log.skipped_reasons = dict(reasons)
        log.skipped = sum(reasons.values())
        log.save(update_fields=["skipped_reasons", "skipped"])
    return log
