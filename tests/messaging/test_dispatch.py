"""The dispatcher against the local SMSC over real SMPP on 127.0.0.1 (ephemeral ports, bounded)."""

import datetime as dt
import json
import time
import urllib.request

import pytest
from django.db.models import Count
from django.utils import timezone

from imali.core.models import AuditAction, AuditEntry
from imali.messaging.adapters.base import Receipt
from imali.messaging.credits import credit_balance
from imali.messaging.dispatch import (
    Dispatcher,
    DispatchPolicy,
    claim_batch,
    receipts_apply_pending,
    receipts_record,
    transports_from_gateways,
)
from imali.messaging.models import (
    DeliveryReport,
    Gateway,
    InboundMessage,
    MarketingOptOut,
    OutboxMessage,
    Priority,
    Route,
)
from imali.messaging.services import message_enqueue
from imali.peers.smsc import SmscConfig, run_in_thread

FAST = DispatchPolicy(batch=50, lease_seconds=30, backoff_base=0.05, backoff_max=0.2)


@pytest.fixture
def smsc():
    peer = run_in_thread(SmscConfig(http_port=0))
    yield peer
    peer.stop()


@pytest.fixture
def transports():
    opened = []

    def open_(gateways=None):
        t = transports_from_gateways(gateways)
        opened.extend(t.values())
        for tr in t.values():
            tr.wait_bound(5)
        return t

    yield open_
    for t in opened:
        t.close()


def gateway_for(peer, name="local", **kw):
    return Gateway.objects.create(name=name, host="127.0.0.1", port=peer.port, system_id="imali", password="secret", **kw)


def enqueue(entity, n, *, prefix="+2782", message_type="new_loan", text="Your loan is approved", start=0):
    return [message_enqueue(entity=entity, number=f"{prefix}{i:07d}", text=text, message_type=message_type,
                            idempotency_key=f"{message_type}:{i}") for i in range(start, start + n)]


def run(dispatcher, seconds=20):
    dispatcher.run(until_idle=True, max_seconds=seconds, idle_sleep=0.02)


def statuses(entity):
    return dict(OutboxMessage.objects.filter(entity=entity).values("status").annotate(n=Count("id")).values_list("status", "n"))


def test_batch_is_submitted_and_delivered(funded, smsc, transports):
    gateway_for(smsc)
    enqueue(funded, 120)
    d = Dispatcher(transports(), FAST)
    run(d)
    assert statuses(funded) == {"delivered": 120}
    m = OutboxMessage.objects.filter(entity=funded).first()
    assert m.provider_message_id and m.gateway == "local" and m.attempts == 1 and m.submitted_at and m.finished_at
    assert smsc.peer.stats["accepted"] == 120
    assert smsc.call(lambda: smsc.peer.phones["+27820000007"][0].text) == "Your loan is approved"


def test_claims_in_priority_order(funded):
    enqueue(funded, 3, message_type="arrears", text="Please pay")
    enqueue(funded, 3, message_type="new_loan", start=10)
    enqueue(funded, 3, message_type="otp", text="PIN 1234", start=20)
    claimed = claim_batch(limit=4, lease_seconds=30)
    assert [c.priority for c in claimed] == [Priority.OTP] * 3 + [Priority.TRANSACTIONAL]
    # Leased rows are not claimed twice.
    again = claim_batch(limit=10, lease_seconds=30)
    assert {c.id for c in again}.isdisjoint({c.id for c in claimed}) and len(again) == 5


