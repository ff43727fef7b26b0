"""SMPP 3.4 transport on the smpp34 client library (Rust core, asyncio surface).

The library runs framing, sequence windowing and the SMPP timers (enquire_link, response
timeouts); this adapter adds what a sender needs around it: a bind kept up with back-off, a window
of submissions in flight, a rate limit per gateway, concatenated long messages (UDH), UCS-2 data
coding, and receipts and mobile-originated messages handed to the synchronous dispatcher through
a queue. It runs its own event loop in a background thread so the dispatcher can stay ordinary
synchronous Django code.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import queue
import re
import threading
import time

import smpp34

from imali.messaging.segments import Encoding, decode_payload, encode_part, split

from .base import MobileOriginated, Outcome, Receipt, Submission, SubmitResult, drain_queue

log = logging.getLogger("imali.messaging.smpp")

ESME_ROK = 0x00
# Statuses that mean "not now": retried with back-off. Everything else is permanent.
TRANSIENT_STATUSES = {
    0x08: "system error (ESME_RSYSERR)",
    0x14: "message queue full (ESME_RMSGQFUL)",
    0x58: "throttled (ESME_RTHROTTLED)",
    0x64: "submit failed (ESME_RX_T_APPN)",
    0xFE: "delivery failure (ESME_RDELIVERYFAILURE)",
    0xFF: "unknown error (ESME_RUNKNOWNERR)",
}
PERMANENT_NAMES = {
    0x01: "invalid message length (ESME_RINVMSGLEN)",
    0x0A: "invalid source address (ESME_RINVSRCADR)",
    0x0B: "invalid destination address (ESME_RINVDSTADR)",
    0x45: "submit_sm failed (ESME_RSUBMITFAIL)",
    0x48: "invalid source TON (ESME_RINVSRCTON)",
    0x50: "invalid destination TON (ESME_RINVDSTTON)",
}
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_PEER_MO_ID = 0x1401
_MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}
_RECEIPT_RE = re.compile(r"id:(?P<id>\S+).*?stat:(?P<stat>\w+)(?:.*?err:(?P<err>\w+))?", re.S)


class RateLimiter:
    """A token bucket: at most `rate` submissions a second, in bursts of up to a tenth of a second."""

    def __init__(self, rate: int):
        self.rate = max(rate, 1)
        self.capacity = max(self.rate / 10, 1.0)
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    async def acquire(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class SmppTransport:
    def __init__(self, *, name: str, host: str, port: int, system_id: str, password: str, source_addr: str = "Imali",
                 window: int = 50, rate_per_second: int = 5000, reconnect_max: float = 30.0, receipts: bool = True):
        self.name = name
        self.host, self.port = host, port
        self.system_id, self.password = system_id, password
        self.source_addr = source_addr
        self.window = max(window, 1)
        self.limiter = RateLimiter(rate_per_second)
        self.reconnect_max = reconnect_max
        self.receipts = receipts
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self._refs = itertools.count(1)
        self._smsc = None
        self._client = None
        self._connected = threading.Event()
        self._stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"smpp-{name}", daemon=True)
        self.binds = 0
        self._thread.start()

    # -- connection ---------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._keeper = self._loop.create_task(self._keep_bound())
        self._loop.run_forever()

    async def _keep_bound(self) -> None:
        delay = 0.2
        while not self._stopping:
            try:
                client = smpp34.Client(self.host, self.port, self.system_id, self.password, bind_type="trx",
                                       window_size=self.window, connect_timeout_ms=2000, inbound_capacity=65536)
                smsc = await client.connect()
            except Exception as exc:  # refused, timed out, bind rejected: all mean "down for now"
                log.info("SMPP %s: bind failed (%s); retrying in %.1fs", self.name, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max)
                continue
            delay = 0.2
            self._client, self._smsc = client, smsc
            self.binds += 1
            self._connected.set()
            log.info("SMPP %s: bound to %s:%s", self.name, self.host, self.port)
            await self._read_events(smsc)
            self._connected.clear()
            self._smsc = None
            with contextlib.suppress(Exception):  # the session is already gone; nothing to release
                await client.stop()

    async def _read_events(self, smsc) -> None:
        while True:
            event = await smsc.next()
            if isinstance(event, smpp34.Disconnected):
                log.info("SMPP %s: disconnected", self.name)
                return
            parsed = self._parse_deliver(event)
            if parsed is not None:
                self.events.put(parsed)

    def _parse_deliver(self, event) -> Receipt | MobileOriginated | None:
        tlvs = {t.tag: t.value for t in event.tlvs}
        if event.esm_class & 0x3C == 0x04:  # SMSC delivery receipt
            message_id = tlvs.get(TLV_RECEIPTED_MESSAGE_ID, b"").rstrip(b"\0").decode("latin-1")
            state = _MESSAGE_STATES.get(tlvs[TLV_MESSAGE_STATE][0], "") if TLV_MESSAGE_STATE in tlvs else ""
            error = ""
            if not message_id or state != "DELIVRD":
                # The receipt text (SMPP 3.4 appendix B) carries what the optional parameters did not.
                match = _RECEIPT_RE.search(event.short_message.decode("latin-1", errors="replace"))
                if match:
                    message_id = message_id or match["id"]
                    state = state or match["stat"]
                    error = match["err"] or ""
            if not message_id:
                return None
            return Receipt(self.name, message_id, state or "UNKNOWN", error)
        text = decode_payload(event.short_message, event.data_coding)
        provider_id = tlvs.get(TLV_PEER_MO_ID, b"").rstrip(b"\0").decode("latin-1")
        if not provider_id:
            # Without an id from the SMSC, the same message resent within the same minute is the same message.
            minute = int(time.time() // 60)
            provider_id = "h" + hashlib.sha256(f"{event.source_addr}|{event.destination_addr}|{text}|{minute}".encode()).hexdigest()[:40]
        return MobileOriginated(self.name, provider_id, _e164(event.source_addr), event.destination_addr, text)

    @property
    def is_up(self) -> bool:
        return self._connected.is_set()

    def wait_bound(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    # -- sending ------------------------------------------------------------------------------
    def submit_batch(self, items: list[Submission], timeout: float = 60.0) -> list[SubmitResult]:
        if not items:
            return []
        if not self.is_up:
            return [SubmitResult(i.outbox_id, Outcome.RETRY, error=f"gateway {self.name} is down") for i in items]
        future = asyncio.run_coroutine_threadsafe(self._submit_all(items), self._loop)
        try:
            return future.result(timeout)
        except Exception as exc:
            future.cancel()
            return [SubmitResult(i.outbox_id, Outcome.RETRY, error=f"gateway {self.name}: {exc}"[:200]) for i in items]

    async def _submit_all(self, items: list[Submission]) -> list[SubmitResult]:
        gate = asyncio.Semaphore(self.window)

        async def one(item: Submission) -> SubmitResult:
            async with gate:
                return await self._submit_one(item)

        return list(await asyncio.gather(*(one(i) for i in items)))

    async def _submit_one(self, item: Submission) -> SubmitResult:
        encoding, parts = split(item.text)
        coding = 0x08 if encoding is Encoding.UCS2 else 0x00
        ref = next(self._refs) & 0xFF
        message_id = ""
        for seq, part in enumerate(parts, start=1):
            payload = encode_part(part, encoding)
            esm_class = 0
            if len(parts) > 1:
                # UDH: concatenated short message, 8-bit reference (IEI 0x00, length 3).
                payload = bytes([5, 0x00, 3, ref, len(parts), seq]) + payload
                esm_class = 0x40
            smsc = self._smsc
            if smsc is None:
                return SubmitResult(item.outbox_id, Outcome.RETRY, error=f"gateway {self.name} is down", parts_submitted=seq - 1)
            await self.limiter.acquire()
            try:
                # A receipt is asked for the last part only: one receipt per message.
                resp = await smsc.submit_sm(item.number.lstrip("+"), payload, source_addr=item.source_addr or self.source_addr,
                                            source_addr_ton=5, source_addr_npi=0, dest_addr_ton=1, dest_addr_npi=1,
                                            esm_class=esm_class, data_coding=coding,
                                            registered_delivery=1 if self.receipts and seq == len(parts) else 0)
            except Exception as exc:  # connection lost mid-flight: the SMSC may or may not have it
                return SubmitResult(item.outbox_id, Outcome.RETRY, error=f"connection lost: {exc}"[:200], parts_submitted=seq - 1)
            status = resp.command_status
            if status != ESME_ROK:
                if status in PERMANENT_NAMES or status not in TRANSIENT_STATUSES:
                    reason = PERMANENT_NAMES.get(status, f"refused with status {status:#04x}")
                    return SubmitResult(item.outbox_id, Outcome.PERMANENT, error=reason, parts_submitted=seq - 1)
                return SubmitResult(item.outbox_id, Outcome.RETRY, error=TRANSIENT_STATUSES[status], parts_submitted=seq - 1)
            message_id = resp.message_id or ""
        return SubmitResult(item.outbox_id, Outcome.SUBMITTED, provider_message_id=message_id, parts_submitted=len(parts))

    def drain_events(self, limit: int = 10000) -> list[Receipt | MobileOriginated]:
        return drain_queue(self.events, limit)

    def close(self) -> None:
        async def shutdown():
            self._stopping = True
            smsc, client = self._smsc, self._client
            if smsc is not None:
                with contextlib.suppress(Exception):  # unbinding a dead session: nothing more to do
                    await asyncio.wait_for(smsc.unbind(), 2)
            if client is not None:
                with contextlib.suppress(Exception):  # already stopped
                    await client.stop()
            self._keeper.cancel()

        if self._loop.is_running():
            with contextlib.suppress(Exception):  # a hung peer must not hang shutdown
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


def _e164(address: str) -> str:
    digits = address.strip()
    if digits.startswith("+"):
        return digits
    return "+" + digits if digits.isdigit() else digits
