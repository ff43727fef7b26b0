"""Sign-in with User OTP on: the password alone does not sign in; the code sent to the user's own
cellphone does. Login Detail lists it."""

from __future__ import annotations

import pytest
from django.urls import reverse

from imali.core.models import AuditAction, AuditEntry
from imali.signing.models import Challenge
from imali.signing.services import otp_setup_update

from .conftest import code_sent

pytestmark = pytest.mark.django_db


def sign_in(client, username, password):
    return client.post(reverse("web:login"), {"username": username, "password": password})


def test_password_then_code(client, admin, setup, officer):
    otp_setup_update(actor=admin, entity=setup.entity, data={"user_otp": True})
    response = sign_in(client, "officer", "correct-horse-battery")
    assert response.status_code == 302 and response["Location"] == reverse("web:signing_login_otp")
    assert client.get(reverse("web:signing_loans")).status_code == 302  # not signed in by the password alone
    challenge = Challenge.objects.get(purpose="login", user=officer, status="pending")
    assert challenge.outbox_message.number == officer.cellphone
    wrong = client.post(reverse("web:signing_login_otp"), {"challenge": challenge.public_id, "code": "0000000"})
    assert wrong.status_code == 400 and "tries left" in wrong.content.decode()
    done = client.post(reverse("web:signing_login_otp"), {"challenge": challenge.public_id, "code": code_sent(challenge)})
    assert done.status_code == 302
    assert client.get(reverse("web:signing_loans")).status_code == 200
    actions = set(AuditEntry.objects.filter(subject="officer").values_list("action", flat=True))
    assert {AuditAction.LOGIN_OTP_SENT, AuditAction.LOGIN_OTP_FAILED, AuditAction.LOGIN_OTP_VERIFIED,
            AuditAction.LOGIN_SUCCEEDED} <= actions
    client.force_login(admin)
    report = client.get(reverse("web:signing_login_detail")).content.decode()
    assert "Login OTP verified" in report and "Login OTP wrong" in report


def test_without_user_otp_the_password_signs_in(client, setup, officer):
    response = sign_in(client, "officer", "correct-horse-battery")
    assert response.status_code == 302 and response["Location"] == reverse("web:home")
    assert not Challenge.objects.filter(purpose="login").exists()


def test_a_wrong_password_sends_no_code(client, admin, setup, officer):
    otp_setup_update(actor=admin, entity=setup.entity, data={"user_otp": True})
    response = sign_in(client, "officer", "wrong-password-here")
    assert response.status_code == 400
    assert not Challenge.objects.filter(purpose="login").exists()
