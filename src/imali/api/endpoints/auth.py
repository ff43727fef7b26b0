"""Token sign-in for programs that call the API: POST a username and password, get a token.

It obeys the same rules as the web sign-in. The lock-out (tenancy.services.login_is_locked):
after too many failures in the window even the right password is refused. The entity's "User
OTP" switch (signing.services.login_otp_required): the right password then only sends a code to
the user's cellphone (202 with a challenge id), and the token is given when username, password,
challenge and code come back together. Every attempt is audited.
"""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from imali.api.authentication import ExpiringTokenAuthentication
from imali.api.serializers.auth import (
    TokenCodeSentSerializer,
    TokenRequestSerializer,
    TokenResponseSerializer,
)
from imali.api.services import api_token_issue, api_token_revoke
from imali.signing.services import login_otp_required, login_otp_send, login_otp_verify
from imali.tenancy.services import login_is_locked, login_record

BAD_CREDENTIALS = "Unable to sign in with this username and password."


class LockedOut(exceptions.APIException):
    status_code = status.HTTP_403_FORBIDDEN
    default_detail = "Too many failed sign-ins for this username; try again later."
    default_code = "locked_out"


class AuthTokenView(APIView):
    """POST signs in and returns the token; DELETE revokes the caller's token."""

    def _signing_in(self) -> bool:
        # The schema generator builds this view without a request.
        return getattr(getattr(self, "request", None), "method", None) == "POST"

    def get_authenticators(self):
        # Signing in needs no prior authentication, and must not trip over a stale session's
        # CSRF check; revoking needs to know who is calling.
        if self._signing_in():
            return []
        return [SessionAuthentication(), ExpiringTokenAuthentication()]

    def _answered(self) -> bool:
        """Whether the view has a handler for the request's method: for one it has not (TRACE, PUT)
        no caller is needed, so the answer is the 405 the schema implies rather than a 403."""
        method = getattr(getattr(self, "request", None), "method", None)
        return method is None or (method.lower() in self.http_method_names and hasattr(self, method.lower()))

    def get_permissions(self):
        if self._signing_in() or not self._answered():
            return []
        return [IsAuthenticated()]

    @extend_schema(
        operation_id="auth_token_create",
        summary="Sign in and get an API token",
        description=(
            "Exchange a username and password for the user's API token; send it on later calls "
            "as `Authorization: Token <token>`. When the user's entity has User OTP switched on, "
            "the first call answers 202 with a `challenge` and sends a code to the user's "
            "cellphone; call again with username, password, `challenge` and `code` to get the "
            "token. After too many failed attempts the username is locked for a while (403, code "
            "`locked_out`), even with the right password. Every attempt is audited."
        ),
        request=TokenRequestSerializer,
        responses={
            200: TokenResponseSerializer,
            202: TokenCodeSentSerializer,
            400: OpenApiResponse(description="Missing fields, a wrong username or password, or a wrong code."),
            403: OpenApiResponse(description="Locked out after too many failed attempts."),
        },
        auth=[],
    )
    def post(self, request, *args, **kwargs):
        serializer = TokenRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        username = data["username"]
        ip_address = request.META.get("REMOTE_ADDR") or None
        if login_is_locked(username=username):
            login_record(username=username, user=None, succeeded=False, ip_address=ip_address, locked=True)
            raise LockedOut()
        user = authenticate(request._request, username=username, password=data["password"])
        if user is None:
            login_record(username=username, user=None, succeeded=False, ip_address=ip_address)
            raise exceptions.ValidationError({api_settings.NON_FIELD_ERRORS_KEY: [BAD_CREDENTIALS]}, code="bad_credentials")
        if login_otp_required(user=user):
            if not (data.get("challenge") and data.get("code")):
                # The password alone is half a sign-in: a code goes to the user's own cellphone.
                challenge = login_otp_send(user=user, ip=ip_address)
                sent = TokenCodeSentSerializer({
                    "otp_required": True, "challenge": challenge.public_id,
                    "detail": f"A sign-in code was sent to your cellphone ending {user.cellphone[-3:]}.",
                })
                return Response(sent.data, status=status.HTTP_202_ACCEPTED)
            login_otp_verify(user=user, challenge_id=data["challenge"], code=data["code"], ip=ip_address)
        login_record(username=username, user=user, succeeded=True, ip_address=ip_address)
        token = api_token_issue(user=user, ip_address=ip_address)
        return Response(TokenResponseSerializer({"token": token.key}).data)

    @extend_schema(
        operation_id="auth_token_destroy",
        summary="Revoke your API token",
        description="Delete the caller's API token: every program using it must sign in again. Audited.",
        request=None,
        responses={204: OpenApiResponse(description="Revoked (or there was no token).")},
    )
    def delete(self, request, *args, **kwargs):
        api_token_revoke(user=request.user, ip_address=request.META.get("REMOTE_ADDR") or None)
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [path("auth/token/", AuthTokenView.as_view(), name="auth-token")]