def test_claims_past_the_last_claim_and_from_the_start_now_and_then(funded):
    # PostgreSQL claims past the consumer's last claim (where no dead index entries lie) and from the
    # start of the queue every FULL_CLAIM_SECONDS; SQLite always from the start. Either way every
    # message is claimed once, and a more urgent one enqueued meanwhile is claimed within that time
    # (more bulk messages wait than the claims of that time take, so the cursor alone never gets to it).
    # Timed from the claims themselves, not from the test's clock: on a loaded machine one claim may
    # take longer than the allowance, and "claimed within 0.7 s of the enqueue" failed for that.
    enqueue(funded, 300, message_type="new_loan")
    dispatcher = Dispatcher({}, DispatchPolicy(batch=10))
    seen = [c.id for c in dispatcher._claim(30)]
    from_start = time.monotonic()  # the first claim looked from the start no later than this
    otp = message_enqueue(entity=funded, number="+27829999999", text="PIN 1234", message_type="otp",
                          idempotency_key="urgent")
    claims = 0
    while otp.pk not in seen:
        claims += 1
        assert claims <= 300, "the urgent message was never claimed"
        begun = time.monotonic()
        batch = [c.id for c in dispatcher._claim(30)]
        seen += batch
        # A claim begun FULL_CLAIM_SECONDS after the last look from the start looks from the start:
        # it finds the urgent message, first in the queue.
        assert otp.pk in batch or begun - from_start < Dispatcher.FULL_CLAIM_SECONDS, "the urgent message waited too long"
        time.sleep(0.02)
    while batch := dispatcher._claim(30):
        seen += [c.id for c in batch]
    assert len(seen) == len(set(seen)) == 301


def test_long_and_unicode_messages_arrive_whole(funded, smsc, transports):
    gateway_for(smsc)
    long_text = "Dear client, " + "your statement is ready. " * 20
    unicode_text = "Dumela Mmā ✓ " * 12
    message_enqueue(entity=funded, number="+27820000001", text=long_text, message_type="new_loan", idempotency_key="long")
    message_enqueue(entity=funded, number="+27820000002", text=unicode_text, message_type="new_loan", idempotency_key="uni")
    run(Dispatcher(transports(), FAST))
    assert statuses(funded) == {"delivered": 2}
    phones = smsc.call(lambda: {n: [m.text for m in ms] for n, ms in smsc.peer.phones.items()})
    assert phones["+27820000001"] == [long_text]
    assert phones["+27820000002"] == [unicode_text]
    assert smsc.peer.stats["accepted"] == OutboxMessage.objects.get(idempotency_key="long").segments + \
        OutboxMessage.objects.get(idempotency_key="uni").segments


def test_throttling_backs_off_and_loses_nothing(funded, smsc, transports):
    gateway_for(smsc)
    smsc.configure(throttle_share=0.4)
    enqueue(funded, 60)
    d = Dispatcher(transports(), FAST)
    run(d, 30)
    assert statuses(funded) == {"delivered": 60}
    # Throttled submits are sent again (in place, after the gateway slowed down): none twice.
    assert smsc.peer.stats["refused_0x58"] > 0 and smsc.peer.stats["accepted"] == 60
    assert d.transports["local"].limiter.throttles == smsc.peer.stats["refused_0x58"]


def test_throttled_message_keeps_its_attempts_and_retries_spread_out(funded, smsc, transports):
    gateway_for(smsc)
    smsc.configure(throttle_share=1.0)
    enqueue(funded, 20)
    d = Dispatcher(transports(), DispatchPolicy(batch=50, lease_seconds=30, throttle_retry_seconds=2.0))
    d.transports["local"].THROTTLE_RETRIES = 0
    before = timezone.now()
    d.step()
    after = timezone.now()
    rows = list(OutboxMessage.objects.filter(entity=funded))
    assert {r.status for r in rows} == {"queued"} and {r.attempts for r in rows} == {0}
    assert "throttled" in rows[0].error and d.counters["throttled"] == 20
    # Jittered: between half and one and a half times the delay, not all in the same instant.
    assert all(before + dt.timedelta(seconds=1) <= r.next_attempt_at <= after + dt.timedelta(seconds=3) for r in rows)
    assert len({r.next_attempt_at for r in rows}) > 10


def test_retry_back_off_is_jittered():
    import random
    policy = DispatchPolicy(backoff_base=2.0, backoff_max=300.0)
    rng = random.Random(1)
    delays = [policy.retry_delay(3, rng) for _ in range(50)]
    assert all(4.0 <= x <= 8.0 for x in delays) and len(set(delays)) == 50


