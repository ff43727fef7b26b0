import datetime as dt

import pytest

from imali.clients.models import Client
from imali.core.models import AuditAction, AuditEntry
from imali.tenancy.models import Branch
from tests import factories
from tests.api.conftest import SA_IDS, client_payload

pytestmark = pytest.mark.django_db

CLIENTS = "/api/clients/"


def detail(client_id) -> str:
    return f"{CLIENTS}{client_id}/"


def test_create_assigns_the_number_normalises_and_audits(entity, clerk):
    response = clerk.post(CLIENTS, client_payload(entity, cellphone="082 123 4567", salary="12500.50"), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["number"] == 1
    assert body["cellphone"] == "+27821234567"
    assert body["name"] == "Thabo" and body["initials"] == "TJ"
    assert body["salary"] == "12500.50"
    assert body["branch"] == entity.branches.get().pk
    client = Client.objects.get(pk=body["id"])
    assert client.entity == entity and client.created_by == clerk.user
    entry = AuditEntry.objects.get(action=AuditAction.CLIENT_CREATED, object_id=str(client.pk))
    assert entry.actor == clerk.user and entry.ip_address == "127.0.0.1"


def test_read_exposes_every_client_field(entity, clerk):
    client = factories.make_client(entity=entity)
    body = clerk.get(detail(client.pk)).json()
    stored = {f.name for f in Client._meta.concrete_fields} - {"entity"}
    assert stored <= set(body)
    assert body["number"] == client.number and body["id_number"] == "7503305044089"
    assert body["display_name"] == "Mr Thabo Mokoena"


def test_list_is_paginated_by_number(entity, clerk):
    for id_number, dob, gender in SA_IDS:
        factories.make_client(entity=entity, id_number=id_number, date_of_birth=dob, gender=gender)
    body = clerk.get(CLIENTS, {"limit": 2}).json()
    assert body["count"] == 3
    assert [row["number"] for row in body["results"]] == [1, 2]
    assert clerk.get(CLIENTS, {"limit": 2, "offset": 2}).json()["results"][0]["number"] == 3


@pytest.mark.parametrize(
    "query, expected",
    [("Dlamini", ["Dlamini"]), ("sipho dlam", ["Dlamini"]), ("2", ["Dlamini"]),
     ("9202204720083", ["Nkosi"]), ("071 555 0000", ["Nkosi"]), ("nobody", [])],
)
def test_search_finds_by_name_number_id_and_cellphone(entity, clerk, query, expected):
    factories.make_client(entity=entity)
    factories.make_client(entity=entity, full_names="Sipho", surname="Dlamini", id_number="8001015009087",
                          date_of_birth=dt.date(1980, 1, 1), cellphone="0720000000")
    factories.make_client(entity=entity, full_names="Lindiwe", surname="Nkosi", id_number="9202204720083",
                          date_of_birth=dt.date(1992, 2, 20), gender="F", cellphone="0715550000")
    body = clerk.get(CLIENTS, {"search": query}).json()
    assert [row["surname"] for row in body["results"]] == expected


def test_patch_changes_only_given_fields_and_audits_before_and_after(entity, clerk):
    client = factories.make_client(entity=entity, email="thabo@example.org")
    response = clerk.patch(detail(client.pk), {"surname": "Dlamini", "cellphone": "0831112222"}, format="json")
    assert response.status_code == 200, response.json()
    client.refresh_from_db()
    assert (client.surname, client.cellphone, client.email) == ("Dlamini", "+27831112222", "thabo@example.org")
    entry = AuditEntry.objects.get(action=AuditAction.CLIENT_UPDATED)
    assert entry.before == {"surname": "Mokoena", "cellphone": "+27821234567"}
    assert entry.after == {"surname": "Dlamini", "cellphone": "+27831112222"}


def test_put_replaces_the_client_and_resets_fields_left_out(entity, clerk):
    employer = factories.make_employer(entity=entity)
    client = factories.make_client(entity=entity, email="thabo@example.org", employer=employer, status="bad")
    response = clerk.put(detail(client.pk), client_payload(entity, surname="Khumalo"), format="json")
    assert response.status_code == 200, response.json()
    client.refresh_from_db()
    assert client.surname == "Khumalo"
    assert (client.email, client.employer, client.status) == ("", None, "good")


def test_put_needs_the_required_fields(entity, clerk):
    client = factories.make_client(entity=entity)
    response = clerk.put(detail(client.pk), {"surname": "Khumalo"}, format="json")
    assert response.status_code == 400
    assert {"branch", "full_names", "id_number", "id_type", "gender", "date_of_birth"} <= set(response.json())
    client.refresh_from_db()
    assert client.surname == "Mokoena"


def test_employer_paypoint_and_salesperson_are_set_by_id(entity, clerk, admin_user):
    employer = factories.make_employer(entity=entity)
    from imali.clients.services import paypoint_create

    paypoint = paypoint_create(employer=employer, actor=None, number="P1", name="Head office")
    body = client_payload(entity, employer=employer.pk, paypoint=paypoint.pk, salesperson=admin_user.pk)
    response = clerk.post(CLIENTS, body, format="json")
    assert response.status_code == 201, response.json()
    assert (response.json()["employer"], response.json()["paypoint"], response.json()["salesperson"]) == (
        employer.pk, paypoint.pk, admin_user.pk)


@pytest.mark.parametrize(
    "overrides, fields",
    [
        # Found by the service: business rules.
        ({"id_number": "8503305044089", "cellphone": "12345", "bonus_month": 13}, {"id_number", "cellphone", "bonus_month"}),
        ({"date_of_birth": "1976-03-30", "gender": "F"}, {"date_of_birth", "gender"}),
        ({"date_of_birth": (dt.date.today() - dt.timedelta(days=365 * 10)).isoformat(), "id_type": "passport",
          "id_number": "A123"}, {"date_of_birth"}),
        ({"payment_frequency": "weekly", "payment_day": 9, "salary": "-1.00"}, {"payment_day", "salary"}),
        # Found by the serializer: the shape of the data.
        ({"gender": "X", "salary": "abc", "date_of_birth": "30/03/1975"}, {"gender", "salary", "date_of_birth"}),
        ({"email": "not-an-email", "salary": "1.234"}, {"email", "salary"}),
        ({"id_type": "drivers_licence", "status": "vip"}, {"id_type", "status"}),
        ({"branch": None, "surname": ""}, {"branch", "surname"}),
        ({"branch": 999999}, {"branch"}),
        ({"entity": 1, "number": 5}, set()),
    ],
)
def test_bad_values_are_400_naming_the_fields_and_write_nothing(entity, clerk, overrides, fields):
    audit_before = AuditEntry.objects.count()
    response = clerk.post(CLIENTS, client_payload(entity, **overrides), format="json")
    if not fields:
        # Read-only fields in a body are ignored, never obeyed.
        assert response.status_code == 201
        assert response.json()["number"] == 1
        return
    assert response.status_code == 400, response.json()
    assert set(response.json()) == fields
    assert all(isinstance(m, str) and m for messages in response.json().values() for m in messages)
    assert Client.objects.count() == 0
    assert AuditEntry.objects.count() == audit_before


def test_bad_patch_names_the_field_and_changes_nothing(entity, clerk):
    client = factories.make_client(entity=entity)
    response = clerk.patch(detail(client.pk), {"cellphone": "0123", "surname": "Dlamini"}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"cellphone"}
    client.refresh_from_db()
    assert client.surname == "Mokoena"
    assert not AuditEntry.objects.filter(action=AuditAction.CLIENT_UPDATED).exists()


def test_paypoint_of_another_employer_is_refused(entity, clerk):
    from imali.clients.services import paypoint_create

    first, second = factories.make_employer(entity=entity), factories.make_employer(entity=entity)
    paypoint = paypoint_create(employer=second, actor=None, number="P1", name="Depot")
    response = clerk.post(CLIENTS, client_payload(entity, employer=first.pk, paypoint=paypoint.pk), format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"paypoint"}


def test_any_branch_of_the_entity_can_be_chosen(entity, clerk):
    second = Branch.objects.create(entity=entity, code="B2", name="Second")
    response = clerk.post(CLIENTS, client_payload(entity, branch=second.pk), format="json")
    assert response.status_code == 201
    assert response.json()["branch"] == second.pk


def test_unknown_client_is_404(clerk):
    assert clerk.get(detail(987654)).status_code == 404
    assert clerk.patch(detail(987654), {"surname": "X"}, format="json").status_code == 404


def test_list_query_count_does_not_grow_with_rows(entity, clerk, django_assert_max_num_queries):
    employer = factories.make_employer(entity=entity)
    user = factories.make_user(entity=entity)
    for n in range(30):
        factories.make_client(entity=entity, id_type="passport", id_number=f"P{n:06d}", employer=employer,
                              salesperson=user)
    # session, user, entity, the user's rights (2), count, page.
    with django_assert_max_num_queries(7):
        body = clerk.get(CLIENTS).json()
    assert body["count"] == 30 and len(body["results"]) == 30
    with django_assert_max_num_queries(7):
        body = clerk.get(CLIENTS, {"search": "Mokoena"}).json()
    assert body["count"] == 30



def test_a_page_holds_at_most_500_rows():
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from imali.api.base import EntityPagination

    def limit(query):
        return EntityPagination().get_limit(Request(APIRequestFactory().get(CLIENTS, query)))

    assert (limit({}), limit({"limit": 20}), limit({"limit": 100000})) == (50, 20, 500)
