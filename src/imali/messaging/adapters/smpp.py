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
import itertools
import logging
import queue
import re
import struct
import threading
import time
from collections.abc import Callable

import smpp34
from django.core.exceptions import ValidationError

from imali.core.phones import parse_phone
from imali.messaging.segments import Encoding, decode_payload, encode_part, split

from .base import (
    MobileOriginated,
    MobileOriginatedPart,
    Outcome,
    Receipt,
    Submission,
    SubmitResult,
    drain_queue,
)

log = logging.getLogger("imali.messaging.smpp")

ESME_ROK = 0x00
# What staff read when an SMSC refuses a submit_sm: people's words first, the SMPP name after for
# whoever takes it up with the SMSC's operator. Split as SMPP 3.4 §5.1.3 and common SMSCs mean them.
# Transient: "not now", retried with back-off (the line, the SMSC's own trouble, its queue, its pace).
TRANSIENT_STATUSES = {
    0x08: "the SMSC had a system error; trying again (ESME_RSYSERR)",
    0x14: "the SMSC's queue is full; trying again (ESME_RMSGQFUL)",
    0x58: "the SMSC throttled us, asking to send more slowly; trying again (ESME_RTHROTTLED)",
    0x64: "the SMSC could not take it for now; trying again (ESME_RX_T_APPN)",
    0xFE: "the SMSC could not deliver it for now; trying again (ESME_RDELIVERYFAILURE)",
    0xFF: "the SMSC gave an unknown error; trying again (ESME_RUNKNOWNERR)",
}
# Permanent: the SMSC will never take this message as it is; sending it again changes nothing.
PERMANENT_NAMES = {
    0x01: "the SMSC refused the message's length (ESME_RINVMSGLEN)",
    0x02: "the SMSC could not read our request (ESME_RINVCMDLEN)",
    0x03: "the SMSC does not take this request (ESME_RINVCMDID)",
    0x0A: "the SMSC refused the sender name or number (ESME_RINVSRCADR)",
    0x0B: "the SMSC says the phone number is not valid (ESME_RINVDSTADR)",
    0x33: "the SMSC refused the number of recipients (ESME_RINVNUMDESTS)",
    0x45: "the SMSC refused the message (ESME_RSUBMITFAIL)",
    0x48: "the SMSC refused the sender's number type (ESME_RINVSRCTON)",
    0x49: "the SMSC refused the sender's numbering plan (ESME_RINVSRCNPI)",
    0x50: "the SMSC refused the phone number's type (ESME_RINVDSTTON)",
    0x51: "the SMSC refused the phone number's numbering plan (ESME_RINVDSTNPI)",
    0x62: "the SMSC refused the message's expiry time (ESME_RINVEXPIRY)",
    0x65: "the SMSC refused the message for good (ESME_RX_P_APPN)",
    0x66: "the SMSC rejected the message (ESME_RX_R_APPN)",
}
# Why an SMSC refused a bind (its bind_resp command_status), as staff read it.
BIND_REFUSALS = {
    0x05: "the SMSC says this account is bound already (ESME_RALYBND): another session or server holds it",
    0x08: "the SMSC had a system error on the bind (ESME_RSYSERR)",
    0x0D: "the SMSC refused the bind (ESME_RBINDFAIL): ask its operator to check the account and the allowed addresses",
    0x0E: "the SMSC refused the password (ESME_RINVPASWD)",
    0x0F: "the SMSC does not know the system id (ESME_RINVSYSID)",
}
_BIND_COMMANDS = {"rx": 0x00000001, "tx": 0x00000002, "trx": 0x00000009}
_UNBIND = 0x00000006
TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_PEER_MO_ID = 0x1401
TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
TLV_MESSAGE_PAYLOAD = 0x0424
_MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD"}
# Appendix B of SMPP 3.4 gives the receipt text as an example, not a rule: SMSCs vary the case
# ("Id:", "Stat:") and what comes between.
_RECEIPT_RE = re.compile(r"\bid:(?P<id>[^\s\0]+).*?\bstat:(?P<stat>\w+)(?:.*?\berr:(?P<err>\w+))?", re.S | re.I)
# States an SMSC reports on the way (accepted, still trying): a later receipt says how it ended.
# Kept out of the receipt store, which holds one receipt per message: a first receipt "ENROUTE"
# would finish the message as failed and shut out the final "DELIVRD" after it.
INTERMEDIATE_STATES = frozenset({"ENROUTE", "ACCEPTD"})
MAX_MESSAGE_ID = 80  # OutboxMessage.provider_message_id and DeliveryReport.provider_message_id
# deliver_sm message types that are about a message we sent, not a message from a phone.
_NOT_FROM_A_PHONE = {0x08: "SME delivery acknowledgement", 0x10: "SME manual/user acknowledgement",
                     0x20: "intermediate delivery notification"}


