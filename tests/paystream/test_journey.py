"""The issue's "done when" walked through the web app as a person does it (Django's test client,
the real views and templates, the local payment-stream peer over loopback): register a bank account
at the stream (a check-digit refusal first), apply for a new loan and approve it, create and print
its promissory note, request a wallet and see it appear once the stream has made it, pay the loan
out to the account plus cash, and see the bank's collections arrive and post as receipts (a
decline keeps the bank's reason). The same journey runs in a real browser in
tests/browser/test_paystream_flow.py."""

from __future__ import annotations

import time
from decimal import Decimal

import httpx
import pytest
from django.urls import reverse

from imali.loans import services as loans
from imali.loans.models import Loan, LoanStatus, Receipt
from imali.paystream.models import (
    CollectionKind,
    CollectionResult,
    CreditPayment,
    CreditPaymentStatus,
    NoteInstalmentStatus,
    PromissoryNote,
    StreamAccount,
    WalletRequest,
    WalletStatus,
)
from imali.paystream.tasks import paystream_wallet_poll
from imali.tenancy.rights import Right
from tests import factories


@pytest.fixture
def person(ps_entity):
    user = factories.make_user(entity=ps_entity, username="teller", password="correct-horse-battery", rights=[
        Right.VIEW_CLIENTS, Right.MANAGE_CLIENTS, Right.PAYMENT_STREAM_WEB_SERVICES, Right.CAPTURE_LOANS,
        Right.APPROVE_LOANS, Right.DISBURSE_LOANS])
    user.disbursement_limit = Decimal("10000.00")
    user.save(update_fields=["disbursement_limit"])
    return user


def _bank_button(peer, action: str, **fields) -> str:
    """A person at the bank's side of the demo presses a button on the peer's page."""
    reply = httpx.post(f"{peer.base_url}/_control/{action}", data=fields, follow_redirects=False)
    assert reply.status_code == 303
    page = httpx.get(peer.base_url + reply.headers["location"]).text
    assert "id='done'" in page
    return page


