"""In a real browser: register a bank account (a check-digit refusal first), create and print a
promissory note for a new loan, request a wallet and see it appear when the stream creates it, and
pay the loan out to the account plus cash — against the local payment-stream peer over loopback."""

from __future__ import annotations

from decimal import Decimal

import pytest

from imali.paystream.models import CreditPayment, PromissoryNote, WalletRequest, WalletStatus
from imali.peers.paystream import PaystreamPeer, PeerConfig
from imali.tenancy.rights import Right
from tests import factories
from tests.browser.conftest import browser, page  # noqa: F401  (the shared Playwright fixtures)
from tests.paystream.conftest import approved_loan, stream_entity

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def peer():
    started = PaystreamPeer(PeerConfig(username="lender", password="s3cret-stream", wallet_delay=1.0)).start()
    yield started
    started.stop()


def test_account_note_wallet_and_payout_in_the_browser(page, live_server, peer):  # noqa: F811
    entity = stream_entity(factories.make_entity(country="ZA"), peer)
    officer = factories.make_user(entity=entity, username="streamer", password="correct-horse-battery",
                                  rights=[Right.VIEW_CLIENTS, Right.PAYMENT_STREAM_WEB_SERVICES, Right.CAPTURE_LOANS,
                                          Right.APPROVE_LOANS, Right.DISBURSE_LOANS])
    officer.disbursement_limit = Decimal("5000.00")  # a payout needs the Disburse right and a limit that covers it
    officer.save(update_fields=["disbursement_limit"])
    client = factories.make_client(entity=entity, employer=factories.make_employer(entity=entity))
    loan = approved_loan(entity, officer, client, principal="3000")

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "streamer")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/clients/{client.pk}/")
    page.click(f"a[href='/clients/{client.pk}/payment-stream/']")
    form = page.locator("#account-form")
    form.locator("input[name=branch_code]").fill("632005")
    form.locator("input[name=account_number]").fill("4012345678")
    form.locator("button[type=submit]").click()
    assert "fails the check digit for branch 632005" in page.content()
    form = page.locator("#account-form")
    form.locator("input[name=account_number]").fill("4012345679")
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{live_server.url}/clients/{client.pk}/payment-stream/")
    assert page.locator("#stream-accounts tbody tr").count() == 1

    # The wallet: requested, then it appears by itself once the stream has created it.
    page.click("text=Create a wallet")
    page.locator(".wallet-row[data-status='created']").wait_for(timeout=15_000)
    assert WalletRequest.objects.get(client=client).status == WalletStatus.CREATED

    page.goto(f"{live_server.url}/loans/{loan.pk}/payment-stream/")
    page.select_option("#note-form select[name=stream]", "naedo")
    page.locator("#note-form select[name=account]").select_option(index=1)
    page.click("#note-form button[type=submit]")
    page.wait_for_url(f"{live_server.url}/loans/{loan.pk}/payment-stream/")
    note = PromissoryNote.objects.get(loan=loan)
    assert page.locator(f"#note-{note.pk}").is_visible()
    with page.expect_popup() as popup:
        page.click("text=Print for signing (PDF)")
    assert popup.value is not None

    payout = page.locator("#payout-form")
    payout.locator("select[name=account_1]").select_option(index=1)
    payout.locator("input[name=amount_1]").fill("2500.00")
    payout.locator("input[name=cash_amount]").fill("500.00")
    payout.locator("button[type=submit]").click()
    page.wait_for_url(f"{live_server.url}/loans/{loan.pk}/payment-stream/")
    assert "accepted by the stream" in page.content()
    assert CreditPayment.objects.get(loan=loan).total == 3000
    assert len(peer.state.payments) == 1
