"""Every write of messaging: templates, single and bulk enqueue, delivery reports, inbound messages.

Messages are written to the outbox in the caller's transaction, together with the credit debit
that pays for them: the event that causes a message and the message commit or roll back together.
A bulk run instead reserves its credits, writes outside the ledger lock and settles after (see
`messages_enqueue_bulk`).
"""

from __future__ import annotations

import datetime as dt
import marshal
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.utils import timezone

from imali.clients.models import Client
from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.core.phones import parse_phone
from imali.tenancy.models import Entity
from imali.tenancy.rights import Right

from . import credits
from .defaults import DEFAULT_TEXTS
from .errors import MessagingError, SkipReason, messaging_error
from .models import (
    Channel,
    CreditReservation,
    MarketingOptOut,
    MessageTemplate,
    MessageType,
    OutboxMessage,
    OutboxStatus,
    ProcessLog,
    ReservationStatus,
    TemplateRevision,
    priority_for,
)
from .policy import (
    DIRECT_MARKETING_TYPES,
    consent_required,
    marketing_text,
    next_allowed_send,
    require_message_type_enabled,
)
from .segments import analyse, segment_count
from .templating import (
    Compiled,
    TemplateError,
    fields_used,
    render,
    saved_template_problems,
    template_problems,
)

# ---------------------------------------------------------------------------------------------
# Templates


def template_text(*, entity: Entity, message_type: str, channel: str = Channel.SMS) -> str:
    saved = MessageTemplate.objects.filter(entity=entity, channel=channel, message_type=message_type).values_list("text", flat=True).first()
    return saved if saved is not None else DEFAULT_TEXTS.get(message_type, "")


def _template_validation_error(problems) -> ValidationError:
    return ValidationError({"text": [ValidationError(p.message, code=p.code.value, params={"field": p.field}) for p in problems]})


def template_update(*, actor, entity: Entity, message_type: str, text: str, channel: str = Channel.SMS) -> MessageTemplate:
    needed = Right.MAXMAIL_MESSAGE_SETUP if channel == Channel.EMAIL else Right.MAXSMS_MESSAGE_SETUP
    if not actor.has_right(needed) or actor.entity_id != entity.pk:
        raise PermissionDenied(f"You need the {needed.label} right of this entity.")
    if message_type not in MessageType.values:
        raise messaging_error("message_type", MessagingError.UNKNOWN_MESSAGE_TYPE, f"Unknown message type '{message_type}'.")
    text = text.strip()
    problems = saved_template_problems(text, channel=channel, message_type=message_type)
    if problems:
        raise _template_validation_error(problems)
    with transaction.atomic():
        template = MessageTemplate.objects.select_for_update().filter(entity=entity, channel=channel, message_type=message_type).first()
        old = template.text if template is not None else DEFAULT_TEXTS.get(message_type, "")
        if template is None:
            template = MessageTemplate.objects.create(entity=entity, channel=channel, message_type=message_type, text=text, updated_by=actor)
        else:
            template.text = text
            template.updated_by = actor
            template.save(update_fields=["text", "updated_by", "updated_at"])
        TemplateRevision.objects.create(template=template, entity=entity, old_text=old, new_text=text, changed_by=actor)
        audit_record(action=AuditAction.TEMPLATE_UPDATED, actor=actor, entity=entity, target=template,
                     subject=message_type, before={"text": old}, after={"text": text})
    return template


def merge_values(*, entity: Entity, client=None, extra: Mapping[str, object] | None = None, today: dt.date | None = None) -> dict[str, object]:
    """The merge-field values known without loan figures; loan fields come in `extra` from the loans app."""
    today = today or timezone.localdate(timezone=_tz(entity))
    values: dict[str, object] = {
        "Date Today": today.isoformat(),
        "Date Today Plus 7 Days": (today + dt.timedelta(days=7)).isoformat(),
        "Date Today Plus 30 Days": (today + dt.timedelta(days=30)).isoformat(),
        "Legal Entity Name": entity.name,
    }
    if client is not None:
        values.update({
            "Client Name": client.name or client.full_names.split(" ")[0],
            "Client Surname": client.surname,
            "Client Account Number": str(client.number),
            "Branch Name": client.branch.name,
            "Branch Telephone": client.branch.telephone,
        })
    if extra:
        values.update(extra)
    return values


def _tz(entity: Entity):
    import zoneinfo

    return zoneinfo.ZoneInfo(entity.time_zone)


# The merge fields whose values come from the loan book.
LOAN_FIELDS = frozenset({"Loan Amount", "Instalment Amount", "Next Date Due", "Next Amount Due",
                         "Client Total Settlement Amount", "Client Total Outstanding Loan Amount", "Change",
                         "Non-loan Debits"})


