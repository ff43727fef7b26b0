"""Error codes of client marketing, each with a message a user can read."""

from __future__ import annotations

from enum import StrEnum


class MarketingError(StrEnum):
    INVALID_CHOICE = "invalid_choice"
    UNKNOWN_OBJECT = "unknown_object"
    INVALID_NUMBER = "invalid_number"
    INVALID_DATE = "invalid_date"
    RANGE_ORDER = "range_order"
    RANGE_TOO_LONG = "range_too_long"
    CONTRADICTORY = "contradictory_filters"
    NOT_A_FILTER = "not_a_filter"
    NOT_READY = "dataset_not_ready"
    NO_RECIPIENTS = "no_recipients"
    UNKNOWN_MESSAGE = "unknown_message"
    NAME_TAKEN = "name_taken"
    REQUIRED = "required"
    TOO_LONG = "too_long"
    TEMPLATE = "template_invalid"
    INSUFFICIENT_CREDITS = "insufficient_credits"
    KEY_REUSED = "idempotency_key_reused"
