"""What every entity-scoped API view shares: the caller's entity, the caller's address, paging."""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication
from rest_framework.pagination import LimitOffsetPagination

from imali.core.forms import MAX_ID
from imali.tenancy.models import Entity

from .authentication import ExpiringTokenAuthentication
from .permissions import HasRight

# A number in a filter past the largest id a column holds (core.forms.MAX_ID, a signed 64-bit
# integer) overflowed the database driver (a 500) rather than matching nothing.
MAX_QUERY_ID = MAX_ID


def query_int(request, name: str) -> int | None:
    """A whole-number query parameter (an id filter), or None when absent; anything else given
    ("", "null", "-1", "1.5", a number past MAX_QUERY_ID) is a 400 naming the parameter, as its
    schema (integer, 0 to MAX_QUERY_ID) says."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or int(raw) > MAX_QUERY_ID:
        raise exceptions.ValidationError({name: [f"A whole number from 0 to {MAX_QUERY_ID} is needed."]})
    return int(raw)


QUERY_TRUE, QUERY_FALSE = ("true", "True", "1"), ("false", "False", "0")


def query_bool(request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw not in QUERY_TRUE + QUERY_FALSE:
        raise exceptions.ValidationError({name: ["Give true or false."]})
    return raw in QUERY_TRUE


def query_choice(request, name: str, choices) -> str | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    if raw not in choices:
        raise exceptions.ValidationError({name: [f"Choose one of: {', '.join(choices)}."]})
    return raw


class EntityPagination(LimitOffsetPagination):
    """Limit/offset paging with a ceiling, so one call cannot ask for a whole book at once.

    DRF quietly reads `?offset=null` or `?limit=-3` as the default; here a bad value is a 400
    naming the parameter, as the schema (offset >= 0, limit >= 1) says. A limit above the
    ceiling is cut to it (also said in the schema)."""

    default_limit = 50
    max_limit = 500

    def _parameter(self, request, name: str, *, minimum: int) -> int | None:
        raw = request.query_params.get(name)
        if raw is None:
            return None
        if not (raw.isascii() and raw.isdigit()) or int(raw) < minimum:
            raise exceptions.ValidationError({name: [f"A whole number of at least {minimum} is needed."]})
        return int(raw)

    def get_limit(self, request):
        limit = self._parameter(request, self.limit_query_param, minimum=1)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request):
        return self._parameter(request, self.offset_query_param, minimum=0) or 0

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = f"Rows per page, 1 or more (default {self.default_limit}, at most {self.max_limit})."
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"]["minimum"] = 0
        return parameters


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
