import datetime as dt

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from imali.core.models import AuditAction, AuditEntry
from imali.messaging.credits import (
    credit_balance,
    credit_settings_update,
    credit_usage,
    credits_assign,
    credits_debit,
    credits_refund,
)
from imali.messaging.models import CreditEntry, CreditEntryKind
from tests import factories


def test_operator_assigns_and_is_audited(entity, operator):
    entry = credits_assign(actor=operator, entity=entity, channel="sms", amount=500, note="invoice 12")
    assert entry.kind == CreditEntryKind.ASSIGNMENT
    assert credit_balance(entity=entity, channel="sms") == 500
    assert credit_balance(entity=entity, channel="email") == 0
    audit = AuditEntry.objects.get(action=AuditAction.CREDITS_ASSIGNED)
    assert audit.actor == operator and audit.entity == entity and audit.after["balance"] == 500


def test_only_the_operator_assigns(entity, admin_user):
    with pytest.raises(PermissionDenied):
        credits_assign(actor=admin_user, entity=entity, channel="sms", amount=5)


def test_correction_cannot_go_negative(entity, operator):
    credits_assign(actor=operator, entity=entity, channel="sms", amount=10)
    with pytest.raises(ValidationError) as exc:
        credits_assign(actor=operator, entity=entity, channel="sms", amount=-11)
    assert "amount" in exc.value.message_dict
    credits_assign(actor=operator, entity=entity, channel="sms", amount=-10)
    assert credit_balance(entity=entity) == 0


def test_debit_refused_when_short_naming_the_reason(funded):
    with pytest.raises(ValidationError) as exc, transaction.atomic():
        credits_debit(entity=funded, channel="sms", amount=1001, messages=1, reference="x")
    assert exc.value.error_dict["credits"][0].code == "insufficient_credits"
    assert "1,000 left" in exc.value.message_dict["credits"][0]
    assert credit_balance(entity=funded) == 1000


def test_monthly_limit_refuses_with_clear_reason(funded, admin_user):
    credit_settings_update(actor=admin_user, entity=funded, channel="sms", monthly_limit=100, low_warning_amount=0)
    with transaction.atomic():
        credits_debit(entity=funded, channel="sms", amount=90, messages=90, reference="a")
    with pytest.raises(ValidationError) as exc, transaction.atomic():
        credits_debit(entity=funded, channel="sms", amount=11, messages=11, reference="b")
    assert exc.value.error_dict["credits"][0].code == "monthly_limit_reached"
    assert "monthly limit of 100" in exc.value.message_dict["credits"][0]
    # A refund gives room back inside the month.
    credits_refund(entity=funded, channel="sms", amount=5, messages=5, reference="r")
    with transaction.atomic():
        credits_debit(entity=funded, channel="sms", amount=15, messages=15, reference="c")
    usage = credit_usage(entity=funded, channel="sms", start=dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    assert usage == {"balance": 900, "used_this_month": 100, "monthly_limit": 100, "low_warning_amount": 0, "used_between": 100}


def test_ledger_is_exact_and_derived(funded):
    with transaction.atomic():
        credits_debit(entity=funded, channel="sms", amount=7, messages=3, reference="a")
    credits_refund(entity=funded, channel="sms", amount=2, messages=1, reference="a")
    amounts = list(CreditEntry.objects.filter(entity=funded).order_by("id").values_list("amount", "balance_after"))
    assert amounts == [(1000, 1000), (-7, 993), (2, 995)]
    assert credit_balance(entity=funded) == sum(a for a, _ in amounts)


def test_database_refuses_a_negative_balance(funded):
    account = CreditEntry.objects.get(entity=funded).account
    with pytest.raises(IntegrityError), transaction.atomic():
        CreditEntry.objects.create(account=account, entity=funded, kind="debit", amount=-2000, balance_after=-1000)


def test_low_credit_email_sent_on_commit(entity, operator, admin_user, django_capture_on_commit_callbacks):
    admin_user.email = "boss@example.com"
    admin_user.save()
    credit_settings_update(actor=admin_user, entity=entity, channel="sms", monthly_limit=None,
                           low_warning_amount=50, low_warning_user=admin_user)
    credits_assign(actor=operator, entity=entity, channel="sms", amount=60)
    with django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            credits_debit(entity=entity, channel="sms", amount=15, messages=1, reference="a")
        with transaction.atomic():
            credits_debit(entity=entity, channel="sms", amount=5, messages=1, reference="b")
    assert len(mail.outbox) == 1
    assert "45" in mail.outbox[0].subject
    with django_capture_on_commit_callbacks(execute=True):
        credits_assign(actor=operator, entity=entity, channel="sms", amount=100)
        with transaction.atomic():
            credits_debit(entity=entity, channel="sms", amount=120, messages=1, reference="c")
    assert len(mail.outbox) == 2


def test_settings_user_of_other_entity_refused(entity, other_entity, admin_user):
    stranger = factories.make_user(entity=other_entity)
    with pytest.raises(ValidationError) as exc:
        credit_settings_update(actor=admin_user, entity=entity, channel="sms", monthly_limit=None,
                               low_warning_amount=1, low_warning_user=stranger)
    assert "low_warning_user" in exc.value.message_dict


def test_reservation_debits_once_and_settles_once_refunding_only_the_unused_part(funded):
    from imali.messaging.credits import credits_reserve, reservation_settle
    from imali.messaging.models import ProcessLog

    with transaction.atomic():
        log = ProcessLog.objects.create(entity=funded, kind="bulk_send", message_type="crm")
        reservation = credits_reserve(entity=funded, channel="sms", amount=40, messages=40, process=log)
    assert credit_balance(entity=funded) == 960
    # No row was written for the run: everything comes back, once.
    settled, written = reservation_settle(reservation_id=reservation.pk, settled_by="run")
    assert (written, settled.used, settled.refunded, settled.status) == (0, 0, 40, "settled")
    reservation_settle(reservation_id=reservation.pk, settled_by="sweeper")
    assert credit_balance(entity=funded) == 1000
    entries = list(CreditEntry.objects.filter(entity=funded).order_by("id").values_list("kind", "amount", "balance_after"))
    assert entries == [("assignment", 1000, 1000), ("debit", -40, 960), ("refund", 40, 1000)]


def test_reservation_refused_like_a_debit(funded):
    from imali.messaging.credits import credits_reserve
    from imali.messaging.models import CreditReservation, ProcessLog

    log = ProcessLog.objects.create(entity=funded, kind="bulk_send", message_type="crm")
    with pytest.raises(ValidationError) as exc, transaction.atomic():
        credits_reserve(entity=funded, channel="sms", amount=1001, messages=1001, process=log)
    assert exc.value.error_dict["credits"][0].code == "insufficient_credits"
    assert not CreditReservation.objects.exists() and credit_balance(entity=funded) == 1000
