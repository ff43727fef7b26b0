import pytest
from hypothesis import given
from hypothesis import strategies as st

from imali.messaging.segments import (
    Encoding,
    analyse,
    decode_payload,
    encode_part,
    segment_count,
    split,
)


@pytest.mark.parametrize(
    ("text", "segments", "encoding"),
    [
        ("a" * 160, 1, Encoding.GSM7),
        ("a" * 161, 2, Encoding.GSM7),
        ("€" * 80, 1, Encoding.GSM7),
        ("€" * 81, 2, Encoding.GSM7),
        ("ā" * 71, 2, Encoding.UCS2),
        ("ā" * 70, 1, Encoding.UCS2),
        ("a" * 306, 2, Encoding.GSM7),
        ("a" * 307, 3, Encoding.GSM7),
        ("", 1, Encoding.GSM7),
    ],
)
def test_domain_vectors(text, segments, encoding):
    info = analyse(text)
    assert info.segments == segments
    assert info.encoding is encoding
    assert segment_count(text) == segments


def test_161_a_splits_153_plus_8():
    encoding, parts = split("a" * 161)
    assert encoding is Encoding.GSM7
    assert [len(p) for p in parts] == [153, 8]


def test_extension_characters_cost_two_and_never_straddle_parts():
    text = "a" * 152 + "€" + "b" * 10
    encoding, parts = split(text)
    assert analyse(text).units == 164
    assert parts == ["a" * 152, "€" + "b" * 10]


def test_names_the_characters_that_force_ucs2():
    info = analyse("Dumela Mmā, your loan of R500 is ready ✓ ā")
    assert info.encoding is Encoding.UCS2
    assert info.ucs2_characters == ("ā", "✓")


def test_emoji_surrogate_pair_counts_two_units():
    assert analyse("😀" * 35).segments == 1
    assert analyse("😀" * 36).segments == 2


@given(st.text(max_size=400))
def test_split_parts_rejoin_and_match_the_count(text):
    encoding, parts = split(text)
    assert "".join(parts) == text
    assert len(parts) == analyse(text).segments == segment_count(text)


@given(st.text(alphabet=st.sampled_from(list("abcXYZ019 @£$€^{}[]~|\\\nÄñ")), max_size=400))
def test_gsm7_round_trip(text):
    encoding, parts = split(text)
    assert encoding is Encoding.GSM7
    assert "".join(decode_payload(encode_part(p, encoding), 0) for p in parts) == text


def test_ucs2_round_trip():
    text = "Ā" * 100
    encoding, parts = split(text)
    assert encoding is Encoding.UCS2
    assert [len(encode_part(p, encoding)) for p in parts] == [134, 66]
    assert "".join(decode_payload(encode_part(p, encoding), 8) for p in parts) == text


def test_every_ascii_character_agrees_with_the_tables():
    for code in range(128):
        ch = chr(code)
        assert segment_count(ch * 161) == analyse(ch * 161).segments, repr(ch)
