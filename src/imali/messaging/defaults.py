"""Supplied default texts per message type (DOMAIN §3), used until an entity saves its own."""

from __future__ import annotations

from .models import MessageType

# The OTP text says whose code it is (enrolment, sign-in and override codes go out under it). An
# entity that had saved the earlier default unchanged is moved to this one by the migration
# signing 0002_otp_default_text; an entity's own wording is left as it is.
OTP_DEFAULT_TEXT = "Your one-time PIN from {^Legal Entity Name^} is {^OTP^} Do not share it with anyone."
OTP_DEFAULT_TEXT_BEFORE = "Your one-time PIN is {^OTP^} Do not share it with anyone."

DEFAULT_TEXTS: dict[str, str] = {
    MessageType.ARREARS: "Your loan is in arrears, please contact your microlender urgently.",
    MessageType.PAYMENT_RECEIVED: "Dear {^Client Name^} thank you, your payment was received. {^Legal Entity Name^}",
    MessageType.NEW_LOAN: "Dear {^Client Name^} your loan of {^Loan Amount^} has been approved. {^Legal Entity Name^}",
    MessageType.REPEAT_LOAN: "Dear {^Client Name^} thank you for borrowing again. Your loan of {^Loan Amount^} is approved.",
    MessageType.PAYMENT_FINAL: "Dear {^Client Name^} your loan is paid up. Thank you from {^Legal Entity Name^}",
    MessageType.CRM: "Dear {^Client Name^} {^Legal Entity Name^} values you as a client. Call {^Branch Telephone^}",
    MessageType.BIRTHDAY: "Happy birthday {^Client Name^} from all of us at {^Legal Entity Name^}",
    MessageType.MIS: "MIS report for {^Date Today^} from {^Legal Entity Name^}",
    MessageType.OTP: OTP_DEFAULT_TEXT,
    MessageType.MARKETING: "Dear {^Client Name^} ask {^Legal Entity Name^} about our new offers. Reply STOP to opt out.",
    MessageType.SINGLE: "Dear {^Client Name^}",
    MessageType.REPLY: "Thank you {^Client Name^}",
    MessageType.PAYMENT_DUE: ("Dear {^Client Name^} a payment of {^Next Amount Due^} is due on {^Next Date Due^} to "
                            "{^Legal Entity Name^}"),
    # The payment stream appends what happened: the amount, the loan, the date and the bank's reason.
    MessageType.COLLECTION_FAILED: ("Dear {^Client Name^} your debit order to {^Legal Entity Name^} was not paid. "
                                    "Please call us on {^Branch Telephone^}."),
}
