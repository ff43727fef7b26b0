"""The local M-PESA's statement download, over HTTP on loopback as the organisation portal serves
it: the paybill payments the peer completed (a confirmation the lender missed included), its B2C
payments as withdrawals, the portal's preamble and columns, a period and a short code checked field
by field; and a downloaded statement fed into the real import, which posts the payments whose
confirmation was missed and skips those the callbacks recorded."""

from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import json
import re
import urllib.error
import urllib.parse
import urllib.request
import zoneinfo
from decimal import Decimal

import pytest

from imali.loans.models import Receipt
from imali.mobilemoney.models import ProviderTransaction, StatementImport, TransactionStatus
from imali.mobilemoney.services import setup_register_urls, statement_preview, statement_upload
from imali.mobilemoney.statement import read_statement
from imali.peers.mpesa import MpesaConfig, MpesaPeer
from imali.peers.mpesa.server import STATEMENT_HEADER

from .conftest import SHORT_CODE, mpesa_setup, open_loan

ZONE = "Africa/Johannesburg"


def http(url: str, *, form: dict | None = None, body: dict | None = None, headers: dict | None = None):
    """(status, headers, body bytes) of one request; a form is POSTed as the page's form is."""
    data = None
    headers = dict(headers or {})
    if form is not None:
        data = urllib.parse.urlencode(form).encode()
    elif body is not None:
        data, headers["Content-Type"] = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def pay(peer, *, reference: str, amount: str = "150.00", msisdn: str = "27821234567", first_name: str = "Jane",
        withhold: bool = False) -> str:
    """A customer pays the paybill from the peer's page; returns the receipt number it shows."""
    form = {"msisdn": msisdn, "amount": amount, "reference": reference, "first_name": first_name}
    if withhold:
        form["withhold_confirmation"] = "1"
    status, _headers, page = http(f"{peer.base_url}/simulate", form=form)
    assert status == 200
    found = re.search(r'id="result">(\w+):', page.decode())
    assert found, page.decode()
    return found.group(1)


def today(peer) -> dt.date:
    return dt.datetime.now(zoneinfo.ZoneInfo(peer.config.time_zone)).date()


def download(peer, *, first: dt.date | None = None, last: dt.date | None = None, file_format: str = "csv",
             short_code: str | None = None):
    # A day either side of today: a payment made just before midnight is still in the period.
    query = {"short_code": peer.config.short_code if short_code is None else short_code,
             "from": str(first or today(peer) - dt.timedelta(days=1)), "to": str(last or today(peer) + dt.timedelta(days=1)),
             "format": file_format}
    return http(f"{peer.base_url}/statement?{urllib.parse.urlencode(query)}")


def csv_rows(content: bytes) -> tuple[list[list[str]], list[dict[str, str]]]:
    """(the rows above the header, the lines below it as dicts by column)."""
    rows = list(csv.reader(io.StringIO(content.decode())))
    at = rows.index(list(STATEMENT_HEADER))
    return rows[:at], [dict(zip(STATEMENT_HEADER, row, strict=True)) for row in rows[at + 1:]]


@pytest.fixture
def lender_down():
    """A paybill whose confirmation URL nothing answers (the lender's server is down) and that does
    no validation: every payment completes at M-PESA, and no confirmation arrives."""
    peer = MpesaPeer(MpesaConfig(short_code=SHORT_CODE, time_zone=ZONE, confirmation_url="http://127.0.0.1:9/confirm",
                                 result_delay=0.01)).start()
    yield peer
    peer.stop()


