"""In a real browser: the home page as a lender's morning view (figures, the arrears chart as SVG,
links to the screens behind them), then a single SMS whose status turns from Queued to Delivered
on the client's SMS page without a reload, through the htmx poll, with the real SMSC peer and
dispatcher delivering it."""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import pytest

from imali.loans.services import loan_apply, local_today
from imali.messaging.credits import credits_assign
from imali.messaging.models import OutboxMessage
from imali.web.selectors import book_morning
from tests import factories
from tests.browser.conftest import browser, page, stack  # noqa: F401  (the shared Playwright and SMSC fixtures)
from tests.loans.conftest import make_loan, make_product

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXT = "Dear Thabo, your payment is received. Thank you."


def test_morning_view_then_an_sms_turns_delivered_without_a_reload(page, live_server, stack):  # noqa: F811
    peer, dispatcher = stack
    entity = factories.make_entity(country="ZA")
    credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=2500)
    lender = factories.make_admin(entity=entity, username="manager", password="correct-horse-battery")
    lender.disbursement_limit = Decimal("100000")
    lender.save()
    product = make_product(entity)
    today = local_today(entity)
    overdue = make_loan(entity, user=lender, product=product, principal="6500", instalments=6,
                        disbursed_on=today - dt.timedelta(days=100))
    loan_apply(entity=entity, actor=lender, client=overdue.client, product=product, principal="900", instalments=2,
               applied_on=today)
    client = factories.make_client(entity=entity, name="Thabo")
    book = book_morning(entity=entity, today=today)

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "manager")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    # The morning view: each figure shown as money, the chart drawn on the server as SVG.
    outstanding = page.locator("[data-figure=outstanding] .tile-figure")
    assert outstanding.is_visible() and outstanding.inner_text() == f"{book.outstanding:,.2f}"
    assert page.locator("[data-figure=arrears] .tile-figure").inner_text() == f"{book.arrears_total:,.2f}"
    assert book.arrears_total > 0
    assert page.locator("[data-figure=sms-credits] .tile-figure").inner_text() == "2,500"
    assert page.locator("[data-figure=pending-approvals] .tile-figure").inner_text() == "1"
    chart = page.locator("figure[data-chart=arrears] svg")
    assert chart.count() == 1 and chart.is_visible()
    assert chart.locator("text", has_text="61–90 days").count() >= 1
    assert page.evaluate("document.querySelectorAll('svg script').length") == 0
    # Its links lead to the screens behind the figures.
    page.click("[data-figure=pending-approvals]")
    page.wait_for_url(f"{live_server.url}/loans/?status=application")
    assert page.locator("text=900.00").count() >= 1
    page.go_back()
    page.click("[data-figure=sms-credits]")
    page.wait_for_url(f"{live_server.url}/messaging/credits/")

    # A single SMS: the history shows Queued, then Delivered, with no reload in between.
    page.goto(f"{live_server.url}/messaging/clients/{client.pk}/sms/")
    page.fill("textarea[name=text]", TEXT)
    page.click("#preview-sms")
    # The confirm posts back to the page it is on: wait for the new page (not for a URL that already
    # matches), so the message exists and the marker below is set on the page that then polls.
    with page.expect_navigation(url=f"{live_server.url}/messaging/clients/{client.pk}/sms/"):
        page.click("#confirm-sms")
    message = OutboxMessage.objects.get(client=client)
    status = page.locator(f"#sms-status-{message.pk}")
    assert status.inner_text() == "Queued"
    assert page.locator("#sms-status-poll").get_attribute("data-polling") == "yes"
    page.evaluate("window.loadedOnce = 'still this page'")
    seen = {"Queued"}

    dispatcher.run(until_idle=True, max_seconds=20, idle_sleep=0.02)
    deadline = time.monotonic() + 40  # the receipt's round trip plus polls every 3 s
    while time.monotonic() < deadline and "Delivered" not in seen:
        dispatcher.run(max_seconds=0.3, idle_sleep=0.02)
        page.wait_for_timeout(200)
        seen.add(status.inner_text())
    assert "Delivered" in seen, seen
    assert page.evaluate("window.loadedOnce") == "still this page"  # the page was never reloaded
    assert "Delivered to the handset" in page.locator(f"#sms-response-{message.pk}").inner_text()
    # Everything shown is final: the poller is idle.
    page.wait_for_function("document.getElementById('sms-status-poll').dataset.polling === 'no'", timeout=10_000)


def test_a_page_whose_session_ends_stops_polling_without_pulling_in_the_sign_in_page(page, live_server):  # noqa: F811
    from django.contrib.sessions.models import Session
    from django.utils import timezone

    from tests.messaging.test_reports import sms

    entity = factories.make_entity(country="ZA")
    factories.make_admin(entity=entity, username="clerk", password="correct-horse-battery")
    client = factories.make_client(entity=entity, name="Thabo")
    message = sms(entity, client=client, at=timezone.now(), status="queued")
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "clerk")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.goto(f"{live_server.url}/messaging/clients/{client.pk}/sms/")
    assert page.locator("#sms-status-poll").get_attribute("data-polling") == "yes"
    Session.objects.all().delete()  # signed out elsewhere, or the session expired
    page.wait_for_function("!document.getElementById('sms-status-poll')", timeout=10_000)
    assert page.locator("input[name=password]").count() == 0  # no sign-in form inside the page
    assert page.locator(f"#sms-status-{message.pk}").inner_text() == "Queued"
