"""Local peers on 127.0.0.1 (ephemeral ports), stopped after each test: the aggregators and an SMTP receiver."""

import pytest
from django.test import override_settings

from imali.messaging.adapters.africastalking import AfricasTalkingTransport
from imali.messaging.adapters.clickatell import ClickatellTransport
from imali.messaging.credits import credits_assign
from imali.peers.aggregators import AfricasTalkingPeer, AggregatorConfig, ClickatellPeer
from tests.channels.smtp_peer import SmtpPeer

API_KEY = "at-key-1234567890"


@pytest.fixture
def smtp():
    """Django's SMTP backend pointed at the loopback receiver."""
    peer = SmtpPeer().start()
    with override_settings(EMAIL_BACKEND="django.core.mail.backends.smtp.EmailBackend", EMAIL_HOST="127.0.0.1",
                           EMAIL_PORT=peer.port, EMAIL_USE_TLS=False, EMAIL_USE_SSL=False, EMAIL_HOST_USER="",
                           EMAIL_HOST_PASSWORD="", EMAIL_TIMEOUT=5, DEFAULT_FROM_EMAIL="lender@imali.test"):
        yield peer
    peer.stop()


@pytest.fixture
def email_funded(entity, operator):
    """The entity with 10 email credits."""
    credits_assign(actor=operator, entity=entity, channel="email", amount=10)
    return entity


@pytest.fixture
def at_peer():
    peer = AfricasTalkingPeer(AggregatorConfig(username="lender", api_key=API_KEY, callback_delay=0.02)).start()
    yield peer
    peer.stop()


@pytest.fixture
def clickatell_peer():
    peer = ClickatellPeer(AggregatorConfig(api_key=API_KEY, callback_delay=0.02)).start()
    yield peer
    peer.stop()


@pytest.fixture
def opened():
    """Transports opened by a test, closed after it."""
    transports = []

    def keep(t):
        transports.append(t)
        return t

    yield keep
    for t in transports:
        t.close()


@pytest.fixture
def at_transport(at_peer, opened):
    def make(**kw):
        options = {"name": "at", "base_url": at_peer.base_url, "api_key": API_KEY, "username": "lender", "sender": "Imali",
                   "timeout": 5.0, "rate_per_second": 1000, **kw}
        return opened(AfricasTalkingTransport(**options))
    return make


@pytest.fixture
def clickatell_transport(clickatell_peer, opened):
    def make(**kw):
        options = {"name": "ct", "base_url": clickatell_peer.base_url, "api_key": API_KEY, "timeout": 5.0,
                   "rate_per_second": 1000, **kw}
        return opened(ClickatellTransport(**options))
    return make
