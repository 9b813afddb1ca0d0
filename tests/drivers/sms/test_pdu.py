"""SMS PDU codec: hand-built PDUs modelled on public captures, checked field by field.

Each PDU is assembled from its fields so a reader can see what it holds; where smspdudecoder
understands the DCS, the test also checks that it reads the same sender and text (an independent
decoder, so the table is not just our encoder agreeing with our decoder).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import pytest

from drivers.sms import gsm7
from drivers.sms.pdu import (
    Concat,
    PduError,
    SmsDeliver,
    SmsStatusReport,
    SmsSubmit,
    decode_pdu,
    encode_deliver,
    tpdu_length,
)

smspdudecoder_easy = pytest.importorskip("smspdudecoder.easy")

SMSC_RU = "07919730071111F1"  # +79037011111
NO_SMSC = "00"
SCTS_MSK = "42502101035421"  # 2024-05-12 10:30:45 +03:00
SCTS_NY = "4250210103540A"  # 2024-05-12 10:30:45 -05:00
MSK = timezone(timedelta(hours=3))
STAMP_MSK = datetime(2024, 5, 12, 10, 30, 45, tzinfo=MSK)

OA_SBERBANK = "0ED05371592E0EBBD7"  # alphanumeric "Sberbank": 14 semi-octets, TOA D0
OA_DE = "0D91947112325476F8"  # +4917212345678
OA_900 = "038109F0"  # national short code 900
OA_STAR = "0481BA21"  # "*#12"

TEXT_OTP_RU = "Код: 482913. Никому не сообщайте"
TEXT_CODE = "Your code is 123456"
TEXT_EXT = "Price 5€ [a] {b} ~^\\|"
TEXT_EMOJI = "OK 👍🏽 done"
TEXT_KOD = "Ваш код 7788"


def ucs2_hex(text: str) -> str:
    return text.encode("utf-16-be").hex().upper()


def deliver_hex(
    oa: str, dcs: str, udl: int, ud: str, *, fo: str = "04", smsc: str = SMSC_RU, pid: str = "00"
) -> str:
    """An SMS-DELIVER assembled from its fields (all hex)."""
    return f"{smsc}{fo}{oa}{pid}{dcs}{SCTS_MSK}{udl:02X}{ud}"


@dataclass(frozen=True)
class Case:
    name: str
    pdu: str
    sender: str
    text: str
    encoding: str
    dcs: int
    message_class: int | None = None
    concat: Concat | None = None
    ports: tuple[int, int] | None = None
    data: bytes | None = None
    oracle: bool = True  # smspdudecoder reads this DCS correctly


CASES = [
    Case(
        "alphanumeric sender, UCS2 Cyrillic OTP",
        deliver_hex(OA_SBERBANK, "08", 64, ucs2_hex(TEXT_OTP_RU)),
        "Sberbank",
        TEXT_OTP_RU,
        "ucs2",
        0x08,
    ),
    Case(
        "GSM-7 part 1/2 with 8-bit reference (header of 6 octets, 1 fill bit)",
        deliver_hex(OA_DE, "00", 7 + 19, "0500032A0201B2EFBA1C347E93CBA0F41C1493CD68351B", fo="44"),
        "+4917212345678",
        TEXT_CODE,
        "gsm7",
        0x00,
        concat=Concat(ref=0x2A, total=2, seq=1, ref_bits=8),
    ),
    Case(
        "GSM-7 part 1/2 with 16-bit reference (header of 7 octets, no fill bits)",
        deliver_hex(
            OA_DE, "00", 8 + 19, "060804BEEF0201D9775D0E1ABFC965507A0E8AC966B49A0D", fo="44"
        ),
        "+4917212345678",
        TEXT_CODE,
        "gsm7",
        0x00,
        concat=Concat(ref=0xBEEF, total=2, seq=1, ref_bits=16),
    ),
    Case(
        "DCS 0x48: UCS2 in the automatic-deletion group",
        deliver_hex(OA_900, "48", 24, ucs2_hex(TEXT_KOD)),
        "900",
        TEXT_KOD,
        "ucs2",
        0x48,
    ),
    Case(
        "DCS 0xF1: group F, GSM-7, class 1",
        deliver_hex(OA_900, "F1", 5, "C8329BFD06"),
        "900",
        "Hello",
        "gsm7",
        0xF1,
        message_class=1,
    ),
    Case(
        "DCS 0xF0: group F, GSM-7, class 0 (flash)",
        deliver_hex(OA_900, "F0", 4, "D4F29C0E"),
        "900",
        "Test",
        "gsm7",
        0xF0,
        message_class=0,
    ),
    Case(
        "UCS2 with an emoji and a skin-tone modifier (surrogate pairs)",
        deliver_hex(OA_DE, "08", 24, ucs2_hex(TEXT_EMOJI)),
        "+4917212345678",
        TEXT_EMOJI,
        "ucs2",
        0x08,
    ),
    Case(
        "GSM-7 extension table characters",
        deliver_hex(OA_DE, "00", 30, "50797A5C06D53665D08617DEF8401B947893026D7A1BCAE6B50102"),
        "+4917212345678",
        TEXT_EXT,
        "gsm7",
        0x00,
    ),
    Case(
        "8-bit WAP push with 16-bit port addressing (DCS 0xF5, ports 2948 <- 9200)",
        deliver_hex(OA_DE, "F5", 7 + 4, "0605040B8423F0" + "01060403", fo="44"),
        "+4917212345678",
        "",
        "8bit",
        0xF5,
        message_class=1,
        ports=(2948, 9200),
        data=bytes.fromhex("01060403"),
    ),
    Case(
        "8-bit data with 8-bit port addressing",
        deliver_hex(OA_900, "04", 5 + 1, "040402FA05" + "AB", fo="44"),
        "900",
        "",
        "8bit",
        0x04,
        ports=(0xFA, 0x05),
        data=bytes.fromhex("AB"),
    ),
    Case(
        "message waiting group 0xC8 (discard), GSM-7",
        deliver_hex(OA_900, "C8", 5, "C8329BFD06"),
        "900",
        "Hello",
        "gsm7",
        0xC8,
        oracle=False,
    ),
    Case(
        "message waiting group 0xD0 (store), GSM-7",
        deliver_hex(OA_900, "D0", 5, "C8329BFD06"),
        "900",
        "Hello",
        "gsm7",
        0xD0,
        oracle=False,
    ),
    Case(
        "message waiting group 0xE0 (store), UCS2",
        deliver_hex(OA_900, "E0", 24, ucs2_hex(TEXT_KOD)),
        "900",
        TEXT_KOD,
        "ucs2",
        0xE0,
        oracle=False,
    ),
    Case(
        "reserved group 0x8C decodes as GSM-7",
        deliver_hex(OA_900, "8C", 5, "C8329BFD06"),
        "900",
        "Hello",
        "gsm7",
        0x8C,
        oracle=False,
    ),
    Case(
        "compressed text (DCS 0x20) is handed over as 8-bit data",
        deliver_hex(OA_900, "20", 5, "C8329BFD06"),
        "900",
        "",
        "8bit",
        0x20,
        data=bytes.fromhex("C8329BFD06"),
        oracle=False,
    ),
    Case(
        "general group with class bits: DCS 0x12 = GSM-7 class 2 (SIM)",
        deliver_hex(OA_STAR, "12", 5, "C8329BFD06"),
        "*#12",
        "Hello",
        "gsm7",
        0x12,
        message_class=2,
        oracle=False,  # the oracle has no '*#' digits
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_table_decodes(case: Case) -> None:
    message = decode_pdu(case.pdu)
    assert isinstance(message, SmsDeliver)
    assert message.sender == case.sender
    assert message.text == case.text
    assert message.encoding == case.encoding
    assert message.dcs == case.dcs
    assert message.message_class == case.message_class
    assert message.concat == case.concat
    assert message.ports == case.ports
    assert message.timestamp == STAMP_MSK
    assert message.smsc == "+79037011111"
    assert not message.more_messages
    if case.data is not None:
        assert message.data == case.data
    message.text.encode("utf-8")


@pytest.mark.parametrize(
    "case", [c for c in CASES if c.oracle], ids=[c.name for c in CASES if c.oracle]
)
def test_table_agrees_with_smspdudecoder(case: Case) -> None:
    oracle = smspdudecoder_easy.read_incoming_sms(case.pdu)
    assert oracle["sender"] == case.sender
    if case.encoding != "8bit":
        assert oracle["content"] == case.text
    if case.concat is not None:
        assert oracle["partial"]["part_number"] == case.concat.seq
        assert oracle["partial"]["parts_count"] == case.concat.total


def test_sixteen_bit_reference_keeps_the_first_character() -> None:
    """The python-gsmmodem bug: a 7-octet UDH ends on a septet boundary, no fill bit to skip."""
    pdu = deliver_hex(
        OA_DE, "00", 8 + 19, "060804BEEF0201D9775D0E1ABFC965507A0E8AC966B49A0D", fo="44"
    )
    assert decode_pdu(pdu).text.startswith("Your")


def test_smsc_absent_and_lowercase_and_whitespace_and_bytes() -> None:
    pdu = deliver_hex(OA_900, "00", 5, "C8329BFD06", smsc=NO_SMSC)
    for given in (pdu, f"  {pdu.lower()}\r\n", bytes.fromhex(pdu)):
        message = decode_pdu(given)
        assert isinstance(message, SmsDeliver)
        assert message.smsc is None
        assert message.text == "Hello"
    without_prefix = decode_pdu(pdu[2:], has_smsc=False)
    assert isinstance(without_prefix, SmsDeliver)
    assert without_prefix.text == "Hello"


def test_negative_time_zone() -> None:
    pdu = f"{NO_SMSC}04{OA_900}0000{SCTS_NY}05C8329BFD06"
    message = decode_pdu(pdu)
    assert isinstance(message, SmsDeliver)
    assert message.timestamp.utcoffset() == timedelta(hours=-5)
    assert message.timestamp.astimezone(UTC) == datetime(2024, 5, 12, 15, 30, 45, tzinfo=UTC)


def test_time_zone_that_is_not_bcd_keeps_the_message() -> None:
    for zone in ("F0", "A8", "FF"):
        pdu = f"{NO_SMSC}04{OA_900}0000" + "425021010354" + zone + "05C8329BFD06"
        message = decode_pdu(pdu)
        assert isinstance(message, SmsDeliver)
        assert message.text == "Hello"
        assert message.timestamp == datetime(2024, 5, 12, 10, 30, 45)  # zone unknown: naive
        assert message.timestamp.tzinfo is None


def test_udhi_without_user_data_after_a_good_address_is_empty() -> None:
    message = decode_pdu(f"{NO_SMSC}41000381" + "09F0" + "0000" + "00")
    assert isinstance(message, SmsSubmit)
    assert (message.recipient, message.text, message.udh) == ("900", "", ())


def test_first_octet_flags() -> None:
    # 0xA0: reply path + status report indication, TP-MMS clear = more messages waiting
    message = decode_pdu(deliver_hex(OA_900, "00", 5, "C8329BFD06", fo="A0"))
    assert isinstance(message, SmsDeliver)
    assert message.more_messages and message.reply_path and message.status_report_indication


def test_status_report() -> None:
    pdu = f"{SMSC_RU}06" + "2A" + "0B919720771234F5" + SCTS_MSK + SCTS_NY + "00"
    report = decode_pdu(pdu)
    assert isinstance(report, SmsStatusReport)
    assert report.message_ref == 0x2A
    assert report.recipient == "+79027721435"
    assert report.timestamp == STAMP_MSK
    assert report.discharge_time.utcoffset() == timedelta(hours=-5)
    assert report.status == 0
    assert report.smsc == "+79037011111"


def test_stored_submit_with_each_validity_format() -> None:
    da = "0B919720771234F5"
    for fo, vp in (("01", ""), ("11", "AA"), ("19", SCTS_MSK), ("09", "01" + "00" * 6)):
        submit = decode_pdu(f"{NO_SMSC}{fo}07{da}0000{vp}05C8329BFD06")
        assert isinstance(submit, SmsSubmit), fo
        assert (submit.message_ref, submit.recipient, submit.text) == (7, "+79027721435", "Hello")
        assert submit.encoding == "gsm7"


def test_unknown_information_elements_are_kept() -> None:
    # IEI 0x24 (national language shift) with 1 octet, then the concat IE
    ud = "080D010000032A0301" + gsm7.pack(gsm7.encode("Hi"), 5).hex()
    header_septets = (9 * 8 + 6) // 7
    message = decode_pdu(deliver_hex(OA_900, "00", header_septets + 2, ud, fo="44"))
    assert isinstance(message, SmsDeliver)
    assert message.udh == ((0x0D, b"\x00"), (0x00, b"\x2a\x03\x01"))
    assert message.concat == Concat(0x2A, 3, 1, 8)
    assert message.text == "Hi"


@pytest.mark.parametrize("ie", ["0003010300", "0003010001", "0003010304", "000201FF", "0803000102"])
def test_implausible_concat_is_kept_in_udh_but_not_used(ie: str) -> None:
    """total 0, seq 0, seq > total or a wrong IE length: the text still arrives, as one message."""
    udh = f"{len(ie) // 2:02X}{ie}"
    ud = udh + "0102"
    message = decode_pdu(deliver_hex(OA_900, "04", len(ud) // 2, ud, fo="44"))
    assert isinstance(message, SmsDeliver)
    assert message.concat is None
    assert message.udh[0][0] == int(ie[:2], 16)
    assert message.data == b"\x01\x02"


def test_ucs2_odd_octet_and_lone_surrogate_become_replacement_characters() -> None:
    odd = decode_pdu(deliver_hex(OA_900, "08", 3, "004100"))
    lone = decode_pdu(deliver_hex(OA_900, "08", 4, "D83D0041"))
    assert isinstance(odd, SmsDeliver) and isinstance(lone, SmsDeliver)
    assert odd.text == "A\ufffd"
    assert lone.text == "\ufffdA"
    assert lone.data == bytes.fromhex("D83D0041")
    odd.text.encode("utf-8")
    lone.text.encode("utf-8")


def test_trailing_octets_after_user_data_are_ignored() -> None:
    message = decode_pdu(deliver_hex(OA_900, "00", 5, "C8329BFD06FFFF"))
    assert isinstance(message, SmsDeliver)
    assert message.text == "Hello"


GOOD = deliver_hex(OA_DE, "00", 7 + 19, "0500032A0201B2EFBA1C347E93CBA0F41C1493CD68351B", fo="44")

MALFORMED = {
    "empty": "",
    "odd hex": GOOD[:-1],
    "not hex": GOOD[:-2] + "ZZ",
    "unicode digits": "٠٠",
    "no first octet": SMSC_RU,
    "SMSC overruns": "0F91",
    "reserved MTI 3": "0003",
    "address overruns": f"{NO_SMSC}040B9194",
    "address over 20 digits": f"{NO_SMSC}04169194711232547698765432101234",
    "filler inside address": f"{NO_SMSC}04" + "0481F121" + f"0000{SCTS_MSK}00",
    "SCTS truncated": f"{NO_SMSC}04{OA_900}0000425021",
    "SCTS month 13": f"{NO_SMSC}04{OA_900}0000" + "42312101035421" + "00",
    "SCTS February 30": f"{NO_SMSC}04{OA_900}0000" + "42200301035421" + "00",
    "SCTS hex digit": f"{NO_SMSC}04{OA_900}0000" + "4A502101035421" + "00",
    "no UDL": f"{NO_SMSC}04{OA_900}0000{SCTS_MSK}",
    "user data truncated": GOOD[:-4],
    "GSM-7 UDL above 160": deliver_hex(OA_900, "00", 161, "00" * 141),
    "UCS2 UDL above 140": deliver_hex(OA_900, "08", 141, "00" * 141),
    "UDHL beyond user data": deliver_hex(OA_900, "04", 3, "0A0003", fo="44"),
    "IE overruns UDHL": deliver_hex(OA_900, "04", 5, "0400050102", fo="44"),
    "IE header cut by UDHL": deliver_hex(OA_900, "04", 3, "010001", fo="44"),
    "GSM-7 UDH longer than UDL": deliver_hex(OA_900, "00", 6, "0500032A0201", fo="44"),
    "status report truncated": f"{SMSC_RU}062A0B919720771234F5{SCTS_MSK}",
    "submit validity truncated": f"{NO_SMSC}19070B919720771234F500004250",
    # UDHI without user data reads as empty only after a well-formed address (TOA bit 8 set)
    "UDHI, no user data, broken address": f"{NO_SMSC}41000101000000" + "00",
}


@pytest.mark.parametrize("pdu", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_raises_pdu_error_holding_the_input(pdu: str) -> None:
    with pytest.raises(PduError) as caught:
        decode_pdu(pdu)
    assert caught.value.pdu == pdu
    assert "unexpected" not in str(caught.value)


def test_pdu_error_is_a_value_error() -> None:
    assert issubclass(PduError, ValueError)


def test_non_text_input_raises_pdu_error() -> None:
    with pytest.raises(PduError):
        decode_pdu(12345)  # type: ignore[arg-type]


# ---------------------------------------------------------------- encoder


def _decode_all(pdus: list[str]) -> list[SmsDeliver]:
    messages = [decode_pdu(pdu) for pdu in pdus]
    assert all(isinstance(m, SmsDeliver) for m in messages)
    return messages  # type: ignore[return-value]


def test_encode_single_gsm7_fields() -> None:
    [pdu] = encode_deliver("+4917212345678", "Hello", timestamp=STAMP_MSK)
    assert pdu == deliver_hex(OA_DE, "00", 5, "C8329BFD06", smsc=NO_SMSC)
    assert tpdu_length(pdu) == len(pdu) // 2 - 1


def test_encode_alphanumeric_ucs2_matches_hand_built() -> None:
    [pdu] = encode_deliver("Sberbank", TEXT_OTP_RU, timestamp=STAMP_MSK, smsc="+79037011111")
    assert pdu == deliver_hex(OA_SBERBANK, "08", 64, ucs2_hex(TEXT_OTP_RU))
    assert tpdu_length(pdu) == len(pdu) // 2 - 8


def test_encode_concat_matches_hand_built_16_bit_part() -> None:
    text = TEXT_CODE + "x" * 150
    pdus = encode_deliver("+4917212345678", text, timestamp=STAMP_MSK, ref=0xBEEF, ref16=True)
    assert len(pdus) == 2
    first = decode_pdu(pdus[0])
    assert isinstance(first, SmsDeliver)
    assert first.concat == Concat(0xBEEF, 2, 1, 16)
    assert len(first.text) == 152
    # the first 16 octets of packed text do not depend on what follows the 19th character
    assert "060804BEEF0201" + "D9775D0E1ABFC965507A0E8AC966B49A" in pdus[0]


@pytest.mark.parametrize(
    ("text", "ref16", "sizes"),
    [
        ("a" * 160, False, [160]),
        ("a" * 161, False, [153, 8]),
        ("a" * 161, True, [152, 9]),
        ("a" * 306, False, [153, 153]),
        ("a" * 152 + "€" + "b" * 7, False, [152, 8]),  # the escape pair is not split
        ("€" * 80, False, [80]),
        ("€" * 81, False, [76, 5]),
        ("ж" * 70, False, [70]),
        ("ж" * 71, False, [67, 4]),
        ("ж" * 71, True, [66, 5]),
        ("ж" * 66 + "😀" + "ж" * 3, False, [66, 4]),  # the surrogate pair is not split
        ("😀" * 35, False, [35]),
        ("", False, [0]),
    ],
    ids=lambda value: f"{len(value)}" if isinstance(value, (str, list)) else str(value),
)
def test_encode_split_sizes(text: str, ref16: bool, sizes: list[int]) -> None:
    messages = _decode_all(encode_deliver("+15551234567", text, ref=9, ref16=ref16))
    assert [len(m.text) for m in messages] == sizes
    assert "".join(m.text for m in messages) == text
    if len(messages) > 1:
        assert [m.concat for m in messages] == [
            Concat(9, len(sizes), seq, 16 if ref16 else 8) for seq in range(1, len(sizes) + 1)
        ]
    else:
        assert messages[0].concat is None and messages[0].udh == ()


def test_encode_every_part_fits_140_octets() -> None:
    for text in ("€" * 500, "😀" * 200, "ж" * 400):
        for pdu in encode_deliver("+15551234567", text):
            # first octet, sender (8), PID, DCS, SCTS (7) and UDL take 19 octets
            assert tpdu_length(pdu) <= 19 + 140


@pytest.mark.parametrize(
    ("dcs", "encoding", "message_class"),
    [
        (0x48, "ucs2", None),
        (0x12, "gsm7", 2),
        (0x1A, "ucs2", 2),
        (0xF1, "gsm7", 1),
        (0xC0, "gsm7", None),
    ],
)
def test_encode_dcs_override(dcs: int, encoding: str, message_class: int | None) -> None:
    [message] = _decode_all(encode_deliver("900", "Hi", dcs=dcs))
    assert (message.dcs, message.encoding, message.message_class) == (dcs, encoding, message_class)
    assert message.text == "Hi"


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"dcs": 0xF4}, "Hi"),  # 8-bit
        ({"dcs": 0x20}, "Hi"),  # compressed
        ({"dcs": 0x08, "encoding": "gsm7"}, "Hi"),
        ({"dcs": 0x00}, "Привет"),
        ({"encoding": "gsm7"}, "Привет"),
        ({"encoding": "latin1"}, "Hi"),
        ({"ref": 256}, "Hi"),
        ({"ref": -1}, "Hi"),
        ({"ref": 65536, "ref16": True}, "Hi"),
        ({"pid": 256}, "Hi"),
        ({"smsc": "SMSC"}, "Hi"),
        ({"timestamp": datetime(2024, 1, 1, tzinfo=timezone(timedelta(minutes=10)))}, "Hi"),
        ({"timestamp": datetime(1999, 1, 1, tzinfo=UTC)}, "Hi"),
        ({}, "€" * 153 * 128),  # more than 255 parts
    ],
)
def test_encode_rejects_impossible_arguments(kwargs: dict[str, object], text: str) -> None:
    with pytest.raises(ValueError):
        encode_deliver("900", text, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("sender", "toa", "alpha"),
    [
        ("+4917212345678", 0x91, False),
        ("89161234567", 0x81, False),
        ("900", 0x81, False),
        ("Sberbank", 0xD0, True),
        ("Google", 0xD0, True),
        ("ABCDEFGHIJK", 0xD0, True),
        ("Tinkoff{}", 0xD0, True),
        ("+VK", 0xD0, True),
    ],
)
def test_encode_sender_kinds(sender: str, toa: int, alpha: bool) -> None:
    [message] = _decode_all(encode_deliver(sender, "x"))
    assert (message.sender, message.sender_toa, message.sender_is_alpha) == (sender, toa, alpha)


@pytest.mark.parametrize("sender", ["ABCDEFGHIJKL", "Тинькофф", "", "ABCDEFGHIJ€"])
def test_encode_rejects_bad_senders(sender: str) -> None:
    with pytest.raises(ValueError):
        encode_deliver(sender, "x")


def test_encode_timestamp_zone_and_naive_as_utc() -> None:
    stamp = datetime(2031, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-9, minutes=-30)))
    [message] = _decode_all(encode_deliver("900", "x", timestamp=stamp))
    assert message.timestamp == stamp
    assert message.timestamp.utcoffset() == stamp.utcoffset()
    [naive] = _decode_all(encode_deliver("900", "x", timestamp=datetime(2030, 1, 2, 3, 4, 5)))
    assert naive.timestamp == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_encode_smsc_and_pid() -> None:
    [pdu] = encode_deliver("900", "x", smsc="+79037011111", pid=0x40)
    assert pdu.startswith(SMSC_RU)
    message = decode_pdu(pdu)
    assert isinstance(message, SmsDeliver)
    assert (message.smsc, message.pid) == ("+79037011111", 0x40)


def test_encode_random_reference_is_consistent_across_parts() -> None:
    messages = _decode_all(encode_deliver("900", "y" * 400))
    refs = {m.concat.ref for m in messages if m.concat}
    assert len(refs) == 1 and len(messages) == 3


def test_tpdu_length_rejects_non_pdus() -> None:
    for bad in ("", "0", "ZZ", "07", "0791"):
        with pytest.raises(PduError):
            tpdu_length(bad)
    assert tpdu_length("0004") == 1
