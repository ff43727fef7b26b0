"""Error codes of the automatic and MIS SMS, each with a message a user can read."""

from __future__ import annotations

from enum import StrEnum


class ReminderError(StrEnum):
    RECIPIENT_OTHER_ENTITY = "recipient_other_entity"
    RECIPIENT_NO_CELLPHONE = "recipient_no_cellphone"
    OUT_OF_RANGE = "out_of_range"


# Why part of a day's run did not send, kept in the run's results and the process log.
TYPE_DISABLED = "type_disabled"
NO_HOME_BRANCH = "no_home_branch"
# A caught-up day's reminder that would now be wrong: a payment-due reminder whose due date has
# passed, a birthday greeting for a day other than today.
STALE_ON_CATCH_UP = "stale_on_catch_up"
