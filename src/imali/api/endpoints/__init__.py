"""API endpoints, one module per domain. Each module exports `urlpatterns` (e.g. a DRF router's
urls). `imali.api.urls` collects every module here, so a new domain adds one file and no wiring.

Object routes name their lookup after the model (`client_id`, `employer_id`, ...): the
isolation test finds the object of another entity to try by that name."""

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
