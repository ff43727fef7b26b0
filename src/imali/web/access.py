"""Who may open a screen. Every screen needs a signed-in user; lender screens also need the
user's entity (so operators, who have none, never reach lender data) and one named right."""

from __future__ import annotations

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.views.decorators.http import require_http_methods

from imali.tenancy.rights import Right

# The right slot of a NAV_ITEMS entry that only platform operators see.
OPERATOR = "operator"


def is_operator(user) -> bool:
    return bool(user.is_authenticated and (user.is_operator or user.is_superuser))


def may_use(request, right) -> bool:
    """Whether the signed-in user may use a screen guarded by `right` (a Right, OPERATOR or None)."""
    user = request.user
    if not user.is_authenticated:
        return False
    if right is None:
        return True
    if right == OPERATOR:
        return is_operator(user)
    entity = getattr(request, "entity", None)
    # A session opened before the operator switched the entity off ends its access here.
    return entity is not None and entity.is_active and user.has_right(Right(right))


SCREEN_METHODS = ("GET", "HEAD", "POST")


def right_required(right: Right, *, methods: tuple[str, ...] = SCREEN_METHODS):
    """Signed in, working inside an entity, and holding `right`; otherwise 403 (anonymous: sign in).
    Screens are pages and forms: any method but `methods` is refused with 405."""

    def decorator(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if not may_use(request, right):
                raise PermissionDenied("You do not have the right to use this screen.")
            return view(request, *args, **kwargs)

        return require_http_methods(list(methods))(login_required(guarded))

    return decorator


def operator_required(view=None, *, methods: tuple[str, ...] = SCREEN_METHODS):
    def decorator(view):
        @wraps(view)
        def guarded(request, *args, **kwargs):
            if not is_operator(request.user):
                raise PermissionDenied("Only the platform operator may use this screen.")
            return view(request, *args, **kwargs)

        return require_http_methods(list(methods))(login_required(guarded))

    return decorator(view) if view is not None else decorator


def client_ip(request) -> str | None:
    # REMOTE_ADDR only: a forwarded-for header is whatever the caller wants it to be unless a
    # trusted proxy sets it, and the embedded deployment has none.
    return request.META.get("REMOTE_ADDR") or None
