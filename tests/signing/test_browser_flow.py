"""The whole signing flow in a real browser, with the code read off the local SMSC's "phone"
page — what the client's phone received over SMPP — never from the database."""

from __future__ import annotations

import re

import pytest

from imali.messaging.credits import credits_assign
from imali.signing.models import Signature
from imali.signing.services import otp_setup_update
from tests import factories
from tests.browser.conftest import browser, page, stack  # noqa: F401  (the shared Playwright and SMSC fixtures)

from .conftest import OFFICER_RIGHTS, make_application, make_borrower

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def read_phone(phone_page, url: str, number: str, pattern: str) -> str:
    phone_page.goto(url)
    newest = phone_page.locator(f'section[data-number="{number}"] .msg').first.inner_text()
    # The dispatcher unseals the code on the way out; a mask here would mean the phone got no code.
    assert "*" * 6 not in newest, newest
    found = re.search(pattern, newest)
    assert found, newest
    return found.group(1)


def test_enrol_and_sign_a_loan_with_the_code_from_the_phone(page, live_server, stack):  # noqa: F811
    peer, dispatcher = stack
    entity = factories.make_entity(country="ZA")
    credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=100)
    admin = factories.make_admin(entity=entity)
    otp_setup_update(actor=admin, entity=entity, data={"enrol_client": True, "loan_otp": True, "threshold": "1000"})
    officer = factories.make_user(entity=entity, username="signer", password="correct-horse-battery", rights=OFFICER_RIGHTS)
    borrower = make_borrower(entity)
    loan = make_application(entity, user=officer, client=borrower)
    phone_url = f"http://127.0.0.1:{peer.http_port}/"
    phone = page.context.new_page()

    page.goto(f"{live_server.url}/login/")
    page.fill("input[name=username]", "signer")
    page.fill("input[name=password]", "correct-horse-battery")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/signing/clients/{borrower.pk}/enrolment/")
    page.click("#send-code")
    dispatcher.run(until_idle=True, max_seconds=20, idle_sleep=0.02)
    code = read_phone(phone, phone_url, borrower.cellphone, r"PIN from .+? is (\d{6,10})")
    page.fill("input[name=code]", code)
    page.click("#verify-code")
    assert "Enrolled:" in page.locator("#enrolment-status").inner_text()

    page.goto(f"{live_server.url}/signing/loans/{loan.pk}/")
    page.click("#send-code")
    dispatcher.run(until_idle=True, max_seconds=20, idle_sleep=0.02)
    code = read_phone(phone, phone_url, borrower.cellphone, r"of ZAR [\d,.]+ is (\d{6,10})\.")
    assert f"your OTP to sign loan {borrower.number}-{loan.pk} of ZAR 3,000.00 is " in phone.content()
    page.fill("input[name=code]", code)
    page.click("#verify-code")
    page.wait_for_url(f"{live_server.url}/signing/signatures/*/")
    assert page.locator("#signature-line").inner_text().startswith("Electronically signed on")
    signature = Signature.objects.get(loan=loan)
    assert page.locator("#document-sha256").inner_text() == signature.document_sha256
