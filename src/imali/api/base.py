"""What every entity-scoped API view shares: the caller's entity, the caller's address, paging."""

from __future__ import annotations

from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import LimitOffsetPagination

from imali.tenancy.models import Entity

from .authentication import ExpiringTokenAuthentication
from .permissions import HasRight


class EntityPagination(LimitOffsetPagination):
    """Limit/offset paging with a ceiling, so one call cannot ask for a whole book at once."""

    default_limit = 50
    max_limit = 500


class EntityScopedMixin:
    """For views over one entity's data. Pair it with querysets filtered by ``self.entity``.

    ``request.entity`` from the middleware is not used: the middleware runs before DRF reads a
    token, so for token calls it would still be empty. ``HasRight`` has already refused callers
    without an entity when this is read.
    """

    authentication_classes = [SessionAuthentication, ExpiringTokenAuthentication]
    permission_classes = [HasRight]
    pagination_class = EntityPagination
    required_rights: dict = {}

    @property
    def entity(self) -> Entity:
        return self.request.user.entity

    @property
    def ip_address(self) -> str | None:
        return self.request.META.get("REMOTE_ADDR") or None
