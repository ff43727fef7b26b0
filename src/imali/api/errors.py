"""API errors: Django ValidationErrors from services become 400s that name each field.

A service raises ``ValidationError({"cellphone": [ValidationError("...", code="invalid_phone")]})``;
the caller receives ``{"cellphone": ["..."]}`` with status 400, the same shape DRF serializers
give, so a client handles one error format whatever layer found the problem. Error codes are
kept on each ErrorDetail (visible through ``exc.get_codes()``). A missing row raised by a
selector is a 404, and Django's PermissionDenied a 403. A ``core.errors.TooSoon`` (the same
thing asked for too recently) is a 429 with ``Retry-After`` and ``{"detail", "code", "retry_after"}``.
A body over Django's DATA_UPLOAD_MAX_MEMORY_SIZE (files aside) or a multipart body over
UPLOAD_MAX_BYTES (core/uploads.py) is a 413 saying how large it may be, and a
form with too many fields or files a 400: Django's own answer to those is an HTML page.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import (
    NON_FIELD_ERRORS,
    ObjectDoesNotExist,
    RequestDataTooBig,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from imali.core.errors import TooSoon
from imali.core.uploads import UploadTooLarge


def _details(errors: list[DjangoValidationError]) -> list[ErrorDetail]:
    # Each ValidationError may hold several messages; `.messages` applies the params.
    return [ErrorDetail(message, code=error.code or "invalid") for error in errors for message in error.messages]


def validation_detail(exc: DjangoValidationError) -> dict[str, list[ErrorDetail]]:
    """The field → messages mapping of a Django ValidationError, in DRF's shape."""
    if hasattr(exc, "error_dict"):
        return {
            (api_settings.NON_FIELD_ERRORS_KEY if field == NON_FIELD_ERRORS else field): _details(errors)
            for field, errors in exc.error_dict.items()
        }
    return {api_settings.NON_FIELD_ERRORS_KEY: _details(exc.error_list)}


class TooManyRequests(exceptions.Throttled):
    """429 with Retry-After; the body is {"detail": why, "code": the refusal's code, "retry_after": seconds}."""

    def __init__(self, *, detail: str, code: str, wait: int):
        super().__init__(wait=wait)
        self.detail = ErrorDetail(detail, code=code)
        self.refusal_code = code


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "request_too_large"


def body_limit_text() -> str:
    return f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE / (1024 * 1024):.1f} MB"


def exception_handler(exc, context):
    if isinstance(exc, TooSoon):
        error = exc.error_dict and next(iter(exc.error_dict.values()))[0]
        exc = TooManyRequests(detail=" ".join(error.messages), code=error.code or "too_soon", wait=exc.retry_after)
    if isinstance(exc, TooManyRequests):
        response = drf_exception_handler(exc, context)
        response.data = {"detail": str(exc.detail), "code": exc.refusal_code, "retry_after": exc.wait}
        return response
    if isinstance(exc, UploadTooLarge):
        exc = RequestTooLarge(str(exc))
    elif isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge(f"The request body is larger than {body_limit_text()} (files aside): send less.")
    elif isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        exc = exceptions.ParseError(f"{exc} Send fewer.")
    elif isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(validation_detail(exc))
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    elif isinstance(exc, ObjectDoesNotExist):
        exc = exceptions.NotFound()
    return drf_exception_handler(exc, context)


def page_not_found(request, exception=None):
    """Django's 404 for a URL no route matches (`handler404`): JSON under /api/, as every API
    error is (`/api/clients/abc/` is as much "not found" as `/api/clients/999/`), and Django's
    own page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
