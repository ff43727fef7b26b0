from __future__ import annotations

import zoneinfo

from django.utils import timezone


class CurrentEntityMiddleware:
    """Puts the signed-in user's entity on the request: every view scopes its data by it. Times
    are shown in the entity's zone: Django's current time zone is the entity's for the request
    (templates' |date and |time filters use it), the site's default otherwise."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        request.entity = user.entity if user is not None and user.is_authenticated else None
        if request.entity is not None:
            timezone.activate(zoneinfo.ZoneInfo(request.entity.time_zone))
        try:
            return self.get_response(request)
        finally:
            timezone.deactivate()
