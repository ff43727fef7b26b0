import pytest
from django.urls import reverse

from imali.clients.models import Employer, Paypoint
from imali.core.models import AuditAction, AuditEntry
from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def manager(login_as, entity):
    return login_as(entity, [Right.VIEW_CLIENTS, Right.MANAGE_EMPLOYERS])


def test_create_view_and_edit_an_employer(client, entity, manager):
    response = client.post(reverse("web:employer_create"), {
        "name": "Department  of Health", "classification": "government", "economic_sector": "government",
        "telephone": "012 345 6789"})
    employer = Employer.objects.get(entity=entity)
    assert response["Location"] == reverse("web:employer_detail", kwargs={"employer_id": employer.pk})
    assert (employer.name, employer.telephone) == ("Department of Health", "+27123456789")
    listing = client.get(reverse("web:employer_list")).content.decode()
    assert "Department of Health" in listing
    edit = client.post(reverse("web:employer_edit", kwargs={"employer_id": employer.pk}), {
        "name": "Health", "classification": "government", "economic_sector": "community"})
    assert edit.status_code == 302
    employer.refresh_from_db()
    assert (employer.name, employer.economic_sector) == ("Health", "community")
    assert AuditEntry.objects.filter(action=AuditAction.EMPLOYER_UPDATED).count() == 1


def test_bad_employer_values_name_their_fields(client, entity, manager):
    factories.make_employer(entity=entity, name="Taken")
    response = client.post(reverse("web:employer_create"), {
        "name": "taken", "classification": "government", "economic_sector": "", "telephone": "99"})
    assert "economic_sector" in response.context["form"].errors
    response = client.post(reverse("web:employer_create"), {
        "name": "taken", "classification": "government", "economic_sector": "mining", "telephone": "99"})
    errors = response.context["form"].errors
    assert "telephone" in errors
    response = client.post(reverse("web:employer_create"), {
        "name": "taken", "classification": "government", "economic_sector": "mining"})
    assert "exists already" in " ".join(response.context["form"].errors["name"])
    assert Employer.objects.filter(entity=entity).count() == 1


def test_add_paypoints_on_the_employer_page(client, entity, manager):
    employer = factories.make_employer(entity=entity, name="Mine Co")
    url = reverse("web:paypoint_create", kwargs={"employer_id": employer.pk})
    assert client.post(url, {"number": "P1", "name": "Shaft 1"}).status_code == 302
    duplicate = client.post(url, {"number": "P1", "name": "Shaft 1 again"})
    assert duplicate.status_code == 400 and "number" in duplicate.context["paypoint_form"].errors
    page = client.get(reverse("web:employer_detail", kwargs={"employer_id": employer.pk})).content.decode()
    assert "Shaft 1" in page and "Add paypoint" in page
    assert Paypoint.objects.filter(employer=employer).count() == 1


def test_a_reader_sees_employers_but_no_edit_controls(client, login_as, entity):
    employer = factories.make_employer(entity=entity, name="Mine Co")
    login_as(entity, [Right.VIEW_CLIENTS])
    page = client.get(reverse("web:employer_detail", kwargs={"employer_id": employer.pk})).content.decode()
    assert "Mine Co" in page and "Add paypoint" not in page
    assert reverse("web:employer_edit", kwargs={"employer_id": employer.pk}) not in page
