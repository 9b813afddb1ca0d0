"""The command table (drivers.at.commands) and ModemLink running it, without a port."""

from __future__ import annotations

import pytest

from drivers.at import commands as at
from drivers.at.engine import AtReply
from drivers.at.errors import AtCommandError, UnparsedReply
from drivers.modem.link import ModemLink
from drivers.modem.settings import DriverTimings

TIMINGS = DriverTimings(command_seconds=1.5, long_command_seconds=7.0, probe_seconds=0.5)


class ScriptedEngine:
    """Stands in for AtEngine: answers each command from a table, records the timeouts."""

    port = "/dev/scripted"

    def __init__(self, replies: dict[str, AtReply | Exception]) -> None:
        self.replies = replies
        self.sent: list[tuple[str, float]] = []

    async def command(self, command: str, *, timeout: float) -> AtReply:
        self.sent.append((command, timeout))
        reply = self.replies[command]
        if isinstance(reply, Exception):
            raise reply
        return reply


def reply(*lines: str) -> AtReply:
    return AtReply("", list(lines))


def test_families_build_the_command_text() -> None:
    assert at.READ_SMS.at(index=3).text == "+CMGR=3"
    assert at.DELETE_SMS.at(index=0).text == "+CMGD=0"
    assert at.USE_STORAGE.at(memory="ME").text == '+CPMS="ME","ME","ME"'
    assert at.SEND_USSD.at(code="*100#", dcs=15).text == '+CUSD=1,"*100#",15'
    assert at.READ_SMS.at(index=3).parse is at.READ_SMS.parse


def test_wait_classes() -> None:
    assert at.PROBE.wait is at.Wait.PROBE
    for long in (at.LIST_SMS, at.SEND_USSD.at(code="*1#", dcs=15), at.RADIO_OFF, at.REBOOT):
        assert long.wait is at.Wait.LONG
    for short in (at.READ_SIGNAL, at.READ_SMS.at(index=1), at.READ_FIRST_BOOK_ENTRY):
        assert short.wait is at.Wait.SHORT
    # the recovery ladder does not wait long on a module that may be hung
    assert at.RADIO_OFF_QUICK.wait is at.REBOOT_QUICK.wait is at.Wait.SHORT


def test_parsers_turn_replies_into_values() -> None:
    assert at.READ_SIGNAL.parse(reply("+CSQ: 18,0")) == 18
    assert at.READ_SIGNAL.parse(reply("+CSQ: 99,99")) is None
    assert at.READ_SIGNAL.parse(reply("+CSQ: junk")) is None
    assert at.READ_OPERATOR.parse(reply('+COPS: 0,2,"26202",7')) == "26202"
    assert at.READ_OPERATOR.parse(reply('+COPS: 0,0,"Vodafone.de",7')) is None
    assert at.READ_MANUFACTURER.parse(reply("+CGMI: Quectel")) == "Quectel"
    assert at.READ_MODEL.parse(reply('"EC25"')) == "EC25"
    assert at.READ_IMEI.parse(reply("867962041234567")) == "867962041234567"
    assert at.SMS_SERVICE.parse(reply("+CSMS: 1,1,1,1")) is True
    assert at.SMS_SERVICE.parse(reply("+CSMS: 0,1,1,1")) is False
    assert at.READ_PIN_STATE.parse(reply("+CPIN: READY")) == "READY"
    assert at.READ_PIN_STATE.parse(reply()) is None
    assert at.READ_MNC_LENGTH.parse(reply('+CRSM: 144,0,"00000003"')) == 3
    assert at.READ_MNC_LENGTH.parse(reply('+CRSM: 148,4,""')) is None
    assert at.READ_CREG.parse(reply("+CREG: 2,1")) == "+CREG: 2,1"
    assert at.READ_SMS.parse(reply()) is None  # a free slot
    selected = at.SELECT_STORAGE.parse(reply("+CPMS: 3,30,3,30,3,30"))
    assert selected is not None and (selected.used, selected.total) == (3, 30)
    assert at.PROBE.parse(reply()) is None


async def test_the_link_takes_timeouts_from_the_wait_class() -> None:
    engine = ScriptedEngine({"AT": reply(), "+CMGL=4": reply(), "+CSQ": reply("+CSQ: 20,0")})
    link = ModemLink(engine, TIMINGS)  # type: ignore[arg-type]
    await link.run(at.PROBE)
    await link.run(at.LIST_SMS)
    assert await link.run(at.READ_SIGNAL) == 20
    assert engine.sent == [("AT", 0.5), ("+CMGL=4", 7.0), ("+CSQ", 1.5)]


async def test_optional_commands_turn_refusals_into_none() -> None:
    refused = AtCommandError("ERROR")
    engine = ScriptedEngine({"+CSQ": refused, "E1": refused, "V1": reply()})
    link = ModemLink(engine, TIMINGS)  # type: ignore[arg-type]
    assert await link.run_optional(at.READ_SIGNAL) is None
    assert await link.accepts(at.ECHO_ON) is False
    assert await link.accepts(at.VERBOSE_RESULTS) is True
    with pytest.raises(AtCommandError):
        await link.run(at.READ_SIGNAL)


async def test_a_reply_the_parser_refuses_keeps_its_lines() -> None:
    engine = ScriptedEngine({"+CIMI": reply("not an imsi")})
    link = ModemLink(engine, TIMINGS)  # type: ignore[arg-type]
    with pytest.raises(UnparsedReply) as caught:
        await link.run_optional(at.READ_IMSI)
    assert caught.value.lines == ["not an imsi"]
    assert caught.value.command == "+CIMI"
