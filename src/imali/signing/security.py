"""The cryptography of OTP signing. Pure: no database, no settings read except through `secret_key()`.

- Codes come from `secrets` (a CSPRNG), all digits, at least 6 long.
- A code is stored only as HMAC-SHA256 under a key derived from SECRET_KEY for one purpose, over
  the challenge's identity and the terms digest it was issued for: the same code for another
  challenge or other terms never matches, and a database dump without SECRET_KEY cannot be
  brute-forced offline in the 10**6 code space.
- Comparison is constant-time (`hmac.compare_digest`).
- The terms digest is SHA-256 over a canonical serialisation of what the client agrees to.
- Sealing: the OTP SMS waits in the outbox until a consumer sends it; its text there carries a mask
  instead of the code and the code travels sealed (keyed stream cipher + tag) in the outbox row's
  idempotency key, so neither the database nor anyone reading the client's SMS history sees it.
  `unseal_for_submit` gives the transport the real text, in memory, just before it is sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal

MIN_CODE_LENGTH = 6
MAX_CODE_LENGTH = 10
SEAL_PREFIX = "otp-sealed:v1:"
MASK_CHAR = "*"
_TAG_BYTES = 10


class SealError(ValueError):
    """The sealed code was altered or was sealed under another key."""


def secret_key() -> str:
    from django.conf import settings

    return settings.SECRET_KEY


def derive_key(purpose: str, *, secret: str | None = None) -> bytes:
    """A key for one purpose only, so a key leaked or misused for one job cannot serve another."""
    base = (secret if secret is not None else secret_key()).encode()
    return hmac.new(base, b"imali.signing.key:" + purpose.encode(), hashlib.sha256).digest()


def generate_code(length: int = MIN_CODE_LENGTH) -> str:
    if not MIN_CODE_LENGTH <= length <= MAX_CODE_LENGTH:
        raise ValueError(f"A code has {MIN_CODE_LENGTH} to {MAX_CODE_LENGTH} digits.")
    return f"{secrets.randbelow(10**length):0{length}d}"


def _hash_message(code: str, context: str) -> bytes:
    # Length-prefixed so no (context, code) pair can be shifted into another.
    ctx = context.encode()
    return len(ctx).to_bytes(4, "big") + ctx + code.encode()


def code_hash(code: str, *, context: str, secret: str | None = None) -> str:
    return hmac.new(derive_key("otp-code", secret=secret), _hash_message(code, context), hashlib.sha256).hexdigest()


def code_matches(code: str, stored_hash: str, *, context: str, secret: str | None = None) -> bool:
    candidate = code_hash((code or "").strip(), context=context, secret=secret)
    return hmac.compare_digest(candidate.encode(), (stored_hash or "").encode())


def _money(value) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def canonical(data: Mapping[str, object]) -> bytes:
    """Sorted keys, no spaces, UTF-8: the same mapping always gives the same bytes."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def loan_terms_digest(*, client_id: int, amount, instalment, term: int, total_repayable) -> str:
    """What the client agrees to when signing a loan; any change gives another digest."""
    terms = {
        "document": "loan-agreement/v1",
        "client": int(client_id),
        "amount": _money(amount),
        "instalment": _money(instalment),
        "term": int(term),
        "total_repayable": _money(total_repayable),
    }
    return hashlib.sha256(canonical(terms)).hexdigest()


def mandate_terms_digest(*, client_id: int, loan_id: int, kind: str, instalment, maximum_collection,
                         collection_day: int, account: str) -> str:
    terms = {
        "document": "debit-mandate/v1",
        "client": int(client_id),
        "loan": int(loan_id),
        "kind": kind,
        "instalment": _money(instalment),
        "maximum_collection": _money(maximum_collection),
        "collection_day": int(collection_day),
        "account": account,
    }
    return hashlib.sha256(canonical(terms)).hexdigest()


def document_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def digests_equal(a: str, b: str) -> bool:
    return hmac.compare_digest((a or "").encode(), (b or "").encode())


# --- Sealing the code for the outbox -------------------------------------------------------------


def _keystream(nonce: str, length: int, secret: str | None) -> bytes:
    key = derive_key("otp-seal", secret=secret)
    out = b""
    counter = 0
    while len(out) < length:
        out += hmac.new(key, b"stream:" + nonce.encode() + counter.to_bytes(4, "big"), hashlib.sha256).digest()
        counter += 1
    return out[:length]


def _tag(nonce: str, offset: int, ciphertext: bytes, secret: str | None) -> bytes:
    key = derive_key("otp-seal", secret=secret)
    return hmac.new(key, b"tag:" + nonce.encode() + b":" + str(offset).encode() + b":" + ciphertext,
                    hashlib.sha256).digest()[:_TAG_BYTES]


def seal(*, code: str, nonce: str, offset: int, secret: str | None = None) -> str:
    """The idempotency key that carries `code` sealed; `nonce` must be unique per code (the
    challenge's id), `offset` is where the mask stands in the outbox text."""
    if not nonce.isalnum():
        raise ValueError("The nonce is alphanumeric.")
    raw = code.encode()
    ciphertext = bytes(a ^ b for a, b in zip(raw, _keystream(nonce, len(raw), secret), strict=True))
    blob = base64.urlsafe_b64encode(ciphertext + _tag(nonce, offset, ciphertext, secret)).decode().rstrip("=")
    return f"{SEAL_PREFIX}{nonce}:{offset}:{blob}"


# A private-use character never typed into a template or a client's data: the rendered message
# is scanned for it, never for the code's digits (which could also occur in an account number).
_MARKER_CHAR = "\ue000"


def mask_marker(length: int) -> str:
    return _MARKER_CHAR * length


def masked(rendered_with_marker: str, length: int) -> tuple[str, int]:
    """The message rendered with `mask_marker(length)` in place of the code, turned into the text
    the outbox keeps: a mask of the code's length (so segments and credits are those of the real
    message) and the mask's offset."""
    marker = mask_marker(length)
    offset = rendered_with_marker.index(marker)
    return rendered_with_marker[:offset] + MASK_CHAR * length + rendered_with_marker[offset + length:], offset


def unseal_for_submit(text: str, idempotency_key: str, *, secret: str | None = None) -> str:
    """The text to hand to the SMSC: for a sealed OTP message, the mask replaced by the code;
    any other message unchanged. Never store the result."""
    if not idempotency_key.startswith(SEAL_PREFIX):
        return text
    try:
        nonce, offset_text, blob = idempotency_key[len(SEAL_PREFIX):].split(":")
        offset = int(offset_text)
        data = base64.urlsafe_b64decode(blob + "=" * (-len(blob) % 4))
    except ValueError:
        raise SealError("The sealed code is malformed.") from None
    ciphertext, tag = data[:-_TAG_BYTES], data[-_TAG_BYTES:]
    if not hmac.compare_digest(tag, _tag(nonce, offset, ciphertext, secret)):
        raise SealError("The sealed code failed its integrity check.")
    code = bytes(a ^ b for a, b in zip(ciphertext, _keystream(nonce, len(ciphertext), secret), strict=True)).decode()
    if text[offset:offset + len(code)] != MASK_CHAR * len(code):
        raise SealError("The message text does not carry the mask where the code belongs.")
    return text[:offset] + code + text[offset + len(code):]
