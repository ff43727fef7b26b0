"""Delivery reports and incoming messages from the aggregator peers, POSTed over real HTTP to the
callback endpoints of a live test server; the dispatcher sends through the HTTP adapters."""

import itertools
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
from django.db import connection
from django.db.models import Count

from imali.api.endpoints.callbacks import callback_url
from imali.messaging.credits import credit_balance, credits_assign
from imali.messaging.dispatch import Dispatcher, DispatchPolicy
from imali.messaging.models import DeliveryReport, Gateway, InboundMessage, OutboxMessage, Route
from imali.messaging.services import message_enqueue
from tests import factories

pytestmark = pytest.mark.django_db(transaction=True)

FAST = DispatchPolicy(batch=50, lease_seconds=30, backoff_base=0.05, backoff_max=0.2)


@pytest.fixture
def funded(db):
    entity = factories.make_entity(country="ZA")
    credits_assign(actor=factories.make_operator(), entity=entity, channel="sms", amount=1000)
    return entity


def http_gateway(name, peer, kind="africastalking"):
    # An HTTP aggregator's row: its base URL and key, no SMPP login.
    from tests.channels.conftest import API_KEY

    return Gateway.objects.create(name=name, kind=kind, base_url=peer.base_url, api_key=API_KEY, account="lender",
                                  rate_per_second=1000)


def wire(peer, live_server, kind, gateway):
    peer.configure(delivery_callback=callback_url(base_url=live_server.url, kind=kind, event="delivery", gateway_name=gateway),
                   inbound_callback=callback_url(base_url=live_server.url, kind=kind, event="inbound", gateway_name=gateway))


def enqueue(entity, n, prefix="+2782", start=0, text="Your loan is approved"):
    return [message_enqueue(entity=entity, number=f"{prefix}{i:07d}", text=text, message_type="new_loan",
                            idempotency_key=f"k:{prefix}:{i}") for i in range(start, start + n)]


def statuses(entity):
    return dict(OutboxMessage.objects.filter(entity=entity).values("status").annotate(n=Count("id")).values_list("status", "n"))


