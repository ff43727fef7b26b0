"""A manual Payment Arrears batch in a real browser: criteria, Continue to the preview (who is
reached, who is left out, the text and the credits), Send; the local SMSC's phone page shows each
message received over SMPP, and each client's SMS history turns Delivered, sent by the user."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from imali.batches.models import MessageBatch
from imali.messaging.credits import credits_assign
from imali.messaging.models import OutboxMessage, OutboxStatus
from imali.tenancy.rights import Right
from tests import factories
from tests.batches.conftest import Book, cellphone
from tests.browser.conftest import browser, page, stack  # noqa: F401  (the shared Playwright and SMSC fixtures)
from tests.loans.conftest import make_product

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TEXT = "Your loan is in arrears, please contact your microlender urgently."


def test_arrears_batch_from_criteria_to_delivered(page, live_server, stack):  # noqa: F811
    peer, dispatcher = stack
    entity = factories.make_entity(country="ZA")
    credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=100)
    lender = factories.make_admin(entity=entity)
    lender.disbursement_limit = Decimal("100000")
    lender.save()
    sender = factories.make_user(entity=entity, username="collector", password="correct-horse-battery",
                                 rights=[Right.MAXSMS_PROCESSING, Right.VIEW_CLIENTS])
    book = Book(entity, lender, make_product(entity))
    late = [book.loan(), book.loan()]  # paid out on 5 January 2026: every instalment long due
    no_phone = book.loan(book.borrower(cellphone=""))
    paid = book.loan(book.borrower(cellphone=cellphone()), instalments=1)
    book.pay_instalments(paid, 1, on=book.dues(paid)[0])

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "collector")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    # Messaging → Message batches → Payment arrears.
    page.click("nav.mainnav summary:has-text('Messaging')")
    page.click("nav.mainnav a:text('Message batches')")
    page.wait_for_url(f"{live_server.url}/messaging/batches/")
    page.click("#new-arrears")
    page.fill("input[name=due_from]", "2026-01-01")
    page.fill("input[name=due_to]", "2026-06-30")
    page.click("#continue-batch")
    assert page.locator("#preview-recipients").inner_text() == "2"
    assert page.locator("#preview-selected").inner_text() == "3"
    assert page.locator("#preview-dropped tr[data-reason=no_cellphone] td.num").inner_text() == "1"
    assert page.locator("#preview-sample").inner_text() == TEXT
    assert page.locator("#preview-credits").inner_text() == "2 credits needed"
    assert page.locator("#preview-credits-left").inner_text() == "100"
    assert not OutboxMessage.objects.exists()  # nothing goes before Send
    # Back keeps the criteria; Continue again, then Send.
    page.click("#back-batch")
    # The criteria form's own field: the preview carries the criteria as hidden inputs of the same
    # name, so input[name=due_to] alone could be read on the preview before Back's page arrives.
    assert page.input_value("#criteria-form input[name=due_to]") == "2026-06-30"
    page.click("#continue-batch")
    page.click("#send-batch")
    page.wait_for_url(f"{live_server.url}/messaging/batches/*/")
    assert page.locator("#batch-queued").inner_text() == "2"
    batch = MessageBatch.objects.get(entity=entity)
    assert (batch.queued, batch.dropped_reasons, batch.created_by_id) == (2, {"no_cellphone": 1}, sender.pk)
    assert no_phone.client_id not in set(OutboxMessage.objects.values_list("client_id", flat=True))

    # The dispatcher sends them over SMPP; each handset (the SMSC's phone page) shows the text.
    dispatcher.run(until_idle=True, max_seconds=20, idle_sleep=0.02)
    phone = page.context.new_page()
    phone.goto(f"http://127.0.0.1:{peer.http_port}/")
    for loan in late:
        assert phone.locator(f'section[data-number="{loan.client.cellphone}"] .msg').first.inner_text() == TEXT

    # Delivered once the SMSC's receipts are applied (bounded wait), in each client's SMS history.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and OutboxMessage.objects.exclude(status=OutboxStatus.DELIVERED).exists():
        dispatcher.run(max_seconds=0.3, idle_sleep=0.02)
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {OutboxStatus.DELIVERED}
    for loan in late:
        page.goto(f"{live_server.url}/messaging/clients/{loan.client_id}/sms/")
        row = page.locator("#sms-history tbody tr").first
        assert row.locator(".status").inner_text() == "Delivered"
        assert TEXT in row.inner_text() and sender.get_full_name() in row.inner_text()