def client_loan_values(*, entity: Entity, client, today: dt.date | None = None) -> dict[str, object]:
    """The loan merge fields of one client, read from the loan book (its public selectors), money as
    "ZAR 1,234.50" and dates as the other date fields. A field with no value (no loan, nothing due)
    is left out, so a message that needs it is refused rather than sent with a gap.

    Loan Amount and Instalment Amount are those of the client's latest disbursed loan; the totals
    and the next due date and amount cover every loan still on the book."""
    from imali.loans.models import DISBURSED_STATUSES
    from imali.loans.selectors import client_figures, loan_list

    today = today or timezone.localdate(timezone=_tz(entity))

    def money(amount) -> str:
        return f"{entity.currency} {amount:,.2f}"

    values: dict[str, object] = {}
    latest = (loan_list(entity=entity, client_id=client.pk).select_related(None).filter(status__in=DISBURSED_STATUSES)
              .order_by("-disbursed_on", "-id").only("principal", "instalment_amount").first())
    if latest is not None:
        values["Loan Amount"] = money(latest.principal)
        values["Instalment Amount"] = money(latest.instalment_amount)
    figures = client_figures(entity=entity, client_id=client.pk, as_of=today)
    if figures.open_loans:
        values["Client Total Outstanding Loan Amount"] = money(figures.outstanding)
        values["Client Total Settlement Amount"] = money(figures.settlement)
        if figures.next_due_date is not None:
            values["Next Date Due"] = figures.next_due_date.isoformat()
            values["Next Amount Due"] = money(figures.next_amount_due)
    values["Change"] = money(figures.change_available)
    values["Non-loan Debits"] = money(figures.non_loan_debt)
    return values


def _loan_values_if_used(*, entity: Entity, client, text: str) -> dict[str, object]:
    # The loan book is read only when the text names one of its fields.
    if client is None or not LOAN_FIELDS.intersection(fields_used(text)):
        return {}
    return client_loan_values(entity=entity, client=client)


@dataclass(frozen=True)
class Preview:
    text: str
    segments: int
    encoding: str
    ucs2_characters: tuple[str, ...]
    problems: tuple[str, ...]


def template_preview(*, entity: Entity, text: str, client=None, extra: Mapping[str, object] | None = None) -> Preview:
    """What the message would look like for `client`, with its segments and credits; fields without
    a value yet (loan figures of a client with no loan) show as [Field Name]."""
    problems = tuple(p.message for p in template_problems(text))
    extra = {**_loan_values_if_used(entity=entity, client=client, text=text), **(extra or {})}
    rendered = render(text, merge_values(entity=entity, client=client, extra=extra), missing="[{}]")
    info = analyse(rendered)
    return Preview(rendered, info.segments, info.encoding.value, info.ucs2_characters, problems)


# ---------------------------------------------------------------------------------------------
# Single enqueue


def _existing(entity: Entity, key: str) -> OutboxMessage | None:
    return OutboxMessage.objects.filter(entity=entity, idempotency_key=key).first()


def message_enqueue(*, entity: Entity, number: str, text: str, message_type: str, idempotency_key: str,
                    client=None, user=None, actor=None, channel: str = Channel.SMS,
                    now: dt.datetime | None = None, content_type: str | None = None) -> OutboxMessage:
    """Queue one SMS in the caller's transaction, paid for by its segments. The same key again
    returns the message already queued and costs nothing.

    The entity's policy (messaging.policy) applies: a type switched off is refused; direct
    marketing is refused to a number that answered STOP, gets the sender's name and the opt-out
    instruction when it lacks them, and waits until the CPA Regulation 4 hours when queued outside
    them. `content_type` is the type whose rules the content follows when it differs from the
    row's type (a single SMS started from the CRM template is CRM content)."""
    if message_type not in MessageType.values:
        raise messaging_error("message_type", MessagingError.UNKNOWN_MESSAGE_TYPE, f"Unknown message type '{message_type}'.")
    content_type = content_type or message_type
    require_message_type_enabled(entity=entity, message_type=message_type)
    if content_type != message_type:
        require_message_type_enabled(entity=entity, message_type=content_type)
    if not idempotency_key:
        raise messaging_error("idempotency_key", MessagingError.IDEMPOTENCY_KEY_MISSING, "An idempotency key is required.")
    if client is not None and client.entity_id != entity.pk:
        raise PermissionDenied("The client belongs to another entity.")
    if user is not None and user.entity_id not in (None, entity.pk):
        raise PermissionDenied("The user belongs to another entity.")
    if not text.strip():
        raise messaging_error("text", MessagingError.TEMPLATE_EMPTY, "The message is empty.")
    e164 = parse_phone(number, country=entity.country, field="number", mobile=True)
    marketing = content_type in DIRECT_MARKETING_TYPES
    if marketing and MarketingOptOut.objects.filter(entity=entity, number=e164).exists():
        raise messaging_error("number", MessagingError.OPTED_OUT, f"{e164} answered STOP and receives no marketing.")
    now = now or timezone.now()
    if marketing:
        text = marketing_text(entity=entity, text=text)
    send_at = next_allowed_send(entity=entity, message_type=content_type, at=now)
    segments = segment_count(text)
    with transaction.atomic():
        # The ledger lock also serialises two callers racing with the same key.
        credits.credit_account_get(entity=entity, channel=channel)
        credits._locked(entity, channel)
        found = _existing(entity, idempotency_key)
        if found is not None:
            return found
        try:
            with transaction.atomic():
                credits.credits_debit(entity=entity, channel=channel, amount=segments, messages=1,
                                      reference=f"msg:{idempotency_key}", actor=actor, now=now)
                message = OutboxMessage.objects.create(
                    entity=entity, client=client, user=user, created_by=actor if getattr(actor, "pk", None) else None,
                    channel=channel, number=e164, country=_country_of(e164), message_type=message_type, text=text,
                    segments=segments, credits=segments, priority=priority_for(message_type),
                    idempotency_key=idempotency_key, next_attempt_at=send_at, created_at=now,
                    scheduled_for=send_at if send_at != now else None)
        except IntegrityError:
            # A bulk run writes without the ledger lock and queued this key meanwhile: the debit
            # went back with the savepoint, and the message already queued is the answer.
            found = _existing(entity, idempotency_key)
            if found is None:
                raise
            return found
    return message


