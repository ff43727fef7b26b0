"""Who may do what: the named rights per action, and one entity never touching another's rows."""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from imali.api.permissions import HasRight
from imali.clients.models import Client, Employer
from imali.clients.services import paypoint_create
from imali.tenancy.models import Branch
from imali.tenancy.rights import Right
from tests import factories
from tests.api.conftest import client_payload

pytestmark = pytest.mark.django_db

ALL_RIGHTS = list(Right)


def _calls(entity):
    """Every API call on clients and employers, with the right it needs."""
    client = factories.make_client(entity=entity)
    employer = factories.make_employer(entity=entity)
    c, e = f"/api/clients/{client.pk}/", f"/api/employers/{employer.pk}/"
    employer_body = {"name": "New employer", "classification": "private", "economic_sector": "trade"}
    return [
        (Right.VIEW_CLIENTS, "get", "/api/clients/", None),
        (Right.VIEW_CLIENTS, "get", c, None),
        (Right.MANAGE_CLIENTS, "post", "/api/clients/", client_payload(entity, id_type="passport", id_number="P1")),
        (Right.MANAGE_CLIENTS, "put", c, client_payload(entity, surname="Khumalo")),
        (Right.MANAGE_CLIENTS, "patch", c, {"surname": "Khumalo"}),
        (Right.VIEW_CLIENTS, "get", "/api/employers/", None),
        (Right.VIEW_CLIENTS, "get", e, None),
        (Right.MANAGE_EMPLOYERS, "post", "/api/employers/", employer_body),
        (Right.MANAGE_EMPLOYERS, "put", e, {**employer_body, "name": "Renamed"}),
        (Right.MANAGE_EMPLOYERS, "patch", e, {"address": "1 Main Road"}),
        (Right.MANAGE_EMPLOYERS, "post", f"{e}paypoints/", {"number": "P1", "name": "Depot"}),
    ]


def test_each_call_needs_its_right_and_only_that_one(entity, signed_in):
    calls = _calls(entity)
    for right, method, url, body in calls:
        without = signed_in(entity, [r for r in ALL_RIGHTS if r != right])
        response = getattr(without, method)(url, body, format="json")
        assert response.status_code == 403, (right, method, url, response.status_code)
        assert str(right.label) in response.json()["detail"]
    for right, method, url, body in calls:
        only = signed_in(entity, [right])
        response = getattr(only, method)(url, body, format="json")
        assert response.status_code in (200, 201), (right, method, url, response.json())


def test_nothing_is_written_without_the_right(entity, signed_in):
    viewer = signed_in(entity, [Right.VIEW_CLIENTS])
    assert viewer.post("/api/clients/", client_payload(entity), format="json").status_code == 403
    assert viewer.post("/api/employers/", {"name": "X", "classification": "private", "economic_sector": "trade"},
                       format="json").status_code == 403
    assert not Client.objects.exists() and not Employer.objects.exists()


def test_a_user_without_rights_gets_403_even_for_another_entitys_ids(entity, other_entity, signed_in):
    theirs = factories.make_client(entity=other_entity)
    nobody = signed_in(entity, [])
    assert nobody.get(f"/api/clients/{theirs.pk}/").status_code == 403


def test_anonymous_callers_are_refused(entity):
    client = factories.make_client(entity=entity)
    anonymous = APIClient()
    for url in ("/api/clients/", f"/api/clients/{client.pk}/", "/api/employers/"):
        assert anonymous.get(url).status_code == 403


@pytest.fixture
def theirs(other_entity):
    """Rows of another entity (NA), with a marker surname to look for in responses."""
    employer = factories.make_employer(entity=other_entity, name="Their Employer")
    paypoint = paypoint_create(employer=employer, actor=None, number="T1", name="Their paypoint")
    user = factories.make_user(entity=other_entity)
    client = factories.make_client(entity=other_entity, surname="Theirclient", employer=employer, paypoint=paypoint)
    return {"client": client, "employer": employer, "paypoint": paypoint, "salesperson": user,
            "branch": other_entity.branches.get()}


@pytest.fixture
def admin_api(entity):
    api = APIClient()
    api.force_login(factories.make_admin(entity=entity))
    return api


