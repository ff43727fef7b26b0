"""Client marketing in a real browser: filters → Collect data (the run, with its progress) → the data
set → choose a custom message and the recipients → Preview → Send; the local SMSC's phone page shows
each message received over SMPP, and the messages turn Delivered."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from django.conf import settings

from imali.marketing.models import DataSet
from imali.marketing.services import custom_message_save
from imali.messaging.credits import credits_assign
from imali.messaging.models import OutboxMessage, OutboxStatus
from imali.tenancy.models import Entity
from imali.tenancy.rights import Right
from tests import factories
from tests.batches.conftest import Book
from tests.browser.conftest import browser, page, stack  # noqa: F401  (the shared Playwright and SMSC fixtures)
from tests.loans.conftest import make_product
from tests.marketing.test_send import _zone_open_now, weekday_calendar  # noqa: F401  (the CPA calendar pinned to a weekday)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def consumer_inline():
    """The Huey consumer's work done in the request (Huey's immediate mode)."""
    settings.HUEY.immediate = True
    yield
    settings.HUEY.immediate = False


def test_filters_to_data_set_to_send_delivered(page, live_server, stack, consumer_inline, weekday_calendar):  # noqa: F811
    peer, dispatcher = stack
    entity = factories.make_entity(country="ZA")
    # A zone inside the direct-marketing hours now, so the messages go at once rather than wait.
    Entity.objects.filter(pk=entity.pk).update(time_zone=_zone_open_now())
    entity.refresh_from_db()
    credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=100)
    lender = factories.make_admin(entity=entity)
    lender.disbursement_limit = Decimal("100000")
    lender.save()
    factories.make_user(entity=entity, username="marketer", password="correct-horse-battery",
                        rights=[Right.CLIENT_MARKETING, Right.VIEW_LOGS])
    custom_message_save(actor=lender, entity=entity, channel="sms", name="Top-up offer",
                        text="Hi {^Client Name^} you may qualify for a top-up")
    book = Book(entity, lender, make_product(entity))
    on_book = [book.loan(book.borrower(marketing_consent=True)) for _ in range(2)]
    book.borrower(marketing_consent=True)  # nothing outstanding: not in a months-outstanding data set
    book.loan(book.borrower())  # no consent: never in the data set

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "marketer")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    page.click("nav.mainnav summary:has-text('Clients')")
    page.click("nav.mainnav a:text('Client marketing')")
    page.wait_for_url(f"{live_server.url}/marketing/")
    page.select_option("select[name=months_outstanding]", "all")
    page.click("#collect-data")
    page.wait_for_url(f"{live_server.url}/marketing/datasets/*/")
    page.wait_for_selector("#dataset-done")
    assert page.locator("#dataset-rows").inner_text() == "2"
    assert page.locator("#dataset-rows-table tbody tr").count() == 2
    dataset = DataSet.objects.get(entity=entity)
    assert dataset.row_count == 2

    page.select_option("select[name=message]", label="SMS: Top-up offer")
    page.check("input[name=recipients][value=all]")
    page.click("#send-preview")
    assert page.locator("#preview-recipients").inner_text() == "2"
    assert not OutboxMessage.objects.exists()  # nothing goes before Send
    page.click("#send-confirm")
    page.wait_for_url(f"{live_server.url}/marketing/datasets/{dataset.pk}/")
    assert page.locator("#dataset-sends tbody tr").count() == 1
    assert OutboxMessage.objects.filter(entity=entity).count() == 2

    dispatcher.run(until_idle=True, max_seconds=20, idle_sleep=0.02)
    phone = page.context.new_page()
    phone.goto(f"http://127.0.0.1:{peer.http_port}/")
    for loan in on_book:
        text = phone.locator(f'section[data-number="{loan.client.cellphone}"] .msg').first.inner_text()
        assert text.startswith(f"Hi {loan.client.name} you may qualify for a top-up") and "STOP" in text

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and OutboxMessage.objects.exclude(status=OutboxStatus.DELIVERED).exists():
        dispatcher.run(max_seconds=0.3, idle_sleep=0.02)
    assert set(OutboxMessage.objects.values_list("status", flat=True)) == {OutboxStatus.DELIVERED}


def test_a_refused_filter_shows_its_error_as_a_page_and_through_htmx(page, live_server):  # noqa: F811
    """A refused form answers 400; the browser shows the page, and htmx (which swaps only 2xx by
    default) swaps it too (static/web/imali.js), so the error shows either way. Nothing is run."""
    entity = factories.make_entity(country="ZA")
    factories.make_user(entity=entity, username="marketer", password="correct-horse-battery",
                        rights=[Right.CLIENT_MARKETING, Right.VIEW_LOGS])
    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "marketer")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    error = "The last client number is before the first."

    page.goto(f"{live_server.url}/marketing/")
    page.fill("input[name=number_from]", "9")
    page.fill("input[name=number_to]", "2")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/marketing/")) as answer:
        page.click("#collect-data")
    assert answer.value.status == 400
    page.locator(f"text={error}").first.wait_for()

    page.goto(f"{live_server.url}/marketing/")
    assert page.locator(f"text={error}").count() == 0
    page.fill("input[name=number_from]", "9")
    page.fill("input[name=number_to]", "2")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/marketing/")) as answer:
        page.evaluate("""() => htmx.ajax("POST", "/marketing/", {source: "#marketing-filters", target: "#marketing-filters",
                                                              select: "#marketing-filters", swap: "outerHTML"})""")
    assert answer.value.status == 400 and answer.value.request.headers.get("hx-request") == "true"
    page.locator(f"#marketing-filters >> text={error}").first.wait_for()
    assert not DataSet.objects.filter(entity=entity).exists()
