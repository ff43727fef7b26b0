"""The branch manager's phone pages on a 360 px screen: first load under 100 KB, nothing wider than
the screen, an application approved and another declined with a reason, a field collection
confirmed and a mobile-money SMS notice confirmed and another rejected; and a client's BALANCE
answered on the SMSC's phone page."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from imali.loans import services as loans
from imali.loans.models import Loan, LoanStatus
from imali.messaging.credits import credits_assign
from imali.smsbanking import services as banking
from imali.smsbanking.answering import answer_pending
from imali.smsbanking.models import CollectionStatus, FieldCollection, ProviderPayment
from tests import factories
from tests.browser.conftest import browser, page, stack  # noqa: F401  (the shared Playwright and SMSC fixtures)
from tests.smsbanking.conftest import make_client, make_loan

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 360, "height": 740}


def _book():
    entity = factories.make_entity(country="ZA")
    credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=100)
    manager = factories.make_admin(entity=entity, username="manager", password="correct-horse-battery")
    manager.disbursement_limit = Decimal("100000")
    manager.cellphone = "+27825550400"
    manager.save()
    banking.settings_update(actor=manager, entity=entity, data={"enabled": True, "service_address": "Imali"})
    product = loans.product_create(entity=entity, actor=manager, data={
        "name": "Monthly", "credit_type": "unsecured", "frequency": "monthly", "min_principal": "100",
        "max_principal": "20000", "max_instalments": 12, "interest_rate_pm": "2", "service_fee_pm": "50", "vat_rate": "15"})
    client = make_client(entity, cellphone="+27825550101", name="Thabo", salesperson=manager)
    make_loan(entity=entity, actor=manager, client=client, product=product, days_ago=40)
    today = loans.local_today(entity)
    applications = [loans.loan_apply(entity=entity, actor=manager, client=client, product=product, principal="900",
                                     instalments=3, applied_on=today) for _ in range(2)]
    return entity, manager, client, applications


def _sign_in(page, live_server):  # noqa: F811
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "manager")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


def test_phone_pages_at_360_px(browser, live_server):  # noqa: F811
    entity, manager, client, (first, second) = _book()
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    context.set_default_timeout(15_000)
    page = context.new_page()  # noqa: F811
    try:
        _sign_in(page, live_server)
        sizes: list[int] = []
        page.on("response", lambda r: sizes.append(len(r.body())) if r.ok else None)
        for path in ("/m/", "/m/applications/", f"/m/applications/{first.pk}/", "/m/collections/"):
            sizes.clear()
            page.goto(f"{live_server.url}{path}")
            page.wait_for_load_state("networkidle")
            assert 0 < sum(sizes) < 100_000, f"{path} weighs {sum(sizes)} bytes"
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"], f"{path} scrolls sideways"
        page.goto(f"{live_server.url}/m/applications/")
        page.click(f"a[href='/m/applications/{first.pk}/']")
        # Wait for the application's page itself: count() below does not wait, and asked on the list
        # page it finds no confirmation box, so the approval would be refused for want of it.
        page.wait_for_url(f"{live_server.url}/m/applications/{first.pk}/")
        page.wait_for_selector("button:has-text('Approve')")
        # The client's loan is in arrears: approving needs the same confirmation as on the desktop.
        if page.locator("input[name=arrears_seen]").count():
            page.check("input[name=arrears_seen]")
        page.click("button:has-text('Approve')")
        page.wait_for_url(f"{live_server.url}/m/applications/")
        assert "approved" in page.locator(".msg").inner_text()
        page.click(f"a[href='/m/applications/{second.pk}/']")
        page.wait_for_url(f"{live_server.url}/m/applications/{second.pk}/")
        page.fill("textarea[name=reason]", "Affordability not shown")
        page.click("button:has-text('Decline')")
        page.wait_for_url(f"{live_server.url}/m/applications/")
        assert Loan.objects.get(pk=first.pk).status == LoanStatus.APPROVED
        declined = Loan.objects.get(pk=second.pk)
        assert declined.status == LoanStatus.CANCELLED and declined.status_reason == "Affordability not shown"

        # A field collection recorded by SMS is confirmed from the phone.
        loan = client.loans.filter(status="active").get()
        entries = [banking.Resolved(banking.rules.Entry(client.number, loan.pk, Decimal("50.00")), client, loan)]
        banking.collections_record(entity=entity, officer=manager, resolved=entries, source="officer_sms",
                                   on=loans.local_today(entity))
        page.goto(f"{live_server.url}/m/collections/")
        # The form posts back to the page it is on: wait for the new page, not for a URL that already matches.
        with page.expect_navigation(url=f"{live_server.url}/m/collections/"):
            page.click("button:has-text('Cash received: confirm')")
        assert FieldCollection.objects.get().status == CollectionStatus.CONFIRMED

        # Two mobile-money SMS notices: one confirmed, one rejected with a reason, from the phone.
        provider = banking.provider_save(actor=manager, entity=entity, name="MoMo", sender="MOMO",
                                         pattern=banking.SAMPLE_PATTERN)
        for ref in ("MM200001", "MM200002"):
            banking.provider_payment_record(entity=entity, provider=provider, phone=client.cellphone,
                                            amount=Decimal("75.00"), reference=ref)
        sizes.clear()
        page.goto(f"{live_server.url}/m/collections/")
        page.wait_for_load_state("networkidle")
        assert 0 < sum(sizes) < 100_000
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        with page.expect_navigation(url=f"{live_server.url}/m/collections/"):
            page.click("button:has-text('On the statement: confirm') >> nth=0")
        assert "confirmed" in page.locator(".msg").inner_text()
        page.fill("input[aria-label='Reason to reject payment MM200002']", "Not on the statement")
        with page.expect_navigation(url=f"{live_server.url}/m/collections/"):
            page.locator("input[aria-label='Reason to reject payment MM200002'] + button").click()
        first, second = ProviderPayment.objects.order_by("reference")
        assert first.status == CollectionStatus.CONFIRMED and first.receipt_id
        assert second.status == CollectionStatus.REJECTED and second.reject_reason == "Not on the statement"
    finally:
        context.close()


def test_balance_answered_on_the_smsc_phone_page(page, live_server, stack):  # noqa: F811
    peer, dispatcher = stack
    entity, manager, client, _ = _book()
    phone = f"http://127.0.0.1:{peer.http_port}/"
    page.goto(phone)
    page.locator("form").last.locator("input[name=number]").fill(client.cellphone)
    page.locator("form").last.locator("[name=text]").fill("BALANCE")
    page.locator("form").last.locator("button").click()
    deadline = time.monotonic() + 60  # bounded; ends at the answer
    while time.monotonic() < deadline:
        dispatcher.apply_events()
        answer_pending()  # the answering worker (smsbanking_answer) in the demo
        dispatcher.run(until_idle=True, max_seconds=2, idle_sleep=0.02)
        page.goto(phone)
        texts = page.locator(f'section[data-number="{client.cellphone}"] .msg').all_inner_texts()
        if any("owing" in t for t in texts):
            break
        time.sleep(0.2)
    assert any(t.startswith("ZAR on ") and "owing" in t for t in texts), texts
