"""Which signature a document needs (DOMAIN §3–4). Pure: no database."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

SIGNABLE_LOAN_STATUSES = ("application", "approved", "active")
# The loan agreement itself is signed before payout: once the money is paid out (the loan is
# active) only its debit mandates are still signed.
AGREEMENT_SIGNABLE_STATUSES = ("application", "approved")


def agreement_signable(*, status: str, paid_out: bool) -> bool:
    """Whether a loan's agreement can still be signed (signing.selectors.loans_awaiting_signature
    lists the loans for which this holds and that have no signature yet)."""
    return status in AGREEMENT_SIGNABLE_STATUSES and not paid_out


class Requirement(StrEnum):
    OTP_REQUIRED = "otp_required"      # Loan OTP: only the client's code, or an override, will do
    OTP_OPTIONAL = "otp_optional"      # eSign Loan OTP: the user may finish without it (hand signature)
    HAND = "hand"                      # no OTP applies: the client signs by hand
    NOT_SIGNABLE = "not_signable"


@dataclass(frozen=True)
class Decision:
    requirement: Requirement
    hand_reason: str  # a HandReason value when the requirement is HAND, else ""
    message: str


def signing_decision(*, loan_status: str, amount: Decimal, threshold: Decimal, loan_otp: bool,
                     esign_loan_otp: bool, enrolled: bool, paid_out: bool = False) -> Decision:
    if loan_status not in SIGNABLE_LOAN_STATUSES:
        return Decision(Requirement.NOT_SIGNABLE, "", "Only an application, approved or active loan can be signed.")
    if paid_out:
        return Decision(Requirement.NOT_SIGNABLE, "",
                        "The loan was paid out already: its agreement can no longer be signed (a debit mandate still can).")
    if not (loan_otp or esign_loan_otp):
        return Decision(Requirement.HAND, "otp_off", "Loan OTP is switched off: the client signs by hand.")
    if amount < threshold:
        return Decision(Requirement.HAND, "below_threshold",
                        f"The amount is below the Loan OTP amount of {threshold:,.2f}: the client signs by hand.")
    if not enrolled:
        return Decision(Requirement.HAND, "not_enrolled", "The client's cellphone is not enrolled: the client signs by hand.")
    if loan_otp:
        return Decision(Requirement.OTP_REQUIRED, "", "The client must confirm with the OTP sent to the enrolled cellphone.")
    return Decision(Requirement.OTP_OPTIONAL, "",
                    "Send the client an OTP, or finish without it and have the client sign by hand.")


def signature_line(*, signed_at: dt.datetime, full_names: str, surname: str, id_number: str, cellphone: str) -> str:
    return (f"Electronically signed on {signed_at:%Y-%m-%d} at {signed_at:%H:%M:%S} by {full_names} {surname} "
            f"{id_number}, cellphone no {cellphone}")


def override_line(*, administered_by: str, at: dt.datetime, authorised_by: str) -> str:
    return f"Loan administered by {administered_by} on {at:%Y-%m-%d} at {at:%H:%M:%S}, authorised by {authorised_by}"
