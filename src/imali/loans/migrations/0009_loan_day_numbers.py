"""The loan's agreement, paid-up and last receipt dates as day numbers (date.toordinal()), filled
from the dates for the loans already there, and the whole-book figures' covering index over them
instead of the dates; a loan has an agreement day exactly when it was paid out."""

from django.db import migrations, models

DAY_NUMBERS = {"disbursed_on": "disbursed_ord", "paid_up_on": "paid_up_ord", "last_receipt_on": "last_receipt_ord"}


def fill_day_numbers(apps, schema_editor):
    table = apps.get_model("loans", "Loan")._meta.db_table
    quote = schema_editor.quote_name
    if schema_editor.connection.vendor == "postgresql":
        # date − date is a number of days; 0001-01-01 is day 1 as Python counts.
        as_number = "{} - DATE '0001-01-01' + 1"
    else:
        # SQLite keeps dates as text; its Julian day of 0001-01-01 is 1721425.5.
        as_number = "CAST(julianday({}) - 1721424.5 AS INTEGER)"
    assignments = ", ".join(f"{quote(n)} = {as_number.format(quote(d))}" for d, n in DAY_NUMBERS.items())
    schema_editor.execute(f"UPDATE {quote(table)} SET {assignments}")


class Migration(migrations.Migration):

    dependencies = [
        ('loans', '0008_instalment_paid_ahead_cover'),
    ]

    operations = [
        migrations.AddField(
            model_name='loan',
            name='disbursed_ord',
            field=models.IntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='loan',
            name='last_receipt_ord',
            field=models.IntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name='loan',
            name='paid_up_ord',
            field=models.IntegerField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(fill_day_numbers, migrations.RunPython.noop, elidable=False),
        migrations.AddConstraint(
            model_name='loan',
            constraint=models.CheckConstraint(condition=models.Q(models.Q(('disbursed_ord__isnull', False), ('status__in', ('active', 'paid_up', 'written_off', 'handed_over'))), models.Q(models.Q(('status__in', ('active', 'paid_up', 'written_off', 'handed_over')), _negated=True), ('disbursed_ord__isnull', True)), _connector='OR'), name='loan_agreement_day_when_paid_out'),
        ),
        migrations.RemoveIndex(
            model_name='loan',
            name='loan_client_figures_cover',
        ),
        migrations.AddIndex(
            model_name='loan',
            index=models.Index(fields=['entity', 'client', 'status', 'disbursed_ord', 'product', 'paid_up_ord', 'total_repayable', 'last_receipt_ord', 'change_total', 'received_total', 'id'], name='loan_client_figures_cover'),
        ),
    ]