@dataclass(frozen=True)
class Outgoing:
    """One message of `messages_enqueue_many`."""

    number: str
    text: str
    idempotency_key: str
    client: object = None
    user: object = None


def messages_enqueue_many(*, entity: Entity, message_type: str, messages: Sequence[Outgoing],
                          now: dt.datetime | None = None) -> list[OutboxMessage | ValidationError]:
    """`message_enqueue` for several messages of one entity and one type that is not direct
    marketing (answers to a burst of inbound SMS): one ledger lock, one look-up of the keys already
    queued, one debit for them all and one INSERT, instead of each of those per message. Returns,
    in order, each message queued (or the one already queued with its key) or the error that
    refused it. When the batch as a whole cannot be paid (credits, monthly limit) the messages are
    queued one by one, so as many go as the credits allow, each refusal naming its reason."""
    if message_type in DIRECT_MARKETING_TYPES or message_type not in MessageType.values:
        raise ValueError("messages_enqueue_many takes one type that is not direct marketing")
    require_message_type_enabled(entity=entity, message_type=message_type)
    now = now or timezone.now()
    results: list[OutboxMessage | ValidationError | None] = [None] * len(messages)
    ready: dict[str, tuple[int, str, int]] = {}  # key -> (index, e164, segments)
    for i, m in enumerate(messages):
        if m.client is not None and m.client.entity_id != entity.pk:
            raise PermissionDenied("The client belongs to another entity.")
        if m.user is not None and m.user.entity_id not in (None, entity.pk):
            raise PermissionDenied("The user belongs to another entity.")
        try:
            if not m.idempotency_key:
                raise messaging_error("idempotency_key", MessagingError.IDEMPOTENCY_KEY_MISSING, "An idempotency key is required.")
            if not m.text.strip():
                raise messaging_error("text", MessagingError.TEMPLATE_EMPTY, "The message is empty.")
            e164 = parse_phone(m.number, country=entity.country, field="number", mobile=True)
        except ValidationError as exc:
            results[i] = exc
            continue
        if m.idempotency_key not in ready:
            ready[m.idempotency_key] = (i, e164, segment_count(m.text))
    if ready:
        with transaction.atomic():
            credits.credit_account_get(entity=entity, channel=Channel.SMS)
            credits._locked(entity, Channel.SMS)
            found = {o.idempotency_key: o for o in OutboxMessage.objects.filter(entity=entity,
                                                                                idempotency_key__in=list(ready))}
            new = {k: v for k, v in ready.items() if k not in found}
            total = sum(seg for _, _, seg in new.values())
            try:
                with transaction.atomic():
                    if new:
                        first = next(iter(new))
                        credits.credits_debit(entity=entity, channel=Channel.SMS, amount=total, messages=len(new),
                                              reference=f"msg:{first}"[:100] + (f" +{len(new) - 1}" if len(new) > 1 else ""),
                                              now=now)
                        rows = [OutboxMessage(
                            entity=entity, client=messages[i].client, user=messages[i].user, channel=Channel.SMS,
                            number=e164, country=_country_of(e164), message_type=message_type, text=messages[i].text,
                            segments=seg, credits=seg, priority=priority_for(message_type), idempotency_key=key,
                            next_attempt_at=now, created_at=now) for key, (i, e164, seg) in new.items()]
                        found.update((o.idempotency_key, o) for o in OutboxMessage.objects.bulk_create(rows))
            except (ValidationError, IntegrityError):
                # Not enough credits for all of them, or a key queued meanwhile: one by one.
                for key, (i, _, _) in new.items():
                    m = messages[i]
                    try:
                        found[key] = message_enqueue(entity=entity, number=m.number, text=m.text, message_type=message_type,
                                                     idempotency_key=key, client=m.client, user=m.user, now=now)
                    except ValidationError as exc:
                        results[i] = exc
    for i, m in enumerate(messages):
        if results[i] is None:
            results[i] = found[m.idempotency_key]
    return results  # type: ignore[return-value]


_DIALLING = {"27": "ZA", "264": "NA", "267": "BW", "268": "SZ", "260": "ZM"}


def _country_of(e164: str) -> str:
    for prefix in (e164[1:4], e164[1:3]):
        if prefix in _DIALLING:
            return _DIALLING[prefix]
    return ""


# Templates a user may pick for a single SMS: every type but the OTP, whose code only the signing app knows.
SINGLE_SMS_TEMPLATE_TYPES: tuple[str, ...] = tuple(t for t in MessageType.values if t != MessageType.OTP)


def single_sms_templates(*, entity: Entity) -> list[tuple[str, str, str]]:
    """(type, label, text) of the templates a single SMS may start from, in two queries at most."""
    saved = dict(MessageTemplate.objects.filter(entity=entity, channel=Channel.SMS).values_list("message_type", "text"))
    return [(t, MessageType(t).label, saved.get(t, DEFAULT_TEXTS.get(t, ""))) for t in SINGLE_SMS_TEMPLATE_TYPES]


