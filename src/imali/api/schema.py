"""The OpenAPI schema and its Swagger page, served to signed-in users only.

They describe no one's data, but they are a map of every call the back office answers, and a
lender's API has no public audience: a program with a token or a signed-in browser reads them,
anyone else is asked to sign in (a 401 with a Token challenge for the schema and for calls that
present a bad token; the web sign-in page, with a way back, for a browser opening the docs).
"""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated

from .authentication import ExpiringTokenAuthentication

# The token scheme first, so an unauthenticated call is answered 401 with `WWW-Authenticate: Token`.
SIGNED_IN_AUTHENTICATION = [ExpiringTokenAuthentication, SessionAuthentication]


class SignedInSchemaView(SpectacularAPIView):
    authentication_classes = SIGNED_IN_AUTHENTICATION
    permission_classes = [IsAuthenticated]


class SignedInDocsView(SpectacularSwaggerView):
    authentication_classes = SIGNED_IN_AUTHENTICATION
    permission_classes = [IsAuthenticated]

    def handle_exception(self, exc):
        # A person in a browser, not a program with a (bad) token: off to the sign-in page.
        if isinstance(exc, exceptions.NotAuthenticated) and "HTTP_AUTHORIZATION" not in self.request.META:
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)
