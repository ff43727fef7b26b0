"""The supplied OTP text now names the lender. An entity that saved the earlier default text
unchanged gets the new default (with a revision saying so); an entity's own wording stays."""

from django.db import migrations

BEFORE = "Your one-time PIN is {^OTP^} Do not share it with anyone."
AFTER = "Your one-time PIN from {^Legal Entity Name^} is {^OTP^} Do not share it with anyone."


def _move(apps, old: str, new: str) -> None:
    MessageTemplate = apps.get_model("messaging", "MessageTemplate")
    TemplateRevision = apps.get_model("messaging", "TemplateRevision")
    for template in MessageTemplate.objects.filter(channel="sms", message_type="otp", text=old):
        template.text = new
        template.save(update_fields=["text", "updated_at"])
        TemplateRevision.objects.create(template=template, entity_id=template.entity_id, old_text=old, new_text=new)


def forward(apps, schema_editor):
    _move(apps, BEFORE, AFTER)


def backward(apps, schema_editor):
    _move(apps, AFTER, BEFORE)


class Migration(migrations.Migration):
    dependencies = [
        ("signing", "0001_initial"),
        ("messaging", "0002_gateway_kinds"),
    ]

    operations = [migrations.RunPython(forward, backward)]
