"""A local MTN MoMo Open API on loopback that speaks the published API and enforces it (DOMAIN §11):

- `POST /{collection|disbursement}/token/` with Basic api-user:api-key and Ocp-Apim-Subscription-Key
  → `{access_token, token_type, expires_in}`; tokens are per product.
- `POST /collection/v1_0/requesttopay` and `POST /disbursement/v1_0/transfer`: Bearer of that
  product, X-Reference-Id a UUID (the resource id and idempotency key: a second POST with it is
  409 RESOURCE_ALREADY_EXIST and changes nothing), X-Target-Environment ours, optional
  X-Callback-Url; body amount (string), currency, externalId, payer|payee {partyIdType MSISDN,
  partyId}, payerMessage, payeeNote → 202 with an empty body.
- `GET .../requesttopay/{ref}` and `.../transfer/{ref}` → the fields plus financialTransactionId,
  status PENDING | SUCCESSFUL | FAILED and reason; 404 RESOURCE_NOT_FOUND for an unknown ref.
- Callbacks: PUT to X-Callback-Url with the status body once final (may be lost or repeated).

A transfer completes after `transfer_delay`; a request-to-pay waits for the customer on the page
at `/` (or completes by itself with `auto_approve`). Peer conventions: party ids starting with a
`failing_prefixes` entry fail with PAYER_NOT_FOUND / PAYEE_NOT_FOUND; an amount above the balance
fails with NOT_ENOUGH_FUNDS."""

from __future__ import annotations

import base64
import html
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ..httppeer import HttpPeer, Request, page

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.I)


@dataclass
class MomoConfig:
    api_user: str = "5f1a7c3e-0000-4000-8000-000000000001"
    api_key: str = "local-momo-api-key"
    subscription_key: str = "local-momo-subscription-key"
    target_environment: str = "mtnzambia"
    currency: str = "ZMW"
    transfer_delay: float = 0.05
    auto_approve: bool = False
    failing_prefixes: tuple[str, ...] = ("99",)


@dataclass
class Resource:
    product: str
    reference_id: str
    body: dict
    status: str = "PENDING"
    reason: str = ""
    financial_transaction_id: str = ""
    callback_url: str = ""
    created: float = 0.0


