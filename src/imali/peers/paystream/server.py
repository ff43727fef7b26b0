"""A local payment stream on loopback that speaks Imali's wire format (imali.paystream.adapters.http)
and enforces the seed's rules (seed 003, DOMAIN §7):

- order: an employer before its client, a client before its note or account, a registered account
  before a credit payment to it;
- the user's right to the web services, checked on every call (403 when revoked);
- notes start PENDING and become ACTIVE after `activation_delay`; printing only for ACTIVE,
  PENDING or CANCELLED, and a CANCELLED note prints its cancellation document;
- instalment amounts change only in the EFT and Social Grant EFT streams;
- accounts pass the check-digit table (the same CDV module and table format Imali uses);
- wallets: cellphone unique among the branch's clients, date of birth and gender required, created
  `wallet_delay` seconds after the request, then part of the client's accounts;
- card-issue receipts only for a card assigned to the client (at the terminal: /_control/assign-card);
- idempotency: a request repeated with the same Idempotency-Key is answered from the record of the
  first, never acted on twice; the same key with a different body is refused;
- failure modes for tests: down (503), slow (sleeps before answering), rejecting (the next N calls
  refused), dropping (the next N calls are acted on but the connection closes before the reply —
  what a crash between sending and recording looks like from Imali's side).

State is in memory: the peer is a stand-in for tests and the demo, not a store."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import itertools
import json
import logging
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import holidays

from imali.paystream import cdv

log = logging.getLogger("imali.peers.paystream")
LOOPBACK = ("127.0.0.1", "::1", "localhost")
STREAMS = ("naedo", "eft", "social_grant_eft")
AMOUNT_EDITABLE = ("eft", "social_grant_eft")
PRINTABLE = ("ACTIVE", "PENDING", "CANCELLED")
MAX_AMOUNT = Decimal("999999999.99")


@dataclass
class PeerConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: ephemeral, read back from `peer.port`
    username: str = "imali"
    password: str = "local-password"
    cdv_table: str = ""  # empty: the sample table shipped with imali.paystream
    activation_delay: float = 0.0  # seconds a new note stays PENDING
    wallet_delay: float = 2.0  # seconds until a requested wallet exists ("normally within 10 minutes")
    right_granted: bool = True  # the user's "Allow access to payment-stream web services"
    today: dt.date | None = None  # the bank's date for presenting instalments; None: the real date
    down: bool = False
    slow_seconds: float = 0.0
    reject_next: int = 0
    drop_next: int = 0
    # DebiCheck: how the client's bank answers an authentication request (mandate or amendment).
    mandate_answer: str = "approve"  # approve | reject | none (no answer: timed out at the deadline)
    mandate_answer_seconds: float = 0.0  # when the client answers, after the request
    tt1_seconds: float = 120.0  # TT1 real time: the client approves on the phone within this
    now: dt.datetime | Callable[[], dt.datetime] | None = None  # the bank's clock (cut-offs, deadlines); None: real
    country: str = "ZA"  # whose public holidays are no business days (the TT2 deadline)


SAST = dt.timezone(dt.timedelta(hours=2), "SAST")
AUTH_TYPES = ("tt1", "tt1_delayed", "tt2", "tt3")
# The last time of day a request of each kind is taken (DOMAIN §11): TT1 real time 20:30, TT2 21:00.
CUT_OFF = {"tt1": dt.time(20, 30), "tt2": dt.time(21, 0)}
TT3_SECONDS = 600.0  # card and PIN at the terminal: the client is there
VALUE_TYPES = ("fixed", "variable", "usage_based")
FREQUENCY_DAYS = {"weekly": range(1, 8), "fortnightly": range(1, 15), "monthly": [*range(1, 31), 99]}
ADJUSTMENTS = ("never", "quarterly", "biannually", "annually", "repo")


@lru_cache(maxsize=32)
def _public_holidays(country: str, year: int) -> frozenset[dt.date]:
    return frozenset(holidays.country_holidays(country, years=year))


def is_business_day(day: dt.date, country: str) -> bool:
    """Monday to Friday and no public holiday of the country (a Sunday holiday moves to the Monday,
    as the country's calendar says)."""
    return day.weekday() < 5 and day not in _public_holidays(country, day.year)


def tt2_deadline(requested: dt.datetime, country: str) -> dt.datetime:
    """TT2 batch: the client approves by the end of the second business day after the request."""
    day, business = requested.date(), 0
    while business < 2:
        day += dt.timedelta(days=1)
        business += is_business_day(day, country)
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=requested.tzinfo)


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, field: str = ""):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@dataclass
class _Note:
    ref: str
    client_ref: str
    account_ref: str
    stream: str
    created: float
    instalments: dict[int, dict]
    status: str = "PENDING"
    mandate_ref: str = ""  # DebiCheck: collected only while this mandate is approved


@dataclass
class _Auth:
    """One authentication request at the client's bank: the mandate's first, or an amendment's."""

    ref: str
    deadline: dt.datetime
    answer: str
    answer_at: dt.datetime
    reason: str = ""
    status: str = "AUTHENTICATING"
    terms: dict = field(default_factory=dict)


@dataclass
class _Mandate:
    ref: str
    client_ref: str
    account_ref: str
    contract_reference: str
    authentication: str
    frequency: str
    terms: dict  # instalment, maximumCollection, collectionDay: the approved (or first asked) terms
    auth: _Auth
    amendments: list[_Auth] = field(default_factory=list)
    status: str = "AUTHENTICATING"


@dataclass
class _Wallet:
    ref: str
    client_ref: str
    due: float
    number: str = ""
    account_ref: str = ""


@dataclass
class PeerState:
    employers: dict[str, dict] = field(default_factory=dict)
    clients: dict[str, dict] = field(default_factory=dict)
    accounts: dict[str, dict] = field(default_factory=dict)
    notes: dict[str, _Note] = field(default_factory=dict)
    payments: dict[str, dict] = field(default_factory=dict)
    wallets: dict[str, _Wallet] = field(default_factory=dict)
    cards: dict[str, set[str]] = field(default_factory=dict)
    replies: dict[str, tuple[str, int, dict]] = field(default_factory=dict)  # key → (body hash, status, payload)
    calls: dict[str, int] = field(default_factory=dict)  # function → times acted on (replays excluded)
    results: list[dict] = field(default_factory=list)  # the collection-results feed, in order
    outcomes: dict[tuple[str, int], tuple[str, str]] = field(default_factory=dict)  # preset (result, reason)
    mandates: dict[str, _Mandate] = field(default_factory=dict)
    contract_references: set[str] = field(default_factory=set)  # never reused, also after a cancel
    answers: dict[str, tuple[str, str]] = field(default_factory=dict)  # contract reference → next (answer, reason)


