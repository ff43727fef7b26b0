from __future__ import annotations


class CurrentEntityMiddleware:
    """Puts the signed-in user's entity on the request: every view scopes its data by it."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        request.entity = user.entity if user is not None and user.is_authenticated else None
        return self.get_response(request)
