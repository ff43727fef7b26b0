"""Employers and paypoints: edits are audited, duplicates refused, every bad field named at once."""

import pytest
from django.core.exceptions import ValidationError

from imali.clients.models import Employer, Paypoint
from imali.clients.services import (
    employer_create,
    employer_update,
    paypoint_create,
    paypoint_update,
)
from imali.core.models import AuditAction, AuditEntry
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def employer(entity, admin_user):
    return factories.make_employer(entity=entity, actor=admin_user, name="Department of Health")


def test_paypoint_edit_is_audited_with_only_what_changed(employer, admin_user):
    paypoint = paypoint_create(employer=employer, actor=admin_user, number="P01", name="Pretoria")
    paypoint_update(paypoint=paypoint, actor=admin_user, number=" P02 ", name="Pretoria West", address="1 Church St")
    paypoint.refresh_from_db()
    assert (paypoint.number, paypoint.name, paypoint.address) == ("P02", "Pretoria West", "1 Church St")
    entry = AuditEntry.objects.get(action=AuditAction.PAYPOINT_UPDATED)
    assert (entry.entity_id, entry.actor_id, entry.object_id, entry.subject) == (employer.entity_id, admin_user.pk, str(paypoint.pk), "P02")
    assert entry.before == {"number": "P01", "name": "Pretoria", "address": ""}
    assert entry.after == {"number": "P02", "name": "Pretoria West", "address": "1 Church St"}


def test_saving_an_unchanged_paypoint_writes_no_audit_entry(employer, admin_user):
    paypoint = paypoint_create(employer=employer, actor=admin_user, number="P01", name="Pretoria")
    paypoint_update(paypoint=paypoint, actor=admin_user, number="P01", name="Pretoria")
    assert not AuditEntry.objects.filter(action=AuditAction.PAYPOINT_UPDATED).exists()


def test_paypoint_edit_refuses_a_number_the_employer_uses_and_names_every_bad_field(entity, employer, admin_user):
    paypoint_create(employer=employer, actor=admin_user, number="P01", name="Pretoria")
    second = paypoint_create(employer=employer, actor=admin_user, number="P02", name="Durban")
    with pytest.raises(ValidationError) as err:
        paypoint_update(paypoint=second, actor=admin_user, number="P01", name="  ")
    assert {f: [e.code for e in errs] for f, errs in err.value.error_dict.items()} == {
        "number": ["duplicate"], "name": ["required"]}
    assert Paypoint.objects.get(pk=second.pk).number == "P02"
    # Another employer's paypoint may carry the number.
    other = factories.make_employer(entity=entity, actor=admin_user, name="Mine Co")
    theirs = paypoint_create(employer=other, actor=admin_user, number="P9", name="Shaft")
    paypoint_update(paypoint=theirs, actor=admin_user, number="P01", name="Shaft")


def test_employer_create_reports_a_taken_name_and_every_other_bad_field_at_once(entity, employer, admin_user):
    with pytest.raises(ValidationError) as err:
        employer_create(entity=entity, actor=admin_user, data={
            "name": "department  of HEALTH", "classification": "", "economic_sector": "", "telephone": "12"})
    assert set(err.value.error_dict) == {"name", "classification", "economic_sector", "telephone"}
    assert err.value.error_dict["name"][0].code == "duplicate"
    assert Employer.objects.filter(entity=entity).count() == 1


def test_employer_update_reports_a_taken_name_with_a_bad_telephone(entity, employer, admin_user):
    other = factories.make_employer(entity=entity, actor=admin_user, name="Mine Co")
    with pytest.raises(ValidationError) as err:
        employer_update(employer=other, actor=admin_user, data={
            "name": "Department of Health", "classification": "private", "economic_sector": "mining", "telephone": "12"})
    assert set(err.value.error_dict) == {"name", "telephone"}
    # Its own name is no clash.
    employer_update(employer=other, actor=admin_user, data={
        "name": "MINE CO", "classification": "private", "economic_sector": "mining"})
    assert Employer.objects.get(pk=other.pk).name == "MINE CO"