class MomoPeer(HttpPeer):
    kind = "momo"

    def __init__(self, config: MomoConfig | None = None, *, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host=host, port=port)
        self.config = config or MomoConfig()
        self.faults.callback_delay = 0.0
        self.tokens: dict[str, tuple[str, float]] = {}
        self.resources: dict[tuple[str, str], Resource] = {}
        self.balance = Decimal("1000000.00")
        self.transfers_paid = 0

    def is_page(self, path: str) -> bool:
        return path in ("/", "/decide", "/state.json")

    @staticmethod
    def _error(status: int, code: str, message: str):
        return status, {"code": code, "message": message}, {}

    def route(self, request: Request):
        path, method = request.path, request.method
        if path == "/" and method == "GET":
            return 200, self.page(), {}
        if path == "/state.json":
            return 200, self.state(), {}
        if path == "/decide" and method == "POST":
            form = request.form()
            self.customer_decides(form.get("reference_id", ""), approve=form.get("decision") == "approve")
            return 303, None, {"Location": "/"}
        match = re.fullmatch(r"/(collection|disbursement)/token/", path)
        if match and method == "POST":
            return self.token(request, match.group(1))
        match = re.fullmatch(r"/(collection|disbursement)/v1_0/(requesttopay|transfer)(?:/([^/]+))?", path)
        if not match or (match.group(1), match.group(2)) not in (("collection", "requesttopay"), ("disbursement", "transfer")):
            return self._error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
        product, _, ref = match.groups()
        if request.headers.get("Ocp-Apim-Subscription-Key") != self.config.subscription_key:
            return 401, {"statusCode": 401, "message": "Access denied due to invalid subscription key."}, {}
        if not self._bearer_ok(request, product):
            return 401, {"statusCode": 401, "message": "Access denied due to invalid or expired token."}, {}
        if request.headers.get("X-Target-Environment") != self.config.target_environment:
            return self._error(400, "INVALID_TARGET_ENVIRONMENT", "X-Target-Environment is wrong.")
        if method == "GET" and ref:
            resource = self.resources.get((product, ref))
            if resource is None:
                return self._error(404, "RESOURCE_NOT_FOUND", "Requested resource was not found.")
            return 200, self.status_body(resource), {}
        if method == "POST" and not ref:
            return self.create(request, product)
        return self._error(405, "METHOD_NOT_ALLOWED", "Method not allowed.")

    def token(self, request: Request, product: str):
        if request.headers.get("Ocp-Apim-Subscription-Key") != self.config.subscription_key:
            return 401, {"statusCode": 401, "message": "Access denied due to invalid subscription key."}, {}
        auth = request.headers.get("Authorization", "")
        expected = base64.b64encode(f"{self.config.api_user}:{self.config.api_key}".encode()).decode()
        if not auth.startswith("Basic ") or not secrets.compare_digest(auth[6:], expected):
            return 401, {"error": "login_failed"}, {}
        token = secrets.token_urlsafe(24)
        self.tokens[token] = (product, time.monotonic() + 3600)
        return 200, {"access_token": token, "token_type": "access_token", "expires_in": 3600}, {}

    def _bearer_ok(self, request: Request, product: str) -> bool:
        auth = request.headers.get("Authorization", "")
        found = self.tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        return found is not None and found[0] == product and time.monotonic() < found[1]

    def create(self, request: Request, product: str):
        ref = request.headers.get("X-Reference-Id", "")
        if not UUID_RE.match(ref):
            return self._error(400, "INVALID_REFERENCE_ID", "X-Reference-Id must be a UUID version 4.")
        body = request.json()
        party_key = "payer" if product == "collection" else "payee"
        if not isinstance(body, dict):
            return self._error(400, "INVALID_BODY", "The body must be a JSON object.")
        amount = body.get("amount")
        try:
            money = Decimal(amount) if isinstance(amount, str) else None
        except InvalidOperation:
            money = None
        if money is None or not money.is_finite() or money <= 0:
            return self._error(400, "INVALID_AMOUNT", "amount must be a positive number given as a string.")
        if body.get("currency") != self.config.currency:
            return self._error(400, "INVALID_CURRENCY", f"currency must be {self.config.currency}.")
        party = body.get(party_key)
        if not (isinstance(party, dict) and party.get("partyIdType") == "MSISDN"
                and re.fullmatch(r"\d{9,15}", str(party.get("partyId", "")))):
            return self._error(400, "INVALID_PARTY", f"{party_key} must be {{partyIdType: MSISDN, partyId: digits}}.")
        callback = request.headers.get("X-Callback-Url", "")
        with self.lock:
            if (product, ref) in self.resources:
                return 409, {"code": "RESOURCE_ALREADY_EXIST", "message": "Duplicated reference id."}, {}
            resource = Resource(product, ref, body, callback_url=callback, created=time.monotonic())
            self.resources[(product, ref)] = resource
        if product == "disbursement":
            threading.Timer(self.config.transfer_delay, self._complete_transfer, args=(resource,)).start()
        elif self.config.auto_approve:
            threading.Timer(self.config.transfer_delay, self.customer_decides, args=(ref,), kwargs={"approve": True}).start()
        return 202, None, {}

    def _finish(self, resource: Resource, status: str, reason: str = "") -> None:
        with self.lock:
            if resource.status != "PENDING":
                return
            resource.status, resource.reason = status, reason
            if status == "SUCCESSFUL":
                resource.financial_transaction_id = str(secrets.randbelow(10**9)).zfill(9)
        self.call_later(resource.callback_url, self.status_body(resource), method="PUT")

    def _complete_transfer(self, resource: Resource) -> None:
        amount = Decimal(resource.body["amount"])
        party = resource.body["payee"]["partyId"]
        if party.startswith(self.config.failing_prefixes):
            return self._finish(resource, "FAILED", "PAYEE_NOT_FOUND")
        with self.lock:
            if amount > self.balance:
                failed = True
            else:
                failed = False
                self.balance -= amount
                self.transfers_paid += 1
        self._finish(resource, "FAILED" if failed else "SUCCESSFUL", "NOT_ENOUGH_FUNDS" if failed else "")

    def customer_decides(self, reference_id: str, *, approve: bool) -> None:
        resource = self.resources.get(("collection", reference_id))
        if resource is None:
            return
        party = resource.body["payer"]["partyId"]
        if party.startswith(self.config.failing_prefixes):
            return self._finish(resource, "FAILED", "PAYER_NOT_FOUND")
        if approve:
            with self.lock:
                self.balance += Decimal(resource.body["amount"])
            return self._finish(resource, "SUCCESSFUL")
        return self._finish(resource, "FAILED", "APPROVAL_REJECTED")

    def status_body(self, resource: Resource) -> dict:
        body = {k: v for k, v in resource.body.items()}
        body["status"] = resource.status
        if resource.financial_transaction_id:
            body["financialTransactionId"] = resource.financial_transaction_id
        if resource.reason:
            body["reason"] = resource.reason
        body["referenceId"] = resource.reference_id
        return body

    def state(self) -> dict:
        with self.lock:
            return {"balance": f"{self.balance:.2f}", "transfers_paid": self.transfers_paid,
                    "resources": [{"product": r.product, "reference_id": r.reference_id, **self.status_body(r)}
                                  for r in self.resources.values()]}

    def page(self) -> str:
        with self.lock:
            resources = list(self.resources.values())
        rows = []
        for r in reversed(resources[-50:]):
            party = r.body.get("payer") or r.body.get("payee") or {}
            action = ""
            if r.product == "collection" and r.status == "PENDING":
                ref = html.escape(r.reference_id)
                action = (f'<form method="post" action="/decide" style="display:inline"><input type="hidden" name="reference_id" '
                          f'value="{ref}"><button name="decision" value="approve">Approve</button>'
                          f'<button name="decision" value="reject">Refuse</button></form>')
            rows.append(f"<tr><td>{'Request to pay' if r.product == 'collection' else 'Transfer'}</td>"
                        f"<td>{html.escape(str(party.get('partyId', '')))}</td><td>{html.escape(r.body.get('amount', ''))} "
                        f"{html.escape(r.body.get('currency', ''))}</td><td>{html.escape(r.status)} {html.escape(r.reason)}</td>"
                        f"<td>{action}</td></tr>")
        return page(f"Local MTN MoMo — {html.escape(self.config.target_environment)}",
                    "<p>The customer's phone: approve or refuse each request to pay.</p><table><tr><th>Kind</th>"
                    "<th>Phone</th><th>Amount</th><th>Status</th><th></th></tr>" + "".join(rows) + "</table>")


def new_reference() -> str:
    return str(uuid.uuid4())
