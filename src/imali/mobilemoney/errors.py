"""Error codes of mobile money a user can read; each ValidationError names its field."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models


class MobileMoneyError(models.TextChoices):
    REQUIRED = "required", "This field is required."
    INVALID = "invalid", "The value is not valid."
    OTHER_ENTITY = "other_entity", "Choose one of your own entity's records."
    NOT_IN_SUSPENSE = "not_in_suspense", "The payment is no longer in suspense."
    NO_SETUP = "no_setup", "The entity has no active setup for this provider."
    PROVIDER_REFUSED = "provider_refused", "The provider refused the request."
    PROVIDER_UNAVAILABLE = "provider_unavailable", "The provider could not be reached; try again."
    WRONG_STATUS = "wrong_status", "The disbursement is not in a state that allows this."
    OVER_LIMIT = "over_limit", "The total is above your disbursement limit."
    NO_WALLET = "no_wallet", "The client has no active mobile-money payout wallet."
    NOTHING_TO_SEND = "nothing_to_send", "There are no mobile payments pending."
    SELF_APPROVAL = "self_approval", "Another user must approve."
    BAD_FILE = "bad_file", "The file could not be read."
    DESTINATION_REFUSED = "destination_refused", "The provider's address is not one this system may connect to."


def error(field: str, code: MobileMoneyError, message: str | None = None) -> ValidationError:
    return ValidationError({field: [ValidationError(message or code.label, code=code.value)]})
