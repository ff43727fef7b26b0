"""The screens' error pages that need more than Django's defaults."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.shortcuts import render
from django.views import defaults

from imali.core.forms import BadParameter
from imali.core.uploads import UploadTooLarge


def bad_request(request, exception=None):
    """`handler400`: a parameter our pages never send (`core.forms.BadParameter`: a tampered id,
    '١٢' for 12) is named on the page, and so is a body too large (413) or of too many fields or
    files; any other bad request gets Django's page, which says nothing about why (its message may
    be about the server, not the request)."""
    if isinstance(exception, BadParameter):
        return render(request, "400.html", {"problem": str(exception)}, status=400)
    # Django's messages for these name its settings, not what the person sent.
    if isinstance(exception, UploadTooLarge):
        return render(request, "400.html", {"problem": str(exception)}, status=413)
    if isinstance(exception, RequestDataTooBig):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024)
        return render(request, "400.html", {"problem": f"The form sent is larger than {limit:.1f} MB (files aside): "
                                                       "a text field holds far more than any field takes."}, status=413)
    if isinstance(exception, TooManyFieldsSent):
        return render(request, "400.html", {"problem": f"The form sent has more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS:,} "
                                                       "fields: no page of ours sends so many."}, status=400)
    if isinstance(exception, TooManyFilesSent):
        return render(request, "400.html", {"problem": f"The form sent has more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES:,} "
                                                       "files: no page of ours takes so many."}, status=400)
    return defaults.bad_request(request, exception)
