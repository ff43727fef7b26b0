"""People words for what the system records in its own terms: audit actions and their details,
credit-ledger references, the SMS gateway's answers, signatures, and times in the entity's zone.

Nothing here ever shows a code, a sealed code or any other secret: an OTP audit entry is said
from its action and its harmless details (whom the code went to, masked; how many tries were
left), never by dumping its keys."""

from __future__ import annotations

from collections.abc import Mapping

import phonenumbers
from django.apps import apps
from django.core.exceptions import FieldDoesNotExist

from imali.core import localtime
from imali.core.models import AuditAction

# --- times: imali.core.localtime, named here too for the templates and views ---------------------

local, zone_label, time_label, datetime_label = localtime.local, localtime.zone_label, localtime.time_label, localtime.datetime_label


# --- phones --------------------------------------------------------------------------------------


def masked_phone(e164: str) -> str:
    """ "+27 82 *** 4567": enough to recognise the number, not enough to read it off a screen."""
    if not e164:
        return ""
    try:
        parts = phonenumbers.format_number(phonenumbers.parse(e164, None),
                                           phonenumbers.PhoneNumberFormat.INTERNATIONAL).split(" ")
    except phonenumbers.NumberParseException:
        return f"*** {e164[-4:]}" if len(e164) > 4 else "***"
    if len(parts) >= 4:
        return f"{parts[0]} {parts[1]} *** {parts[-1]}"
    digits = "".join(parts[1:])
    return f"{parts[0]} *** {digits[-4:]}"


# --- signatures ----------------------------------------------------------------------------------

_HAND_REASONS = {
    "otp_off": "Loan OTP is off",
    "below_threshold": "the amount is below the Loan OTP amount",
    "not_enrolled": "the client's cellphone is not enrolled",
    "otp_declined": "the OTP was not used",
    "override": "the OTP was overridden",
}


def signature_summary(signature, time_zone: str) -> str:
    """How the agreement was signed, in one sentence."""
    when = datetime_label(signature.signed_at, time_zone)
    if signature.method == "otp":
        return f"Signed on {when} by OTP to {masked_phone(signature.client_cellphone)}."
    if signature.method == "override":
        by = getattr(signature.authorised_by, "username", "") or "an authorised user"
        return f"OTP overridden on {when}, authorised by {by}: the client signs the agreement by hand."
    reason = _HAND_REASONS.get(signature.hand_reason, "")
    return f"Flagged on {when} for the client's hand signature{f' ({reason})' if reason else ''}."


# --- audit entries -------------------------------------------------------------------------------

_PURPOSES = {"enrol": "cellphone enrolment", "loan": "loan agreement", "mandate": "debit mandate",
             "login": "sign-in", "override": "override authorisation"}
_VOID_REASONS = {"terms_changed": "the loan's terms changed after it was sent", "resent": "a new code was sent"}
_OVERRIDE_REFUSALS = {"no_right": "the authorising user does not have the Override Loan OTP right",
                      "wrong_password": "the authorising user's password was wrong"}
_RATE_ACTIONS = {"send": "sending", "verify": "entering"}


def _tries(after: Mapping) -> str:
    left = after.get("tries_left")
    if left is None:
        return ""
    return f" {left} {'try' if left == 1 else 'tries'} left."


