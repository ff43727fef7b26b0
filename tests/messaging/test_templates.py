import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from imali.core.models import AuditAction, AuditEntry
from imali.messaging.models import TemplateRevision
from imali.messaging.services import template_preview, template_text, template_update
from tests import factories


def test_default_text_until_saved(entity):
    assert template_text(entity=entity, message_type="arrears") == "Your loan is in arrears, please contact your microlender urgently."


def test_update_validates_naming_the_field(entity, admin_user):
    with pytest.raises(ValidationError) as exc:
        template_update(actor=admin_user, entity=entity, message_type="arrears", text="Dear {^Client Nmae^} pay")
    assert "Client Nmae" in exc.value.message_dict["text"][0]
    with pytest.raises(ValidationError) as exc:
        template_update(actor=admin_user, entity=entity, message_type="arrears", text="{^Client Name^} pay")
    assert exc.value.error_dict["text"][0].code == "field_at_start"


def test_update_history_and_audit(entity, admin_user):
    template_update(actor=admin_user, entity=entity, message_type="arrears", text="Dear {^Client Name^} please pay")
    template_update(actor=admin_user, entity=entity, message_type="arrears", text="Dear {^Client Name^} pay today")
    assert template_text(entity=entity, message_type="arrears") == "Dear {^Client Name^} pay today"
    history = list(TemplateRevision.objects.filter(entity=entity).values_list("old_text", "new_text", "changed_by"))
    assert history == [
        ("Dear {^Client Name^} please pay", "Dear {^Client Name^} pay today", admin_user.pk),
        ("Your loan is in arrears, please contact your microlender urgently.", "Dear {^Client Name^} please pay", admin_user.pk),
    ]
    assert AuditEntry.objects.filter(action=AuditAction.TEMPLATE_UPDATED, entity=entity).count() == 2


def test_templates_are_per_entity(entity, other_entity, admin_user):
    template_update(actor=admin_user, entity=entity, message_type="birthday", text="Happy day {^Client Name^}")
    assert template_text(entity=other_entity, message_type="birthday").startswith("Happy birthday")


def test_needs_the_right_and_own_entity(entity, other_entity, admin_user):
    clerk = factories.make_user(entity=entity)
    with pytest.raises(PermissionDenied):
        template_update(actor=clerk, entity=entity, message_type="arrears", text="Pay now")
    with pytest.raises(PermissionDenied):
        template_update(actor=admin_user, entity=other_entity, message_type="arrears", text="Pay now")


def test_preview_against_a_client(entity, sms_client):
    preview = template_preview(entity=entity, client=sms_client,
                               text="Dear {^Client Name^} owe {^Loan Amount^} at {^Legal Entity Name^} ✓")
    assert preview.text == f"Dear Thabo owe [Loan Amount] at {entity.name} ✓"
    assert preview.encoding == "ucs2" and preview.ucs2_characters == ("✓",)
    assert preview.segments == 1 and preview.problems == ()


def test_email_templates_need_the_maxmail_right_and_sms_templates_the_maxsms_right(entity):
    from django.core.exceptions import PermissionDenied

    from imali.tenancy.rights import Right

    sms_only = factories.make_user(entity=entity, rights=[Right.MAXSMS_MESSAGE_SETUP])
    mail_only = factories.make_user(entity=entity, rights=[Right.MAXMAIL_MESSAGE_SETUP])
    text = "Dear {^Client Name^} please pay"
    with pytest.raises(PermissionDenied):
        template_update(actor=sms_only, entity=entity, message_type="arrears", text=text, channel="email")
    with pytest.raises(PermissionDenied):
        template_update(actor=mail_only, entity=entity, message_type="arrears", text=text, channel="sms")
    assert template_update(actor=mail_only, entity=entity, message_type="arrears", text=text, channel="email").channel == "email"
    assert template_update(actor=sms_only, entity=entity, message_type="arrears", text=text, channel="sms").channel == "sms"


# --- The rules of a saved template and of free text (issue 10) ------------------------------


