import pytest
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from imali.core.models import AuditAction, AuditEntry
from imali.tenancy.rights import Right
from tests import factories

pytestmark = pytest.mark.django_db

TOKEN = "/api/auth/token/"
PASSWORD = "correct-horse-battery"


def sign_in(api, username, password=PASSWORD, **kwargs):
    return api.post(TOKEN, {"username": username, "password": password}, format="json", **kwargs)


def test_token_sign_in_gives_a_token_that_authenticates(api, entity):
    user = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    factories.make_client(entity=entity)
    response = sign_in(api, user.username, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(user=user).key == token

    caller = APIClient()
    assert caller.get("/api/clients/").status_code == 403
    caller.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    body = caller.get("/api/clients/").json()
    assert body["count"] == 1

    assert AuditEntry.objects.filter(action=AuditAction.LOGIN_SUCCEEDED, subject=user.username, ip_address="10.1.2.3").exists()
    assert AuditEntry.objects.filter(action=AuditAction.API_TOKEN_ISSUED, actor=user, entity=entity).exists()


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "TRACE"])
def test_a_method_the_token_view_does_not_take_is_405_even_signed_out(api, method):
    response = api.generic(method, TOKEN)
    assert response.status_code == 405
    assert "POST" in response["Allow"] and method not in response["Allow"]


def test_signing_in_twice_hands_out_the_same_token(api, entity):
    user = factories.make_user(entity=entity)
    assert sign_in(api, user.username).json() == sign_in(api, user.username).json()


def test_session_authentication_works_and_needs_csrf_for_writes(entity):
    user = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS, Right.MANAGE_EMPLOYERS])
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(user)
    assert browser.get("/api/employers/").status_code == 200
    body = {"name": "Acme", "classification": "private", "economic_sector": "trade"}
    response = browser.post("/api/employers/", body, format="json")
    assert response.status_code == 403
    assert "CSRF" in response.json()["detail"]
    # With the CSRF cookie and the matching header, a browser session may write.
    secret = "a1b2c3d4" * 4
    browser.cookies["csrftoken"] = secret
    response = browser.post("/api/employers/", body, format="json", HTTP_X_CSRFTOKEN=secret)
    assert response.status_code == 201, response.json()


def test_wrong_password_is_400_audited_and_gives_no_token(api, entity):
    user = factories.make_user(entity=entity)
    response = sign_in(api, user.username, "wrong-password-1")
    assert response.status_code == 400
    assert "non_field_errors" in response.json()
    assert not Token.objects.exists()
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN_FAILED, subject=user.username).count() == 1


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(api, entity):
    user = factories.make_user(entity=entity)
    unknown = sign_in(api, "nobody-here")
    wrong = sign_in(api, user.username, "wrong-password-1")
    assert unknown.status_code == wrong.status_code == 400
    assert unknown.json() == wrong.json()


def test_missing_fields_are_named(api):
    response = api.post(TOKEN, {}, format="json")
    assert response.status_code == 400
    assert set(response.json()) == {"username", "password"}


@override_settings(IMALI_LOGIN_MAX_FAILURES=3)
def test_lock_out_refuses_even_the_right_password(api, entity):
    user = factories.make_user(entity=entity)
    for _ in range(3):
        assert sign_in(api, user.username, "wrong-password-1").status_code == 400
    response = sign_in(api, user.username)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("Too many failed sign-ins")
    assert not Token.objects.exists()
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN_LOCKED, subject=user.username).count() == 1


@override_settings(IMALI_LOGIN_MAX_FAILURES=3)
def test_a_success_before_the_limit_resets_the_count(api, entity):
    user = factories.make_user(entity=entity)
    for _ in range(2):
        sign_in(api, user.username, "wrong-password-1")
    assert sign_in(api, user.username).status_code == 200
    for _ in range(2):
        sign_in(api, user.username, "wrong-password-1")
    assert sign_in(api, user.username).status_code == 200


def test_inactive_user_and_switched_off_entity_cannot_sign_in(api, entity):
    user = factories.make_user(entity=entity)
    user.is_active = False
    user.save()
    assert sign_in(api, user.username).status_code == 400
    other = factories.make_user(entity=entity)
    entity.is_active = False
    entity.save()
    assert sign_in(api, other.username).status_code == 400


def test_a_token_stops_working_when_the_entity_is_switched_off(api, entity):
    user = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    token = sign_in(api, user.username).json()["token"]
    caller = APIClient()
    caller.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert caller.get("/api/clients/").status_code == 200
    entity.is_active = False
    entity.save()
    assert caller.get("/api/clients/").status_code == 403


def test_revoking_the_token_signs_the_program_out(api, entity):
    user = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    token = sign_in(api, user.username).json()["token"]
    caller = APIClient()
    caller.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert caller.delete(TOKEN).status_code == 204
    assert caller.get("/api/clients/").status_code == 403
    assert not Token.objects.filter(user=user).exists()
    assert AuditEntry.objects.filter(action=AuditAction.LOGOUT, actor=user).exists()
    assert APIClient().delete(TOKEN).status_code == 403


def test_operator_may_sign_in_but_sees_no_entity_data(api, operator, entity):
    factories.make_client(entity=entity)
    token = sign_in(api, operator.username, "operator-pass-123").json()["token"]
    caller = APIClient()
    caller.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    for url in ("/api/clients/", "/api/employers/"):
        response = caller.get(url)
        assert response.status_code == 403
        assert "operators" in response.json()["detail"]


@pytest.fixture
def user_otp_on(entity, operator, admin_user):
    from imali.messaging.credits import credits_assign
    from imali.signing.services import otp_setup_update

    credits_assign(actor=operator, entity=entity, channel="sms", amount=100)
    otp_setup_update(actor=admin_user, entity=entity, data={"user_otp": True})
    return entity