def _money(value, name: str, *, allow_zero: bool = False) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise Refused(422, "invalid_amount", f"{name} is not an amount.", name) from None
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")) or amount < 0 or (amount == 0 and not allow_zero) \
            or amount > MAX_AMOUNT:
        raise Refused(422, "invalid_amount", f"{name} must be an amount {'of zero or more' if allow_zero else 'above zero'} "
                                             f"with at most two decimals.", name)
    return amount


def _date(value, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise Refused(422, "invalid_date", f"{name} must be a date (YYYY-MM-DD).", name) from None


class PaystreamPeer:
    def __init__(self, config: PeerConfig | None = None):
        self.config = config or PeerConfig()
        if self.config.host not in LOOPBACK:
            raise ValueError("The local payment-stream peer listens on loopback only.")
        self.table = cdv.load_table(self.config.cdv_table or cdv.SAMPLE_TABLE)
        self.state = PeerState()
        self.lock = threading.RLock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Tests: called with the payment once a credit payment is made, before the reply is sent
        # (a test kills the caller there: the crash between sending and recording).
        self.on_payment: Callable[[dict], None] | None = None
        # Tests: the function of every web-service call received (/v1/<Function>), in order.
        self.received: list[str] = []

    # -- life cycle -----------------------------------------------------------------------------
    def start(self) -> PaystreamPeer:
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, fmt, *args):
                log.debug(fmt, *args)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                if path.startswith("/_control/"):
                    return peer._control(self, path.removeprefix("/_control/"), body)
                if path.startswith("/v1/"):
                    with peer.lock:
                        peer.received.append(path.removeprefix("/v1/"))
                    return peer._api(self, path.removeprefix("/v1/"), body)
                return peer._reply(self, 404, {"error": {"code": "not_found", "message": "No such function."}})

            def do_GET(self):
                path, _, query = self.path.partition("?")
                if path == "/":
                    done = urllib.parse.parse_qs(query).get("done", [""])[-1]
                    data = peer.page(done).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return None
                if path == "/_control/state":
                    return peer._reply(self, 200, peer.summary())
                return peer._reply(self, 404, {"error": {"code": "not_found", "message": "Not found."}})

        self._server = ThreadingHTTPServer((self.config.host, self.config.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=lambda: self._server.serve_forever(poll_interval=0.05),
                                        name="paystream-peer", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    @property
    def base_url(self) -> str:
        return f"http://{self.config.host}:{self.port}"

    def configure(self, **changes) -> None:
        with self.lock:
            for key, value in changes.items():
                if not hasattr(self.config, key):
                    raise AttributeError(key)
                setattr(self.config, key, value)

    def assign_card(self, client_ref: str, card_number: str) -> None:
        with self.lock:
            if client_ref not in self.state.clients:
                raise KeyError(client_ref)
            self.state.cards.setdefault(client_ref, set()).add(card_number)

    def preset_outcome(self, note_ref: str, seq: int, result: str, reason: str = "") -> None:
        """How the bank will answer an instalment when it is presented: collected or failed."""
        if result not in ("collected", "failed"):
            raise ValueError("result must be collected or failed")
        with self.lock:
            self.state.outcomes[(note_ref, int(seq))] = (result, reason)

    def unpaid(self, reference: str, reason: str, on: dt.date | None = None) -> dict:
        """The bank returns a collected instalment days later (an unpaid): a new result in the feed."""
        with self.lock:
            original = next(r for r in self.state.results if r["reference"] == reference and r["result"] == "collected")
            note = self.state.notes[original["noteRef"]]
            note.instalments[original["seq"]]["status"] = "FAILED"
            return self._result(original["noteRef"], original["seq"], "unpaid", original["amount"], reason,
                                on or self.today(), original_reference=reference)

    def today(self) -> dt.date:
        return self.config.today or dt.date.today()

    def _result(self, note_ref: str, seq: int, result: str, amount: str, reason: str, on: dt.date,
                original_reference: str = "") -> dict:
        row = {"position": len(self.state.results) + 1, "reference": self._ref("R"), "noteRef": note_ref, "seq": seq,
               "result": result, "amount": amount, "date": on.isoformat(), "reason": reason,
               "originalReference": original_reference}
        self.state.results.append(row)
        return row

    def present_due(self) -> None:
        """Present every pending instalment of a live note whose action date has come: the bank
        collects it, or declines it where an outcome was preset. Cancelled notes present nothing."""
        today = self.today()
        with self.lock:
            for note in self.state.notes.values():
                if self._note_status(note) not in ("ACTIVE", "PENDING"):
                    continue
                if note.mandate_ref and self._mandate_status(self.state.mandates[note.mandate_ref]) != "APPROVED":
                    continue  # DebiCheck: nothing is collected without an approved mandate
                for seq, instalment in sorted(note.instalments.items()):
                    if instalment["status"] != "PENDING" or dt.date.fromisoformat(instalment["actionDate"]) > today:
                        continue
                    result, reason = self.state.outcomes.get((note.ref, seq), ("collected", ""))
                    instalment["status"] = "COLLECTED" if result == "collected" else "FAILED"
                    self._result(note.ref, seq, result, instalment["amount"], reason, dt.date.fromisoformat(instalment["actionDate"]))

    def collect_next(self, note_ref: str, result: str = "collected", reason: str = "") -> dict:
        """The demo's shortcut to a collection day: the bank presents the note's next pending
        instalment today (not on its action date) and collects it, or declines it with `reason`.
        The rules still hold: only a live note, and under DebiCheck only an approved mandate."""
        if result not in ("collected", "failed"):
            raise ValueError("result must be collected or failed")
        with self.lock:
            note = self.state.notes.get(note_ref)
            if note is None:
                raise KeyError(note_ref)
            if self._note_status(note) not in ("ACTIVE", "PENDING"):
                raise ValueError(f"note {note_ref} is {note.status.lower()}: nothing is presented")
            if note.mandate_ref and self._mandate_status(self.state.mandates[note.mandate_ref]) != "APPROVED":
                raise ValueError("DebiCheck: nothing is collected without an approved mandate")
            pending = [seq for seq, i in sorted(note.instalments.items()) if i["status"] == "PENDING"]
            if not pending:
                raise ValueError(f"note {note_ref} has no pending instalment")
            instalment = note.instalments[pending[0]]
            instalment["status"] = "COLLECTED" if result == "collected" else "FAILED"
            return self._result(note.ref, pending[0], result, instalment["amount"],
                                "" if result == "collected" else (reason or "Insufficient Funds"), self.today())

    def add_raw_result(self, row: dict) -> dict:
        """A failure mode for tests: a results line exactly as given (a key missing, a bad date or
        amount), placed at the next feed position unless the row names one."""
        with self.lock:
            row = {"position": len(self.state.results) + 1, **row}
            self.state.results.append(row)
            return row

    def return_payment(self, payment_ref: str, reason: str) -> None:
        """The receiving bank returns a credit payment (closed account, wrong holder...): the stream
        reports it in the payment's confirmation."""
        with self.lock:
            payment = self.state.payments[payment_ref]
            payment["status"], payment["returnReason"] = "RETURNED", reason

    def set_note_status(self, note_ref: str, status: str) -> None:
        with self.lock:
            self.state.notes[note_ref].status = status

    def summary(self) -> dict:
        with self.lock:
            s = self.state
            return {"employers": len(s.employers), "clients": len(s.clients), "accounts": len(s.accounts),
                    "notes": {r: self._note_status(n) for r, n in s.notes.items()},
                    "payments": {r: {"clientRef": p["clientRef"], "total": p["total"]} for r, p in s.payments.items()},
                    "wallets": {r: {"clientRef": w.client_ref, "number": w.number} for r, w in s.wallets.items()},
                    "mandates": {r: {"contractReference": m.contract_reference, "status": self._mandate_status(m),
                                     **m.terms} for r, m in s.mandates.items()},
                    "calls": dict(s.calls)}

    # -- HTTP -----------------------------------------------------------------------------------
    @staticmethod
    def _reply(handler, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _authorised(self, handler) -> bool:
        header = handler.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        return user == self.config.username and password == self.config.password

    def _api(self, handler, function: str, body: bytes) -> None:
        config = self.config
        if config.down:
            return self._reply(handler, 503, {"error": {"code": "unavailable", "message": "Service unavailable."}})
        if config.slow_seconds:
            time.sleep(config.slow_seconds)
        if not self._authorised(handler):
            return self._reply(handler, 401, {"error": {"code": "unauthorised", "message": "Bad user name or password."}})
        if not config.right_granted:
            return self._reply(handler, 403, {"error": {"code": "no_right", "message":
                               "The user lacks the right 'Allow access to payment-stream web services'."}})
        key = handler.headers.get("Idempotency-Key", "").strip()
        if not key or len(key) > 64:
            return self._reply(handler, 400, {"error": {"code": "idempotency_key_missing",
                                                        "message": "Every request needs an Idempotency-Key header."}})
        digest = hashlib.sha256(function.encode() + b"\0" + body).hexdigest()
        with self.lock:
            if config.reject_next > 0:
                config.reject_next -= 1
                return self._reply(handler, 422, {"error": {"code": "rejected", "message": "The stream rejected the request."}})
            stored = self.state.replies.get(key)
            if stored is not None:
                if stored[0] != digest:
                    return self._reply(handler, 422, {"error": {"code": "idempotency_key_reused", "message":
                                                                "This Idempotency-Key was used for a different request."}})
                status, payload = stored[1], stored[2]
            else:
                try:
                    data = json.loads(body or b"{}")
                    if not isinstance(data, dict):
                        raise ValueError
                except ValueError:
                    return self._reply(handler, 400, {"error": {"code": "bad_json", "message": "The body is not a JSON object."}})
                handle = getattr(self, f"_fn_{function}", None)
                if handle is None:
                    return self._reply(handler, 404, {"error": {"code": "not_found", "message": f"No function {function}."}})
                try:
                    status, payload = 200, {"result": handle(data)}
                    self.state.calls[function] = self.state.calls.get(function, 0) + 1
                except Refused as refused:
                    status, payload = refused.status, {"error": {"code": refused.code, "message": refused.message,
                                                                 "field": refused.field}}
                self.state.replies[key] = (digest, status, payload)
            if config.drop_next > 0:
                config.drop_next -= 1
                # Acted on and recorded, but the caller never hears: the connection just closes.
                handler.close_connection = True
                return None
        return self._reply(handler, status, payload)

    def _control(self, handler, what: str, body: bytes) -> None:
        if handler.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            return self._page_form(handler, what, body)
        try:
            data = json.loads(body or b"{}")
            if what == "faults":
                self.configure(**{k: data[k] for k in ("down", "slow_seconds", "reject_next", "drop_next",
                                                       "right_granted", "wallet_delay", "activation_delay",
                                                       "mandate_answer", "mandate_answer_seconds", "tt1_seconds") if k in data})
            elif what == "assign-card":
                self.assign_card(str(data["clientRef"]), str(data["cardNumber"]))
            elif what == "outcome":
                self.preset_outcome(str(data["noteRef"]), int(data["seq"]), str(data["result"]), str(data.get("reason", "")))
            elif what == "unpaid":
                self.unpaid(str(data["reference"]), str(data.get("reason", "Unpaid")))
            elif what == "raw-result":
                self.add_raw_result(dict(data["row"]))
            elif what == "payment-return":
                self.return_payment(str(data["paymentRef"]), str(data.get("reason", "Account closed")))
            elif what == "mandate-answer":
                self.mandate_answer(str(data["contractReference"]), str(data["answer"]), str(data.get("reason", "")))
            elif what == "collect-next":
                self.collect_next(str(data["noteRef"]), str(data.get("result", "collected")), str(data.get("reason", "")))
            elif what == "note-status":
                self.set_note_status(str(data["noteRef"]), str(data["status"]))
            else:
                return self._reply(handler, 404, {"error": {"code": "not_found", "message": "No such control."}})
        except (KeyError, ValueError, AttributeError, TypeError) as exc:
            return self._reply(handler, 422, {"error": {"code": "bad_control", "message": str(exc)}})
        return self._reply(handler, 200, {"result": {"ok": True}})

    def _page_form(self, handler, what: str, body: bytes) -> None:
        """A button on the page (a person at the bank's side, in the demo): acted on, then back to
        the page with what happened."""
        data = {k: v[-1] for k, v in urllib.parse.parse_qs(body.decode("utf-8", "replace")).items()}
        message = ""
        try:
            if what == "collect-next":
                row = self.collect_next(data.get("noteRef", ""), data.get("result", "collected"), data.get("reason", ""))
                message = (f"Instalment {row['seq']} of note {row['noteRef']}: {row['result']} {row['amount']}"
                           f"{' (' + row['reason'] + ')' if row['reason'] else ''}. Imali fetches it within a quarter "
                           f"hour, or at once with 'Fetch collection results now' on the loan's payment-stream page.")
            elif what == "unpaid":
                self.unpaid(data.get("reference", ""), data.get("reason", "") or "Unpaid")
                message = f"Collection {data.get('reference', '')} returned unpaid."
            elif what == "payment-return":
                self.return_payment(data.get("paymentRef", ""), data.get("reason", "") or "Account closed")
                message = f"Payment {data.get('paymentRef', '')} returned by the receiving bank."
            else:
                message = "No such action."
        except (KeyError, ValueError, StopIteration) as exc:
            message = f"Not done: {exc}"
        handler.send_response(303)
        handler.send_header("Location", "/?" + urllib.parse.urlencode({"done": message}))
        handler.send_header("Content-Length", "0")
        handler.end_headers()
        return None

    # -- the functions --------------------------------------------------------------------------
    def _ref(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):07d}"

    def _client(self, data: dict) -> dict:
        ref = str(data.get("clientRef", ""))
        if ref not in self.state.clients:
            raise Refused(422, "client_not_found", "The client is not registered at the stream: add the client first.", "client")
        return self.state.clients[ref]

    def _note(self, data: dict) -> _Note:
        note = self.state.notes.get(str(data.get("noteRef", "")))
        if note is None:
            raise Refused(422, "note_not_found", "No such promissory note at the stream.", "note")
        return note

    def _note_status(self, note: _Note) -> str:
        if note.status == "PENDING" and time.monotonic() >= note.created + self.config.activation_delay:
            note.status = "ACTIVE"
        return note.status

    def _fn_AddEmployer(self, data: dict) -> dict:
        number, name = str(data.get("employerNumber", "")).strip(), str(data.get("name", "")).strip()
        if not number or not name:
            raise Refused(422, "employer_incomplete", "An employer needs a number and a name.", "employer")
        ref = self._ref("E")
        self.state.employers[ref] = {"number": number, "name": name}
        return {"employerRef": ref}

    def _fn_AddClient(self, data: dict) -> dict:
        if str(data.get("employerRef", "")) not in self.state.employers:
            raise Refused(422, "employer_not_found", "The client's employer is not registered at the stream: add the employer first.",
                          "employer")
        for name in ("clientNumber", "branch", "surname", "idNumber"):
            if not str(data.get(name, "")).strip():
                raise Refused(422, "client_incomplete", f"{name} is required.", name)
        ref = self._ref("C")
        self.state.clients[ref] = {k: str(data.get(k, "")) for k in (
            "employerRef", "clientNumber", "branch", "surname", "firstNames", "idNumber", "cellphone", "dateOfBirth", "gender")}
        self.state.clients[ref]["accounts"] = []
        return {"clientRef": ref}

    def _fn_AddClientAccount(self, data: dict) -> dict:
        client = self._client(data)
        client_ref = str(data["clientRef"])
        try:
            result = cdv.verify(self.table, branch_code=str(data.get("branchCode", "")),
                                account_number=str(data.get("accountNumber", "")),
                                account_type=str(data.get("accountType", "")) or None)
        except cdv.CdvError as error:
            raise Refused(422, f"cdv_{error.code.value}", error.message, error.field) from None
        for ref in client["accounts"]:
            account = self.state.accounts[ref]
            if (account.get("branchCode"), account.get("accountNumber")) == (result.branch_code, result.account_number):
                raise Refused(422, "account_exists", "This account is already registered for the client.", "account_number")
        ref = self._ref("A")
        self.state.accounts[ref] = {"clientRef": client_ref, "kind": "bank", "branchCode": result.branch_code,
                                    "accountNumber": result.account_number, "bank": result.bank,
                                    "accountType": str(data.get("accountType", ""))}
        client["accounts"].append(ref)
        return {"accountRef": ref, "bank": result.bank}

    def _fn_CreatePromissory(self, data: dict) -> dict:
        self._client(data)
        client_ref = str(data["clientRef"])
        account = self.state.accounts.get(str(data.get("accountRef", "")))
        if account is None or account["clientRef"] != client_ref:
            raise Refused(422, "account_not_found", "The account is not registered for this client.", "account")
        if account["kind"] != "bank":
            raise Refused(422, "not_a_bank_account", "Instalments are collected from a bank account, not a wallet.", "account")
        stream = str(data.get("stream", ""))
        if stream not in STREAMS:
            raise Refused(422, "invalid_stream", "The stream must be NAEDO, EFT or Social Grant EFT.", "stream")
        raw = data.get("instalments") or []
        if not isinstance(raw, list) or not raw:
            raise Refused(422, "no_instalments", "A promissory note needs at least one instalment.", "instalments")
        instalments = {}
        for item in raw:
            seq = int(item.get("seq", 0))
            if seq < 1 or seq in instalments:
                raise Refused(422, "invalid_instalment", f"Instalment number {seq} is missing or repeated.", "instalments")
            tracking = int(item.get("trackingDays", 0))
            if not 0 <= tracking <= 32:
                raise Refused(422, "invalid_tracking", "Tracking is 0 to 32 days.", "tracking_days")
            instalments[seq] = {"actionDate": _date(item.get("actionDate"), "action_date").isoformat(),
                                "amount": str(_money(item.get("amount"), "amount")), "trackingDays": tracking,
                                "status": "PENDING"}
        mandate_ref = str(data.get("mandateRef", "") or "")
        if mandate_ref:
            self._debicheck_collection(mandate_ref, client_ref, str(data["accountRef"]), instalments.values())
        ref = self._ref("N")
        self.state.notes[ref] = _Note(ref=ref, client_ref=client_ref, account_ref=str(data["accountRef"]), stream=stream,
                                      created=time.monotonic(), instalments=instalments, mandate_ref=mandate_ref)
        return {"noteRef": ref, "status": self._note_status(self.state.notes[ref])}

    def _fn_CancelPromissory(self, data: dict) -> dict:
        note = self._note(data)
        if self._note_status(note) == "CANCELLED":
            raise Refused(422, "already_cancelled", "The promissory note is already cancelled.", "note")
        note.status = "CANCELLED"
        for instalment in note.instalments.values():
            if instalment["status"] == "PENDING":
                instalment["status"] = "CANCELLED"
        return {"status": note.status}

    def _fn_PrintPromissory(self, data: dict) -> dict:
        note = self._note(data)
        status = self._note_status(note)
        if status not in PRINTABLE:
            raise Refused(422, "not_printable", f"A promissory note can be printed only when active, pending or cancelled; "
                                                f"this one is {status.lower().replace('_', ' ')}.", "note")
        client = self.state.clients[note.client_ref]
        account = self.state.accounts[note.account_ref]
        fields = {"status": status, "stream": note.stream, "client": f"{client['firstNames']} {client['surname']}".strip(),
                  "idNumber": client["idNumber"], "clientNumber": client["clientNumber"],
                  "bank": account.get("bank", ""), "account": "…" + account.get("accountNumber", "")[-4:]}
        lines = [{"seq": str(s), "actionDate": i["actionDate"], "amount": i["amount"], "status": i["status"]}
                 for s, i in sorted(note.instalments.items())]
        kind = "cancellation" if status == "CANCELLED" else "promissory_note"
        return {"kind": kind, "reference": note.ref, "fields": fields, "lines": lines}

    def _fn_EditInstalment(self, data: dict) -> dict:
        note = self._note(data)
        if self._note_status(note) not in ("ACTIVE", "PENDING"):
            raise Refused(422, "note_not_editable", "Only an active or pending note's instalments can be changed.", "note")
        instalment = note.instalments.get(int(data.get("seq", 0)))
        if instalment is None:
            raise Refused(422, "instalment_not_found", "The note has no such instalment.", "seq")
        if instalment["status"] != "PENDING":
            raise Refused(422, "instalment_not_pending", "Only a pending instalment can be changed.", "seq")
        if "amount" in data and note.stream not in AMOUNT_EDITABLE:
            raise Refused(422, "amount_not_editable", "Amounts can be changed only in the EFT and Social Grant EFT streams.", "amount")
        changes = {}
        if "actionDate" in data:
            changes["actionDate"] = _date(data["actionDate"], "action_date").isoformat()
        if "amount" in data:
            changes["amount"] = str(_money(data["amount"], "amount"))
        if "trackingDays" in data:
            tracking = int(data["trackingDays"])
            if not 0 <= tracking <= 32:
                raise Refused(422, "invalid_tracking", "Tracking is 0 to 32 days.", "tracking_days")
            changes["trackingDays"] = tracking
        if not changes:
            raise Refused(422, "nothing_to_change", "Give an action date, amount or tracking to change.", "")
        if note.mandate_ref:
            self._debicheck_collection(note.mandate_ref, note.client_ref, note.account_ref, [{**instalment, **changes}])
        instalment.update(changes)
        return {"seq": int(data["seq"])}

    def _fn_PayToClientAccount(self, data: dict) -> dict:
        client = self._client(data)
        parts = data.get("accounts") or []
        if not isinstance(parts, list) or not 1 <= len(parts) <= 2:
            raise Refused(422, "accounts_count", "A credit payment goes to one or two registered accounts.", "accounts")
        seen, lines = set(), []
        for n, part in enumerate(parts, start=1):
            ref = str(part.get("accountRef", ""))
            if ref not in client["accounts"]:
                raise Refused(422, "account_not_registered",
                              "Credit payments go only to accounts registered for the client: add the account first.",
                              f"account_{n}")
            if ref in seen:
                raise Refused(422, "account_repeated", "The two accounts must differ.", f"account_{n}")
            seen.add(ref)
            lines.append({"accountRef": ref, "amount": str(_money(part.get("amount"), f"amount_{n}"))})
        cash = _money(data.get("cashAmount", "0"), "cash_amount", allow_zero=True)
        total = sum((Decimal(line["amount"]) for line in lines), cash)
        if total > MAX_AMOUNT:
            raise Refused(422, "invalid_amount", "The payment's total is too large.", "amount_1")
        ref = self._ref("P")
        self.state.payments[ref] = {"clientRef": str(data["clientRef"]), "lines": lines, "cash": str(cash), "total": str(total),
                                    "status": "SUBMITTED"}
        if self.on_payment is not None:
            self.on_payment(self.state.payments[ref])
        return {"paymentRef": ref, "status": "SUBMITTED"}

    def _fn_PrintClientCredit(self, data: dict) -> dict:
        payment = self.state.payments.get(str(data.get("paymentRef", "")))
        if payment is None:
            raise Refused(422, "payment_not_found", "No such credit payment at the stream.", "payment")
        client = self.state.clients[payment["clientRef"]]
        lines = []
        for line in payment["lines"]:
            account = self.state.accounts[line["accountRef"]]
            if account["kind"] == "wallet":
                what, note = f"Wallet {account['walletNumber']}", "Credited to the wallet."
            else:
                what = f"{account.get('bank', 'Bank')} account …{account['accountNumber'][-4:]}"
                note = "Submitted to the bank; a payment return may follow on the payment date or days later."
            lines.append({"to": what, "amount": line["amount"], "note": note})
        if Decimal(payment["cash"]) > 0:
            lines.append({"to": "Cash", "amount": payment["cash"], "note": "Paid in cash at the branch."})
        return {"kind": "client_credit", "reference": str(data["paymentRef"]), "lines": lines,
                "fields": {"client": f"{client['firstNames']} {client['surname']}".strip(), "clientNumber": client["clientNumber"],
                           "total": payment["total"], "status": payment["status"],
                           **({"returnReason": payment["returnReason"]} if payment.get("returnReason") else {})}}

    def _fn_CreateWallet(self, data: dict) -> dict:
        client = self._client(data)
        client_ref = str(data["clientRef"])
        cellphone = str(data.get("cellphone", "")).strip()
        if not cellphone:
            raise Refused(422, "no_cellphone", "The client's cellphone number is required for a wallet.", "cellphone")
        for ref, other in self.state.clients.items():
            if ref != client_ref and other["branch"] == client["branch"] and other["cellphone"] == cellphone:
                raise Refused(422, "cellphone_not_unique",
                              "Another client of the branch has this cellphone number: a wallet needs a unique one.", "cellphone")
        dob = str(data.get("dateOfBirth", ""))
        if not dob:
            raise Refused(422, "no_date_of_birth", "The client's date of birth is required for a wallet.", "date_of_birth")
        if _date(dob, "date_of_birth") >= dt.date.today():
            raise Refused(422, "invalid_date_of_birth", "The date of birth must be in the past.", "date_of_birth")
        if str(data.get("gender", "")) not in ("M", "F"):
            raise Refused(422, "no_gender", "The client's gender is required for a wallet.", "gender")
        for wallet in self.state.wallets.values():
            if wallet.client_ref == client_ref:
                raise Refused(422, "wallet_exists", "The client already has a wallet or a wallet request.", "client")
        client.update(cellphone=cellphone, dateOfBirth=dob, gender=str(data["gender"]))
        ref = self._ref("W")
        self.state.wallets[ref] = _Wallet(ref=ref, client_ref=client_ref, due=time.monotonic() + self.config.wallet_delay)
        return {"walletRequestRef": ref, "status": "requested"}

    def _fn_WalletStatus(self, data: dict) -> dict:
        wallet = self.state.wallets.get(str(data.get("walletRequestRef", "")))
        if wallet is None:
            raise Refused(422, "wallet_not_found", "No such wallet request at the stream.", "wallet")
        if not wallet.number and time.monotonic() >= wallet.due:
            # A wallet number is no bank account number: its own prefix, outside any CDV range.
            wallet.number = f"W{int(wallet.ref[1:]):09d}"
            wallet.account_ref = self._ref("A")
            self.state.accounts[wallet.account_ref] = {"clientRef": wallet.client_ref, "kind": "wallet",
                                                       "walletNumber": wallet.number}
            self.state.clients[wallet.client_ref]["accounts"].append(wallet.account_ref)
        if not wallet.number:
            return {"status": "requested"}
        return {"status": "created", "walletNumber": wallet.number, "accountRef": wallet.account_ref}

    def _fn_CollectionResults(self, data: dict) -> dict:
        """The results feed after a position: collected, failed (declined, with the bank's reason)
        and unpaid (a collected instalment returned later). Presenting what is due happens first."""
        after = int(data.get("after", 0))
        limit = min(max(int(data.get("limit", 1000)), 1), 5000)
        self.present_due()
        rows = [r for r in self.state.results if r["position"] > after][:limit]
        return {"results": rows, "last": rows[-1]["position"] if rows else after}

    def _fn_PrintCardIssueReceipt(self, data: dict) -> dict:
        client = self._client(data)
        card = str(data.get("cardNumber", "")).replace(" ", "")
        if card not in self.state.cards.get(str(data["clientRef"]), set()):
            raise Refused(422, "card_not_assigned", "This card was not assigned to the client: assign it at the terminal first.",
                          "card_number")
        return {"kind": "card_issue_receipt", "reference": str(data["clientRef"]),
                "fields": {"client": f"{client['firstNames']} {client['surname']}".strip(), "clientNumber": client["clientNumber"],
                           "idNumber": client["idNumber"], "card": "…" + card[-4:]}}

    # -- DebiCheck mandates ------------------------------------------------------------------------
    def now(self) -> dt.datetime:
        clock = self.config.now
        if callable(clock):
            return clock()
        return clock or dt.datetime.now(SAST)

    def mandate_answer(self, contract_reference: str, answer: str, reason: str = "") -> None:
        """The client's answer at the bank (the phone for TT1/TT2, the terminal for TT3): to the
        request now waiting for the contract, or else to its next one."""
        if answer not in ("approve", "reject", "none"):
            raise ValueError("answer must be approve, reject or none")
        with self.lock:
            for mandate in self.state.mandates.values():
                if mandate.contract_reference != contract_reference:
                    continue
                pending = [a for a in (mandate.auth, *mandate.amendments) if a.status == "AUTHENTICATING"]
                if pending and self._resolve(mandate, pending[-1]) == "AUTHENTICATING":
                    pending[-1].answer, pending[-1].reason, pending[-1].answer_at = answer, reason, self.now()
                    self._mandate_status(mandate)
                    return
            self.state.answers[contract_reference] = (answer, reason)

    def _auth(self, contract_reference: str, authentication: str, terms: dict) -> _Auth:
        now = self.now()
        if authentication == "tt1":
            deadline = now + dt.timedelta(seconds=self.config.tt1_seconds)
        elif authentication == "tt1_delayed":
            deadline = now.replace(hour=20, minute=30, second=0, microsecond=0)
        elif authentication == "tt2":
            deadline = tt2_deadline(now, self.config.country)
        else:
            deadline = now + dt.timedelta(seconds=TT3_SECONDS)
        cut_off = CUT_OFF.get(authentication, dt.time(20, 30) if authentication == "tt1_delayed" else None)
        if cut_off is not None and now.time() >= cut_off:
            raise Refused(422, "after_cut_off", f"The bank takes no {authentication.upper().replace('_', ' ')} requests after "
                                                f"{cut_off:%H:%M}: send it tomorrow or choose another authentication.",
                          "authentication")
        answer, reason = self.state.answers.pop(contract_reference, (self.config.mandate_answer, ""))
        return _Auth(ref=self._ref("D"), deadline=deadline, answer=answer, reason=reason,
                     answer_at=now + dt.timedelta(seconds=self.config.mandate_answer_seconds), terms=terms)

    def _resolve(self, mandate: _Mandate, auth: _Auth) -> str:
        if auth.status != "AUTHENTICATING":
            return auth.status
        now = self.now()
        if auth.answer != "none" and now >= auth.answer_at and auth.answer_at <= auth.deadline:
            auth.status = "APPROVED" if auth.answer == "approve" else "REJECTED"
            auth.reason = auth.reason or ("" if auth.answer == "approve" else "The client declined the mandate at the bank.")
        elif now >= auth.deadline:
            auth.status, auth.reason = "TIMED_OUT", "The client did not authenticate in time."
        return auth.status

    def _mandate_status(self, mandate: _Mandate) -> str:
        if mandate.status == "AUTHENTICATING":
            mandate.status = self._resolve(mandate, mandate.auth)
        for amendment in mandate.amendments:
            if amendment.status == "AUTHENTICATING" and self._resolve(mandate, amendment) == "APPROVED":
                mandate.terms = dict(amendment.terms)
        return mandate.status

    def _terms(self, data: dict, frequency: str, *, base: dict | None = None) -> dict:
        terms = dict(base or {})
        for name in ("instalment", "maximumCollection"):
            if name in data or base is None:
                terms[name] = str(_money(data.get(name), name))
        if "collectionDay" in data or base is None:
            try:
                terms["collectionDay"] = int(data.get("collectionDay"))
            except (TypeError, ValueError):
                raise Refused(422, "invalid_collection_day", "collectionDay must be a number.", "collection_day") from None
        if terms["collectionDay"] not in FREQUENCY_DAYS[frequency]:
            raise Refused(422, "invalid_collection_day", "The collection day is weekly 1–7, fortnightly 1–14, monthly 1–30 or "
                                                         "99 (the last day).", "collection_day")
        instalment, maximum = Decimal(terms["instalment"]), Decimal(terms["maximumCollection"])
        if not instalment <= maximum <= instalment * Decimal("1.5"):
            raise Refused(422, "maximum_collection", "The maximum collection is at least the instalment and at most 1.5 times it.",
                          "maximum_collection")
        return terms

    def _mandate(self, data: dict) -> _Mandate:
        mandate = self.state.mandates.get(str(data.get("mandateRef", "")))
        if mandate is None:
            raise Refused(422, "mandate_not_found", "No such DebiCheck mandate at the stream.", "mandate")
        return mandate

    def _debicheck_collection(self, mandate_ref: str, client_ref: str, account_ref: str, instalments) -> None:
        """Collections under DebiCheck: only against an approved mandate of the client's account,
        each no more than the mandate's maximum collection, tracking up to 10 days."""
        mandate = self.state.mandates.get(mandate_ref)
        if mandate is None or mandate.client_ref != client_ref:
            raise Refused(422, "mandate_not_found", "No such DebiCheck mandate for this client.", "mandate")
        status = self._mandate_status(mandate)
        if status != "APPROVED":
            raise Refused(422, "mandate_not_approved", f"Collections need an approved DebiCheck mandate; mandate "
                                                       f"{mandate.contract_reference} is {status.lower().replace('_', ' ')}.",
                          "mandate")
        if mandate.account_ref != account_ref:
            raise Refused(422, "mandate_account", "Collect from the account the mandate names.", "account")
        maximum = Decimal(mandate.terms["maximumCollection"])
        for instalment in instalments:
            if Decimal(instalment["amount"]) > maximum:
                raise Refused(422, "above_maximum_collection", f"An instalment of {instalment['amount']} is above the mandate's "
                                                               f"maximum collection of {maximum}.", "amount")
            if int(instalment.get("trackingDays", 0)) > 10:
                raise Refused(422, "invalid_tracking", "DebiCheck tracking is 0 to 10 days.", "tracking_days")

    def _fn_CreateMandate(self, data: dict) -> dict:
        self._client(data)
        client_ref = str(data["clientRef"])
        account = self.state.accounts.get(str(data.get("accountRef", "")))
        if account is None or account["clientRef"] != client_ref or account["kind"] != "bank":
            raise Refused(422, "account_not_found", "The debtor account must be a bank account registered for the client.", "account")
        contract = str(data.get("contractReference", "")).strip()
        if not contract or len(contract) > 24:
            raise Refused(422, "invalid_contract_reference", "The contract reference is 1 to 24 characters.", "contract_reference")
        if contract in self.state.contract_references:
            raise Refused(422, "contract_reference_used", f"The contract reference {contract} was used before: a contract "
                                                          f"reference is never reused, also after a cancel.", "contract_reference")
        authentication = str(data.get("authentication", ""))
        if authentication not in AUTH_TYPES:
            raise Refused(422, "invalid_authentication", "Authentication is TT1, TT1 delayed, TT2 or TT3.", "authentication")
        frequency = str(data.get("frequency", ""))
        if frequency not in FREQUENCY_DAYS:
            raise Refused(422, "invalid_frequency", "The frequency is weekly, fortnightly or monthly.", "frequency")
        if str(data.get("valueType", "")) not in VALUE_TYPES:
            raise Refused(422, "invalid_value_type", "The value type is fixed, variable or usage-based.", "value_type")
        if str(data.get("debitSequence", "")) not in ("once_off", "recurring"):
            raise Refused(422, "invalid_debit_sequence", "The debit sequence is once-off or recurring.", "debit_sequence")
        category = str(data.get("adjustmentCategory", "never"))
        if category not in ADJUSTMENTS:
            raise Refused(422, "invalid_adjustment", "Adjustment is never, quarterly, biannually, annually or repo.",
                          "adjustment_category")
        if category != "never" and not (data.get("adjustmentAmount") or data.get("adjustmentRate")):
            raise Refused(422, "invalid_adjustment", "An adjustment needs an amount or a rate.", "adjustment_amount")
        tracking = int(data.get("trackingDays", 0))
        if not 0 <= tracking <= 10:
            raise Refused(422, "invalid_tracking", "DebiCheck tracking is 0 to 10 days.", "tracking_days")
        _date(data.get("firstCollectionDate"), "first_collection_date")
        terms = self._terms(data, frequency)
        auth = self._auth(contract, authentication, terms)
        self.state.contract_references.add(contract)
        mandate = _Mandate(ref=self._ref("M"), client_ref=client_ref, account_ref=str(data["accountRef"]),
                           contract_reference=contract, authentication=authentication, frequency=frequency, terms=terms,
                           auth=auth)
        self.state.mandates[mandate.ref] = mandate
        return {"mandateRef": mandate.ref, "status": self._mandate_status(mandate), "authenticateBy": auth.deadline.isoformat(),
                "reason": auth.reason if auth.status != "APPROVED" else ""}

    def _fn_AmendMandate(self, data: dict) -> dict:
        mandate = self._mandate(data)
        for fixed in ("frequency", "accountRef", "contractReference", "clientRef"):
            if fixed in data:
                raise Refused(422, "not_amendable", "The frequency, debtor account and contract reference cannot be amended: "
                                                    "cancel the mandate and create a new one.", fixed)
        if self._mandate_status(mandate) != "APPROVED":
            raise Refused(422, "mandate_not_approved", "Only an approved mandate can be amended.", "mandate")
        if any(a.status == "AUTHENTICATING" for a in mandate.amendments):
            raise Refused(422, "amendment_pending", "An amendment of this mandate is waiting for the client already.", "mandate")
        terms = self._terms(data, mandate.frequency, base=mandate.terms)
        if terms == mandate.terms:
            raise Refused(422, "nothing_to_change", "Give a new instalment, maximum collection or collection day.", "")
        auth = self._auth(mandate.contract_reference, mandate.authentication, terms)
        mandate.amendments.append(auth)
        self._mandate_status(mandate)
        return {"amendmentRef": auth.ref, "status": auth.status, "authenticateBy": auth.deadline.isoformat(),
                "reason": auth.reason if auth.status != "APPROVED" else ""}

    def _fn_MandateStatus(self, data: dict) -> dict:
        mandate = self._mandate(data)
        status = self._mandate_status(mandate)
        reply = {"status": status, "reason": mandate.auth.reason if status in ("REJECTED", "TIMED_OUT") else "",
                 "authenticateBy": mandate.auth.deadline.isoformat(), **mandate.terms}
        if mandate.amendments:
            last = mandate.amendments[-1]
            reply["amendment"] = {"amendmentRef": last.ref, "status": last.status, "reason": last.reason if last.status != "APPROVED" else "",
                                  "authenticateBy": last.deadline.isoformat()}
        return reply

    def _fn_CancelMandate(self, data: dict) -> dict:
        mandate = self._mandate(data)
        if mandate.status == "CANCELLED":
            raise Refused(422, "already_cancelled", "The mandate is cancelled already.", "mandate")
        self._mandate_status(mandate)
        mandate.status = "CANCELLED"
        for auth in (mandate.auth, *mandate.amendments):
            if auth.status == "AUTHENTICATING":
                auth.status = "CANCELLED"
        return {"status": "CANCELLED"}

    # -- a page for people ----------------------------------------------------------------------
    def page(self, done: str = "") -> str:
        """The bank's side for a person: what the stream holds, and buttons for what the bank does
        (collect an instalment now, return a collection unpaid, return a credit payment)."""
        esc = html.escape

        def button(action: str, label: str, **fields: str) -> str:
            hidden = "".join(f"<input type='hidden' name='{esc(k)}' value='{esc(v)}'>" for k, v in fields.items())
            return (f"<form method='post' action='/_control/{action}' style='display:inline'>{hidden}"
                    f"<button type='submit'>{esc(label)}</button></form>")

        with self.lock:
            s = self.state
            rows = "".join(
                f"<tr><td>{esc(ref)}</td><td>{esc(c['clientNumber'])}</td><td>{esc(c['surname'])}</td>"
                f"<td>{len(c['accounts'])}</td><td>{'assigned' if s.cards.get(ref) else ''}</td></tr>"
                for ref, c in s.clients.items())
            notes = ""
            for r, n in s.notes.items():
                status = self._note_status(n)
                pending = [seq for seq, i in sorted(n.instalments.items()) if i["status"] == "PENDING"]
                actions = ""
                if status in ("ACTIVE", "PENDING") and pending:
                    actions = (button("collect-next", f"Collect instalment {pending[0]} now", noteRef=r) + " "
                               + button("collect-next", "Decline it (Insufficient Funds)", noteRef=r, result="failed",
                                        reason="Insufficient Funds"))
                notes += (f"<tr class='peer-note' data-note='{esc(r)}'><td>{esc(r)}</td><td>{esc(n.stream)}</td><td>{status}</td>"
                          f"<td>{len(n.instalments) - len(pending)} of {len(n.instalments)} presented</td><td>{actions}</td></tr>")
            unpaid_done = {x.get("originalReference") for x in s.results if x.get("result") == "unpaid"}
            results = "".join(
                f"<tr><td>{x['position']}</td><td>{esc(str(x.get('reference', '')))}</td><td>{esc(str(x.get('noteRef', '')))}</td>"
                f"<td>{esc(str(x.get('seq', '')))}</td><td>{esc(str(x.get('result', '')))}</td><td>{esc(str(x.get('amount', '')))}</td>"
                f"<td>{esc(str(x.get('reason', '')))}</td><td>"
                + (button("unpaid", "Return it unpaid", reference=str(x["reference"]), reason="Account frozen")
                   if x.get("result") == "collected" and x.get("reference") not in unpaid_done else "")
                + "</td></tr>" for x in s.results[-50:])
            payments = "".join(
                f"<tr><td>{esc(r)}</td><td>{esc(p['clientRef'])}</td><td>{p['total']}</td><td>{esc(p['status'])}</td><td>"
                + (button("payment-return", "Return it (account closed)", paymentRef=r) if p["status"] == "SUBMITTED" else "")
                + "</td></tr>" for r, p in s.payments.items())
            wallets = "".join(f"<tr><td>{esc(r)}</td><td>{esc(w.client_ref)}</td>"
                              f"<td>{esc(w.number or 'being created')}</td></tr>" for r, w in s.wallets.items())
            mandates = "".join(f"<tr><td>{esc(r)}</td><td>{esc(m.contract_reference)}</td>"
                               f"<td>{self._mandate_status(m)}</td><td>{esc(m.terms['maximumCollection'])}</td></tr>"
                               for r, m in s.mandates.items())
        notice = f"<p id='done' style='background:#eef;padding:.5rem'>{esc(done)}</p>" if done else ""
        return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Local payment stream</title>"
                "<style>body{font-family:sans-serif;max-width:70rem;margin:1rem auto}td,th{padding:.2rem .6rem;"
                "border-bottom:1px solid #ddd}</style></head><body><h1>Local payment stream</h1>" + notice +
                "<p>The bank's side of the demo. Instalments are presented on their action dates; the buttons collect the "
                "next one now. Assign a card (what the terminal does): POST /_control/assign-card {\"clientRef\", "
                "\"cardNumber\"}.</p>"
                f"<h2>Clients</h2><table><tr><th>Ref</th><th>Number</th><th>Surname</th><th>Accounts</th><th>Card</th></tr>{rows}</table>"
                "<h2>Promissory notes</h2><table id='peer-notes'><tr><th>Ref</th><th>Stream</th><th>Status</th><th>Instalments</th>"
                f"<th></th></tr>{notes}</table>"
                "<h2>Collection results (latest 50)</h2><table id='peer-results'><tr><th>Position</th><th>Ref</th><th>Note</th>"
                f"<th>No.</th><th>Result</th><th>Amount</th><th>Reason</th><th></th></tr>{results}</table>"
                f"<h2>Credit payments</h2><table><tr><th>Ref</th><th>Client</th><th>Total</th><th>Status</th><th></th></tr>{payments}</table>"
                f"<h2>Wallets</h2><table><tr><th>Request</th><th>Client</th><th>Wallet</th></tr>{wallets}</table>"
                f"<h2>DebiCheck mandates</h2><table><tr><th>Ref</th><th>Contract</th><th>Status</th><th>Maximum</th></tr>{mandates}"
                "</table></body></html>")
