"""Every fault knob of the simulator, observed by a plain pyserial client over the real pty."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest
import serial

from drivers.simulator import E3372, EC25, SIM800, PowerState, make_sim, running_modem
from drivers.simulator.serial_probe import SerialProbe

#: Bound for a reply or URC that should come at once (only reached when something is wrong).
REPLY_TIMEOUT_S = 3.0
#: How long a client waits before it calls a modem silent. Asserting absence needs some window;
#: a short one keeps the suite fast and is safe (a hung modem never answers at all).
SILENCE_WINDOW_S = 0.3


def sim_card(**fields: object):
    return make_sim(11, number="4915199990000", **fields)  # type: ignore[arg-type]


async def test_hang_until_power_cycle() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        modem.hang()
        await probe.write(b"AT\r")
        assert await probe.read_for(SILENCE_WINDOW_S) == b""
        with pytest.raises(TimeoutError):
            await probe.command("AT+CFUN=1,1", timeout=SILENCE_WINDOW_S)  # cannot be heard
        await modem.power_cycle()
        assert not modem.hung
        await probe.wait_for("SMS Ready", REPLY_TIMEOUT_S)
        assert (await probe.command("AT")).ok


async def test_hang_without_reboot_survives_reboot_until_unhang() -> None:
    async with running_modem(EC25, sim_card()) as (modem, probe):
        modem.hang(until_reboot=False)
        await modem.reboot()
        assert modem.hung
        assert await probe.read_for(SILENCE_WINDOW_S) == b""  # not even boot URCs
        modem.unhang()
        assert (await probe.command("AT")).ok


async def test_hang_that_still_answers_cfun_reset() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        modem.hang(answer_reset=True)
        await probe.write(b"AT+CSQ\r")
        assert await probe.read_for(SILENCE_WINDOW_S) == b""
        reply = await probe.command("AT+CFUN=1,1")
        assert reply.ok
        await probe.wait_for("SMS Ready", REPLY_TIMEOUT_S)
        assert not modem.hung
        assert (await probe.command("AT+CSQ")).ok


async def test_hang_recovers_by_itself() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        modem.hang(recover_after=0.05)
        # The client retries like a driver would; the modem answers once it recovered.
        for _ in range(100):
            try:
                reply = await probe.command("AT", timeout=0.2)
            except TimeoutError:
                continue
            break
        else:
            pytest.fail("modem never recovered from its hang")
        assert reply.ok and not modem.hung


async def test_reply_delay() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        modem.reply_delay = 0.2
        reply = await probe.command("AT+CSQ", timeout=REPLY_TIMEOUT_S)
        assert reply.lines == ["+CSQ: 20,99"]
        sent = [e for e in modem.transcript.entries if e.direction == "out"]
        echo, answer = sent[-2], sent[-1]
        assert echo.data == b"AT+CSQ\r"
        assert answer.timestamp - echo.timestamp >= 0.2


async def test_garbage_bytes_now_and_mid_reply() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        modem.send_garbage(b"\xff\xfe\x00\x81garbage\r\n")
        modem.send_garbage(b"\xc3\x28\xa0", mid_reply=True)
        reply = await probe.command("AT+CSQ")
        assert reply.ok and "+CSQ: 20,99" in reply.lines
        assert b"\xff\xfe\x00\x81garbage" in bytes(probe.received)
        assert reply.raw.endswith(b"\r\n+CSQ: 20,99\r\n\xc3\x28\xa0\r\nOK\r\n")
        assert (await probe.command("AT")).raw == b"AT\r\r\nOK\r\n"  # only once


async def test_noise_lines_inside_replies() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        modem.noise_lines = ["^RSSI: 12", "+CREG: 1"]
        modem.noise_every = 1
        first = await probe.command("AT+CSQ")
        second = await probe.command("AT+CSQ")
        assert first.lines[0] == "+CSQ: 20,99" and first.lines[1] in modem.noise_lines
        assert second.lines[1] in modem.noise_lines and second.lines[1] != first.lines[1]
        modem.noise_every = 0
        assert (await probe.command("AT+CSQ")).lines == ["+CSQ: 20,99"]


async def test_urc_injected_between_info_lines_and_final() -> None:
    async with running_modem(EC25, sim_card()) as (modem, probe):
        modem.inject_into_next_reply('+CMTI: "ME",3')
        reply = await probe.command("AT+CPMS?")
        assert reply.raw.endswith(b'255\r\n\r\n+CMTI: "ME",3\r\n\r\nOK\r\n')


async def test_periodic_huawei_noise_and_curc_off() -> None:
    profile = replace(E3372, noise_interval_seconds=0.02)
    async with running_modem(profile, sim_card()) as (modem, probe):
        line, _ = await probe.wait_for(lambda ln: ln.startswith(("^RSSI", "^MODE", "^BOOT")))
        assert line in profile.periodic_noise
        assert (await probe.command("AT^CURC=0")).ok
        assert modem.settings.curc == 0


async def test_spontaneous_reboot_resets_settings_keeps_storage() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        assert (await probe.command("ATE0;+CMGF=1;+CNMI=1,2,0,0,0")).ok
        await probe.write(b"AT+CMGW=13\r")
        await probe.wait_for_bytes(b"> ")
        await probe.write(b"0011000B914951214365F70000AA01C1\x1a")
        assert (await probe.wait_for("+CMGW:"))[0] == "+CMGW: 1"
        await probe.read_line()  # OK
        reboot = asyncio.create_task(modem.reboot())
        await asyncio.sleep(0)  # let the reboot begin
        assert modem.power is PowerState.BOOTING
        probe.port.write(b"AT\r")  # a few bytes into a pty never block
        await reboot
        _, before = await probe.wait_for("SMS Ready")
        assert before == ["RDY", "+CFUN: 1", "+CPIN: READY", "Call Ready"]  # the AT went unheard
        reply = await probe.command("AT+CMGF?;+CNMI?;+CPMS?")
        assert reply.raw.startswith(b"AT+CMGF?")  # echo back on
        assert reply.lines == [
            "+CMGF: 0",
            "+CNMI: 2,1,0,0,0",
            '+CPMS: "SM",1,30,"SM",1,30,"SM",1,30',
        ]


async def test_unplug_and_replug_on_a_new_path() -> None:
    sim = sim_card()
    async with running_modem(SIM800, sim) as (modem, probe):
        old_path = modem.path
        modem.unplug()
        with pytest.raises(serial.SerialException):
            await asyncio.to_thread(probe.read_for_blocking, SILENCE_WINDOW_S)
        new_path = await modem.replug()
        assert new_path != old_path
        with pytest.raises(serial.SerialException):
            SerialProbe(old_path)
        with SerialProbe(new_path) as fresh:
            assert (await fresh.command("AT+CCID")).lines == [sim.iccid]


async def test_remove_and_insert_sim() -> None:
    async with running_modem(EC25, sim_card()) as (modem, probe):
        assert (await probe.command("AT+CREG=1")).ok
        modem.remove_sim()
        await probe.wait_for("+CPIN: NOT READY")
        await probe.wait_for("+CREG: 0")
        assert (await probe.command("AT+CPIN?")).final == "+CME ERROR: 10"
        assert (await probe.command("AT+QCCID")).final == "+CME ERROR: 10"
        other = make_sim(12, number="4915199990001")
        modem.insert_sim(other)
        await probe.wait_for("+CPIN: READY")
        await probe.wait_for("+CREG: 1")
        assert (await probe.command("AT+QCCID")).lines == [f"+QCCID: {other.iccid}"]


async def test_sim_busy_after_boot() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        assert (await probe.command("AT+CMEE=1")).ok
        modem.sim_busy_after_boot = 2
        await modem.reboot()
        await probe.wait_for("SMS Ready")
        assert (await probe.command("AT+CMEE=1")).ok  # reboot reset CMEE to 0
        assert (await probe.command("AT+CPIN?")).final == "+CME ERROR: 14"
        assert (await probe.command("AT+CPMS?")).final == "+CMS ERROR: 314"
        assert (await probe.command("AT+CPIN?")).lines == ["+CPIN: READY"]
        assert (await probe.command("AT+CPMS?")).ok


async def test_under_voltage_warning() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        modem.under_voltage()
        assert (await probe.read_line()) == "UNDER-VOLTAGE WARNNING"
        modem.under_voltage(power_down=True)
        await probe.wait_for("UNDER-VOLTAGE POWER DOWN")
        await probe.wait_for("RDY")
    async with running_modem(EC25, sim_card()) as (modem, _):
        with pytest.raises(ValueError, match="under-voltage"):
            modem.under_voltage()


async def test_transcript_in_memory_and_file(tmp_path: Path) -> None:
    log_file = tmp_path / "modem.log"
    async with running_modem(SIM800, sim_card(), transcript_path=log_file) as (modem, probe):
        await probe.command("AT+CSQ")
        assert b"AT+CSQ\r" in modem.transcript.received()
        assert b"+CSQ: 20,99" in modem.transcript.sent()
        assert {e.port for e in modem.transcript.entries} == {modem.path}
    text = await asyncio.to_thread(log_file.read_text)
    assert "<< b'AT+CSQ\\r'" in text and "+CSQ: 20,99" in text


async def test_garbage_from_the_client_never_stops_the_modem() -> None:
    async with running_modem(SIM800, sim_card()) as (modem, probe):
        assert (await probe.command("ATE0")).ok
        await probe.write(b"\xff\xfe\x00\x81junk\r" + b"A" * 10_000 + b"\r" + b"AT+\x9c=\r")
        assert (await probe.read_line(REPLY_TIMEOUT_S)) == "ERROR"  # only the AT line is answered
        reply = await probe.command("AT+CSQ")
        assert reply.lines == ["+CSQ: 20,99"]
        assert modem.power is PowerState.ON
