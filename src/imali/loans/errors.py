"""Error codes of the loan book a user can read; each ValidationError names its field."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models


class LoanError(models.TextChoices):
    REQUIRED = "required", "This field is required."
    OTHER_ENTITY = "other_entity", "Choose one of your own entity's records."
    OUT_OF_RANGE = "out_of_range", "The value is outside the allowed range."
    PRODUCT_INACTIVE = "product_inactive", "The product is no longer offered."
    CLIENT_NOT_ALLOWED = "client_not_allowed", "The client may not take a new loan."
    WRONG_STATUS = "wrong_status", "The loan is not in a state that allows this."
    OVER_DISBURSEMENT_LIMIT = "over_disbursement_limit", "The amount is above your disbursement limit."
    PAYOUT_ACCOUNT = "payout_account", "Choose an active payout account of the client."
    DUPLICATE_REFERENCE = "duplicate_reference", "This reference has been posted already."
    ALREADY_REVERSED = "already_reversed", "The receipt has been reversed already."
    INVALID = "invalid", "The value is not valid."
    NOT_SIGNED = "not_signed", "The loan agreement must be signed before the loan is disbursed."
    OVER_CHANGE_AVAILABLE = "over_change_available", "The amount is more than the change available."
    CHANGE_PAID_OUT = "change_paid_out", "The receipt's change has been paid out; reverse that refund first."
    ALREADY_SETTLED = "already_settled", "The debit is settled already."
    OVER_RECEIPT_MAXIMUM = "over_receipt_maximum", "The amount is more than the loan can take."


def error(field: str, code: LoanError, message: str | None = None) -> ValidationError:
    return ValidationError({field: [ValidationError(message or code.label, code=code.value)]})


def errors(found: dict[str, tuple[LoanError, str]]) -> ValidationError:
    return ValidationError({f: [ValidationError(msg, code=code.value)] for f, (code, msg) in found.items()})
