"""Callbacks of the mobile-money providers (plain Django views: not part of the OpenAPI schema,
which documents what our users call; these are called by M-PESA and MTN MoMo).

    POST /api/callbacks/mpesa/validation/?setup=<id>&token=<t>     C2B validation (answer within the deadline)
    POST /api/callbacks/mpesa/confirmation/?setup=<id>&token=<t>   C2B confirmation → receipt once per TransID
    POST /api/callbacks/mpesa/result/?setup=<id>&token=<t>[&status=1&originator=<uuid>]   B2C result / status-query result
    POST /api/callbacks/mpesa/timeout/?setup=<id>&token=<t>        B2C QueueTimeOutURL
    PUT|POST /api/callbacks/momo/collection/?setup=<id>&token=<t>  request-to-pay final state
    PUT|POST /api/callbacks/momo/disbursement/?setup=<id>&token=<t>  transfer final state

Authentication: neither Daraja nor the MoMo Open API signs callbacks and both take only a URL, so
the URL carries a per-setup token derived from SECRET_KEY (`services.callback_token`), compared in
constant time, plus the optional source allow-list `IMALI_CALLBACK_ALLOWED_NETWORKS`; an M-PESA
body must also name the setup's short code. A forged callback (wrong token) gets 403 and changes
nothing; a replayed one finds its transaction id stored and changes nothing. MoMo callbacks are
only a prompt: the state is read back from MoMo (GET status) before anything is recorded, so the
body of a callback is never trusted.
"""

from __future__ import annotations

import hmac
import json
import logging

from django.core.exceptions import ValidationError
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from imali.mobilemoney import services
from imali.mobilemoney.models import Provider, ProviderSetup

from .callbacks import _allowed_source

log = logging.getLogger("imali.api.callbacks")
REFUSED = {"ResultCode": "C2B00016", "ResultDesc": "Unknown setup or wrong token."}


def _setup(request: HttpRequest, provider: str) -> ProviderSetup | None:
    raw = request.GET.get("setup", "")
    token = request.GET.get("token", "")
    # A primary-key look-up: no ORDER BY (what .first() would add from the model's ordering).
    setup = (next(iter(ProviderSetup.objects.select_related("entity").filter(pk=int(raw), provider=provider, is_active=True)
                       .order_by()[:1]), None)
             if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None)
    # Compared even for an unknown setup, so the timing tells nothing about which ids exist.
    expected = services.callback_token(setup) if setup is not None else "0" * 40
    if not (hmac.compare_digest(token.encode(), expected.encode()) and setup is not None and _allowed_source(request)):
        return None
    if not setup.entity.is_active:
        return None
    return setup


def _body(request: HttpRequest) -> dict | None:
    try:
        data = json.loads(request.body.decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _messages(exc: ValidationError) -> dict:
    return getattr(exc, "message_dict", {"body": exc.messages})


@csrf_exempt
@require_http_methods(["POST"])
def mpesa_validation(request: HttpRequest) -> JsonResponse:
    setup = _setup(request, Provider.MPESA)
    if setup is None:
        return JsonResponse(REFUSED, status=403)
    body = _body(request)
    if body is None:
        return JsonResponse({"ResultCode": "C2B00016", "ResultDesc": "The body is not a JSON object."}, status=400)
    return JsonResponse(services.mpesa_validate(setup=setup, body=body))


@csrf_exempt
@require_http_methods(["POST"])
def mpesa_confirmation(request: HttpRequest) -> JsonResponse:
    setup = _setup(request, Provider.MPESA)
    if setup is None:
        return JsonResponse(REFUSED, status=403)
    body = _body(request)
    if body is None:
        return JsonResponse({"ResultCode": "C2B00016", "ResultDesc": "The body is not a JSON object."}, status=400)
    try:
        services.mpesa_confirm(setup=setup, body=body)
    except ValidationError as exc:
        return JsonResponse({"ResultCode": "C2B00016", "ResultDesc": "Unreadable confirmation", "errors": _messages(exc)},
                            status=400)
    # Recorded now or recorded before: either way M-PESA need not send it again.
    return JsonResponse(services.C2B_ACCEPT)


@csrf_exempt
@require_http_methods(["POST"])
def mpesa_result(request: HttpRequest) -> JsonResponse:
    setup = _setup(request, Provider.MPESA)
    if setup is None:
        return JsonResponse(REFUSED, status=403)
    body = _body(request)
    if body is None or not isinstance(body.get("Result"), dict):
        return JsonResponse({"ResultCode": 1, "ResultDesc": "A Result object is required."}, status=400)
    from imali.mobilemoney import disbursements

    try:
        disbursements.mpesa_result_apply(setup=setup, result=body["Result"], originator=request.GET.get("originator", ""),
                                         is_status_result=request.GET.get("status") == "1")
    except ValidationError as exc:
        return JsonResponse({"ResultCode": 1, "ResultDesc": "Unreadable result", "errors": _messages(exc)}, status=400)
    return JsonResponse({"ResultCode": 0, "ResultDesc": "Accepted"})


@csrf_exempt
@require_http_methods(["POST"])
def mpesa_timeout(request: HttpRequest) -> JsonResponse:
    setup = _setup(request, Provider.MPESA)
    if setup is None:
        return JsonResponse(REFUSED, status=403)
    body = _body(request) or {}
    from imali.mobilemoney import disbursements

    result = body.get("Result") if isinstance(body.get("Result"), dict) else body
    disbursements.mpesa_timeout_apply(setup=setup, originator=str(result.get("OriginatorConversationID") or
                                                                    request.GET.get("originator", "")))
    return JsonResponse({"ResultCode": 0, "ResultDesc": "Accepted"})


@csrf_exempt
@require_http_methods(["PUT", "POST"])
def momo_collection(request: HttpRequest) -> JsonResponse:
    setup = _setup(request, Provider.MOMO)
    if setup is None:
        return JsonResponse({"detail": "Unknown setup or wrong token."}, status=403)
    body = _body(request) or {}
    from imali.mobilemoney import collections

    reference = str(request.GET.get("reference") or body.get("referenceId") or body.get("externalId") or "")
    collections.collection_refresh(setup=setup, reference_id=reference)
    return JsonResponse({"status": "checked"})


@csrf_exempt
@require_http_methods(["PUT", "POST"])
def momo_disbursement(request: HttpRequest) -> JsonResponse:
    setup = _setup(request, Provider.MOMO)
    if setup is None:
        return JsonResponse({"detail": "Unknown setup or wrong token."}, status=403)
    body = _body(request) or {}
    from imali.mobilemoney import disbursements

    reference = str(request.GET.get("originator") or body.get("externalId") or "")
    disbursements.disbursement_refresh_by_originator(setup=setup, originator=reference)
    return JsonResponse({"status": "checked"})


urlpatterns = [
    path(services.CALLBACK_PATHS["validation"], mpesa_validation, name="callback-mpesa-validation"),
    path(services.CALLBACK_PATHS["confirmation"], mpesa_confirmation, name="callback-mpesa-confirmation"),
    path(services.CALLBACK_PATHS["result"], mpesa_result, name="callback-mpesa-result"),
    path(services.CALLBACK_PATHS["timeout"], mpesa_timeout, name="callback-mpesa-timeout"),
    path(services.CALLBACK_PATHS["collection"], momo_collection, name="callback-momo-collection"),
    path(services.CALLBACK_PATHS["disbursement"], momo_disbursement, name="callback-momo-disbursement"),
]
