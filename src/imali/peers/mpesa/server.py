"""A local M-PESA Daraja on loopback that speaks the published API and enforces it (DOMAIN §11):

- `GET /oauth/v1/generate?grant_type=client_credentials`, HTTP Basic consumer key:secret → token
  valid 3599 s; every other API call needs `Authorization: Bearer <token>` (401 otherwise).
- `POST /mpesa/c2b/v2/registerurl` — ShortCode (ours), ResponseType Completed|Cancelled, both URLs.
- `POST /mpesa/c2b/v1/simulate` (and the page at `/`): a customer pays the paybill. The validation
  URL is called first and must answer ResultCode 0 within `validation_deadline` seconds; no answer
  → ResponseType decides; then the confirmation (with OrgAccountBalance and ThirdPartyTransID).
- `POST /mpesa/b2c/v3/paymentrequest` — validated field by field; an OriginatorConversationID seen
  before is acknowledged again with its first ConversationID and never paid twice. The result is
  POSTed to ResultURL later, or, with `timeout_results`, the QueueTimeOutURL is hit instead.
- `POST /mpesa/transactionstatus/v1/query` — the result (found: ReceiptNo, TransactionStatus...;
  not found: ResultCode NOT_FOUND) is POSTed to the query's ResultURL.
- `GET /statement?short_code=&from=YYYY-MM-DD&to=YYYY-MM-DD&format=csv|xlsx` (and the form on the
  page): the organisation portal's statement download — the account's lines completed on those
  days (the peer's zone), newest first, under the portal's preamble, in the export's columns
  (STATEMENT_HEADER). It lists only what the peer's ledger holds: the paybill payments it
  completed (whether or not their confirmation reached the lender) and the B2C payments it made.
  The ledger lives in memory: a restarted peer's statement starts empty.

Peer conventions where Daraja's documents are silent (DOMAIN "?"): receivers whose number starts
with a `failing_prefixes` entry fail with ResultCode 2001; a status query for an unknown id
answers ResultCode NOT_FOUND ("R000001"); with `status_pending` a found payment's status result says
TransactionStatus "Pending" (still being processed)."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import html
import io
import itertools
import re
import secrets
import string
import threading
import time
import uuid
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from ..httppeer import HttpPeer, Request, page

NOT_FOUND = "R000001"
RECEIVER_FAILED = "2001"
COMMANDS = ("BusinessPayment", "SalaryPayment", "PromotionPayment")
# The organisation portal's export (DOMAIN §8): the columns in its order, and its Completion Time
# layout (what the import reads first, mobilemoney.statement.TIME_FORMATS[0]).
STATEMENT_HEADER = ("Receipt No.", "Completion Time", "Initiation Time", "Details", "Transaction Status", "Paid In",
                    "Withdrawn", "Balance", "Reason Type", "Other Party Info", "A/C No.")
STATEMENT_TIME = "%Y-%m-%d %H:%M:%S"
STATEMENT_FORMATS = {"csv": "text/csv; charset=utf-8",
                     "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
B2C_REASONS = {"BusinessPayment": "Business Payment to Customer", "SalaryPayment": "Salary Payment",
               "PromotionPayment": "Promotion Payment"}
OPENING_BALANCE = Decimal("1000000.00")


@dataclass
class MpesaConfig:
    short_code: str = "600000"
    consumer_key: str = "local-consumer-key"
    consumer_secret: str = "local-consumer-secret"
    initiator_name: str = "imali-initiator"
    security_credential: str = "local-security-credential"
    time_zone: str = "Africa/Nairobi"
    validation_deadline: float = 8.0
    result_delay: float = 0.05
    failing_prefixes: tuple[str, ...] = ("99",)
    # Pre-registered URLs (the demo's "registered once before"): set from the environment.
    validation_url: str = ""
    confirmation_url: str = ""
    response_type: str = "Completed"


@dataclass
class Payment:
    originator_id: str
    conversation_id: str
    receipt: str
    amount: Decimal
    party_b: str
    result_code: str
    result_desc: str
    completed_at: dt.datetime
    result_url: str
    timeout_url: str
    requests: int = 1
    command: str = "BusinessPayment"


@dataclass
class Customer:
    trans_id: str
    amount: Decimal
    msisdn: str
    reference: str
    accepted: bool
    note: str
    at: dt.datetime
    confirmations: list[int] = field(default_factory=list)
    first_name: str = ""
    # Accepted, but the confirmation was kept back (the page's "the lender misses it"): M-PESA has
    # the money, the lender was never told — what the statement import is for.
    confirmation_withheld: bool = False


@dataclass(frozen=True)
class Entry:
    """One line of the organisation's M-PESA account, written when the money moves: the ledger the
    statement download lists. `balance` is the account's balance after the line."""
    receipt: str
    initiated_at: dt.datetime
    completed_at: dt.datetime
    details: str
    reason_type: str
    paid_in: Decimal
    withdrawn: Decimal
    balance: Decimal
    other_party: str
    account: str