def wait_for(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def drained(peer):
    """Every callback the peer scheduled has been POSTed."""
    return wait_for(lambda: peer.pending_callbacks() == 0)


def send_and_report(dispatcher, peers, seconds=30):
    """Dispatch everything, and let the peers' delivery reports reach the live server.

    On PostgreSQL the reports arrive while the dispatcher works, as in production. The in-memory
    SQLite test database is one connection shared by this thread and the live server's, which
    cannot both run a transaction at once, so there the reports wait until the sending is done."""
    if connection.vendor == "sqlite":
        for peer in peers:
            peer.hold_callbacks()
        dispatcher.run(stop=lambda: not OutboxMessage.objects.filter(status="queued").exists(), max_seconds=seconds,
                       idle_sleep=0.05)
        for peer in peers:
            peer.release_callbacks()
        assert all(drained(peer) for peer in peers)
    else:
        dispatcher.run(until_idle=True, max_seconds=seconds, idle_sleep=0.05)
        assert all(drained(peer) for peer in peers)
    dispatcher.apply_events()


@pytest.mark.parametrize("kind", ["africastalking", "clickatell"])
def test_sent_messages_turn_delivered_once_though_reports_repeat(kind, funded, live_server, at_peer, clickatell_peer,
                                                                 at_transport, clickatell_transport):
    peer, transport = (at_peer, at_transport()) if kind == "africastalking" else (clickatell_peer, clickatell_transport())
    http_gateway(transport.name, peer)
    wire(peer, live_server, kind, transport.name)
    peer.configure(callback_repeats=2)
    enqueue(funded, 12)
    send_and_report(Dispatcher({transport.name: transport}, FAST), [peer])
    assert statuses(funded) == {"delivered": 12}
    first = dict(OutboxMessage.objects.values_list("id", "finished_at"))
    # Progress report, then the final one twice: all answered 200, one report stored per message.
    assert len(peer.callbacks_sent) == 12 * 3 and {s for _, s in peer.callbacks_sent} == {200}
    assert DeliveryReport.objects.filter(gateway=transport.name).count() == 12
    assert dict(OutboxMessage.objects.values_list("id", "finished_at")) == first
    m = OutboxMessage.objects.first()
    assert m.gateway == transport.name and peer.by_id[m.provider_message_id].number == m.number
    assert peer.stats["accepted"] == 12


def test_failed_report_marks_failed_with_the_reason(funded, live_server, at_peer, at_transport):
    transport = at_transport()
    http_gateway("at", at_peer)
    wire(at_peer, live_server, "africastalking", "at")
    at_peer.configure(failure_share=1.0)
    enqueue(funded, 3)
    send_and_report(Dispatcher({"at": transport}, FAST), [at_peer])
    assert statuses(funded) == {"failed": 3}
    assert OutboxMessage.objects.first().error == "delivery receipt: UNDELIV (error DLVFAIL)"
    assert credit_balance(entity=funded) == 997  # submitted and paid for: no refund


@pytest.mark.parametrize("kind", ["africastalking", "clickatell"])
def test_inbound_callback_is_stored_once(kind, funded, live_server, at_peer, clickatell_peer):
    peer = at_peer if kind == "africastalking" else clickatell_peer
    http_gateway("in", peer)
    wire(peer, live_server, kind, "in")
    borrower = factories.make_client(entity=funded, name="Naledi")
    provider_id = peer.inject_inbound(number=borrower.cellphone, text="What is my balance?", repeats=3)
    assert drained(peer)
    stored = InboundMessage.objects.get()
    assert (stored.provider_id, stored.gateway, stored.number) == (provider_id, "in", borrower.cellphone)
    assert stored.entity == funded and stored.client == borrower and stored.text == "What is my balance?"
    assert [s for _, s in peer.callbacks_sent] == [200, 200, 200]


def post(url, body, content_type="application/x-www-form-urlencoded"):
    request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_callbacks_refuse_a_wrong_token_or_gateway_and_name_missing_fields(funded, live_server, at_peer):
    http_gateway("at", at_peer)
    good = callback_url(base_url=live_server.url, kind="africastalking", event="inbound", gateway_name="at")
    body = urllib.parse.urlencode({"id": "m1", "from": "+27821234567", "to": "40123", "text": "STOP"}).encode()
    wrong_token = good.replace("token=", "token=x")
    other_gateway = callback_url(base_url=live_server.url, kind="africastalking", event="inbound", gateway_name="nosuch")
    assert post(wrong_token, body)[0] == 403
    assert post(other_gateway, body)[0] == 403
    assert post(good.split("?")[0], body)[0] == 403
    assert not InboundMessage.objects.exists()
    status, text = post(good, urllib.parse.urlencode({"from": "+27821234567"}).encode())
    assert status == 400 and "'id' is required" in text
    ct = callback_url(base_url=live_server.url, kind="clickatell", event="delivery", gateway_name="at")
    status, text = post(ct, b"not json", "application/json")
    assert status == 400 and "not JSON" in text
    # The optional source check: callers outside the allowed networks are refused.
    from django.test import override_settings
    with override_settings(IMALI_CALLBACK_ALLOWED_NETWORKS=["10.0.0.0/8"]):
        assert post(good, body)[0] == 403
    with override_settings(IMALI_CALLBACK_ALLOWED_NETWORKS=["127.0.0.0/8", "::1/128"]):
        assert post(good, body)[0] == 200
    assert post(good, body)[0] == 200
    assert InboundMessage.objects.get().is_stop
    # A GET is not a callback.
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(good, timeout=5)
    assert exc.value.code == 405


def test_a_nul_character_from_the_aggregator_is_stored_shown_as_a_replacement(funded, live_server, at_peer):
    """PostgreSQL text cannot hold NUL: a reply or receipt carrying one is kept with U+FFFD in its
    place (answered 200, stored once), not a 500 that has the aggregator send it again forever."""
    http_gateway("at", at_peer)
    inbound = callback_url(base_url=live_server.url, kind="africastalking", event="inbound", gateway_name="at")
    body = urllib.parse.urlencode({"id": "m\x001", "from": "+27821234567", "to": "40\x00123", "text": "BAL\x00ANCE"}).encode()
    assert post(inbound, body)[0] == 200
    assert post(inbound, body)[0] == 200  # the same reply again: stored once
    stored = InboundMessage.objects.get()
    assert (stored.provider_id, stored.to_address, stored.text) == ("m\ufffd1", "40\ufffd123", "BAL\ufffdANCE")
    delivery = callback_url(base_url=live_server.url, kind="africastalking", event="delivery", gateway_name="at")
    assert post(delivery, urllib.parse.urlencode({"id": "x\x00y", "status": "Success"}).encode())[0] == 200
    assert DeliveryReport.objects.get().provider_message_id == "x\ufffdy"


def test_failover_from_a_dead_smpp_gateway_to_an_http_one(funded, live_server, at_peer, at_transport):
    from imali.messaging.dispatch import transports_from_gateways

    dead = Gateway.objects.create(name="dead-smpp", host="127.0.0.1", port=1, system_id="imali", password="secret")
    live = http_gateway("at", at_peer)
    Route.objects.create(entity=funded, country="ZA", gateway=dead, rank=0)
    Route.objects.create(entity=None, country="", gateway=live, rank=5)
    wire(at_peer, live_server, "africastalking", "at")
    # Both transports come from the gateway rows, as the consumer builds them.
    transports = transports_from_gateways([dead, live])
    assert type(transports["at"]).__name__ == "AfricasTalkingTransport"
    try:
        enqueue(funded, 25, text="Payment received, thank you")
        send_and_report(Dispatcher(transports, FAST), [at_peer])
        assert not transports["dead-smpp"].is_up
    finally:
        for t in transports.values():
            t.close()
    assert statuses(funded) == {"delivered": 25}
    assert set(OutboxMessage.objects.values_list("gateway", flat=True)) == {"at"}
    # Nothing lost, nothing sent twice.
    assert at_peer.stats["accepted"] == 25
    assert sorted(at_peer.phones) == sorted(OutboxMessage.objects.values_list("number", flat=True))
    assert all(len(v) == 1 for v in at_peer.phones.values())
    assert credit_balance(entity=funded) == 1000 - 25


def test_rate_limited_gateway_backs_off_and_loses_nothing(funded, live_server, clickatell_peer, clickatell_transport):
    http_gateway("ct", clickatell_peer, kind="clickatell")
    wire(clickatell_peer, live_server, "clickatell", "ct")
    clickatell_peer.configure(rate_per_second=3)
    # The peer's second is four requests long, not a wall-clock second: every fourth request is
    # refused however slowly a loaded machine sends them (in real time, a dispatcher slower than
    # 3 requests a second drew no 429 and the test proved nothing).
    ticks = itertools.count(0, 0.25)
    clickatell_peer.clock = lambda: next(ticks)
    enqueue(funded, 15)
    dispatcher = Dispatcher({"ct": clickatell_transport(messages_per_request=2, window=2)},
                            DispatchPolicy(batch=50, lease_seconds=30, backoff_base=0.2, backoff_max=1.0))
    send_and_report(dispatcher, [clickatell_peer], seconds=40)
    assert statuses(funded) == {"delivered": 15}
    assert clickatell_peer.stats["refused_429"] > 0 and dispatcher.counters["retried"] > 0
    assert clickatell_peer.stats["accepted"] == 15  # retried, never sent twice
    assert OutboxMessage.objects.filter(attempts__gt=1).exists()


def test_a_report_arriving_while_its_submission_is_recorded_is_applied(funded, live_server, at_peer, at_transport,
                                                                         monkeypatch):
    """The race of a callback with the record of its submission: the report is committed after
    the record looked for it and before the record commits. Both sides used to miss it (the message
    stayed Submitted until the minute's sweep)."""
    import threading

    from imali.messaging import dispatch

    if connection.vendor != "postgresql":
        pytest.skip("in-memory SQLite cannot be shared between threads; runs on PostgreSQL (make test runs both)")

    http_gateway("at", at_peer)  # not wired: the only report is the one sent below
    (message,) = enqueue(funded, 1)
    delivery = callback_url(base_url=live_server.url, kind="africastalking", event="delivery", gateway_name="at")
    answers = []
    real_apply = dispatch.receipts_apply
    dispatching = threading.current_thread()

    def apply_then_a_callback_arrives(*, keys=None, **kwargs):
        changed = real_apply(keys=keys, **kwargs)
        if keys and not answers and threading.current_thread() is dispatching:
            # The record's look-up (the callback's own look-up goes through here too, on the live
            # server's thread): the callback comes now, on its own connection.
            (_, pid), = keys
            body = urllib.parse.urlencode({"id": pid, "status": "Success"}).encode()
            caller = threading.Thread(target=lambda: answers.append(post(delivery, body)))
            caller.start()
            caller.join(10)
        return changed

    monkeypatch.setattr(dispatch, "receipts_apply", apply_then_a_callback_arrives)
    dispatcher = Dispatcher({"at": at_transport()}, FAST)
    dispatcher.run(until_empty=True, max_seconds=20, idle_sleep=0.05)
    assert answers and answers[0][0] == 200
    message.refresh_from_db()
    assert message.status == "delivered"
    assert DeliveryReport.objects.get(provider_message_id=message.provider_message_id).applied


def test_replies_fetched_from_africastalking_are_stored_once(funded, live_server, at_peer, at_transport):
    http_gateway("at", at_peer)
    borrower = factories.make_client(entity=funded, name="Sipho")
    # One reply also comes by callback: fetched and pushed, it is still one message.
    wire(at_peer, live_server, "africastalking", "at")
    pushed = at_peer.inject_inbound(number=borrower.cellphone, text="balance")
    assert drained(at_peer)
    at_peer.configure(inbound_callback="")
    at_peer.inject_inbound(number=borrower.cellphone, text="STOP")
    at_peer.inject_inbound(number="+27831112222", text="Who is this?")
    transport = at_transport(poll_inbound_seconds=0)
    dispatcher = Dispatcher({"at": transport}, FAST)
    dispatcher.apply_events()
    dispatcher.apply_events()
    assert InboundMessage.objects.count() == 3
    assert InboundMessage.objects.get(provider_id=pushed).text == "balance"
    assert InboundMessage.objects.get(text="STOP").is_stop
    assert transport.last_received_id == 3 and dispatcher.counters["inbound"] == 3
    wrong = at_transport(api_key="bad")
    with pytest.raises(Exception) as exc:
        wrong.fetch_inbound()
    assert "HTTP 401" in str(exc.value)


def test_a_delivery_callback_applies_its_own_report_only(client, funded):
    """Callbacks arrive many at once: each moves its own message (locking only its rows); other
    pending reports are left to the dispatcher's pass, which applies them all."""
    from imali.messaging.adapters.base import Receipt
    from imali.messaging.dispatch import receipts_apply_pending, receipts_record

    Gateway.objects.create(name="at", kind="africastalking", base_url="http://127.0.0.1:9", api_key="k")
    mine, other = enqueue(funded, 2, prefix="+2783")
    OutboxMessage.objects.filter(pk=mine.pk).update(status="submitted", gateway="at", provider_message_id="ATX-mine")
    OutboxMessage.objects.filter(pk=other.pk).update(status="submitted", gateway="at", provider_message_id="ATX-other")
    receipts_record([Receipt("at", "ATX-other", "DELIVRD")])  # stored, not yet applied
    url = callback_url(base_url="http://testserver", kind="africastalking", event="delivery", gateway_name="at")
    response = client.post(url.removeprefix("http://testserver"), {"id": "ATX-mine", "status": "Failed",
                                                                    "failureReason": "UserInBlacklist"})
    assert response.status_code == 200 and response.json() == {"status": "recorded"}
    assert statuses(funded) == {"failed": 1, "submitted": 1}
    assert OutboxMessage.objects.get(pk=mine.pk).status == "failed"
    assert DeliveryReport.objects.get(provider_message_id="ATX-mine").applied
    assert not DeliveryReport.objects.get(provider_message_id="ATX-other").applied
    assert receipts_apply_pending() == 1
    assert statuses(funded) == {"failed": 1, "delivered": 1}
    # The same callback again changes nothing.
    assert client.post(url.removeprefix("http://testserver"), {"id": "ATX-mine", "status": "Success"}).status_code == 200
    assert OutboxMessage.objects.get(pk=mine.pk).status == "failed"
