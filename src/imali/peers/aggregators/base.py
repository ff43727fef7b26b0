"""What the local aggregator peers share: a threaded HTTP server on loopback, a rate limit that
answers 429, outages, a record of what each number received, and a worker that POSTs delivery
reports and injected replies to the configured callback URLs after a delay (repeating them on
request, as real aggregators do when an answer is slow)."""

from __future__ import annotations

import datetime as dt
import heapq
import html
import itertools
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from imali.core.logging import redact_secrets

log = logging.getLogger("imali.peers.aggregators")

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass
class AggregatorConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: an ephemeral port, read back from `peer.port`
    username: str = "imali"
    api_key: str = "local-api-key"
    delivery_callback: str = ""  # URL the delivery reports are POSTed to; empty: none are sent
    inbound_callback: str = ""  # URL replies are POSTed to
    callback_delay: float = 0.05
    callback_repeats: int = 1  # 2: every report is sent twice, to prove the receiver is idempotent
    failure_share: float = 0.0  # share of messages whose report says failed
    rate_per_second: float | None = None  # above this, requests are answered 429
    invalid_prefixes: tuple[str, ...] = ("+99",)  # numbers refused as invalid
    seed: int = 11


@dataclass
class Received:
    number: str
    sender: str
    text: str
    message_id: str
    received_at: dt.datetime
    status: str = "queued"


@dataclass(order=True)
class _Scheduled:
    due: float
    seq: int
    url: str = field(compare=False)
    body: bytes = field(compare=False)
    content_type: str = field(compare=False)
    attempts: int = field(default=0, compare=False)


