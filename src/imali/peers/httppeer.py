"""What the local mobile-money peers share: a threaded HTTP server on loopback with JSON helpers,
an outage switch (503), a slow mode (every answer delayed), and a callback worker that POSTs (or
PUTs) JSON to our URLs after a delay, can repeat a callback (duplicate) or drop it (lost)."""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from imali.core.logging import redact_secrets

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass
class Faults:
    down: bool = False  # every API request answered 503
    slow_seconds: float = 0.0  # every API answer delayed this long
    duplicate_callbacks: bool = False  # every callback sent twice
    lose_callbacks: bool = False  # callbacks are not sent at all (recovered by a status query)
    callback_delay: float = 0.05


class Request:
    def __init__(self, handler: BaseHTTPRequestHandler, method: str):
        self.handler = handler
        self.method = method
        self.path, _, self.query_string = handler.path.partition("?")
        length = int(handler.headers.get("Content-Length") or 0)
        self.body = handler.rfile.read(length) if length else b""
        self.headers = handler.headers

    def json(self):
        try:
            return json.loads(self.body.decode() or "null")
        except (ValueError, UnicodeDecodeError):
            return None

    def query(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.query_string))

    def form(self) -> dict[str, str]:
        from urllib.parse import parse_qsl

        return dict(parse_qsl(self.body.decode(errors="replace")))


class HttpPeer:
    """Subclasses implement `route(request) -> (status, payload, headers)` (payload: dict, str for
    HTML, bytes for a file whose Content-Type the headers give, or None for an empty body) and name the paths that are the peer's own pages (not the API)."""

    kind = "peer"
    page_prefixes: tuple[str, ...] = ("/", )

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0):
        if host not in LOOPBACK:
            raise ValueError("The local peers listen on loopback only.")
        self.host, self.requested_port = host, port
        self.faults = Faults()
        self.lock = threading.RLock()
        self.callbacks_sent: list[tuple[str, int, dict]] = []  # (url, HTTP status or 0, body)
        self._callback_gate = threading.Condition()
        self._callbacks_held = False
        self._callbacks_delivering = 0
        self.log = logging.getLogger(f"imali.peers.{self.kind}")
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    def is_page(self, path: str) -> bool:
        return False

    def start(self):
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                peer.log.debug("%s", redact_secrets(fmt % args))

            def _serve(self, method: str) -> None:
                req = Request(self, method)
                if not peer.is_page(req.path):
                    if peer.faults.down:
                        return peer.reply(self, 503, {"errorCode": "503.001.01", "errorMessage": "Service unavailable"})
                    if peer.faults.slow_seconds:
                        time.sleep(peer.faults.slow_seconds)
                try:
                    status, payload, headers = peer.route(req)
                except Exception as exc:  # a peer bug must show as a 500, not a dropped connection
                    peer.log.exception("peer error")
                    status, payload, headers = 500, {"errorMessage": f"peer error: {exc}"}, {}
                peer.reply(self, status, payload, headers=headers)

            def do_GET(self):
                self._serve("GET")

            def do_POST(self):
                self._serve("POST")

            def do_PUT(self):
                self._serve("PUT")

        self._server = ThreadingHTTPServer((self.host, self.requested_port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                         name=f"{self.kind}-serve").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def route(self, request: Request) -> tuple[int, object, dict]:
        raise NotImplementedError(f"{type(self).__name__} must answer its API's requests in route()")

    @staticmethod
    def reply(handler: BaseHTTPRequestHandler, status: int, payload, *, headers: dict | None = None) -> None:
        headers = dict(headers or {})
        if payload is None:
            data, content_type = b"", "application/json"
        elif isinstance(payload, bytes):  # a file download: the route names its type
            data, content_type = payload, headers.pop("Content-Type", "application/octet-stream")
        elif isinstance(payload, str):
            data, content_type = payload.encode(), "text/html; charset=utf-8"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    # -- callbacks --------------------------------------------------------------------------------
    def call_now(self, url: str, body: dict, *, method: str = "POST", timeout: float = 10.0) -> tuple[int, dict | None]:
        """Send one callback and wait for the answer: (HTTP status or 0 when unreachable, JSON answer)."""
        request = urllib.request.Request(url, data=json.dumps(body).encode(), method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (urllib.error.URLError, OSError) as exc:
            self.log.warning("callback to %s failed: %s", redact_secrets(url), exc)
            status, raw = 0, b""
        with self.lock:
            self.callbacks_sent.append((url, status, body))
        try:
            return status, json.loads(raw.decode() or "null")
        except (ValueError, UnicodeDecodeError):
            return status, None

    def call_later(self, url: str, body: dict, *, method: str = "POST") -> None:
        """A callback in the background, subject to the lost / duplicate faults."""
        if not url or self.faults.lose_callbacks:
            return
        repeats = 2 if self.faults.duplicate_callbacks else 1

        def send() -> None:
            time.sleep(self.faults.callback_delay)
            for _ in range(repeats):
                with self._callback_gate:
                    while self._callbacks_held:
                        self._callback_gate.wait()
                    self._callbacks_delivering += 1
                try:
                    self.call_now(url, body, method=method)
                finally:
                    with self._callback_gate:
                        self._callbacks_delivering -= 1
                        self._callback_gate.notify_all()

        threading.Thread(target=send, daemon=True, name=f"{self.kind}-callback").start()

    def hold_callbacks(self) -> None:
        """From now on background callbacks wait (after their delay) until `release_callbacks`;
        returns once none is being delivered. A test on the in-memory SQLite database needs this:
        the live server shares the test thread's one connection, so a callback must not be handled
        while the test thread uses it."""
        with self._callback_gate:
            self._callbacks_held = True
            while self._callbacks_delivering:
                self._callback_gate.wait()

    def release_callbacks(self) -> None:
        with self._callback_gate:
            self._callbacks_held = False
            self._callback_gate.notify_all()


def page(title: str, body: str) -> str:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>'
            "body{font-family:sans-serif;max-width:52rem;margin:1rem auto;padding:0 1rem}"
            "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}"
            "label{display:block;margin:.4rem 0}.ok{color:#060}.bad{color:#a00}</style></head><body>"
            f"<h1>{title}</h1>{body}</body></html>")


def serve_forever(peer) -> None:
    """Run a started peer until SIGINT/SIGTERM (the `python -m` entry points)."""
    import signal

    print(f"HTTP_PORT={peer.port}", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    peer.stop()