class ReceiptIdFormat:
    """How an SMSC's receipts name the message its submit_sm_resp named (Gateway.receipt_id_format).

    SMSCs disagree: some answer submit_sm with a hexadecimal id and write the receipt's id in
    decimal (or the reverse), in another case, or zero-padded. AUTO folds what is unambiguous
    (case, leading zeros, padding); a change of base is not (a hex "10" and a decimal "10" are
    different messages), so it is named per gateway. EXACT compares as written, for an SMSC whose
    ids tell upper from lower case."""

    AUTO = "auto"
    EXACT = "exact"
    HEX_DEC = "hex_dec"  # hex in submit_sm_resp, decimal in the receipt
    DEC_HEX = "dec_hex"  # decimal in submit_sm_resp, hex in the receipt
    ALL = (AUTO, EXACT, HEX_DEC, DEC_HEX)


def message_id_key(value: str, *, id_format: str, receipt: bool) -> str:
    """The form a message id is stored and matched in: `receipt` for the id a receipt names,
    otherwise the id submit_sm_resp gave."""
    text = value.replace("\0", "").strip()
    if id_format == ReceiptIdFormat.EXACT:
        return text
    if receipt and id_format in (ReceiptIdFormat.HEX_DEC, ReceiptIdFormat.DEC_HEX):
        try:
            number = int(text, 10 if id_format == ReceiptIdFormat.HEX_DEC else 16)
            # Inside the try: str() of a number past sys.get_int_max_str_digits() raises too.
            text = f"{number:x}" if id_format == ReceiptIdFormat.HEX_DEC else str(number)
        except ValueError:
            pass  # not a number after all (or none any message has): matched as it is
    return text.lower().lstrip("0") or text[:1]


THROTTLE_STATUSES = frozenset({0x14, 0x58})  # ESME_RMSGQFUL, ESME_RTHROTTLED: "slower", not "broken"