def single_sms_text(*, entity: Entity, client, template: str = "", text: str = "") -> str:
    """The final text of a single SMS: the entity's template `template` merged for `client`, or
    the free `text`; exactly one of the two. A field with no value for this client (a loan
    figure of a client without a loan) is an error on `template`, never a gap in the message."""
    template, text = (template or "").strip(), (text or "").strip()
    if template and text:
        raise messaging_error("template", MessagingError.TEMPLATE_AND_TEXT, "Choose a template or type a message, not both.")
    if template:
        if template not in SINGLE_SMS_TEMPLATE_TYPES:
            raise messaging_error("template", MessagingError.UNKNOWN_TEMPLATE, f"Unknown template '{template}'.")
        source = template_text(entity=entity, message_type=template)
        try:
            merged = render(source, merge_values(entity=entity, client=client,
                                                 extra=_loan_values_if_used(entity=entity, client=client, text=source)))
            # Direct marketing names the sender and the opt-out: the preview shows what is sent.
            return marketing_text(entity=entity, text=merged) if template in DIRECT_MARKETING_TYPES else merged
        except TemplateError as exc:
            raise ValidationError({"template": [
                ValidationError(f"The template '{MessageType(template).label}' uses {{^{p.field}^}}, which has no value "
                                f"for this client.", code=p.code.value) for p in exc.problems]}) from None
    if not text:
        raise messaging_error("text", MessagingError.TEMPLATE_EMPTY, "Choose a template or type a message.")
    # Typed text follows the template rules and is merged for the client, so "{^Nmae^}" or a
    # stray "{^" is refused here rather than reaching the client's phone as typed.
    problems = template_problems(text)
    if problems:
        raise _template_validation_error(problems)
    if fields_used(text):
        try:
            text = render(text, merge_values(entity=entity, client=client,
                                             extra=_loan_values_if_used(entity=entity, client=client, text=text)))
        except TemplateError as exc:
            raise ValidationError({"text": [
                ValidationError(f"The field {{^{p.field}^}} has no value for this client.", code=p.code.value)
                for p in exc.problems]}) from None
    if len(text) > SINGLE_SMS_MAX_LENGTH:
        raise messaging_error("text", MessagingError.TOO_LONG,
                              f"A single SMS may have at most {SINGLE_SMS_MAX_LENGTH} characters; this one has {len(text)}.")
    return text


# Six GSM-7 parts: longer texts are refused rather than billed as a surprise.
SINGLE_SMS_MAX_LENGTH = 918


@dataclass(frozen=True)
class SingleSmsPreview:
    """What the user confirms before a single SMS is sent: the final text, its cost, and whether it can go."""

    text: str
    number: str
    segments: int
    encoding: str  # "gsm7" or "ucs2"
    ucs2_characters: tuple[str, ...]
    credits: int
    balance: int

    @property
    def encoding_label(self) -> str:
        return "UCS-2" if self.encoding == "ucs2" else "GSM-7"


def _single_sms_checks(*, actor, entity: Entity, client, template: str) -> None:
    if not actor.has_right(Right.SEND_SINGLE_SMS) or actor.entity_id != entity.pk:
        raise PermissionDenied("You need the 'SMS: send single SMS' right of this entity.")
    if client.entity_id != entity.pk:
        raise PermissionDenied("The client belongs to another entity.")
    require_message_type_enabled(entity=entity, message_type=MessageType.SINGLE, field="template")
    if template in MessageType.values:
        require_message_type_enabled(entity=entity, message_type=template, field="template")
    if not client.cellphone:
        raise messaging_error("client", MessagingError.NO_CELLPHONE,
                              "The client has no cellphone number: add one on the client's details first.")
    if template in DIRECT_MARKETING_TYPES and MarketingOptOut.objects.filter(entity=entity, number=client.cellphone).exists():
        raise messaging_error("client", MessagingError.OPTED_OUT,
                              f"The client answered STOP from {client.cellphone} and receives no marketing.")
    # Direct marketing goes only to clients who agreed to it (STOP withdraws it), unless the entity needs no consent.
    if consent_required(entity=entity, message_type=template) and not client.marketing_consent:
        raise messaging_error("client", MessagingError.NO_MARKETING_CONSENT,
                              "The client has not agreed to marketing messages (see the client's consent).")


def single_sms_preview(*, actor, entity: Entity, client, template: str = "", text: str = "") -> SingleSmsPreview:
    """The confirm step of the "SMS Client" screen: the same checks as the send, nothing written.
    Too few credits is an error here already, so the user never confirms a send that will be refused."""
    _single_sms_checks(actor=actor, entity=entity, client=client, template=template)
    final = single_sms_text(entity=entity, client=client, template=template, text=text)
    info = analyse(final)
    balance = credits.credit_balance(entity=entity, channel=Channel.SMS)
    preview = SingleSmsPreview(final, client.cellphone, info.segments, info.encoding.value, info.ucs2_characters,
                               info.segments, balance)
    if balance < preview.credits:
        raise messaging_error("credits", MessagingError.INSUFFICIENT_CREDITS,
                              f"Not enough SMS credits: {balance} left, this SMS needs {preview.credits}.")
    return preview


