"""The local SMSC: accepts binds, answers submit_sm with message ids, sends delivery receipts and
mobile-originated messages as deliver_sm, and can misbehave on purpose (receipt delay, failure
share, throttling, full queue, outage) so the dispatcher's fault handling is tested for real.

It keeps what each number received (long messages reassembled from their UDH parts) for the
"phone" page, where a person can read an OTP and answer, e.g. STOP.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import random
import struct
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field

from imali.messaging.segments import Encoding, decode_payload, encode_part, split

from . import pdu as P
from .phone import PhonePage

log = logging.getLogger("imali.peers.smsc")


@dataclass
class SmscConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: an ephemeral port, read back from `SmscPeer.port`
    http_port: int | None = None  # the phone page; None: no page
    system_id: str = "imali"
    password: str = "secret"
    receipt_delay: float = 0.0
    failure_share: float = 0.0  # share of messages whose receipt says UNDELIV
    # A policer as operators run one: submit_sm spaced closer than 1/limit (beyond the jitter
    # tolerance below) is answered ESME_RTHROTTLED. None: no limit.
    throttle_per_second: float | None = None
    # How early a submit_sm may come, in seconds: the jitter tolerance of the policer (network and
    # scheduling delays bunch evenly sent submits together). 0.1 s at 50/s: a burst of up to 6
    # passes, a second's quota in one go never does (a per-second counter, as many SMSCs keep,
    # tolerates a whole second).
    throttle_tolerance: float = 0.1
    throttle_share: float = 0.0  # share of submit_sm answered ESME_RTHROTTLED regardless of rate
    queue_full_share: float = 0.0  # share answered ESME_RMSGQFUL
    invalid_prefixes: tuple[str, ...] = ("+99",)  # destinations answered ESME_RINVDSTADR (a permanent error)
    # How message ids are written, as SMSCs differ: in submit_sm_resp and in the receipt (its `id:`
    # text and receipted_message_id). "hex" (this SMSC's own form, e.g. 1f), "HEX" (1F), "dec" (31),
    # "hex0" / "dec0" (zero-padded to 10 characters). Many SMSCs answer hex and report decimal.
    resp_id_format: str = "hex"
    receipt_id_format: str = "hex"
    # What a receipt carries: "both" (text and the receipted_message_id / message_state optional
    # parameters), "text" (appendix B text only) or "tlv" (the optional parameters, empty text).
    receipt_style: str = "both"
    # Intermediate receipts sent before the final one, in order (e.g. ("ACCEPTD", "ENROUTE")).
    intermediate_receipts: tuple[str, ...] = ()
    # esm_class of those: 0x04 (as a delivery receipt) or 0x20 (intermediate delivery notification).
    intermediate_esm_class: int = 0x04
    first_message_id: int = 1  # where this SMSC's message ids start (a real one is long past 9)
    # Answer every submit_sm with this command_status (e.g. 0x65 ESME_RX_P_APPN); 0: answer as above.
    submit_status: int = 0
    # Answer every submit_sm with a generic_nack of this command_status (0x02 ESME_RINVCMDLEN, or
    # 0x58 as some SMSCs throttle); 0: a submit_sm_resp.
    submit_nack: int = 0
    # Refuse every bind with this command_status (ESME_RBINDFAIL 0x0D, ESME_RINVPASWD 0x0E ...); 0: bind.
    bind_status: int = 0
    final_state: str | None = None  # the final receipt's state, e.g. "EXPIRED"; None: DELIVRD / UNDELIV by failure_share
    seed: int = 7


@dataclass
class PhoneMessage:
    number: str
    sender: str
    text: str
    message_ids: list[str]
    received_at: dt.datetime
    status: str = "DELIVRD"
    mo: bool = False


@dataclass(eq=False)
class _Session:
    writer: asyncio.StreamWriter
    bound: str = ""  # "", "tx", "rx", "trx"
    seq: itertools.count = field(default_factory=lambda: itertools.count(1))
    # deliver_sm sent and not yet answered: handed to the next receiver if this session dies.
    unacked: dict[int, bytes] = field(default_factory=dict)
    unbinding: bool = False  # this SMSC sent unbind and waits for unbind_resp

    @property
    def receives(self) -> bool:
        return self.bound in ("rx", "trx")


class SmscPeer:
    def __init__(self, config: SmscConfig | None = None):
        self.config = config or SmscConfig()
        self.port: int = 0
        self.http_port: int | None = None
        self._server: asyncio.base_events.Server | None = None
        self._sessions: set[_Session] = set()
        self._ids = itertools.count(self.config.first_message_id)
        self._mo_ids = itertools.count(1)
        self._rng = random.Random(self.config.seed)
        self._mo_refs = itertools.count(self._rng.randrange(1, 200))
        self._pending: list[tuple[str | None, bytes]] = []  # deliver_sm bodies waiting for a bound receiver
        self._parts: dict[tuple, dict[int, tuple[str, str]]] = {}
        self._theoretical_arrival = 0.0  # the policer's state (GCRA): when the next submit_sm is due
        self._down_until = 0.0
        self.phones: dict[str, list[PhoneMessage]] = defaultdict(list)
        self.stats = defaultdict(int)
        self.accepted_parts: list[tuple[str, str]] = []  # (message id, destination) of every accepted submit_sm
        # How the latest submits were addressed: (bind, source, source TON, NPI, destination TON, NPI).
        self.addressing: deque[tuple[str, str, int, int, int, int]] = deque(maxlen=1000)
        self._phone = PhonePage(self)

    # -- life cycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._serve, self.config.host, self.config.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if self.config.http_port is not None:
            self.http_port = await self._phone.start(self.config.host, self.config.http_port)

    async def stop(self) -> None:
        await self._close_listener()
        for s in list(self._sessions):
            s.writer.close()
        await self._phone.stop()

    async def _close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def outage(self, seconds: float) -> None:
        """Go down: drop every session and refuse connections, then come back on the same port."""
        await self.go_down(seconds)
        await self.come_back(seconds)

    async def go_down(self, seconds: float) -> None:
        self.stats["outages"] += 1
        self._down_until = self.loop.time() + seconds
        await self._close_listener()
        for s in list(self._sessions):
            s.writer.transport.abort()

    async def come_back(self, after: float) -> None:
        await asyncio.sleep(after)
        self._server = await asyncio.start_server(self._serve, self.config.host, self.port)

    # -- SMPP ---------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _Session(writer)
        self._sessions.add(session)
        try:
            while True:
                header = await reader.readexactly(16)
                length, command_id, status, seq = P.HEADER.unpack(header)
                body = await reader.readexactly(length - 16) if length > 16 else b""
                if not self._handle(session, command_id, seq, body):
                    break
                if writer.transport.get_write_buffer_size() > 1 << 20:
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client hung up mid-PDU: its session simply ends (cleaned up below)
        finally:
            self._sessions.discard(session)
            writer.close()
            if session.unacked:
                # Store and forward, as an SMSC does: unanswered receipts and replies go to the next bind.
                self._pending.extend((None, body) for body in session.unacked.values())
                session.unacked.clear()
                self._flush_pending()

    def _handle(self, session: _Session, command_id: int, seq: int, body: bytes) -> bool:
        w = session.writer
        if command_id in (P.BIND_TRANSCEIVER, P.BIND_TRANSMITTER, P.BIND_RECEIVER):
            system_id, pos = P.read_cstr(body, 0)
            password, pos = P.read_cstr(body, pos)
            # A refused bind's response has no body (SMPP 3.4 §4.1.2).
            if session.bound:
                w.write(P.pdu(command_id | P.RESP, P.ESME_RALYBND, seq))
            elif system_id != self.config.system_id or password != self.config.password or self.config.bind_status:
                self.stats["bind_refused"] += 1
                w.write(P.pdu(command_id | P.RESP, self.config.bind_status or P.ESME_RINVPASWD, seq))
            else:
                session.bound = {P.BIND_TRANSCEIVER: "trx", P.BIND_TRANSMITTER: "tx", P.BIND_RECEIVER: "rx"}[command_id]
                self.stats["binds"] += 1
                self.stats[f"binds_{session.bound}"] += 1
                w.write(P.pdu(command_id | P.RESP, P.ESME_ROK, seq, P.cstr("smsc")))
                if session.receives:
                    self._flush_pending()
            return True
        if command_id == P.ENQUIRE_LINK:
            self.stats["enquire_link"] += 1
            w.write(P.pdu(P.ENQUIRE_LINK | P.RESP, P.ESME_ROK, seq))
            return True
        if command_id == P.UNBIND:
            w.write(P.pdu(P.UNBIND | P.RESP, P.ESME_ROK, seq))
            session.bound = ""
            return False
        if command_id == P.UNBIND | P.RESP and session.unbinding:
            return False  # the ESME answered our unbind: the session ends here
        if command_id & P.RESP:  # deliver_sm_resp and the like
            session.unacked.pop(seq, None)
            return True
        if not session.bound:
            w.write(P.pdu(command_id | P.RESP, P.ESME_RINVBNDSTS, seq))
            return True
        if command_id == P.SUBMIT_SM:
            if session.bound == "rx":  # a receiver only receives (SMPP 3.4 §2.2)
                w.write(P.pdu(P.SUBMIT_SM | P.RESP, P.ESME_RINVBNDSTS, seq, P.cstr("")))
                return True
            if self.config.submit_nack:
                self.stats[f"nacked_{self.config.submit_nack:#x}"] += 1
                w.write(P.pdu(P.GENERIC_NACK, self.config.submit_nack, seq))
                return True
            w.write(self._submit(session, seq, body))
            return True
        w.write(P.pdu(P.GENERIC_NACK, P.ESME_RINVCMDID, seq))
        return True

    def _refusal(self, destination: str) -> int:
        cfg = self.config
        if cfg.submit_status:
            return cfg.submit_status
        if destination.startswith(cfg.invalid_prefixes):
            return P.ESME_RINVDSTADR
        if cfg.throttle_per_second is not None and self._over_rate(cfg.throttle_per_second, cfg.throttle_tolerance):
            return P.ESME_RTHROTTLED
        if cfg.throttle_share and self._rng.random() < cfg.throttle_share:
            return P.ESME_RTHROTTLED
        if cfg.queue_full_share and self._rng.random() < cfg.queue_full_share:
            return P.ESME_RMSGQFUL
        return P.ESME_ROK

    def _over_rate(self, limit: float, tolerance: float) -> bool:
        """The generic cell rate algorithm (ITU-T I.371 virtual scheduling), the spacing policer
        of operators' SMSCs: each accepted submit_sm moves the due time one interval on; one that
        comes more than `tolerance` seconds before it is due is refused and moves nothing. So the
        long-run rate never exceeds the limit and no burst of two back-to-back submits passes,
        whatever the client's rhythm. (A per-second counter would let a whole second's quota through
        in one burst.)"""
        interval = 1.0 / limit
        now = self.loop.time()
        if now < self._theoretical_arrival - tolerance:
            return True
        self._theoretical_arrival = max(self._theoretical_arrival, now) + interval
        return False

    def _submit(self, session: _Session, seq: int, body: bytes) -> bytes:
        sm = P.ShortMessage.decode(body)
        self.addressing.append((session.bound, sm.source_addr, sm.source_addr_ton, sm.source_addr_npi,
                                sm.dest_addr_ton, sm.dest_addr_npi))
        if sm.destination_addr.isdigit():  # international number without its "+"
            sm.destination_addr = "+" + sm.destination_addr
        refusal = self._refusal(sm.destination_addr)
        if refusal:
            self.stats[f"refused_{refusal:#x}"] += 1
            return P.pdu(P.SUBMIT_SM | P.RESP, refusal, seq, P.cstr(""))
        number = next(self._ids)
        message_id = P.format_id(number, self.config.resp_id_format)
        self.stats["accepted"] += 1
        self.accepted_parts.append((message_id, sm.destination_addr))
        payload = sm.short_message
        if sm.esm_class & 0x40 and payload:
            udh_len = payload[0]
            self._assemble(sm, message_id, payload[1 : 1 + udh_len], payload[1 + udh_len :])
        else:
            self._deliver_to_phone(sm.destination_addr, sm.source_addr, decode_payload(payload, sm.data_coding), [message_id])
        if sm.registered_delivery & 0x01:
            failed = self.config.failure_share and self._rng.random() < self.config.failure_share
            stat = self.config.final_state or ("UNDELIV" if failed else "DELIVRD")
            receipt_id = P.format_id(number, self.config.receipt_id_format)
            # Intermediate receipts go at once (an SMSC reports acceptance as it accepts), the final
            # one after the delay; call_soon / call_later keep them in order.
            for state in self.config.intermediate_receipts:
                self.loop.call_soon(self._send_receipt, session, receipt_id, sm, state,
                                    self.config.intermediate_esm_class)
            if self.config.receipt_delay:
                self.loop.call_later(self.config.receipt_delay, self._send_receipt, session, receipt_id, sm, stat)
            else:
                self.loop.call_soon(self._send_receipt, session, receipt_id, sm, stat)
        return P.pdu(P.SUBMIT_SM | P.RESP, P.ESME_ROK, seq, P.cstr(message_id))

    def _assemble(self, sm: P.ShortMessage, message_id: str, udh: bytes, data: bytes) -> None:
        pos = 0
        while pos + 2 <= len(udh):
            iei, length = udh[pos], udh[pos + 1]
            value = udh[pos + 2 : pos + 2 + length]
            if iei in (0x00, 0x08):
                ref = value[0] if iei == 0x00 else struct.unpack(">H", value[:2])[0]
                total, number = value[-2], value[-1]
                key = (sm.source_addr, sm.destination_addr, ref, total)
                parts = self._parts.setdefault(key, {})
                parts[number] = (message_id, decode_payload(data, sm.data_coding))
                if len(parts) == total:
                    del self._parts[key]
                    ordered = [parts[i] for i in sorted(parts)]
                    self._deliver_to_phone(sm.destination_addr, sm.source_addr, "".join(t for _, t in ordered),
                                           [m for m, _ in ordered])
                return
            pos += 2 + length

    def _deliver_to_phone(self, number: str, sender: str, text: str, ids: list[str]) -> None:
        # A phone page of a million-message benchmark would only cost memory.
        inbox = self.phones[number]
        inbox.append(PhoneMessage(number, sender, text, ids, dt.datetime.now(dt.UTC)))
        if len(inbox) > 50:
            del inbox[0]

    def _send_receipt(self, session: _Session | None, message_id: str, sm: P.ShortMessage, stat: str,
                      esm_class: int = 0x04) -> None:
        now = dt.datetime.now(dt.UTC).strftime("%y%m%d%H%M")
        ok = stat in ("DELIVRD", "ENROUTE", "ACCEPTD")
        text = (f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} submit date:{now} "
                f"done date:{now} stat:{stat} err:{'000' if ok else '001'} text:")
        style = self.config.receipt_style
        tlvs = {}
        if style in ("both", "tlv"):
            tlvs = {P.TLV_RECEIPTED_MESSAGE_ID: P.cstr(message_id), P.TLV_MESSAGE_STATE: bytes([P.MESSAGE_STATES[stat]])}
        receipt = P.ShortMessage(source_addr=sm.destination_addr, destination_addr=sm.source_addr, esm_class=esm_class,
                                 short_message=b"" if style == "tlv" else text.encode("ascii"), tlvs=tlvs)
        self.stats["receipts"] += 1
        self._deliver(session, receipt.encode())

    def _deliver(self, session: _Session | None, body: bytes) -> None:
        target = session if session is not None and session in self._sessions and session.receives else None
        if target is None:
            target = next((s for s in self._sessions if s.receives), None)
        if target is None:
            self._pending.append((None, body))
            return
        seq = next(target.seq)
        target.unacked[seq] = body
        target.writer.write(P.pdu(P.DELIVER_SM, P.ESME_ROK, seq, body))

    def _flush_pending(self) -> None:
        pending, self._pending = self._pending, []
        for _, body in pending:
            self._deliver(None, body)

    def send_to_sessions(self, command_id: int, status: int = 0, body: bytes = b"") -> None:
        """Send a PDU of the SMSC's own to every bound session: an enquire_link, an unbind (an SMSC
        going down for maintenance), a generic_nack."""
        for s in list(self._sessions):
            if s.bound:
                if command_id == P.UNBIND:
                    s.bound, s.unbinding = "", True  # nothing more goes to it
                s.writer.write(P.pdu(command_id, status, next(s.seq), body))

    def inject_mo_raw(self, *, number: str, parts: list[bytes], data_coding: int, to: str = "Imali",
                      in_payload_tlv: bool = False, source_ton: int = 1) -> None:
        """A phone sends these bytes as they are (one short_message, or the parts of a long one with
        UDH): a data coding this SMSC would not choose, a character split between two parts, or the
        text in the message_payload optional parameter with an empty short_message. `number` is
        sent as written with `source_ton` (e.g. "0821234567" with TON 2, national, as some SMSCs
        write a local phone)."""
        reference = next(self._mo_refs) & 0xFF
        self.stats["mo"] += 1
        for seq, data in enumerate(parts, start=1):
            payload, esm_class = data, 0x00
            if len(parts) > 1:
                payload, esm_class = bytes([5, 0x00, 3, reference, len(parts), seq]) + data, 0x40
            sm = P.ShortMessage(source_addr=number.lstrip("+"), destination_addr=to, esm_class=esm_class,
                                data_coding=data_coding, short_message=b"" if in_payload_tlv else payload,
                                tlvs={P.TLV_MESSAGE_PAYLOAD: payload} if in_payload_tlv else {},
                                source_addr_ton=source_ton)
            self._deliver(None, sm.encode())

    def inject_mo(self, *, number: str, text: str, to: str = "Imali", with_id: bool = True, concat: str = "udh8",
                  order: list[int] | None = None) -> str:
        """A phone sends `text` to the service: mobile-originated deliver_sm to a bound ESME.

        A text longer than one SMS goes in parts, as networks deliver it: `concat` "udh8" (UDH,
        IEI 0x00, 8-bit reference), "udh16" (IEI 0x08, 16-bit reference) or "sar" (the sar_*
        optional parameters); `order` sends the parts in that order (1-based, e.g. [3, 1, 2]).
        `with_id=False` leaves out this SMSC's id (vendor TLV 0x1401), as many SMSCs do."""
        mo_id = f"mo{next(self._mo_ids)}"
        encoding, parts = split(text)
        coding = 0x08 if encoding is Encoding.UCS2 else 0x00
        self.phones[number].append(PhoneMessage(number, number, text, [mo_id], dt.datetime.now(dt.UTC), mo=True))
        self.stats["mo"] += 1
        reference = next(self._mo_refs)
        sequence = order or list(range(1, len(parts) + 1))
        for seq in sequence:
            payload, esm_class, tlvs = encode_part(parts[seq - 1], encoding), 0x00, {}
            if len(parts) > 1:
                if concat == "udh16":
                    udh = bytes([6, 0x08, 4, (reference >> 8) & 0xFF, reference & 0xFF, len(parts), seq])
                    payload, esm_class = udh + payload, 0x40
                elif concat == "sar":
                    tlvs = {P.TLV_SAR_MSG_REF_NUM: struct.pack(">H", reference & 0xFFFF),
                            P.TLV_SAR_TOTAL_SEGMENTS: bytes([len(parts)]), P.TLV_SAR_SEGMENT_SEQNUM: bytes([seq])}
                else:
                    payload, esm_class = bytes([5, 0x00, 3, reference & 0xFF, len(parts), seq]) + payload, 0x40
            if with_id:
                tlvs[P.TLV_PEER_MO_ID] = P.cstr(mo_id if len(parts) == 1 else f"{mo_id}.{seq}")
            sm = P.ShortMessage(source_addr=number.lstrip("+"), destination_addr=to, esm_class=esm_class,
                                data_coding=coding, short_message=payload, tlvs=tlvs)
            self._deliver(None, sm.encode())
        return mo_id


