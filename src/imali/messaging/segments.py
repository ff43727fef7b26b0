"""SMS segment counting and splitting (DOMAIN §9). Pure: no database, no Django.

GSM-7 (3GPP TS 23.038 default alphabet): 160 septets in one SMS, 153 per part once a
concatenation header (UDH, 6 octets) is needed. The extension-table characters cost two
septets (an escape and the character) and an escape pair is never split across parts.
Anything outside GSM-7 forces UCS-2: 70 UTF-16 code units alone, 67 per part; a surrogate
pair is never split either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "^{}\\[~]|€\f"

# Byte values of the default alphabet, for the unpacked 8-bit form SMPP data_coding 0 carries.
_GSM7_BASIC_CODES = {
    ch: code
    for code, ch in enumerate(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
        "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    if ch != "\x1b"
}
_GSM7_EXTENSION_CODES = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D, "]": 0x3E, "|": 0x40, "€": 0x65}
_GSM7_DECODE = {code: ch for ch, code in _GSM7_BASIC_CODES.items()}
_GSM7_EXT_DECODE = {code: ch for ch, code in _GSM7_EXTENSION_CODES.items()}

_BASIC = frozenset(GSM7_BASIC)
# The ASCII characters that are not in the GSM-7 basic table (extension characters or none at all).
_ASCII_NOT_BASIC = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f`\[\\\]^{|}~\x7f]")
_EXTENSION = frozenset(GSM7_EXTENSION)

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


class Encoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


@dataclass(frozen=True)
class SegmentInfo:
    encoding: Encoding
    segments: int
    units: int  # septets (GSM-7) or UTF-16 code units (UCS-2)
    ucs2_characters: tuple[str, ...]  # the distinct characters that forced UCS-2, in order of appearance


def _gsm7_cost(ch: str) -> int:
    if ch in _BASIC:
        return 1
    if ch in _EXTENSION:
        return 2
    return 0


def ucs2_forcing_characters(text: str) -> tuple[str, ...]:
    seen: dict[str, None] = {}
    for ch in text:
        if ch not in _BASIC and ch not in _EXTENSION:
            seen.setdefault(ch, None)
    return tuple(seen)


def _ucs2_cost(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def _pack(text: str, cost, single: int, part: int) -> list[str]:
    """Split `text` into the parts a handset receives; a character's units never straddle two parts."""
    total = sum(cost(ch) for ch in text)
    if total <= single:
        return [text] if text else [""]
    parts: list[str] = []
    current: list[str] = []
    used = 0
    for ch in text:
        c = cost(ch)
        if used + c > part:
            parts.append("".join(current))
            current, used = [], 0
        current.append(ch)
        used += c
    if current:
        parts.append("".join(current))
    return parts


def analyse(text: str) -> SegmentInfo:
    forcing = ucs2_forcing_characters(text)
    if not forcing:
        units = sum(_gsm7_cost(ch) for ch in text)
        return SegmentInfo(Encoding.GSM7, len(_pack(text, _gsm7_cost, GSM7_SINGLE, GSM7_PART)), units, ())
    units = sum(_ucs2_cost(ch) for ch in text)
    return SegmentInfo(Encoding.UCS2, len(_pack(text, _ucs2_cost, UCS2_SINGLE, UCS2_PART)), units, forcing)


def _basic_only(text: str) -> bool:
    """Only basic-alphabet characters (the common case): one septet each. For ASCII text that is
    "no character outside the basic table", found by one C-level regex scan."""
    return text.isascii() and not _ASCII_NOT_BASIC.search(text) or _BASIC.issuperset(text)


