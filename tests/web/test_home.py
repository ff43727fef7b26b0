import pytest
from django.urls import reverse

from imali.tenancy.rights import Right
from imali.web.templatetags.imali_web import audit_changes
from tests import factories

pytestmark = pytest.mark.django_db


def test_dashboard_counts_only_the_own_entity(client, login_as, entity, other_entity):
    factories.make_client(entity=entity)
    factories.make_employer(entity=entity)
    factories.make_employer(entity=entity)
    factories.make_client(entity=other_entity)
    factories.make_user(entity=other_entity)
    login_as(entity, [Right.VIEW_CLIENTS])
    response = client.get(reverse("web:home"))
    assert response.context["counts"] == {"clients": 1, "employers": 2, "users": 1}
    page = response.content.decode()
    assert entity.name in page and 'action="/clients/"' in page


def test_dashboard_without_search_right_has_no_search_box(client, login_as, entity):
    login_as(entity, [Right.MANAGE_BRANCHES])
    page = client.get(reverse("web:home")).content.decode()
    assert 'action="/clients/"' not in page


def test_operator_dashboard_links_the_entity_list(client, operator, entity):
    client.force_login(operator)
    response = client.get(reverse("web:home"))
    assert response.context["entity_counts"]["total"] == 1
    assert f'href="{reverse("web:entity_list")}"' in response.content.decode()


def test_history_rows_drop_empty_values_and_book_keeping():
    rows = audit_changes({"id": 4, "entity_id": 1, "surname": "Mokoena", "email": "", "salary": None,
                          "employer_id": 7, "marketing_consent": False, "created_at": "2026-01-01"})
    assert rows == [("surname", "Mokoena"), ("employer", 7), ("marketing consent", False)]
    assert audit_changes(None) == []


def test_navigation_is_grouped_by_task(rf, entity):
    from imali.web.context_processors import navigation

    admin = factories.make_admin(entity=entity)
    request = rf.get(reverse("web:messaging_outbox"))
    request.user, request.entity = admin, entity
    sections = navigation(request)["nav_sections"]
    assert [s["name"] for s in sections] == ["", "Clients", "Loans", "Messaging", "Reports", "Setup"]
    by_name = {s["name"]: s for s in sections}
    assert [i["label"] for i in by_name["Reports"]["items"] if i["active"]] == ["SMS detail"]
    assert by_name["Reports"]["active"] and not by_name["Loans"]["active"]
    assert {"Users", "Roles", "Loan products", "Message templates", "OTP setup"} <= {i["label"] for i in by_name["Setup"]["items"]}


def test_menus_are_details_elements_with_the_active_one_marked(client, login_as, entity):
    login_as(entity, [Right.VIEW_CLIENTS, Right.MANAGE_USERS])
    page = client.get(reverse("web:client_search")).content.decode()
    assert '<details class="navmenu active" data-menu="clients">' in page
    assert '<details class="navmenu" data-menu="setup">' in page
    assert 'data-menu="messaging"' not in page  # no item the user may use, no menu


def test_every_data_table_scrolls_inside_its_frame():
    from pathlib import Path

    import imali.web

    root = Path(imali.web.__file__).parent / "templates"
    unframed = []
    for template in root.rglob("*.html"):
        text = template.read_text()
        for at in (i for i in range(len(text)) if text.startswith("<table", i)):
            before = text[max(0, at - 300):at]
            framed = max(before.rfind('class="tablewrap"'), before.rfind('class="card chart"'))
            if framed < 0 or "</div>" in before[framed:] or "</figure>" in before[framed:]:
                unframed.append(f"{template.relative_to(root)}:{text.count(chr(10), 0, at) + 1}")
    assert unframed == []
