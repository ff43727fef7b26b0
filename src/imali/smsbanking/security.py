"""PIN and one-time-code hashing. PINs are short, so the hash is Argon2 (slow on purpose) and the
lock-out after a few wrong tries does the rest; nothing here ever logs a PIN or a code."""

from __future__ import annotations

import functools
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


def hash_secret(secret: str) -> str:
    return _hasher.hash(secret)


def secret_matches(stored_hash: str, secret: str) -> bool:
    try:
        return _hasher.verify(stored_hash, secret)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@functools.cache
def _stand_in_hash() -> str:
    return _hasher.hash(secrets.token_hex(16))


def secret_matches_none(secret: str) -> bool:
    """The work of `secret_matches` where there is no stored hash (an unknown account, an account
    without a PIN): without it the answer comes back at once, and its delay tells a stranger which
    accounts have a PIN worth guessing. Always False."""
    secret_matches(_stand_in_hash(), secret)
    return False


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"