def test_the_statement_lists_completed_payments_in_the_portal_export_layout(lender_down):
    peer = lender_down
    first = pay(peer, reference="L101", amount="150.00", first_name="Jane")
    second = pay(peer, reference="C7", amount="75.50", msisdn="27829999999", first_name="John", withhold=True)
    refused = pay(peer, reference="L101", amount="12.345")  # not an amount: no money moves
    status, headers, content = download(peer)
    assert status == 200
    assert headers["Content-Type"].startswith("text/csv")
    day = today(peer)
    assert headers["Content-Disposition"] == (f'attachment; filename="Statement_{SHORT_CODE}_'
                                              f'{day - dt.timedelta(days=1):%Y%m%d}_{day + dt.timedelta(days=1):%Y%m%d}.csv"')
    preamble, lines = csv_rows(content)
    assert ["Short Code:", SHORT_CODE] in preamble
    assert ["Opening Balance:", "1000000.00"] in preamble and ["Closing Balance:", "1000225.50"] in preamble
    # Newest first, as the portal lists them; the refused payment is not a line.
    assert [line["Receipt No."] for line in lines] == [second, first]
    assert refused not in content.decode()
    newest, oldest = lines
    assert oldest["Paid In"] == "150.00" and oldest["Withdrawn"] == "" and oldest["Balance"] == "1000150.00"
    assert oldest["Other Party Info"] == "27821234567 - JANE" and oldest["A/C No."] == "L101"
    assert oldest["Transaction Status"] == "Completed" and oldest["Reason Type"] == "Pay Bill Online"
    assert newest["Paid In"] == "75.50" and newest["Balance"] == "1000225.50" and newest["A/C No."] == "C7"
    # The completion time in the portal's layout, in the peer's zone (not UTC).
    completed = dt.datetime.strptime(oldest["Completion Time"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=zoneinfo.ZoneInfo(ZONE))
    assert abs(dt.datetime.now(dt.UTC) - completed) < dt.timedelta(minutes=5)
    # Neither confirmation reached the lender (one failed, one was held back): both are on the statement.
    page = http(peer.base_url + "/")[2].decode()
    assert "failed (no answer)" in page and "not sent (the lender missed it)" in page


def test_a_b2c_payment_is_a_withdrawal_line_and_the_balances_follow(lender_down):
    peer = lender_down
    pay(peer, reference="L5", amount="500.00")
    basic = base64.b64encode(f"{peer.config.consumer_key}:{peer.config.consumer_secret}".encode()).decode()
    _status, _h, raw = http(f"{peer.base_url}/oauth/v1/generate?grant_type=client_credentials",
                            headers={"Authorization": f"Basic {basic}"})
    token = json.loads(raw)["access_token"]
    status, _h, raw = http(f"{peer.base_url}/mpesa/b2c/v3/paymentrequest", headers={"Authorization": f"Bearer {token}"},
                           body={"OriginatorConversationID": "loan-9-payout", "InitiatorName": peer.config.initiator_name,
                                 "SecurityCredential": peer.config.security_credential, "CommandID": "BusinessPayment",
                                 "Amount": "200.00", "PartyA": SHORT_CODE, "PartyB": "27821112222", "Remarks": "Loan 9",
                                 "QueueTimeOutURL": "http://127.0.0.1:9/t", "ResultURL": "http://127.0.0.1:9/r"})
    assert status == 200, raw
    _status, _h, content = download(peer)
    preamble, lines = csv_rows(content)
    payout = lines[0]
    assert payout["Paid In"] == "" and payout["Withdrawn"] == "-200.00" and payout["Balance"] == "1000300.00"
    assert payout["Reason Type"] == "Business Payment to Customer" and payout["Other Party Info"].startswith("27821112222")
    assert ["Closing Balance:", "1000300.00"] in preamble
    # A period after the payments: no lines, and both balances are the balance the day starts with.
    later = today(peer) + dt.timedelta(days=2)
    preamble, lines = csv_rows(download(peer, first=later, last=later)[2])
    assert lines == [] and ["Opening Balance:", "1000300.00"] in preamble and ["Closing Balance:", "1000300.00"] in preamble


def test_the_xlsx_statement_holds_the_same_lines_as_the_csv(lender_down):
    peer = lender_down
    paid = [pay(peer, reference=f"L{n}", amount=f"{n}0.10") for n in (1, 2, 3)]
    _status, _h, csv_content = download(peer)
    status, headers, xlsx_content = download(peer, file_format="xlsx")
    assert status == 200 and headers["Content-Type"].startswith("application/vnd.openxmlformats")
    assert headers["Content-Disposition"].endswith('.xlsx"')
    from_csv = read_statement(csv_content, "s.csv", columns={}, time_zone=ZONE)
    from_xlsx = read_statement(xlsx_content, "s.xlsx", columns={}, time_zone=ZONE)
    assert [(line.transaction_id, line.amount, line.completed_at, line.msisdn, line.account_reference)
            for line in from_xlsx] == [(line.transaction_id, line.amount, line.completed_at, line.msisdn,
                                        line.account_reference) for line in from_csv]
    assert [line.transaction_id for line in from_xlsx] == paid[::-1]
    assert [line.amount for line in from_xlsx] == [Decimal("30.10"), Decimal("20.10"), Decimal("10.10")]
    assert not any(line.problem or line.skip for line in from_xlsx)


@pytest.mark.parametrize(("query", "words"), [
    ({"short_code": ""}, "Short code: give"),
    ({"short_code": "600999"}, "Short code: 600999 is not an organisation"),
    ({"from": "07/12/2026"}, "From: give a date as YYYY-MM-DD"),
    ({"to": ""}, "To: give a date"),
    ({"from": "2026-12-07", "to": "2026-12-06"}, "To: the period ends before it starts"),
    ({"format": "pdf"}, "Format: choose CSV or XLSX"),
])
def test_a_bad_statement_request_is_refused_naming_the_field(lender_down, query, words):
    peer = lender_down
    pay(peer, reference="L1")
    params = {"short_code": SHORT_CODE, "from": "2026-12-01", "to": "2026-12-31", "format": "csv", **query}
    status, headers, content = http(f"{peer.base_url}/statement?{urllib.parse.urlencode(params)}")
    assert status == 400 and headers["Content-Type"].startswith("text/html")
    assert words in content.decode() and "Content-Disposition" not in headers


def test_the_page_offers_the_statement_and_a_restarted_peer_has_no_history(lender_down):
    page = http(lender_down.base_url + "/")[2].decode()
    assert 'action="/statement"' in page and "Download statement" in page
    assert 'name="withhold_confirmation"' in page and f'value="{today(lender_down)}"' in page
    pay(lender_down, reference="L1")
    assert len(csv_rows(download(lender_down)[2])[1]) == 1
    # The peer keeps its ledger in memory only: a new process (the demo restarted) lists nothing.
    again = MpesaPeer(lender_down.config).start()
    try:
        preamble, lines = csv_rows(download(again)[2])
        assert lines == [] and ["Opening Balance:", "1000000.00"] in preamble
    finally:
        again.stop()


@pytest.mark.django_db(transaction=True)
def test_a_downloaded_statement_imports_the_missed_payments_and_skips_the_recorded(client, entity, lender_user,
                                                                                  mpesa_peer, live_server):
    """The demo's job end to end: pay on the peer's page (two confirmations missed), download the
    statement, and import it through the screens a lender's staff member uses."""
    from django.core.files.uploadedfile import SimpleUploadedFile
    from django.urls import reverse

    setup = mpesa_setup(entity, lender_user, mpesa_peer, live_server.url)
    setup_register_urls(setup=setup, actor=lender_user)
    loan = open_loan(entity, lender_user)
    told = pay(mpesa_peer, reference=f"L{loan.pk}", amount="150.00")
    missed = pay(mpesa_peer, reference=f"L{loan.pk}", amount="40.00", withhold=True)
    missed_by_client_number = pay(mpesa_peer, reference=str(loan.client.number), amount="25.00", withhold=True)
    assert list(Receipt.objects.filter(loan=loan).values_list("external_reference", flat=True)) == [told]

    _status, headers, content = download(mpesa_peer)
    name = re.search(r'filename="([^"]+)"', headers["Content-Disposition"]).group(1)
    client.force_login(lender_user)
    uploaded = client.post(reverse("web:mm_statement_upload"), {
        "setup": setup.pk, "file": SimpleUploadedFile(name, content, content_type="text/csv"),
        "transaction_id": "Receipt No.", "completed_at": "Completion Time", "status": "Transaction Status",
        "paid_in": "Paid In", "other_party": "Other Party Info", "account_reference": "A/C No."})
    assert uploaded.status_code == 302, uploaded.content.decode()[:2000]
    preview = client.get(uploaded["Location"]).content.decode()
    assert "Matched to a loan: 2" in preview and "Recorded already: 1" in preview and "Invalid: 0" in preview
    statement = StatementImport.objects.get()
    kinds = {line.transaction_id: line.kind for line in statement_preview(statement=statement).lines}
    assert kinds == {told: "recorded", missed: "matched", missed_by_client_number: "matched"}
    confirmed = client.post(reverse("web:mm_statement_confirm", kwargs={"statementimport_id": statement.pk}))
    assert confirmed.status_code == 302  # the import runs when the confirm commits (the consumer inline)

    done = StatementImport.objects.get(pk=statement.pk)
    assert done.state == "done", done.state
    assert (done.lines, done.posted, done.already_recorded, done.suspense, done.invalid) == (3, 2, 1, 0, 0)
    receipts = dict(Receipt.objects.filter(loan=loan).values_list("external_reference", "amount"))
    assert receipts == {told: Decimal("150.00"), missed: Decimal("40.00"), missed_by_client_number: Decimal("25.00")}
    assert ProviderTransaction.objects.get(provider_transaction_id=missed).status == TransactionStatus.POSTED
    # The same statement again adds nothing.
    again = statement_upload(setup=setup, actor=lender_user, file_name=name, content=content, columns={})
    assert {line.kind for line in again.lines} == {"recorded"}
