"""Products made before 0011 outside South Africa say they charge an initiation fee but charged
none (no cap is recorded there, so loan_apply's fee was zero). Since 0011 the service refuses a
product that charges a fee without stating it, and product_update checks the whole row: such a
product could no longer be renamed or switched off until someone invented a fee. The flag is set to
what the product did (no fee), so every loan priced from it stays as it was and edits work again."""

from django.db import migrations

# The countries with an initiation-fee cap when this was written (loans.pricing.PRICING_CAPS).
CAPPED_COUNTRIES = ("ZA",)


def say_what_was_charged(apps, schema_editor):
    Product = apps.get_model("loans", "Product")
    (Product.objects.filter(charge_initiation_fee=True, initiation_fee__isnull=True)
     .exclude(entity__country__in=CAPPED_COUNTRIES).update(charge_initiation_fee=False))


class Migration(migrations.Migration):

    dependencies = [
        ("loans", "0011_product_initiation_fee"),
    ]

    operations = [
        migrations.RunPython(say_what_was_charged, migrations.RunPython.noop),
    ]
