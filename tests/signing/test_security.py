"""The pure security module: codes, keyed hashes, digests, sealing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imali.signing import security

SECRET = "a-test-secret-key-that-is-long-enough-for-the-purpose-of-these-tests"


def test_codes_are_digits_of_the_asked_length_and_differ():
    codes = {security.generate_code(6) for _ in range(200)}
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert len(codes) > 190  # 200 draws from a million: a repeat is rare, many would mean no randomness
    assert len(security.generate_code(8)) == 8


@pytest.mark.parametrize("length", [0, 4, 5, 11])
def test_code_length_outside_6_to_10_is_refused(length):
    with pytest.raises(ValueError):
        security.generate_code(length)


def test_hash_is_keyed_and_bound_to_its_context():
    h = security.code_hash("123456", context="c1|loan|loan:1|d1", secret=SECRET)
    assert "123456" not in h and len(h) == 64
    assert security.code_matches("123456", h, context="c1|loan|loan:1|d1", secret=SECRET)
    assert not security.code_matches("123457", h, context="c1|loan|loan:1|d1", secret=SECRET)
    assert not security.code_matches("123456", h, context="c1|loan|loan:1|d2", secret=SECRET)  # other terms
    assert not security.code_matches("123456", h, context="c2|loan|loan:1|d1", secret=SECRET)  # other challenge
    assert not security.code_matches("123456", h, context="c1|loan|loan:1|d1", secret=SECRET + "x")  # other key
    assert not security.code_matches("", h, context="c1|loan|loan:1|d1", secret=SECRET)


def test_keys_are_separated_by_purpose():
    assert security.derive_key("otp-code", secret=SECRET) != security.derive_key("otp-seal", secret=SECRET)


def test_terms_digest_is_canonical_and_changes_with_every_term():
    base = {"client_id": 7, "amount": Decimal("3000"), "instalment": Decimal("1234.5"), "term": 3,
            "total_repayable": Decimal("3703.5")}
    digest = security.loan_terms_digest(**base)
    assert digest == security.loan_terms_digest(**{**base, "amount": "3000.00", "instalment": 1234.50})
    for key, other in (("client_id", 8), ("amount", Decimal("3000.01")), ("instalment", Decimal("1234.51")),
                       ("term", 4), ("total_repayable", Decimal("3703.49"))):
        assert security.loan_terms_digest(**{**base, key: other}) != digest, key


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(code=st.text(alphabet="0123456789", min_size=6, max_size=10),
       before=st.text(max_size=40).filter(lambda t: "\ue000" not in t),
       after=st.text(max_size=40).filter(lambda t: "\ue000" not in t),
       nonce=st.uuids().map(lambda u: u.hex))
def test_seal_round_trip_keeps_length_and_hides_the_code(code, before, after, nonce):
    rendered = before + security.mask_marker(len(code)) + after
    text, offset = security.masked(rendered, len(code))
    key = security.seal(code=code, nonce=nonce, offset=offset, secret=SECRET)
    assert len(text) == len(before + code + after)
    assert security.MASK_CHAR * len(code) in text
    assert security.unseal_for_submit(text, key, secret=SECRET) == before + code + after


def test_a_tampered_or_foreign_seal_is_refused():
    text, offset = security.masked("Your code is " + security.mask_marker(6) + ".", 6)
    key = security.seal(code="123456", nonce="abc123", offset=offset, secret=SECRET)
    with pytest.raises(security.SealError):
        security.unseal_for_submit(text, key, secret=SECRET + "x")
    with pytest.raises(security.SealError):
        security.unseal_for_submit(text, key.replace(":13:", ":12:"), secret=SECRET)
    assert security.unseal_for_submit("plain text", "msg:1", secret=SECRET) == "plain text"
