"""GSM 03.38 tables and septet packing."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sms import gsm7

# Reference vectors from the GSM 03.38 packing examples that SMS tools commonly quote.
PACKED_VECTORS = [
    ("hellohello", "E8329BFD4697D9EC37"),
    ("How are you?", "C8F71D14969741F977FD07"),
    ("2 € par mois", "32D0A60C8287E5A0F63B3D07"),
    ("1234567", "31D98C56B3DD00"),
]


def test_tables_have_the_standard_shape() -> None:
    assert len(gsm7.DEFAULT_ALPHABET) == 128
    assert gsm7.DEFAULT_ALPHABET[0x00] == "@"
    assert gsm7.DEFAULT_ALPHABET[0x1B] == "\x1b"
    assert gsm7.DEFAULT_ALPHABET[0x24] == "¤"
    assert gsm7.DEFAULT_ALPHABET[0x40] == "¡"
    assert gsm7.DEFAULT_ALPHABET[0x7F] == "à"
    assert len(set(gsm7.DEFAULT_ALPHABET)) == 128
    assert set(gsm7.EXTENSION_TABLE.values()) == set("\f^{}\\[~]|€")
    assert not set(gsm7.EXTENSION_TABLE.values()) & set(gsm7.DEFAULT_ALPHABET)


@pytest.mark.parametrize(("text", "packed"), PACKED_VECTORS)
def test_pack_matches_reference(text: str, packed: str) -> None:
    assert gsm7.pack(gsm7.encode(text)).hex().upper() == packed
    septets = gsm7.septet_length(text)
    assert gsm7.decode(gsm7.unpack(bytes.fromhex(packed), septets)) == text


def test_extension_characters_take_two_septets() -> None:
    assert gsm7.encode("€") == [0x1B, 0x65]
    assert gsm7.septet_length("a{b}") == 6
    assert gsm7.char_septets("[") == (0x1B, 0x3C)
    assert gsm7.char_septets("ж") is None


def test_decode_odd_escapes() -> None:
    assert gsm7.decode([0x1B, 0x41]) == "A"  # undefined extension: the default character
    assert gsm7.decode([0x1B, 0x1B, 0x41]) == " A"  # double escape: a space
    assert gsm7.decode([0x41, 0x1B]) == "A "  # escape at the end: a space
    assert gsm7.decode(b"\xc1") == "A"  # the eighth bit is ignored


def test_encode_refuses_characters_outside_the_alphabet() -> None:
    assert gsm7.is_encodable("Hello €")
    assert not gsm7.is_encodable("Привет")
    assert not gsm7.is_encodable("\x1b")  # the escape is not a character
    with pytest.raises(gsm7.Gsm7Error):
        gsm7.encode("naïve")
    assert issubclass(gsm7.Gsm7Error, ValueError)


def test_fill_bits_shift_the_text() -> None:
    # After a 6-octet UDH one fill bit precedes the text; after 7 octets there is none.
    assert gsm7.pack([0x41], 1) == bytes([0x82])
    assert gsm7.pack([0x41], 0) == bytes([0x41])
    assert gsm7.unpack(bytes([0x82]), 1, 1) == [0x41]
    assert gsm7.packed_length(8) == 7
    assert gsm7.packed_length(1, 6) == 2


def test_unpack_refuses_too_few_octets_and_bad_fill() -> None:
    with pytest.raises(gsm7.Gsm7Error):
        gsm7.unpack(b"\x00" * 7, 9)
    with pytest.raises(gsm7.Gsm7Error):
        gsm7.unpack(b"\x00", 1, 2)
    with pytest.raises(ValueError):
        gsm7.unpack(b"\x00", 1, 7)
    with pytest.raises(ValueError):
        gsm7.pack([1], -1)


@settings(max_examples=200, deadline=None)
@given(septets=st.lists(st.integers(0, 127), max_size=200), fill=st.integers(0, 6))
def test_pack_unpack_round_trip(septets: list[int], fill: int) -> None:
    packed = gsm7.pack(septets, fill)
    assert len(packed) == gsm7.packed_length(len(septets), fill)
    assert gsm7.unpack(packed, len(septets), fill) == septets


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(
            sorted(
                {c for c in gsm7.DEFAULT_ALPHABET if c != "\x1b"}
                | set(gsm7.EXTENSION_TABLE.values())
            )
        )
    )
)
def test_text_round_trip(text: str) -> None:
    assert gsm7.is_encodable(text)
    assert gsm7.decode(gsm7.encode(text)) == text
