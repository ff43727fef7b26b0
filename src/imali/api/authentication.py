"""Token authentication whose tokens expire, so a leaked token is not a key for ever.

A token is good for IMALI_API_TOKEN_HOURS (default 24) from when it was issued; after that the
program signs in again (POST /api/auth/token/), which replaces the expired token. Users of a
switched-off entity are refused by HasRight, inactive users by DRF itself.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication

DEFAULT_TOKEN_HOURS = 24


def token_lifetime() -> dt.timedelta:
    return dt.timedelta(hours=getattr(settings, "IMALI_API_TOKEN_HOURS", DEFAULT_TOKEN_HOURS))


def token_expired(token, *, now: dt.datetime | None = None) -> bool:
    return (now or timezone.now()) >= token.created + token_lifetime()


class ExpiringTokenAuthentication(TokenAuthentication):
    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_expired(token):
            raise exceptions.AuthenticationFailed("Token expired; sign in again.", code="token_expired")
        return user, token
