"""Error codes of the payment stream, each with a message a user can read."""

from __future__ import annotations

from enum import StrEnum

from django.core.exceptions import ValidationError


class StreamError(StrEnum):
    MODULE_OFF = "module_off"
    NO_SETTINGS = "no_settings"
    UNAVAILABLE = "stream_unavailable"
    NO_EMPLOYER = "no_employer"
    NOT_REGISTERED = "not_registered"
    OTHER_ENTITY = "other_entity"
    NO_SCHEDULE = "no_schedule"
    LOAN_STATUS = "loan_status"
    NOTE_EXISTS = "note_exists"
    AMOUNT_NOT_EDITABLE = "amount_not_editable"
    NOT_PRINTABLE = "not_printable"
    NOTE_NOT_EDITABLE = "note_not_editable"
    INSTALMENT_NOT_PENDING = "instalment_not_pending"
    ACCOUNTS = "accounts"
    PAYMENT_EXISTS = "payment_exists"
    OVER_DISBURSEMENT_LIMIT = "over_disbursement_limit"
    CELLPHONE_NOT_UNIQUE = "cellphone_not_unique"
    WALLET_FIELDS = "wallet_fields"
    WALLET_EXISTS = "wallet_exists"
    INVALID = "invalid"
    CONTRACT_REFERENCE_USED = "contract_reference_used"
    MANDATE_NOT_SIGNED = "mandate_not_signed"
    MANDATE_STATE = "mandate_state"
    MANDATE_REQUIRED = "debicheck_mandate_required"
    NOT_AMENDABLE = "not_amendable"
    ABOVE_MAXIMUM_COLLECTION = "above_maximum_collection"
    NOT_A_BUSINESS_DAY = "not_a_business_day"
    OUTSIDE_MANDATE = "outside_mandate"
    TOO_FAR_AHEAD = "too_far_ahead"
    DESTINATION_REFUSED = "destination_refused"
    ASKED_RECENTLY = "asked_recently"
    AFTER_CUT_OFF = "after_cut_off"


def stream_error(field: str, code: StreamError | str, message: str) -> ValidationError:
    return ValidationError({field: [ValidationError(message, code=str(code))]})
