"""The HTTP adapters against the local aggregator peers over real HTTP on loopback."""

import socket

from imali.messaging.adapters.africastalking import AfricasTalkingTransport
from imali.messaging.adapters.base import Outcome, Submission
from imali.messaging.adapters.clickatell import ClickatellTransport


def subs(numbers, text="Your loan is approved", start=1):
    return [Submission(start + i, n, text) for i, n in enumerate(numbers)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- Africa's Talking ---------------------------------------------------------------------------

def test_at_submits_and_returns_provider_ids(at_peer, at_transport):
    t = at_transport()
    results = t.submit_batch(subs(["+27821234567", "+27831234567"]))
    assert [r.outcome for r in results] == [Outcome.SUBMITTED] * 2
    assert all(r.provider_message_id.startswith("ATXid_") for r in results)
    assert at_peer.phones["+27821234567"][0].text == "Your loan is approved"
    assert at_peer.phones["+27821234567"][0].sender == "Imali"
    # The same text to several numbers is one request.
    assert at_peer.stats["requests"] == 1


def test_at_personalised_texts_go_in_separate_requests_on_reused_connections(at_peer, at_transport):
    t = at_transport(window=2)
    items = [Submission(i, f"+2782123{i:04d}", f"Hello client {i}") for i in range(20)]
    results = t.submit_batch(items)
    assert {r.outcome for r in results} == {Outcome.SUBMITTED}
    assert len({r.provider_message_id for r in results}) == 20
    assert at_peer.stats["requests"] == 20
    assert t.pool.opened <= 2


def test_at_invalid_number_is_permanent_with_the_reason(at_peer, at_transport):
    results = at_transport().submit_batch(subs(["+27821234567", "+99912345678"]))
    assert results[0].outcome is Outcome.SUBMITTED
    assert results[1].outcome is Outcome.PERMANENT and "InvalidPhoneNumber (403)" in results[1].error


def test_at_wrong_key_is_permanent_and_readable(at_peer, at_transport):
    results = at_transport(api_key="wrong").submit_batch(subs(["+27821234567"]))
    assert results[0].outcome is Outcome.PERMANENT
    assert "refused the API key or username (HTTP 401)" in results[0].error
    assert "authentication is invalid" in results[0].error
    assert at_peer.stats["accepted"] == 0


def test_at_rate_limit_answers_429_and_the_transport_backs_off(at_peer, at_transport):
    at_peer.configure(rate_per_second=2)
    at_peer.clock = lambda: 0.0  # every request in the same second, however slowly a loaded machine sends them
    t = at_transport(window=1)
    items = [Submission(i, f"+2782123{i:04d}", f"Text {i}") for i in range(6)]
    results = t.submit_batch(items)
    outcomes = [r.outcome for r in results]
    assert outcomes[:2] == [Outcome.SUBMITTED] * 2
    assert Outcome.RETRY in outcomes
    retry = next(r for r in results if r.outcome is Outcome.RETRY)
    assert "HTTP 429" in retry.error
    # Paused for the Retry-After second: the rest were not even sent, and the gateway reads as down.
    assert at_peer.stats["refused_429"] == 1
    assert not t.is_up


def test_at_outage_and_unreachable_gateway_are_retried(at_peer, at_transport, opened):
    at_peer.outage(5)
    t = at_transport()
    r = t.submit_batch(subs(["+27821234567"]))[0]
    assert r.outcome is Outcome.RETRY and "HTTP 503" in r.error and not t.is_up
    dead = opened(AfricasTalkingTransport(name="dead", base_url=f"http://127.0.0.1:{free_port()}", api_key="k",
                                          username="u", timeout=2.0))
    r = dead.submit_batch(subs(["+27821234567"]))[0]
    assert r.outcome is Outcome.RETRY and "unreachable" in r.error and not dead.is_up
    assert dead.submit_batch(subs(["+27821234567"]))[0].error.endswith("paused after errors")


# -- Clickatell ---------------------------------------------------------------------------------

def test_clickatell_submits_personalised_messages_in_one_request(clickatell_peer, clickatell_transport):
    t = clickatell_transport()
    items = [Submission(i, f"+2782123{i:04d}", f"Dear client {i}") for i in range(1, 6)]
    results = t.submit_batch(items)
    assert {r.outcome for r in results} == {Outcome.SUBMITTED}
    assert len({r.provider_message_id for r in results}) == 5
    assert clickatell_peer.stats["requests"] == 1
    assert clickatell_peer.phones["+27821230003"][0].text == "Dear client 3"
    by_id = {r.outbox_id: r.provider_message_id for r in results}
    assert clickatell_peer.phones["+27821230004"][0].message_id == by_id[4]


def test_clickatell_refusals(clickatell_peer, clickatell_transport):
    results = clickatell_transport().submit_batch(subs(["+27821234567", "+99912345678"]))
    assert results[0].outcome is Outcome.SUBMITTED
    assert results[1].outcome is Outcome.PERMANENT and "Invalid destination address" in results[1].error
    bad_key = clickatell_transport(api_key="nope").submit_batch(subs(["+27821234567"]))[0]
    assert bad_key.outcome is Outcome.PERMANENT and "API key (HTTP 401)" in bad_key.error


def test_clickatell_rate_limit_and_outage_retry(clickatell_peer, clickatell_transport):
    clickatell_peer.configure(rate_per_second=1)
    clickatell_peer.clock = lambda: 0.0  # the second request in the first one's second, however late it comes
    t = clickatell_transport(messages_per_request=1, window=1)
    results = t.submit_batch(subs(["+27821234567", "+27831234567", "+27841234567"]))
    assert results[0].outcome is Outcome.SUBMITTED
    assert results[1].outcome is Outcome.RETRY and "HTTP 429" in results[1].error
    clickatell_peer.configure(rate_per_second=None)
    clickatell_peer.outage(5)
    other = clickatell_transport()
    assert other.submit_batch(subs(["+27821234567"]))[0].outcome is Outcome.RETRY


def test_peer_runs_as_a_module_and_stops_on_sigterm(opened):
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "imali.peers.aggregators", "--kind", "clickatell", "--port", "0",
                             "--api-key", "k1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("HTTP_PORT=")
        port = int(line.strip().split("=")[1])
        t = opened(ClickatellTransport(name="ct", base_url=f"http://127.0.0.1:{port}", api_key="k1", timeout=5.0))
        assert t.submit_batch(subs(["+27821234567"]))[0].outcome is Outcome.SUBMITTED
    finally:
        proc.terminate()
        assert proc.wait(10) == 0


def test_transport_built_from_gateway_settings(at_peer, clickatell_peer, opened):
    import pytest

    from imali.messaging.adapters.africastalking import HttpGatewaySettings, http_transport_for
    from tests.channels.conftest import API_KEY

    at = opened(http_transport_for(HttpGatewaySettings(name="at", kind="africastalking", base_url=at_peer.base_url,
                                                       api_key=API_KEY, account="lender", source_addr="Lender", window=50)))
    ct = opened(http_transport_for(HttpGatewaySettings(name="ct", kind="clickatell", base_url=clickatell_peer.base_url,
                                                       api_key=API_KEY)))
    assert isinstance(at, AfricasTalkingTransport) and isinstance(ct, ClickatellTransport) and at.window == 32
    assert at.submit_batch(subs(["+27821234567"]))[0].outcome is Outcome.SUBMITTED
    assert at_peer.phones["+27821234567"][0].sender == "Lender"
    assert ct.submit_batch(subs(["+27821234567"]))[0].outcome is Outcome.SUBMITTED
    with pytest.raises(ValueError, match="not an HTTP aggregator"):
        http_transport_for(HttpGatewaySettings(name="x", kind="smpp", base_url="http://127.0.0.1:1", api_key="k"))