def segment_count(text: str) -> int:
    """Fast path of `analyse(text).segments`: the credits one SMS of this text costs."""
    if _basic_only(text):
        n = len(text)
        return 1 if n <= GSM7_SINGLE else -(-n // GSM7_PART)
    return analyse(text).segments


def split(text: str) -> tuple[Encoding, list[str]]:
    """The parts to submit, in order, with the encoding they go in."""
    if len(text) <= GSM7_SINGLE and _basic_only(text):  # one part, as is: the dispatcher's common case
        return Encoding.GSM7, [text]
    if ucs2_forcing_characters(text):
        return Encoding.UCS2, _pack(text, _ucs2_cost, UCS2_SINGLE, UCS2_PART)
    return Encoding.GSM7, _pack(text, _gsm7_cost, GSM7_SINGLE, GSM7_PART)


# Every GSM-7 character to its unpacked septet(s) as a Latin-1 character (an extension
# character to the escape and its code): `encode_gsm7` is then one C-level translate.
_GSM7_TRANSLATE = {ord(ch): chr(code) for ch, code in _GSM7_BASIC_CODES.items()} | {
    ord(ch): "\x1b" + chr(code) for ch, code in _GSM7_EXTENSION_CODES.items()}


def encode_gsm7(text: str) -> bytes:
    """Unpacked GSM-7 (one septet per octet), the form SMPP data_coding 0 carries."""
    if _basic_only(text) or _BASIC.union(_EXTENSION).issuperset(text):
        return text.translate(_GSM7_TRANSLATE).encode("latin-1")
    out = bytearray()
    for ch in text:
        code = _GSM7_BASIC_CODES.get(ch)
        if code is not None:
            out.append(code)
        else:
            out.append(0x1B)
            out.append(_GSM7_EXTENSION_CODES[ch])
    return bytes(out)


def decode_gsm7(data: bytes) -> str:
    out: list[str] = []
    escape = False
    for b in data:
        if escape:
            out.append(_GSM7_EXT_DECODE.get(b, " "))
            escape = False
        elif b == 0x1B:
            escape = True
        else:
            out.append(_GSM7_DECODE.get(b, "?"))
    return "".join(out)


def encode_part(text: str, encoding: Encoding) -> bytes:
    return encode_gsm7(text) if encoding is Encoding.GSM7 else text.encode("utf-16-be")


# A lone UTF-16 surrogate (a phone that split a character such as an emoji between two parts of a
# long message) is kept in a part's text as a code point of plane 15's private use area, which a
# database can store (a surrogate cannot be written as UTF-8) and no SMS carries; `join_parts`
# puts the halves together again.
_LONE_SURROGATE_BASE = 0xF0000
_LONE_RE = re.compile("[\ud800-\udfff]")
_PARKED_PAIR_RE = re.compile("([\U000f0000-\U000f03ff])([\U000f0400-\U000f07ff])")
_PARKED_RE = re.compile("[\U000f0000-\U000f07ff]")


def _sms_alphabet(data_coding: int) -> str:
    """The alphabet an SMPP data_coding names (SMPP 3.4 §5.2.19; the GSM 03.38 coding groups an
    SMSC may pass through from the network)."""
    if data_coding in (0x02, 0x04):
        return "binary"
    fixed = {0x00: "gsm7", 0x01: "ascii", 0x03: "latin-1", 0x06: "iso8859-5", 0x07: "iso8859-8", 0x08: "ucs2"}
    if data_coding in fixed:
        return fixed[data_coding]
    if data_coding & 0xF0 == 0xF0:  # data coding / message class group
        return "binary" if data_coding & 0x04 else "gsm7"
    if data_coding & 0xC0 == 0x00 and not data_coding & 0x20:  # general data coding, uncompressed
        return ("gsm7", "binary", "ucs2", "gsm7")[(data_coding >> 2) & 0x03]
    return "gsm7"


def decode_payload(data: bytes, data_coding: int, *, part: bool = False) -> str:
    """Text of an SMPP short_message by its data_coding. `part`: one part of a long message, whose
    split characters `join_parts` mends. Binary data (a ringtone, a SIM update) has no text: staff
    see that it came and its size, not bytes read as letters."""
    alphabet = _sms_alphabet(data_coding)
    if alphabet == "ucs2":
        text = data[: len(data) // 2 * 2].decode("utf-16-be", errors="surrogatepass")
        if part:
            text = _LONE_RE.sub(lambda m: chr(_LONE_SURROGATE_BASE + ord(m[0]) - 0xD800), text)
        else:
            text = _LONE_RE.sub("\ufffd", text)
        return text + ("\ufffd" if len(data) % 2 else "")
    if alphabet == "binary":
        return f"[binary message, {len(data)} bytes]"
    if alphabet != "gsm7":
        return data.decode(alphabet, errors="replace")
    return decode_gsm7(data)


def join_parts(texts: list[str]) -> str:
    """A long message's text from its parts' (`decode_payload(..., part=True)`), with a character
    split between two parts whole again; a half whose other half never came shows as U+FFFD."""
    text = _PARKED_PAIR_RE.sub(lambda m: (chr(ord(m[1]) - _LONE_SURROGATE_BASE + 0xD800)
                                          + chr(ord(m[2]) - _LONE_SURROGATE_BASE + 0xD800))
                               .encode("utf-16-le", "surrogatepass").decode("utf-16-le"), "".join(texts))
    return _PARKED_RE.sub("\ufffd", text)
