"""A client pays a loan from the local M-PESA's "simulate a customer payment" page in a real
browser: the peer calls our validation and confirmation URLs, the loan's page shows the receipt
with the M-PESA transaction number, and the client's phone (the SMSC's page) shows the
confirmation SMS once the dispatcher has sent it (queued by the Huey task the confirmation hands
over after its commit; the consumer's work is done inline here)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from imali.loans.models import Receipt
from imali.messaging.credits import credits_assign
from imali.mobilemoney.services import setup_register_urls
from imali.peers.mpesa import MpesaConfig, MpesaPeer
from imali.tenancy.rights import Right
from tests import factories
from tests.browser.conftest import browser, page, stack  # noqa: F401  (the shared Playwright and SMSC fixtures)
from tests.mobilemoney.conftest import consumer_inline, mpesa_setup, open_loan  # noqa: F401  (the Huey consumer's work inline)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_payment_from_the_simulate_page_lands_on_the_loan_and_the_phone(page, live_server, stack, consumer_inline):  # noqa: F811
    smsc, dispatcher = stack
    peer = MpesaPeer(MpesaConfig(short_code="600555", time_zone="Africa/Johannesburg")).start()
    try:
        entity = factories.make_entity(country="ZA")
        credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=20)
        officer = factories.make_user(entity=entity, username="officer", password="correct-horse-battery",
                                      rights=[Right.VIEW_CLIENTS, Right.CAPTURE_RECEIPTS, Right.CAPTURE_LOANS,
                                              Right.DISBURSE_LOANS])
        officer.disbursement_limit = Decimal("100000")
        officer.save()
        loan = open_loan(entity, officer)
        setup_register_urls(setup=mpesa_setup(entity, officer, peer, live_server.url), actor=officer)

        page.goto(f"{peer.base_url}/")
        page.fill("input[name=msisdn]", "27821234567")
        page.fill("input[name=amount]", "125.00")
        page.fill("input[name=reference]", f"L{loan.pk}")
        page.click("button:has-text('Pay the paybill')")  # the page also has the statement's download form
        notice = page.locator("#result").inner_text()
        assert "Accepted" in notice, notice
        receipt = Receipt.objects.get(loan=loan)
        assert receipt.amount == Decimal("125.00") and receipt.external_reference in notice

        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", "officer")
        page.fill("input[name=password]", "correct-horse-battery")
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        page.goto(f"{live_server.url}/mobile-money/payments/")
        assert receipt.external_reference in page.content()
        page.goto(f"{live_server.url}/loans/{loan.pk}/")
        assert receipt.external_reference in page.content() and "125.00" in page.content()

        dispatcher.run(until_idle=True, max_seconds=20, idle_sleep=0.02)
        phone = page.context.new_page()
        phone.goto(f"http://127.0.0.1:{smsc.http_port}/")
        text = phone.locator(f'section[data-number="{loan.client.cellphone}"] .msg').first.inner_text()
        assert receipt.external_reference in text and "125.00" in text
        assert dt.date.today() >= receipt.value_date
    finally:
        peer.stop()
