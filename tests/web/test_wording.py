"""People words (imali.web.wording) and the times of the local SMSC's phone page."""

from __future__ import annotations

import datetime as dt

from imali.core.models import AuditAction
from imali.peers.smsc.server import PhoneMessage, SmscPeer
from imali.signing import security
from imali.web import wording

AT = dt.datetime(2026, 11, 3, 18, 23, 5, tzinfo=dt.UTC)


def test_times_are_shown_in_the_zone_with_its_name():
    assert wording.time_label(AT, "Africa/Johannesburg") == "20:23 SAST"
    assert wording.time_label(AT, "Africa/Windhoek") == "20:23 CAT"
    assert wording.datetime_label(AT, "Africa/Lusaka") == "2026-11-03 20:23 CAT"
    assert wording.time_label(AT, "UTC") == "18:23 UTC"


def test_phones_are_masked_to_their_last_four_digits():
    assert wording.masked_phone("+27821234567") == "+27 82 *** 4567"
    assert wording.masked_phone("+264811234567") == "+264 81 *** 4567"
    assert wording.masked_phone("") == ""


def test_ledger_references_are_said_in_words_and_a_sealed_code_never_shows():
    sealed = "msg:" + security.seal(code="482913", nonce="abc123", offset=20, secret="x" * 32)
    assert wording.ledger_reference(sealed) == "One-time PIN SMS"
    assert wording.ledger_reference("operator") == "Credits from the platform operator"
    assert wording.ledger_reference("process:12") == "Batch send 12"
    assert wording.ledger_reference("cancel:7") == "Refund: message 7 cancelled"
    assert wording.ledger_reference("dispatch:not_sent") == "Refund: the message could not be sent"
    assert wording.ledger_reference("msg:ui:5f2c") == "SMS sent from the client screen"


def test_otp_audit_details_are_sentences_without_the_challenge_or_digest():
    sent = {"purpose": "loan", "challenge": "K2x9", "cellphone": "+27821234567", "subject": "loan:4",
            "expires_at": "2026-11-03T18:28:05+00:00", "terms_digest": "ab" * 32, "voided_earlier": 0}
    said = wording.audit_sentence(AuditAction.OTP_SENT, sent)
    assert said == "Code sent to +27 82 *** 4567 for the loan agreement."
    assert wording.audit_sentence(AuditAction.OTP_FAILED, {"purpose": "enrol", "tries_left": 1}) == \
        "Wrong code entered for the cellphone enrolment. 1 try left."
    assert wording.audit_sentence(AuditAction.OTP_VOIDED, {"purpose": "loan", "reason": "terms_changed"}) == \
        "The code for the loan agreement was made void: the loan's terms changed after it was sent."
    for action in AuditAction.values:
        text = wording.audit_sentence(action, sent)
        assert "K2x9" not in text and "ab" * 32 not in text and "loan:4" not in text, action


def test_the_phone_page_shows_the_phones_local_time_labelled_and_utc():
    peer = SmscPeer()
    peer.phones["+27821234567"].append(PhoneMessage("+27821234567", "Imali", "Your code", ["1"], AT))
    peer.phones["+264811234567"].append(PhoneMessage("+264811234567", "Imali", "Your code", ["2"], AT))
    page = peer._phone.render()
    assert "20:23:05 SAST (18:23:05 UTC)" in page
    assert "20:23:05 CAT (18:23:05 UTC)" in page


def test_sign_in_entries_are_said_in_words():
    assert wording.audit_sentence(AuditAction.LOGIN_FAILED, None) == "Sign-in refused: wrong username or password."
    assert wording.audit_sentence(AuditAction.LOGIN_SUCCEEDED, None) == "Signed in."
    assert wording.datetime_label(AT, "Africa/Johannesburg", seconds=True) == "2026-11-03 20:23:05 SAST"


def test_audit_subjects_are_said_as_people_say_them():
    assert wording.audit_subject("loan:12") == "Loan 12"
    assert wording.audit_subject("mandate:3") == "Mandate 3"
    assert wording.audit_subject("+27821234567") == "+27 82 *** 4567"
    assert wording.audit_subject("olive") == "olive"
