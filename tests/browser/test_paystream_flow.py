"""In a real browser, the issue's "done when" as a person does it in `make demo`: register a bank
account at the stream (a check-digit refusal first), request a wallet and see it appear when the
stream creates it, apply for a new loan and approve it, create and print its promissory note, pay
the loan out to the account plus cash, then — at the bank's side, on the local peer's page —
collect the first instalment and decline the second, and see both arrive and post on the loan's
stream page. Against the local payment-stream peer over loopback. The same journey runs with
Django's test client in tests/paystream/test_journey.py (no browser needed)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from imali.loans import services as loans
from imali.loans.models import Loan, LoanStatus, Receipt
from imali.paystream.models import (
    CollectionKind,
    CollectionResult,
    CreditPayment,
    PromissoryNote,
    WalletRequest,
    WalletStatus,
)
from imali.paystream.tasks import paystream_wallet_poll
from imali.peers.paystream import PaystreamPeer, PeerConfig
from imali.tenancy.rights import Right
from tests import factories
from tests.browser.conftest import browser, page  # noqa: F401  (the shared Playwright fixtures)
from tests.paystream.conftest import stream_entity

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def peer():
    started = PaystreamPeer(PeerConfig(username="lender", password="s3cret-stream", wallet_delay=1.0)).start()
    yield started
    started.stop()


def test_account_wallet_new_loan_note_payout_and_collections_in_the_browser(page, live_server, peer):  # noqa: F811
    entity = stream_entity(factories.make_entity(country="ZA"), peer)
    officer = factories.make_user(entity=entity, username="streamer", password="correct-horse-battery",
                                  rights=[Right.VIEW_CLIENTS, Right.PAYMENT_STREAM_WEB_SERVICES, Right.CAPTURE_LOANS,
                                          Right.APPROVE_LOANS, Right.DISBURSE_LOANS])
    officer.disbursement_limit = Decimal("5000.00")  # a payout needs the Disburse right and a limit that covers it
    officer.save(update_fields=["disbursement_limit"])
    client = factories.make_client(entity=entity, employer=factories.make_employer(entity=entity))
    product = loans.product_create(entity=entity, actor=officer, data={
        "name": "Payday", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100", "max_principal": "8000",
        "max_instalments": 6, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "streamer")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    # The client's stream page: a bank account, refused first for its check digit.
    page.goto(f"{live_server.url}/clients/{client.pk}/")
    page.click(f"a[href='/clients/{client.pk}/payment-stream/']")
    form = page.locator("#account-form")
    form.locator("input[name=branch_code]").fill("632005")
    form.locator("input[name=account_number]").fill("4012345678")
    form.locator("button[type=submit]").click()
    page.locator("text=fails the check digit for branch 632005").first.wait_for()
    form = page.locator("#account-form")
    form.locator("input[name=account_number]").fill("4012345679")
    form.locator("button[type=submit]").click()
    page.locator("text=passed the check-digit test").first.wait_for()
    assert page.locator("#stream-accounts tbody tr").count() == 1

    # The wallet: requested, then it appears by itself once the stream has created it: the consumer
    # asks the stream (here the test runs its task) and the page's poll, which only reads, shows it.
    page.click("text=Create a wallet")
    page.locator(".wallet-row[data-status='requested']").wait_for()
    for _ in range(80):
        paystream_wallet_poll.call_local()
        if WalletRequest.objects.get(client=client).status != WalletStatus.REQUESTED:
            break
        page.wait_for_timeout(250)
    page.locator(".wallet-row[data-status='created']").wait_for(timeout=15_000)
    assert WalletRequest.objects.get(client=client).status == WalletStatus.CREATED

    # A new loan, applied for and approved on the loan screens.
    page.goto(f"{live_server.url}/clients/{client.pk}/")
    page.click("text=Apply for a loan")
    page.select_option("select[name=product]", str(product.pk))
    page.fill("input[name=principal]", "3000.00")
    page.fill("input[name=instalments]", "3")
    page.fill("input[name=pay_day]", "25")
    page.get_by_role("button", name="Save").click()
    page.locator("text=Application captured").first.wait_for()
    loan = Loan.objects.get(client=client)
    page.click("#approve-form button[type=submit]")
    page.locator("text=Loan approved.").first.wait_for()
    loan.refresh_from_db()
    assert loan.status == LoanStatus.APPROVED
    page.click(f"a[href='/loans/{loan.pk}/payment-stream/']")
    page.wait_for_url(f"{live_server.url}/loans/{loan.pk}/payment-stream/")

    # Its promissory note, from the schedule, printed for signing.
    page.select_option("#note-form select[name=stream]", "naedo")
    page.locator("#note-form select[name=account]").select_option(index=1)
    page.click("#note-form button[type=submit]")
    page.locator("article.note").first.wait_for()
    note = PromissoryNote.objects.get(loan=loan)
    assert page.locator(f"#note-{note.pk}").is_visible()
    with page.expect_popup() as popup:
        page.click(f"#note-{note.pk} >> text=Print for signing (PDF)")
    assert popup.value is not None

    # Paid out: 2,500 to the bank account, 500 in cash.
    payout = page.locator("#payout-form")
    payout.locator("select[name=account_1]").select_option(label=str(note.account))
    payout.locator("input[name=amount_1]").fill("2500.00")
    payout.locator("input[name=cash_amount]").fill("500.00")
    payout.locator("button[type=submit]").click()
    page.locator("text=accepted by the stream").first.wait_for()
    assert CreditPayment.objects.get(loan=loan).total == 3000
    assert len(peer.state.payments) == 1
    loan.refresh_from_db()
    assert loan.status == LoanStatus.ACTIVE

    # At the bank (the local peer's page): collect instalment 1, decline instalment 2.
    page.goto(f"{peer.base_url}/")
    row = page.locator(f"tr.peer-note[data-note='{note.reference}']")
    row.locator("button", has_text="Collect instalment 1 now").click()
    page.locator("#done", has_text="Instalment 1 of note").wait_for()
    row = page.locator(f"tr.peer-note[data-note='{note.reference}']")
    row.locator("button", has_text="Decline it").click()
    page.locator("#done", has_text="Instalment 2 of note").wait_for()

    # Back in Imali: the results arrive and post (the button does what the quarter-hourly task does).
    page.goto(f"{live_server.url}/loans/{loan.pk}/payment-stream/")
    page.click("text=Fetch collection results now")
    page.locator("text=Collection results imported").first.wait_for()
    page.locator("#collection-results tr[data-kind='collected']").wait_for()
    assert "1 collected, 1 declined" in page.content()
    assert "Insufficient Funds" in page.locator("#collection-results tr[data-kind='failed']").inner_text()
    receipt = Receipt.objects.get(loan=loan)
    assert receipt.external_reference == CollectionResult.objects.get(note=note, kind=CollectionKind.COLLECTED).reference
