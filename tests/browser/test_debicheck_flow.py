"""In a real browser: create a DebiCheck mandate for a loan, have it signed (by hand: the client is
not enrolled), send it to the bank, and watch its status turn Approved by itself on the loan's
payment-stream page when the local peer's bank approves it — over loopback."""

from __future__ import annotations

import datetime as dt

import pytest

from imali.paystream import services
from imali.paystream.models import DebiCheckMandate, MandateState
from imali.paystream.tasks import paystream_mandate_poll
from imali.peers.paystream import PaystreamPeer, PeerConfig
from imali.peers.paystream.server import SAST
from imali.tenancy.rights import Right
from tests import factories
from tests.browser.conftest import browser, page  # noqa: F401  (the shared Playwright fixtures)
from tests.paystream.conftest import ABSA_OK, approved_loan, stream_entity

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def peer(monkeypatch):
    import time

    from imali.paystream import mandates

    base, started = dt.datetime.combine(dt.date.today(), dt.time(10, 0), tzinfo=SAST), time.monotonic()
    # Our side reads the banks' cut-offs against the same morning as the local bank.
    monkeypatch.setattr(mandates, "bank_now", lambda: base + dt.timedelta(seconds=time.monotonic() - started))
    started_peer = PaystreamPeer(PeerConfig(username="lender", password="s3cret-stream", mandate_answer_seconds=2.0,
                                            now=lambda: base + dt.timedelta(seconds=time.monotonic() - started))).start()
    yield started_peer
    started_peer.stop()


def test_mandate_created_signed_sent_and_approved_in_the_browser(page, live_server, peer):  # noqa: F811
    entity = stream_entity(factories.make_entity(country="ZA"), peer)
    officer = factories.make_user(entity=entity, username="debicheck", password="correct-horse-battery",
                                  rights=[Right.VIEW_CLIENTS, Right.PAYMENT_STREAM_WEB_SERVICES, Right.CAPTURE_LOANS,
                                          Right.APPROVE_LOANS])
    client = factories.make_client(entity=entity, employer=factories.make_employer(entity=entity))
    services.account_register(entity=entity, actor=officer, client=client, **ABSA_OK)
    loan = approved_loan(entity, officer, client, principal="3000")

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "debicheck")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/loans/{loan.pk}/payment-stream/")
    page.click("text=Create, send, amend or cancel a mandate")
    form = page.locator("#mandate-form")
    form.locator("select[name=account]").select_option(index=1)
    form.locator("select[name=authentication]").select_option("tt1")
    # The 25th of the month after next (a first collection is at most a year ahead).
    first = (dt.date.today().replace(day=1) + dt.timedelta(days=40)).replace(day=25)
    form.locator("input[name=first_collection_date]").fill(first.isoformat())
    # The form is on the mandates page and comes back to it: wait for the new page, not for a URL
    # that already matches, or the mandate is asked for before it is created.
    with page.expect_navigation(url=f"{live_server.url}/loans/{loan.pk}/payment-stream/mandates/"):
        form.locator("button[type=submit]").click()
    mandate = DebiCheckMandate.objects.get(loan=loan)
    assert mandate.status == MandateState.AWAITING_SIGNATURE

    page.click("text=Sign it (OTP or by hand)")
    page.click("#finish-by-hand")
    # The signed agreement names the DebiCheck mandate, now signed, and links back to it; the
    # mandate list then links the signed document instead of the signing screen.
    page.locator("#debicheck-status[data-status='signed']").wait_for()
    page.click("#debicheck-link")
    page.wait_for_url(f"{live_server.url}/loans/{loan.pk}/payment-stream/mandates/#mandate-{mandate.pk}")
    assert page.locator(f"#mandate-{mandate.pk} a.signed-document").count() == 1
    # Back to the same page too; only the #mandate fragment tells the URLs apart, so wait for the new page.
    with page.expect_navigation(url=f"{live_server.url}/loans/{loan.pk}/payment-stream/mandates/"):
        page.click("text=Send to the bank for authentication")
    assert "Waiting for the client to authenticate at the bank" in page.content()

    # The loan's stream page polls the database; the consumer asks the bank (here the test runs its
    # task), where the client approves two seconds after the request.
    page.goto(f"{live_server.url}/loans/{loan.pk}/payment-stream/")
    page.locator(".mandate-row[data-status='authenticating']").wait_for()
    for _ in range(80):
        paystream_mandate_poll.call_local()
        if DebiCheckMandate.objects.get(pk=mandate.pk).status != MandateState.AUTHENTICATING:
            break
        page.wait_for_timeout(250)
    page.locator(".mandate-row[data-status='approved']").wait_for(timeout=20_000)
    assert DebiCheckMandate.objects.get(pk=mandate.pk).status == MandateState.APPROVED
