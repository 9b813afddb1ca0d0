"""Every case of ModemManager's parser tests, through our parsers and PDU codec.

Each case is a real reply (or PDU) with the values ModemManager reads from it. Every one must
either read as ModemManager reads it, or be refused with our parser's own error type for a
reason written down in `REFUSED` below (a format we deliberately do not read). Reading a reply
differently without an error fails the test: a "searching" modem read as registered is the
worst kind of bug. Where ModemManager itself refuses (a broken PDU, an invalid ICCID), refusing
is reading it as ModemManager does.

The cases live beside the project (see the data folder's README); the tests skip when absent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from drivers.at.replies import (
    ReplyParseError,
    parse_cmgl,
    parse_cmgr,
    parse_cnum,
    parse_cops,
    parse_cpin,
    parse_cpms_query,
    parse_cpms_test,
    parse_creg,
    parse_iccid,
)
from drivers.modem.network import REGISTERED_WORDS, STAT_WORDS
from drivers.sms.pdu import PduError, SmsDeliver, SmsStatusReport, SmsSubmit, decode_pdu
from tests.conftest import modemmanager_cases

#: ModemManager's name for each 27.007 `<AcT>` value (what its `act` field holds); we keep the
#: number. Values it has no single name for do not occur in the cases.
MODEMMANAGER_ACT = {
    0: "GSM",
    1: "GSM_COMPACT",
    2: "UMTS",
    3: "EDGE",
    4: "HSDPA",
    5: "HSUPA",
    6: "HSPA",
    7: "LTE",
    8: "GSM",
    9: "LTE_NB_IOT",
    10: "LTE",
    11: "5GNR",
    12: "5GNR",
}
#: Message memories ModemManager knows by name; it reads any other as "unknown" (None), where
#: we keep the name the modem gave.
MODEMMANAGER_MEMORIES = frozenset({"SM", "ME", "MT", "SR", "BM", "TA"})

#: Cases we refuse on purpose, each with why. Nothing else may fail to read.
REFUSED: dict[str, str] = {
    "test_cpin_responses#0": (
        "`+CME ERROR: 100` is a final result, not a +CPIN reply: the AT engine turns it into a "
        "CmeError before any parser sees it, and the SIM check maps CME codes itself (100 reads "
        "as 'the SIM check failed', the same 'unknown' ModemManager reports)"
    ),
}


def act_name(act: int | None) -> str:
    return "UNKNOWN" if act is None else MODEMMANAGER_ACT[act]


def report_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def refuse(case: dict[str, Any], error: type[Exception], read: Any) -> None:
    """A case in `REFUSED` must raise `error` (and only those cases may)."""
    assert case["id"] in REFUSED, f"{case['id']} is not listed as refused"
    with pytest.raises(error):
        read()


# -- registration: +CREG / +CGREG / +CEREG / +C5GREG ---------------------------------------------


@pytest.mark.parametrize("case", modemmanager_cases("mm_creg.json"))
def test_registration(case: dict[str, Any]) -> None:
    expected = case["expected"]
    lines = report_lines(case["input"])
    reports = [parse_creg(line, solicited=case["solicited"]) for line in lines]
    first = reports[0]  # ModemManager reads the first report of a multi-line input
    # ModemManager reports an absent LAC or cell id as 0; we say None.
    got = (first.command, first.stat, first.lac or 0, first.ci or 0, act_name(first.act))
    assert got == (
        expected["command"],
        expected["stat"],
        expected["lac"],
        expected["ci"],
        expected["act"],
    )
    # The driver's word for the state agrees with the report's own idea of "registered".
    assert first.registered == (STAT_WORDS.get(first.stat, "unknown") in REGISTERED_WORDS)


# -- operator: +COPS? ------------------------------------------------------------------------


@pytest.mark.parametrize("case", modemmanager_cases("mm_cops.json"))
def test_operator(case: dict[str, Any]) -> None:
    selection = parse_cops(case["input"])
    expected = case["expected"]
    got = (selection.mode, selection.format, selection.operator, act_name(selection.act))
    assert got == (expected["mode"], expected["format"], expected["operator"], expected["act"])


# -- message storage: +CPMS=? and +CPMS? -------------------------------------------------------


@pytest.mark.parametrize("case", modemmanager_cases("mm_cpms_test.json"))
def test_storage_support(case: dict[str, Any]) -> None:
    support = parse_cpms_test(case["input"])
    expected = case["expected"]
    # ModemManager lists each role's memories sorted, without duplicates.
    got = [sorted(set(names)) for names in (support.read, support.write, support.receive)]
    assert got == [expected["read"], expected["write"], expected["receive"]]


@pytest.mark.parametrize("case", modemmanager_cases("mm_cpms_query.json"))
def test_storage_in_use(case: dict[str, Any]) -> None:
    usages = parse_cpms_query(case["input"])
    expected = case["expected"]
    for usage, name in zip(usages, (expected["mem1"], expected["mem2"]), strict=False):
        if name is None:
            assert usage.memory not in MODEMMANAGER_MEMORIES  # a name it does not know
        else:
            assert usage.memory == name


# -- own numbers, ICCID, PIN state ---------------------------------------------------------------


@pytest.mark.parametrize("case", modemmanager_cases("mm_cnum.json"))
def test_own_numbers(case: dict[str, Any]) -> None:
    numbers = [entry.number for entry in parse_cnum(case["input"])]
    assert numbers == case["expected"]["numbers"]


@pytest.mark.parametrize("case", modemmanager_cases("mm_iccid.json"))
def test_iccid(case: dict[str, Any]) -> None:
    value = case["expected"]["value"]
    if value is None:  # ModemManager refuses it too (too short, not hex, not a telecom MII)
        with pytest.raises(ReplyParseError):
            parse_iccid(case["input"])
        return
    assert parse_iccid(case["input"]).value == value


@pytest.mark.parametrize("case", modemmanager_cases("mm_cpin.json"))
def test_pin_state(case: dict[str, Any]) -> None:
    if case["id"] in REFUSED:
        refuse(case, ReplyParseError, lambda: parse_cpin(case["input"]))
        return
    state = parse_cpin(case["input"])
    # ModemManager names the states with underscores: `PH-NET PIN` is its PH_NET_PIN.
    assert state.code.replace(" ", "_").replace("-", "_") == case["expected"]["lock"]


# -- stored messages: +CMGL / +CMGR ---------------------------------------------------------


@pytest.mark.parametrize("case", modemmanager_cases("mm_cmgl_cmgr.json"))
def test_message_listing(case: dict[str, Any]) -> None:
    entries = case["expected"]["entries"]
    if case["kind"] == "cmgl":
        listed = parse_cmgl(case["input"])
        got = [(entry.index, entry.stat, entry.pdu) for entry in listed]
    else:
        message = parse_cmgr(case["input"])
        assert message is not None
        index = entries[0]["index"]  # +CMGR carries no index: the caller knows it
        got = [(index, message.stat, message.pdu)]
    assert got == [(entry["index"], entry["stat"], entry["pdu"].upper()) for entry in entries]


# -- PDUs ----------------------------------------------------------------------------------------


def _timestamp(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@pytest.mark.parametrize("case", modemmanager_cases("mm_pdu.json"))
def test_pdu(case: dict[str, Any]) -> None:
    expected = case["expected"]
    if expected.get("error"):  # a deliberately broken PDU: ModemManager refuses it too
        with pytest.raises(PduError):
            decode_pdu(case["input"])
        return
    message = decode_pdu(case["input"])
    if expected.get("decodes"):
        assert isinstance(message, SmsDeliver) and message.text
        return
    assert message.smsc == expected["smsc"]
    if isinstance(message, SmsDeliver):
        number, stamp, concat = message.sender, message.timestamp, message.concat
    elif isinstance(message, SmsSubmit):
        number, stamp, concat = message.recipient, None, message.concat
    else:
        assert isinstance(message, SmsStatusReport)
        number, stamp, concat = message.recipient, message.timestamp, None
    assert number == expected["number"]
    assert stamp == _timestamp(expected["timestamp"])
    if stamp is not None:
        assert stamp.utcoffset() == _timestamp(expected["timestamp"]).utcoffset()
    assert (concat is not None) == expected["multipart"]
    if expected["data"] is not None:  # 8-bit data: ModemManager gives the octets, no text
        assert isinstance(message, SmsDeliver) and message.encoding == "8bit"
        assert message.data.hex().upper() == expected["data"]
    elif expected["text"] is not None:
        assert isinstance(message, SmsDeliver | SmsSubmit)
        assert message.text == expected["text"]
    else:  # a status report: no text
        assert isinstance(message, SmsStatusReport)
