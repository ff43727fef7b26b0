"""The email template screen: edit the text, and send a test email over real SMTP (the loopback
receiver) to an address the user types, paid with one email credit, attachments up to 7 MB."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from imali.messaging.credits import credit_balance
from imali.messaging.email.rules import MAX_ATTACHMENT_BYTES
from imali.messaging.models import MessageTemplate, ProcessLog
from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db

URL = reverse("web:messaging_email_template_edit") + "?type=arrears"


def test_save_an_email_template_then_send_a_test_over_smtp(admin_client, email_funded, smtp, django_capture_on_commit_callbacks):
    response = admin_client.post(URL, {"text": "Dear {^Client Name^} , please pay {^Next Amount Due^} .", "save": "1"})
    assert response.status_code == 302
    assert MessageTemplate.objects.get(entity=email_funded, channel="email", message_type="arrears").text.startswith("Dear")
    assert not MessageTemplate.objects.filter(channel="sms").exists()
    borrower = factories.make_client(entity=email_funded, name="Lerato")
    page = admin_client.get(URL)
    key = page.context["test_form"].initial["idempotency_key"]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(URL, {
            "test_send": "1", "to_address": "me@lender.test", "subject": "Test for {^Client Name^}", "client": borrower.number,
            "idempotency_key": key, "attachment": SimpleUploadedFile("terms.pdf", b"%PDF-1.4 terms", "application/pdf")})
    assert response.status_code == 302
    assert len(smtp.received) == 1 and smtp.received[0].rcpt_to == ["me@lender.test"]
    message = smtp.received[0].message
    assert message["Subject"] == "Test for Lerato"
    assert message.get_body(("plain",)).get_content().strip() == "Dear Lerato , please pay [Next Amount Due] ."
    assert [part.get_filename() for part in message.iter_attachments()] == ["terms.pdf"]
    assert credit_balance(entity=email_funded, channel="email") == 9
    assert ProcessLog.objects.get(entity=email_funded, kind="email_test").criteria["to"] == "me@lender.test"
    # The same form sent twice (a double click) sends once and costs once.
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(URL, {"test_send": "1", "to_address": "me@lender.test", "subject": "Test", "idempotency_key": key})
    assert len(smtp.received) == 1 and credit_balance(entity=email_funded, channel="email") == 9


def test_test_send_errors_name_the_field(admin_client, entity, operator, smtp):
    def send(**fields):
        response = admin_client.post(URL, {"test_send": "1", "to_address": "me@lender.test", "subject": "Test",
                                           "idempotency_key": "k", **fields})
        assert response.status_code == 400
        return response.context["test_form"]

    assert "Not enough email credits" in str(send().non_field_errors())
    from imali.messaging.credits import credits_assign

    credits_assign(actor=operator, entity=entity, channel="email", amount=5)
    assert "to_address" in send(to_address="not-an-address").errors
    assert "client" in send(client=999999).errors
    big = SimpleUploadedFile("scan.pdf", b"x" * (MAX_ATTACHMENT_BYTES + 1), "application/pdf")
    assert "at most 7.0 MB" in str(send(attachment=big).errors["attachment"])
    assert "subject" in send(subject="Hello {^Nope^}").errors
    assert smtp.received == [] and credit_balance(entity=entity, channel="email") == 5


def test_email_template_screens_need_maxmail_message_setup(client, entity):
    client.force_login(factories.make_user(entity=entity, rights=[Right.MAXSMS_MESSAGE_SETUP]))
    assert client.get(reverse("web:messaging_email_templates")).status_code == 403
    assert client.get(URL).status_code == 403
    client.force_login(factories.make_user(entity=entity, rights=[Right.MAXMAIL_MESSAGE_SETUP]))
    assert "Edit and test" in client.get(reverse("web:messaging_email_templates")).content.decode()
    assert "Send test email" in client.get(URL).content.decode()
