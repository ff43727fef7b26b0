"""The bank's side of the demo on the local peer's page: buttons that collect a note's next
instalment now (or decline it), return a collection unpaid and return a credit payment; the
rules still hold (a cancelled note presents nothing). Over loopback HTTP, no database."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import httpx

from imali.paystream.adapters.base import Instalment
from imali.paystream.adapters.http import HttpPaymentStream

from .conftest import ABSA_OK


def _press(peer, action: str, **fields) -> str:
    reply = httpx.post(f"{peer.base_url}/_control/{action}", data=fields)
    assert reply.status_code == 303 and reply.headers["location"].startswith("/?done=")
    return httpx.get(peer.base_url + reply.headers["location"]).text


def test_the_banks_buttons(peer):
    future = dt.date.today() + dt.timedelta(days=40)
    with HttpPaymentStream(base_url=peer.base_url, username="lender", password="s3cret-stream") as stream:
        employer = stream.add_employer(key="e", employer_number="9", name="Acme")
        client = stream.add_client(key="c", employer_reference=employer, client_number="1", branch="HO", surname="X",
                                   first_names="Y", id_number="1", cellphone="", date_of_birth=None, gender="M")
        account = stream.add_client_account(key="a", client_reference=client, holder="Y X", **ABSA_OK)
        note, _ = stream.create_promissory(key="n", client_reference=client, account_reference=account, stream="naedo",
                                           instalments=[Instalment(seq=n, action_date=future + dt.timedelta(days=30 * n),
                                                                   amount=Decimal("400.00")) for n in (1, 2, 3)])
        payment = stream.pay_to_client_account(key="p", client_reference=client, parts=[(account, Decimal("100.00"))],
                                               cash_amount=Decimal("0"))
        # Nothing is due yet: the feed is empty until the bank collects early.
        assert stream.collection_results(key="r0", after=0, limit=10)[0] == []
        page = _press(peer, "collect-next", noteRef=note)
        assert "Instalment 1 of note" in page and "collected 400.00" in page and "Collect instalment 2 now" in page
        page = _press(peer, "collect-next", noteRef=note, result="failed", reason="Insufficient Funds")
        assert "failed 400.00 (Insufficient Funds)" in page
        outcomes, _, last = stream.collection_results(key="r1", after=0, limit=10)
        assert [(o.seq, o.result, o.amount, o.on, o.reason) for o in outcomes] == [
            (1, "collected", Decimal("400.00"), dt.date.today(), ""),
            (2, "failed", Decimal("400.00"), dt.date.today(), "Insufficient Funds")]
        # The collected one comes back unpaid.
        _press(peer, "unpaid", reference=outcomes[0].reference, reason="Account frozen")
        unpaid, _, _ = stream.collection_results(key="r2", after=last, limit=10)
        assert [(o.result, o.original_reference, o.reason) for o in unpaid] == [("unpaid", outcomes[0].reference, "Account frozen")]
        # The receiving bank returns the credit payment.
        _press(peer, "payment-return", paymentRef=payment)
        assert stream.print_client_credit(key="pc", payment_reference=payment).fields["status"] == "RETURNED"
        # A cancelled note presents nothing, also from the page.
        stream.cancel_promissory(key="x", note_reference=note)
        page = _press(peer, "collect-next", noteRef=note)
        assert "Not done" in page and "cancelled" in page
        assert peer.state.notes[note].instalments[3]["status"] == "CANCELLED"
