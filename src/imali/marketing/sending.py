"""Send from a data set (seed 002, "Send SMS Messages" / "Send Emails"): choose a custom message
and the recipients (every row, or the rows ticked), preview (how many, who is left out and why,
credits needed against credits left), send.

SMS goes through the message-batch path (`batches.services.recipient_list` drops as a CRM batch
does; `recipient_list_send` queues through `messaging.services.messages_enqueue_bulk`: credits
reserved once, the CPA Regulation 4 hours, the sender's name and STOP text, one outbox key per
send and client). Email goes through `messaging.email.services.emails_send` (one credit per email,
refused outside the direct-marketing hours). Either writes one process-log entry per send.

The merge fields take their values from the data set's row (what the staff saw), the cellphone,
email address and consent from the client as it is now (a STOP since the run counts)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from imali.batches.services import Walk, drop_label, recipient_list, recipient_list_send
from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.messaging import credits, policy
from imali.messaging.email.rules import address_problem
from imali.messaging.models import Channel, MessageType, ProcessLog
from imali.messaging.segments import segment_count
from imali.messaging.services import merge_values
from imali.messaging.templating import Compiled, TemplateError
from imali.tenancy.models import Entity

from .errors import MarketingError
from .models import (
    CustomMessage,
    DataSet,
    DataSetRow,
    DataSetState,
    MarketingSend,
    MessageChannel,
    SendState,
)
from .services import _error, local_today, require_right

PROCESS_KIND = "client_marketing"
# A send to more recipients than this runs on the Huey consumer.
BACKGROUND_FROM = 2000
MAX_TICKED = 5000

# The row's columns a send reads, in this order (one query, streamed).
_SEND_COLUMNS = ("client_id", "client__cellphone", "client__marketing_consent", "client__email", "name", "full_names",
                 "surname", "client_number", "home_branch", "client__branch__name", "client__branch__telephone",
                 "next_date_due", "next_amount_due", "settlement", "outstanding", "change_available", "non_loan_debt")

EMAIL_DROPS = {"no_email": "No email address", "invalid_email": "Email address not valid",
               "duplicate_email": "Email address shared with another client in the send"}


def _label(reason: str) -> str:
    return EMAIL_DROPS.get(reason) or drop_label(reason)


def dropped_rows(dropped: dict[str, int]) -> list[tuple[str, str, int]]:
    return [(r, _label(r), n) for r, n in sorted(dropped.items()) if n]


def _rows(dataset: DataSet, row_ids: Sequence[int]) -> Iterator[tuple]:
    rows = DataSetRow.objects.filter(dataset=dataset)
    if row_ids:
        rows = rows.filter(pk__in=list(row_ids))
    return rows.order_by("seq").values_list(*_SEND_COLUMNS).iterator(chunk_size=5000)


def _values(row: tuple, common: dict, currency: str, money: dict) -> dict:
    (_cid, _cell, _consent, _email, name, full_names, surname, number, _home, branch, branch_tel, next_day, next_amount,
     settlement, outstanding, change, debt) = row

    def fmt(amount) -> str:
        found = money.get(amount)
        if found is None:
            found = money[amount] = f"{currency} {Decimal(amount):,.2f}"
        return found

    values = dict(common)
    values.update({"Client Name": name or (full_names or "").split(" ")[0], "Client Surname": surname,
                   "Client Account Number": str(number), "Branch Name": branch or "", "Branch Telephone": branch_tel or ""})
    if outstanding:
        values["Client Total Outstanding Loan Amount"] = fmt(outstanding)
    if settlement is not None:
        values["Client Total Settlement Amount"] = fmt(settlement)
    if next_day is not None:
        values["Next Date Due"] = next_day.isoformat() if hasattr(next_day, "isoformat") else str(next_day)
        values["Next Amount Due"] = fmt(next_amount or 0)
    if change is not None:
        values["Change"] = fmt(change)
    if debt is not None:
        values["Non-loan Debits"] = fmt(debt)
    return values


def _sms_rows(entity: Entity, dataset: DataSet, row_ids: Sequence[int], today: dt.date):
    common = merge_values(entity=entity, today=today)
    money: dict = {}
    for row in _rows(dataset, row_ids):
        yield row[0], row[1], row[2], _values(row, common, entity.currency, money)


def _email_recipients(entity: Entity, dataset: DataSet, row_ids: Sequence[int], today: dt.date, walk: Walk):
    """(client id, address, merge values) of each email recipient, with the drops of the SMS path
    (opted out by STOP, no consent) and the email ones (no address, not valid, shared)."""
    common = merge_values(entity=entity, today=today)
    money: dict = {}
    opted_out = selectors_opted_out(entity)
    consent_needed = not entity.marketing_consent_not_required
    seen: set[str] = set()
    for row in _rows(dataset, row_ids):
        cid, cellphone, consent, email = row[0], row[1], row[2], (row[3] or "").strip()
        walk.selected += 1
        if not email:
            walk.dropped["no_email"] += 1
        elif address_problem(email):
            walk.dropped["invalid_email"] += 1
        elif email.casefold() in seen:
            walk.dropped["duplicate_email"] += 1
        elif cellphone and cellphone in opted_out:
            walk.dropped["opted_out"] += 1
        elif consent_needed and not consent:
            walk.dropped["no_consent"] += 1
        else:
            seen.add(email.casefold())
            yield cid, email, _values(row, common, entity.currency, money)


def selectors_opted_out(entity: Entity) -> set[str]:
    from imali.batches.selectors import opted_out_numbers

    return opted_out_numbers(entity=entity)


# --- checks ------------------------------------------------------------------------------------
def _dataset(entity: Entity, dataset_id: int) -> DataSet:
    try:
        dataset = DataSet.objects.get(entity=entity, pk=dataset_id)
    except DataSet.DoesNotExist:
        raise _error("dataset", MarketingError.UNKNOWN_OBJECT, "No such data set in your entity.") from None
    if dataset.state != DataSetState.DONE:
        raise _error("dataset", MarketingError.NOT_READY, "The data set has not finished collecting; send once it is done.")
    return dataset


def _message(entity: Entity, message_id) -> CustomMessage:
    try:
        return CustomMessage.objects.get(entity=entity, pk=int(message_id), is_active=True)
    except (CustomMessage.DoesNotExist, TypeError, ValueError):
        raise _error("message", MarketingError.UNKNOWN_MESSAGE, "Choose one of your entity's custom messages.") from None


def _row_ids(dataset: DataSet, row_ids) -> list[int]:
    """The ticked rows, checked: whole numbers, at most MAX_TICKED, every one a row of this data set."""
    raw = [str(r) for r in row_ids or ()]
    if any(not (r.isascii() and r.isdigit() and 0 < int(r) < 2**63) for r in raw):
        raise _error("rows", MarketingError.NO_RECIPIENTS, "Rows are the numbers of the data set's rows.")
    ids = sorted({int(r) for r in raw})
    if len(ids) > MAX_TICKED:
        raise _error("rows", MarketingError.NO_RECIPIENTS, f"Tick at most {MAX_TICKED} rows, or send to all.")
    if ids and DataSetRow.objects.filter(dataset=dataset, pk__in=ids).count() != len(ids):
        raise _error("rows", MarketingError.NO_RECIPIENTS, "Some rows ticked are not rows of this data set.")
    return ids


@dataclass
class SendPreview:
    channel: str
    message: CustomMessage
    text: str  # as it goes out (SMS: with the sender's name and the STOP text)
    selected: int = 0
    recipients: int = 0
    dropped: dict = field(default_factory=dict)
    sample: str = ""
    credits_needed: int = 0
    credits_left: int = 0
    waits_until: dt.datetime | None = None

    @property
    def dropped_rows(self) -> list[tuple[str, str, int]]:
        return dropped_rows(self.dropped)

    @property
    def enough_credits(self) -> bool:
        return self.credits_needed <= self.credits_left

    @property
    def can_send(self) -> bool:
        return self.recipients > 0 and self.enough_credits


def send_preview(*, actor, entity: Entity, dataset_id: int, message_id, row_ids=(), today: dt.date | None = None) -> SendPreview:
    """What a send would do, nothing written: recipients, drops by reason, the first recipient's
    text, credits needed against credits left, and when messages outside the hours would go."""
    require_right(actor, entity)
    dataset = _dataset(entity, dataset_id)
    message = _message(entity, message_id)
    ids = _row_ids(dataset, row_ids)
    today = today or local_today(entity)
    walk = Walk()
    if message.channel == MessageChannel.SMS:
        text = policy.marketing_text(entity=entity, text=message.text)
        compiled = Compiled(text)
        preview = SendPreview(MessageChannel.SMS, message, text)
        for r in recipient_list(entity=entity, rows=_sms_rows(entity, dataset, ids, today), key_prefix="preview", walk=walk):
            try:
                body = compiled.render(r.values)
            except TemplateError:
                walk.dropped["render_failed"] += 1
                continue
            preview.recipients += 1
            preview.credits_needed += segment_count(body)
            preview.sample = preview.sample or body
        now = timezone.now()
        send_at = policy.next_allowed_send(entity=entity, message_type=MessageType.MARKETING, at=now)
        preview.waits_until = send_at if send_at != now else None
        preview.credits_left = credits.credit_balance(entity=entity, channel=Channel.SMS)
    else:
        text = message.text
        compiled = Compiled(text)
        preview = SendPreview(MessageChannel.EMAIL, message, text)
        for _cid, _address, values in _email_recipients(entity, dataset, ids, today, walk):
            try:
                body = compiled.render(values)
            except TemplateError:
                walk.dropped["render_failed"] += 1
                continue
            preview.recipients += 1
            preview.credits_needed += 1
            preview.sample = preview.sample or body
        preview.credits_left = credits.credit_balance(entity=entity, channel=Channel.EMAIL)
    preview.selected = walk.selected
    preview.dropped = dict(walk.dropped)
    return preview


def send_start(*, actor, entity: Entity, dataset_id: int, message_id, idempotency_key: str, row_ids=(),
               background: bool | None = None) -> tuple[MarketingSend, bool]:
    """Send: recorded once per (entity, key) — the same key again returns the send already made
    and sends nothing (True) — then run here, or on the consumer when it reaches BACKGROUND_FROM
    rows or more. Audited."""
    require_right(actor, entity)
    if not idempotency_key:
        raise _error("idempotency_key", MarketingError.REQUIRED, "An idempotency key is required.")
    found = MarketingSend.objects.filter(entity=entity, idempotency_key=idempotency_key).first()
    if found is not None:
        return _same_send(found, dataset_id=dataset_id, message_id=message_id, row_ids=row_ids), True
    dataset = _dataset(entity, dataset_id)
    message = _message(entity, message_id)
    ids = _row_ids(dataset, row_ids)
    if background is None:
        background = (len(ids) if ids else dataset.row_count) >= BACKGROUND_FROM
    try:
        with transaction.atomic():
            send = MarketingSend.objects.create(entity=entity, dataset=dataset, message=message, channel=message.channel,
                                                row_ids=ids, idempotency_key=idempotency_key, created_by=actor,
                                                background=background)
            audit_record(action=AuditAction.MARKETING_SENT, actor=actor, entity=entity, target=send,
                         subject=f"{message.get_channel_display()} {message.name}",
                         after={"stage": "send requested", "dataset": dataset.pk, "message": message.pk,
                                "rows": len(ids) or "all", "background": background})
    except IntegrityError:
        found = MarketingSend.objects.get(entity=entity, idempotency_key=idempotency_key)
        return _same_send(found, dataset_id=dataset.pk, message_id=message.pk, row_ids=ids), True
    if background:
        from .tasks import send_run_task

        transaction.on_commit(lambda: send_run_task(send.pk))
    else:
        send_run(send_id=send.pk)
        send.refresh_from_db()
    return send, False


def _same_send(found: MarketingSend, *, dataset_id, message_id, row_ids) -> MarketingSend:
    """The send made under a key, when asked again for the same one; a key used for another data
    set, message or rows is refused rather than answered with that other send (nothing would go,
    and the caller would read it as sent)."""
    try:
        asked = (int(dataset_id), int(message_id), sorted({int(r) for r in row_ids or ()}))
    except (TypeError, ValueError):
        asked = None
    if asked != (found.dataset_id, found.message_id, sorted(found.row_ids or ())):
        raise _error("idempotency_key", MarketingError.KEY_REUSED,
                     "This idempotency key was used for another send (another data set, message or rows): "
                     "use a new key for a new send.")
    return found


def send_run(*, send_id: int) -> MarketingSend:
    """Run a recorded send once (a task delivered twice runs it once; the outbox keys per send and
    client would queue nothing new anyway)."""
    if not MarketingSend.objects.filter(pk=send_id, state=SendState.QUEUED).update(state=SendState.RUNNING):
        return MarketingSend.objects.get(pk=send_id)
    send = MarketingSend.objects.select_related("entity", "created_by", "dataset", "message").get(pk=send_id)
    entity, actor, message = send.entity, send.created_by, send.message
    today = local_today(entity)
    walk = Walk()
    criteria = {"dataset": send.dataset_id, "send": send.pk, "message": message.name, "channel": send.channel,
                "rows": len(send.row_ids) or "all"}
    log: ProcessLog | None = None
    try:
        if send.channel == MessageChannel.SMS:
            recipients = recipient_list(entity=entity, rows=_sms_rows(entity, send.dataset, send.row_ids, today),
                                        key_prefix=f"marketing:{send.idempotency_key}", walk=walk)
            log = recipient_list_send(actor=actor, entity=entity, text=message.text, recipients=recipients, walk=walk,
                                      kind=PROCESS_KIND, criteria=criteria)
        else:
            log = _email_send(send, walk, today, criteria)
    except Exception as exc:
        error = "; ".join(getattr(exc, "messages", None) or [str(exc)])[:500]
        _finish(send, walk, log, SendState.FAILED, error)
        if isinstance(exc, ValidationError):
            return send
        raise
    _finish(send, walk, log, SendState.DONE, "")
    return send


def _email_send(send: MarketingSend, walk: Walk, today: dt.date, criteria: dict) -> ProcessLog:
    from imali.messaging.email.services import EmailRecipient, emails_send
    from imali.tenancy.rights import Right

    entity, message = send.entity, send.message
    compiled = Compiled(message.text)
    recipients = []
    for cid, address, values in _email_recipients(entity, send.dataset, send.row_ids, today, walk):
        try:
            compiled.render(values)
        except TemplateError:
            walk.dropped["render_failed"] += 1
            continue
        recipients.append(EmailRecipient(address, values, cid))
    if not recipients:
        raise _error("rows", MarketingError.NO_RECIPIENTS, "Nobody in the rows chosen can get this email.")
    result = emails_send(actor=send.created_by, entity=entity, message_type=MessageType.MARKETING, subject=message.subject,
                         text=message.text, recipients=recipients, idempotency_key=f"marketing:{send.idempotency_key}",
                         kind=PROCESS_KIND, right=Right.CLIENT_MARKETING, criteria=criteria)
    return result.process


def _finish(send: MarketingSend, walk: Walk, log: ProcessLog | None, state: str, error: str) -> None:
    with transaction.atomic():
        if log is None:
            log = ProcessLog.objects.create(entity=send.entity, actor=send.created_by, kind=PROCESS_KIND,
                                            message_type=MessageType.MARKETING,
                                            criteria={"dataset": send.dataset_id, "send": send.pk, "channel": send.channel})
        log = ProcessLog.objects.select_for_update().get(pk=log.pk)
        reasons = Counter(log.skipped_reasons or {})
        if send.channel == MessageChannel.EMAIL or error:
            # The SMS path put the list's drops in already (recipient_list_send).
            reasons.update(walk.dropped)
        log.skipped_reasons = dict(reasons)
        log.skipped = sum(reasons.values())
        if error:
            log.errors = [*(log.errors or []), error]
        log.finished_at = log.finished_at or timezone.now()
        log.save(update_fields=["skipped_reasons", "skipped", "errors", "finished_at"])
        send.state, send.error, send.process = state, error, log
        send.selected = walk.selected
        send.queued = log.queued
        send.dropped_reasons = dict(reasons)
        send.dropped = sum(reasons.values())
        send.credits = log.credits
        send.finished_at = timezone.now()
        send.save(update_fields=["state", "error", "process", "selected", "queued", "dropped", "dropped_reasons",
                                 "credits", "finished_at"])
        audit_record(action=AuditAction.MARKETING_SENT, actor=send.created_by, entity=send.entity, target=send,
                     subject=f"{send.get_channel_display()} {send.message.name}",
                     after={"stage": "send " + state, "queued": send.queued, "dropped": send.dropped_reasons,
                            "credits": send.credits, "error": error or None})


def send_list(*, entity: Entity, dataset: DataSet | None = None):
    qs = MarketingSend.objects.filter(entity=entity).select_related("message", "created_by", "process")
    return qs.filter(dataset=dataset) if dataset is not None else qs

