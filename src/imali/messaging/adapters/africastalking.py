"""Africa's Talking SMS over its HTTP API, and the HTTP plumbing every aggregator adapter shares.

Africa's Talking (https://developers.africastalking.com/docs/sms/sending):
  POST {base}/version1/messaging, form-encoded: username, to (comma-separated E.164), message,
  from (sender id or short code, optional), bulkSMSMode=1. Header `apiKey`, `Accept: application/json`.
  Answer (201): {"SMSMessageData": {"Message": "Sent to 1/1 Total Cost: ...",
  "Recipients": [{"statusCode": 101, "number": "+27...", "status": "Success", "cost": "ZAR 0.2500",
  "messageId": "ATXid_..."}]}}. Per-recipient statusCode: 100 Processed, 101 Sent, 102 Queued are
  accepted; 401-409 refused for that number; 500-502 the gateway's fault (try again).
Delivery reports and incoming messages arrive as form POSTs to callback URLs set on the account
(handled by imali.api.endpoints.callbacks). Incoming messages can also be fetched:
  GET {base}/version1/messaging?username=&lastReceivedId=N → {"SMSMessageData": {"Messages":
  [{"linkId", "text", "to", "id", "date", "from"}]}}, the messages after id N — the daily "Get SMS
  Responses" run, or a poll every `poll_inbound_seconds` through drain_events. A message seen by
  both paths is stored once (inbound is idempotent on the provider id).

One request carries one text to many numbers, so messages with the same text (a bulk run without
personal fields) go out together, up to `recipients_per_request` at a time.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.conf import settings
from django.utils.crypto import salted_hmac

from .base import MobileOriginated, Outcome, Receipt, Submission, SubmitResult, drain_queue

log = logging.getLogger("imali.messaging.http")


# ---------------------------------------------------------------------------------------------
# Shared by the HTTP aggregator adapters


def callback_token(gateway_name: str) -> str:
    """The secret a gateway's callback URLs carry. Neither Africa's Talking nor Clickatell signs
    its callbacks, so the URL itself is the credential: derived from SECRET_KEY per gateway, so
    nothing has to be stored, and a new SECRET_KEY (or a renamed gateway) retires it."""
    return salted_hmac("imali.messaging.callbacks", gateway_name, secret=settings.SECRET_KEY, algorithm="sha256").hexdigest()[:40]


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self):
        return json.loads(self.body.decode("utf-8") or "null")


class GatewayUnavailable(Exception):
    """No answer from the gateway: refused, reset, timed out."""


class DestinationRefused(GatewayUnavailable):
    """The gateway's address is not one this system may connect to (the guard said why): nothing
    was sent; the gateway pauses like one that cannot be reached, and the route fails over."""


class HttpPool:
    """Kept-alive HTTP(S) connections to one base URL, one per concurrent request. `guard`, when
    given, is asked before each new connection and answers why not (core/destination.py), or None."""

    def __init__(self, base_url: str, *, timeout: float, size: int, guard: Callable[[], str | None] | None = None):
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http(s) URL, not {base_url!r}")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self._idle: queue.LifoQueue[http.client.HTTPConnection] = queue.LifoQueue(maxsize=size)
        self.opened = 0  # connections made, to show reuse
        self.guard = guard

    def _connect(self) -> http.client.HTTPConnection:
        problem = self.guard() if self.guard is not None else None
        if problem:
            log.warning("HTTP gateway %s: not connecting: %s", self.host, problem)
            raise DestinationRefused(f"destination refused: {problem}")
        self.opened += 1
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout)

    def request(self, method: str, path: str, *, body: bytes, headers: dict[str, str]) -> HttpAnswer:
        try:
            conn = self._idle.get_nowait()
            reused = True
        except queue.Empty:
            conn, reused = self._connect(), False
        try:
            answer = self._exchange(conn, method, path, body, headers)
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine, BrokenPipeError) as exc:
            conn.close()
            if not reused:
                raise GatewayUnavailable(str(exc) or exc.__class__.__name__) from exc
            # A kept-alive connection the server had closed meanwhile: one fresh try.
            conn = self._connect()
            try:
                answer = self._exchange(conn, method, path, body, headers)
            except (OSError, http.client.HTTPException) as exc2:
                conn.close()
                raise GatewayUnavailable(str(exc2) or exc2.__class__.__name__) from exc2
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise GatewayUnavailable(str(exc) or exc.__class__.__name__) from exc
        if answer.headers.get("connection", "").lower() == "close":
            conn.close()
        else:
            try:
                self._idle.put_nowait(conn)
            except queue.Full:
                conn.close()
        return answer

    def _exchange(self, conn, method, path, body, headers) -> HttpAnswer:
        conn.request(method, self.prefix + path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return HttpAnswer(resp.status, data, {k.lower(): v for k, v in resp.getheaders()})

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return


class TokenBucket:
    """At most `rate` requests a second (thread-safe), in bursts of up to a tenth of a second."""

    def __init__(self, rate: float):
        self.rate = max(float(rate), 0.1)
        self.capacity = max(self.rate / 10, 1.0)
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                wait = (1 - self.tokens) / self.rate
            time.sleep(wait)


class HttpAggregatorTransport(ABC):
    """The Transport protocol over an HTTP aggregator: a window of concurrent requests on kept-alive
    connections, a rate limit, and a pause after the gateway answers 429 or cannot be reached
    (`is_up` is false meanwhile, so the dispatcher fails over to the next gateway of the route).

    Subclasses say how a group of submissions becomes a request and how the answer maps back."""

    kind = ""
    path = "/"

    def __init__(self, *, name: str, base_url: str, api_key: str, sender: str = "", window: int = 10,
                 rate_per_second: float = 20.0, timeout: float = 15.0, pause_max: float = 60.0,
                 guard: Callable[[], str | None] | None = None):
        self.name = name
        self.base_url = base_url
        self.api_key = api_key
        self.sender = sender
        self.window = max(int(window), 1)
        self.pool = HttpPool(base_url, timeout=timeout, size=self.window, guard=guard)
        self.limiter = TokenBucket(rate_per_second)
        self.pause_max = pause_max
        self._paused_until = 0.0
        self._failures = 0
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=self.window, thread_name_prefix=f"http-{name}")
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.requests = 0

    # -- health -------------------------------------------------------------------------------
    @property
    def is_up(self) -> bool:
        return time.monotonic() >= self._paused_until

    def wait_bound(self, timeout: float) -> bool:
        """There is no session to open over HTTP: up unless paused (same call as the SMPP transport)."""
        return self.is_up

    def _pause(self, seconds: float | None = None) -> float:
        with self._lock:
            self._failures += 1
            if seconds is None:
                seconds = min(0.5 * 2 ** (self._failures - 1), self.pause_max)
            self._paused_until = max(self._paused_until, time.monotonic() + min(seconds, self.pause_max))
            return seconds

    def _healthy(self) -> None:
        with self._lock:
            self._failures = 0

    # -- sending ------------------------------------------------------------------------------
    @abstractmethod
    def groups(self, items: list[Submission]) -> Iterable[list[Submission]]:
        """Split a batch into the submissions one request carries."""

    @abstractmethod
    def headers(self) -> dict[str, str]:
        """Request headers, credentials included."""

    @abstractmethod
    def encode(self, group: list[Submission]) -> bytes:
        """The request body for one group."""

    @abstractmethod
    def decode(self, group: list[Submission], answer: HttpAnswer) -> list[SubmitResult]:
        """One result per submission of the group from a non-429, non-5xx answer."""

    def submit_batch(self, items: list[Submission], timeout: float = 60.0) -> list[SubmitResult]:
        if not items:
            return []
        if not self.is_up:
            return [SubmitResult(i.outbox_id, Outcome.RETRY, error=f"gateway {self.name} is paused after errors") for i in items]
        futures = [(group, self._executor.submit(self._send_guarded, group)) for group in self.groups(items)]
        results: list[SubmitResult] = []
        deadline = time.monotonic() + timeout
        for group, future in futures:
            try:
                results.extend(future.result(max(deadline - time.monotonic(), 0.01)))
            except Exception as exc:  # timed out waiting: the gateway may or may not have them
                results.extend(SubmitResult(s.outbox_id, Outcome.RETRY, error=f"gateway {self.name}: {exc or 'timed out'}"[:200])
                               for s in group)
        return results

    def _send_guarded(self, group: list[Submission]) -> list[SubmitResult]:
        if not self.is_up:
            return [SubmitResult(s.outbox_id, Outcome.RETRY, error=f"gateway {self.name} is paused after errors") for s in group]
        self.limiter.acquire()
        self.requests += 1
        try:
            answer = self.pool.request("POST", self.path, body=self.encode(group), headers=self.headers())
        except GatewayUnavailable as exc:
            self._pause()
            return [SubmitResult(s.outbox_id, Outcome.RETRY, error=f"gateway {self.name} unreachable: {exc}"[:200]) for s in group]
        if answer.status == 429:
            waited = self._pause(_retry_after(answer.headers.get("retry-after")))
            return [SubmitResult(s.outbox_id, Outcome.RETRY, error=f"rate limited by {self.name} (HTTP 429), pausing {waited:.1f}s")
                    for s in group]
        if answer.status >= 500:
            self._pause()
            return [SubmitResult(s.outbox_id, Outcome.RETRY, error=f"{self.name} answered HTTP {answer.status}") for s in group]
        self._healthy()
        return self.decode(group, answer)

    def drain_events(self, limit: int = 10000) -> list[Receipt | MobileOriginated]:
        """Receipts and replies reach Imali by callback; whatever a subclass fetches itself
        (a poll of inbound messages) is queued here."""
        return drain_queue(self.events, limit)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self.pool.close()


def _retry_after(value: str | None) -> float | None:
    try:
        return max(float(value), 0.0) if value else None
    except ValueError:
        return None


def _refused_for_all(group: list[Submission], answer: HttpAnswer, reason: str) -> list[SubmitResult]:
    return [SubmitResult(s.outbox_id, Outcome.PERMANENT, error=reason[:200]) for s in group]


def _body_text(answer: HttpAnswer, limit: int = 120) -> str:
    return answer.body.decode("utf-8", errors="replace").strip()[:limit]


# ---------------------------------------------------------------------------------------------
# Africa's Talking

AT_ACCEPTED = {100: "Processed", 101: "Sent", 102: "Queued"}
AT_REFUSED = {
    401: "RiskHold", 402: "InvalidSenderId", 403: "InvalidPhoneNumber", 404: "UnsupportedNumberType",
    405: "InsufficientBalance", 406: "UserInBlacklist", 407: "CouldNotRoute", 409: "DoNotDisturbRejection",
}
AT_TRANSIENT = {500: "InternalServerError", 501: "GatewayError", 502: "RejectedByGateway"}
# An account without balance will take the message once topped up: worth retrying until max age.
AT_RETRY_CODES = frozenset({405}) | frozenset(AT_TRANSIENT)

# Delivery-report statuses: the final ones become receipts, the rest say "on its way".
AT_FINAL_STATES = {"Success": "DELIVRD", "Failed": "UNDELIV", "Rejected": "REJECTD", "AbsentSubscriber": "UNDELIV",
                   "Expired": "EXPIRED"}
AT_INTERMEDIATE_STATES = frozenset({"Sent", "Submitted", "Buffered"})
# failureReason values, shortened to fit the receipt's error code.
AT_FAILURE_CODES = {
    "InsufficientCredit": "NOCREDIT", "InvalidLinkId": "LINKID", "UserIsInactive": "INACTIVE",
    "UserInBlackList": "BLACKLIST", "UserAccountSuspended": "SUSPENDED", "NotNetworkSubscriber": "NOTSUBSCR",
    "UserNotSubscribedToProduct": "NOTSUBSCR", "UserDoesNotExist": "NOUSER", "DeliveryFailure": "DLVFAIL",
    "DoNotDisturbRejection": "DND", "AbsentSubscriber": "ABSENT",
}


class AfricasTalkingTransport(HttpAggregatorTransport):
    kind = "africastalking"
    path = "/version1/messaging"

    def __init__(self, *, username: str, recipients_per_request: int = 100, poll_inbound_seconds: float | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.username = username
        self.recipients_per_request = max(int(recipients_per_request), 1)
        self.poll_inbound_seconds = poll_inbound_seconds
        self.last_received_id = 0
        self._next_poll = 0.0

    def fetch_inbound(self, last_received_id: int | None = None) -> list[MobileOriginated]:
        """Incoming messages after `last_received_id` (default: the last one this transport saw),
        all pages. Raises GatewayUnavailable when the gateway cannot be reached."""
        after = self.last_received_id if last_received_id is None else last_received_id
        out: list[MobileOriginated] = []
        while True:
            query = urllib.parse.urlencode({"username": self.username, "lastReceivedId": str(after)})
            self.limiter.acquire()
            answer = self.pool.request("GET", f"{self.path}?{query}", body=b"",
                                       headers={"apiKey": self.api_key, "Accept": "application/json"})
            if answer.status != 200:
                raise GatewayUnavailable(f"{self.name} answered HTTP {answer.status} to the inbound fetch: {_body_text(answer)}")
            messages = answer.json()["SMSMessageData"]["Messages"]
            if not messages:
                break
            for m in messages:
                out.append(MobileOriginated(self.name, str(m["id"]), _plus(str(m["from"])), str(m.get("to", "")),
                                            str(m.get("text", ""))))
                after = max(after, int(m["id"]))
        self.last_received_id = after
        return out

    def drain_events(self, limit: int = 10000) -> list[Receipt | MobileOriginated]:
        if self.poll_inbound_seconds is not None and time.monotonic() >= self._next_poll:
            self._next_poll = time.monotonic() + self.poll_inbound_seconds
            try:
                for event in self.fetch_inbound():
                    self.events.put(event)
            except (GatewayUnavailable, ValueError, KeyError) as exc:
                log.info("%s: inbound fetch failed: %s", self.name, exc)
        return super().drain_events(limit)

    def groups(self, items: list[Submission]) -> Iterable[list[Submission]]:
        by_text: dict[tuple[str, str], list[Submission]] = defaultdict(list)
        for item in items:
            by_text[(item.text, item.source_addr or self.sender)].append(item)
        for group in by_text.values():
            # A number twice in one request would get one messageId for two outbox rows.
            seen: set[str] = set()
            batch: list[Submission] = []
            for item in group:
                if item.number in seen or len(batch) >= self.recipients_per_request:
                    yield batch
                    batch, seen = [], set()
                batch.append(item)
                seen.add(item.number)
            if batch:
                yield batch

    def headers(self) -> dict[str, str]:
        return {"apiKey": self.api_key, "Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}

    def encode(self, group: list[Submission]) -> bytes:
        fields = {"username": self.username, "to": ",".join(s.number for s in group), "message": group[0].text,
                  "bulkSMSMode": "1"}
        sender = group[0].source_addr or self.sender
        if sender:
            fields["from"] = sender
        return urllib.parse.urlencode(fields).encode()

    def decode(self, group: list[Submission], answer: HttpAnswer) -> list[SubmitResult]:
        if answer.status in (401, 403):
            return _refused_for_all(group, answer, f"{self.name} refused the API key or username (HTTP {answer.status}): "
                                                   f"{_body_text(answer)}")
        if answer.status >= 400:
            return _refused_for_all(group, answer, f"{self.name} refused the request (HTTP {answer.status}): {_body_text(answer)}")
        try:
            recipients = answer.json()["SMSMessageData"]["Recipients"]
        except (ValueError, KeyError, TypeError):
            # A success status with a body we cannot read (a proxy's page): sent again later; a
            # possible duplicate costs less than a lost OTP.
            return [SubmitResult(s.outbox_id, Outcome.RETRY, error=f"{self.name}: unreadable answer {_body_text(answer, 60)!r}")
                    for s in group]
        by_number = {}
        for r in recipients:
            by_number.setdefault(str(r.get("number", "")), r)
        results = []
        for s in group:
            r = by_number.get(s.number)
            if r is None:
                results.append(SubmitResult(s.outbox_id, Outcome.PERMANENT,
                                            error=f"{self.name} did not list {s.number} in its answer (not a valid number)"))
                continue
            code = int(r.get("statusCode", 0) or 0)
            status = str(r.get("status", ""))
            if code in AT_ACCEPTED and r.get("messageId"):
                results.append(SubmitResult(s.outbox_id, Outcome.SUBMITTED, provider_message_id=str(r["messageId"]),
                                            parts_submitted=1))
            elif code in AT_RETRY_CODES:
                results.append(SubmitResult(s.outbox_id, Outcome.RETRY, error=f"{self.name}: {status or AT_TRANSIENT.get(code)} ({code})"))
            else:
                name = AT_REFUSED.get(code, status or "refused")
                results.append(SubmitResult(s.outbox_id, Outcome.PERMANENT, error=f"{self.name} refused {s.number}: {name} ({code})"))
        return results


def _plus(number: str) -> str:
    number = number.strip()
    return number if number.startswith("+") else f"+{number}"


def at_delivery_receipt(gateway: str, fields: dict[str, str]) -> Receipt | None:
    """A delivery-report callback as a receipt; None for a status that is not final yet."""
    status = fields.get("status", "")
    message_id = fields.get("id", "")
    if not message_id or status in AT_INTERMEDIATE_STATES or status not in AT_FINAL_STATES:
        return None
    state = AT_FINAL_STATES[status]
    reason = fields.get("failureReason", "") or ("AbsentSubscriber" if status == "AbsentSubscriber" else "")
    return Receipt(gateway, message_id, state, AT_FAILURE_CODES.get(reason, reason[:10]) if state != "DELIVRD" else "")


def at_inbound_message(gateway: str, fields: dict[str, str], normalise: Callable[[str], str]) -> MobileOriginated:
    return MobileOriginated(gateway, fields["id"], normalise(fields["from"]), fields.get("to", ""), fields.get("text", ""))


# ---------------------------------------------------------------------------------------------
# Building a transport from a gateway's settings

HTTP_KINDS = ("africastalking", "clickatell")
# Each request carries up to 100 messages, so a few in flight reach any aggregator's rate limit;
# more threads would only queue on it.
MAX_HTTP_WINDOW = 32


@dataclass(frozen=True)
class HttpGatewaySettings:
    """What an HTTP gateway row needs to hold (the Gateway model's fields, by the same names)."""

    name: str
    kind: str
    base_url: str
    api_key: str
    account: str = ""  # Africa's Talking username
    source_addr: str = ""
    window: int = 10
    rate_per_second: int = 20


def http_transport_for(gateway, *, guard: Callable[[], str | None] | None = None) -> HttpAggregatorTransport:
    """The transport for a gateway whose `kind` is one of HTTP_KINDS (a Gateway row or HttpGatewaySettings);
    `guard` is asked before each connection (see HttpPool)."""
    from .clickatell import ClickatellTransport

    common = {"name": gateway.name, "base_url": gateway.base_url, "api_key": gateway.api_key,
              "sender": gateway.source_addr, "window": min(max(gateway.window, 1), MAX_HTTP_WINDOW),
              "rate_per_second": gateway.rate_per_second, "guard": guard}
    if gateway.kind == "africastalking":
        return AfricasTalkingTransport(username=gateway.account, **common)
    if gateway.kind == "clickatell":
        return ClickatellTransport(**common)
    raise ValueError(f"Gateway {gateway.name}: '{gateway.kind}' is not an HTTP aggregator ({', '.join(HTTP_KINDS)}).")
