"""M-PESA Daraja over HTTP (httpx) (DOMAIN §11): OAuth client-credentials token, C2B register URL, B2C
payment request (result by callback, QueueTimeOutURL on a provider time-out) and the transaction
status query (its result also arrives by callback, at the URL given with the query)."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

from .base import PaymentResult, PaymentState, ProviderError
from .http import new_session, refused, request

# Daraja answers ResponseCode "0" when a request is accepted for processing.
ACCEPTED = "0"
# The status-query result code for "no such transaction": Safaricom does not publish one, so this is
# the local peer's convention (peers/mpesa NOT_FOUND), kept in one place for a production value.
STATUS_NOT_FOUND_CODES = frozenset({"R000001"})


def msisdn_digits(number: str) -> str:
    """Daraja wants the number in international form without the plus: 254712345678."""
    return number.strip().lstrip("+")


def amount_text(amount: Decimal) -> str:
    return f"{amount:.2f}"


class MpesaAdapter:
    provider = "mpesa"

    def __init__(self, *, base_url: str, consumer_key: str, consumer_secret: str, short_code: str,
                 initiator_name: str = "", security_credential: str = "", timeout: float = 10.0):
        self.base_url = base_url.rstrip("/")
        self.consumer_key, self.consumer_secret = consumer_key, consumer_secret
        self.short_code = short_code
        self.initiator_name, self.security_credential = initiator_name, security_credential
        self.client = new_session()
        self.timeout = timeout
        self._token = ""
        self._token_expires = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_setup(cls, setup, *, timeout: float = 10.0) -> MpesaAdapter:
        return cls(base_url=setup.base_url, consumer_key=setup.consumer_key, consumer_secret=setup.consumer_secret,
                   short_code=setup.short_code, initiator_name=setup.initiator_name,
                   security_credential=setup.security_credential, timeout=timeout)

    # -- auth -----------------------------------------------------------------------------------
    def token(self) -> str:
        with self._lock:
            # A minute's margin: a token that expires on the wire gets the request refused.
            if self._token and time.monotonic() < self._token_expires - 60:
                return self._token
            response = request(self.client, "GET", f"{self.base_url}/oauth/v1/generate", timeout=self.timeout,
                               params={"grant_type": "client_credentials"},
                               auth=(self.consumer_key, self.consumer_secret))
            if response.status_code != 200:
                raise refused(response)
            body = response.json()
            self._token = body["access_token"]
            self._token_expires = time.monotonic() + int(body.get("expires_in") or 3599)
            return self._token

    def _post(self, path: str, body: dict) -> dict:
        response = request(self.client, "POST", f"{self.base_url}{path}", timeout=self.timeout, json=body,
                           headers={"Authorization": f"Bearer {self.token()}"})
        if response.status_code == 401:
            # The token was revoked or expired early: one fresh token, one more try.
            with self._lock:
                self._token = ""
            response = request(self.client, "POST", f"{self.base_url}{path}", timeout=self.timeout, json=body,
                               headers={"Authorization": f"Bearer {self.token()}"})
        if response.status_code != 200:
            raise refused(response)
        answer = response.json()
        if str(answer.get("ResponseCode", ACCEPTED)) != ACCEPTED:
            raise ProviderError(f"M-PESA refused the request: {answer.get('ResponseDescription', '')}",
                                code=str(answer.get("ResponseCode")))
        return answer

    # -- C2B ------------------------------------------------------------------------------------
    def register_urls(self, *, validation_url: str, confirmation_url: str) -> None:
        # "Cancelled": when our validation URL cannot be reached the payment is refused, so no
        # money arrives that was never checked against an account reference.
        self._post("/mpesa/c2b/v2/registerurl", {
            "ShortCode": self.short_code, "ResponseType": "Cancelled",
            "ConfirmationURL": confirmation_url, "ValidationURL": validation_url,
        })

    # -- B2C ------------------------------------------------------------------------------------
    def send_payment(self, *, originator_id: str, msisdn: str, amount: Decimal, remarks: str,
                     result_url: str, timeout_url: str) -> PaymentResult:
        answer = self._post("/mpesa/b2c/v3/paymentrequest", {
            "OriginatorConversationID": originator_id, "InitiatorName": self.initiator_name,
            "SecurityCredential": self.security_credential, "CommandID": "BusinessPayment",
            "Amount": amount_text(amount), "PartyA": self.short_code, "PartyB": msisdn_digits(msisdn),
            "Remarks": remarks[:100] or "Loan payout", "QueueTimeOutURL": timeout_url, "ResultURL": result_url,
            "Occasion": "",
        })
        return PaymentResult(state=PaymentState.PENDING, originator_id=originator_id,
                             conversation_id=str(answer.get("ConversationID", "")))

    def payment_status(self, *, originator_id: str, result_url: str = "", timeout_url: str = "") -> PaymentResult:
        """Daraja answers a status query asynchronously: this only has it accepted; the result is
        POSTed to `result_url` (services.mpesa_result_apply reads it)."""
        self._post("/mpesa/transactionstatus/v1/query", {
            "Initiator": self.initiator_name, "SecurityCredential": self.security_credential,
            "CommandID": "TransactionStatusQuery", "TransactionID": "", "OriginatorConversationID": originator_id,
            "PartyA": self.short_code, "IdentifierType": "4", "ResultURL": result_url,
            "QueueTimeOutURL": timeout_url, "Remarks": "Status before resend", "Occasion": "",
        })
        return PaymentResult(state=PaymentState.PENDING, originator_id=originator_id)

    def request_to_pay(self, **_) -> None:
        raise ProviderError("M-PESA payments in are made by the client (C2B); there is no request to pay.")

    def request_status(self, **_) -> PaymentResult:
        raise ProviderError("M-PESA has no request to pay.")
