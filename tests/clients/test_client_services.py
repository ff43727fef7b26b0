import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from imali.clients.models import Client
from imali.core.models import AuditAction, AuditEntry
from tests import factories

pytestmark = pytest.mark.django_db


def test_client_numbers_are_sequential_per_entity(entity, other_entity):
    a1 = factories.make_client(entity=entity)
    a2 = factories.make_client(entity=entity, id_number="8001015009087", date_of_birth=dt.date(1980, 1, 1))
    b1 = factories.make_client(entity=other_entity)
    assert (a1.number, a2.number, b1.number) == (1, 2, 1)


def test_client_phone_is_stored_e164(entity):
    client = factories.make_client(entity=entity, cellphone="082 123 4567", home_phone="011 555 1234")
    assert client.cellphone == "+27821234567"
    assert client.home_phone == "+27115551234"


def test_bad_values_name_their_fields_and_write_nothing(entity):
    with pytest.raises(ValidationError) as err:
        factories.make_client(entity=entity, id_number="8503305044089", cellphone="12345", bonus_month=13)
    assert set(err.value.error_dict) >= {"id_number", "cellphone", "bonus_month"}
    assert Client.objects.count() == 0


def test_values_outside_a_fields_choices_are_refused_by_name_and_write_nothing(entity):
    # "female" fits no one-letter gender: SQLite stored it, PostgreSQL failed with a server error.
    with pytest.raises(ValidationError) as err:
        factories.make_client(entity=entity, gender="female", payment_frequency="yearly", title="Lord")
    assert set(err.value.error_dict) >= {"gender", "payment_frequency", "title"}
    assert err.value.error_dict["gender"][0].code == "invalid_choice"
    assert Client.objects.count() == 0


def test_id_number_must_match_birth_date_and_gender(entity):
    with pytest.raises(ValidationError) as err:
        factories.make_client(entity=entity, date_of_birth=dt.date(1976, 3, 30), gender="F")
    assert set(err.value.error_dict) == {"date_of_birth", "gender"}


def test_za_mobile_needs_nine_national_digits(entity):
    with pytest.raises(ValidationError) as err:
        factories.make_client(entity=entity, cellphone="08212345")
    assert "cellphone" in err.value.error_dict


def test_create_and_edit_are_audited_with_before_and_after(entity, admin_user):
    from imali.clients.services import client_update

    client = factories.make_client(entity=entity, actor=admin_user)
    client_update(client=client, actor=admin_user, data={"surname": "Dlamini", "marketing_consent": True})
    updated = AuditEntry.objects.get(action=AuditAction.CLIENT_UPDATED)
    assert updated.before == {"surname": "Mokoena"} and updated.after == {"surname": "Dlamini"}
    consent = AuditEntry.objects.get(action=AuditAction.CLIENT_CONSENT_CHANGED)
    assert consent.after == {"marketing_consent": True}
    assert AuditEntry.objects.filter(action=AuditAction.CLIENT_CREATED, object_id=str(client.pk)).exists()


def test_audit_rows_cannot_be_changed(entity):
    from django.db import DatabaseError, transaction

    factories.make_client(entity=entity)
    entry = AuditEntry.objects.first()
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().update(subject="x")
    with pytest.raises(DatabaseError), transaction.atomic():
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("UPDATE core_auditentry SET subject = 'x'")


def test_references_must_be_of_the_same_entity(entity, other_entity):
    employer = factories.make_employer(entity=other_entity)
    with pytest.raises(ValidationError) as err:
        factories.make_client(entity=entity, employer=employer)
    assert "employer" in err.value.error_dict


def test_employer_names_are_unique_per_entity_whatever_the_case(entity, other_entity):
    from django.db import IntegrityError, transaction

    from imali.clients.models import Employer

    factories.make_employer(entity=entity, name="Acme Mining")
    with pytest.raises(ValidationError) as err:
        factories.make_employer(entity=entity, name="ACME  mining")
    assert "name" in err.value.error_dict
    factories.make_employer(entity=other_entity, name="Acme Mining")  # another lender may use it
    # The database holds the rule too, for two requests racing past the check.
    with pytest.raises(IntegrityError), transaction.atomic():
        Employer.objects.create(entity=entity, name="acme mining", classification="private", economic_sector="mining")


def test_client_status_apply_moves_many_clients_in_slices_with_one_entry_each(entity, admin_user):
    from imali.clients import services as client_services

    clients = [factories.make_client(entity=entity) for _ in range(7)]
    Client.objects.filter(pk=clients[0].pk).update(status="bad", new_loans_allowed=False)  # already there
    # Slices of 3: the slicing is exercised without building thousands of clients.
    moved = client_services.client_status_apply(
        clients=Client.objects.filter(entity=entity), status="bad", new_loans_allowed=False, actor=admin_user,
        rule="test rule", batch_size=3)
    assert moved == 6
    assert set(Client.objects.filter(entity=entity).values_list("status", "new_loans_allowed")) == {("bad", False)}
    entries = AuditEntry.objects.filter(action=AuditAction.CLIENT_UPDATED, after__rule="test rule")
    assert sorted(int(e.object_id) for e in entries) == sorted(c.pk for c in clients[1:])
    assert all(e.actor_id == admin_user.pk and e.before == {"status": "good", "new_loans_allowed": True} for e in entries)
    # Nothing to move: nothing written.
    assert client_services.client_status_apply(clients=Client.objects.filter(entity=entity), status="bad",
                                               new_loans_allowed=False, rule="again") == 0
    assert not AuditEntry.objects.filter(after__rule="again").exists()
