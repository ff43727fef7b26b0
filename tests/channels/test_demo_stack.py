"""`make demo` runs the two local HTTP aggregators beside the SMSC, and load_demo routes each demo
country to the SMSC first and to one aggregator as its failover."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request

import pytest
from django.urls import resolve

from imali.api.endpoints.callbacks import callback_token
from imali.core.stack import stack_processes
from imali.demo.gateways import DEMO_AGGREGATORS, SMSC_GATEWAY, demo_gateways_ensure
from imali.messaging.dispatch import Router
from imali.messaging.models import Gateway, Route


def _specs():
    return {p.name: p for p in stack_processes(host="127.0.0.1", port=8000)}


@pytest.mark.django_db  # the stack reads the demo's provider setups to pre-register callbacks
def test_the_stack_runs_both_aggregator_peers_with_working_callback_urls():
    specs = _specs()
    assert {"web", "consumer", "smsc-peer", "africastalking-peer", "clickatell-peer", "sms-dispatcher"} <= set(specs)
    for a in DEMO_AGGREGATORS:
        spec = specs[f"{a.kind}-peer"]
        assert spec.url.startswith(f"http://127.0.0.1:{a.port}/  (gateway {a.gateway}: failover route for")
        argv = spec.argv
        assert argv[argv.index("--port") + 1] == str(a.port)
        # Nothing secret on the command line, which `ps` shows to every user of the machine.
        assert a.api_key not in " ".join(argv) and callback_token(a.gateway) not in " ".join(argv)
        assert spec.env["IMALI_PEER_API_KEY"] == a.api_key
        for variable in ("IMALI_PEER_CALLBACK", "IMALI_PEER_INBOUND_CALLBACK"):
            url = spec.env[variable]
            assert url.startswith("http://127.0.0.1:8000/api/callbacks/")
            assert f"gateway={a.gateway}" in url and f"token={callback_token(a.gateway)}" in url
            resolve(url.split("http://127.0.0.1:8000", 1)[1].split("?", 1)[0])  # a route the web app serves


@pytest.mark.django_db  # the stack reads the demo's provider setups to pre-register callbacks
def test_peers_call_back_on_the_port_the_web_app_runs_on():
    """run_stack --port 8123: the delivery and inbound callbacks follow the web app there."""
    specs = {p.name: p for p in stack_processes(host="127.0.0.1", port=8123)}
    assert specs["web"].url == "http://127.0.0.1:8123/"
    for a in DEMO_AGGREGATORS:
        env = specs[f"{a.kind}-peer"].env
        for variable in ("IMALI_PEER_CALLBACK", "IMALI_PEER_INBOUND_CALLBACK"):
            assert env[variable].startswith("http://127.0.0.1:8123/api/callbacks/")


@pytest.mark.django_db  # the stack reads the demo's provider setups to pre-register callbacks
@pytest.mark.parametrize("kind", [a.kind for a in DEMO_AGGREGATORS])
def test_each_peer_command_starts_and_answers(kind):
    """The stack's own command line, on an ephemeral port so a running demo is not disturbed."""
    spec = _specs()[f"{kind}-peer"]
    argv = list(spec.argv)
    argv[argv.index("--port") + 1] = "0"
    env = {**spec.env, "PATH": "/usr/bin:/bin"}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("HTTP_PORT="), line
        port = int(line.split("=", 1)[1])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/phones.json", timeout=5) as response:
            assert response.status == 200 and json.loads(response.read()) == {}
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
            assert "No messages yet." in response.read().decode()
    finally:
        proc.terminate()
        proc.wait(10)
    assert argv[0] == sys.executable


@pytest.mark.django_db
def test_demo_gateways_route_the_smsc_first_and_an_aggregator_as_failover():
    added = demo_gateways_ensure(countries=("ZA", "NA"))
    assert "gateway local-africastalking" in added and "route ZA → local-africastalking (rank 1)" in added
    assert demo_gateways_ensure(countries=("ZA", "NA")) == []  # run again: nothing more
    at = Gateway.objects.get(name="local-africastalking")
    assert (at.kind, at.base_url, at.account) == ("africastalking", "http://127.0.0.1:8031", "imali")
    assert Gateway.objects.get(name="local-clickatell").kind == "clickatell"
    router = Router(refresh_seconds=0)
    assert router.gateways(1, "ZA") == [SMSC_GATEWAY, "local-africastalking"]
    assert router.gateways(1, "NA") == [SMSC_GATEWAY, "local-clickatell"]
    assert router.gateways(1, "BW") == [SMSC_GATEWAY]
    assert Route.objects.count() == 5


@pytest.mark.django_db(transaction=True)
def test_with_the_demo_routes_a_dead_smsc_fails_over_to_africastalking(live_server):
    from imali.messaging.credits import credits_assign
    from imali.messaging.dispatch import Dispatcher, transports_from_gateways
    from imali.messaging.models import OutboxMessage
    from imali.messaging.services import message_enqueue
    from imali.peers.aggregators import AfricasTalkingPeer, AggregatorConfig
    from tests import factories
    from tests.channels.test_callbacks import FAST, send_and_report, wire

    demo_gateways_ensure(countries=("ZA", "NA"))
    a = next(a for a in DEMO_AGGREGATORS if a.kind == "africastalking")
    peer = AfricasTalkingPeer(AggregatorConfig(username=a.username, api_key=a.api_key, callback_delay=0.02)).start()
    # The demo's rows as load_demo wrote them, the SMSC not running and the peer on a free port.
    Gateway.objects.filter(name=SMSC_GATEWAY).update(port=1)
    Gateway.objects.filter(name=a.gateway).update(base_url=peer.base_url)
    wire(peer, live_server, a.kind, a.gateway)
    entity = factories.make_entity(country="ZA")
    credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=10)
    message = message_enqueue(entity=entity, number="+27825550199", text="Your payment was received", message_type="single",
                              idempotency_key="demo-failover")
    transports = transports_from_gateways()
    try:
        send_and_report(Dispatcher(transports, FAST), [peer])
    finally:
        for t in transports.values():
            t.close()
        peer.stop()
    message = OutboxMessage.objects.get(pk=message.pk)
    assert (message.status, message.gateway) == ("delivered", a.gateway)
    assert 'data-number="+27825550199"' in peer.phone_page() and "Your payment was received" in peer.phone_page()
