"""The email channel: templates with merge fields, one credit per recipient, attachments up to
7 MB, sent over real SMTP to a receiver on loopback (and through the file backend)."""

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import override_settings

from imali.messaging.credits import credit_balance, credit_settings_update, credits_assign
from imali.messaging.email.rules import MAX_ATTACHMENT_BYTES, Attachment
from imali.messaging.email.services import EmailRecipient, email_test_send, emails_send
from imali.messaging.models import ProcessLog
from imali.messaging.services import merge_values, template_update
from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db

BODY = "Dear {^Client Name^} , your account {^Client Account Number^} at {^Legal Entity Name^} is up to date."


def recipients(entity, n, domain="example.com"):
    out = []
    for i in range(n):
        c = factories.make_client(entity=entity, name=f"Name{i}", id_type="passport", id_number=f"P{i:06d}")
        out.append(EmailRecipient(f"client{i}@{domain}", merge_values(entity=entity, client=c), c.pk))
    return out


def test_one_email_per_recipient_over_smtp_with_attachment(email_funded, admin_user, smtp, django_capture_on_commit_callbacks):
    people = recipients(email_funded, 3)
    statement = Attachment("statement.pdf", b"%PDF-1.4 statement", "application/pdf")
    with django_capture_on_commit_callbacks(execute=True):
        result = emails_send(actor=admin_user, entity=email_funded, message_type="arrears", subject="Statement for {^Client Name^}",
                             text=BODY, recipients=people, idempotency_key="statements-2026-11", attachments=[statement])
    assert (result.sent, result.failed) == (3, [])
    assert credit_balance(entity=email_funded, channel="email") == 7
    assert smtp.sessions == 1  # one connection for the whole send
    assert sorted(r.rcpt_to[0] for r in smtp.received) == ["client0@example.com", "client1@example.com", "client2@example.com"]
    first = next(r for r in smtp.received if r.rcpt_to == ["client1@example.com"]).message
    assert first["Subject"] == "Statement for Name1" and first["From"] == "lender@imali.test"
    body = first.get_body(("plain",)).get_content()
    assert "Dear Name1 , your account" in body and email_funded.name in body
    attached = [part for part in first.iter_attachments()]
    assert [(a.get_filename(), a.get_content()) for a in attached] == [("statement.pdf", b"%PDF-1.4 statement")]
    log = ProcessLog.objects.get(pk=result.process.pk)
    assert (log.kind, log.queued, log.credits, log.finished_at is not None) == ("email_send", 3, 3, True)


def test_the_same_key_again_sends_and_costs_nothing(email_funded, admin_user, smtp, django_capture_on_commit_callbacks):
    people = recipients(email_funded, 2)
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            result = emails_send(actor=admin_user, entity=email_funded, message_type="arrears", subject="Hello",
                                 text="Hello {^Client Name^}", recipients=people, idempotency_key="once")
    assert result.repeated and result.sent == 0
    assert len(smtp.received) == 2
    assert credit_balance(entity=email_funded, channel="email") == 8


