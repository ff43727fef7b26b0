"""The payment stream as Imali sees it: a protocol of the seed's functions, plain data in and
out. The wire format is only in `adapters/http.py`; the local peer (imali.peers.paystream) speaks
it over loopback."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Protocol


class StreamUnavailable(Exception):
    """The stream did not answer (refused, timed out, 5xx): safe to retry with the same
    idempotency reference."""


class StreamRejected(Exception):
    """The stream answered and refused the request. `field` names the field it is about, if any."""

    def __init__(self, code: str, message: str, field: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Instalment:
    seq: int
    action_date: dt.date
    amount: Decimal
    tracking_days: int = 0


@dataclass(frozen=True)
class Document:
    """What a print function returns: the document's kind and its fields, drawn as a PDF by
    imali.paystream.documents."""

    kind: str  # promissory_note | cancellation | client_credit | card_issue_receipt
    reference: str
    fields: dict[str, str] = field(default_factory=dict)
    lines: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class WalletState:
    reference: str
    status: str  # requested | created | failed
    wallet_number: str = ""
    account_reference: str = ""
    failure: str = ""


@dataclass(frozen=True)
class CollectionOutcome:
    """One line of the stream's collection results: an instalment collected, declined (failed),
    or returned unpaid after it was collected (`original_reference` names the collection)."""

    position: int
    reference: str
    note_reference: str
    seq: int
    result: str  # collected | failed | unpaid
    amount: Decimal
    on: dt.date
    reason: str = ""
    original_reference: str = ""


@dataclass(frozen=True)
class MalformedResult:
    """A line of the results feed that could not be read (a key missing, a bad date or amount):
    kept with the reason so a person can follow it up, while the feed moves on past it."""

    position: int | None
    reference: str
    reason: str
    raw: str


@dataclass(frozen=True)
class AuthenticationState:
    """Where a DebiCheck authentication (a mandate's, or an amendment's) stands at the bank:
    AUTHENTICATING until `authenticate_by`, then APPROVED, REJECTED or TIMED_OUT (or CANCELLED)."""

    reference: str
    status: str
    authenticate_by: dt.datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class MandateStatusReply:
    mandate: AuthenticationState
    amendment: AuthenticationState | None = None


class PaymentStream(Protocol):
    def add_employer(self, *, key: str, employer_number: str, name: str) -> str: ...

    def add_client(self, *, key: str, employer_reference: str, client_number: str, branch: str, surname: str,
                   first_names: str, id_number: str, cellphone: str, date_of_birth: dt.date | None,
                   gender: str) -> str: ...

    def create_promissory(self, *, key: str, client_reference: str, account_reference: str, stream: str,
                          instalments: list[Instalment], mandate_reference: str = "") -> tuple[str, str]:
        """(note reference, status). `mandate_reference`: a DebiCheck collection, under that mandate."""
        ...

    def cancel_promissory(self, *, key: str, note_reference: str) -> str: ...

    def print_promissory(self, *, key: str, note_reference: str) -> Document: ...

    def edit_instalment(self, *, key: str, note_reference: str, seq: int, action_date: dt.date | None,
                        amount: Decimal | None, tracking_days: int | None) -> None: ...

    def add_client_account(self, *, key: str, client_reference: str, branch_code: str, account_number: str,
                           account_type: str, holder: str) -> str: ...

    def pay_to_client_account(self, *, key: str, client_reference: str, parts: list[tuple[str, Decimal]],
                              cash_amount: Decimal) -> str: ...

    def print_client_credit(self, *, key: str, payment_reference: str) -> Document: ...

    def create_wallet(self, *, key: str, client_reference: str, cellphone: str, date_of_birth: dt.date | None,
                      gender: str) -> str: ...

    def wallet_status(self, *, key: str, wallet_reference: str) -> WalletState: ...

    def print_card_issue_receipt(self, *, key: str, client_reference: str, card_number: str) -> Document: ...

    def create_mandate(self, *, key: str, client_reference: str, account_reference: str, contract_reference: str,
                       authentication: str, value_type: str, debit_sequence: str, instalment: Decimal,
                       maximum_collection: Decimal, frequency: str, collection_day: int, first_collection_date: dt.date,
                       date_adjustment: bool, adjustment_category: str, adjustment_amount: Decimal | None,
                       adjustment_rate: Decimal | None, tracking_days: int) -> AuthenticationState: ...

    def amend_mandate(self, *, key: str, mandate_reference: str, instalment: Decimal, maximum_collection: Decimal,
                      collection_day: int) -> AuthenticationState: ...

    def mandate_status(self, *, key: str, mandate_reference: str) -> MandateStatusReply: ...

    def cancel_mandate(self, *, key: str, mandate_reference: str) -> str: ...

    def collection_results(self, *, key: str, after: int, limit: int) -> tuple[list[CollectionOutcome], list[MalformedResult], int]:
        """The results after feed position `after`, the lines that could not be read, and the last
        position returned."""
        ...
