"""A user sends one SMS to a client in a real browser, through the preview and the confirm; the
local SMSC's phone page shows what the handset received over SMPP, and the client's SMS history
turns Delivered once the SMSC's delivery receipt is back."""

from __future__ import annotations

import time

import pytest

from imali.core.models import AuditAction, AuditEntry
from imali.messaging.credits import credit_balance, credits_assign
from imali.messaging.models import OutboxMessage
from imali.tenancy.rights import Right
from tests import factories
from tests.browser.conftest import browser, page, stack  # noqa: F401  (the shared Playwright and SMSC fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXT = "Dear Thabo, your statement is ready at the branch. Reply STOP to opt out of marketing."


def test_send_a_single_sms_see_it_on_the_phone_and_delivered_in_the_history(page, live_server, stack):  # noqa: F811
    peer, dispatcher = stack
    entity = factories.make_entity(country="ZA")
    credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=10)
    factories.make_user(entity=entity, username="officer", password="correct-horse-battery",
                        rights=[Right.VIEW_CLIENTS, Right.SEND_SINGLE_SMS])
    client = factories.make_client(entity=entity, name="Thabo")

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "officer")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/clients/{client.pk}/")
    page.click(f"a[href='/messaging/clients/{client.pk}/sms/']")
    page.wait_for_url(f"{live_server.url}/messaging/clients/{client.pk}/sms/")
    page.fill("textarea[name=text]", TEXT)
    page.click("#preview-sms")
    assert page.locator("#preview-text").inner_text() == TEXT
    assert page.locator("#preview-segments").inner_text() == "1 segment"
    assert page.locator("#preview-encoding").inner_text() == "GSM-7"
    assert page.locator("#preview-credits").inner_text() == "1 credit"
    assert not OutboxMessage.objects.exists()  # nothing goes before the confirm
    # The confirm posts back to the page it is on: wait for the new page, not for a URL that already matches.
    with page.expect_navigation(url=f"{live_server.url}/messaging/clients/{client.pk}/sms/"):
        page.click("#confirm-sms")
    row = page.locator("#sms-history tbody tr").first
    assert row.locator(".status").inner_text() == "Queued"
    message = OutboxMessage.objects.get(client=client)
    assert credit_balance(entity=entity) == 9
    assert AuditEntry.objects.filter(action=AuditAction.MESSAGE_QUEUED, object_id=str(message.pk)).exists()

    # The dispatcher sends it; the handset (the SMSC's phone page) shows the text.
    dispatcher.run(until_idle=True, max_seconds=20, idle_sleep=0.02)
    phone = page.context.new_page()
    phone.goto(f"http://127.0.0.1:{peer.http_port}/")
    assert phone.locator(f'section[data-number="{client.cellphone}"] .msg').first.inner_text() == TEXT

    # The history turns Delivered when the receipt is applied: reload until it does, for a bounded time.
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline:
        dispatcher.run(max_seconds=0.3, idle_sleep=0.02)
        page.reload()
        status = page.locator("#sms-history tbody tr").first.locator(".status").inner_text()
        if status == "Delivered":
            break
    assert status == "Delivered"
    row = page.locator("#sms-history tbody tr").first
    assert TEXT in row.inner_text() and "Delivered to the handset" in row.inner_text()