def single_sms_send(*, actor, entity: Entity, client, idempotency_key: str, text: str = "", template: str = "") -> OutboxMessage:
    """A user sends one SMS to a client (the "SMS Client" screen and the API): a template merged
    for the client, or free text. Checked, paid for and audited in one transaction; the same key
    again returns the message already queued, costs nothing and is not audited twice."""
    _single_sms_checks(actor=actor, entity=entity, client=client, template=template)
    final = single_sms_text(entity=entity, client=client, template=template, text=text)
    if not idempotency_key:
        raise messaging_error("idempotency_key", MessagingError.IDEMPOTENCY_KEY_MISSING, "An idempotency key is required.")
    with transaction.atomic():
        # The ledger lock first: a double submit waits here and then finds the first one's message.
        credits.credit_account_get(entity=entity, channel=Channel.SMS)
        credits._locked(entity, Channel.SMS)
        found = _existing(entity, idempotency_key)
        if found is not None:
            return found
        message = message_enqueue(entity=entity, number=client.cellphone, text=final, message_type=MessageType.SINGLE,
                                  idempotency_key=idempotency_key, client=client, actor=actor,
                                  content_type=template if template in MessageType.values else None)
        audit_record(action=AuditAction.MESSAGE_QUEUED, actor=actor, entity=entity, target=message, subject=message.number,
                     after={"type": MessageType.SINGLE.value, "template": template or None, "segments": message.segments,
                            "credits": message.credits})
    return message


# ---------------------------------------------------------------------------------------------
# Bulk enqueue



@dataclass(frozen=True)
class BulkRecipient:
    idempotency_key: str
    number: str  # E.164, as stored on clients and users
    values: Mapping[str, object] = field(default_factory=dict)
    client_id: int | None = None
    user_id: int | None = None


def client_recipients(*, entity: Entity, clients, event: str, message_type: str,
                      extra: Mapping[int, Mapping[str, object]] | None = None) -> Iterable[BulkRecipient]:
    """Recipients for a client queryset in one query; the key ties each message to `event`."""
    today = timezone.localdate(timezone=_tz(entity))
    common = merge_values(entity=entity, today=today)
    rows = clients.filter(entity=entity).values_list("id", "number", "name", "full_names", "surname", "cellphone",
                                                     "branch__name", "branch__telephone").iterator(chunk_size=5000)
    for cid, number, name, full_names, surname, cellphone, branch_name, branch_tel in rows:
        values = dict(common)
        values.update({"Client Name": name or full_names.split(" ")[0], "Client Surname": surname,
                       "Client Account Number": str(number), "Branch Name": branch_name, "Branch Telephone": branch_tel})
        if extra and cid in extra:
            values.update(extra[cid])
        yield BulkRecipient(f"{message_type}:{event}:c{cid}", cellphone, values, client_id=cid)


# process_id last: rows are rendered and spooled before the run's process log exists.
_OUTBOX_COLUMNS = ("entity_id", "client_id", "user_id", "created_by_id", "channel", "number", "country", "message_type",
                   "text", "segments", "credits", "priority", "idempotency_key", "status", "gateway",
                   "provider_message_id", "attempts", "next_attempt_at", "error", "created_at", "scheduled_for",
                   "process_id")
# A spooled row holds only what differs between the messages of a run:
# (client_id, user_id, number, country, text, segments, idempotency_key).
_SPOOL_SEGMENTS, _SPOOL_KEY = 5, 6



def _default_chunk_rows() -> int:
    """Rows per chunk, one transaction each. On SQLite a chunk holds the database's write lock
    while it is written, so an OTP of any entity waits for at most one (small) chunk; on
    PostgreSQL nothing waits for a chunk and larger ones write faster."""
    return 20_000 if connection.vendor == "postgresql" else 8_000

# SQLite has no queue of writers: one waiting for the write lock polls (its busy handler sleeps
# up to 100 ms between tries) and would mostly miss the instant between two chunks. A pause after
# each chunk lets a waiting OTP in after at most one chunk (about 0.6 s per 100,000 rows).
SQLITE_GAP_BETWEEN_CHUNKS_S = 0.05
# A run whose last chunk committed this long ago has died: the sweeper settles its reservation.
RESERVATION_STALE_AFTER = dt.timedelta(minutes=10)


class ReservationClosed(RuntimeError):
    """The run's reservation was settled while it was still writing (the sweeper took it for dead)."""