class AdaptiveRateLimiter:
    """Submissions evenly spaced at the gateway's rate, slowing down when the SMSC says so.

    Spacing, not a bucket: an SMSC polices the gap between submits (a burst of two back to back is
    refused by a spacing policer whatever the average rate), so one submission goes every
    1/rate s. A waiter that wakes late may catch up a quarter of an interval (or 2 ms at very high
    rates, where the event loop's wake-up jitter is larger than the interval), never more; after
    an idle spell the next submission waits nothing and the one after a whole interval.

    On a throttle answer the whole gateway slows down (AIMD, as TCP does): the rate is cut to
    `DECREASE` of what it was, once per `PAUSE` however many answers arrive together, and
    sending pauses for `PAUSE`. It then recovers additively: quickly (`FAST_RECOVERY` of the
    configured rate per second) back to near the rate that drew the throttle, then slowly
    (`PROBE` of that rate per second) beyond it, up to the configured rate. The quick phase keeps
    answers that are not about the rate (an SMSC refusing a share of submits whatever the pace)
    from grinding the gateway down to a crawl. A gateway configured below the SMSC's limit
    never draws a throttle answer and never changes pace.
    """

    DECREASE = 0.7
    PAUSE = 0.1
    FAST_RECOVERY = 0.10
    PROBE = 0.03

    def __init__(self, rate: float, clock=time.monotonic, sleep=asyncio.sleep):
        self.configured = max(float(rate), 1.0)
        self.rate = self.configured
        self.ceiling = self.configured  # the rate at the last throttle answer
        self.throttles = 0
        self._clock, self._sleep = clock, sleep
        self._next = 0.0
        self._stamp = clock()
        self._last_decrease = float("-inf")
        self._lock: asyncio.Lock | None = None

    def _recover(self, now: float) -> None:
        if self.rate < self.configured:
            step = self.FAST_RECOVERY * self.configured if self.rate < 0.95 * self.ceiling else self.PROBE * self.ceiling
            self.rate = min(self.configured, self.rate + step * (now - self._stamp))
        self._stamp = now

    async def acquire(self) -> None:
        if self._lock is None:  # created on the transport's own loop
            self._lock = asyncio.Lock()
        async with self._lock:  # one waiter at a time, in arrival order
            while True:
                now = self._clock()
                self._recover(now)
                wait = self._next - now
                if wait <= 0:
                    interval = 1.0 / self.rate
                    # Woken a little late: keep the schedule (the next one a little sooner).
                    # Idle for longer: start afresh, a whole interval from now.
                    on_schedule = -wait <= max(interval / 4, 0.002)
                    self._next = (self._next if on_schedule else now) + interval
                    return
                # Re-checked after the sleep: a throttle answer meanwhile moves `_next` on.
                await self._sleep(wait)

    def throttled(self) -> None:
        now = self._clock()
        self.throttles += 1
        if now - self._last_decrease < self.PAUSE:
            return  # the same episode: answers to submits already on the wire
        self._recover(now)
        self.ceiling = self.rate
        self.rate = max(1.0, self.rate * self.DECREASE)
        self._last_decrease = now
        self._next = max(self._next, now + self.PAUSE)
        log.info("SMPP throttled: pausing %.1fs, rate %.1f/s -> %.1f/s", self.PAUSE, self.ceiling, self.rate)


class BindMode:
    TRANSCEIVER = "trx"  # one session sends and receives
    TRANSMITTER_RECEIVER = "tx_rx"  # a transmitter session sends, a receiver session receives


class Role:
    """What one process does with a gateway. BOTH: every session of its bind mode (receipts come to
    the process that submits). With a transmitter + receiver gateway the two can live in different
    processes: SEND binds the transmitter only (the dispatcher), RECEIVE the receiver only (the
    receipt receiver, `manage.py messaging_receive`), so taking receipts in never slows the submits."""

    BOTH = "both"
    SEND = "send"
    RECEIVE = "receive"


def address_ton_npi(address: str) -> tuple[int, int]:
    """Type of number and numbering plan an SMSC expects for a sender address: an alphanumeric
    sender is TON 5 (alphanumeric) / NPI 0; a short code (up to 8 digits) TON 3 (network
    specific) / NPI 0; a full number TON 1 (international) / NPI 1 (E.164)."""
    digits = address.lstrip("+")
    if not digits.isdigit():
        return 5, 0
    if len(digits) <= 8 and not address.startswith("+"):
        return 3, 0
    return 1, 1


