"""Tenancy writes: region renames, passwords, entity edits, and every bad user field at once."""

import json

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError

from imali.core.models import AuditAction, AuditEntry
from imali.tenancy.models import Entity, Region, Role, User
from imali.tenancy.rights import Right
from imali.tenancy.services import (
    entity_onboard,
    entity_update,
    region_create,
    region_update,
    user_create,
    user_set_password,
)
from tests import factories

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Kalahari-sunrise-2026"


# --- Regions ----------------------------------------------------------------------------------


def test_region_rename_is_audited_with_before_and_after(entity, admin_user):
    region = region_create(actor=admin_user, entity=entity, name="Gauteng")
    renamed = region_update(actor=admin_user, region=region, name="  Gauteng   North ")
    assert Region.objects.get(pk=region.pk).name == renamed.name == "Gauteng North"
    entry = AuditEntry.objects.get(action=AuditAction.REGION_UPDATED)
    assert (entry.entity_id, entry.actor_id, entry.object_id) == (entity.pk, admin_user.pk, str(region.pk))
    assert (entry.before, entry.after) == ({"name": "Gauteng"}, {"name": "Gauteng North"})


def test_region_rename_to_its_own_name_writes_no_audit_entry(entity, admin_user):
    region = region_create(actor=admin_user, entity=entity, name="Limpopo")
    region_update(actor=admin_user, region=region, name="Limpopo")
    assert not AuditEntry.objects.filter(action=AuditAction.REGION_UPDATED).exists()


def test_region_rename_refuses_a_name_taken_in_the_entity_whatever_the_case(entity, other_entity, admin_user):
    region_create(actor=admin_user, entity=entity, name="Gauteng")
    region = region_create(actor=admin_user, entity=entity, name="Limpopo")
    with pytest.raises(ValidationError) as err:
        region_update(actor=admin_user, region=region, name="GAUTENG")
    assert err.value.error_dict["name"][0].code == "duplicate"
    with pytest.raises(ValidationError) as err:
        region_update(actor=admin_user, region=region, name="   ")
    assert err.value.error_dict["name"][0].code == "required"
    assert Region.objects.get(pk=region.pk).name == "Limpopo"
    # Another lender's region of that name is no obstacle.
    theirs = Region.objects.create(entity=other_entity, name="Khomas")
    region_update(actor=factories.make_admin(entity=other_entity), region=theirs, name="Gauteng")


def test_region_of_another_entity_cannot_be_renamed(entity, other_entity, admin_user):
    theirs = Region.objects.create(entity=other_entity, name="Khomas")
    with pytest.raises(PermissionDenied):
        region_update(actor=admin_user, region=theirs, name="Mine now")
    assert Region.objects.get(pk=theirs.pk).name == "Khomas"


# --- Passwords --------------------------------------------------------------------------------


def test_admin_sets_a_password_audited_without_the_password(entity, admin_user):
    user = factories.make_user(entity=entity)
    user_set_password(actor=admin_user, user=user, password=NEW_PASSWORD)
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    entry = AuditEntry.objects.get(action=AuditAction.USER_PASSWORD_SET)
    assert (entry.entity_id, entry.actor_id, entry.object_id, entry.subject) == (entity.pk, admin_user.pk, str(user.pk), user.username)
    recorded = json.dumps([entry.before, entry.after, entry.subject])
    assert NEW_PASSWORD not in recorded and user.password not in recorded
    assert entry.after == {"set_by": "administrator"}


def test_a_user_changes_their_own_password_with_the_current_one(entity):
    user = factories.make_user(entity=entity, password="correct-horse-battery")
    user_set_password(actor=user, user=user, password=NEW_PASSWORD, current_password="correct-horse-battery")
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert AuditEntry.objects.get(action=AuditAction.USER_PASSWORD_SET).after == {"set_by": "self"}


def test_own_password_change_reports_a_wrong_current_password_and_a_weak_new_one_together(entity):
    user = factories.make_user(entity=entity, password="correct-horse-battery")
    with pytest.raises(ValidationError) as err:
        user_set_password(actor=user, user=user, password="12345", current_password="not-my-password")
    assert set(err.value.error_dict) == {"current_password", "password"}
    codes = {e.code for e in err.value.error_dict["password"]}
    assert {"password_too_short", "password_entirely_numeric"} <= codes
    user.refresh_from_db()
    assert user.check_password("correct-horse-battery")
    assert not AuditEntry.objects.filter(action=AuditAction.USER_PASSWORD_SET).exists()