class _Spool:
    """Rendered rows in marshalled chunks in a private temporary file (unlinked at once, mode
    0600): a million rows never sit in memory at once, and their total cost is known before
    anything is reserved or written."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()
        self.rows = 0
        self.credits = 0

    def write(self, batch: list[tuple]) -> None:
        if batch:
            blob = marshal.dumps(batch)
            # Length-prefixed: marshal.load on a file reads it piece by piece, six times slower.
            self.file.write(len(blob).to_bytes(8, "little"))
            self.file.write(blob)
            self.rows += len(batch)
            self.credits += sum(row[_SPOOL_SEGMENTS] for row in batch)

    def chunks(self) -> Iterator[list[tuple]]:
        self.file.seek(0)
        while size := int.from_bytes(self.file.read(8), "little"):
            yield marshal.loads(self.file.read(size))

    def without_queued(self, entity_id: int) -> _Spool:
        """A new spool without the keys already in the outbox: what a rerun actually has to pay for."""
        kept = _Spool()
        for batch in self.chunks():
            known = _keys_queued(entity_id, [row[_SPOOL_KEY] for row in batch])
            kept.write([row for row in batch if row[_SPOOL_KEY] not in known])
        self.close()
        return kept

    def close(self) -> None:
        self.file.close()


def _keys_queued(entity_id: int, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(keys), 500):
        found.update(OutboxMessage.objects.filter(entity_id=entity_id, idempotency_key__in=keys[i:i + 500])
                     .values_list("idempotency_key", flat=True))
    return found


def messages_enqueue_bulk(*, entity: Entity, actor, message_type: str, text: str, recipients: Iterable[BulkRecipient],
                          criteria: Mapping[str, object] | None = None, kind: str = "bulk_send",
                          channel: str = Channel.SMS, now: dt.datetime | None = None,
                          chunk_rows: int | None = None) -> ProcessLog:
    """Render, cost and queue a batch, paid for by one reservation, without holding the entity's
    ledger lock while the rows are written.

    1. Render every text and count its segments into a spool (no transaction, no lock).
    2. Reserve: one short transaction under the ledger lock creates the process log and debits
       the whole batch's credits (too few credits or the monthly limit refuses the batch here,
       nothing written). A batch refused for its full cost is costed again without the keys
       already queued, so a rerun of a queued batch is never refused.
    3. Write the rows chunk by chunk, one transaction each, skipping keys already queued
       (`ON CONFLICT DO NOTHING`; on PostgreSQL COPY, and only a chunk that meets a known key goes
       through a temporary table). OTPs of the entity take the ledger lock meanwhile.
    4. Settle in one short transaction: the credits of the rows written stay spent, the rest is
       refunded (keys already queued, a chunk that failed).

    A rerun with the same keys adds nothing and, once settled, costs nothing. A chunk that fails
    (a database error) stops the run: what was written stays, the rest is refunded, the error is
    in the process log, and the exception is raised. A run that dies (killed) leaves its
    reservation open; the next run of the same ledger, or the periodic sweeper, settles it once
    its heartbeat is older than RESERVATION_STALE_AFTER.
    """
    if message_type not in MessageType.values:
        raise messaging_error("message_type", MessagingError.UNKNOWN_MESSAGE_TYPE, f"Unknown message type '{message_type}'.")
    require_message_type_enabled(entity=entity, message_type=message_type)
    if message_type in DIRECT_MARKETING_TYPES:
        text = marketing_text(entity=entity, text=text)
    problems = template_problems(text)
    if problems:
        raise _template_validation_error(problems)
    now = now or timezone.now()
    # Direct marketing queued outside the CPA Regulation 4 hours waits until they open ("Scheduled").
    send_at = next_allowed_send(entity=entity, message_type=message_type, at=now)
    chunk_rows = chunk_rows or _default_chunk_rows()
    skipped: Counter[str] = Counter()
    errors: list[str] = []
    spool = _bulk_render(entity=entity, message_type=message_type, text=text, recipients=recipients,
                         chunk_rows=chunk_rows, skipped=skipped, errors=errors)
    candidates = spool.rows
    try:
        # A run of this ledger that died left its reservation open: settle it before reserving
        # again, so a rerun after a crash finds the ledger exact.
        bulk_reservations_settle_stale(entity=entity, channel=channel)
        try:
            log, reservation = _bulk_reserve(entity=entity, actor=actor, message_type=message_type, kind=kind,
                                             criteria=criteria, channel=channel, spool=spool, now=now)
        except ValidationError as exc:
            codes = {e.code for e in exc.error_dict.get("credits", [])} if hasattr(exc, "error_dict") else set()
            if not codes & {MessagingError.INSUFFICIENT_CREDITS.value, MessagingError.MONTHLY_LIMIT_REACHED.value}:
                raise
            spool = spool.without_queued(entity.pk)
            if spool.rows == candidates:
                raise
            log, reservation = _bulk_reserve(entity=entity, actor=actor, message_type=message_type, kind=kind,
                                             criteria=criteria, channel=channel, spool=spool, now=now)
        chunks = 0
        actor_id = actor.pk if getattr(actor, "pk", None) else None
        scheduled_db = connection.ops.adapt_datetimefield_value(send_at) if send_at != now else None
        fixed = (entity.pk, actor_id, channel, message_type, priority_for(message_type), OutboxStatus.QUEUED.value,
                 connection.ops.adapt_datetimefield_value(now), connection.ops.adapt_datetimefield_value(send_at),
                 scheduled_db, log.pk)
        try:
            for batch in spool.chunks():
                _bulk_chunk_write(_outbox_rows(batch, fixed), reservation_id=reservation.pk, process_id=log.pk)
                chunks += 1
                if connection.vendor == "sqlite":
                    time.sleep(SQLITE_GAP_BETWEEN_CHUNKS_S)
        except DatabaseError as exc:
            errors.append(f"Writing stopped at chunk {chunks + 1} of at most {chunk_rows} rows: {str(exc).strip()[:300]}")
            _bulk_settle(reservation_id=reservation.pk, settled_by="failed run", skipped=skipped, errors=errors)
            raise
    finally:
        spool.close()
    return _bulk_settle(reservation_id=reservation.pk, settled_by="run", skipped=skipped, errors=errors,
                        already_queued_of=candidates)


def _bulk_render(*, entity: Entity, message_type: str, text: str, recipients: Iterable[BulkRecipient], chunk_rows: int,
                 skipped: Counter, errors: list[str]) -> _Spool:
    compiled = Compiled(text)
    opted_out = set()
    if message_type in DIRECT_MARKETING_TYPES:
        opted_out = set(MarketingOptOut.objects.filter(entity=entity).values_list("number", flat=True))
    # Clients who did not agree to direct marketing, in one query: whichever caller built the
    # recipients (a batch, the automatic birthday greetings), they are dropped here.
    no_consent: set[int] = set()
    if consent_required(entity=entity, message_type=message_type):
        no_consent = set(Client.objects.filter(entity=entity, marketing_consent=False).values_list("pk", flat=True))
    countries: dict[str, str] = {}
    no_cellphone, invalid_number, opted_out_reason, twice, render_failed = (
        SkipReason.NO_CELLPHONE.value, SkipReason.INVALID_NUMBER.value, SkipReason.OPTED_OUT.value,
        SkipReason.ALREADY_QUEUED.value, SkipReason.RENDER_FAILED.value)
    no_consent_reason = SkipReason.NO_MARKETING_CONSENT.value
    seen: set[str] = set()
    spool = _Spool()
    batch: list[tuple] = []
    for r in recipients:
        number = r.number
        if not number:
            skipped[no_cellphone] += 1
            continue
        # Numbers on clients and users are stored E.164 already; this only guards the shape.
        if not (number[0] == "+" and 9 <= len(number) <= 16 and number[1:].isdigit()):
            skipped[invalid_number] += 1
            continue
        if number in opted_out:
            skipped[opted_out_reason] += 1
            continue
        if r.client_id in no_consent:
            skipped[no_consent_reason] += 1
            continue
        if r.idempotency_key in seen:
            skipped[twice] += 1
            continue
        try:
            body = compiled.render(r.values)
        except TemplateError as exc:
            skipped[render_failed] += 1
            if len(errors) < 20:
                errors.append(f"{r.idempotency_key}: {exc}")
            continue
        seen.add(r.idempotency_key)
        segs = segment_count(body)
        country = countries.get(number[:4])
        if country is None:
            country = countries[number[:4]] = _country_of(number)
        batch.append((r.client_id, r.user_id, number, country, body, segs, r.idempotency_key))
        if len(batch) >= chunk_rows:
            spool.write(batch)
            batch = []
    spool.write(batch)
    return spool


def _bulk_reserve(*, entity: Entity, actor, message_type: str, kind: str, criteria, channel: str, spool: _Spool,
                  now: dt.datetime) -> tuple[ProcessLog, CreditReservation]:
    """The run's one short transaction under the ledger lock: its process log, the debit of the
    whole batch as a reservation, and the audit entry."""
    actor = actor if getattr(actor, "pk", None) else None
    with transaction.atomic():
        log = ProcessLog.objects.create(entity=entity, actor=actor, kind=kind, message_type=message_type,
                                        criteria=dict(criteria or {}))
        reservation = credits.credits_reserve(entity=entity, channel=channel, amount=spool.credits, messages=spool.rows,
                                              process=log, actor=actor, now=now)
        audit_record(action=AuditAction.BULK_SEND_QUEUED, actor=actor, entity=entity, target=log, subject=message_type,
                     after={"stage": "reserved", "messages": spool.rows, "credits_reserved": spool.credits})
    return log, reservation


def _outbox_rows(batch: list[tuple], fixed: tuple) -> list[tuple]:
    """Spooled rows as outbox rows in `_OUTBOX_COLUMNS` order, built before the chunk's transaction."""
    entity_id, actor_id, channel, message_type, priority, queued, now_db, send_at_db, scheduled_db, process_id = fixed
    return [(entity_id, client_id, user_id, actor_id, channel, number, country, message_type, body, segs, segs,
             priority, key, queued, "", "", 0, send_at_db, "", now_db, scheduled_db, process_id)
            for client_id, user_id, number, country, body, segs, key in batch]


