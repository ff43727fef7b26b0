"""MTN MoMo Open API over HTTP (httpx) (DOMAIN §11): a token per product (collection, disbursement) with
Basic api-user:api-key and the subscription key; request-to-pay and transfer with our
X-Reference-Id (the resource id and idempotency key) and X-Callback-Url; status by GET, which is
also the fallback when a callback never comes."""

from __future__ import annotations

import datetime as dt
import threading
import time
from decimal import Decimal, InvalidOperation

from .base import PaymentResult, PaymentState
from .http import new_session, refused, request


def party_id(number: str) -> str:
    return number.strip().lstrip("+")


class MomoAdapter:
    provider = "momo"

    def __init__(self, *, base_url: str, api_user: str, api_key: str, subscription_key: str,
                 target_environment: str, currency: str, timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.api_user, self.api_key, self.subscription_key = api_user, api_key, subscription_key
        self.target_environment, self.currency = target_environment, currency
        self.client = new_session()
        self.timeout = timeout
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_setup(cls, setup, *, timeout: float = 10.0) -> MomoAdapter:
        return cls(base_url=setup.base_url, api_user=setup.consumer_key, api_key=setup.consumer_secret,
                   subscription_key=setup.subscription_key, target_environment=setup.target_environment,
                   currency=setup.currency or setup.entity.currency, timeout=timeout)

    def token(self, product: str) -> str:
        with self._lock:
            token, expires = self._tokens.get(product, ("", 0.0))
            if token and time.monotonic() < expires - 60:
                return token
            response = request(self.client, "POST", f"{self.base_url}/{product}/token/", timeout=self.timeout,
                               auth=(self.api_user, self.api_key),
                               headers={"Ocp-Apim-Subscription-Key": self.subscription_key})
            if response.status_code != 200:
                raise refused(response)
            body = response.json()
            self._tokens[product] = (body["access_token"], time.monotonic() + int(body.get("expires_in") or 3600))
            return body["access_token"]

    def _headers(self, product: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(product)}", "X-Target-Environment": self.target_environment,
                "Ocp-Apim-Subscription-Key": self.subscription_key, **extra}

    def _create(self, product: str, resource: str, reference_id: str, body: dict, callback_url: str) -> None:
        headers = self._headers(product, **{"X-Reference-Id": reference_id})
        if callback_url:
            headers["X-Callback-Url"] = callback_url
        response = request(self.client, "POST", f"{self.base_url}/{product}/v1_0/{resource}", timeout=self.timeout, json=body, headers=headers)
        # 409: this reference id exists already, i.e. an earlier try arrived; its status tells the rest.
        if response.status_code not in (202, 409):
            raise refused(response)

    def _status(self, product: str, resource: str, reference_id: str) -> PaymentResult:
        response = request(self.client, "GET", f"{self.base_url}/{product}/v1_0/{resource}/{reference_id}", timeout=self.timeout,
                           headers=self._headers(product))
        if response.status_code == 404:
            return PaymentResult(state=PaymentState.NOT_FOUND, originator_id=reference_id)
        if response.status_code != 200:
            raise refused(response)
        return status_result(response.json(), reference_id)

    def register_urls(self, **_) -> None:
        # MoMo takes the callback URL with each request (X-Callback-Url): nothing to register.
        return None

    def send_payment(self, *, originator_id: str, msisdn: str, amount: Decimal, remarks: str,
                     result_url: str, timeout_url: str = "") -> PaymentResult:
        self._create("disbursement", "transfer", originator_id, {
            "amount": f"{amount:.2f}", "currency": self.currency, "externalId": originator_id,
            "payee": {"partyIdType": "MSISDN", "partyId": party_id(msisdn)},
            "payerMessage": remarks[:160], "payeeNote": remarks[:160],
        }, result_url)
        return PaymentResult(state=PaymentState.PENDING, originator_id=originator_id)

    def payment_status(self, *, originator_id: str, **_) -> PaymentResult:
        return self._status("disbursement", "transfer", originator_id)

    def request_to_pay(self, *, reference_id: str, msisdn: str, amount: Decimal, external_id: str,
                       message: str, callback_url: str) -> None:
        self._create("collection", "requesttopay", reference_id, {
            "amount": f"{amount:.2f}", "currency": self.currency, "externalId": external_id,
            "payer": {"partyIdType": "MSISDN", "partyId": party_id(msisdn)},
            "payerMessage": message[:160], "payeeNote": message[:160],
        }, callback_url)

    def request_status(self, *, reference_id: str) -> PaymentResult:
        return self._status("collection", "requesttopay", reference_id)


def status_result(body: dict, reference_id: str) -> PaymentResult:
    """A status body (GET answer or callback) as a PaymentResult; unreadable fields raise ValueError."""
    state = str(body.get("status", "")).upper()
    if state not in (PaymentState.PENDING, PaymentState.SUCCESSFUL, PaymentState.FAILED):
        raise ValueError(f"unknown status {state!r}")
    try:
        amount = Decimal(str(body["amount"])) if body.get("amount") not in (None, "") else None
    except InvalidOperation:
        raise ValueError("amount is not a number") from None
    reason = body.get("reason") or ""
    if isinstance(reason, dict):
        reason = reason.get("code") or reason.get("message") or ""
    party = body.get("payee") or body.get("payer") or {}
    return PaymentResult(
        state=state, originator_id=reference_id, transaction_id=str(body.get("financialTransactionId") or ""),
        amount=amount, reason=str(reason), msisdn=str(party.get("partyId", "")),
        completed_at=dt.datetime.now(dt.UTC) if state != PaymentState.PENDING else None,
    )