def test_with_user_otp_the_password_alone_only_sends_a_code(api, user_otp_on):
    from imali.signing.models import Challenge
    from imali.signing.testing import code_from_outbox

    user = factories.make_user(entity=user_otp_on, rights=[Right.VIEW_CLIENTS])
    first = sign_in(api, user.username)
    assert first.status_code == 202
    body = first.json()
    assert body["otp_required"] is True and "token" not in body
    assert body["detail"].endswith("ending 567.")
    assert not Token.objects.exists()
    assert not AuditEntry.objects.filter(action=AuditAction.LOGIN_SUCCEEDED).exists()

    challenge = Challenge.objects.get(public_id=body["challenge"])
    code = code_from_outbox(challenge)
    wrong = "000000" if code != "000000" else "111111"
    refused = api.post(TOKEN, {"username": user.username, "password": PASSWORD, "challenge": body["challenge"],
                               "code": wrong}, format="json")
    assert refused.status_code == 400
    assert set(refused.json()) == {"code"}
    assert not Token.objects.exists()

    done = api.post(TOKEN, {"username": user.username, "password": PASSWORD, "challenge": body["challenge"],
                            "code": code}, format="json")
    assert done.status_code == 200, done.json()
    assert done.json()["token"] == Token.objects.get(user=user).key
    assert AuditEntry.objects.filter(action=AuditAction.LOGIN_SUCCEEDED, subject=user.username).count() == 1


def test_with_user_otp_a_code_needs_the_right_password_too(api, user_otp_on):
    from imali.signing.models import Challenge
    from imali.signing.testing import code_from_outbox

    user = factories.make_user(entity=user_otp_on)
    challenge_id = sign_in(api, user.username).json()["challenge"]
    code = code_from_outbox(Challenge.objects.get(public_id=challenge_id))
    response = api.post(TOKEN, {"username": user.username, "password": "wrong-password-1", "challenge": challenge_id,
                                "code": code}, format="json")
    assert response.status_code == 400
    assert not Token.objects.exists()


def test_a_token_expires_and_signing_in_again_replaces_it(api, entity, settings):
    import datetime as dt

    from django.utils import timezone

    settings.IMALI_API_TOKEN_HOURS = 2
    user = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    old = sign_in(api, user.username).json()["token"]
    caller = APIClient()
    caller.credentials(HTTP_AUTHORIZATION=f"Token {old}")
    assert caller.get("/api/clients/").status_code == 200
    Token.objects.filter(key=old).update(created=timezone.now() - dt.timedelta(hours=2, minutes=1))
    response = caller.get("/api/clients/")
    assert response.status_code == 403
    assert response.json()["detail"] == "Token expired; sign in again."
    new = sign_in(api, user.username).json()["token"]
    assert new != old
    caller.credentials(HTTP_AUTHORIZATION=f"Token {new}")
    assert caller.get("/api/clients/").status_code == 200


def _token_caller(user) -> APIClient:
    token = sign_in(APIClient(), user.username).json()["token"]
    caller = APIClient()
    caller.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert caller.get("/api/clients/").status_code == 200
    return caller


def _refused(response) -> bool:
    # Unauthenticated API calls answer 403 here (session authentication comes first, and it
    # sends no WWW-Authenticate challenge); the detail says the token itself was refused.
    return response.status_code in (401, 403) and response.json()["detail"] == "Invalid token."


def test_changing_ones_own_password_revokes_the_api_token(entity):
    from imali.tenancy.services import user_set_password

    user = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    caller = _token_caller(user)
    user_set_password(actor=user, user=user, password="a-brand-new-secret-9", current_password=PASSWORD)
    assert _refused(caller.get("/api/clients/"))
    assert not Token.objects.filter(user=user).exists()
    revoked = AuditEntry.objects.get(action=AuditAction.LOGOUT, object_id=str(user.pk))
    assert revoked.after == {"api_token_revoked": True, "reason": "password_set"}
    assert revoked.actor == user


def test_an_administrators_password_reset_revokes_the_api_token(entity, admin_user):
    from imali.tenancy.services import user_set_password

    user = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    caller = _token_caller(user)
    user_set_password(actor=admin_user, user=user, password="a-brand-new-secret-9")
    assert _refused(caller.get("/api/clients/"))
    assert AuditEntry.objects.filter(action=AuditAction.LOGOUT, actor=admin_user, object_id=str(user.pk),
                                     after__reason="password_set").exists()


def test_deactivating_a_user_revokes_the_api_token(entity, admin_user):
    from imali.tenancy.services import user_update

    user = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    caller = _token_caller(user)
    user_update(actor=admin_user, user=user, data={"is_active": False})
    assert caller.get("/api/clients/").status_code in (401, 403)
    assert not Token.objects.filter(user=user).exists()
    assert AuditEntry.objects.filter(action=AuditAction.LOGOUT, actor=admin_user, object_id=str(user.pk),
                                     after__reason="deactivated").exists()
    # Switched back on, the user signs in again for a new token; the old one stays dead.
    user_update(actor=admin_user, user=user, data={"is_active": True})
    assert caller.get("/api/clients/").status_code in (401, 403)


def test_an_unchanged_active_user_keeps_the_token(entity, admin_user):
    from imali.tenancy.services import user_update

    user = factories.make_user(entity=entity, rights=[Right.VIEW_CLIENTS])
    caller = _token_caller(user)
    user_update(actor=admin_user, user=user, data={"first_name": "Renamed", "is_active": True})
    assert caller.get("/api/clients/").status_code == 200