def _bulk_chunk_write(rows: list[tuple], *, reservation_id: int, process_id: int) -> None:
    """One chunk in one transaction, keys already queued skipped. The reservation's row is locked
    first and held until the chunk commits: settlement (by this run or the sweeper) waits for the
    chunk, and a reservation settled meanwhile stops the run before it writes a row unpaid."""
    table = OutboxMessage._meta.db_table
    cols = ", ".join(_OUTBOX_COLUMNS)
    with transaction.atomic():
        alive = (CreditReservation.objects.filter(pk=reservation_id, status=ReservationStatus.OPEN)
                 .update(heartbeat_at=timezone.now()))
        if not alive:
            raise ReservationClosed(f"The reservation of bulk run {process_id} was settled while the run was writing.")
        with connection.cursor() as cur:
            if connection.vendor != "postgresql":
                placeholders = ", ".join(["%s"] * len(_OUTBOX_COLUMNS))
                cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({placeholders}) "
                                "ON CONFLICT (entity_id, idempotency_key) DO NOTHING", rows)
                return
            from psycopg.errors import UniqueViolation

            raw = cur.cursor
            try:
                # Optimistic: COPY straight into the table (the first run of a batch meets no known key).
                with transaction.atomic():
                    with raw.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                        for row in rows:
                            copy.write_row(row)
                return
            except UniqueViolation:
                pass  # a key of this chunk is queued already (a rerun, or another writer): load it race-free below
            # Another writer may queue one of these keys at any moment (no lock is held against it),
            # so the known keys are skipped by the insert itself, not by a look-up before it.
            cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS imali_outbox_load ON COMMIT DELETE ROWS AS "
                        f"SELECT {cols} FROM {table} WITH NO DATA")
            with raw.copy(f"COPY imali_outbox_load ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            cur.execute(f"INSERT INTO {table} ({cols}) SELECT {cols} FROM imali_outbox_load "
                        "ON CONFLICT (entity_id, idempotency_key) DO NOTHING")


