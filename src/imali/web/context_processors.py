from __future__ import annotations

from functools import cache

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from .access import is_operator, may_use


@cache
def _all_nav_items() -> tuple[tuple[str, str, object, str], ...]:
    # Imported here: the views package imports forms and models, which need the app registry.
    from .views import view_modules

    return tuple(item for module in view_modules() for item in getattr(module, "NAV_ITEMS", []))


# The menus, by task, in this order; any other section sits before "Setup". The unnamed section
# (Home) is a plain link; each named one is a menu.
SECTION_ORDER = ["", "Clients", "Loans", "Messaging", "Reports", "Setup", "Platform"]


def _section_rank(name: str) -> float:
    if name in SECTION_ORDER:
        return SECTION_ORDER.index(name)
    return SECTION_ORDER.index("Setup") - 0.5


def navigation(request):
    """The signed-in user's entity for the page header, and the navigation bar: every screen
    module's NAV_ITEMS, keeping only the items whose right the user holds, grouped by section."""
    entity = getattr(request, "entity", None)
    context = {
        "current_entity": entity,
        # Pages show times in the entity's own zone ("daily" is the entity's local day).
        "entity_time_zone": entity.time_zone if entity is not None else settings.TIME_ZONE,
        "nav_sections": [],
        "user_is_operator": False,
    }
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return context
    context["user_is_operator"] = is_operator(user)
    sections: dict[str, list[dict]] = {}
    for label, url_name, right, section in _all_nav_items():
        if not may_use(request, right):
            continue
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        sections.setdefault(section or "", []).append({"label": label, "url": url, "active": False})
    # The item whose address is the longest prefix of this page's is the one being used.
    matches = [item for items in sections.values() for item in items
               if request.path == item["url"] or (item["url"] != "/" and request.path.startswith(item["url"]))]
    if matches:
        max(matches, key=lambda item: len(item["url"]))["active"] = True
    ordered = sorted(sections.items(), key=lambda pair: _section_rank(pair[0]))  # stable: discovery order otherwise
    context["nav_sections"] = [{"name": name, "items": items, "active": any(item["active"] for item in items),
                                "slug": name.lower() or "home"} for name, items in ordered]
    return context