def test_attachments_over_seven_megabytes_are_refused_before_anything_is_written(email_funded, admin_user, smtp):
    big = [Attachment("a.pdf", b"x" * (MAX_ATTACHMENT_BYTES // 2)), Attachment("b.pdf", b"y" * (MAX_ATTACHMENT_BYTES // 2 + 1))]
    with pytest.raises(ValidationError) as exc:
        emails_send(actor=admin_user, entity=email_funded, message_type="arrears", subject="Docs", text="See attached",
                    recipients=recipients(email_funded, 1), idempotency_key="big", attachments=big)
    assert list(exc.value.message_dict) == ["attachments"]
    assert "at most 7.0 MB" in exc.value.message_dict["attachments"][0]
    assert not ProcessLog.objects.exists() and credit_balance(entity=email_funded, channel="email") == 10
    assert smtp.received == []
    # Exactly 7 MB is allowed.
    exact = [Attachment("a.pdf", b"x" * MAX_ATTACHMENT_BYTES)]
    from imali.messaging.email.rules import attachment_problems
    assert attachment_problems(exact) == []


def test_refused_recipient_is_refunded_and_reported(email_funded, admin_user, smtp, django_capture_on_commit_callbacks):
    people = recipients(email_funded, 1) + [EmailRecipient("gone@refused.example", {"Client Name": "Gone"})]
    with django_capture_on_commit_callbacks(execute=True):
        result = emails_send(actor=admin_user, entity=email_funded, message_type="arrears", subject="Hi", text="Hi {^Client Name^}",
                             recipients=people, idempotency_key="partly")
    assert (result.sent, result.failed) == (1, ["gone@refused.example"])
    assert credit_balance(entity=email_funded, channel="email") == 9
    log = ProcessLog.objects.get(pk=result.process.pk)
    assert log.credits == 1 and log.skipped == 1 and "gone@refused.example" in log.errors[0]


def test_bad_input_names_the_field(email_funded, admin_user):
    one = recipients(email_funded, 1)
    cases = [
        ({"subject": "Hi {^Nickname^}"}, "subject"),
        ({"text": "{^Client Name^} starts the text"}, "text"),
        ({"recipients": [EmailRecipient("not-an-address", {})]}, "recipients"),
        ({"text": "Pay {^Loan Amount^} now"}, "recipients"),  # no value for a recipient
    ]
    for change, field in cases:
        args = {"subject": "Hi", "text": "Hello {^Client Name^}", "recipients": one, **change}
        with pytest.raises(ValidationError) as exc:
            emails_send(actor=admin_user, entity=email_funded, message_type="arrears", idempotency_key=f"bad-{field}", **args)
        assert field in exc.value.message_dict, (change, exc.value.message_dict)
    assert credit_balance(entity=email_funded, channel="email") == 10


def test_credits_and_rights_are_checked(entity, operator, admin_user):
    credits_assign(actor=operator, entity=entity, channel="email", amount=1)
    with pytest.raises(ValidationError) as exc:
        emails_send(actor=admin_user, entity=entity, message_type="arrears", subject="Hi", text="Hello",
                    recipients=recipients(entity, 2), idempotency_key="poor")
    assert "Not enough email credits: 1 left, this send needs 2." in exc.value.message_dict["credits"]
    clerk = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    with pytest.raises(PermissionDenied):
        emails_send(actor=clerk, entity=entity, message_type="arrears", subject="Hi", text="Hello",
                    recipients=recipients(entity, 1)[:1], idempotency_key="nope")


def test_test_send_from_the_template_screen(email_funded, admin_user, smtp, django_capture_on_commit_callbacks):
    template_update(actor=admin_user, entity=email_funded, message_type="arrears", channel="email",
                    text="Dear {^Client Name^} , please pay {^Next Amount Due^} by {^Next Date Due^} .")
    borrower = factories.make_client(entity=email_funded, name="Lerato")
    with django_capture_on_commit_callbacks(execute=True):
        result = email_test_send(actor=admin_user, entity=email_funded, message_type="arrears", to_address="me@lender.test",
                                 subject="Test: arrears for {^Client Name^}", client=borrower, idempotency_key="test-1")
    assert result.sent == 1 and result.process.kind == "email_test"
    message = smtp.received[0].message
    assert message["Subject"] == "Test: arrears for Lerato"
    assert message.get_body(("plain",)).get_content().strip() == "Dear Lerato , please pay [Next Amount Due] by [Next Date Due] ."
    assert credit_balance(entity=email_funded, channel="email") == 9
    setup_only_sms = factories.make_user(entity=email_funded, rights=[Right.MAXSMS_MESSAGE_SETUP])
    with pytest.raises(PermissionDenied):
        email_test_send(actor=setup_only_sms, entity=email_funded, message_type="arrears", to_address="me@lender.test",
                        subject="Test", idempotency_key="test-2")


def test_file_backend_when_embedded(email_funded, admin_user, tmp_path, django_capture_on_commit_callbacks):
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend", EMAIL_FILE_PATH=str(tmp_path)):
        with django_capture_on_commit_callbacks(execute=True):
            result = emails_send(actor=admin_user, entity=email_funded, message_type="arrears", subject="Hi",
                                 text="Hello {^Client Name^}", recipients=recipients(email_funded, 2), idempotency_key="file")
    assert result.sent == 2
    written = "".join(p.read_text() for p in tmp_path.iterdir())
    assert written.count("Subject: Hi") == 2 and "Hello Name1" in written


def test_low_email_credit_warning_once_per_crossing(email_funded, admin_user, django_capture_on_commit_callbacks):
    owner = factories.make_user(entity=email_funded)
    owner.email = "owner@lender.test"
    owner.save()
    credit_settings_update(actor=admin_user, entity=email_funded, channel="email", monthly_limit=None,
                           low_warning_amount=8, low_warning_user=owner)
    people = recipients(email_funded, 1)
    for i in range(4):  # 10 → 6 credits: below 8 after the third send
        with django_capture_on_commit_callbacks(execute=True):
            emails_send(actor=admin_user, entity=email_funded, message_type="arrears", subject="Hi", text="Hello",
                        recipients=people, idempotency_key=f"warn-{i}")
    warnings = [m for m in mail.outbox if m.to == ["owner@lender.test"]]
    assert len(warnings) == 1 and "7 Email credits left" in warnings[0].subject
