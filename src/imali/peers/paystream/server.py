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
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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
                    return peer._api(self, path.removeprefix("/v1/"), body)
                return peer._reply(self, 404, {"error": {"code": "not_found", "message": "No such function."}})

            def do_GET(self):
                path = self.path.split("?", 1)[0]
                if path == "/":
                    data = peer.page().encode()
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
                for seq, instalment in sorted(note.instalments.items()):
                    if instalment["status"] != "PENDING" or dt.date.fromisoformat(instalment["actionDate"]) > today:
                        continue
                    result, reason = self.state.outcomes.get((note.ref, seq), ("collected", ""))
                    instalment["status"] = "COLLECTED" if result == "collected" else "FAILED"
                    self._result(note.ref, seq, result, instalment["amount"], reason, dt.date.fromisoformat(instalment["actionDate"]))

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
        try:
            data = json.loads(body or b"{}")
            if what == "faults":
                self.configure(**{k: data[k] for k in ("down", "slow_seconds", "reject_next", "drop_next",
                                                       "right_granted", "wallet_delay", "activation_delay") if k in data})
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
            elif what == "note-status":
                self.set_note_status(str(data["noteRef"]), str(data["status"]))
            else:
                return self._reply(handler, 404, {"error": {"code": "not_found", "message": "No such control."}})
        except (KeyError, ValueError, AttributeError, TypeError) as exc:
            return self._reply(handler, 422, {"error": {"code": "bad_control", "message": str(exc)}})
        return self._reply(handler, 200, {"result": {"ok": True}})

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
        ref = self._ref("N")
        self.state.notes[ref] = _Note(ref=ref, client_ref=client_ref, account_ref=str(data["accountRef"]), stream=stream,
                                      created=time.monotonic(), instalments=instalments)
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

    # -- a page for people ----------------------------------------------------------------------
    def page(self) -> str:
        with self.lock:
            s = self.state
            rows = "".join(
                f"<tr><td>{html.escape(ref)}</td><td>{html.escape(c['clientNumber'])}</td><td>{html.escape(c['surname'])}</td>"
                f"<td>{len(c['accounts'])}</td><td>{'assigned' if s.cards.get(ref) else ''}</td></tr>"
                for ref, c in s.clients.items())
            notes = "".join(f"<tr><td>{html.escape(r)}</td><td>{html.escape(n.stream)}</td><td>{self._note_status(n)}</td>"
                            f"<td>{len(n.instalments)}</td></tr>" for r, n in s.notes.items())
            payments = "".join(f"<tr><td>{html.escape(r)}</td><td>{html.escape(p['clientRef'])}</td><td>{p['total']}</td></tr>"
                               for r, p in s.payments.items())
            wallets = "".join(f"<tr><td>{html.escape(r)}</td><td>{html.escape(w.client_ref)}</td>"
                              f"<td>{html.escape(w.number or 'being created')}</td></tr>" for r, w in s.wallets.items())
        return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Local payment stream</title>"
                "<style>body{font-family:sans-serif;max-width:60rem;margin:1rem auto}td,th{padding:.2rem .6rem;"
                "border-bottom:1px solid #ddd}</style></head><body><h1>Local payment stream</h1>"
                "<p>Assign a card (what the terminal does): POST /_control/assign-card {\"clientRef\", \"cardNumber\"}.</p>"
                f"<h2>Clients</h2><table><tr><th>Ref</th><th>Number</th><th>Surname</th><th>Accounts</th><th>Card</th></tr>{rows}</table>"
                f"<h2>Promissory notes</h2><table><tr><th>Ref</th><th>Stream</th><th>Status</th><th>Instalments</th></tr>{notes}</table>"
                f"<h2>Credit payments</h2><table><tr><th>Ref</th><th>Client</th><th>Total</th></tr>{payments}</table>"
                f"<h2>Wallets</h2><table><tr><th>Request</th><th>Client</th><th>Wallet</th></tr>{wallets}</table></body></html>")

