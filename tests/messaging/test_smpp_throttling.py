"""Against an SMSC that polices a per-second limit with spacing (as operators' SMSCs do), the
gateway paces itself evenly, slows down as a whole on a throttle answer and delivers everything;
configured below the limit it draws no throttle answer at all. Real SMPP over 127.0.0.1, the
real dispatcher; bounded in count and time (about a minute in all)."""

import threading
import time

import pytest
from django.db.models import Count

from imali.messaging.adapters.smpp import AdaptiveRateLimiter
from imali.messaging.credits import credits_assign
from imali.messaging.dispatch import Dispatcher, DispatchPolicy, transports_from_gateways
from imali.messaging.models import Gateway, OutboxMessage
from imali.messaging.services import BulkRecipient, messages_enqueue_bulk
from imali.peers.smsc.process import run_in_process

SMSC_LIMIT = 50


@pytest.fixture
def strict_smsc():
    # In its own process, as the independent SMSC was: a thread here would read submits late
    # whenever the consumer holds the interpreter lock, and see a pace the client never sent.
    peer = run_in_process("--throttle-per-second", str(SMSC_LIMIT), "--receipt-delay", "0")
    yield peer
    peer.stop()


def _send(entity, operator, peer, *, count, rate, seconds):
    credits_assign(actor=operator, entity=entity, channel="sms", amount=count)
    messages_enqueue_bulk(entity=entity, actor=operator, message_type="arrears", text="Your statement is ready",
                          recipients=[BulkRecipient(f"t{i}", f"+2782{i:07d}") for i in range(count)])
    gateway = Gateway.objects.create(name="strict", host="127.0.0.1", port=peer.port, system_id="imali",
                                     password="secret", window=50, rate_per_second=rate)
    transports = transports_from_gateways([gateway])
    try:
        assert transports["strict"].wait_bound(5)
        # The consumer's defaults: batch = the gateway's window, production back-off.
        dispatcher = Dispatcher(transports, DispatchPolicy(batch=gateway.window))
        started = time.monotonic()
        dispatcher.run(until_idle=True, max_seconds=seconds, idle_sleep=0.05)
        elapsed = time.monotonic() - started
    finally:
        for t in transports.values():
            t.close()
    by_status = dict(OutboxMessage.objects.filter(entity=entity).values("status").annotate(n=Count("id"))
                     .values_list("status", "n"))
    stats = peer.stats()
    throttled = stats["stats"].get("refused_0x58", 0)
    print(f"\n{count} messages at a configured {rate}/s against an SMSC limit of {SMSC_LIMIT}/s: "
          f"{elapsed:.1f}s, {throttled} throttle answers, {dispatcher.counters['throttled']} back to the queue")
    return by_status, throttled, stats


def test_gateway_above_the_smsc_limit_adapts_and_delivers_everything(entity, operator, strict_smsc):
    count = 2000
    by_status, throttled, stats = _send(entity, operator, strict_smsc, count=count, rate=60, seconds=150)
    assert by_status == {"delivered": count}
    # Sent once each: a throttled submit is sent again, an accepted one never.
    assert stats["accepted"] == stats["destinations"] == count
    # A handful of throttle answers while it finds the limit, not thousands of retries.
    assert throttled < count * 0.05


def test_gateway_below_the_smsc_limit_draws_no_throttle_answer(entity, operator, strict_smsc):
    # The old limiter sent a tenth of a second's worth back to back: refused by a spacing policer.
    by_status, throttled, _ = _send(entity, operator, strict_smsc, count=400, rate=45, seconds=60)
    assert by_status == {"delivered": 400}
    assert throttled == 0


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.now += seconds


def test_limiter_spaces_submissions_evenly_without_a_burst():
    import asyncio
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(50, clock=clock, sleep=clock.sleep)
    times = []

    async def go():
        for _ in range(20):
            await limiter.acquire()
            times.append(clock.now)

    # In a thread of its own: earlier tests of the suite (the browser's) may leave an event loop
    # set on this one.
    worker = threading.Thread(target=lambda: asyncio.run(go()))
    worker.start()
    worker.join(10)
    gaps = [round(b - a, 6) for a, b in zip(times, times[1:], strict=False)]
    # The old token bucket let a tenth of a second's worth (5 at 50/s) go back to back.
    assert gaps == [0.02] * 19


def test_limiter_slows_down_once_per_episode_and_recovers():
    clock = FakeClock()
    limiter = AdaptiveRateLimiter(60, clock=clock)
    for _ in range(20):  # answers to submits already on the wire: one episode
        limiter.throttled()
    assert limiter.throttles == 20 and limiter.rate == pytest.approx(42.0)
    clock.now += 2.0  # fast recovery back towards the rate that drew the throttle ...
    limiter._recover(clock.now)
    assert 52.0 <= limiter.rate <= 60.0
    clock.now += 60.0  # ... then slowly up to the configured rate, never beyond
    limiter._recover(clock.now)
    assert limiter.rate == 60.0