class SmppTransport:
    # Throttled submissions are retried in place (after the limiter has slowed and paused) this
    # many times before the message goes back to the queue: a part of a long message refused
    # after its first parts were accepted is sent again alone, never the whole message twice.
    THROTTLE_RETRIES = 3

    def __init__(self, *, name: str, host: str, port: int, system_id: str, password: str, source_addr: str = "Imali",
                 window: int = 50, rate_per_second: float = 5000, reconnect_max: float = 30.0, receipts: bool = True,
                 source_addr_ton: int | None = None, source_addr_npi: int | None = None,
                 dest_addr_ton: int = 1, dest_addr_npi: int = 1, bind_mode: str = BindMode.TRANSCEIVER,
                 role: str = Role.BOTH, guard: Callable[[], str | None] | None = None,
                 receipt_id_format: str = ReceiptIdFormat.AUTO, home_country: str = ""):
        self.name = name
        # The country whose numbers this gateway's SMSC may write nationally ("0821234567"): ISO code or "".
        self.home_country = home_country
        if receipt_id_format not in ReceiptIdFormat.ALL:
            raise ValueError(f"receipt_id_format: {receipt_id_format!r} is not one of {', '.join(ReceiptIdFormat.ALL)}.")
        self.receipt_id_format = receipt_id_format
        # Asked before each connection: why the host may not be connected to (core/destination.py), or None.
        self.guard = guard
        self.host, self.port = host, port
        self.system_id, self.password = system_id, password
        self.source_addr = source_addr
        self.source_ton_npi = (source_addr_ton, source_addr_npi)
        self.dest_addr_ton, self.dest_addr_npi = dest_addr_ton, dest_addr_npi
        self.bind_mode = bind_mode
        if role != Role.BOTH and bind_mode != BindMode.TRANSMITTER_RECEIVER:
            raise ValueError("Sending and receiving in different processes needs a transmitter + receiver gateway.")
        self.role = role
        self.window = max(window, 1)
        self.limiter = AdaptiveRateLimiter(rate_per_second)
        self.reconnect_max = reconnect_max
        self.receipts = receipts
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self._refs = itertools.count(1)
        self._smsc = None
        self._clients: dict[str, object] = {}
        self._sessions: dict[str, object] = {}
        self._connected = threading.Event()
        self._receiving = threading.Event()
        self._stopping = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=f"smpp-{name}", daemon=True)
        self.binds = 0
        # Why the gateway is not bound, in people's words ("" while bound): shown with every message
        # it cannot take and logged when it changes.
        self.problem = ""
        self._probed_at = float("-inf")
        self._thread.start()

    # -- connection ---------------------------------------------------------------------------
    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._keepers = [self._loop.create_task(self._keep_bound(bind_type)) for bind_type in self.bind_types]
        self._loop.run_forever()

    async def _keep_bound(self, bind_type: str) -> None:
        delay = 0.2
        sends, receives = bind_type in ("trx", "tx"), bind_type in ("trx", "rx")
        while not self._stopping:
            problem = await asyncio.to_thread(self.guard) if self.guard is not None else None
            if problem:
                log.warning("SMPP %s: not connecting to %s:%s: %s; checking again in %.1fs", self.name, self.host,
                            self.port, problem, delay)
                self.problem = f"the server may not connect to {self.host}:{self.port} ({problem})"
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max)
                continue
            try:
                client = smpp34.Client(self.host, self.port, self.system_id, self.password, bind_type=bind_type,
                                       window_size=self.window, connect_timeout_ms=2000, inbound_capacity=65536)
                smsc = await client.connect()
            except Exception as exc:  # refused, timed out, bind rejected: all mean "down for now"
                problem = await self._why_not_bound(bind_type, exc)
                if problem != self.problem:
                    log.warning("SMPP %s: %s bind failed: %s; retrying with back-off", self.name, bind_type, problem)
                self.problem = problem
                log.info("SMPP %s: %s bind failed (%s); retrying in %.1fs", self.name, bind_type, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max)
                continue
            delay = 0.2
            self.problem = ""
            self._clients[bind_type], self._sessions[bind_type] = client, smsc
            self.binds += 1
            if sends:
                self._smsc = smsc
                self._connected.set()
            if receives:
                self._receiving.set()
            log.info("SMPP %s: bound (%s) to %s:%s", self.name, bind_type, self.host, self.port)
            await self._read_events(smsc)
            if sends:
                self._connected.clear()
                self._smsc = None
            if receives:
                self._receiving.clear()
            self._sessions.pop(bind_type, None)
            self._clients.pop(bind_type, None)
            with contextlib.suppress(Exception):  # the session is already gone; nothing to release
                await client.stop()

    async def _why_not_bound(self, bind_type: str, exc: Exception) -> str:
        where = f"{self.host}:{self.port}"
        text = str(exc)
        if "refused" in text.lower() and "tcp" in text.lower():
            return f"the SMSC at {where} refused the connection (nothing listening there, or a firewall)"
        if "bind timed out" not in text:
            return f"could not connect to the SMSC at {where} ({text[:120]})"
        if not (self.system_id + self.password).isascii():
            # SMPP's C-Octet strings are ASCII: the probe could not even write them (and raising
            # here would end the task that keeps the gateway bound).
            return "the system id or password has characters an SMSC cannot read (SMPP takes ASCII only)"
        # smpp34 reports a refused bind as "bind timed out", losing the SMSC's command_status:
        # ask once more, by hand, to read it. At most once a minute, as some SMSCs lock an account
        # after a number of failed binds.
        if time.monotonic() - self._probed_at < 60 and self.problem:
            return self.problem
        self._probed_at = time.monotonic()
        status = await self._bind_status(bind_type)
        if status is None:
            return f"the SMSC at {where} did not answer the bind"
        if status == ESME_ROK:  # bound this time: a passing trouble, the library's next try binds
            return f"the SMSC at {where} did not answer the bind in time"
        return BIND_REFUSALS.get(status, f"the SMSC refused the bind (status {status:#04x})")

    async def _bind_status(self, bind_type: str) -> int | None:
        """The command_status of a bind_resp, from one bind sent by hand (unbound again at once
        when it succeeds); None when the SMSC does not answer."""
        body = (self.system_id.encode("latin-1") + b"\0" + self.password.encode("latin-1") + b"\0" + b"\0"
                + bytes([0x34, 0, 0]) + b"\0")
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), 2)
            writer.write(struct.pack(">IIII", 16 + len(body), _BIND_COMMANDS[bind_type], 0, 1) + body)
            header = await asyncio.wait_for(reader.readexactly(16), 5)
            length, _, status, _ = struct.unpack(">IIII", header)
            if status == ESME_ROK:
                await asyncio.wait_for(reader.readexactly(max(length - 16, 0)), 2)
                writer.write(struct.pack(">IIII", 16, _UNBIND, 0, 2))
                await asyncio.wait_for(reader.readexactly(16), 2)
            return status
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            return None
        finally:
            if writer is not None:
                writer.close()

    async def _read_events(self, smsc) -> None:
        session = str(getattr(smsc, "session_id", "") or id(smsc))
        arrivals = itertools.count(1)
        while True:
            event = await smsc.next()
            if isinstance(event, smpp34.Disconnected):
                log.info("SMPP %s: disconnected", self.name)
                return
            try:
                parsed = self._parse_deliver(event, session=session, arrival=next(arrivals))
            except Exception:
                # One PDU we cannot read (the library acknowledged it already) must not end this
                # reader: the session would stay bound and sending while every later receipt and
                # reply of the gateway went unread.
                log.exception("SMPP %s: a deliver_sm that could not be read was dropped", self.name)
                continue
            if parsed is not None:
                self.events.put(parsed)

    def _parse_deliver(self, event, *, session: str, arrival: int) -> Receipt | MobileOriginated | MobileOriginatedPart | None:
        tlvs = {t.tag: t.value for t in event.tlvs}
        kind = event.esm_class & 0x3C  # the message type bits (SMPP 3.4 §5.2.12)
        if kind == 0x04:  # SMSC delivery receipt
            return self._parse_receipt(event, tlvs)
        if kind in _NOT_FROM_A_PHONE:
            # Not something the phone's owner wrote: stored as a reply it would show staff receipt
            # text as the client's words, and SMS banking would answer it. An intermediate
            # notification says only "still trying"; the final receipt follows.
            log.debug("SMPP %s: %s ignored", self.name, _NOT_FROM_A_PHONE[kind])
            return None
        payload = event.short_message
        if not payload and TLV_MESSAGE_PAYLOAD in tlvs:
            payload = tlvs[TLV_MESSAGE_PAYLOAD]
        concat = None
        if event.esm_class & 0x40 and payload:
            udh_length = payload[0]
            concat = _concatenation(payload[1 : 1 + udh_length])
            payload = payload[1 + udh_length :]
        elif TLV_SAR_MSG_REF_NUM in tlvs and TLV_SAR_TOTAL_SEGMENTS in tlvs and TLV_SAR_SEGMENT_SEQNUM in tlvs:
            concat = (int.from_bytes(tlvs[TLV_SAR_MSG_REF_NUM], "big"), tlvs[TLV_SAR_TOTAL_SEGMENTS][0],
                      tlvs[TLV_SAR_SEGMENT_SEQNUM][0])
        text = decode_payload(payload, event.data_coding, part=concat is not None and concat[1] > 1)
        provider_id = tlvs.get(TLV_PEER_MO_ID, b"").rstrip(b"\0").decode("latin-1")
        if not provider_id:
            # No id from the SMSC. Every deliver_sm that reaches us is a message the SMSC sends
            # once per acknowledgement (smpp34 acknowledges each in its core as it arrives), so its
            # place in this session's stream names it: the same text twice is two messages, in the
            # same minute or not. Session ids are UUIDs: unique across consumers and restarts.
            provider_id = f"s{session}:{arrival}"
        number = _e164(event.source_addr, ton=event.source_addr_ton, country=self.home_country)
        if concat is not None and concat[1] > 1:
            reference, total, seq = concat
            return MobileOriginatedPart(self.name, provider_id, number, event.destination_addr, reference, total, seq, text)
        return MobileOriginated(self.name, provider_id, number, event.destination_addr, text)

    def _parse_receipt(self, event, tlvs: dict[int, bytes]) -> Receipt | None:
        message_id = tlvs.get(TLV_RECEIPTED_MESSAGE_ID, b"").replace(b"\0", b"").decode("latin-1").strip()
        state = _MESSAGE_STATES.get(tlvs[TLV_MESSAGE_STATE][0], "") if tlvs.get(TLV_MESSAGE_STATE) else ""
        error = ""
        if not message_id or state != "DELIVRD":
            # The receipt text (SMPP 3.4 appendix B) carries what the optional parameters did not.
            match = _RECEIPT_RE.search(event.short_message.decode("latin-1", errors="replace"))
            if match:
                message_id = message_id or match["id"]
                state = state or match["stat"].upper()
                error = match["err"] or ""
        if not message_id or not state:
            # Says nothing we can act on: the message stays Sent rather than finish on a guess.
            log.warning("SMPP %s: receipt without %s ignored", self.name, "a message id" if not message_id else "a state")
            return None
        if state in INTERMEDIATE_STATES:
            return None
        key = message_id_key(message_id, id_format=self.receipt_id_format, receipt=True)
        if len(key) > MAX_MESSAGE_ID:
            # No message has such an id (OutboxMessage.provider_message_id), and storing it would
            # overflow the receipt table's column: PostgreSQL then refuses the whole batch of receipts.
            log.warning("SMPP %s: receipt for an id of %d characters ignored", self.name, len(key))
            return None
        return Receipt(self.name, key, state, error)

    @property
    def bind_types(self) -> list[str]:
        if self.bind_mode != BindMode.TRANSMITTER_RECEIVER:
            return ["trx"]
        return {Role.SEND: ["tx"], Role.RECEIVE: ["rx"]}.get(self.role, ["tx", "rx"])

    @property
    def receipts_in_band(self) -> bool:
        """Receipts for what this transport submits come back to it (so its consumer knows which
        overtook the record of their submission). A send-only transport's receipts go to the
        receiver process, which retries those that overtook their record until it lands."""
        return self.role == Role.BOTH

    @property
    def receipts_retried_by_receiver(self) -> bool:
        return self.role == Role.SEND

    @property
    def down_reason(self) -> str:
        return f"gateway {self.name} is down: {self.problem}"[:200] if self.problem else f"gateway {self.name} is down"

    @property
    def is_up(self) -> bool:
        return self._connected.is_set()

    def wait_bound(self, timeout: float) -> bool:
        """Until the gateway can do what this process does with it: send, receive, or both (both
        sessions of a transmitter + receiver pair)."""
        deadline = time.monotonic() + timeout
        if self.role != Role.RECEIVE and not self._connected.wait(timeout):
            return False
        return self.role == Role.SEND or self._receiving.wait(max(deadline - time.monotonic(), 0))

    # -- sending ------------------------------------------------------------------------------
    def submit_batch(self, items: list[Submission], timeout: float = 60.0) -> list[SubmitResult]:
        return self.submit_batch_start(items)(timeout)

    def submit_batch_start(self, items: list[Submission]) -> Callable[[float], list[SubmitResult]]:
        """Put the batch on the wire and return at once; the returned function waits (up to its
        timeout) for the results. The caller does its database work meanwhile."""
        if not items:
            return lambda timeout: []
        if not self.is_up:
            down = [SubmitResult(i.outbox_id, Outcome.RETRY, error=self.down_reason) for i in items]
            return lambda timeout: down
        future = asyncio.run_coroutine_threadsafe(self._submit_all(items), self._loop)

        def wait(timeout: float) -> list[SubmitResult]:
            try:
                return future.result(timeout)
            except Exception as exc:
                future.cancel()
                return [SubmitResult(i.outbox_id, Outcome.RETRY, error=f"gateway {self.name}: {exc}"[:200]) for i in items]

        return wait

    async def _submit_all(self, items: list[Submission]) -> list[SubmitResult]:
        gate = asyncio.Semaphore(self.window)

        async def one(item: Submission) -> SubmitResult:
            async with gate:
                return await self._submit_one(item)

        return list(await asyncio.gather(*(one(i) for i in items)))

    def _source(self, item: Submission) -> tuple[str, int, int]:
        source = item.source_addr or self.source_addr
        ton, npi = self.source_ton_npi
        auto_ton, auto_npi = address_ton_npi(source)
        ton = auto_ton if ton is None else ton
        npi = auto_npi if npi is None else npi
        return (source.lstrip("+") if ton == 1 else source), ton, npi

    async def _submit_one(self, item: Submission) -> SubmitResult:
        encoding, parts = split(item.text)
        coding = 0x08 if encoding is Encoding.UCS2 else 0x00
        ref = next(self._refs) & 0xFF
        source, source_ton, source_npi = self._source(item)
        message_id = ""
        for seq, part in enumerate(parts, start=1):
            payload = encode_part(part, encoding)
            esm_class = 0
            if len(parts) > 1:
                # UDH: concatenated short message, 8-bit reference (IEI 0x00, length 3).
                payload = bytes([5, 0x00, 3, ref, len(parts), seq]) + payload
                esm_class = 0x40
            for attempt in range(self.THROTTLE_RETRIES + 1):
                smsc = self._smsc
                if smsc is None:
                    return SubmitResult(item.outbox_id, Outcome.RETRY, error=self.down_reason, parts_submitted=seq - 1)
                await self.limiter.acquire()
                try:
                    # A receipt is asked for the last part only: one receipt per message.
                    resp = await smsc.submit_sm(item.number.lstrip("+"), payload, source_addr=source,
                                                source_addr_ton=source_ton, source_addr_npi=source_npi,
                                                dest_addr_ton=self.dest_addr_ton, dest_addr_npi=self.dest_addr_npi,
                                                esm_class=esm_class, data_coding=coding,
                                                registered_delivery=1 if self.receipts and seq == len(parts) else 0)
                    status = resp.command_status
                except Exception as exc:
                    status = _nacked_status(exc)
                    if status is None:  # connection lost mid-flight: the SMSC may or may not have it
                        return SubmitResult(item.outbox_id, Outcome.RETRY, error=f"connection lost: {exc}"[:200],
                                            parts_submitted=seq - 1)
                    # A generic_nack: the SMSC answered, so the line is fine and its status says what
                    # was wrong (some SMSCs throttle this way too): judged as a submit_sm_resp's.
                    resp = None
                if status not in THROTTLE_STATUSES:
                    break
                self.limiter.throttled()
                if attempt == self.THROTTLE_RETRIES:
                    return SubmitResult(item.outbox_id, Outcome.THROTTLED, error=TRANSIENT_STATUSES[status], parts_submitted=seq - 1)
            if status != ESME_ROK:
                if status in PERMANENT_NAMES or status not in TRANSIENT_STATUSES:
                    reason = PERMANENT_NAMES.get(status, f"the SMSC refused the message (status {status:#04x})")
                    return SubmitResult(item.outbox_id, Outcome.PERMANENT, error=reason, parts_submitted=seq - 1)
                return SubmitResult(item.outbox_id, Outcome.RETRY, error=TRANSIENT_STATUSES[status], parts_submitted=seq - 1)
            message_id = message_id_key(getattr(resp, "message_id", "") or "", id_format=self.receipt_id_format, receipt=False)
        return SubmitResult(item.outbox_id, Outcome.SUBMITTED, provider_message_id=message_id, parts_submitted=len(parts))

    def drain_events(self, limit: int = 10000) -> list[Receipt | MobileOriginated]:
        return drain_queue(self.events, limit)

    def close(self) -> None:
        async def shutdown():
            self._stopping = True
            for smsc in list(self._sessions.values()):
                with contextlib.suppress(Exception):  # unbinding a dead session: nothing more to do
                    await asyncio.wait_for(smsc.unbind(), 2)
            if self.role == Role.RECEIVE:
                # The library acknowledges each deliver_sm as it arrives: what it acknowledged
                # before the unbind is ours alone now. Read it out of its buffer before stopping
                # (the readers end on the session's end), or those receipts are lost.
                await asyncio.wait(self._keepers, timeout=2)
            for client in list(self._clients.values()):
                with contextlib.suppress(Exception):  # already stopped
                    await client.stop()
            for keeper in self._keepers:
                keeper.cancel()

        if self._loop.is_running():
            with contextlib.suppress(Exception):  # a hung peer must not hang shutdown
                asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


