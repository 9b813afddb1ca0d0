"""The simulated modems answer AT commands like the real models, over a real pty and pyserial."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from drivers.simulator import (
    E160,
    E3372,
    EC25,
    SIM800,
    SIM7600,
    Profile,
    SimState,
    iccid_to_ef,
    make_sim,
    running_modem,
)

NUMBER = "4915112345678"
#: Generous bound for a reply that should come at once (only reached when something is wrong).
REPLY_TIMEOUT_S = 3.0


def sim_card(**fields: object):
    return make_sim(7, number=NUMBER, **fields)  # type: ignore[arg-type]


def unswap(ef_hex: str) -> str:
    """EF_ICCID back to ICCID digits (the inverse of `iccid_to_ef`)."""
    digits = "".join(ef_hex[i + 1] + ef_hex[i] for i in range(0, len(ef_hex), 2))
    return digits.rstrip("F")


async def test_init_sequence_echo_and_line_endings() -> None:
    async with running_modem(SIM800, sim_card()) as (_, probe):
        reply = await probe.command("AT")
        assert reply.raw.startswith(b"AT\r")  # echo on by default
        assert reply.raw.endswith(b"\r\nOK\r\n")
        assert (await probe.command("ATE0")).ok
        reply = await probe.command("ATV1")
        assert reply.raw == b"\r\nOK\r\n"  # no echo any more
        assert (await probe.command("at+cmee=1")).ok  # lower case
        await probe.write(b"AT+CSQ\n")  # LF alone ends a line too
        line, _ = await probe.wait_for("+CSQ:", REPLY_TIMEOUT_S)
        assert line == "+CSQ: 20,99"
        assert (await probe.read_line(REPLY_TIMEOUT_S)) == "OK"
        assert (await probe.command("AT+CFUN=0;+CFUN=1")).ok  # concatenated
        reply = await probe.command("AT+CMEE?;+CMGF?")
        assert reply.starting("+CMEE") == ["+CMEE: 1"] and reply.starting("+CMGF") == ["+CMGF: 0"]
        assert (await probe.command("ATZ")).raw == b"\r\nOK\r\n"  # still no echo for ATZ itself
        assert (await probe.command("AT")).raw.startswith(b"AT\r")  # defaults again: echo on


async def test_esc_cancels_a_pending_prompt() -> None:
    async with running_modem(EC25, sim_card()) as (modem, probe):
        await probe.write(b"AT+CMGS=20\r")
        await probe.wait_for_bytes(b"> ", REPLY_TIMEOUT_S)
        await probe.write(b"0011\x1b")
        assert (await probe.wait_for("OK", REPLY_TIMEOUT_S))[0] == "OK"
        assert (await probe.command("AT")).ok
        assert modem.sent_pdus == []


async def test_cmgs_sends_after_ctrl_z() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        await probe.write(b"AT+CMGS=13\r")
        await probe.wait_for_bytes(b"> ", REPLY_TIMEOUT_S)
        await probe.write(b"0011000B914951214365F70000AA01C1\x1a")
        line, _ = await probe.wait_for("+CMGS:", REPLY_TIMEOUT_S)
        assert line.startswith("+CMGS: ")
        assert modem.sent_pdus == ["0011000B914951214365F70000AA01C1"]


@pytest.mark.parametrize(
    ("profile", "iccid_command", "reply_prefix"),
    [
        (SIM800, "AT+CCID", ""),
        (EC25, "AT+QCCID", "+QCCID: "),
        (SIM7600, "AT+CICCID", "ICCID: "),
        (E3372, "AT^ICCID?", "^ICCID: "),
    ],
    ids=lambda v: v.name if isinstance(v, Profile) else None,
)
async def test_identity_and_which_iccid_command_works(
    profile: Profile, iccid_command: str, reply_prefix: str
) -> None:
    sim = sim_card()
    vendor_forms = {"AT+CCID", "AT+QCCID", "AT+CICCID", "AT^ICCID?"}
    async with running_modem(profile, sim) as (_, probe):
        assert (await probe.command("AT+CGMI")).lines == [profile.manufacturer]
        assert (await probe.command("AT+CGMM")).lines == [profile.model]
        assert (await probe.command("AT+CGMR")).lines == [profile.revision]
        assert (await probe.command("AT+CGSN")).lines == [profile.imei]
        assert (await probe.command("AT+GSN")).lines == [profile.imei]
        assert (await probe.command("ATI")).lines == list(profile.ati_lines)
        assert (await probe.command("AT+CIMI")).lines == [sim.imsi]
        crsm = await probe.command("AT+CRSM=176,12258,0,0,10")
        ef = crsm.lines[0].split('"')[1]
        assert crsm.lines[0].startswith("+CRSM: 144,0,") and unswap(ef) == sim.iccid
        vendor = await probe.command(iccid_command)
        expected = iccid_to_ef(sim.iccid) if iccid_command == "AT^ICCID?" else sim.iccid
        assert vendor.lines == [reply_prefix + expected]
        for other in vendor_forms - {iccid_command}:
            assert not (await probe.command(other)).ok, other


async def test_unknown_commands_per_profile() -> None:
    async with running_modem(SIM800, sim_card()) as (_, probe):
        assert (await probe.command("AT+NOPE")).final == "ERROR"
        assert (await probe.command("AT^CURC=0")).final == "ERROR"
        assert (await probe.command("AT+CEREG?")).final == "ERROR"
    async with running_modem(E3372, sim_card()) as (modem, probe):
        modem.noise_interval = 3600.0
        assert (await probe.command("AT+NOPE")).final == "COMMAND NOT SUPPORT"
        assert (await probe.command("AT+QCCID")).final == "COMMAND NOT SUPPORT"
        # Huawei comes up with verbose errors (CMEE=2); numeric after AT+CMEE=1.
        assert (await probe.command("AT+CMGR=999")).final == "+CMS ERROR: invalid memory index"
        assert (await probe.command("AT+CPIN=1234")).final == "+CME ERROR: operation not allowed"
        assert (await probe.command("AT+CMEE=1")).ok
        assert (await probe.command("AT+CPIN=1234")).final == "+CME ERROR: 3"


async def test_error_verbosity_follows_cmee() -> None:
    async with running_modem(SIM800, None) as (_, probe):
        assert (await probe.command("AT+CPIN?")).final == "ERROR"
        assert (await probe.command("AT+CMEE=1")).ok
        assert (await probe.command("AT+CPIN?")).final == "+CME ERROR: 10"
        assert (await probe.command("AT+CMEE=2")).ok
        assert (await probe.command("AT+CPIN?")).final == "+CME ERROR: SIM not inserted"
        assert (await probe.command("AT+CPMS?")).final == "+CMS ERROR: SIM not inserted"
        assert (await probe.command("AT+CMEE=1")).ok
        assert (await probe.command("AT+CPMS?")).final == "+CMS ERROR: 310"


async def test_pin_locked_sim() -> None:
    async with running_modem(SIM800, sim_card(pin="4321")) as (_, probe):
        assert (await probe.command("AT+CMEE=1")).ok
        assert (await probe.command("AT+CPIN?")).lines == ["+CPIN: SIM PIN"]
        assert (await probe.command("AT+CIMI")).final == "+CME ERROR: 11"
        assert (await probe.command("AT+CREG?")).lines == ["+CREG: 0,0"]
        assert (await probe.command('AT+CPIN="0000"')).final == "+CME ERROR: 16"
        assert (await probe.command('AT+CPIN="4321"')).ok
        await probe.wait_for("SMS Ready", REPLY_TIMEOUT_S)
        assert (await probe.command("AT+CPIN?")).lines == ["+CPIN: READY"]
        assert (await probe.command("AT+CREG?")).lines == ["+CREG: 0,1"]


async def test_three_wrong_pins_need_the_puk() -> None:
    async with running_modem(EC25, sim_card(pin="4321")) as (_, probe):
        for _ in range(3):
            assert (await probe.command('AT+CPIN="1111"')).final == "+CME ERROR: 16"
        assert (await probe.command("AT+CPIN?")).lines == ["+CPIN: SIM PUK"]
        assert (await probe.command('AT+CPIN="4321"')).final == "+CME ERROR: 12"


async def test_registration_queries_and_urcs() -> None:
    async with running_modem(EC25, sim_card()) as (modem, probe):
        assert (await probe.command("AT+CREG?")).lines == ["+CREG: 0,1"]
        assert (await probe.command("AT+CREG=2;+CGREG=1;+CEREG=2")).ok
        (creg,) = (await probe.command("AT+CREG?")).lines
        assert creg.startswith('+CREG: 2,1,"1A2B","') and creg.endswith('",7')
        modem.set_registration(SimState.REGISTRATION_DENIED)
        await probe.wait_for("+CREG: 3", REPLY_TIMEOUT_S)
        await probe.wait_for("+CGREG: 3", REPLY_TIMEOUT_S)
        await probe.wait_for("+CEREG: 3", REPLY_TIMEOUT_S)
        assert (await probe.command("AT+COPS?")).lines == ["+COPS: 0"]
        modem.set_registration(SimState.READY, roaming=True)
        line, _ = await probe.wait_for("+CREG: 5", REPLY_TIMEOUT_S)
        assert line.startswith('+CREG: 5,"1A2B"')
        modem.set_registration(SimState.NOT_REGISTERED)
        await probe.wait_for("+CREG: 2", REPLY_TIMEOUT_S)


async def test_operator_signal_and_radio() -> None:
    sim = sim_card(operator_name="Vodafone.de", mcc_mnc="26202")
    async with running_modem(SIM800, sim) as (modem, probe):
        assert (await probe.command("AT+COPS?")).lines == ['+COPS: 0,0,"Vodafone.de"']
        assert (await probe.command("AT+COPS=3,2")).ok
        assert (await probe.command("AT+COPS?")).lines == ['+COPS: 0,2,"26202"']
        modem.signal_rssi = 14
        assert (await probe.command("AT+CSQ")).lines == ["+CSQ: 14,99"]
        assert (await probe.command("AT+CREG=1")).ok
        assert (await probe.command("AT+CFUN=4")).ok
        await probe.wait_for("+CREG: 0", REPLY_TIMEOUT_S)
        assert (await probe.command("AT+CFUN?")).lines == ["+CFUN: 4"]
        assert (await probe.command("AT+CSQ")).lines == ["+CSQ: 99,99"]
        assert (await probe.command("AT+CFUN=1")).ok
        await probe.wait_for("+CREG: 1", REPLY_TIMEOUT_S)


async def test_own_number_through_cnum_and_phonebook() -> None:
    async with running_modem(SIM800, sim_card(number_in_phonebook=True)) as (_, probe):
        assert (await probe.command("AT+CNUM")).lines == [f'+CNUM: "","+{NUMBER}",145']
        assert (await probe.command('AT+CPBS="ON"')).ok
        assert (await probe.command("AT+CPBS?")).lines == ['+CPBS: "ON",1,1']
        reply = await probe.command("AT+CPBR=1")
        assert reply.lines == [f'+CPBR: 1,"+{NUMBER}",145,"My number"']
    hidden = sim_card(number_in_cnum=False, number_in_phonebook=False)
    async with running_modem(SIM800, hidden) as (_, probe):
        reply = await probe.command("AT+CNUM")
        assert reply.ok and reply.lines == []
        assert (await probe.command('AT+CPBS="ON"')).ok
        reply = await probe.command("AT+CPBR=1")
        assert reply.ok and reply.lines == []


GSM7_TEST_ALPHABET = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"


def unpack_gsm7(data: bytes) -> str:
    """Independent septet unpacker (basic alphabet up to "?", letters) for checking replies."""
    bits = "".join(f"{byte:08b}"[::-1] for byte in data)
    septets = [int(bits[i : i + 7][::-1], 2) for i in range(0, len(bits) - 6, 7)]
    chars = [GSM7_TEST_ALPHABET[s] if s < len(GSM7_TEST_ALPHABET) else chr(s) for s in septets]
    return "".join(chars).rstrip("@")


@pytest.mark.parametrize(
    ("profile", "request_code", "dcs"),
    [
        (SIM800, '"*100#"', 15),
        (E3372, '"*100#"', 72),
        # E160 wants the request packed as GSM-7 hex ("*100#" -> AA180C3602) and packs its reply.
        (E160, '"AA180C3602"', 15),
    ],
    ids=["sim800-text", "e3372-ucs2", "e160-packed"],
)
async def test_ussd_reply_encoding(profile: Profile, request_code: str, dcs: int) -> None:
    text = "Ihre Nummer: +4915112345678"
    sim = sim_card(ussd={"*100#": text})
    async with running_modem(profile, sim) as (modem, probe):
        modem.noise_interval = 3600.0
        assert (await probe.command(f"AT+CUSD=1,{request_code},15")).ok
        line, _ = await probe.wait_for("+CUSD:", REPLY_TIMEOUT_S)
        head, payload, tail = line.split('"')
        assert head == "+CUSD: 0," and tail == f",{dcs}"
        if profile is SIM800:
            assert payload == text
        elif dcs == 72:
            assert bytes.fromhex(payload).decode("utf-16-be") == text
        else:
            assert unpack_gsm7(bytes.fromhex(payload)) == text
        assert (await probe.command('AT+CUSD=1,"*999#",15')).ok
        assert (await probe.wait_for("+CUSD:", REPLY_TIMEOUT_S))[0] == "+CUSD: 4"


async def test_storage_and_notification_settings() -> None:
    async with running_modem(EC25, sim_card()) as (_, probe):
        reply = await probe.command("AT+CPMS=?")
        assert reply.lines == ['+CPMS: ("ME","SM"),("ME","SM"),("ME","SM")']
        reply = await probe.command("AT+CPMS?")
        assert reply.lines == ['+CPMS: "ME",0,255,"ME",0,255,"ME",0,255']
        reply = await probe.command('AT+CPMS="SM"')
        assert reply.lines == ["+CPMS: 0,50,0,255,0,255"]
        reply = await probe.command('AT+CPMS="SM","SM","SM"')
        assert reply.lines == ["+CPMS: 0,50,0,50,0,50"]
        assert (await probe.command('AT+CPMS="XX"')).final == "+CMS ERROR: 302"
        assert (await probe.command("AT+CNMI=?")).lines == ["+CNMI: (0-2),(0-3),(0,2),(0-2),(0,1)"]
        assert (await probe.command("AT+CNMI=2,1,0,0,0")).ok
        assert (await probe.command("AT+CNMI?")).lines == ["+CNMI: 2,1,0,0,0"]
        assert (await probe.command("AT+CNMI=1,2")).ok
        assert (await probe.command("AT+CNMI?")).lines == ["+CNMI: 1,2,0,0,0"]
        assert (await probe.command("AT+CNMI=9")).final.startswith("+CMS ERROR")
        assert (await probe.command("AT+CMGF=1;+CMGF?")).lines == ["+CMGF: 1"]
        assert (await probe.command('AT+CSCS="GSM";+CSCS?')).lines == ['+CSCS: "GSM"']
        assert (await probe.command("AT+CSMS=1")).lines == ["+CSMS: 1,1,1"]
        assert (await probe.command("AT+CNMA")).final == "+CMS ERROR: 340"
        assert (await probe.command("AT+CSCA?")).lines == ['+CSCA: "+491710760000",145']
    async with running_modem(SIM800, sim_card()) as (_, probe):
        assert (await probe.command("AT+CPMS=?")).lines == ['+CPMS: ("SM"),("SM"),("SM")']
        assert (await probe.command('AT+CPMS="ME"')).final == "+CMS ERROR: 302"


async def test_vendor_settings_where_the_profile_has_them() -> None:
    async with running_modem(EC25, sim_card()) as (_, probe):
        assert (await probe.command('AT+QURCCFG="urcport","usbmodem"')).ok
        reply = await probe.command('AT+QURCCFG="urcport"')
        assert reply.lines == ['+QURCCFG: "urcport","usbmodem"']
    async with running_modem(E3372, sim_card()) as (modem, probe):
        modem.noise_interval = 3600.0
        assert (await probe.command("AT^CURC=0")).ok
        assert (await probe.command("AT^CURC?")).lines == ["^CURC: 0"]


async def test_cfun_reset_reboots_with_boot_urcs_and_default_settings() -> None:
    async with running_modem(SIM800, sim_card()) as (_, probe):
        assert (await probe.command("ATE0;+CMEE=2;+CMGF=1;+CNMI=1,2")).ok
        reply = await probe.command("AT+CFUN=1,1")
        assert reply.ok
        _, urcs = await probe.wait_for("SMS Ready", REPLY_TIMEOUT_S)
        assert urcs == ["RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready"]
        reply = await probe.command("AT+CMEE?;+CMGF?;+CNMI?")
        assert reply.raw.startswith(b"AT+CMEE?")  # echo is back
        assert reply.lines == ["+CMEE: 0", "+CMGF: 0", "+CNMI: 2,1,0,0,0"]


@pytest.mark.parametrize(
    ("profile", "last_urc", "urcs_before"),
    [
        (
            EC25,
            "+QIND: PB DONE",
            ["RDY", "+CFUN: 1", "+CPIN: READY", "+QUSIM: 1", "+QIND: SMS DONE"],
        ),
        (E3372, "^SRVST: 2", ["^BOOT:20952,0,0,0,72", "^SIMST: 1"]),
    ],
    ids=["ec25", "e3372"],
)
async def test_boot_urcs_per_profile(profile: Profile, last_urc: str, urcs_before: list[str]):
    async with running_modem(replace(profile, noise_interval_seconds=3600.0), sim_card()) as (
        _,
        probe,
    ):
        assert (await probe.command("AT+CFUN=1,1")).ok
        _, urcs = await probe.wait_for(last_urc, REPLY_TIMEOUT_S)
        assert urcs == urcs_before


async def test_the_daemons_asyncio_serial_stack_talks_to_it() -> None:
    serial_asyncio_fast = pytest.importorskip("serial_asyncio_fast")
    async with running_modem(EC25, sim_card()) as (modem, _):
        reader, writer = await serial_asyncio_fast.open_serial_connection(
            url=modem.path, baudrate=115200
        )
        try:
            writer.write(b"ATE0\rAT+CGSN\r")
            async with asyncio.timeout(REPLY_TIMEOUT_S):
                received = b""
                while received.count(b"OK\r\n") < 2:
                    received += await reader.read(256)
            assert f"\r\n{EC25.imei}\r\n".encode() in received
        finally:
            writer.close()
