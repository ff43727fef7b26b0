"""Error codes of OTP signing, each with a message a user can read. No message ever carries a code."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models


class SigningError(models.TextChoices):
    SETUP_CONFLICT = "esign_and_loan_otp", "eSign Loan OTP and Loan OTP may not both be on."
    SETUP_NEEDS_ENROL = "needs_enrol_client", "Switch on Enrol Client first: the OTP goes to an enrolled cellphone."
    OUT_OF_RANGE = "out_of_range", "The value is outside the allowed range."
    ENROL_OFF = "enrol_client_off", "Enrol Client is switched off for this entity."
    NO_CELLPHONE = "no_cellphone", "There is no cellphone number to send the code to."
    CELLPHONE_TAKEN = "cellphone_enrolled_elsewhere", "This cellphone number is enrolled for another borrower."
    ALREADY_ENROLLED = "already_enrolled", "The client already has an enrolled cellphone."
    NOT_ENROLLED = "not_enrolled", "The client has no enrolled cellphone."
    CODE_WRONG = "code_wrong", "The code is not correct."
    CODE_EXHAUSTED = "code_exhausted", "Too many wrong codes: this code is void. Send a new code to start again."
    CODE_EXPIRED = "code_expired", "The code has expired. Send a new code."
    CODE_VOID = "code_void", "This code is no longer valid. Send a new code."
    CODE_USED = "code_used", "This code has been used already."
    TERMS_CHANGED = "terms_changed", "The terms changed after the code was sent: the code is void. Send a new code."
    RATE_LIMITED = "rate_limited", "Too many OTP requests. Wait a few minutes and try again."
    NOT_SIGNABLE = "not_signable", "This document cannot be signed in its current state."
    ALREADY_SIGNED = "already_signed", "This document has been signed already."
    OTP_REQUIRED = "otp_required", "Loan OTP is mandatory for this client: verify the client's code or use an override."
    OTP_NOT_APPLICABLE = "otp_not_applicable", "No OTP applies to this document: it is signed by hand."
    OVERRIDE_RIGHT = "override_right", "The authorising user needs the 'Override Loan OTP' right of this entity."
    OVERRIDE_AUTH = "override_auth_failed", "The authorising user's password or code is not correct."
    REASON_REQUIRED = "reason_required", "Give the reason."
    INVALID = "invalid", "The value is not valid."


def signing_error(field: str, code: SigningError, message: str | None = None) -> ValidationError:
    return ValidationError({field: [ValidationError(message or str(code.label), code=code.value)]})
