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