def test_register_note_wallet_payout_and_collections_as_a_person(client, ps_entity, person, borrower, peer):
    product = loans.product_create(entity=ps_entity, actor=person, data={
        "name": "Payday", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100", "max_principal": "8000",
        "max_instalments": 6, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})
    assert client.post(reverse("web:login"), {"username": "teller", "password": "correct-horse-battery"}).status_code == 302
    stream_page = reverse("web:paystream_client", kwargs={"client_id": borrower.pk})
    assert stream_page in client.get(reverse("web:client_detail", kwargs={"client_id": borrower.pk})).content.decode()

    # Register the client's bank account at the stream: a mistyped number fails the check digit.
    add = reverse("web:paystream_account_add", kwargs={"client_id": borrower.pk})
    refused = client.post(add, {"branch_code": "632005", "account_number": "4012345678", "account_type": "cheque"})
    assert refused.status_code == 400 and "fails the check digit for branch 632005" in refused.content.decode()
    assert not StreamAccount.objects.filter(client=borrower).exists()
    assert client.post(add, {"branch_code": "632005", "account_number": "4012345679", "account_type": "cheque"}).status_code == 302
    account = StreamAccount.objects.get(client=borrower)
    assert account.reference.startswith("A") and account.cdv_bank

    # A new loan: applied for and approved on the loan screens.
    applied = client.post(reverse("web:loan_apply", kwargs={"client_id": borrower.pk}),
                          {"product": product.pk, "principal": "3000.00", "instalments": "3", "pay_day": "25"})
    assert applied.status_code == 302, applied.content.decode()[:2000]
    loan = Loan.objects.get(client=borrower)
    client.post(reverse("web:loan_approve", kwargs={"loan_id": loan.pk}))
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPROVED
    loan_page = reverse("web:paystream_loan", kwargs={"loan_id": loan.pk})
    assert loan_page in client.get(reverse("web:loan_detail", kwargs={"loan_id": loan.pk})).content.decode()

    # Its promissory note from the schedule, printed for the client to sign.
    created = client.post(reverse("web:paystream_note_create", kwargs={"loan_id": loan.pk}),
                          {"stream": "naedo", "account": account.pk, "tracking_days": "3"}, follow=True)
    note = PromissoryNote.objects.get(loan=loan)
    assert f"Promissory note {note.reference} created" in created.content.decode()
    assert note.instalments.count() == 3 and note.total == sum(i.amount for i in note.instalments.all())
    printed = client.post(reverse("web:paystream_note_print", kwargs={"promissorynote_id": note.pk}))
    assert printed["Content-Type"] == "application/pdf" and printed.content.startswith(b"%PDF")

    # A wallet: requested, then it appears by itself when the stream has made it (the page polls).
    requested = client.post(reverse("web:paystream_wallet_create", kwargs={"client_id": borrower.pk}), follow=True)
    poll = reverse("web:paystream_wallets", kwargs={"client_id": borrower.pk})
    assert "Wallet requested" in requested.content.decode() and f'hx-get="{poll}"' in requested.content.decode()
    deadline = time.monotonic() + 60  # bounded; ends as soon as the wallet exists
    while WalletRequest.objects.get(client=borrower).status == WalletStatus.REQUESTED and time.monotonic() < deadline:
        time.sleep(0.2)
        paystream_wallet_poll.call_local()  # the consumer asks the stream; the page's poll only reads
        fragment = client.get(poll, HTTP_HX_REQUEST="true")
    assert WalletRequest.objects.get(client=borrower).status == WalletStatus.CREATED
    assert fragment["HX-Refresh"] == "true" and "data-status=\"created\"" in fragment.content.decode()
    wallet_account = StreamAccount.objects.get(client=borrower, account__kind="wallet")
    assert wallet_account.account.wallet_number == borrower.cellphone

    # Pay the loan out: 2,500 to the bank account and 500 in cash; the loan is paid out once the
    # stream accepts it.
    paid = client.post(reverse("web:paystream_loan_pay", kwargs={"loan_id": loan.pk}),
                       {"account_1": account.pk, "amount_1": "2500.00", "cash_amount": "500.00"}, follow=True)
    payment = CreditPayment.objects.get(loan=loan)
    assert f"Payout {payment.reference} accepted by the stream" in paid.content.decode()
    assert (payment.status, payment.amount_1, payment.cash_amount) == (CreditPaymentStatus.ACCEPTED, Decimal("2500.00"),
                                                                       Decimal("500.00"))
    loan.refresh_from_db()
    assert loan.status == LoanStatus.ACTIVE
    confirmation = client.post(reverse("web:paystream_payment_print", kwargs={"creditpayment_id": payment.pk}))
    assert confirmation.content.startswith(b"%PDF")

    # Collections arrive: the bank collects the first instalment and declines the second; Imali
    # fetches the results (the quarter-hourly task, or the button) and posts the receipt once.
    first, second = note.instalments.order_by("seq")[:2]
    assert "Collect instalment 1 now" in httpx.get(peer.base_url + "/").text
    _bank_button(peer, "collect-next", noteRef=note.reference)
    _bank_button(peer, "collect-next", noteRef=note.reference, result="failed", reason="Insufficient Funds")
    fetch = reverse("web:paystream_collections_fetch", kwargs={"loan_id": loan.pk})
    fetched = client.post(fetch, follow=True).content.decode()
    assert "1 collected, 1 declined" in fetched and 'data-kind="collected"' in fetched and "Insufficient Funds" in fetched
    receipt = Receipt.objects.get(loan=loan)
    collected = CollectionResult.objects.get(note=note, kind=CollectionKind.COLLECTED)
    assert (receipt.amount, receipt.external_reference) == (first.amount, collected.reference)
    declined = CollectionResult.objects.get(note=note, kind=CollectionKind.FAILED)
    assert (declined.amount, declined.reason) == (second.amount, "Insufficient Funds")
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.status, second.status) == (NoteInstalmentStatus.COLLECTED, NoteInstalmentStatus.FAILED)
    # Fetched again: nothing posts twice.
    assert "0 collected, 0 declined" in client.post(fetch, follow=True).content.decode()
    assert Receipt.objects.filter(loan=loan).count() == 1
