"""The screens' error pages that need more than Django's defaults."""

from __future__ import annotations

from django.shortcuts import render
from django.views import defaults

from imali.core.forms import BadParameter


def bad_request(request, exception=None):
    """`handler400`: a parameter our pages never send (`core.forms.BadParameter`: a tampered id,
    '١٢' for 12) is named on the page; any other bad request gets Django's page, which says nothing
    about why (its message may be about the server, not the request)."""
    if isinstance(exception, BadParameter):
        return render(request, "400.html", {"problem": str(exception)}, status=400)
    return defaults.bad_request(request, exception)
