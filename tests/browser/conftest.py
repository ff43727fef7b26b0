"""Playwright (Python) driving Debian's Chromium headless against the live test server."""

from __future__ import annotations

import atexit
import os
import shutil

import pytest

from tests.conftest import require_service

# Playwright's sync API runs an event loop in the test thread; the ORM calls the test makes for
# its set-up happen outside any coroutine, so Django's async guard does not apply to them.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("IMALI_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


class _SharedChromium:
    """One Playwright driver and one Chromium for the whole run. Modules that import these
    fixtures get their own fixture definitions, but Playwright's sync API can run only once per
    thread, so every definition hands out this same browser; it closes when the run ends."""

    playwright = None
    browser = None

    @classmethod
    def get(cls):
        if cls.browser is None:
            from playwright.sync_api import sync_playwright

            cls.playwright = sync_playwright().start()
            cls.browser = cls.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            atexit.register(cls.close)
        return cls.browser

    @classmethod
    def close(cls):
        if cls.browser is not None:
            cls.browser.close()
            cls.playwright.stop()
            cls.browser = cls.playwright = None


@pytest.fixture(scope="session")
def browser():
    require_service("Chromium", bool(shutil.which(CHROMIUM) or os.path.exists(CHROMIUM)),
                    f"{CHROMIUM} is not installed (apt-get install chromium)")
    return _SharedChromium.get()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def stack():
    """The real SMSC peer (SMPP and its phone page) and a real dispatcher with its SMPP transport."""
    from imali.messaging.dispatch import Dispatcher, DispatchPolicy, transports_from_gateways
    from imali.messaging.models import Gateway
    from imali.peers.smsc import SmscConfig, run_in_thread

    peer = run_in_thread(SmscConfig(http_port=0))
    Gateway.objects.create(name="local", host="127.0.0.1", port=peer.port, system_id="imali", password="secret")
    transports = transports_from_gateways()
    for transport in transports.values():
        transport.wait_bound(5)
    dispatcher = Dispatcher(transports, DispatchPolicy(batch=50, lease_seconds=30, backoff_base=0.05, backoff_max=0.2))
    yield peer, dispatcher
    for transport in transports.values():
        transport.close()
    peer.stop()