class AggregatorPeer:
    """Subclasses implement `handle_post(handler, path, body)` for their API and the shapes of
    their callbacks."""

    kind = ""

    def __init__(self, config: AggregatorConfig | None = None):
        self.config = config or AggregatorConfig()
        if self.config.host not in LOOPBACK:
            raise ValueError("The local aggregator peers listen on loopback only.")
        self.rng = random.Random(self.config.seed)
        self.ids = itertools.count(1)
        self.phones: dict[str, list[Received]] = defaultdict(list)
        self.by_id: dict[str, Received] = {}
        self.stats: dict[str, int] = defaultdict(int)
        self.callbacks_sent: list[tuple[str, int]] = []  # (url, HTTP status) of every callback POST
        self.lock = threading.Lock()
        self._down_until = 0.0
        # The rate limit's clock. A test that must see a 429 sets one that does not depend on how
        # fast a loaded machine gets its requests out (frozen, or stepping once per request).
        self.clock = time.monotonic
        self._window_start = float("-inf")
        self._window_count = 0
        self._queue: list[_Scheduled] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._in_flight = 0
        self._held = False
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []

    # -- life cycle ---------------------------------------------------------------------------
    def start(self) -> AggregatorPeer:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the adapters reuse connections

            def log_message(self, fmt, *args):
                log.debug("%s %s", peer.kind, redact_secrets(fmt % args))

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                peer.stats["requests"] += 1
                if time.monotonic() < peer._down_until:
                    peer.stats["refused_outage"] += 1
                    return peer.reply(self, 503, {"error": "Service temporarily unavailable"})
                if peer._over_rate():
                    peer.stats["refused_429"] += 1
                    return peer.reply(self, 429, {"error": "Too many requests"}, headers={"Retry-After": "1"})
                peer.handle_post(self, self.path.split("?", 1)[0], body)

            def do_GET(self):
                if self.path.split("?", 1)[0] == "/":
                    data = peer.phone_page().encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                if self.path.split("?", 1)[0] == "/phones.json":
                    with peer.lock:
                        data = {n: [{"text": r.text, "sender": r.sender, "id": r.message_id, "status": r.status}
                                    for r in rs] for n, rs in peer.phones.items()}
                    return peer.reply(self, 200, data)
                peer.stats["requests"] += 1
                if peer._over_rate():
                    peer.stats["refused_429"] += 1
                    return peer.reply(self, 429, {"error": "Too many requests"}, headers={"Retry-After": "1"})
                path, _, query = self.path.partition("?")
                peer.handle_get(self, path, query)

        self._server = ThreadingHTTPServer((self.config.host, self.config.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        def serve() -> None:
            self._server.serve_forever(poll_interval=0.05)  # a short poll: stop() returns promptly

        for target, name in ((serve, "serve"), (self._deliver_callbacks, "callbacks")):
            thread = threading.Thread(target=target, name=f"{self.kind}-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        with self._cv:
            self._stopping = True
            self._cv.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(5)

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def outage(self, seconds: float) -> None:
        """Answer 503 to every request for `seconds`."""
        self.stats["outages"] += 1
        self._down_until = time.monotonic() + seconds

    def configure(self, **changes) -> None:
        for key, value in changes.items():
            if not hasattr(self.config, key):
                raise AttributeError(key)
            setattr(self.config, key, value)

    # -- helpers for subclasses ---------------------------------------------------------------
    def phone_page(self) -> str:
        """What each number received through this aggregator, newest first: the demo's view of a
        failover, beside the SMSC's phone page."""
        with self.lock:
            phones = {n: list(rs) for n, rs in self.phones.items()}
        sections = "".join(
            f'<section data-number="{html.escape(n)}"><h2>{html.escape(n)}</h2>' + "".join(
                f'<div><small>{r.received_at:%H:%M:%S} from {html.escape(r.sender)} · {html.escape(r.message_id)} · '
                f'{html.escape(r.status)}</small><div class="msg">{html.escape(r.text)}</div></div>' for r in reversed(rs))
            + "</section>" for n, rs in sorted(phones.items()))
        title = f"The phone — local {html.escape(self.kind)}"
        return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>'
                "body{font-family:sans-serif;max-width:48rem;margin:1rem auto;padding:0 1rem}"
                "section{border:1px solid #ccc;border-radius:.5rem;padding:.5rem 1rem;margin:1rem 0}"
                ".msg{white-space:pre-wrap;margin:.25rem 0} small{color:#666}</style></head><body>"
                f"<h1>{title}</h1><p>Messages this aggregator accepted, per number (JSON: /phones.json).</p>"
                f"{sections or '<p>No messages yet.</p>'}</body></html>")

    def reply(self, handler: BaseHTTPRequestHandler, status: int, payload, *, headers: dict[str, str] | None = None) -> None:
        # Africa's Talking answers some errors in plain text; everything else is JSON.
        text = isinstance(payload, str)
        data = payload.encode() if text else json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain; charset=utf-8" if text else "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _over_rate(self) -> bool:
        rate = self.config.rate_per_second
        if not rate:
            return False
        with self.lock:
            now = self.clock()
            if now - self._window_start >= 1.0:
                self._window_start, self._window_count = now, 0
            self._window_count += 1
            return self._window_count > rate

    def invalid_number(self, number: str) -> bool:
        return number.startswith(self.config.invalid_prefixes)

    def record(self, number: str, sender: str, text: str, message_id: str) -> Received:
        received = Received(number, sender, text, message_id, dt.datetime.now(dt.UTC))
        with self.lock:
            self.phones[number].append(received)
            self.by_id[message_id] = received
            self.stats["accepted"] += 1
        return received

    def delivered_this_time(self) -> bool:
        with self.lock:
            return self.rng.random() >= self.config.failure_share

    def hold_callbacks(self) -> None:
        """Keep every callback from now on until `release_callbacks` (a test that must not have
        the receiver and itself write at the same moment)."""
        with self._cv:
            self._held = True

    def release_callbacks(self) -> None:
        with self._cv:
            self._held = False
            now = time.monotonic()
            self._queue = [_Scheduled(min(item.due, now), item.seq, item.url, item.body, item.content_type, item.attempts)
                           for item in self._queue]
            heapq.heapify(self._queue)
            self._cv.notify()

    def schedule(self, url: str, body: bytes, content_type: str, *, repeats: int = 1) -> None:
        if not url:
            return
        due = float("inf") if self._held else time.monotonic() + self.config.callback_delay
        with self._cv:
            for i in range(max(repeats, 1)):
                heapq.heappush(self._queue, _Scheduled(due + i * 0.01, next(self._seq), url, body, content_type))
            self._cv.notify()

    def pending_callbacks(self) -> int:
        with self._cv:
            return len(self._queue) + self._in_flight

    def _deliver_callbacks(self) -> None:
        while True:
            with self._cv:
                while not self._stopping and (not self._queue or self._queue[0].due > time.monotonic()):
                    due = self._queue[0].due if self._queue else float("inf")
                    timeout = None if due == float("inf") else max(due - time.monotonic(), 0)
                    self._cv.wait(timeout)
                if self._stopping:
                    return
                item = heapq.heappop(self._queue)
                self._in_flight += 1
            try:
                status = self._post(item)
            finally:
                with self._cv:
                    self._in_flight -= 1
            if status is None or status >= 500:
                # The receiver is down: try again later, as the real services do, a few times.
                attempts = item.attempts + 1
                if attempts < 5:
                    retry = _Scheduled(time.monotonic() + 0.2 * attempts, next(self._seq), item.url, item.body,
                                       item.content_type, attempts)
                    with self._cv:
                        heapq.heappush(self._queue, retry)

    def _post(self, item: _Scheduled) -> int | None:
        request = urllib.request.Request(item.url, data=item.body, method="POST", headers={"Content-Type": item.content_type})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError as exc:
            # The callback URL carries the receiver's token: only its path and gateway are logged.
            log.info("%s callback to %s failed: %s", self.kind, redact_secrets(item.url), exc)
            status = None
        with self.lock:
            self.callbacks_sent.append((item.url, status or 0))
        return status

    def handle_post(self, handler: BaseHTTPRequestHandler, path: str, body: bytes) -> None:
        self.reply(handler, 404, {"error": "Not found"})

    def handle_get(self, handler: BaseHTTPRequestHandler, path: str, query: str) -> None:
        self.reply(handler, 404, {"error": "Not found"})


class PeerThread:
    """A peer started for a test or the demo, stopped by `stop()` (or as a context manager)."""

    def __init__(self, peer: AggregatorPeer):
        self.peer = peer.start()

    def __enter__(self) -> AggregatorPeer:
        return self.peer

    def __exit__(self, *exc) -> None:
        self.peer.stop()