class StatementRefused(Exception):
    """A statement request the portal would not serve: `field` names the input at fault."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


class MpesaPeer(HttpPeer):
    kind = "mpesa"

    def __init__(self, config: MpesaConfig | None = None, *, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host=host, port=port)
        self.config = config or MpesaConfig()
        self.faults.callback_delay = self.config.result_delay
        self.timeout_results = False  # hit QueueTimeOutURL instead of ResultURL (the payment is made)
        # A status query answers ResultCode 0 with TransactionStatus "Pending": M-PESA has the payment
        # but has not finished it (what Daraja reports for a payment still being processed).
        self.status_pending = False
        # Called with each new B2C payment after it is made and before the answer goes back: a test
        # kills the sending process here, between "paid" and "we recorded it".
        self.on_payment = None
        self.tokens: dict[str, float] = {}
        self.registrations: dict[str, dict] = {}
        if self.config.validation_url or self.config.confirmation_url:
            self.registrations[self.config.short_code] = {
                "ValidationURL": self.config.validation_url, "ConfirmationURL": self.config.confirmation_url,
                "ResponseType": self.config.response_type}
        self.payments: dict[str, Payment] = {}
        self.customers: list[Customer] = []
        self.balance = OPENING_BALANCE
        self.ledger: list[Entry] = []  # every completed money movement, in the order it happened
        self._ids = itertools.count(1)
        self._pay_lock = threading.Lock()

    # -- helpers --------------------------------------------------------------------------------
    def _now(self) -> dt.datetime:
        return dt.datetime.now(zoneinfo.ZoneInfo(self.config.time_zone))

    def _receipt_no(self) -> str:
        # Daraja receipts are 10 upper-case letters and digits.
        alphabet = string.ascii_uppercase + string.digits
        return "S" + "".join(secrets.choice(alphabet) for _ in range(9))

    def _bearer_ok(self, request: Request) -> bool:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return False
        expires = self.tokens.get(auth[7:])
        return expires is not None and time.monotonic() < expires

    @staticmethod
    def _error(status: int, code: str, message: str) -> tuple[int, dict, dict]:
        return status, {"requestId": uuid.uuid4().hex[:12], "errorCode": code, "errorMessage": message}, {}

    @staticmethod
    def _amount(value) -> Decimal | None:
        try:
            amount = Decimal(str(value))
        except (InvalidOperation, ValueError):
            return None
        if not amount.is_finite() or amount <= 0 or amount > Decimal("250000") or amount != amount.quantize(Decimal("0.01")):
            return None
        return amount

    def is_page(self, path: str) -> bool:
        return path in ("/", "/simulate", "/state.json", "/statement")

    # -- routing --------------------------------------------------------------------------------
    def route(self, request: Request):
        path, method = request.path, request.method
        if path == "/" and method == "GET":
            return 200, self.page(), {}
        if path == "/state.json" and method == "GET":
            return 200, self.state(), {}
        if path == "/simulate" and method == "POST":
            form = request.form()
            result = self.customer_pays(msisdn=form.get("msisdn", ""), amount=form.get("amount", ""),
                                        reference=form.get("reference", ""), first_name=form.get("first_name", ""),
                                        send_confirmation=not form.get("withhold_confirmation"))
            return 200, self.page(result), {}
        if path == "/statement" and method == "GET":
            return self.statement_download(request.query())
        if path == "/oauth/v1/generate" and method == "GET":
            return self.generate_token(request)
        if not self._bearer_ok(request):
            return self._error(401, "404.001.03", "Invalid Access Token")
        if method != "POST":
            return self._error(405, "405.001.01", "Method not allowed")
        body = request.json()
        if not isinstance(body, dict):
            return self._error(400, "400.002.02", "Bad Request - Invalid JSON body")
        handlers = {
            "/mpesa/c2b/v2/registerurl": self.register,
            "/mpesa/c2b/v1/simulate": self.simulate_api,
            "/mpesa/b2c/v3/paymentrequest": self.b2c,
            "/mpesa/transactionstatus/v1/query": self.status_query,
        }
        handler = handlers.get(path)
        if handler is None:
            return self._error(404, "404.001.01", "Resource not found")
        return handler(body)

    def generate_token(self, request: Request):
        if request.query().get("grant_type") != "client_credentials":
            return self._error(400, "400.008.02", "Invalid grant type passed")
        auth = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.config.consumer_key}:{self.config.consumer_secret}".encode()).decode()
        if not auth.startswith("Basic ") or not secrets.compare_digest(auth[6:], expected):
            return self._error(400, "400.008.01", "Invalid Authentication passed")
        token = secrets.token_urlsafe(24)
        self.tokens[token] = time.monotonic() + 3599
        return 200, {"access_token": token, "expires_in": "3599"}, {}

    def _missing(self, body: dict, *names: str) -> str:
        for name in names:
            if body.get(name) in (None, ""):
                return name
        return ""

    def register(self, body: dict):
        missing = self._missing(body, "ShortCode", "ResponseType", "ConfirmationURL", "ValidationURL")
        if missing:
            return self._error(400, "400.003.02", f"Bad Request - Invalid {missing}")
        if str(body["ShortCode"]) != self.config.short_code:
            return self._error(400, "400.003.02", "Bad Request - Invalid ShortCode")
        if body["ResponseType"] not in ("Completed", "Cancelled"):
            return self._error(400, "400.003.02", "Bad Request - Invalid ResponseType")
        for key in ("ConfirmationURL", "ValidationURL"):
            if not re.match(r"^https?://", str(body[key])):
                return self._error(400, "400.003.02", f"Bad Request - Invalid {key}")
        with self.lock:
            self.registrations[self.config.short_code] = {k: body[k] for k in ("ValidationURL", "ConfirmationURL", "ResponseType")}
        return 200, {"OriginatorCoversationID": uuid.uuid4().hex[:20], "ResponseCode": "0",
                     "ResponseDescription": "Success"}, {}

    def simulate_api(self, body: dict):
        missing = self._missing(body, "ShortCode", "CommandID", "Amount", "Msisdn")
        if missing:
            return self._error(400, "400.002.02", f"Bad Request - Invalid {missing}")
        result = self.customer_pays(msisdn=str(body["Msisdn"]), amount=str(body["Amount"]),
                                    reference=str(body.get("BillRefNumber", "")))
        return 200, {"OriginatorCoversationID": uuid.uuid4().hex[:20], "ResponseCode": "0" if result.accepted else "1",
                     "ResponseDescription": result.note, "TransID": result.trans_id}, {}

    # -- a customer pays the paybill -------------------------------------------------------------
    def customer_pays(self, *, msisdn: str, amount: str, reference: str, first_name: str = "Jane",
                      send_confirmation: bool = True) -> Customer:
        """`send_confirmation=False`: the payment completes but its confirmation never reaches the
        lender (its server was down when M-PESA called): only the statement shows it."""
        msisdn = msisdn.strip().lstrip("+")
        first_name = first_name.strip() or "Jane"
        money = self._amount(amount)
        now = self._now()
        trans_id = self._receipt_no()
        if money is None or not msisdn.isdigit():
            customer = Customer(trans_id, money or Decimal(0), msisdn, reference, False, "Invalid amount or number", now)
            with self.lock:
                self.customers.append(customer)
            return customer
        registration = self.registrations.get(self.config.short_code)
        body = {
            "TransactionType": "Pay Bill", "TransID": trans_id, "TransTime": now.strftime("%Y%m%d%H%M%S"),
            "TransAmount": f"{money:.2f}", "BusinessShortCode": self.config.short_code, "BillRefNumber": reference,
            "InvoiceNumber": "", "MSISDN": msisdn, "FirstName": first_name, "MiddleName": "", "LastName": "",
        }
        if registration is None:
            customer = Customer(trans_id, money, msisdn, reference, False, "No URLs registered for the short code", now)
        else:
            accepted, note = self._validate(registration, body)
            customer = Customer(trans_id, money, msisdn, reference, accepted, note, now, first_name=first_name,
                                confirmation_withheld=accepted and not send_confirmation)
            if accepted:
                with self.lock:
                    self.balance += money
                    self.ledger.append(Entry(
                        trans_id, now, self._now(), f"Pay Bill from {msisdn} - {first_name.upper()} Acc. {reference}",
                        "Pay Bill Online", money, Decimal(0), self.balance, f"{msisdn} - {first_name.upper()}", reference))
                    balance = self.balance
                confirmation = {**body, "OrgAccountBalance": f"{balance:.2f}", "ThirdPartyTransID": ""}
                if send_confirmation and not self.faults.lose_callbacks:
                    for _ in range(2 if self.faults.duplicate_callbacks else 1):
                        status, _answer = self.call_now(registration["ConfirmationURL"], confirmation)
                        customer.confirmations.append(status)
        with self.lock:
            self.customers.append(customer)
        return customer

    def _validate(self, registration: dict, body: dict) -> tuple[bool, str]:
        url = registration.get("ValidationURL")
        if not url:
            return True, "Accepted (no validation)"
        started = time.monotonic()
        status, answer = self.call_now(url, body, timeout=self.config.validation_deadline)
        late = time.monotonic() - started > self.config.validation_deadline
        if status == 200 and isinstance(answer, dict) and not late:
            if str(answer.get("ResultCode")) == "0":
                return True, "Accepted"
            return False, f"Refused by the business: {answer.get('ResultCode')} {answer.get('ResultDesc', '')}"
        # No usable answer in time: what the registration said to do.
        if registration.get("ResponseType") == "Completed":
            return True, "Accepted (validation did not answer; ResponseType Completed)"
        return False, "Cancelled (validation did not answer; ResponseType Cancelled)"

    # -- B2C ------------------------------------------------------------------------------------
    def b2c(self, body: dict):
        missing = self._missing(body, "OriginatorConversationID", "InitiatorName", "SecurityCredential", "CommandID",
                                "Amount", "PartyA", "PartyB", "QueueTimeOutURL", "ResultURL")
        if missing:
            return self._error(400, "400.002.02", f"Bad Request - Invalid {missing}")
        if body["InitiatorName"] != self.config.initiator_name or not secrets.compare_digest(
                str(body["SecurityCredential"]), self.config.security_credential):
            return self._error(400, "400.002.05", "Invalid Initiator Information")
        if body["CommandID"] not in COMMANDS:
            return self._error(400, "400.002.02", "Bad Request - Invalid CommandID")
        if str(body["PartyA"]) != self.config.short_code:
            return self._error(400, "400.002.02", "Bad Request - Invalid PartyA")
        if not re.fullmatch(r"\d{9,15}", str(body["PartyB"])):
            return self._error(400, "400.002.02", "Bad Request - Invalid PartyB")
        amount = self._amount(body["Amount"])
        if amount is None:
            return self._error(400, "400.002.02", "Bad Request - Invalid Amount")
        originator = str(body["OriginatorConversationID"])
        with self._pay_lock:
            payment = self.payments.get(originator)
            if payment is not None:
                payment.requests += 1
                return 200, self._ack(payment), {}
            party_b = str(body["PartyB"])
            failed = party_b.startswith(self.config.failing_prefixes) or amount > self.balance
            payment = Payment(
                originator_id=originator, conversation_id=f"AG_{self._now():%Y%m%d}_{uuid.uuid4().hex[:20]}",
                receipt="" if failed else self._receipt_no(), amount=amount, party_b=party_b,
                result_code=RECEIVER_FAILED if failed else "0",
                result_desc="The receiver could not be paid." if failed else "The service request is processed successfully.",
                completed_at=self._now(), result_url=str(body["ResultURL"]), timeout_url=str(body["QueueTimeOutURL"]),
                command=str(body["CommandID"]))
            if not failed:
                with self.lock:  # the paybill's payments in move the balance under this lock too
                    self.balance -= amount
                    self.ledger.append(Entry(
                        payment.receipt, payment.completed_at, payment.completed_at,
                        f"{B2C_REASONS[payment.command]} to {party_b} - Customer", B2C_REASONS[payment.command],
                        Decimal(0), amount, self.balance, f"{party_b} - Customer", ""))
            self.payments[originator] = payment
        if self.on_payment is not None:
            self.on_payment(payment)
        if self.timeout_results:
            self.call_later(payment.timeout_url, {"Result": {"ResultType": 1, "ResultCode": "1037",
                            "ResultDesc": "Queue timeout", "OriginatorConversationID": originator,
                            "ConversationID": payment.conversation_id}})
        else:
            self.call_later(payment.result_url, self._result(payment))
        return 200, self._ack(payment), {}

    @staticmethod
    def _ack(payment: Payment) -> dict:
        return {"ConversationID": payment.conversation_id, "OriginatorConversationID": payment.originator_id,
                "ResponseCode": "0", "ResponseDescription": "Accept the service request successfully."}

    def _result(self, payment: Payment) -> dict:
        parameters = []
        if payment.result_code == "0":
            parameters = [
                {"Key": "TransactionAmount", "Value": float(payment.amount)},
                {"Key": "TransactionReceipt", "Value": payment.receipt},
                {"Key": "ReceiverPartyPublicName", "Value": f"{payment.party_b} - Customer"},
                {"Key": "TransactionCompletedDateTime", "Value": payment.completed_at.strftime("%d.%m.%Y %H:%M:%S")},
                {"Key": "B2CUtilityAccountAvailableFunds", "Value": float(self.balance)},
            ]
        return {"Result": {
            "ResultType": 0, "ResultCode": int(payment.result_code) if payment.result_code.isdigit() else payment.result_code,
            "ResultDesc": payment.result_desc, "OriginatorConversationID": payment.originator_id,
            "ConversationID": payment.conversation_id, "TransactionID": payment.receipt or payment.conversation_id[-10:],
            "ResultParameters": {"ResultParameter": parameters},
            "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": payment.timeout_url}},
        }}

    def status_query(self, body: dict):
        missing = self._missing(body, "Initiator", "SecurityCredential", "CommandID", "PartyA", "IdentifierType",
                                "ResultURL", "QueueTimeOutURL")
        if missing:
            return self._error(400, "400.002.02", f"Bad Request - Invalid {missing}")
        if body["Initiator"] != self.config.initiator_name or not secrets.compare_digest(
                str(body["SecurityCredential"]), self.config.security_credential):
            return self._error(400, "400.002.05", "Invalid Initiator Information")
        if body["CommandID"] != "TransactionStatusQuery":
            return self._error(400, "400.002.02", "Bad Request - Invalid CommandID")
        wanted_originator = str(body.get("OriginatorConversationID") or "")
        wanted_receipt = str(body.get("TransactionID") or "")
        if not (wanted_originator or wanted_receipt):
            return self._error(400, "400.002.02", "Bad Request - Invalid TransactionID")
        with self._pay_lock:
            payment = self.payments.get(wanted_originator) or next(
                (p for p in self.payments.values() if wanted_receipt and p.receipt == wanted_receipt), None)
        query_id = f"QRY_{uuid.uuid4().hex[:16]}"
        if payment is None:
            result = {"Result": {"ResultType": 0, "ResultCode": NOT_FOUND, "ResultDesc": "The transaction could not be found.",
                                 "OriginatorConversationID": query_id, "ConversationID": query_id,
                                 "TransactionID": "", "ResultParameters": {"ResultParameter": []}}}
        else:
            status = "Pending" if self.status_pending else "Completed" if payment.result_code == "0" else "Failed"
            result = {"Result": {
                "ResultType": 0, "ResultCode": 0, "ResultDesc": "The service request is processed successfully.",
                "OriginatorConversationID": query_id, "ConversationID": query_id, "TransactionID": payment.receipt,
                "ResultParameters": {"ResultParameter": [
                    {"Key": "ReceiptNo", "Value": payment.receipt},
                    {"Key": "TransactionStatus", "Value": status},
                    {"Key": "ReasonType", "Value": payment.result_desc},
                    {"Key": "Amount", "Value": float(payment.amount)},
                    {"Key": "FinalisedTime", "Value": payment.completed_at.strftime("%Y%m%d%H%M%S")},
                    {"Key": "OriginatorConversationID", "Value": payment.originator_id},
                ]}}}
        # A status result is the recovery path: the "lost callbacks" fault does not drop it.
        lose, self.faults.lose_callbacks = self.faults.lose_callbacks, False
        try:
            self.call_later(str(body["ResultURL"]), result)
        finally:
            self.faults.lose_callbacks = lose
        return 200, {"OriginatorConversationID": query_id, "ConversationID": query_id, "ResponseCode": "0",
                     "ResponseDescription": "Accept the service request successfully."}, {}

    # -- the organisation portal's statement -----------------------------------------------------
    def statement_lines(self, *, first: dt.date, last: dt.date) -> tuple[Decimal, Decimal, list[Entry]]:
        """(opening balance, closing balance, the ledger's lines completed from `first` to `last`
        inclusive in the peer's zone, newest first)."""
        zone = zoneinfo.ZoneInfo(self.config.time_zone)
        with self.lock:
            ledger = list(self.ledger)
        opening = OPENING_BALANCE
        lines = []
        for entry in ledger:
            day = entry.completed_at.astimezone(zone).date()
            if day < first:
                opening = entry.balance
            elif day <= last:
                lines.append(entry)
        closing = lines[-1].balance if lines else opening
        return opening, closing, lines[::-1]

    def statement_file(self, *, short_code: str, first: str, last: str, file_format: str) -> tuple[str, bytes, str]:
        """(file name, content, content type) of the statement the portal would export; raises
        StatementRefused naming the input at fault."""
        if not short_code.strip():
            raise StatementRefused("short_code", "Short code: give the organisation's short code.")
        if short_code.strip() != self.config.short_code:
            raise StatementRefused("short_code", f"Short code: {short_code.strip()} is not an organisation on this "
                                                 f"M-PESA (this one is {self.config.short_code}).")
        dates = {}
        for name, label, value in (("from", "From", first), ("to", "To", last)):
            try:
                dates[name] = dt.date.fromisoformat(value.strip())
            except ValueError:
                raise StatementRefused(name, f"{label}: give a date as YYYY-MM-DD.") from None
        if dates["to"] < dates["from"]:
            raise StatementRefused("to", "To: the period ends before it starts.")
        if file_format not in STATEMENT_FORMATS:
            raise StatementRefused("format", "Format: choose CSV or XLSX.")
        opening, closing, lines = self.statement_lines(first=dates["from"], last=dates["to"])
        zone = zoneinfo.ZoneInfo(self.config.time_zone)

        def when(moment: dt.datetime) -> str:
            return moment.astimezone(zone).strftime(STATEMENT_TIME)

        # Amounts are text with two decimals in both formats: a spreadsheet number would be a float.
        rows = [
            ["Short Code:", self.config.short_code],
            ["Time Period:", f"From {dates['from']:%d-%m-%Y} 00:00:00 To {dates['to']:%d-%m-%Y} 23:59:59"],
            ["Opening Balance:", f"{opening:.2f}"],
            ["Closing Balance:", f"{closing:.2f}"],
            [],
            list(STATEMENT_HEADER),
        ]
        rows += [[e.receipt, when(e.completed_at), when(e.initiated_at), e.details, "Completed",
                  f"{e.paid_in:.2f}" if e.paid_in else "", f"-{e.withdrawn:.2f}" if e.withdrawn else "",
                  f"{e.balance:.2f}", e.reason_type, e.other_party, e.account] for e in lines]
        name = f"Statement_{self.config.short_code}_{dates['from']:%Y%m%d}_{dates['to']:%Y%m%d}.{file_format}"
        if file_format == "csv":
            buffer = io.StringIO()
            csv.writer(buffer).writerows(rows)
            return name, buffer.getvalue().encode(), STATEMENT_FORMATS["csv"]
        from openpyxl import Workbook

        book = Workbook()
        sheet = book.active
        sheet.title = "Statement"
        for row in rows:
            sheet.append(row)
        out = io.BytesIO()
        book.save(out)
        return name, out.getvalue(), STATEMENT_FORMATS["xlsx"]

    def statement_download(self, query: dict[str, str]):
        try:
            name, content, content_type = self.statement_file(
                short_code=query.get("short_code", ""), first=query.get("from", ""), last=query.get("to", ""),
                file_format=query.get("format", "csv"))
        except StatementRefused as refused:
            return 400, self.page(error=refused.message), {}
        return 200, content, {"Content-Type": content_type, "Content-Disposition": f'attachment; filename="{name}"'}

    # -- pages ----------------------------------------------------------------------------------
    def state(self) -> dict:
        with self.lock:
            return {
                "short_code": self.config.short_code, "balance": f"{self.balance:.2f}",
                "registrations": self.registrations,
                "customers": [{"trans_id": c.trans_id, "amount": f"{c.amount:.2f}", "msisdn": c.msisdn,
                               "reference": c.reference, "accepted": c.accepted, "note": c.note,
                               "confirmations": c.confirmations} for c in self.customers],
                "ledger": [{"receipt": e.receipt, "completed_at": e.completed_at.isoformat(), "paid_in": f"{e.paid_in:.2f}",
                            "withdrawn": f"{e.withdrawn:.2f}", "balance": f"{e.balance:.2f}"} for e in self.ledger],
                "b2c": {k: {"receipt": p.receipt, "amount": f"{p.amount:.2f}", "party_b": p.party_b,
                            "result_code": p.result_code, "requests": p.requests} for k, p in self.payments.items()},
            }

    @staticmethod
    def _confirmation_text(customer: Customer) -> str:
        if not customer.accepted:
            return "—"
        if customer.confirmation_withheld:
            return "not sent (the lender missed it)"
        if not customer.confirmations:
            return "not sent"
        return ", ".join("delivered" if code == 200 else f"failed ({code or 'no answer'})" for code in customer.confirmations)

    def page(self, result: Customer | None = None, *, error: str = "") -> str:
        notice = ""
        if result is not None:
            css = "ok" if result.accepted else "bad"
            withheld = " Confirmation not sent: the lender does not know of it." if result.confirmation_withheld else ""
            notice = (f'<p class="{css}" id="result">{html.escape(result.trans_id)}: {html.escape(result.note)}'
                      f' — {result.amount:.2f} from {html.escape(result.msisdn)} for "{html.escape(result.reference)}".'
                      f'{withheld}</p>')
        if error:
            notice = f'<p class="bad" id="error">{html.escape(error)}</p>'
        with self.lock:
            rows = "".join(
                f"<tr><td>{c.at:%Y-%m-%d %H:%M:%S}</td><td>{html.escape(c.trans_id)}</td><td>{html.escape(c.msisdn)}</td>"
                f"<td>{c.amount:.2f}</td><td>{html.escape(c.reference)}</td><td>{html.escape(c.note)}</td>"
                f"<td>{html.escape(self._confirmation_text(c))}</td></tr>"
                for c in reversed(self.customers[-50:]))
            registered = self.config.short_code in self.registrations
        form = (
            '<form method="post" action="/simulate">'
            '<label>Customer phone (international, no +) <input name="msisdn" value="27821234567" required></label>'
            '<label>Amount <input name="amount" value="100.00" required></label>'
            '<label>Account number (client number, or L + loan number) <input name="reference" required></label>'
            '<label>First name <input name="first_name" value="Jane"></label>'
            '<label><input type="checkbox" name="withhold_confirmation" value="1"> The lender misses the confirmation '
            "(as when its server is down): M-PESA takes the money but the lender is not told</label>"
            '<button type="submit">Pay the paybill</button></form>')
        today = self._now().date().isoformat()
        statement = (
            '<form method="get" action="/statement" id="statement">'
            f'<label>Short code <input name="short_code" value="{html.escape(self.config.short_code)}" required></label>'
            f'<label>From <input type="date" name="from" value="{today}" required></label>'
            f'<label>To <input type="date" name="to" value="{today}" required></label>'
            '<label>Format <select name="format"><option value="csv">CSV</option>'
            '<option value="xlsx">Excel (XLSX)</option></select></label>'
            '<button type="submit">Download statement</button></form>'
            f"<p>Dates are days in {html.escape(self.config.time_zone)}. The statement lists what this M-PESA "
            "completed since it started (it keeps nothing across a restart), newest first, as the organisation "
            "portal exports it; import it in Imali under Loans → Mobile-money statement import.</p>")
        status = ("URLs registered for short code " + html.escape(self.config.short_code)) if registered else \
            "No URLs registered yet: register them from the lender's mobile-money setup."
        return page(f"Local M-PESA — paybill {html.escape(self.config.short_code)}",
                    f"<p>{status}</p>{notice}<h2>Simulate a customer payment</h2>{form}"
                    f"<h2>Download statement</h2>{statement}"
                    f"<h2>Payments in</h2><table><tr><th>Time</th><th>Receipt</th><th>Phone</th><th>Amount</th>"
                    f"<th>Account</th><th>Result</th><th>Confirmation</th></tr>{rows}</table>")
