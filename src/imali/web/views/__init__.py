"""Web screens, one module per domain. Each module exports `urlpatterns` and may export
`NAV_ITEMS`: (label, url name, right or None, section) tuples for the navigation bar.

`imali.web.urls` collects every module here, so a new domain adds one file and no wiring."""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType


def view_modules() -> list[ModuleType]:
    return [
        importlib.import_module(f"{__name__}.{info.name}")
        for info in sorted(pkgutil.iter_modules(__path__), key=lambda i: i.name)
        if not info.name.startswith("_")
    ]
