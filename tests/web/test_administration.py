import datetime as dt

import pytest
from django.urls import reverse

from imali.core.audit import audit_record
from imali.core.models import AuditAction, AuditEntry
from imali.tenancy.models import Branch, Region, Role, User
from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(login_as, entity):
    return login_as(entity, [Right.MANAGE_USERS, Right.MANAGE_BRANCHES, Right.VIEW_AUDIT])


def _user_post(entity, **overrides):
    data = {"username": "nomsa", "first_name": "Nomsa", "last_name": "Zulu", "email": "nomsa@example.co.za",
            "cellphone": "083 555 1234", "home_branch": entity.branches.first().pk,
            "roles": [Role.objects.get(entity=entity, name="Loan officer").pk], "is_active": "on",
            "disbursement_limit": "5000.00", "password": "a-long-enough-secret", "password_confirm": "a-long-enough-secret"}
    data.update(overrides)
    return data


def test_create_a_user_who_can_then_sign_in(client, entity, admin):
    response = client.post(reverse("web:user_create"), _user_post(entity))
    assert response.status_code == 302
    user = User.objects.get(username="nomsa")
    assert (user.entity, user.cellphone, str(user.disbursement_limit)) == (entity, "+27835551234", "5000.00")
    assert user.has_right(Right.CAPTURE_LOANS) and not user.has_right(Right.MANAGE_USERS)
    assert AuditEntry.objects.filter(action=AuditAction.USER_CREATED, subject="nomsa").exists()
    client.logout()
    assert client.post(reverse("web:login"), {"username": "nomsa", "password": "a-long-enough-secret"}).status_code == 302


def test_bad_user_values_name_their_fields(client, entity, admin):
    response = client.post(reverse("web:user_create"), _user_post(
        entity, username=admin.username, cellphone="", password="short", password_confirm="short"))
    errors = response.context["form"].errors
    assert "cellphone" in errors
    taken = client.post(reverse("web:user_create"), _user_post(entity, username=admin.username))
    assert "taken" in " ".join(taken.context["form"].errors["username"])
    weak = client.post(reverse("web:user_create"), _user_post(entity, password="short", password_confirm="short"))
    assert "password" in weak.context["form"].errors
    mismatch = client.post(reverse("web:user_create"), _user_post(entity, password_confirm="different-secret"))
    assert "password_confirm" in mismatch.context["form"].errors
    assert not User.objects.filter(username="nomsa").exists()


def test_edit_a_user_roles_and_active_flag(client, entity, admin):
    user = factories.make_user(entity=entity, username="sipho")
    viewer = Role.objects.get(entity=entity, name="Viewer")
    url = reverse("web:user_edit", kwargs={"user_id": user.pk})
    form = client.get(url).context["form"]
    assert "password" not in form.fields and form["username"].value() == "sipho"
    response = client.post(url, _user_post(entity, username="sipho", roles=[viewer.pk], is_active="", cellphone="0821234567"))
    assert response.status_code == 302
    user.refresh_from_db()
    assert not user.is_active and list(user.roles.all()) == [viewer]
    assert AuditEntry.objects.filter(action=AuditAction.USER_ROLES_CHANGED, subject="sipho").exists()


def test_create_and_edit_a_role_with_rights(client, entity, admin):
    response = client.post(reverse("web:role_create"), {"name": "Cashier", "description": "Takes receipts",
                                                        "rights": [Right.VIEW_CLIENTS, Right.CAPTURE_RECEIPTS]})
    assert response.status_code == 302
    role = Role.objects.get(entity=entity, name="Cashier")
    assert sorted(role.rights.values_list("codename", flat=True)) == ["capture_receipts", "view_clients"]
    page = client.get(reverse("web:role_edit", kwargs={"role_id": role.pk})).content.decode()
    assert Right.REVERSE_RECEIPTS.label in page and "Loans and receipts" in page
    client.post(reverse("web:role_edit", kwargs={"role_id": role.pk}), {"name": "Teller", "rights": [Right.VIEW_CLIENTS]})
    role.refresh_from_db()
    assert role.name == "Teller" and list(role.rights.values_list("codename", flat=True)) == ["view_clients"]
    duplicate = client.post(reverse("web:role_create"), {"name": "teller", "rights": []})
    assert "name" in duplicate.context["form"].errors


def test_every_right_is_offered_on_the_role_screen():
    from imali.web.forms import right_choices

    offered = [value for _, options in right_choices() for value, _ in options]
    assert sorted(offered) == sorted(Right.values) and len(offered) == len(set(offered))


def test_delete_a_role(client, entity, admin):
    role = Role.objects.get(entity=entity, name="Viewer")
    url = reverse("web:role_delete", kwargs={"role_id": role.pk})
    assert "Delete role Viewer?" in client.get(url).content.decode()
    assert client.post(url).status_code == 302
    assert not Role.objects.filter(pk=role.pk).exists()
    assert AuditEntry.objects.filter(action=AuditAction.ROLE_DELETED, subject="Viewer").exists()


def test_branches_and_regions(client, entity, admin):
    assert client.post(reverse("web:region_list"), {"name": "Gauteng"}).status_code == 302
    region = Region.objects.get(entity=entity, name="Gauteng")
    assert "name" in client.post(reverse("web:region_list"), {"name": "gauteng"}).context["form"].errors
    response = client.post(reverse("web:branch_create"), {"code": "PTA", "name": "Pretoria", "region": region.pk,
                                                          "telephone": "012 345 6789", "is_active": "on"})
    assert response.status_code == 302
    branch = Branch.objects.get(entity=entity, code="PTA")
    assert (branch.region, branch.telephone) == (region, "+27123456789")
    bad = client.post(reverse("web:branch_edit", kwargs={"branch_id": branch.pk}), {"code": "HO", "name": "Pretoria"})
    assert "code" in bad.context["form"].errors
    client.post(reverse("web:branch_edit", kwargs={"branch_id": branch.pk}), {"code": "PTA", "name": "Pretoria Central"})
    branch.refresh_from_db()
    assert branch.name == "Pretoria Central" and not branch.is_active
    assert "Pretoria Central" in client.get(reverse("web:branch_list")).content.decode()


def test_audit_log_filters_by_action_and_date_and_pages(client, entity, admin, other_entity):
    for n in range(60):
        audit_record(action=AuditAction.CLIENT_NOTE_ADDED, entity=entity, subject=f"note{n}")
    audit_record(action=AuditAction.EMPLOYER_CREATED, entity=entity, subject="Only employer")
    audit_record(action=AuditAction.EMPLOYER_CREATED, entity=other_entity, subject="Their employer")
    url = reverse("web:audit_log")
    by_action = client.get(url, {"action": AuditAction.EMPLOYER_CREATED})
    assert [e.subject for e in by_action.context["page"].object_list] == ["Only employer"]
    first = client.get(url, {"action": AuditAction.CLIENT_NOTE_ADDED})
    assert first.context["page"].paginator.count == 60 and len(first.context["page"].object_list) == 50
    second = client.get(url, {"action": AuditAction.CLIENT_NOTE_ADDED, "page": 2})
    assert len(second.context["page"].object_list) == 10
    assert "action=client.note_added&amp;page=2" in first.content.decode()
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    assert client.get(url, {"date_from": tomorrow}).context["page"].paginator.count == 0
    today_local = dt.datetime.now(tz=__import__("zoneinfo").ZoneInfo(entity.time_zone)).date().isoformat()
    assert client.get(url, {"date_from": today_local, "date_to": today_local}).context["page"].paginator.count >= 61
    assert "Their employer" not in client.get(url).content.decode()
