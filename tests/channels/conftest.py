"""Local aggregator peers on 127.0.0.1 (ephemeral ports), stopped after each test."""

import pytest

from imali.messaging.adapters.africastalking import AfricasTalkingTransport
from imali.messaging.adapters.clickatell import ClickatellTransport
from imali.peers.aggregators import AfricasTalkingPeer, AggregatorConfig, ClickatellPeer

API_KEY = "at-key-1234567890"


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
