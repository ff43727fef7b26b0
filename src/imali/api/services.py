"""Writes the API itself makes: issuing and revoking API tokens. Audited, one transaction each."""

from __future__ import annotations

from django.db import transaction
from rest_framework.authtoken.models import Token

from imali.api.authentication import token_expired
from imali.core.audit import audit_record
from imali.core.models import AuditAction
from imali.tenancy.models import User


def api_token_issue(*, user: User, ip_address: str | None = None) -> Token:
    """The user's API token, created on first use and replaced once expired. One token per user:
    signing in from a second program hands out the same token, and revoking it signs every
    program out."""
    with transaction.atomic():
        token = Token.objects.select_for_update().filter(user=user).first()
        if token is not None and token_expired(token):
            token.delete()
            token = None
        created = token is None
        if created:
            token = Token.objects.create(user=user)
        audit_record(
            action=AuditAction.API_TOKEN_ISSUED, actor=user, entity=user.entity, target=user,
            subject=user.username.lower(), after={"new_token": created}, ip_address=ip_address,
        )
    return token


def api_token_revoke(*, user: User, ip_address: str | None = None) -> bool:
    """Delete the user's API token; every program using it must sign in again."""
    with transaction.atomic():
        deleted, _ = Token.objects.filter(user=user).delete()
        if deleted:
            audit_record(
                action=AuditAction.LOGOUT, actor=user, entity=user.entity, target=user,
                subject=user.username.lower(), after={"api_token_revoked": True}, ip_address=ip_address,
            )
    return bool(deleted)
