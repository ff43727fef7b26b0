"""Error codes of message batches, each with a message a user can read."""

from __future__ import annotations

from enum import StrEnum


class BatchError(StrEnum):
    UNKNOWN_TYPE = "unknown_batch_type"
    REQUIRED = "required"
    INVALID_DATE = "invalid_date"
    DATE_ORDER = "date_order"
    RANGE_TOO_LONG = "range_too_long"
    UNKNOWN_EMPLOYER = "unknown_employer"
    UNKNOWN_BRANCH = "unknown_branch"
    INVALID_CHOICE = "invalid_choice"
    NOT_A_CRITERION = "not_a_criterion"
    TYPE_DISABLED = "sms_type_disabled"
    NOTHING_TO_SEND = "nothing_to_send"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    KEY_REUSED = "idempotency_key_reused"
    NOT_RESUMABLE = "batch_not_resumable"
