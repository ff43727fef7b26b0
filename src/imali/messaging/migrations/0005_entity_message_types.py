# Per-entity switches of the message types, and the scheduled time of direct marketing queued
# outside the CPA Regulation 4 hours (issue 11).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('messaging', '0004_gateway_ton_npi_bind_mode_inbound_parts'),
        ('tenancy', '0001_initial'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='outboxmessage',
            name='scheduled_for',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.CreateModel(
            name='EntityMessageType',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('message_type', models.CharField(choices=[('otp', 'OTP'), ('arrears', 'Payment arrears'), ('payment_received', 'Payment received'), ('new_loan', 'New loan'), ('repeat_loan', 'Repeat loan'), ('payment_final', 'Final payment'), ('crm', 'CRM'), ('birthday', 'Birthday'), ('mis', 'MIS report'), ('marketing', 'Marketing'), ('single', 'Single SMS'), ('reply', 'Reply')], max_length=20)),
                ('enabled', models.BooleanField(default=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('entity', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='message_type_switches', to='tenancy.entity')),
                ('updated_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['message_type'],
                'constraints': [models.UniqueConstraint(fields=('entity', 'message_type'), name='message_type_switch_per_entity')],
            },
        ),
    ]