def test_permanent_error_fails_with_reason_and_refunds(funded, smsc, transports):
    gateway_for(smsc)
    smsc.configure(invalid_prefixes=("+2783",))
    enqueue(funded, 2, prefix="+2783")
    enqueue(funded, 3, start=10)
    run(Dispatcher(transports(), FAST))
    failed = OutboxMessage.objects.filter(status="failed")
    assert failed.count() == 2 and "ESME_RINVDSTADR" in failed[0].error
    assert credit_balance(entity=funded) == 1000 - 3


def test_outage_past_max_age_expires_and_refunds(funded, smsc, transports):
    gateway_for(smsc)
    opened = transports()
    enqueue(funded, 5)
    # Down for longer than the test can take (it returns once the peer is down), so the messages
    # expire during it however slowly a loaded machine gets there, instead of being delivered
    # when a short outage ended first.
    smsc.outage(300)
    policy = DispatchPolicy(batch=50, lease_seconds=30, backoff_base=0.05, backoff_max=0.1,
                            max_age={Priority.TRANSACTIONAL: dt.timedelta(seconds=0.5)})
    time.sleep(0.2)
    run(Dispatcher(opened, policy), 60)  # until nothing is left to try: all expired
    assert statuses(funded) == {"expired": 5}
    assert "expired after" in OutboxMessage.objects.first().error
    assert credit_balance(entity=funded) == 1000


def test_smsc_down_mid_batch_loses_nothing(funded, smsc, transports):
    gateway_for(smsc)
    enqueue(funded, 300)
    d = Dispatcher(transports(), DispatchPolicy(batch=50, lease_seconds=30, backoff_base=0.1, backoff_max=0.5))
    d.step()
    smsc.outage(2)
    run(d, 30)
    assert statuses(funded) == {"delivered": 300}
    assert smsc.peer.stats["outages"] == 1
    delivered_numbers = {n for _, n in smsc.peer.accepted_parts}
    assert len(delivered_numbers) == 300
    # Messages submitted more than once are those in flight when the line dropped: at most one window.
    assert smsc.peer.stats["accepted"] - 300 <= 50


def test_failed_receipt_marks_failed_without_refund(funded, smsc, transports):
    gateway_for(smsc)
    smsc.configure(failure_share=1.0)
    enqueue(funded, 4)
    run(Dispatcher(transports(), FAST))
    assert statuses(funded) == {"failed": 4}
    assert "UNDELIV" in OutboxMessage.objects.first().error
    assert credit_balance(entity=funded) == 996


def test_same_receipt_twice_changes_status_once(funded):
    m = enqueue(funded, 1)[0]
    OutboxMessage.objects.filter(pk=m.pk).update(status="submitted", gateway="g", provider_message_id="abc")
    receipts_record([Receipt("g", "abc", "DELIVRD")])
    assert receipts_apply_pending() == 1
    receipts_record([Receipt("g", "abc", "UNDELIV")])
    assert receipts_apply_pending() == 0
    assert DeliveryReport.objects.count() == 1
    assert OutboxMessage.objects.get(pk=m.pk).status == "delivered"


def test_failover_to_the_next_gateway(funded, smsc, transports):
    dead = Gateway.objects.create(name="dead", host="127.0.0.1", port=1, system_id="imali", password="secret")
    live = gateway_for(smsc, name="live")
    Route.objects.create(entity=funded, country="ZA", gateway=dead, rank=0)
    Route.objects.create(entity=None, country="", gateway=live, rank=5)
    enqueue(funded, 10)
    run(Dispatcher(transports(), FAST))
    assert statuses(funded) == {"delivered": 10}
    assert set(OutboxMessage.objects.values_list("gateway", flat=True)) == {"live"}


