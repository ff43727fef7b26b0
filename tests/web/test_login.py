import pytest
from django.urls import reverse

from imali.core.models import AuditAction, AuditEntry
from tests import factories

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"


def _login(client, username, password, **extra):
    return client.post(reverse("web:login"), {"username": username, "password": password, **extra}, REMOTE_ADDR="10.1.2.3")


def test_login_success_is_audited_with_ip_and_lands_on_home(client, entity):
    user = factories.make_user(entity=entity, username="thandi")
    response = _login(client, "thandi", PASSWORD)
    assert response.status_code == 302 and response["Location"] == reverse("web:home")
    entry = AuditEntry.objects.get(action=AuditAction.LOGIN_SUCCEEDED)
    assert (entry.subject, entry.actor_id, entry.entity_id, entry.ip_address) == ("thandi", user.pk, entity.pk, "10.1.2.3")
    home = client.get(reverse("web:home"))
    assert home.status_code == 200 and entity.name in home.content.decode()


def test_login_failure_is_audited_and_says_so(client, entity):
    factories.make_user(entity=entity, username="thandi")
    response = _login(client, "thandi", "wrong-password")
    assert response.status_code == 400
    assert "Username or password is wrong." in response.content.decode()
    entry = AuditEntry.objects.get(action=AuditAction.LOGIN_FAILED)
    assert (entry.subject, entry.actor_id, entry.ip_address) == ("thandi", None, "10.1.2.3")
    assert "_auth_user_id" not in client.session


def test_unknown_username_is_audited_as_a_failure(client, db):
    _login(client, "nobody", "whatever-password")
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN_FAILED, subject="nobody").count() == 1


def test_lock_out_after_max_failures_refuses_even_the_right_password(client, entity, settings):
    settings.IMALI_LOGIN_MAX_FAILURES = 3
    factories.make_user(entity=entity, username="thandi")
    for _ in range(3):
        _login(client, "thandi", "wrong-password")
    response = _login(client, "thandi", PASSWORD)
    assert response.status_code == 400
    assert "Too many failed sign-ins" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN_LOCKED, subject="thandi").count() == 1
    assert not AuditEntry.objects.filter(action=AuditAction.LOGIN_SUCCEEDED).exists()


def test_fewer_failures_than_the_limit_do_not_lock(client, entity, settings):
    settings.IMALI_LOGIN_MAX_FAILURES = 3
    factories.make_user(entity=entity, username="thandi")
    for _ in range(2):
        _login(client, "thandi", "wrong-password")
    assert _login(client, "thandi", PASSWORD).status_code == 302


def test_login_needs_csrf_token(entity):
    from django.test import Client

    factories.make_user(entity=entity, username="thandi")
    strict = Client(enforce_csrf_checks=True)
    response = strict.post(reverse("web:login"), {"username": "thandi", "password": PASSWORD})
    assert response.status_code == 403
    page = strict.get(reverse("web:login"))
    token = page.cookies["csrftoken"].value
    assert strict.post(reverse("web:login"), {"username": "thandi", "password": PASSWORD, "csrfmiddlewaretoken": token}).status_code == 302


def test_login_follows_a_local_next_but_not_another_site(client, entity):
    factories.make_user(entity=entity, username="thandi")
    ok = client.post(reverse("web:login") + "?next=/employers/", {"username": "thandi", "password": PASSWORD, "next": "/employers/"})
    assert ok["Location"] == "/employers/"
    client.logout()
    evil = client.post(reverse("web:login"), {"username": "thandi", "password": PASSWORD, "next": "https://evil.example/"})
    assert evil["Location"] == reverse("web:home")


def test_pages_need_a_signed_in_user(client, db):
    response = client.get(reverse("web:client_search"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("web:login"))


def test_logout_is_post_only_and_audited(client, entity):
    user = factories.make_user(entity=entity, username="thandi")
    client.force_login(user)
    assert client.get(reverse("web:logout")).status_code == 405
    response = client.post(reverse("web:logout"))
    assert response.status_code == 302 and response["Location"] == reverse("web:login")
    assert AuditEntry.objects.filter(action=AuditAction.LOGOUT, actor=user).count() == 1
    assert client.get(reverse("web:home")).status_code == 302


def test_user_of_a_switched_off_entity_cannot_sign_in(client, entity, operator):
    from imali.tenancy.services import entity_update

    factories.make_user(entity=entity, username="thandi")
    entity_update(actor=operator, entity=entity, data={"is_active": False})
    response = _login(client, "thandi", PASSWORD)
    assert response.status_code == 400 and "_auth_user_id" not in client.session


def test_an_expired_form_gets_a_plain_explanation(entity):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post(reverse("web:login"), {"username": "x", "password": "y"})
    assert response.status_code == 403 and "The form has expired" in response.content.decode()
