"""Sending email: render, pay (one email credit per recipient), send, refund what failed.

The debit, the process-log entry and the audit entry commit together; the emails go out once the
caller's transaction commits (at once when there is none), through one connection of the
configured Django backend, and recipients the server refused are refunded. The same idempotency key again sends nothing and costs nothing.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.utils import timezone

from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.messaging import credits
from imali.messaging.errors import MessagingError, messaging_error
from imali.messaging.models import Channel, CreditEntry, MessageType, ProcessLog
from imali.messaging.policy import (
    next_allowed_send,
    require_message_type_enabled,
    window_description,
)
from imali.messaging.services import merge_values, template_text
from imali.messaging.templating import Compiled, TemplateError, template_problems
from imali.tenancy.models import Entity
from imali.tenancy.rights import Right

from .rules import MAX_SUBJECT_LENGTH, Attachment, address_problem, check_attachments

log = logging.getLogger("imali.messaging.email")


@dataclass(frozen=True)
class EmailRecipient:
    address: str
    values: Mapping[str, object] = field(default_factory=dict)
    client_id: int | None = None


@dataclass
class EmailSendResult:
    process: ProcessLog
    sent: int = 0
    failed: list[str] = field(default_factory=list)  # addresses the server refused (refunded)
    repeated: bool = False  # the idempotency key was used before: nothing sent


def _check_texts(subject: str, body: str) -> None:
    errors: dict[str, list[ValidationError]] = {}
    if not subject.strip():
        errors["subject"] = [ValidationError("The subject is empty.", code=MessagingError.TEMPLATE_EMPTY.value)]
    elif len(subject) > MAX_SUBJECT_LENGTH or "\n" in subject or "\r" in subject:
        errors["subject"] = [ValidationError(f"The subject must be one line of at most {MAX_SUBJECT_LENGTH} characters.",
                                             code=MessagingError.SUBJECT_INVALID.value)]
    else:
        problems = template_problems(subject)
        if problems:
            errors["subject"] = [ValidationError(p.message, code=p.code.value) for p in problems]
    problems = template_problems(body)
    if problems:
        errors["text"] = [ValidationError(p.message, code=p.code.value) for p in problems]
    if errors:
        raise ValidationError(errors)


def _rendered(subject: str, body: str, recipients: Sequence[EmailRecipient]) -> list[tuple[EmailRecipient, str, str]]:
    subject_t, body_t = Compiled(subject), Compiled(body)
    out, errors = [], []
    for r in recipients:
        problem = address_problem(r.address)
        if problem:
            errors.append(problem)
            continue
        try:
            out.append((r, subject_t.render(r.values), body_t.render(r.values)))
        except TemplateError as exc:
            errors.append(f"{r.address}: {exc}")
    if errors:
        raise ValidationError({"recipients": errors[:20]})
    if not out:
        raise ValidationError({"recipients": ["Choose at least one recipient."]})
    return out


def emails_send(*, actor, entity: Entity, message_type: str, subject: str, text: str, recipients: Iterable[EmailRecipient],
                idempotency_key: str, attachments: Sequence[Attachment] = (), connection=None,
                kind: str = "email_send", right: Right | None = Right.MAXSMS_PROCESSING,
                criteria: Mapping[str, object] | None = None) -> EmailSendResult:
    """Send one email per recipient. `actor` None is the system (automatic sends); a user needs
    `right` in this entity. Bad input raises a ValidationError naming the field, before anything
    is written or sent."""
    if actor is not None and right is not None and (actor.entity_id != entity.pk or not actor.has_right(right)):
        raise PermissionDenied(f"You need the '{right.label}' right of this entity.")
    if message_type not in MessageType.values:
        raise messaging_error("message_type", MessagingError.UNKNOWN_MESSAGE_TYPE, f"Unknown message type '{message_type}'.")
    # The entity's type switches hold for every channel: a type switched off sends no email either.
    require_message_type_enabled(entity=entity, message_type=message_type)
    # Email has no outbox to wait in: direct marketing outside the CPA Regulation 4 hours is refused.
    allowed_at = next_allowed_send(entity=entity, message_type=message_type, at=timezone.now())
    if allowed_at > timezone.now():
        local = allowed_at.astimezone(zoneinfo.ZoneInfo(entity.time_zone))
        raise messaging_error("message_type", MessagingError.OUTSIDE_SEND_WINDOW,
                              f"{MessageType(message_type).label} email may be sent only in the direct-marketing hours "
                              f"({window_description()}); next from {local:%Y-%m-%d %H:%M}.")
    if not idempotency_key:
        raise messaging_error("idempotency_key", MessagingError.IDEMPOTENCY_KEY_MISSING, "An idempotency key is required.")
    _check_texts(subject, text)
    check_attachments(attachments)
    rendered = _rendered(subject, text, list(recipients))
    reference = f"email:{idempotency_key}"[:120]

    with transaction.atomic():
        credits.credit_account_get(entity=entity, channel=Channel.EMAIL)
        credits._locked(entity, Channel.EMAIL)  # the ledger lock also serialises two sends with one key
        earlier = CreditEntry.objects.filter(account__entity=entity, account__channel=Channel.EMAIL, reference=reference).first()
        if earlier is not None:
            process = ProcessLog.objects.filter(entity=entity, kind=kind, criteria__idempotency_key=idempotency_key).first()
            return EmailSendResult(process=process, repeated=True)
        process = ProcessLog.objects.create(entity=entity, actor=actor, kind=kind, message_type=message_type,
                                            criteria={**dict(criteria or {}), "idempotency_key": idempotency_key,
                                                      "attachments": [a.filename for a in attachments]})
        credits.credits_debit(entity=entity, channel=Channel.EMAIL, amount=len(rendered), messages=len(rendered),
                              reference=reference, actor=actor)
        process.queued = len(rendered)
        process.credits = len(rendered)
        process.save(update_fields=["queued", "credits"])
        audit_record(action=AuditAction.BULK_SEND_QUEUED if len(rendered) > 1 else AuditAction.MESSAGE_QUEUED,
                     actor=actor, entity=entity, target=process, subject=f"email {message_type}",
                     after={"recipients": len(rendered), "credits": len(rendered),
                            "attachments": [a.filename for a in attachments]})
        result = EmailSendResult(process=process)
        # After the commit: an email that went out is never rolled back with the caller's transaction.
        transaction.on_commit(lambda: _deliver(result, entity, rendered, attachments, connection, reference))
    return result


def _deliver(result: EmailSendResult, entity: Entity, rendered, attachments: Sequence[Attachment], connection,
             reference: str) -> None:
    """Hand the emails to the backend on one connection; refund the ones it could not take."""
    connection = connection or get_connection(fail_silently=False)
    failed: list[str] = []
    errors: list[str] = []
    try:
        connection.open()
    except OSError as exc:
        failed = [r.address for r, _, _ in rendered]
        errors.append(f"mail server unreachable: {exc}")
    else:
        try:
            for r, subject, body in rendered:
                message = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[r.address],
                                       connection=connection)
                for a in attachments:
                    message.attach(a.filename, a.content, a.content_type)
                try:
                    message.send(fail_silently=False)
                except Exception as exc:  # refused recipient, dropped connection: refund, report, carry on
                    failed.append(r.address)
                    if len(errors) < 20:
                        errors.append(f"{r.address}: {exc}"[:200])
        finally:
            connection.close()
    result.sent = len(rendered) - len(failed)
    result.failed = failed
    if failed:
        credits.credits_refund(entity=entity, channel=Channel.EMAIL, amount=len(failed), messages=len(failed),
                               reference=f"{reference}:not_sent")
    ProcessLog.objects.filter(pk=result.process.pk).update(
        skipped=len(failed), skipped_reasons={"not_sent": len(failed)} if failed else {}, errors=errors,
        credits=len(rendered) - len(failed), finished_at=timezone.now())
    result.process.refresh_from_db()


def email_test_send(*, actor, entity: Entity, message_type: str, to_address: str, subject: str, text: str | None = None,
                    client=None, attachments: Sequence[Attachment] = (), idempotency_key: str, connection=None) -> EmailSendResult:
    """The template screen's test send: the entity's email template (or `text`) rendered for
    `client` (or with the fields shown as [Field Name]) to one address. Costs one email credit."""
    if actor is None or actor.entity_id != entity.pk or not actor.has_right(Right.MAXMAIL_MESSAGE_SETUP):
        raise PermissionDenied("You need the 'MAXMAIL Message Setup' right of this entity.")
    if client is not None and client.entity_id != entity.pk:
        raise PermissionDenied("The client belongs to another entity.")
    body = text if text is not None else template_text(entity=entity, message_type=message_type, channel=Channel.EMAIL)
    values = _preview_values(entity=entity, client=client, texts=(subject, body))
    return emails_send(actor=actor, entity=entity, message_type=message_type, subject=subject, text=body,
                       recipients=[EmailRecipient(to_address, values, client.pk if client else None)],
                       idempotency_key=idempotency_key, attachments=attachments, connection=connection,
                       kind="email_test", right=Right.MAXMAIL_MESSAGE_SETUP, criteria={"to": to_address})


def _preview_values(*, entity: Entity, client, texts: Iterable[str]) -> dict[str, object]:
    from imali.messaging.templating import fields_used

    values = merge_values(entity=entity, client=client)
    for t in texts:
        for name in fields_used(t):
            values.setdefault(name, f"[{name}]")
    return values
