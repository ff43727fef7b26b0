from __future__ import annotations


def navigation(request):
    """The signed-in user's entity for the page header; screens list only what the user may use."""
    return {"current_entity": getattr(request, "entity", None)}
