"""Error codes of messaging, each with a message a user can read."""

from __future__ import annotations

from enum import StrEnum

from django.core.exceptions import ValidationError


class MessagingError(StrEnum):
    INSUFFICIENT_CREDITS = "insufficient_credits"
    MONTHLY_LIMIT_REACHED = "monthly_limit_reached"
    NOT_OPERATOR = "not_operator"
    INVALID_AMOUNT = "invalid_amount"
    INVALID_NUMBER = "invalid_number"
    INVALID_TEMPLATE = "invalid_template"
    SMS_TYPE_DISABLED = "sms_type_disabled"
    OPTED_OUT = "opted_out"
    NO_CELLPHONE = "no_cellphone"
    NO_ROUTE = "no_route"
    # A single SMS (screen and API) and the email test send.
    UNKNOWN_MESSAGE_TYPE = "unknown_message_type"
    TEMPLATE_AND_TEXT = "template_and_text"
    UNKNOWN_TEMPLATE = "unknown_template"
    TEMPLATE_EMPTY = "template_empty"
    TOO_LONG = "too_long"
    IDEMPOTENCY_KEY_MISSING = "idempotency_key_missing"
    SUBJECT_INVALID = "subject_invalid"
    ATTACHMENTS_INVALID = "attachments_invalid"
    OTHER_ENTITY_USER = "other_entity_user"
    NO_MARKETING_CONSENT = "no_marketing_consent"
    # General Setup: the OTP is switched by the OTP setup, not by the SMS type switches.
    TYPE_NOT_SWITCHABLE = "type_not_switchable"
    # Direct marketing asked to go out at once (email has no outbox to wait in) outside CPA Reg 4 hours.
    OUTSIDE_SEND_WINDOW = "outside_send_window"


def messaging_error(field: str, code: MessagingError, message: str) -> ValidationError:
    return ValidationError({field: [ValidationError(message, code=code.value)]})


# Why a recipient of a bulk run was left out; counted per reason in the process log.
class SkipReason(StrEnum):
    NO_CELLPHONE = "no_cellphone"
    INVALID_NUMBER = "invalid_number"
    OPTED_OUT = "opted_out"
    NO_MARKETING_CONSENT = "no_marketing_consent"
    ALREADY_QUEUED = "already_queued"
    RENDER_FAILED = "render_failed"
    TYPE_DISABLED = "type_disabled"
