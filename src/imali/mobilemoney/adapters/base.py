"""What the services need from a mobile-money provider, whatever its API."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol


class ProviderError(Exception):
    """The provider answered and refused (wrong credentials, bad request): retrying will not help."""

    def __init__(self, message: str, *, status: int | None = None, code: str = ""):
        super().__init__(message)
        self.status, self.code = status, code


class ProviderUnavailable(ProviderError):
    """No usable answer (connection refused, timeout, 5xx): the request may or may not have arrived,
    so only a status query tells whether to send again."""


class DestinationRefused(ProviderError):
    """The setup's base URL is not one this system may connect to (core.destination): nothing was
    sent, and retrying will not help until the address or the operator's settings change."""


class PaymentState:
    PENDING = "PENDING"
    SUCCESSFUL = "SUCCESSFUL"
    FAILED = "FAILED"
    NOT_FOUND = "NOT_FOUND"  # the provider has no transaction under our id: it never arrived


@dataclass(frozen=True)
class PaymentResult:
    """The state of one payment (out, or a MoMo request-to-pay in) under our originator id."""

    state: str
    originator_id: str
    conversation_id: str = ""
    transaction_id: str = ""  # the provider's confirmation number once paid
    amount: Decimal | None = None
    completed_at: dt.datetime | None = None
    reason: str = ""
    msisdn: str = ""


class MobileMoneyAdapter(Protocol):
    provider: str

    def register_urls(self, *, validation_url: str, confirmation_url: str) -> None:
        """Tell the provider where to send payments in (M-PESA C2B); MoMo takes a URL per request."""

    def send_payment(self, *, originator_id: str, msisdn: str, amount: Decimal, remarks: str,
                     result_url: str, timeout_url: str) -> PaymentResult:
        """Pay `amount` to `msisdn`. Accepted for processing answers PENDING; the result comes by
        callback or `payment_status`. Sending the same originator id again never pays twice."""

    def payment_status(self, *, originator_id: str) -> PaymentResult:
        """Where the payment sent under `originator_id` stands (NOT_FOUND: it never arrived)."""

    def request_to_pay(self, *, reference_id: str, msisdn: str, amount: Decimal, external_id: str,
                       message: str, callback_url: str) -> None:
        """Ask a client to approve a payment from their wallet (MoMo collections)."""

    def request_status(self, *, reference_id: str) -> PaymentResult:
        """Where a request-to-pay stands."""