_NACK_STATUS_RE = re.compile(r"\(0x([0-9a-fA-F]{8})\)")


def _nacked_status(exc: Exception) -> int | None:
    """The command_status of the generic_nack smpp34 raised as SmppError("ESME_RINVCMDLEN
    (0x00000002)"); None for any other failure (a lost connection, a timeout)."""
    if not isinstance(exc, smpp34.SmppError):
        return None
    match = _NACK_STATUS_RE.search(str(exc))
    status = int(match[1], 16) if match else 0
    return status or None  # a nack "OK" says nothing: treated as a lost answer


def _e164(address: str, *, ton: int = 1, country: str = "") -> str:
    """A phone's number as clients' numbers are stored (E.164). SMSCs send international digits
    without the "+" (TON 1, or 0 "unknown"), but some write a local phone nationally: TON 2, or a
    trunk 0 whatever the TON (no country code starts with 0). That is read as a number of the
    gateway's country; without one it is kept as written, since "+0821234567" is no number."""
    digits = address.strip()
    if digits.startswith("+") or not digits.isdigit():
        return digits  # already international, or an alphanumeric sender
    if ton == 2 or digits.startswith("0"):
        if not country:
            return digits
        try:
            return parse_phone(digits, country=country, field="source_addr")
        except ValidationError:
            return digits
    return "+" + digits


def _concatenation(udh: bytes) -> tuple[int, int, int] | None:
    """(reference, total, sequence) from a user data header's concatenation element: IEI 0x00
    (8-bit reference) or 0x08 (16-bit reference); None without one."""
    pos = 0
    while pos + 2 <= len(udh):
        iei, length = udh[pos], udh[pos + 1]
        value = udh[pos + 2 : pos + 2 + length]
        if iei == 0x00 and length == 3 and len(value) == 3:
            return value[0], value[1], value[2]
        if iei == 0x08 and length == 4 and len(value) == 4:
            return int.from_bytes(value[:2], "big"), value[2], value[3]
        pos += 2 + length
    return None
