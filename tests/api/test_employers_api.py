import pytest

from imali.clients.models import Employer, Paypoint
from imali.clients.services import paypoint_create
from imali.core.models import AuditAction, AuditEntry
from tests import factories

pytestmark = pytest.mark.django_db

EMPLOYERS = "/api/employers/"
ACME = {"name": "  Acme   Mining ", "classification": "mining", "economic_sector": "mining", "telephone": "011 555 1234"}


def detail(employer_id) -> str:
    return f"{EMPLOYERS}{employer_id}/"


def test_create_normalises_and_audits(entity, clerk):
    response = clerk.post(EMPLOYERS, ACME, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["telephone"], body["paypoints"]) == ("Acme Mining", "+27115551234", [])
    employer = Employer.objects.get(pk=body["id"])
    assert employer.entity == entity
    assert AuditEntry.objects.filter(action=AuditAction.EMPLOYER_CREATED, object_id=str(employer.pk), actor=clerk.user).exists()


def test_list_and_read_carry_the_paypoints(entity, clerk):
    employer = factories.make_employer(entity=entity, name="Beta")
    factories.make_employer(entity=entity, name="Alpha")
    paypoint_create(employer=employer, actor=None, number="P2", name="Depot")
    paypoint_create(employer=employer, actor=None, number="P1", name="Head office")
    body = clerk.get(EMPLOYERS).json()
    assert [row["name"] for row in body["results"]] == ["Alpha", "Beta"]
    read = clerk.get(detail(employer.pk)).json()
    assert [(p["number"], p["name"]) for p in read["paypoints"]] == [("P1", "Head office"), ("P2", "Depot")]


def test_duplicate_name_is_400_naming_the_field(entity, clerk):
    factories.make_employer(entity=entity, name="Acme Mining")
    response = clerk.post(EMPLOYERS, {**ACME, "name": "ACME MINING"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"name"}
    assert Employer.objects.count() == 1


def test_the_same_name_in_another_entity_is_fine(entity, other_entity, clerk):
    factories.make_employer(entity=other_entity, name="Acme Mining")
    assert clerk.post(EMPLOYERS, ACME, format="json").status_code == 201


@pytest.mark.parametrize(
    "body, fields",
    [
        ({"name": "", "classification": "", "economic_sector": "mining"}, {"name", "classification"}),
        ({**ACME, "classification": "royalty", "economic_sector": "space"}, {"classification", "economic_sector"}),
        ({**ACME, "telephone": "12"}, {"telephone"}),
    ],
)
def test_bad_values_are_400_naming_the_fields_and_write_nothing(clerk, body, fields):
    response = clerk.post(EMPLOYERS, body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == fields
    assert not Employer.objects.exists()


def test_patch_changes_only_the_given_fields(entity, clerk):
    employer = factories.make_employer(entity=entity, name="Acme")
    response = clerk.patch(detail(employer.pk), {"address": "1 Main Road"}, format="json")
    assert response.status_code == 200, response.json()
    employer.refresh_from_db()
    assert (employer.name, employer.classification, employer.address) == ("Acme", "government", "1 Main Road")
    entry = AuditEntry.objects.get(action=AuditAction.EMPLOYER_UPDATED)
    assert entry.after == {"address": "1 Main Road"}


def test_put_replaces_and_empties_fields_left_out(entity, clerk):
    employer = factories.make_employer(entity=entity, name="Acme")
    clerk.patch(detail(employer.pk), {"address": "1 Main Road"}, format="json")
    response = clerk.put(detail(employer.pk), {"name": "Acme Ltd", "classification": "private",
                                               "economic_sector": "trade"}, format="json")
    assert response.status_code == 200, response.json()
    employer.refresh_from_db()
    assert (employer.name, employer.classification, employer.address) == ("Acme Ltd", "private", "")


def test_renaming_onto_another_employer_is_refused(entity, clerk):
    factories.make_employer(entity=entity, name="Acme")
    beta = factories.make_employer(entity=entity, name="Beta")
    response = clerk.patch(detail(beta.pk), {"name": "acme"}, format="json")
    assert response.status_code == 400 and set(response.json()) == {"name"}


def test_add_paypoint(entity, clerk):
    employer = factories.make_employer(entity=entity)
    response = clerk.post(f"{detail(employer.pk)}paypoints/", {"number": " P7 ", "name": "Depot"}, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["number"], response.json()["employer"]) == ("P7", employer.pk)
    again = clerk.post(f"{detail(employer.pk)}paypoints/", {"number": "P7", "name": "Other"}, format="json")
    assert again.status_code == 400 and set(again.json()) == {"number"}
    assert Paypoint.objects.count() == 1
    assert AuditEntry.objects.filter(action=AuditAction.PAYPOINT_CREATED).count() == 1


def test_list_query_count_does_not_grow_with_rows(entity, clerk, django_assert_max_num_queries):
    for n in range(20):
        employer = factories.make_employer(entity=entity)
        paypoint_create(employer=employer, actor=None, number=f"P{n}", name="Depot")
    # session, user, entity, rights (2), count, page, paypoints.
    with django_assert_max_num_queries(8):
        body = clerk.get(EMPLOYERS).json()
    assert body["count"] == 20 and all(len(row["paypoints"]) == 1 for row in body["results"])