def test_an_sms_template_longer_than_six_parts_is_refused(entity, admin_user):
    from imali.messaging.templating import SMS_TEMPLATE_MAX_LENGTH

    assert SMS_TEMPLATE_MAX_LENGTH == 918
    with pytest.raises(ValidationError) as exc:
        template_update(actor=admin_user, entity=entity, message_type="arrears", text="Pay " + "x" * 9996)
    assert exc.value.error_dict["text"][0].code == "template_too_long"
    assert "at most 918 characters" in exc.value.message_dict["text"][0] and "10,000" in exc.value.message_dict["text"][0]
    assert not TemplateRevision.objects.exists()
    assert template_update(actor=admin_user, entity=entity, message_type="arrears", text="y" * 918).text == "y" * 918


def test_an_email_template_has_its_own_larger_bound(entity, admin_user):
    from imali.messaging.templating import EMAIL_TEMPLATE_MAX_LENGTH

    long_body = "Dear client " + "z" * 2000
    assert template_update(actor=admin_user, entity=entity, message_type="arrears", text=long_body, channel="email").text == long_body
    with pytest.raises(ValidationError) as exc:
        template_update(actor=admin_user, entity=entity, message_type="arrears", text="z" * 10_000, channel="email")
    assert exc.value.error_dict["text"][0].code == "template_too_long"
    assert f"at most {EMAIL_TEMPLATE_MAX_LENGTH:,} characters" in exc.value.message_dict["text"][0]


@pytest.mark.parametrize("channel", ["sms", "email"])
def test_an_otp_template_without_the_code_is_refused(entity, admin_user, channel):
    with pytest.raises(ValidationError) as exc:
        template_update(actor=admin_user, entity=entity, message_type="otp", text="Your PIN is coming", channel=channel)
    assert exc.value.error_dict["text"][0].code == "required_field_missing"
    assert "{^OTP^}" in exc.value.message_dict["text"][0]
    assert not TemplateRevision.objects.exists()
    saved = template_update(actor=admin_user, entity=entity, message_type="otp", text="Your PIN is {^OTP^} keep it secret",
                            channel=channel)
    assert saved.text == "Your PIN is {^OTP^} keep it secret"


def test_only_the_otp_template_may_use_the_otp_field_and_needs_it():
    from imali.messaging.templating import saved_template_problems

    assert [p.code for p in saved_template_problems("Code {^OTP^}", channel="sms", message_type="otp")] == []
    assert [p.code.value for p in saved_template_problems("Code soon", channel="sms", message_type="otp")] == ["required_field_missing"]
    assert [p.code.value for p in saved_template_problems("x" * 919, channel="sms", message_type="crm")] == ["template_too_long"]


def test_the_template_screen_shows_both_refusals(admin_client, entity):
    from django.urls import reverse

    url = reverse("web:messaging_template_edit") + "?type=otp"
    response = admin_client.post(url, {"text": "Your PIN is ready", "save": "1"})
    assert response.status_code == 400
    assert "{^OTP^}" in response.content.decode()
    response = admin_client.post(reverse("web:messaging_template_edit") + "?type=arrears", {"text": "p" * 10_000, "save": "1"})
    assert response.status_code == 400 and "at most 918 characters" in response.content.decode()
    assert not TemplateRevision.objects.exists()


@pytest.mark.parametrize(("text", "code"), [
    ("{^Nope^} {^", "unknown_field"),
    ("Hello {^Nope^} there", "unknown_field"),
    ("Hello {^Client Name", "unclosed_field"),
    ("Hello there ^}", "unclosed_field"),
    ("Your code {^OTP^} now", "missing_value"),
])
def test_free_sms_text_gets_the_template_rules_over_the_api(admin_client, funded, sms_client, text, code):
    from django.urls import reverse

    from imali.messaging.models import OutboxMessage

    for url in (reverse("api:messaging-sms"), reverse("api:messaging-sms-preview")):
        response = admin_client.post(url, {"client_id": sms_client.pk, "text": text, "idempotency_key": "free-1"},
                                     content_type="application/json")
        assert response.status_code == 400, response.content
        assert list(response.json()) == ["text"]
    assert not OutboxMessage.objects.exists()


def test_free_sms_text_with_known_fields_is_merged_for_the_client(admin_client, funded, sms_client):
    from django.urls import reverse

    response = admin_client.post(reverse("api:messaging-sms"),
                                 {"client_id": sms_client.pk, "text": "Hello {^Client Name^} call us", "idempotency_key": "m-1"},
                                 content_type="application/json")
    assert response.status_code == 201, response.content
    assert response.json()["text"] == "Hello Thabo call us"
