"""Reply parsers: real captures from several devices, plus ModemManager-style vectors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.at.replies import (
    CpmsSupport,
    ReplyParseError,
    UssdText,
    decode_ussd,
    parse_cimi,
    parse_cmgl,
    parse_cmgr,
    parse_cmti,
    parse_cnmi_test,
    parse_cnum,
    parse_cops,
    parse_cpbr,
    parse_cpin,
    parse_cpms_query,
    parse_cpms_set,
    parse_cpms_test,
    parse_creg,
    parse_csq,
    parse_cusd,
    parse_iccid,
)
from tests.conftest import gammu_dumps


def reply_lines(dump: Path, prefix: str) -> list[str]:
    """The lines of a capture that start with `prefix` (latin-1: captures are raw bytes)."""
    text = dump.read_bytes().decode("latin-1")
    return [line.strip() for line in text.splitlines() if line.strip().startswith(prefix)]


def dumps(*folders: str) -> list[Path]:
    return [dump for folder in folders for dump in gammu_dumps(folder)]


def dump_id(dump: Path) -> str:
    return f"{dump.parent.name}/{dump.name}"


# -- +CPMS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dump", dumps("at-cpms", "at-cpms-sm", "at-cpms-sr"), ids=dump_id)
def test_every_cpms_capture_parses(gammu_data: Path, dump: Path) -> None:
    lines = reply_lines(dump, "+CPMS")
    assert len(lines) == 1
    support = parse_cpms_test(lines[0])
    for names in (support.read, support.write, support.receive):
        assert all(name.isupper() for name in names)


def test_cpms_capture_values(gammu_data: Path) -> None:
    def parsed(folder: str, name: str) -> CpmsSupport:
        return parse_cpms_test(reply_lines(gammu_data / folder / name, "+CPMS")[0])

    brovi = parsed("at-cpms", "brovi-e3372-325.dump")
    assert brovi.read == brovi.write == brovi.receive == ("SM", "ME")
    alcatel = parsed("at-cpms", "alcatel-s320.dump")
    assert alcatel.receive == ("SM", "ME", "SM_P", "ME_P", "MT")
    samsung = parsed("at-cpms", "samsung-j700.dump")  # `+CPMS: ` with nothing after it
    assert samsung.read == samsung.write == samsung.receive == ()
    iwow = parsed("at-cpms-sm", "iwow.dump")  # without parentheses
    assert (iwow.read, iwow.write, iwow.receive) == (("SM",), ("SM",), ("SM",))
    broken_quotes = parsed("at-cpms-sr", "generic.dump")  # `(ME", "SR")`
    assert broken_quotes.read == ("ME", "SR")
    assert broken_quotes.receive == ("ME",)


def test_cpms_query_and_set() -> None:
    usage = parse_cpms_query('+CPMS: "ME",3,23,"ME",3,23,"ME",3,23')
    assert [(u.memory, u.used, u.total) for u in usage] == [("ME", 3, 23)] * 3
    usage = parse_cpms_query('+CPMS: "SM",0,50,"ME",12,255,"MT",12,305')
    assert usage[1].memory == "ME" and usage[2].total == 305
    counts = parse_cpms_set("+CPMS: 3,23,3,23,3,23")
    assert [(c.used, c.total) for c in counts] == [(3, 23)] * 3
    test = parse_cpms_test('+CPMS: ("ME","MT","SM","SR"),("ME","MT","SM","SR"),("ME","MT","SM")')
    assert test.read == ("ME", "MT", "SM", "SR") and test.receive == ("ME", "MT", "SM")
    assert parse_cpms_test("+CPMS: (),(),()").read == ()
    for junk in ('+CPMS: "ME",3', "+CPMS: 3,23,3,23,3,23", "+CSQ: 1,2", '+CPMS: "ME",x,23'):
        with pytest.raises(ReplyParseError):
            parse_cpms_query(junk)


# -- +CREG ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dump", dumps("at-creg", "at-creg-corner"), ids=dump_id)
def test_every_creg_capture_parses(gammu_data: Path, dump: Path) -> None:
    lines = reply_lines(dump, "+CREG")
    if dump.name == "empty.dump":
        assert lines == []  # the modem answered a bare OK
        return
    assert len(lines) == 1
    registration = parse_creg(lines[0], solicited=True)
    assert registration == parse_creg(lines[0])  # the form inferred from the shape agrees
    assert registration.n is not None


CREG_EXPECTED = {
    "huawei.dump": (2, 1, 0x4CA, 0x81DE445, None),
    "none.dump": (0, 0, None, None, None),
    "siemens.dump": (0, 1, 0x5E25, 0x605F, None),
    "sierra312u.dump": (2, 5, 0x2AF5, 0x0B88E350, 2),
    "telit.dump": (0, 1, 0x5E25, 0x605F, 2),
    "empty-lac.dump": (2, 1, None, 0x605F, None),
    "mismatched-quotes.dump": (2, 1, 0x0B, 0x0100701, 7),
    "single-quote.dump": (2, 1, 0x5E25, None, None),
}


@pytest.mark.parametrize("name", sorted(CREG_EXPECTED))
def test_creg_capture_values(gammu_data: Path, name: str) -> None:
    corner = {"empty-lac.dump", "mismatched-quotes.dump", "single-quote.dump"}
    folder = "at-creg-corner" if name in corner else "at-creg"
    registration = parse_creg(reply_lines(gammu_data / folder / name, "+CREG")[0])
    got = (registration.n, registration.stat, registration.lac, registration.ci, registration.act)
    assert got == CREG_EXPECTED[name]


def test_creg_urc_and_other_registrations() -> None:
    urc = parse_creg('+CREG: 1,"5E25","605F"')
    assert (urc.n, urc.stat, urc.lac, urc.ci) == (None, 1, 0x5E25, 0x605F)
    assert urc.registered and not urc.roaming
    assert parse_creg("+CREG: 5").roaming
    assert parse_creg("+CREG: 1", solicited=True).stat == 1  # a lone <stat> even as a reply
    cgreg = parse_creg('+CGREG: 2,1,"1A2B","01C3D4E5",7')
    assert (cgreg.command, cgreg.n, cgreg.lac, cgreg.act) == ("+CGREG", 2, 0x1A2B, 7)
    cereg = parse_creg('+CEREG: 1,"00C3","0A1B2C3D",7')
    assert (cereg.command, cereg.n, cereg.stat, cereg.ci) == ("+CEREG", None, 1, 0x0A1B2C3D)
    assert not parse_creg("+CEREG: 0,2").registered
    # A location that is not hex is unknown, not a reason to lose a readable <stat>.
    odd_location = parse_creg('+CREG: 2,1,"XYZ!"', solicited=True)
    assert (odd_location.stat, odd_location.lac) == (1, None)
    for junk in ("+CREG:", "+CSQ: 1,2", "+CREG: x", "+CREG: 2,x", '+CREG: x,1,"5E25","605F"'):
        with pytest.raises(ReplyParseError):
            parse_creg(junk)


# -- +CNMI=? -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dump", dumps("at-cnmi"), ids=dump_id)
def test_every_cnmi_capture_parses(gammu_data: Path, dump: Path) -> None:
    lines = reply_lines(dump, "+CNMI")
    assert len(lines) == 1
    assert parse_cnmi_test(lines[0]).mode


def test_cnmi_capture_values(gammu_data: Path) -> None:
    first = parse_cnmi_test(reply_lines(gammu_data / "at-cnmi" / "01.dump", "+CNMI")[0])
    assert (first.mode, first.mt, first.bm, first.ds, first.bfr) == (
        {2},
        {0, 1, 3},
        {0, 2},
        {0, 1},
        {0},
    )
    third = parse_cnmi_test(reply_lines(gammu_data / "at-cnmi" / "03.dump", "+CNMI")[0])
    assert third.mode == {0, 1, 2, 3} and third.ds == {0, 1}


def test_cnmi_lists_and_junk() -> None:
    parsed = parse_cnmi_test("+CNMI: (0-3),(0-3),(0,2),(0-2),(0,1)")
    assert parsed.bm == {0, 2} and parsed.ds == {0, 1, 2}
    assert parse_cnmi_test("+CNMI: (1,2),(0,1)").bfr == frozenset()
    for junk in ("+CNMI: (a-b)", "+CNMI: ()", "+CNMI: (5-1)"):
        with pytest.raises(ReplyParseError):
            parse_cnmi_test(junk)


# -- +CUSD ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("dump", dumps("at-ussd"), ids=dump_id)
def test_every_ussd_capture_decodes(gammu_data: Path, dump: Path) -> None:
    lines = reply_lines(dump, "+CUSD")
    assert len(lines) == 1
    reply = parse_cusd(lines[0])
    assert reply.text
    assert reply.decoding != "none"


USSD_EXPECTED = {
    "02-E160.dump": (
        "gsm7-packed",
        "Ihr Guthaben für die Nr.4915783647410 beträgt 5.78 Euro",
    ),
    "issue109-E3276.dump": (
        "ucs2",
        "Для справки о балансе наберите *105#. Услуга бесплатна.",
    ),
    "Uissue358-Quectel_M35.dump": ("ucs2", "Havi keret: 0Ft. Feltöltött egyenleg: 7777Ft"),
    "issue377-HE910-D.dump": ("ucs2-lang:ar", "رصيدك 107.93"),
    "issue178-dell.dump": ("plain", "On DATA Pack u have 3Gb 817Mb 169kb valid until 21/05/2016"),
    # Raw GSM-7 bytes: 0x7B is "ä" in GSM 03.38 but "{" in ASCII.
    "03-unknown.dump": ("gsm7-raw", "Kontostand: 3.00 EUR Bitte wählen Sie: 1 Konto aufladen"),
    "04-unknown.dump": ("plain", "Maaf, permintaan Anda tidak dapat kami proses."),
}


@pytest.mark.parametrize("name", sorted(USSD_EXPECTED))
def test_ussd_capture_values(gammu_data: Path, name: str) -> None:
    reply = parse_cusd(reply_lines(gammu_data / "at-ussd" / name, "+CUSD")[0])
    decoding, start = USSD_EXPECTED[name]
    assert reply.decoding == decoding
    assert reply.text.startswith(start)


def test_ussd_e160_unquoted_without_dcs(gammu_data: Path) -> None:
    """Huawei E160 once sent the packed hex without quotes and without a dcs."""
    reply = parse_cusd(reply_lines(gammu_data / "at-ussd" / "01-E160.dump", "+CUSD")[0])
    assert (reply.status, reply.dcs, reply.decoding) == (0, None, "gsm7-packed")
    assert reply.text.startswith("Ihr Guthaben")
    assert reply.text.endswith("beträgt 7.95 Euro")


def test_ussd_telit_padding_is_cut(gammu_data: Path) -> None:
    reply = parse_cusd(reply_lines(gammu_data / "at-ussd" / "issue377-HE910-D.dump", "+CUSD")[0])
    assert "\x00" not in reply.text and "\ufffd" not in reply.text
    assert reply.text.endswith("2018-11-09")


def test_cusd_forms() -> None:
    assert parse_cusd("+CUSD: 4").text == ""
    assert parse_cusd("+CUSD: 2").status == 2
    reply = parse_cusd('+CUSD: 0,"Balance: 10,50 RUB",15')
    assert (reply.text, reply.dcs, reply.decoding) == ("Balance: 10,50 RUB", 15, "plain")
    assert parse_cusd('+CUSD: 1,"Menu\n1. Balance",15').text == "Menu\n1. Balance"
    assert parse_cusd('+CUSD: 0,"unterminated').text == "unterminated"
    with pytest.raises(ReplyParseError):
        parse_cusd("+CUSD: x,1")


def test_decode_ussd_heuristics() -> None:
    assert decode_ussd("1234", 15) == decode_ussd("1234")
    assert decode_ussd("1234", 15).decoding == "plain"  # short all-digit: plain text
    assert decode_ussd("12345678", 15).decoding == "plain"
    assert decode_ussd("0031003200330034", 15).text == "1234"  # UCS2 digits in disguise
    assert decode_ussd("04100411", 72).text == "АБ"
    assert decode_ussd("AA180C3602", 15).text == "*100#"  # packed GSM-7 (Huawei request form)
    assert decode_ussd("48656C6C6F", 0x44).text == "Hello"  # 8-bit data
    assert decode_ussd("Bitte w{hlen", 15) == UssdText("Bitte wählen", "gsm7-raw")
    assert decode_ussd("Total [EUR]: 5", 15).text == "Total [EUR]: 5"  # real brackets stay


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.one_of(st.none(), st.integers(min_value=0, max_value=255)))
def test_decode_ussd_never_raises(text: str, dcs: int | None) -> None:
    result = decode_ussd(text, dcs)
    assert isinstance(result.text, str) and result.decoding


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=60), st.one_of(st.none(), st.integers(min_value=0, max_value=255)))
def test_decode_ussd_never_raises_on_hex(data: bytes, dcs: int | None) -> None:
    assert isinstance(decode_ussd(data.hex().upper(), dcs).text, str)


# -- +CMGR / +CMGL / +CMTI -----------------------------------------------------------------------

GOOD_SMS_DUMPS = dumps("at-sms")
# Captures whose PDU line is not hex at all; the others in that folder are broken TPDUs that
# are still well-formed replies (the PDU codec rejects them, not this parser).
NON_HEX_PDU_DUMPS = {"13.dump", "17.dump"}


def cmgr_reply(dump: Path) -> list[str]:
    text = dump.read_bytes().decode("latin-1")
    return [line for line in text.splitlines()[1:] if line.strip() and line.strip() != "OK"]


@pytest.mark.parametrize("dump", GOOD_SMS_DUMPS, ids=dump_id)
def test_every_cmgr_capture_parses(gammu_data: Path, dump: Path) -> None:
    message = parse_cmgr(cmgr_reply(dump))
    assert message is not None
    assert message.pdu and len(message.pdu) % 2 == 0


@pytest.mark.parametrize("dump", dumps("at-sms-failing"), ids=dump_id)
def test_failing_cmgr_captures(gammu_data: Path, dump: Path) -> None:
    if dump.name in NON_HEX_PDU_DUMPS:
        with pytest.raises(ReplyParseError):
            parse_cmgr(cmgr_reply(dump))
    else:
        assert parse_cmgr(cmgr_reply(dump)) is not None


def test_cmgr_forms() -> None:
    pdu = "07911326040000F0040B911346610089F60000208062917314080CC8F71D14969741F977FD07"
    message = parse_cmgr(["+CMGR: 0,,24", pdu])
    assert message is not None and (message.stat, message.length, message.pdu) == (0, 24, pdu)
    zte = parse_cmgr(["+CMGR: ,,27", pdu])
    assert zte is not None and zte.stat is None and zte.length == 27
    named = parse_cmgr(['+CMGR: 1,"Mum",24', pdu])
    assert named is not None and named.alpha == "Mum"
    assert parse_cmgr([]) is None  # empty slot: OK without +CMGR
    same_line = parse_cmgr([f"+CMGR: 1,,24 {pdu}"])  # the PDU after the length
    assert same_line is not None and (same_line.stat, same_line.length) == (1, 24)
    assert same_line.pdu == pdu
    odd = parse_cmgr(["+CMGR: 1,,3", "0791ABC"])  # kept for the codec to refuse, not lost here
    assert odd is not None and odd.pdu == "0791ABC"
    for junk in (["+CMGR: 0,,24"], ["+CMGR: 0,,24", "XYZ"], ["+CMGR: 0,,x", pdu], ["+CSQ: 1"]):
        with pytest.raises(ReplyParseError):
            parse_cmgr(junk)


def test_cmgl_listing() -> None:
    lines = ["+CMGL: 1,0,,24", "0791AB", "+CMGL: 4,1,,27", "0791CD", '+CMGL: 7,2,"x",5', "00"]
    listed = parse_cmgl(lines)
    assert [(m.index, m.stat, m.length, m.pdu) for m in listed] == [
        (1, 0, 24, "0791AB"),
        (4, 1, 27, "0791CD"),
        (7, 2, 5, "00"),
    ]
    assert parse_cmgl([]) == []
    mixed = parse_cmgl(["+CMGL: 1,0,,24 0791AB", "+CMGL: 2,1,,5", "0791CD"])
    assert [(m.index, m.pdu) for m in mixed] == [(1, "0791AB"), (2, "0791CD")]
    for junk in (["+CMGL: 1,0,,24"], ["+CMGL: 1,0,,24", "+CMGL: 2,0,,24", "00"], ["0791AB"]):
        with pytest.raises(ReplyParseError):
            parse_cmgl(junk)


def test_cmti() -> None:
    assert parse_cmti('+CMTI: "SM",3') == parse_cmti('+CMTI: "SM", 3')
    indication = parse_cmti('+CMTI: "ME",22,"MMS PUSH"')
    assert (indication.memory, indication.index) == ("ME", 22)
    for junk in ("+CMTI: 3", '+CMTI: "SM",x', "+CMT: ,24"):
        with pytest.raises(ReplyParseError):
            parse_cmti(junk)


# -- identity: ICCID, IMSI, PIN, numbers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('"984402003576012594F9"', "8944200053671052499"),  # quoted, swapped, 19 digits
        ("98231420326409614067", "89324102234690160476"),  # unquoted, swapped, 20 digits
        ("8944200053671052499", "8944200053671052499"),
        ('"89324102234690160476"', "89324102234690160476"),
        ("8944200053671052499F", "8944200053671052499"),  # F filler
        ('+CRSM: 144,0,"984402003576012594F9"', "8944200053671052499"),
        ('+CRSM: 145,0,"98231420326409614067"', "89324102234690160476"),
        ("+CCID: 89860012345678901234", "89860012345678901234"),
        ('+QCCID: "89860012345678901234"', "89860012345678901234"),
        ("+ICCID: 89860012345678901234", "89860012345678901234"),
        ("^ICCID: 98681000214365870921", "89860100123456789012"),
        ("898600D0000000000001", "898600D0000000000001"),  # hex after the sixth digit (CMCC)
    ],
)
def test_iccid(line: str, expected: str) -> None:
    assert parse_iccid(line).value == expected


def test_iccid_luhn() -> None:
    assert parse_iccid("89490200001234567892").luhn_valid is True
    assert parse_iccid("89490200001234567894").luhn_valid is False
    assert parse_iccid("898600D0000000000001").luhn_valid is None


@pytest.mark.parametrize(
    "line",
    [
        "0044200053671052499",  # wrong MII
        "9944200053671052499",
        "9844200053671052499",  # swapped needs 20
        "894420005367105",  # too short
        "894420005367105249912345",  # too long
        "89A420005367105249",  # hex inside the first six digits
        '+CRSM: 106,130,""',  # SIM refused
        '+CRSM: 148,4,"984402003576012594F9"',
        "+CME ERROR: 10",
        "",
    ],
)
def test_iccid_junk(line: str) -> None:
    with pytest.raises(ReplyParseError):
        parse_iccid(line)


def test_cimi_cpin_csq_cops() -> None:
    assert parse_cimi(["250011234567890"]) == "250011234567890"
    assert parse_cimi('+CIMI: "262011234567890"') == "262011234567890"
    for junk in ([], ["ERROR-ish"], ["12345"]):
        with pytest.raises(ReplyParseError):
            parse_cimi(junk)
    assert parse_cpin("+CPIN: READY").ready
    assert parse_cpin("+CPIN: SIM PIN").code == "SIM PIN"
    assert parse_cpin('+CPIN: "NOT INSERTED"').code == "NOT INSERTED"
    assert parse_cpin("   SIM PUK").code == "SIM PUK"  # a known state without the prefix
    assert parse_cpin("PH-NET  PIN").code == "PH-NET PIN"
    for junk in ("+CPIN:", "AT+CPIN?", "+CME ERROR: 10", "SIM PINK"):
        with pytest.raises(ReplyParseError):
            parse_cpin(junk)
    signal = parse_csq("+CSQ: 17,99")
    assert (signal.rssi, signal.ber, signal.dbm) == (17, 99, -79)
    assert parse_csq("+CSQ: 99,99").dbm is None
    with pytest.raises(ReplyParseError):
        parse_csq("+CSQ: 17")
    cops = parse_cops('+COPS: 0,2,"25001",7')
    assert (cops.mode, cops.format, cops.operator, cops.act) == (0, 2, "25001", 7)
    assert parse_cops("+COPS: 0").operator is None
    assert parse_cops('+COPS: 0,0,"MTS RUS"').operator == "MTS RUS"
    with pytest.raises(ReplyParseError):
        parse_cops('+COPS: (2,"MTS","MTS","25001",7),,(0-4),(0-2)')


def test_cnum_and_cpbr() -> None:
    entries = parse_cnum(
        [
            '+CNUM: "Own","+79131234567",145',
            '+CNUM: "","79131234568",145',
            '+CNUM: ,"89131234569",129',
            "+CNUM: Fax,+4915112345678,145",
            '+CNUM: "","",129',
        ]
    )
    assert [(e.alpha, e.number, e.international) for e in entries] == [
        ("Own", "+79131234567", True),
        (None, "+79131234568", True),
        (None, "89131234569", False),
        ("Fax", "+4915112345678", True),
    ]
    assert parse_cnum([]) == []
    with pytest.raises(ReplyParseError):
        parse_cnum(['+CNUM: "x","abc",129'])
    entry = parse_cpbr('+CPBR: 1,"4915112345678",145,"My, number"')
    assert (entry.index, entry.number, entry.type, entry.text) == (
        1,
        "+4915112345678",
        145,
        "My, number",
    )
    with pytest.raises(ReplyParseError):
        parse_cpbr("+CPBR: x")


def test_iccid_in_the_sim7600_form() -> None:
    assert parse_iccid("ICCID: 89490200001234567890").value == "89490200001234567890"
