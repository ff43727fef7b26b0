"""A local Clickatell One API: POST /v1/message with an Authorization header and a JSON body,
status callbacks and replies POSTed as JSON to the callback URLs."""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from http.server import BaseHTTPRequestHandler

import phonenumbers

from .base import AggregatorPeer

MAX_MESSAGES = 100


class ClickatellPeer(AggregatorPeer):
    kind = "clickatell"

    def handle_post(self, handler: BaseHTTPRequestHandler, path: str, body: bytes) -> None:
        if path != "/v1/message":
            return self.reply(handler, 404, {"messages": [], "error": {"code": "404", "description": "Not found"}})
        if handler.headers.get("Authorization") != self.config.api_key:
            self.stats["refused_auth"] += 1
            return self.reply(handler, 401, {"messages": [], "error": {"code": "001", "description": "Invalid or missing API key"}})
        try:
            messages = json.loads(body.decode("utf-8"))["messages"]
            if not isinstance(messages, list) or not messages:
                raise ValueError
        except (ValueError, KeyError, TypeError):
            self.stats["refused_request"] += 1
            return self.reply(handler, 400, {"messages": [], "error": {"code": "101", "description": "Invalid or missing parameter: messages"}})
        if len(messages) > MAX_MESSAGES:
            return self.reply(handler, 400, {"messages": [], "error": {"code": "102",
                                                                       "description": f"At most {MAX_MESSAGES} messages per request"}})
        answers = []
        for m in messages:
            to = str(m.get("to", "")) if isinstance(m, dict) else ""
            client_id = m.get("clientMessageId") if isinstance(m, dict) else None
            problem = None
            if not isinstance(m, dict) or m.get("channel") != "sms":
                problem = {"code": "105", "description": "Invalid or missing parameter: channel"}
            elif not m.get("content"):
                problem = {"code": "106", "description": "Invalid or missing parameter: content"}
            elif not _valid(to) or self.invalid_number("+" + to.lstrip("+")):
                problem = {"code": "107", "description": "Invalid destination address"}
            if problem:
                self.stats["refused_number"] += 1
                answers.append({"apiMessageId": None, "accepted": False, "to": to, "clientMessageId": client_id, "error": problem})
                continue
            message_id = secrets.token_hex(16)
            number = "+" + to.lstrip("+")
            self.record(number, str(m.get("from", "")), m["content"], message_id)
            answers.append({"apiMessageId": message_id, "accepted": True, "to": to, "clientMessageId": client_id, "error": None})
            self._report(message_id, to, client_id)
        self.reply(handler, 202, {"messages": answers, "error": None})

    def _report(self, message_id: str, to: str, client_id) -> None:
        delivered = self.delivered_this_time()
        code, status, description = (5, "DEVICE_ACK", "Device acknowledged delivery") if delivered else \
            (23, "DELIVERY_FAILURE", "Error delivering message")
        with self.lock:
            self.by_id[message_id].status = status
        for step_code, step, step_description in ((4, "SENT_TO_SUPPLIER", "Sent to supplier"), (code, status, description)):
            report = {"integrationName": "imali", "messageId": message_id, "requestId": message_id, "clientMessageId": client_id,
                      "to": to, "from": "", "statusCode": step_code, "status": step, "statusDescription": step_description,
                      "timestamp": int(time.time() * 1000)}
            self.schedule(self.config.delivery_callback, json.dumps(report).encode(), "application/json",
                          repeats=self.config.callback_repeats if step_code == code else 1)

    def inject_inbound(self, *, number: str, text: str, to: str = "27600000000", repeats: int = 1) -> str:
        message_id = secrets.token_hex(16)
        reply = {"integrationName": "imali", "messageId": message_id, "fromNumber": number.lstrip("+"), "toNumber": to,
                 "timestamp": int(dt.datetime.now(dt.UTC).timestamp() * 1000), "text": text, "charset": "UTF-8"}
        self.stats["inbound"] += 1
        self.schedule(self.config.inbound_callback, json.dumps(reply).encode(), "application/json", repeats=repeats)
        return message_id


def _valid(to: str) -> bool:
    digits = to.lstrip("+")
    if not digits.isdigit():
        return False
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse("+" + digits, None))
    except phonenumbers.NumberParseException:
        return False
