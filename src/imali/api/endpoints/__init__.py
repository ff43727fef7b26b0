"""API endpoints, one module per domain. Each module exports `urlpatterns` (e.g. a DRF router's
urls). `imali.api.urls` collects every module here, so a new domain adds one file and no wiring.

Object routes name their lookup after the model (`client_id`, `employer_id`, ...): the
isolation test finds the object of another entity to try by that name.

A domain's viewset over entity data: mix in `imali.api.base.EntityScopedMixin` (HasRight,
bounded paging, `self.entity`), map every action to its rights in `required_rights`, filter
every queryset by `self.entity`, write through the domain's services, and register it on a
`SimpleRouter(trailing_slash=True)` (a DefaultRouter's root view would clash between modules).
Foreign keys in request bodies: `imali.api.serializers.fields.EntityRelatedField`."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def endpoint_modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
        if not info.name.startswith("_")
    ]
