"""Each screen needs its named right: without it 403, with it (and nothing else) 200."""

import pytest
from django.urls import reverse

from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db

# (url name, object kwarg or None, the right the screen needs)
SCREENS = [
    ("web:client_search", None, Right.VIEW_CLIENTS),
    ("web:client_detail", "client", Right.VIEW_CLIENTS),
    ("web:client_create", None, Right.MANAGE_CLIENTS),
    ("web:client_edit", "client", Right.MANAGE_CLIENTS),
    ("web:client_account_create", "client", Right.MANAGE_CLIENTS),
    ("web:client_note_create", "client", Right.MANAGE_CLIENTS),
    ("web:employer_list", None, Right.VIEW_CLIENTS),
    ("web:employer_detail", "employer", Right.VIEW_CLIENTS),
    ("web:employer_create", None, Right.MANAGE_EMPLOYERS),
    ("web:employer_edit", "employer", Right.MANAGE_EMPLOYERS),
    ("web:paypoint_create", "employer", Right.MANAGE_EMPLOYERS),
    ("web:paypoint_edit", "paypoint", Right.MANAGE_EMPLOYERS),
    ("web:user_list", None, Right.MANAGE_USERS),
    ("web:user_create", None, Right.MANAGE_USERS),
    ("web:user_edit", "user", Right.MANAGE_USERS),
    ("web:user_password", "user", Right.MANAGE_USERS),
    ("web:role_list", None, Right.MANAGE_USERS),
    ("web:role_create", None, Right.MANAGE_USERS),
    ("web:role_edit", "role", Right.MANAGE_USERS),
    ("web:role_delete", "role", Right.MANAGE_USERS),
    ("web:branch_list", None, Right.MANAGE_BRANCHES),
    ("web:branch_create", None, Right.MANAGE_BRANCHES),
    ("web:branch_edit", "branch", Right.MANAGE_BRANCHES),
    ("web:region_list", None, Right.MANAGE_BRANCHES),
    ("web:region_edit", "region", Right.MANAGE_BRANCHES),
    ("web:audit_log", None, Right.VIEW_AUDIT),
]
OPERATOR_SCREENS = [("web:entity_list", None), ("web:entity_create", None), ("web:entity_edit", "entity")]


def _url(name, obj_key, book):
    if obj_key is None:
        return reverse(name)
    return reverse(name, kwargs={f"{obj_key}_id": book[obj_key].pk})


@pytest.mark.parametrize(("name", "obj_key", "right"), SCREENS, ids=[s[0] for s in SCREENS])
def test_screen_needs_its_right(client, login_as, entity, book, name, obj_key, right):
    url = _url(name, obj_key, book)
    login_as(entity, [r for r in Right if r != right])
    assert client.get(url).status_code == 403
    assert client.post(url, {}).status_code in (403, 405)  # 405: a read-only screen takes no POST at all
    login_as(entity, [right])
    assert client.get(url).status_code == 200


def test_screens_refuse_methods_other_than_get_and_post(client, login_as, entity, book):
    login_as(entity, list(Right))
    url = reverse("web:client_edit", kwargs={"client_id": book["client"].pk})
    for method in ("put", "patch", "delete"):
        assert getattr(client, method)(url).status_code == 405
    assert client.post(reverse("web:client_detail", kwargs={"client_id": book["client"].pk})).status_code == 405


def test_forbidden_page_is_the_imali_403_page(client, login_as, entity):
    login_as(entity, [Right.VIEW_CLIENTS])
    response = client.get(reverse("web:user_list"))
    assert response.status_code == 403
    assert "Not allowed" in response.content.decode() and "ask your administrator" in response.content.decode()


def test_not_found_is_the_imali_404_page(client, login_as, entity):
    login_as(entity, [Right.VIEW_CLIENTS])
    response = client.get(reverse("web:client_detail", kwargs={"client_id": 999999}))
    assert response.status_code == 404 and "Not found" in response.content.decode()


@pytest.mark.parametrize(("name", "obj_key"), OPERATOR_SCREENS, ids=[s[0] for s in OPERATOR_SCREENS])
def test_operator_screens_are_for_operators_only(client, login_as, operator, entity, book, name, obj_key):
    url = _url(name, obj_key, book)
    login_as(entity, list(Right))  # an entity administrator with every right is still no operator
    assert client.get(url).status_code == 403
    assert client.post(url, {}).status_code in (403, 405)
    client.force_login(operator)
    assert client.get(url).status_code == 200


def test_operator_without_entity_gets_no_lender_screens(client, operator, entity, book):
    client.force_login(operator)
    assert client.get(reverse("web:client_search")).status_code == 403
    assert client.get(reverse("web:client_detail", kwargs={"client_id": book["client"].pk})).status_code == 403


def test_navigation_lists_only_the_screens_the_user_may_use(client, login_as, entity, operator):
    login_as(entity, [Right.VIEW_CLIENTS])
    page = client.get(reverse("web:home")).content.decode()
    assert reverse("web:client_search") in page and reverse("web:employer_list") in page
    for hidden in ("web:client_create", "web:user_list", "web:branch_list", "web:audit_log", "web:entity_list"):
        assert f'href="{reverse(hidden)}"' not in page, hidden
    client.force_login(operator)
    page = client.get(reverse("web:home")).content.decode()
    assert f'href="{reverse("web:entity_list")}"' in page
    assert f'href="{reverse("web:client_search")}"' not in page


def test_navigation_collects_every_view_modules_items(rf, entity):
    from imali.web.context_processors import navigation
    from imali.web.views import view_modules

    admin = factories.make_admin(entity=entity)
    request = rf.get("/")
    request.user, request.entity = admin, entity
    shown = {item["url"] for section in navigation(request)["nav_sections"] for item in section["items"]}
    declared = {reverse(url_name) for module in view_modules() for (_, url_name, right, _) in getattr(module, "NAV_ITEMS", [])
                if right != "operator"}
    assert declared <= shown


def test_a_switched_off_entity_loses_its_screens_mid_session(client, login_as, entity, operator):
    from imali.tenancy.services import entity_update

    login_as(entity, [Right.VIEW_CLIENTS])
    assert client.get(reverse("web:client_search")).status_code == 200
    entity_update(actor=operator, entity=entity, data={"is_active": False})
    response = client.get(reverse("web:client_search"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("web:login"))
