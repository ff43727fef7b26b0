"""A user of entity A never reaches an object of entity B: every object screen answers 404."""

import pytest
from django.urls import reverse

from imali.clients.models import Client, Employer
from imali.core.models import AuditEntry
from imali.tenancy.models import Branch, Role, User
from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db

OBJECT_SCREENS = [
    ("web:client_detail", "client"), ("web:client_edit", "client"), ("web:client_account_create", "client"),
    ("web:client_note_create", "client"), ("web:employer_detail", "employer"), ("web:employer_edit", "employer"),
    ("web:paypoint_create", "employer"), ("web:user_edit", "user"), ("web:role_edit", "role"),
    ("web:role_delete", "role"), ("web:branch_edit", "branch"),
]


@pytest.fixture
def theirs(other_entity):
    admin = factories.make_admin(entity=other_entity)
    return {
        "client": factories.make_client(entity=other_entity, actor=admin, surname="Shikongo"),
        "employer": factories.make_employer(entity=other_entity, actor=admin, name="Namibia Ports"),
        "user": admin, "role": Role.objects.filter(entity=other_entity).first(),
        "branch": other_entity.branches.first(),
    }


@pytest.mark.parametrize(("name", "key"), OBJECT_SCREENS, ids=[s[0] for s in OBJECT_SCREENS])
def test_another_entitys_object_is_not_found(client, login_as, entity, theirs, name, key):
    login_as(entity, list(Right))
    url = reverse(name, kwargs={f"{key}_id": theirs[key].pk})
    audit_before = AuditEntry.objects.count()
    assert client.get(url).status_code == 404
    assert client.post(url, {"name": "Hijacked", "text": "x", "surname": "Hijacked", "username": "hijack",
                             "code": "X1", "number": "9", "kind": "bank"}).status_code in (404, 405)
    assert AuditEntry.objects.count() == audit_before
    assert not Client.objects.filter(surname="Hijacked").exists()
    assert not Employer.objects.filter(name="Hijacked").exists()
    assert not User.objects.filter(username="hijack").exists()
    assert not Branch.objects.filter(code="X1").exists()


def test_lists_and_search_show_only_the_own_entity(client, login_as, entity, theirs):
    login_as(entity, list(Right))
    factories.make_client(entity=entity, surname="Mokoena")
    for url in (reverse("web:client_search"), reverse("web:client_search") + "?q=Shikongo",
                reverse("web:employer_list"), reverse("web:user_list"), reverse("web:role_list"),
                reverse("web:branch_list"), reverse("web:audit_log")):
        body = client.get(url).content.decode()
        assert "Namibia Ports" not in body and theirs["user"].username not in body, url
    results = client.get(reverse("web:client_search") + "?q=Shikongo").context["results"]
    assert results == []


def test_form_choices_offer_only_the_own_entitys_records(client, login_as, entity, theirs):
    login_as(entity, list(Right))
    form = client.get(reverse("web:client_create")).context["form"]
    assert theirs["employer"] not in form.fields["employer"].queryset
    assert theirs["branch"] not in form.fields["branch"].queryset
    assert theirs["user"] not in form.fields["salesperson"].queryset
    user_form = client.get(reverse("web:user_create")).context["form"]
    assert theirs["role"] not in user_form.fields["roles"].queryset


def test_posting_another_entitys_employer_is_refused_by_the_form(client, login_as, entity, theirs):
    login_as(entity, list(Right))
    data = {**_client_post(entity), "employer": theirs["employer"].pk}
    response = client.post(reverse("web:client_create"), data)
    assert response.status_code == 400
    assert "employer" in response.context["form"].errors
    assert not Client.objects.filter(entity=entity).exists()


def _client_post(entity):
    return {"branch": entity.branches.first().pk, "title": "Mr", "full_names": "Thabo Johannes", "surname": "Mokoena",
            "id_type": "sa_id", "id_number": "7503305044089", "date_of_birth": "1975-03-30", "gender": "M",
            "cellphone": "082 123 4567", "status": "good", "payment_frequency": "monthly",
            "payment_move_direction": "before", "new_loans_allowed": "on"}
