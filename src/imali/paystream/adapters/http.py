"""The payment stream over HTTP (httpx). The wire format lives here and nowhere else:

    POST {base_url}/v1/{Function}          JSON body, one function per path
    Authorization: Basic username:password
    Idempotency-Key: <uuid>                the same key → the stream answers from its record
    200 {"result": {...}}                   done
    4xx {"error": {"code", "message", "field"}}   refused (401: bad credentials, 403: no right)
    5xx, refused connection, timeout        unavailable: retry with the same key

Amounts travel as strings with two decimals ("1250.00"), dates as ISO (YYYY-MM-DD). The real
service's formats are not public (DOMAIN §7): this is Imali's definition, and the local peer
(imali.peers.paystream) speaks it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx
from django.core.exceptions import ValidationError

from imali.core.money import parse_amount

from ..models import CollectionKind
from .base import (
    AuthenticationState,
    CollectionOutcome,
    Document,
    Instalment,
    MalformedResult,
    MandateStatusReply,
    StreamRejected,
    StreamUnavailable,
    WalletState,
)


def _money(amount: Decimal) -> str:
    return f"{amount:.2f}"


class HttpPaymentStream:
    def __init__(self, *, base_url: str, username: str, password: str, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None):
        self._client = httpx.Client(base_url=base_url.rstrip("/"), auth=(username, password), timeout=timeout,
                                    transport=transport)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> HttpPaymentStream:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _call(self, function: str, key: str, body: dict) -> dict:
        try:
            response = self._client.post(f"/v1/{function}", json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError as exc:  # connect, read and write errors, timeouts
            raise StreamUnavailable(f"{function}: {type(exc).__name__}") from exc
        if response.status_code >= 500:
            raise StreamUnavailable(f"{function}: HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError as exc:
            raise StreamUnavailable(f"{function}: HTTP {response.status_code} without JSON") from exc
        if response.status_code == 200 and isinstance(payload.get("result"), dict):
            return payload["result"]
        error = payload.get("error") or {}
        if response.status_code == 401:
            raise StreamRejected("unauthorised", "The payment stream refused the user name or password in the stream settings.")
        raise StreamRejected(str(error.get("code") or f"http_{response.status_code}"),
                             str(error.get("message") or f"The payment stream refused the request (HTTP {response.status_code})."),
                             str(error.get("field") or ""))

    @staticmethod
    def _document(result: dict) -> Document:
        """A printed document as the stream sent it, checked before it is drawn: a kind Imali
        draws, each line with the columns of its kind, every amount an amount. A document that is
        not one is refused (a 400 naming the stream's fault), not drawn into a 500."""
        kind = result.get("kind") if isinstance(result, dict) else None
        if kind not in DOCUMENT_LINE_KEYS:
            raise StreamRejected("invalid_document", f"The stream sent a document of an unknown kind ({str(kind)[:40]!r}).")
        fields, lines = result.get("fields") or {}, result.get("lines") or []
        if not isinstance(fields, dict) or not isinstance(lines, list) or not all(isinstance(line, dict) for line in lines):
            raise StreamRejected("invalid_document", "The stream sent a document whose fields or lines are not readable.")
        document = Document(kind=kind, reference=str(result.get("reference", ""))[:40],
                            fields={str(k): str(v) for k, v in fields.items()},
                            lines=[{str(k): str(v) for k, v in line.items()} for line in lines])
        amounts = [document.fields[name] for name in ("total", "amount") if name in document.fields]
        for line in document.lines:
            missing = [key for key in DOCUMENT_LINE_KEYS[kind] if key not in line]
            if missing:
                raise StreamRejected("invalid_document", f"A line of the stream's document has no {', '.join(missing)}.")
            amounts.append(line["amount"])
        for amount in amounts:
            try:
                parse_amount(amount, field="amount", allow_zero=True)
            except ValidationError:
                raise StreamRejected("invalid_document", f"The stream's document holds {amount[:40]!r} as an amount.") from None
        return document

    def add_employer(self, *, key, employer_number, name):
        return self._call("AddEmployer", key, {"employerNumber": employer_number, "name": name})["employerRef"]

    def add_client(self, *, key, employer_reference, client_number, branch, surname, first_names, id_number,
                   cellphone, date_of_birth, gender):
        return self._call("AddClient", key, {
            "employerRef": employer_reference, "clientNumber": client_number, "branch": branch, "surname": surname,
            "firstNames": first_names, "idNumber": id_number, "cellphone": cellphone,
            "dateOfBirth": date_of_birth.isoformat() if date_of_birth else "", "gender": gender})["clientRef"]

    def create_promissory(self, *, key, client_reference, account_reference, stream, instalments: list[Instalment],
                          mandate_reference: str = ""):
        body = {"clientRef": client_reference, "accountRef": account_reference, "stream": stream,
                "instalments": [{"seq": i.seq, "actionDate": i.action_date.isoformat(), "amount": _money(i.amount),
                                 "trackingDays": i.tracking_days} for i in instalments]}
        if mandate_reference:
            body["mandateRef"] = mandate_reference
        result = self._call("CreatePromissory", key, body)
        return result["noteRef"], result["status"]

    def cancel_promissory(self, *, key, note_reference):
        return self._call("CancelPromissory", key, {"noteRef": note_reference})["status"]

    def print_promissory(self, *, key, note_reference):
        return self._document(self._call("PrintPromissory", key, {"noteRef": note_reference}))

    def edit_instalment(self, *, key, note_reference, seq, action_date: dt.date | None, amount: Decimal | None,
                        tracking_days: int | None):
        body: dict = {"noteRef": note_reference, "seq": seq}
        if action_date is not None:
            body["actionDate"] = action_date.isoformat()
        if amount is not None:
            body["amount"] = _money(amount)
        if tracking_days is not None:
            body["trackingDays"] = tracking_days
        self._call("EditInstalment", key, body)

    def add_client_account(self, *, key, client_reference, branch_code, account_number, account_type, holder):
        return self._call("AddClientAccount", key, {
            "clientRef": client_reference, "branchCode": branch_code, "accountNumber": account_number,
            "accountType": account_type, "holder": holder})["accountRef"]

    def pay_to_client_account(self, *, key, client_reference, parts, cash_amount):
        return self._call("PayToClientAccount", key, {
            "clientRef": client_reference, "cashAmount": _money(cash_amount),
            "accounts": [{"accountRef": ref, "amount": _money(amount)} for ref, amount in parts]})["paymentRef"]

    def print_client_credit(self, *, key, payment_reference):
        return self._document(self._call("PrintClientCredit", key, {"paymentRef": payment_reference}))

    def create_wallet(self, *, key, client_reference, cellphone, date_of_birth, gender):
        return self._call("CreateWallet", key, {
            "clientRef": client_reference, "cellphone": cellphone,
            "dateOfBirth": date_of_birth.isoformat() if date_of_birth else "", "gender": gender})["walletRequestRef"]

    def wallet_status(self, *, key, wallet_reference):
        result = self._call("WalletStatus", key, {"walletRequestRef": wallet_reference})
        return WalletState(reference=wallet_reference, status=result["status"], wallet_number=result.get("walletNumber", ""),
                           account_reference=result.get("accountRef", ""), failure=result.get("failure", ""))

    def print_card_issue_receipt(self, *, key, client_reference, card_number):
        return self._document(self._call("PrintCardIssueReceipt", key, {"clientRef": client_reference, "cardNumber": card_number}))

    def create_mandate(self, *, key, client_reference, account_reference, contract_reference, authentication, value_type,
                       debit_sequence, instalment, maximum_collection, frequency, collection_day, first_collection_date,
                       date_adjustment, adjustment_category, adjustment_amount, adjustment_rate, tracking_days):
        body = {"clientRef": client_reference, "accountRef": account_reference, "contractReference": contract_reference,
                "authentication": authentication, "valueType": value_type, "debitSequence": debit_sequence,
                "instalment": _money(instalment), "maximumCollection": _money(maximum_collection), "frequency": frequency,
                "collectionDay": collection_day, "firstCollectionDate": first_collection_date.isoformat(),
                "dateAdjustment": bool(date_adjustment), "adjustmentCategory": adjustment_category,
                "trackingDays": tracking_days}
        if adjustment_amount is not None:
            body["adjustmentAmount"] = _money(adjustment_amount)
        if adjustment_rate is not None:
            body["adjustmentRate"] = f"{adjustment_rate:.3f}"
        result = self._call("CreateMandate", key, body)
        return _authentication(result, "mandateRef")

    def amend_mandate(self, *, key, mandate_reference, instalment, maximum_collection, collection_day):
        result = self._call("AmendMandate", key, {"mandateRef": mandate_reference, "instalment": _money(instalment),
                                                  "maximumCollection": _money(maximum_collection),
                                                  "collectionDay": collection_day})
        return _authentication(result, "amendmentRef")

    def mandate_status(self, *, key, mandate_reference):
        result = self._call("MandateStatus", key, {"mandateRef": mandate_reference})
        amendment = result.get("amendment")
        return MandateStatusReply(mandate=_authentication({**result, "mandateRef": mandate_reference}, "mandateRef"),
                                  amendment=_authentication(amendment, "amendmentRef") if isinstance(amendment, dict) else None)

    def cancel_mandate(self, *, key, mandate_reference):
        return self._call("CancelMandate", key, {"mandateRef": mandate_reference})["status"]

    def collection_results(self, *, key, after, limit):
        result = self._call("CollectionResults", key, {"after": after, "limit": limit})
        rows: list[CollectionOutcome] = []
        malformed: list[MalformedResult] = []
        for raw in result.get("results") or []:
            outcome = _outcome(raw)
            (malformed if isinstance(outcome, MalformedResult) else rows).append(outcome)
        last = result.get("last", after)
        if not isinstance(last, int) or isinstance(last, bool) or not after <= last <= MAX_FEED_POSITION:
            # Kept as the place to read on from: a position that is not one would stop (or skip) the feed.
            raise StreamRejected("invalid_feed_position", f"The stream's feed position {last!r} is not a whole number "
                                                          f"from {after} to {MAX_FEED_POSITION}.")
        return rows, malformed, last


def _authentication(result: dict, name: str) -> AuthenticationState:
    by = result.get("authenticateBy")
    try:
        deadline = dt.datetime.fromisoformat(by) if by else None
    except ValueError:
        deadline = None
    return AuthenticationState(reference=str(result.get(name, ""))[:40], status=str(result.get("status", "")).upper(),
                               authenticate_by=deadline, reason=str(result.get("reason", ""))[:200])


# The documents Imali draws (imali.paystream.documents) and the columns of each one's lines.
DOCUMENT_LINE_KEYS = {"promissory_note": ("seq", "actionDate", "amount", "status"),
                      "cancellation": ("seq", "actionDate", "amount", "status"),
                      "client_credit": ("to", "amount", "note"), "card_issue_receipt": ("to", "amount", "note")}
# The feed's positions as the columns keep them: a line's (CollectionProblem.position, a positive
# integer) and the place read up to (StreamSettings.collections_after, a positive big integer).
MAX_LINE_POSITION = 2**31 - 1
MAX_FEED_POSITION = 2**63 - 1


def _outcome(raw) -> CollectionOutcome | MalformedResult:
    """One line of the results feed, or why it cannot be read. One bad line must not stop the
    feed: it is set aside with its reason and the lines after it are imported."""
    if not isinstance(raw, dict):
        return MalformedResult(position=None, reference="", reason="The line is not an object.", raw=repr(raw)[:500])
    position = raw.get("position")
    position = (position if isinstance(position, int) and not isinstance(position, bool) and 0 < position <= MAX_LINE_POSITION
                else None)
    reference = str(raw.get("reference", ""))[:40]

    def bad(reason: str) -> MalformedResult:
        return MalformedResult(position=position, reference=reference, reason=reason[:200], raw=repr(raw)[:500])

    missing = [name for name in ("position", "reference", "noteRef", "seq", "result", "amount", "date") if name not in raw]
    if missing:
        return bad(f"Missing {', '.join(missing)}.")
    if position is None:
        return bad(f"The position {raw['position']!r} is not a whole number from 1 to {MAX_LINE_POSITION}.")
    for name in ("reference", "noteRef", "originalReference"):
        # Cut to the column, two references alike in their first 40 characters would be one result.
        if len(str(raw.get(name, ""))) > 40:
            return bad(f"The {name} {str(raw[name])[:40]!r}... is longer than 40 characters.")
    if raw["result"] not in CollectionKind.values:
        return bad(f"The result {str(raw['result'])[:40]!r} is not one of {', '.join(CollectionKind.values)}.")
    if not isinstance(raw["seq"], int) or isinstance(raw["seq"], bool) or raw["seq"] < 1:
        return bad(f"The instalment number {raw['seq']!r} is not a whole number above zero.")
    try:
        # Exact and bounded: two decimals, above zero, within MAX_AMOUNT (no NaN, no exponents).
        amount = parse_amount(str(raw["amount"]), field="amount")
    except ValidationError as exc:
        return bad(f"Amount {raw['amount']!r}: {' '.join(exc.messages)}")
    try:
        on = dt.date.fromisoformat(str(raw["date"]))
    except ValueError:
        return bad(f"Date {raw['date']!r} is not a date (YYYY-MM-DD).")
    return CollectionOutcome(position=position, reference=reference, note_reference=str(raw["noteRef"])[:40], seq=raw["seq"],
                             result=str(raw["result"]), amount=amount, on=on, reason=str(raw.get("reason", ""))[:120],
                             original_reference=str(raw.get("originalReference", ""))[:40])
