"""Named-right checks for API views, shared by every domain (clients, loans, messaging, ...).

Usage in a view or viewset::

    class LoanViewSet(EntityScopedMixin, viewsets.GenericViewSet, ...):
        permission_classes = [HasRight]
        required_rights = {
            "list": Right.VIEW_CLIENTS,
            "retrieve": Right.VIEW_CLIENTS,
            "create": Right.CAPTURE_LOANS,
            "approve": (Right.VIEW_CLIENTS, Right.APPROVE_LOANS),   # all of them are needed
        }

Rules, in the order they are checked:

1. The caller must be signed in (session or token) and active.
2. The caller must belong to an entity, and the entity must be active. Platform operators
   (no entity) get 403 on every view guarded by HasRight: entity data is the lenders' own.
3. The rights for the current action must all be held. The action is the viewset action
   (``list``, ``create``, a custom ``@action`` name...) or, on a plain APIView, the lowercase
   HTTP method (``get``, ``post``...). An action missing from ``required_rights`` is refused:
   a new endpoint is closed until someone names the right it needs. OPTIONS (field metadata)
   needs no right; the methods it reports as allowed are the ones the caller's rights allow.
4. Object level: an object whose ``entity_id`` is not the caller's entity is reported as
   404, never 403, so ids of other lenders cannot be probed. Querysets filtered by the
   caller's entity are still the first line; this check only guards a view that forgot.

Rights are checked before the object is looked up, so a caller lacking a right gets 403 for
any id, their own or another entity's.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.http import Http404
from rest_framework.permissions import BasePermission

from imali.tenancy.rights import Right

NO_ENTITY_MESSAGE = "Only staff of a lender entity may use this endpoint; operators have no entity data."
INACTIVE_ENTITY_MESSAGE = "Your entity is switched off."
UNMAPPED_ACTION_MESSAGE = "This action has no right assigned and is closed."


def rights_for(view, request) -> tuple[Right, ...] | None:
    """The rights the view demands for this request, or None when the action is not mapped."""
    mapping: dict[str, Right | Iterable[Right]] = getattr(view, "required_rights", None) or {}
    method = request.method.lower()
    # DRF's OPTIONS metadata asks about other methods on the same view while `action` stays
    # "metadata": the viewset's method → action map names the action asked about.
    action = getattr(view, "action", None)
    if action in (None, "metadata"):
        action = (getattr(view, "action_map", None) or {}).get(method) or method
    if action not in mapping:
        return None
    required = mapping[action]
    if isinstance(required, Right):
        return (required,)
    return tuple(required)


class HasRight(BasePermission):
    """Allow the request when the caller's entity is active and the caller holds every right
    that ``view.required_rights[action]`` names. See the module docstring for the rules."""

    message = UNMAPPED_ACTION_MESSAGE

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated and user.is_active):
            return False
        if getattr(user, "entity_id", None) is None:
            self.message = NO_ENTITY_MESSAGE
            return False
        if not user.entity.is_active:
            self.message = INACTIVE_ENTITY_MESSAGE
            return False
        if request.method == "OPTIONS":
            # Describes the fields only (as the public schema does); the methods it lists as
            # allowed are filtered through this same check.
            return True
        required = rights_for(view, request)
        if required is None:
            self.message = UNMAPPED_ACTION_MESSAGE
            return False
        missing = [right for right in required if not user.has_right(right)]
        if missing:
            self.message = "You need the right: " + ", ".join(str(right.label) for right in missing) + "."
            return False
        return True

    def has_object_permission(self, request, view, obj) -> bool:
        entity_id = getattr(obj, "entity_id", None)
        if entity_id is not None and entity_id != request.user.entity_id:
            raise Http404
        return True