def _bulk_settle(*, reservation_id: int, settled_by: str, skipped: Counter | None = None,
                 errors: list[str] | None = None, already_queued_of: int | None = None) -> ProcessLog:
    """Settle the run's reservation and close its process log (who, queued, skipped, credits,
    errors), audited. `already_queued_of`: the rows the run tried to write, when it wrote them all;
    those not written were queued already."""
    with transaction.atomic():
        reservation, written = credits.reservation_settle(reservation_id=reservation_id, settled_by=settled_by)
        log = ProcessLog.objects.select_for_update().get(pk=reservation.process_id)
        if log.finished_at is not None:
            return log
        reasons = Counter(skipped or {})
        if already_queued_of is not None and already_queued_of > written:
            reasons[SkipReason.ALREADY_QUEUED.value] += already_queued_of - written
        log.queued = written
        log.credits = reservation.used
        if skipped is not None:
            log.skipped = sum(reasons.values())
            log.skipped_reasons = dict(reasons)
        if errors is not None:
            log.errors = errors
        if settled_by == "sweeper":
            log.errors = [*log.errors, "The run stopped before it finished; its unused credits were refunded by the sweeper."]
        log.finished_at = timezone.now()
        log.save(update_fields=["queued", "skipped", "skipped_reasons", "credits", "errors", "finished_at"])
        audit_record(action=AuditAction.BULK_SEND_QUEUED, actor=log.actor, entity=log.entity, target=log,
                     subject=log.message_type,
                     after={"stage": "settled", "settled_by": settled_by, "queued": written, "skipped": log.skipped,
                            "credits": reservation.used, "refunded": reservation.refunded})
    return log


def bulk_reservations_settle_stale(*, entity: Entity | None = None, channel: str | None = None,
                                   stale_after: dt.timedelta = RESERVATION_STALE_AFTER) -> int:
    """Settle the reservations of bulk runs that died (no chunk committed for `stale_after`):
    the rows they wrote stay paid, the rest is refunded. The periodic sweeper calls it for every
    ledger; a bulk run calls it for its own ledger before it reserves. Returns how many it settled."""
    cutoff = timezone.now() - stale_after
    open_ones = CreditReservation.objects.filter(status=ReservationStatus.OPEN, heartbeat_at__lte=cutoff)
    if entity is not None:
        open_ones = open_ones.filter(entity=entity)
    if channel is not None:
        open_ones = open_ones.filter(account__channel=channel)
    settled = 0
    for reservation_id in open_ones.values_list("pk", flat=True):
        with transaction.atomic():
            # Still open and still stale once locked: a run alive after all has just committed a chunk.
            if not CreditReservation.objects.select_for_update().filter(
                    pk=reservation_id, status=ReservationStatus.OPEN, heartbeat_at__lte=cutoff).exists():
                continue
            _bulk_settle(reservation_id=reservation_id, settled_by="sweeper")
            settled += 1
    return settled


def message_cancel(*, actor, entity: Entity, message_id: int) -> OutboxMessage:
    """Cancel a message still queued (not yet claimed by a consumer) and give its credits back."""
    if not (actor.has_right(Right.MAXSMS_PROCESSING) or actor.has_right(Right.SEND_SINGLE_SMS)) or actor.entity_id != entity.pk:
        raise PermissionDenied("You need the MAXSMS processing right of this entity.")
    now = timezone.now()
    with transaction.atomic():
        message = OutboxMessage.objects.select_for_update().filter(entity=entity, pk=message_id).first()
        if message is None:
            raise ValidationError({"message": ["No such message in your entity."]})
        leased = message.claimed_until is not None and message.claimed_until > now
        if message.status != OutboxStatus.QUEUED or leased:
            raise ValidationError({"message": [f"Only a queued message can be cancelled; this one is {message.get_status_display()}."]})
        message.status = OutboxStatus.CANCELLED
        message.finished_at = now
        message.error = f"cancelled by {actor.username}"
        message.save(update_fields=["status", "finished_at", "error"])
        credits.credits_refund(entity=entity, channel=message.channel, amount=message.credits, messages=1,
                               reference=f"cancel:{message.pk}")
        audit_record(action=AuditAction.MESSAGE_QUEUED, actor=actor, entity=entity, target=message, subject=message.number,
                     before={"status": OutboxStatus.QUEUED.value}, after={"status": OutboxStatus.CANCELLED.value})
    return message