class PeerThread:
    """An SMSC peer on its own event loop in a background thread, controlled from synchronous code."""

    def __init__(self, config: SmscConfig):
        self.peer = SmscPeer(config)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._coming_back: asyncio.Future | None = None
        self._thread = threading.Thread(target=self._run, name="smsc-peer", daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self.peer.start())
        self._ready.set()
        self._loop.run_forever()

    def start(self) -> PeerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("The SMSC peer did not start.")
        return self

    @property
    def port(self) -> int:
        return self.peer.port

    @property
    def http_port(self) -> int | None:
        return self.peer.http_port

    def call(self, fn, *args, **kwargs):
        """Run `fn` on the peer's loop and wait for its result (a coroutine function is awaited)."""
        async def run():
            result = fn(*args, **kwargs)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(60)

    def outage(self, seconds: float) -> None:
        """Start an outage of `seconds` and return as soon as the peer is down (sessions dropped,
        connections refused); it comes back by itself. Returning before it is down left the caller
        racing the peer's thread: on a loaded machine a submit could still get through."""
        async def begin():
            await self.peer.go_down(seconds)
            self._coming_back = asyncio.ensure_future(self.peer.come_back(seconds))

        asyncio.run_coroutine_threadsafe(begin(), self._loop).result(60)

    def configure(self, **changes) -> None:
        def apply():
            for k, v in changes.items():
                setattr(self.peer.config, k, v)
        self.call(apply)

    def inject_mo(self, *, number: str, text: str, to: str = "Imali", **options) -> str:
        return self.call(self.peer.inject_mo, number=number, text=text, to=to, **options)

    def inject_mo_raw(self, **options) -> None:
        self.call(self.peer.inject_mo_raw, **options)

    def send_to_sessions(self, command_id: int, status: int = 0, body: bytes = b"") -> None:
        self.call(self.peer.send_to_sessions, command_id, status, body)

    def stop(self) -> None:
        if self._loop.is_running():
            if self._coming_back is not None:
                self.call(self._coming_back.cancel)  # stopped during an outage: it stays down
            self.call(self.peer.stop)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def run_in_thread(config: SmscConfig | None = None) -> PeerThread:
    return PeerThread(config or SmscConfig()).start()
