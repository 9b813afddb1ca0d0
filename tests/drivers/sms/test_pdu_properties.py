"""Properties of the PDU codec: round trips, agreement with smspdudecoder, and fuzzing.

Every decode failure must be a PduError raised on purpose: the codec's safety net turns a stray
exception into a PduError saying "unexpected", and these tests treat that as a bug.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from drivers.sms import gsm7
from drivers.sms.pdu import (
    PduError,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    decode_pdu,
    encode_deliver,
    tpdu_length,
)

smspdudecoder_easy = pytest.importorskip("smspdudecoder.easy")

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
FUZZ_SETTINGS = settings(max_examples=300, deadline=None)

GSM_CHARS = sorted(
    {c for c in gsm7.DEFAULT_ALPHABET if c != "\x1b"} | set(gsm7.EXTENSION_TABLE.values())
)
EXTENSION_CHARS = sorted(gsm7.EXTENSION_TABLE.values())

gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=400)
extension_heavy_text = st.text(
    alphabet=st.sampled_from([*EXTENSION_CHARS, "a", "b", " "]), max_size=400
)
emoji_text = st.text(
    alphabet=st.one_of(
        st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF),
        st.sampled_from(["ж", "a", " ", "€"]),
    ),
    max_size=200,
)
any_text = st.one_of(st.text(max_size=400), gsm_text, extension_heavy_text, emoji_text)

international = st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)
national = st.from_regex(r"[0-9]{1,20}", fullmatch=True)
alphanumeric = (
    st.text(alphabet=st.sampled_from(GSM_CHARS), min_size=1, max_size=11)
    .filter(lambda s: gsm7.septet_length(s) <= 11)
    .filter(lambda s: not s.lstrip("+").isdigit() or not s.isascii())
)
senders = st.one_of(international, national, alphanumeric)

zones = st.integers(min_value=-48, max_value=56).map(lambda q: timezone(timedelta(minutes=15 * q)))
timestamps = st.builds(
    lambda naive, zone: naive.replace(tzinfo=zone),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)).map(
        lambda d: d.replace(microsecond=0)
    ),
    zones,
)


def decode_deliver(pdu: str) -> SmsDeliver:
    message = decode_pdu(pdu)
    assert isinstance(message, SmsDeliver)
    return message


@PROPERTY_SETTINGS
@given(
    sender=senders,
    text=any_text,
    ref16=st.booleans(),
    ref=st.none() | st.integers(0, 255),
    stamp=timestamps,
)
def test_round_trip(sender: str, text: str, ref16: bool, ref: int | None, stamp: datetime) -> None:
    pdus = encode_deliver(sender, text, ref=ref, ref16=ref16, timestamp=stamp)
    messages = [decode_deliver(pdu) for pdu in pdus]
    assert "".join(m.text for m in messages) == text
    expected_encoding = "gsm7" if gsm7.is_encodable(text) else "ucs2"
    for seq, message in enumerate(messages, start=1):
        assert message.sender == sender
        assert message.sender_is_alpha == (not sender.lstrip("+").isdigit())
        assert message.encoding == expected_encoding
        assert message.timestamp == stamp
        assert message.timestamp.utcoffset() == stamp.utcoffset()
        assert tpdu_length(pdu := pdus[seq - 1]) == len(pdu) // 2 - 1
        if len(messages) == 1:
            assert message.concat is None
        else:
            assert message.concat is not None
            assert message.concat.total == len(messages)
            assert message.concat.seq == seq
            assert message.concat.ref_bits == (16 if ref16 else 8)
            assert message.concat.ref == messages[0].concat.ref  # type: ignore[union-attr]
            if ref is not None:
                assert message.concat.ref == ref


@PROPERTY_SETTINGS
@given(text=any_text, encoding=st.sampled_from(["auto", "ucs2"]))
def test_round_trip_forced_ucs2_and_part_sizes(text: str, encoding: str) -> None:
    pdus = encode_deliver("+15551234567", text, encoding=encoding, ref=1)
    messages = [decode_deliver(pdu) for pdu in pdus]
    assert "".join(m.text for m in messages) == text
    for message in messages:
        if message.encoding == "ucs2":
            units = len(message.data) // 2
            assert units <= (70 if len(messages) == 1 else 67)
        else:
            assert gsm7.septet_length(message.text) <= (160 if len(messages) == 1 else 153)


# ---------------------------------------------------------------- differential


def oracle_sender(sender: str, is_alpha: bool) -> str:
    """What smspdudecoder reports: it unpacks every octet of an alphanumeric address, so the
    7 spare bits of a 7-character name come back as a trailing '@'."""
    if not is_alpha:
        return sender
    septets = gsm7.septet_length(sender)
    octets = ((7 * septets + 3) // 4 + 1) // 2
    return sender + "@" * (octets * 8 // 7 - septets)


def oracle_content(ours: SmsDeliver, *, single: bool) -> str | None:
    """What smspdudecoder reports as text. It slices decoded GSM-7 *characters* by septet
    counts, so with escape pairs the padding bits of the last octet can show up as '@'; and
    escapes among the header septets shift the slice. None: the oracle cannot tell."""
    if ours.encoding != "gsm7" or gsm7.septet_length(ours.text) == len(ours.text):
        return ours.text
    if not single:
        return None
    septets = gsm7.septet_length(ours.text)
    spare = len(ours.data) * 8 // 7 - septets
    return ours.text + "@" * min(spare, septets - len(ours.text))


@PROPERTY_SETTINGS
@given(
    sender=senders,
    text=any_text,
    ref16=st.booleans(),
    dcs=st.sampled_from([None, 0x48, 0x10, 0xF0, 0xF1, 0xF2]),
)
def test_agrees_with_smspdudecoder(sender: str, text: str, ref16: bool, dcs: int | None) -> None:
    try:
        pdus = encode_deliver(sender, text, ref16=ref16, dcs=dcs)
    except ValueError:
        assume(False)  # DCS that cannot carry this text (GSM-7 DCS with non-GSM text)
        raise
    for pdu in pdus:
        ours = decode_deliver(pdu)
        oracle = smspdudecoder_easy.read_incoming_sms(pdu)
        assert oracle["sender"] == oracle_sender(ours.sender, ours.sender_is_alpha)
        expected_content = oracle_content(ours, single=len(pdus) == 1)
        if expected_content is not None:
            assert oracle["content"] == expected_content
        assert oracle["date"] == ours.timestamp
        if ours.concat is None:
            assert oracle["partial"] is False
        else:
            assert oracle["partial"]["parts_count"] == ours.concat.total
            assert oracle["partial"]["part_number"] == ours.concat.seq
            assert oracle["partial"]["reference"] == f"{ours.concat.ref}-{ours.concat.total}"


# ---------------------------------------------------------------- fuzzing


def assert_decodes_or_pdu_error(pdu: str | bytes, *, has_smsc: bool = True) -> None:
    try:
        message = decode_pdu(pdu, has_smsc=has_smsc)
    except PduError as exc:
        assert exc.pdu == pdu
        assert "unexpected" not in str(exc), str(exc)
        return
    assert isinstance(message, SmsDeliver | SmsSubmit | SmsStatusReport)
    if isinstance(message, SmsDeliver | SmsSubmit):
        message.text.encode("utf-8")
    if isinstance(message, SmsDeliver):
        offset = message.timestamp.utcoffset()  # None: the zone octet was not BCD
        assert offset is None or abs(offset) <= timedelta(hours=19, minutes=45)


@FUZZ_SETTINGS
@given(data=st.binary(max_size=200), has_smsc=st.booleans())
def test_fuzz_random_bytes(data: bytes, has_smsc: bool) -> None:
    assert_decodes_or_pdu_error(data, has_smsc=has_smsc)
    assert_decodes_or_pdu_error(data.hex(), has_smsc=has_smsc)


@FUZZ_SETTINGS
@given(text=st.text(max_size=200))
def test_fuzz_random_text(text: str) -> None:
    assert_decodes_or_pdu_error(text)


@FUZZ_SETTINGS
@given(text=st.text(alphabet="0123456789ABCDEFabcdef \t\r\n", max_size=300))
def test_fuzz_random_hex(text: str) -> None:
    assert_decodes_or_pdu_error(text)


@FUZZ_SETTINGS
@given(
    first=st.integers(0, 255),
    pid=st.integers(0, 255),
    dcs=st.integers(0, 255),
    udl=st.integers(0, 255),
    user_data=st.binary(max_size=160),
    address=st.sampled_from(["0B919720771234F5", "0ED05371592E0EBBD7", "038109F0", "0081"]),
)
def test_fuzz_structured_deliver(
    first: int, pid: int, dcs: int, udl: int, user_data: bytes, address: str
) -> None:
    """Plausible headers with random user data reach the UDH and alphabet paths often."""
    pdu = f"00{first:02X}{address}{pid:02X}{dcs:02X}42502101035421{udl:02X}{user_data.hex()}"
    assert_decodes_or_pdu_error(pdu)


@st.composite
def mutated_pdus(draw: st.DrawFn) -> str:
    sender = draw(senders)
    text = draw(st.one_of(gsm_text, emoji_text).map(lambda t: t[:200]))
    pdus = encode_deliver(sender, text, ref16=draw(st.booleans()), ref=draw(st.integers(0, 255)))
    octets = bytearray.fromhex(draw(st.sampled_from(pdus)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "set"]))
        position = draw(st.integers(0, max(len(octets) - 1, 0)))
        if kind == "truncate":
            del octets[position:]
        elif kind == "flip" and octets:
            octets[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            octets.insert(position, draw(st.integers(0, 255)))
        elif kind == "delete" and octets:
            del octets[position]
        elif kind == "set" and octets:
            octets[position] = draw(st.sampled_from([0x00, 0x7F, 0x80, 0xFF]))
    return octets.hex().upper()


@FUZZ_SETTINGS
@given(pdu=mutated_pdus())
def test_fuzz_mutated_valid_pdus(pdu: str) -> None:
    assert_decodes_or_pdu_error(pdu)


@settings(max_examples=50, deadline=None)
@given(sender=senders, text=gsm_text)
def test_every_truncation_of_a_valid_pdu_raises_pdu_error(sender: str, text: str) -> None:
    [pdu] = encode_deliver(sender, text[:100])
    for cut in range(2, len(pdu) - 1, 2):
        with pytest.raises(PduError):
            decode_pdu(pdu[:cut])


def test_status_report_and_submit_survive_random_tails() -> None:
    base_report = "0006" + "2A" + "0B919720771234F5" + "42502101035421" * 2 + "00"
    base_submit = "0011070B919720771234F50000AA05C8329BFD06"
    for tail in ("", "FF", "00" * 10, "0100", "0708"):
        for base in (base_report, base_submit):
            assert_decodes_or_pdu_error(base + tail)
    assert decode_pdu(base_report).timestamp.tzinfo == timezone(timedelta(hours=3))  # type: ignore[union-attr]
    assert decode_pdu(base_report).timestamp.astimezone(UTC).hour == 7  # type: ignore[union-attr]