def test_own_password_change_needs_the_current_password(entity):
    user = factories.make_user(entity=entity)
    with pytest.raises(ValidationError) as err:
        user_set_password(actor=user, user=user, password=NEW_PASSWORD)
    assert set(err.value.error_dict) == {"current_password"}


def test_new_password_must_pass_djangos_validators(entity, admin_user):
    user = factories.make_user(entity=entity, username="thandiwe")
    for weak in ("password123", "thandiwe1", "short"):
        with pytest.raises(ValidationError) as err:
            user_set_password(actor=admin_user, user=user, password=weak)
        assert set(err.value.error_dict) == {"password"}, weak


def test_only_an_admin_of_the_users_entity_sets_their_password(entity, other_entity):
    user = factories.make_user(entity=entity)
    clerk = factories.make_user(entity=entity, rights=[Right.MANAGE_CLIENTS, Right.MANAGE_BRANCHES])
    foreign_admin = factories.make_admin(entity=other_entity)
    for actor in (clerk, foreign_admin):
        with pytest.raises(PermissionDenied):
            user_set_password(actor=actor, user=user, password=NEW_PASSWORD)
    user.refresh_from_db()
    assert not user.check_password(NEW_PASSWORD)


def test_an_operator_changes_their_own_password(operator):
    user_set_password(actor=operator, user=operator, password=NEW_PASSWORD, current_password="operator-pass-123")
    operator.refresh_from_db()
    assert operator.check_password(NEW_PASSWORD)


@pytest.mark.production_password_hashing
def test_production_hashes_passwords_with_argon2(entity, admin_user):
    assert settings.PASSWORD_HASHERS[0] == "django.contrib.auth.hashers.Argon2PasswordHasher"
    user = user_create(actor=admin_user, entity=entity, password=NEW_PASSWORD,
                       data={"username": "argon", "first_name": "Ar", "last_name": "Gon", "cellphone": "082 555 1234"})
    assert User.objects.get(pk=user.pk).password.startswith("argon2")


def test_the_rest_of_the_suite_hashes_fast(entity):
    assert factories.make_user(entity=entity).password.startswith("md5$")


# --- Entities ---------------------------------------------------------------------------------


def test_entity_update_refuses_a_taken_name_or_code_naming_the_field(entity, other_entity, operator):
    with pytest.raises(ValidationError) as err:
        entity_update(actor=operator, entity=entity, data={"name": other_entity.name.upper()})
    assert err.value.error_dict["name"][0].code == "duplicate"
    with pytest.raises(ValidationError) as err:
        entity_update(actor=operator, entity=entity, data={"name": other_entity.name, "code": other_entity.code})
    assert set(err.value.error_dict) == {"name", "code"}
    assert Entity.objects.get(pk=entity.pk).name == entity.name
    # Keeping its own name is no clash.
    entity_update(actor=operator, entity=entity, data={"name": entity.name, "ncr_number": "NCRCP123"})
    assert Entity.objects.get(pk=entity.pk).ncr_number == "NCRCP123"


def test_entity_update_reports_a_bad_time_zone_and_a_taken_name_together(entity, other_entity, operator):
    with pytest.raises(ValidationError) as err:
        entity_update(actor=operator, entity=entity, data={"name": other_entity.name, "time_zone": "Mars/Olympus"})
    assert set(err.value.error_dict) == {"name", "time_zone"}


# --- Every bad user field at once ---------------------------------------------------------------


def test_user_create_reports_every_bad_field_at_once(entity, other_entity, admin_user):
    factories.make_user(entity=entity, username="sipho")
    foreign_role = Role.objects.filter(entity=other_entity).first()
    with pytest.raises(ValidationError) as err:
        user_create(actor=admin_user, entity=entity, password="123",
                    data={"username": "SIPHO", "first_name": "S", "last_name": "M", "cellphone": "12"},
                    roles=[foreign_role])
    assert set(err.value.error_dict) == {"username", "password", "cellphone", "roles"}
    assert not User.objects.filter(username__iexact="sipho", roles__isnull=False).exists()


def test_onboarding_reports_a_bad_admin_and_a_weak_password_together(operator):
    factories.make_operator(username="taken")
    with pytest.raises(ValidationError) as err:
        entity_onboard(actor=operator, data={"name": "New Lender", "code": "newlender", "country": "ZA"},
                       admin={"username": "taken", "first_name": "A", "last_name": "B", "cellphone": "082 555 1234"},
                       admin_password="1234")
    assert set(err.value.error_dict) == {"username", "admin_password"}
    assert not Entity.objects.filter(code="newlender").exists()
