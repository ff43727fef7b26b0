"""PIN and one-time-code hashing. PINs are short, so the hash is Argon2 (slow on purpose) and the
lock-out after a few wrong tries does the rest; nothing here ever logs a PIN or a code."""

from __future__ import annotations

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


def new_code() -> str:
    return f"{secrets.randbelow(10**6):06d}"
