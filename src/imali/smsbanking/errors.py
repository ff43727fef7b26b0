"""Error codes of SMS banking, each with a message a person can read."""

from __future__ import annotations

from enum import StrEnum

from django.core.exceptions import ValidationError


class SmsBankingError(StrEnum):
    INVALID_PIN = "invalid_pin"
    PIN_MISMATCH = "pin_mismatch"
    NO_CELLPHONE = "no_cellphone"
    INVALID_ALIAS = "invalid_alias"
    ALIAS_TAKEN = "alias_taken"
    NOT_UNVERIFIED = "not_unverified"
    REASON_REQUIRED = "reason_required"
    INVALID_PATTERN = "invalid_pattern"
    INVALID_SETTING = "invalid_setting"
    NO_OFFICER_PHONE = "no_officer_phone"
    NOTHING_DUE = "nothing_due"
    OTHER_ENTITY = "other_entity"
    INVALID_DATE = "invalid_date"


def sb_error(field: str, code: SmsBankingError, message: str) -> ValidationError:
    return ValidationError({field: [ValidationError(message, code=code.value)]})
