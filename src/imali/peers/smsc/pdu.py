"""SMPP 3.4 PDU framing for the local SMSC (the server side; the client side is the library's)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HEADER = struct.Struct(">IIII")

BIND_RECEIVER = 0x00000001
BIND_TRANSMITTER = 0x00000002
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
BIND_TRANSCEIVER = 0x00000009
ENQUIRE_LINK = 0x00000015
GENERIC_NACK = 0x80000000
RESP = 0x80000000

ESME_ROK = 0x00000000
ESME_RINVCMDID = 0x00000003
ESME_RINVBNDSTS = 0x00000004
ESME_RALYBND = 0x00000005
ESME_RSYSERR = 0x00000008
ESME_RINVDSTADR = 0x0000000B
ESME_RBINDFAIL = 0x0000000D
ESME_RINVPASWD = 0x0000000E
ESME_RMSGQFUL = 0x00000014
ESME_RTHROTTLED = 0x00000058

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F
# Vendor-specific tag (SMPP 3.4 reserves 0x1400-0x3FFF) carrying this SMSC's id of a mobile-originated message.
TLV_PEER_MO_ID = 0x1401
TLV_MESSAGE_PAYLOAD = 0x0424

STATE_DELIVERED = 2
STATE_UNDELIVERABLE = 5
# message_state values (SMPP 3.4 §5.2.28) by the receipt text's `stat:` word.
MESSAGE_STATES = {"ENROUTE": 1, "DELIVRD": 2, "EXPIRED": 3, "DELETED": 4, "UNDELIV": 5, "ACCEPTD": 6, "UNKNOWN": 7,
                  "REJECTD": 8}
ID_FORMATS = ("hex", "HEX", "dec", "hex0", "dec0")


def format_id(number: int, style: str) -> str:
    """A message id as an SMSC of that style writes it (SmscConfig.resp_id_format)."""
    text = {"hex": f"{number:x}", "HEX": f"{number:X}", "dec": f"{number}", "hex0": f"{number:010x}",
            "dec0": f"{number:010d}"}.get(style)
    if text is None:
        raise ValueError(f"message id format: {style!r} is not one of {', '.join(ID_FORMATS)}")
    return text


def pdu(command_id: int, status: int, sequence: int, body: bytes = b"") -> bytes:
    return HEADER.pack(HEADER.size + len(body), command_id, status, sequence) + body


def cstr(value: str) -> bytes:
    return value.encode("latin-1") + b"\0"


def read_cstr(body: bytes, pos: int) -> tuple[str, int]:
    end = body.index(b"\0", pos)
    return body[pos:end].decode("latin-1"), end + 1


@dataclass
class ShortMessage:
    """The body of submit_sm / deliver_sm (same layout)."""

    source_addr: str = ""
    destination_addr: str = ""
    esm_class: int = 0
    registered_delivery: int = 0
    data_coding: int = 0
    short_message: bytes = b""
    service_type: str = ""
    tlvs: dict[int, bytes] = field(default_factory=dict)
    source_addr_ton: int = 1
    source_addr_npi: int = 1
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1

    def encode(self) -> bytes:
        out = bytearray()
        out += cstr(self.service_type)
        out += bytes([self.source_addr_ton, self.source_addr_npi]) + cstr(self.source_addr)
        out += bytes([self.dest_addr_ton, self.dest_addr_npi]) + cstr(self.destination_addr)
        out += bytes([self.esm_class, 0, 0]) + cstr("") + cstr("")
        out += bytes([self.registered_delivery, 0, self.data_coding, 0, len(self.short_message)])
        out += self.short_message
        for tag, value in self.tlvs.items():
            out += struct.pack(">HH", tag, len(value)) + value
        return bytes(out)

    @classmethod
    def decode(cls, body: bytes) -> ShortMessage:
        service_type, pos = read_cstr(body, 0)
        source_ton, source_npi = body[pos], body[pos + 1]
        source, pos = read_cstr(body, pos + 2)
        dest_ton, dest_npi = body[pos], body[pos + 1]
        dest, pos = read_cstr(body, pos + 2)
        esm_class = body[pos]
        pos += 3
        _, pos = read_cstr(body, pos)
        _, pos = read_cstr(body, pos)
        registered_delivery, data_coding, sm_length = body[pos], body[pos + 2], body[pos + 4]
        pos += 5
        short_message = body[pos : pos + sm_length]
        pos += sm_length
        tlvs = {}
        while pos + 4 <= len(body):
            tag, length = struct.unpack_from(">HH", body, pos)
            tlvs[tag] = body[pos + 4 : pos + 4 + length]
            pos += 4 + length
        return cls(source, dest, esm_class, registered_delivery, data_coding, short_message, service_type, tlvs,
                   source_ton, source_npi, dest_ton, dest_npi)
