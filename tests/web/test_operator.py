import pytest
from django.urls import reverse

from imali.core.models import AuditAction, AuditEntry
from imali.tenancy.models import Branch, Entity, User
from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db


def _onboard_post(**overrides):
    data = {"name": "Kalahari Loans", "code": "kalahari", "country": "BW", "time_zone": "", "modules": ["maxsms", "loan_otp"],
            "admin_username": "kalahari-admin", "admin_first_name": "Kabelo", "admin_last_name": "Molefe",
            "admin_email": "", "admin_cellphone": "71234567", "admin_password": "a-long-enough-secret",
            "admin_password_confirm": "a-long-enough-secret", "branch_code": "GAB", "branch_name": "Gaborone"}
    data.update(overrides)
    return data


def test_operator_onboards_an_entity_with_its_first_administrator(client, operator):
    client.force_login(operator)
    response = client.post(reverse("web:entity_create"), _onboard_post())
    assert response.status_code == 302 and response["Location"] == reverse("web:entity_list")
    entity = Entity.objects.get(code="kalahari")
    assert (entity.currency, entity.time_zone, entity.modules) == ("BWP", "Africa/Gaborone", ["maxsms", "loan_otp"])
    admin = User.objects.get(username="kalahari-admin")
    assert admin.entity == entity and admin.cellphone == "+26771234567" and admin.has_right(Right.MANAGE_USERS)
    assert admin.home_branch == Branch.objects.get(entity=entity, code="GAB")
    assert AuditEntry.objects.filter(action=AuditAction.ENTITY_CREATED, entity=entity, actor=operator).exists()
    assert "Kalahari Loans" in client.get(reverse("web:entity_list")).content.decode()
    client.logout()
    assert client.post(reverse("web:login"), {"username": "kalahari-admin", "password": "a-long-enough-secret"}).status_code == 302
    assert "Kalahari Loans" in client.get(reverse("web:home")).content.decode()


def test_onboarding_errors_name_their_fields_and_create_nothing(client, operator, entity):
    client.force_login(operator)
    response = client.post(reverse("web:entity_create"), _onboard_post(
        code=entity.code, admin_cellphone="12", admin_password="short", admin_password_confirm="short"))
    assert response.status_code == 400
    assert "code" in response.context["form"].errors
    response = client.post(reverse("web:entity_create"), _onboard_post(admin_cellphone="12"))
    assert "admin_cellphone" in response.context["form"].errors
    response = client.post(reverse("web:entity_create"), _onboard_post(admin_password="short", admin_password_confirm="short"))
    assert "admin_password" in response.context["form"].errors
    assert not Entity.objects.filter(code="kalahari").exists()
    assert not User.objects.filter(username="kalahari-admin").exists()


def test_a_non_operator_cannot_onboard(client, entity):
    admin = factories.make_admin(entity=entity)
    client.force_login(admin)
    response = client.post(reverse("web:entity_create"), _onboard_post())
    assert response.status_code == 403
    assert not Entity.objects.filter(code="kalahari").exists()


def test_operator_edits_an_entity(client, operator, entity, other_entity):
    client.force_login(operator)
    url = reverse("web:entity_edit", kwargs={"entity_id": entity.pk})
    response = client.post(url, {"name": "Renamed Lender", "time_zone": "Africa/Windhoek", "modules": ["maxmail"],
                                 "is_active": "", "marketing_consent_not_required": "on"})
    assert response.status_code == 302
    entity.refresh_from_db()
    assert (entity.name, entity.time_zone, entity.modules, entity.is_active, entity.marketing_consent_not_required) == (
        "Renamed Lender", "Africa/Windhoek", ["maxmail"], False, True)
    assert AuditEntry.objects.filter(action=AuditAction.ENTITY_UPDATED, entity=entity).exists()
    duplicate = client.post(url, {"name": other_entity.name, "time_zone": "Africa/Windhoek"})
    assert "name" in duplicate.context["form"].errors


def test_the_operator_reads_modules_by_name_and_credit_balances_with_separators(client, operator, entity):
    # The entity list showed the module keys ("maxsms, loan_otp") and Assign credits the balances
    # as bare numbers ("4959"), where the home page says "4,959".
    from imali.messaging.credits import credits_assign
    from imali.tenancy.models import Module

    entity.modules = [Module.MAXSMS, Module.LOAN_OTP]
    entity.save()
    credits_assign(actor=operator, entity=entity, channel="sms", amount=12345)
    client.force_login(operator)
    page = client.get(reverse("web:entity_list")).content.decode()
    assert "MAXSMS (SMS), Loan OTP and e-signing" in page and "maxsms" not in page
    page = client.get(reverse("web:messaging_operator_credits")).content.decode()
    assert ">12,345<" in page and ">12345<" not in page