def audit_sentence(action: str, after: Mapping | None, before: Mapping | None = None) -> str:
    """The details of an audit entry as a sentence (for the OTP audit, Login Detail and a client's
    history). Unknown actions say nothing rather than dump their keys."""
    after, before = after or {}, before or {}
    purpose = _PURPOSES.get(after.get("purpose", ""), "")
    about = f" for the {purpose}" if purpose else ""
    phone = masked_phone(after.get("cellphone", ""))
    if action in (AuditAction.OTP_SENT, AuditAction.LOGIN_OTP_SENT):
        return f"Code sent to {phone}{about}." if phone else f"Code sent{about}."
    if action == AuditAction.OTP_RESENT:
        return f"New code sent to {phone}{about}; the earlier code is void."
    if action in (AuditAction.OTP_VERIFIED, AuditAction.LOGIN_OTP_VERIFIED):
        return f"Code entered correctly{about}."
    if action in (AuditAction.OTP_FAILED, AuditAction.LOGIN_OTP_FAILED):
        return f"Wrong code entered{about}.{_tries(after)}"
    if action == AuditAction.OTP_EXHAUSTED:
        return f"Too many wrong codes{about}: the code is void; send a new one."
    if action == AuditAction.OTP_EXPIRED:
        return f"The code{about} expired unused."
    if action == AuditAction.OTP_VOIDED:
        reason = _VOID_REASONS.get(after.get("reason", ""), "")
        return f"The code{about} was made void{': ' + reason if reason else ''}."
    if action == AuditAction.OTP_RATE_LIMITED:
        doing = _RATE_ACTIONS.get(after.get("action", ""), "sending")
        return f"Refused: too many codes {doing} in a short time. Wait a few minutes."
    if action == AuditAction.ENROLMENT_CREATED:
        return f"Cellphone {phone} enrolled for OTPs."
    if action == AuditAction.ENROLMENT_CLEARED:
        cleared = masked_phone(before.get("cellphone", ""))
        reason = after.get("reason", "")
        return f"Enrolled cellphone {cleared} cleared{f': {reason}' if reason else ''}."
    if action in (AuditAction.SIGNED_WITH_OTP, AuditAction.SIGNED_BY_HAND, AuditAction.SIGNING_OVERRIDDEN):
        what = f"debit mandate of loan {after.get('loan')}" if after.get("mandate") else f"loan {after.get('loan')} agreement"
        if action == AuditAction.SIGNED_WITH_OTP:
            return f"The {what} was signed with the client's OTP."
        if action == AuditAction.SIGNING_OVERRIDDEN:
            by = after.get("authorised_by") or "an authorised user"
            reason = after.get("override_reason") or ""
            return f"The OTP for the {what} was overridden, authorised by {by}{f' ({reason})' if reason else ''}: signed by hand."
        reason = _HAND_REASONS.get(after.get("hand_reason") or "", "")
        return f"The {what} is to be signed by hand{f' ({reason})' if reason else ''}."
    if action == AuditAction.OVERRIDE_REFUSED:
        why = _OVERRIDE_REFUSALS.get(after.get("why", ""), "the authorisation failed")
        return f"Override refused: {why}."
    if action == AuditAction.DOCUMENT_CHECKED:
        return ("The PDF checked is the signed agreement, unchanged." if after.get("matches")
                else "The PDF checked does not match the signed agreement.")
    if action == AuditAction.MANDATE_CREATED:
        return "Debit mandate created; the client signs it next."
    if action == AuditAction.LOGIN_SUCCEEDED:
        return "Signed in."
    if action == AuditAction.LOGIN_FAILED:
        return "Sign-in refused: wrong username or password."
    if action == AuditAction.LOGIN_LOCKED:
        return "Sign-in refused: too many wrong passwords, the sign-in is locked for a while."
    if action == AuditAction.LOGOUT:
        return "Signed out."
    if action == AuditAction.MARKETING_OPTED_OUT:
        return "The client answered STOP: no marketing SMS to this number any more."
    if action == AuditAction.CLIENT_CONSENT_CHANGED:
        given = after.get("marketing_consent")
        if given is None:
            return "Marketing consent changed."
        return "Marketing consent given." if given else "Marketing consent withdrawn."
    return ""


def audit_subject(subject: str) -> str:
    """An audit entry's subject as people say it: "loan:12" is "Loan 12", a phone is masked."""
    kind, _, rest = (subject or "").partition(":")
    if kind == "loan" and rest.isdigit():
        return f"Loan {rest}"
    if kind == "mandate" and rest.isdigit():
        return f"Mandate {rest}"
    if subject.startswith("+") and subject[1:].isdigit():
        return masked_phone(subject)
    return subject



def audit_record(entry) -> str:
    """The record an audit entry is about as people say it: "Loan 578", not "loans.Loan 578"."""
    try:
        name = str(apps.get_model(entry.object_type)._meta.verbose_name)
    except (LookupError, ValueError):
        name = entry.object_type or ""
    return f"{name[:1].upper()}{name[1:]} {entry.object_id}".strip()


def audit_status(entry) -> str:
    """The status an audit entry recorded, by its label on the record's model ("Paid up", not
    "paid_up"); the stored value when the model has no such choice."""
    value = (entry.after or {}).get("status") or ""
    try:
        field = apps.get_model(entry.object_type)._meta.get_field("status")
    except (LookupError, ValueError, FieldDoesNotExist):
        return str(value)
    return str(dict(field.flatchoices).get(value, value))


# --- the SMS credit ledger --------------------------------------------------------

_SEALED_OTP_PREFIX = "msg:otp-sealed:"


def ledger_reference(reference: str) -> str:
    """A credit-ledger row's reference in words. A one-time PIN's reference carries the sealed
    code: it is never shown, not even in part."""
    reference = reference or ""
    if reference.startswith(_SEALED_OTP_PREFIX):
        return "One-time PIN SMS"
    if reference == "operator":
        return "Credits from the platform operator"
    if reference == "dispatch:not_sent":
        return "Refund: the message could not be sent"
    kind, _, rest = reference.partition(":")
    if kind == "process" and rest:
        return f"Batch send {rest}"
    if kind == "cancel" and rest:
        return f"Refund: message {rest} cancelled"
    if kind == "msg":
        source = rest.partition(":")[0]
        return {"ui": "SMS sent from the client screen", "api": "SMS sent through the API",
                "ui-email-test": "Test email"}.get(source, "Message sent")
    return reference

