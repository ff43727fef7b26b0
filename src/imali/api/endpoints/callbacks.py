"""Callbacks of the HTTP SMS aggregators: delivery reports and incoming messages.

    POST /api/callbacks/africastalking/delivery/?gateway=<name>&token=<secret>   (form-encoded)
    POST /api/callbacks/africastalking/inbound/?gateway=<name>&token=<secret>    (form-encoded)
    POST /api/callbacks/clickatell/status/?gateway=<name>&token=<secret>         (JSON)
    POST /api/callbacks/clickatell/inbound/?gateway=<name>&token=<secret>        (JSON)

Authentication: neither Africa's Talking nor Clickatell's One API signs its callbacks, and both
take only a URL, so the URL carries the credential: a per-gateway token derived from SECRET_KEY
(`callback_token`), compared in constant time. The gateway name and token travel as query
parameters, not path segments, because every path kwarg of this project names an object
(`<model>_id`). An optional network allow-list (`IMALI_CALLBACK_ALLOWED_NETWORKS`, CIDRs) adds a
source check where the provider publishes its addresses.

Idempotent: a report is stored once per (gateway, message id) and applied once
(`receipts_record`, then `receipts_apply_pending` for that one receipt: concurrent callbacks lock
only their own rows; a report that overtook its message waits for the dispatcher's pass); an
incoming message once per provider id (`inbound_receive`). A repeated callback answers 200 and changes nothing. Statuses that are not
final yet ("Sent", "SENT_TO_SUPPLIER") are acknowledged and dropped: only a final state is a receipt.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from imali.messaging.adapters.africastalking import (
    at_delivery_receipt,
    at_inbound_message,
    callback_token,
)
from imali.messaging.adapters.base import MobileOriginated, Receipt
from imali.messaging.adapters.clickatell import (
    clickatell_delivery_receipt,
    clickatell_inbound_message,
)
from imali.messaging.dispatch import receipts_apply_pending, receipts_record
from imali.messaging.inbound import inbound_receive
from imali.messaging.models import Gateway

log = logging.getLogger("imali.api.callbacks")

REFUSED = "Unknown gateway or wrong token."


def _allowed_source(request: HttpRequest) -> bool:
    networks = getattr(settings, "IMALI_CALLBACK_ALLOWED_NETWORKS", ()) or ()
    if not networks:
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n, strict=False) for n in networks)


def _authenticated_gateway(request: HttpRequest) -> str | None:
    name = request.GET.get("gateway", "")
    token = request.GET.get("token", "")
    # The comparison runs whether or not the gateway exists, so timing tells nothing about names.
    matches = hmac.compare_digest(token.encode(), callback_token(name).encode())
    if not (name and matches and _allowed_source(request)):
        return None
    return name if Gateway.objects.filter(name=name).exists() else None


def _e164(number: str) -> str:
    number = number.strip()
    return number if number.startswith("+") else f"+{number}"


def _form(request: HttpRequest) -> dict:
    return {k: v for k, v in request.POST.items()}


def _json(request: HttpRequest) -> dict:
    try:
        data = json.loads(request.body.decode("utf-8") or "{}")
    except (ValueError, UnicodeDecodeError):
        raise _BadRequest("body", "The body is not JSON.") from None
    if not isinstance(data, dict):
        raise _BadRequest("body", "The body must be a JSON object.")
    return data


class _BadRequest(Exception):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field, self.message = field, message


def _require(fields: dict, *names: str) -> None:
    for name in names:
        if fields.get(name) in (None, ""):
            raise _BadRequest(name, f"The field '{name}' is required.")


def _callback(read: Callable[[HttpRequest], dict], required: tuple[str, ...],
              convert: Callable[[str, dict], Receipt | MobileOriginated | None]):
    @csrf_exempt
    @require_POST
    def view(request: HttpRequest) -> JsonResponse:
        gateway = _authenticated_gateway(request)
        if gateway is None:
            return JsonResponse({"detail": REFUSED}, status=403)
        try:
            fields = read(request)
            _require(fields, *required)
            event = convert(gateway, fields)
        except _BadRequest as exc:
            return JsonResponse({exc.field: [exc.message]}, status=400)
        except (KeyError, TypeError, ValueError) as exc:
            return JsonResponse({"body": [f"Unreadable callback: {exc}"]}, status=400)
        if event is None:
            return JsonResponse({"status": "acknowledged"})
        if isinstance(event, Receipt):
            receipts_record([event])
            receipts_apply_pending(only=event)
            return JsonResponse({"status": "recorded"})
        _, created = inbound_receive(gateway=event.gateway, provider_id=event.provider_id, number=event.number,
                                     to_address=event.to_address, text=event.text)
        return JsonResponse({"status": "stored" if created else "already stored"})

    return view


at_delivery = _callback(_form, ("id", "status"), at_delivery_receipt)
at_inbound = _callback(_form, ("id", "from"), lambda g, f: at_inbound_message(g, f, _e164))
clickatell_status = _callback(_json, ("messageId", "statusCode"), clickatell_delivery_receipt)
clickatell_inbound = _callback(_json, ("messageId", "fromNumber"), lambda g, f: clickatell_inbound_message(g, f, _e164))

CALLBACK_PATHS = {
    ("africastalking", "delivery"): "callbacks/africastalking/delivery/",
    ("africastalking", "inbound"): "callbacks/africastalking/inbound/",
    ("clickatell", "delivery"): "callbacks/clickatell/status/",
    ("clickatell", "inbound"): "callbacks/clickatell/inbound/",
}

urlpatterns = [
    path(CALLBACK_PATHS[("africastalking", "delivery")], at_delivery, name="callback-africastalking-delivery"),
    path(CALLBACK_PATHS[("africastalking", "inbound")], at_inbound, name="callback-africastalking-inbound"),
    path(CALLBACK_PATHS[("clickatell", "delivery")], clickatell_status, name="callback-clickatell-status"),
    path(CALLBACK_PATHS[("clickatell", "inbound")], clickatell_inbound, name="callback-clickatell-inbound"),
]


def callback_url(*, base_url: str, kind: str, event: str, gateway_name: str) -> str:
    """The URL to enter on the provider's account for one gateway: `event` is "delivery" or "inbound"."""
    from urllib.parse import urlencode

    query = urlencode({"gateway": gateway_name, "token": callback_token(gateway_name)})
    return f"{base_url.rstrip('/')}/api/{CALLBACK_PATHS[(kind, event)]}?{query}"
