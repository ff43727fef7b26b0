"""Region and paypoint edit screens, setting a user's password, and changing one's own."""

import pytest
from django.urls import reverse

from imali.clients.models import Paypoint
from imali.clients.services import paypoint_create
from imali.core.models import AuditAction, AuditEntry
from imali.tenancy.models import Region, User
from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Kalahari-sunrise-2026"


def _signs_in(username: str, password: str) -> bool:
    from django.test import Client

    response = Client().post(reverse("web:login"), {"username": username, "password": password})
    return response.status_code == 302


def test_rename_a_region_from_the_list(client, login_as, entity):
    login_as(entity, [Right.MANAGE_BRANCHES])
    gauteng = Region.objects.create(entity=entity, name="Gauteng")
    Region.objects.create(entity=entity, name="Limpopo")
    url = reverse("web:region_edit", kwargs={"region_id": gauteng.pk})
    assert url in client.get(reverse("web:region_list")).content.decode()
    assert client.get(url).context["form"]["name"].value() == "Gauteng"
    taken = client.post(url, {"name": "limpopo"})
    assert taken.status_code == 400 and "exists already" in taken.context["form"].errors["name"][0]
    assert client.post(url, {"name": "Gauteng North"})["Location"] == reverse("web:region_list")
    assert Region.objects.get(pk=gauteng.pk).name == "Gauteng North"
    assert AuditEntry.objects.filter(action=AuditAction.REGION_UPDATED, object_id=str(gauteng.pk)).exists()


def test_edit_a_paypoint_from_the_employer_page(client, login_as, entity, admin_user):
    login_as(entity, [Right.VIEW_CLIENTS, Right.MANAGE_EMPLOYERS])
    employer = factories.make_employer(entity=entity, actor=admin_user, name="Mine Co")
    paypoint = paypoint_create(employer=employer, actor=admin_user, number="7", name="Shaft")
    paypoint_create(employer=employer, actor=admin_user, number="8", name="Smelter")
    url = reverse("web:paypoint_edit", kwargs={"paypoint_id": paypoint.pk})
    assert url in client.get(reverse("web:employer_detail", kwargs={"employer_id": employer.pk})).content.decode()
    taken = client.post(url, {"number": "8", "name": "Shaft"})
    assert "number" in taken.context["form"].errors
    response = client.post(url, {"number": "7A", "name": "Shaft 2", "address": "Main reef road"})
    assert response["Location"] == reverse("web:employer_detail", kwargs={"employer_id": employer.pk})
    paypoint.refresh_from_db()
    assert (paypoint.number, paypoint.name, paypoint.address) == ("7A", "Shaft 2", "Main reef road")


def test_a_reader_sees_no_paypoint_edit_links(client, login_as, entity, admin_user):
    login_as(entity, [Right.VIEW_CLIENTS])
    employer = factories.make_employer(entity=entity, actor=admin_user)
    paypoint = paypoint_create(employer=employer, actor=admin_user, number="7", name="Shaft")
    page = client.get(reverse("web:employer_detail", kwargs={"employer_id": employer.pk})).content.decode()
    assert reverse("web:paypoint_edit", kwargs={"paypoint_id": paypoint.pk}) not in page
    assert Paypoint.objects.count() == 1


def test_an_admin_sets_a_users_password_and_the_user_signs_in_with_it(client, login_as, entity):
    admin = login_as(entity, [Right.MANAGE_USERS])
    user = factories.make_user(entity=entity, username="lindiwe")
    url = reverse("web:user_password", kwargs={"user_id": user.pk})
    assert url in client.get(reverse("web:user_list")).content.decode()
    differ = client.post(url, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD + "x"})
    assert "password_confirm" in differ.context["form"].errors
    weak = client.post(url, {"password": "lindiwe123", "password_confirm": "lindiwe123"})
    assert "password" in weak.context["form"].errors
    assert client.post(url, {"password": NEW_PASSWORD, "password_confirm": NEW_PASSWORD})["Location"] == reverse("web:user_list")
    assert _signs_in("lindiwe", NEW_PASSWORD)
    entry = AuditEntry.objects.get(action=AuditAction.USER_PASSWORD_SET)
    assert (entry.actor_id, entry.object_id) == (admin.pk, str(user.pk))


def test_an_admin_is_sent_to_change_my_password_for_their_own(client, login_as, entity):
    admin = login_as(entity, [Right.MANAGE_USERS])
    response = client.get(reverse("web:user_password", kwargs={"user_id": admin.pk}))
    assert response["Location"] == reverse("web:password_change")


def test_change_my_password_from_the_header(client, login_as, entity):
    user = login_as(entity, [Right.VIEW_CLIENTS])
    url = reverse("web:password_change")
    assert f'href="{url}"' in client.get(reverse("web:home")).content.decode()
    wrong = client.post(url, {"current_password": "guess", "password": "123", "password_confirm": "123"})
    errors = wrong.context["form"].errors
    assert "current_password" in errors and "password" in errors
    response = client.post(url, {"current_password": "correct-horse-battery", "password": NEW_PASSWORD,
                                 "password_confirm": NEW_PASSWORD})
    assert response["Location"] == reverse("web:home")
    # Still signed in on this session, and the new password is the one that works.
    assert client.get(reverse("web:home")).status_code == 200
    assert _signs_in(user.username, NEW_PASSWORD) and not _signs_in(user.username, "correct-horse-battery")
    assert AuditEntry.objects.get(action=AuditAction.USER_PASSWORD_SET).after == {"set_by": "self"}


def test_an_operator_changes_their_own_password(client, operator):
    client.force_login(operator)
    url = reverse("web:password_change")
    response = client.post(url, {"current_password": "operator-pass-123", "password": NEW_PASSWORD,
                                 "password_confirm": NEW_PASSWORD})
    assert response.status_code == 302
    assert User.objects.get(pk=operator.pk).check_password(NEW_PASSWORD)


def test_change_my_password_needs_a_signed_in_user(client):
    response = client.get(reverse("web:password_change"))
    assert response.status_code == 302 and reverse("web:login") in response["Location"]
