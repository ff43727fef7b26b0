"""Clickatell SMS over its Platform "One API" (https://docs.clickatell.com/channels/one-api/).

  POST {base}/v1/message with header `Authorization: <API key>` and a JSON body
  {"messages": [{"channel": "sms", "to": "27820000001", "content": "...", "from": "..."?,
  "clientMessageId": "..."}]}. Answer 202: {"messages": [{"apiMessageId": "...", "accepted": true,
  "to": "...", "clientMessageId": "..."}], "error": null}; a message it will not take has
  "accepted": false and an "error" {"code", "description"}; a request it will not take at all has
  a top-level "error" and a 4xx status.
Status callbacks (JSON POST to the URL set on the integration): integrationName, messageId,
clientMessageId, to, from, statusCode, status, statusDescription, timestamp. Status codes: 1-4 on
the way (UNKNOWN, QUEUED, SCHEDULED, SENT_TO_SUPPLIER), 5 DEVICE_ACK and 6 READ delivered,
20 and up errors (20 EXPIRED, 23 DELIVERY_FAILURE, 29 RECIPIENT_DOES_NOT_EXIST, 100 ROUTING_ERROR...).
Replies (JSON POST): integrationName, messageId, fromNumber, toNumber, timestamp, text, charset.

Each message carries its own content, so a request holds up to `messages_per_request` of them,
personalised or not; `clientMessageId` is our outbox id, which maps the answer back exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from .africastalking import HttpAggregatorTransport, HttpAnswer, _body_text, _refused_for_all
from .base import MobileOriginated, Outcome, Receipt, Submission, SubmitResult

# Per-message error codes that are worth another try later; the rest are permanent.
CLICKATELL_RETRY_CODES = frozenset({"25", "26", "27", "28"})  # balance and volume limits: fine again later

CLICKATELL_DELIVERED = {5: "DEVICE_ACK", 6: "READ"}
CLICKATELL_PENDING = {1: "UNKNOWN", 2: "QUEUED", 3: "SCHEDULED", 4: "SENT_TO_SUPPLIER"}
CLICKATELL_FINAL_STATES = {20: "EXPIRED", 21: "DELETED", 22: "DELETED", 23: "UNDELIV", 29: "UNDELIV", 100: "UNDELIV"}


class ClickatellTransport(HttpAggregatorTransport):
    kind = "clickatell"
    path = "/v1/message"

    def __init__(self, *, messages_per_request: int = 100, **kwargs):
        super().__init__(**kwargs)
        self.messages_per_request = max(int(messages_per_request), 1)

    def groups(self, items: list[Submission]) -> Iterable[list[Submission]]:
        size = self.messages_per_request
        for start in range(0, len(items), size):
            yield items[start:start + size]

    def headers(self) -> dict[str, str]:
        return {"Authorization": self.api_key, "Accept": "application/json", "Content-Type": "application/json"}

    def encode(self, group: list[Submission]) -> bytes:
        messages = []
        for s in group:
            message = {"channel": "sms", "to": s.number.lstrip("+"), "content": s.text, "clientMessageId": str(s.outbox_id)}
            sender = s.source_addr or self.sender
            if sender:
                message["from"] = sender
            messages.append(message)
        return json.dumps({"messages": messages}).encode()

    def decode(self, group: list[Submission], answer: HttpAnswer) -> list[SubmitResult]:
        try:
            body = answer.json() or {}
        except ValueError:
            body = {}
        top_error = body.get("error") if isinstance(body, dict) else None
        if answer.status >= 400 or (top_error and not body.get("messages")):
            description = _describe(top_error) or _body_text(answer)
            what = "the API key" if answer.status in (401, 403) else "the request"
            return _refused_for_all(group, answer, f"{self.name} refused {what} (HTTP {answer.status}): {description}")
        by_client_id = {}
        for m in body.get("messages") or []:
            by_client_id[str(m.get("clientMessageId", ""))] = m
        results = []
        for s in group:
            m = by_client_id.get(str(s.outbox_id))
            if m is None:
                results.append(SubmitResult(s.outbox_id, Outcome.RETRY, error=f"{self.name} did not answer for this message"))
            elif m.get("accepted") and m.get("apiMessageId"):
                results.append(SubmitResult(s.outbox_id, Outcome.SUBMITTED, provider_message_id=str(m["apiMessageId"]),
                                            parts_submitted=1))
            else:
                error = m.get("error") or {}
                code = str(error.get("code", "")) if isinstance(error, dict) else ""
                outcome = Outcome.RETRY if code in CLICKATELL_RETRY_CODES else Outcome.PERMANENT
                results.append(SubmitResult(s.outbox_id, outcome,
                                            error=f"{self.name} refused {s.number}: {_describe(error) or 'not accepted'}"[:200]))
        return results


def _describe(error) -> str:
    if not error:
        return ""
    if isinstance(error, dict):
        parts = [str(error.get("description", "")).strip(), f"code {error['code']}" if error.get("code") else ""]
        return ", ".join(p for p in parts if p)
    return str(error)


def clickatell_delivery_receipt(gateway: str, fields: dict) -> Receipt | None:
    """A status callback as a receipt; None while the message is still on its way."""
    message_id = str(fields.get("messageId", "") or "")
    try:
        code = int(fields.get("statusCode"))
    except (TypeError, ValueError):
        return None
    if not message_id or code in CLICKATELL_PENDING:
        return None
    if code in CLICKATELL_DELIVERED:
        return Receipt(gateway, message_id, "DELIVRD")
    state = CLICKATELL_FINAL_STATES.get(code, "REJECTD")
    return Receipt(gateway, message_id, state, str(code))


def clickatell_inbound_message(gateway: str, fields: dict, normalise: Callable[[str], str]) -> MobileOriginated:
    return MobileOriginated(gateway, str(fields["messageId"]), normalise(str(fields["fromNumber"])),
                            str(fields.get("toNumber", "")), str(fields.get("text", "")))