def test_mobile_originated_stop_opts_out_once(funded, sms_client, smsc, transports):
    gateway_for(smsc)
    sms_client.marketing_consent = True
    sms_client.save()
    d = Dispatcher(transports(), FAST)
    mo_id = smsc.inject_mo(number=sms_client.cellphone, text="stop")
    smsc.inject_mo(number=sms_client.cellphone, text="What is my balance?")
    import time
    deadline = time.monotonic() + 60
    while InboundMessage.objects.count() < 2 and time.monotonic() < deadline:
        d.apply_events()
        time.sleep(0.02)
    stop = InboundMessage.objects.get(provider_id=mo_id)
    assert stop.is_stop and stop.entity == funded and stop.client == sms_client
    assert MarketingOptOut.objects.filter(entity=funded, number=sms_client.cellphone).exists()
    sms_client.refresh_from_db()
    assert sms_client.marketing_consent is False
    assert AuditEntry.objects.filter(action=AuditAction.MARKETING_OPTED_OUT, entity=funded).count() == 1
    from imali.messaging.inbound import inbound_receive
    _, created = inbound_receive(gateway="local", provider_id=mo_id, number=sms_client.cellphone, text="stop")
    assert not created and InboundMessage.objects.count() == 2
    with pytest.raises(Exception) as exc:
        message_enqueue(entity=funded, number=sms_client.cellphone, text="Offer", message_type="marketing", idempotency_key="mk")
    assert "STOP" in str(exc.value)


def test_phone_page_shows_messages_and_sends_replies(funded, smsc, transports):
    gateway_for(smsc)
    message_enqueue(entity=funded, number="+27821110000", text="Your one-time PIN is 482913", message_type="otp", idempotency_key="otp1")
    run(Dispatcher(transports(), FAST))
    base = f"http://127.0.0.1:{smsc.http_port}"
    page = urllib.request.urlopen(base + "/", timeout=5).read().decode()
    assert "482913" in page and "+27821110000" in page
    data = json.loads(urllib.request.urlopen(base + "/messages.json?number=%2B27821110000", timeout=5).read())
    assert data["+27821110000"][0]["text"] == "Your one-time PIN is 482913"
    body = b"number=%2B27821110000&text=STOP"
    req = urllib.request.Request(base + "/reply", data=body, method="POST")
    try:
        urllib.request.urlopen(req, timeout=5)
    except urllib.error.HTTPError as exc:  # 303 to "/" is followed as GET by urllib; either is fine
        assert exc.code == 303
    assert smsc.peer.stats["mo"] == 1


class _LeaseWatchingDispatcher(Dispatcher):
    """The real dispatcher; at each record it notes how long the batch being recorded still holds
    its lease, and how many other rows wait claimed (queued, leased, not submitted) meanwhile."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lease_left: list[float] = []
        self.claimed_waiting: list[int] = []

    def record(self, claimed, results, **kwargs):
        ours = [c.id for c in claimed]
        now = timezone.now()
        self.lease_left += [(until - now).total_seconds() for until in
                            OutboxMessage.objects.filter(pk__in=ours, status="queued").values_list("claimed_until", flat=True)]
        self.claimed_waiting.append(OutboxMessage.objects.filter(status="queued", claimed_until__gt=now)
                                    .exclude(pk__in=ours).count())
        return super().record(claimed, results, **kwargs)


def test_a_batch_is_claimed_when_the_last_is_recorded_and_recorded_within_its_lease(funded, smsc, transports):
    # A batch claimed while another is on the wire would wait for that one's results (up to the
    # wait per gateway) before its own submission: its lease could lapse meanwhile, and another
    # consumer would claim and send the same rows, with no crash at all. The next batch is claimed
    # as the last is recorded instead, and goes on the wire at once.
    gateway_for(smsc)
    enqueue(funded, 30)
    policy = DispatchPolicy(batch=10, lease_seconds=30, backoff_base=0.05, backoff_max=0.2)
    d = _LeaseWatchingDispatcher(transports(), policy)
    run(d)
    assert statuses(funded) == {"delivered": 30}
    assert len(d.lease_left) == 30
    assert min(d.lease_left) > policy.lease_seconds - 10
    assert d.claimed_waiting == [0, 0, 0]
