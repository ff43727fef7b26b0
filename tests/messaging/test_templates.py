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
