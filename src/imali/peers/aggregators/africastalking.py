"""A local Africa's Talking: POST /version1/messaging as the real service answers it, delivery
reports and incoming messages POSTed form-encoded to the callback URLs."""

from __future__ import annotations

import secrets
import urllib.parse
from http.server import BaseHTTPRequestHandler

import phonenumbers

from .base import AggregatorPeer

COST = "ZAR 0.2500"


class AfricasTalkingPeer(AggregatorPeer):
    kind = "africastalking"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.inbox: list[dict[str, str]] = []  # incoming messages, for the fetch API

    def _authenticated(self, handler: BaseHTTPRequestHandler, username: str | None) -> bool:
        if handler.headers.get("apiKey") == self.config.api_key and username == self.config.username:
            return True
        self.stats["refused_auth"] += 1
        self.reply(handler, 401, "The supplied authentication is invalid")
        return False

    def handle_get(self, handler: BaseHTTPRequestHandler, path: str, query: str) -> None:
        """Fetch messages: GET /version1/messaging?username=&lastReceivedId= lists the incoming
        messages after that id, oldest first."""
        if path != "/version1/messaging":
            return self.reply(handler, 404, {"error": "Not found"})
        params = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
        if not self._authenticated(handler, params.get("username")):
            return
        try:
            after = int(params.get("lastReceivedId", "0") or 0)
        except ValueError:
            return self.reply(handler, 400, "lastReceivedId must be a number")
        with self.lock:
            messages = [m for m in self.inbox if int(m["id"]) > after]
        self.reply(handler, 200, {"SMSMessageData": {"Messages": messages}})

    def handle_post(self, handler: BaseHTTPRequestHandler, path: str, body: bytes) -> None:
        if path != "/version1/messaging":
            return self.reply(handler, 404, {"error": "Not found"})
        fields = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True).items()}
        if not self._authenticated(handler, fields.get("username")):
            return
        missing = [name for name in ("to", "message") if not fields.get(name)]
        if missing:
            self.stats["refused_request"] += 1
            return self.reply(handler, 400, f"Request is missing required form field '{missing[0]}'")
        sender = fields.get("from", "")
        text = fields["message"]
        recipients, sent = [], 0
        for raw in fields["to"].split(","):
            number = raw.strip()
            if not _valid(number) or self.invalid_number(number):
                recipients.append({"statusCode": 403, "number": number, "status": "InvalidPhoneNumber", "cost": "0",
                                   "messageId": "None"})
                self.stats["refused_number"] += 1
                continue
            message_id = f"ATXid_{secrets.token_hex(16)}"
            self.record(number, sender, text, message_id)
            recipients.append({"statusCode": 101, "number": number, "status": "Success", "cost": COST, "messageId": message_id})
            sent += 1
            self._report(message_id, number)
        summary = f"Sent to {sent}/{len(recipients)} Total Cost: {COST if sent else '0'}"
        self.reply(handler, 201, {"SMSMessageData": {"Message": summary, "Recipients": recipients}})

    def _report(self, message_id: str, number: str) -> None:
        if self.delivered_this_time():
            report = {"id": message_id, "status": "Success", "phoneNumber": number, "networkCode": "65501", "retryCount": "0"}
        else:
            report = {"id": message_id, "status": "Failed", "phoneNumber": number, "networkCode": "65501",
                      "failureReason": "DeliveryFailure", "retryCount": "0"}
        with self.lock:
            self.by_id[message_id].status = report["status"]
        # "Sent" first, as the real service reports progress before the final state.
        interim = {"id": message_id, "status": "Sent", "phoneNumber": number, "networkCode": "65501", "retryCount": "0"}
        self.schedule(self.config.delivery_callback, urllib.parse.urlencode(interim).encode(),
                      "application/x-www-form-urlencoded")
        self.schedule(self.config.delivery_callback, urllib.parse.urlencode(report).encode(),
                      "application/x-www-form-urlencoded", repeats=self.config.callback_repeats)

    def inject_inbound(self, *, number: str, text: str, to: str = "40123", repeats: int = 1) -> str:
        """A phone sends `text` to our short code; returns the message id the callback carries."""
        message_id = str(next(self.ids))
        fields = {"date": _now_text(), "from": number, "id": message_id, "linkId": secrets.token_hex(8), "text": text,
                  "to": to, "networkCode": "65501"}
        with self.lock:
            self.inbox.append({k: fields[k] for k in ("linkId", "text", "to", "id", "date", "from")})
        self.stats["inbound"] += 1
        self.schedule(self.config.inbound_callback, urllib.parse.urlencode(fields).encode(),
                      "application/x-www-form-urlencoded", repeats=repeats)
        return message_id


def _valid(number: str) -> bool:
    if not number.startswith("+"):
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(number, None))
    except phonenumbers.NumberParseException:
        return False


def _now_text() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