def test_another_entitys_client_and_employer_are_404_for_every_method(admin_api, theirs, entity):
    client, employer = theirs["client"], theirs["employer"]
    for url, bodies in (
        (f"/api/clients/{client.pk}/", {"put": client_payload(entity), "patch": {"surname": "Mine"}}),
        (f"/api/employers/{employer.pk}/", {"put": {"name": "Mine", "classification": "private",
                                                    "economic_sector": "trade"}, "patch": {"name": "Mine"}}),
    ):
        assert admin_api.get(url).status_code == 404
        for method, body in bodies.items():
            assert getattr(admin_api, method)(url, body, format="json").status_code == 404
    assert admin_api.post(f"/api/employers/{employer.pk}/paypoints/", {"number": "X", "name": "Y"},
                          format="json").status_code == 404
    client.refresh_from_db()
    employer.refresh_from_db()
    assert (client.surname, employer.name) == ("Theirclient", "Their Employer")
    assert employer.paypoints.count() == 1


def test_lists_and_searches_never_show_another_entitys_rows(admin_api, theirs, entity):
    factories.make_client(entity=entity)
    factories.make_employer(entity=entity, name="Our Employer")
    for url in ("/api/clients/", "/api/clients/?search=Theirclient", f"/api/clients/?search={theirs['client'].number}",
                f"/api/clients/?search={theirs['client'].id_number}", "/api/employers/"):
        body = admin_api.get(url).content.decode()
        assert "Theirclient" not in body and "Their Employer" not in body and "Their paypoint" not in body, url
    assert admin_api.get("/api/clients/").json()["count"] == 1
    assert admin_api.get("/api/employers/").json()["count"] == 1


@pytest.mark.parametrize("field", ["branch", "employer", "paypoint", "salesperson"])
def test_a_client_cannot_point_at_another_entitys_rows(admin_api, theirs, entity, field):
    own_employer = factories.make_employer(entity=entity)
    body = client_payload(entity, employer=own_employer.pk)
    body[field] = theirs[field].pk
    response = admin_api.post("/api/clients/", body, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {field}
    # The message is the one for an id that does not exist at all: nothing about the other row.
    assert response.json()[field] == [f"No such record in your entity (id {theirs[field].pk})."]
    assert not Client.objects.filter(entity=entity).exists()


def test_a_client_cannot_be_moved_to_another_entitys_branch(admin_api, theirs, entity):
    mine = factories.make_client(entity=entity)
    response = admin_api.patch(f"/api/clients/{mine.pk}/", {"branch": theirs["branch"].pk}, format="json")
    assert response.status_code == 400 and set(response.json()) == {"branch"}
    mine.refresh_from_db()
    assert mine.branch == Branch.objects.get(entity=entity)


def _api_views():
    def walk(resolver):
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                yield from walk(entry)
            elif isinstance(entry, URLPattern):
                yield entry

    for pattern in walk(get_resolver()):
        view_class = getattr(pattern.callback, "cls", None)
        if view_class is not None and str(pattern.pattern) and pattern.callback.__module__.startswith("imali.api"):
            yield pattern, view_class


def test_every_action_of_a_right_guarded_view_names_its_rights():
    """A new action left out of `required_rights` is refused at run time; catch it here first."""
    checked = 0
    for pattern, view_class in _api_views():
        if HasRight not in getattr(view_class, "permission_classes", []):
            continue
        actions = getattr(pattern.callback, "actions", None) or {
            m: m for m in view_class.http_method_names if hasattr(view_class, m) and m not in ("options", "head")
        }
        missing = sorted(set(actions.values()) - set(view_class.required_rights))
        assert not missing, f"{view_class.__name__} ({pattern.pattern}) has no rights for {missing}"
        checked += 1
    assert checked >= 4


def test_options_lists_only_the_writes_the_caller_may_make(entity, signed_in):
    viewer = signed_in(entity, [Right.VIEW_CLIENTS])
    clerk = signed_in(entity, [Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS])
    assert "actions" not in viewer.options("/api/clients/").json()
    described = clerk.options("/api/clients/").json()
    assert "cellphone" in described["actions"]["POST"]
    assert signed_in(entity, []).options("/api/clients/").status_code == 200
    assert APIClient().options("/api/clients/").status_code == 403
