"""Keep-alive and the recovery ladder: a hung modem is reported and recovered, or marked DEAD;
an unplugged one ends run() with GONE."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from drivers.events import ModemState
from drivers.modem import ModemDriver
from drivers.modem_recovery import reboot_recovery_bound, silence_detection_bound
from drivers.modem_settings import DriverSettings
from drivers.simulator import EC25, SIM800, Profile, make_sim
from tests.drivers.modem_harness import FAST_TIMINGS, WAIT_S, ModemHarness, Recorder, fast_settings

SENDER = "+4917612345678"
#: Bring-up of a rebooted module on real hardware, on top of the ladder's own bound.
REAL_BRING_UP_S = 15.0


#: Even shorter waits: each rung of the ladder costs a timeout or two.
LADDER_SETTINGS = fast_settings(
    keepalive_seconds=0.5,
    timings=replace(
        FAST_TIMINGS,
        command_seconds=0.5,
        probe_seconds=0.25,
        wake_attempts=1,
        drain_max_seconds=0.2,
        reboot_wait_seconds=1.0,
        dead_retry_seconds=0.5,
    ),
)


def sim_card():
    return make_sim(61, number="4915100000061")


def test_default_timings_meet_the_recovery_promises() -> None:
    """Not ready within 30 s of going silent; a reboot brings it back within 2 minutes."""
    settings = DriverSettings()
    assert silence_detection_bound(settings.keepalive_seconds, settings.timings) <= 30.0
    bound = reboot_recovery_bound(settings.keepalive_seconds, settings.timings)
    assert bound + REAL_BRING_UP_S <= 120.0


@pytest.mark.parametrize("profile", [SIM800, EC25], ids=lambda p: p.name)
async def test_hung_modem_recovered_by_module_reboot(profile: Profile) -> None:
    async with ModemHarness(profile, sim_card(), LADDER_SETTINGS) as h:
        await h.wait_ready()
        h.modem.hang(answer_reset=True)  # only AT+CFUN=1,1 still gets through
        h.modem.deliver_sms(SENDER, "arrived while hung")  # stored, never announced
        status = await h.wait_state(ModemState.RECOVERING)
        assert not status.sellable
        await h.wait_ready(timeout=20)
        assert b"AT+CFUN=1,1" in h.modem.transcript.received()
        await h.wait_texts(["arrived while hung"])


async def test_modem_that_stays_silent_is_dead_then_retried() -> None:
    async with ModemHarness(SIM800, sim_card(), LADDER_SETTINGS) as h:
        await h.wait_ready()
        h.modem.hang(until_reboot=False)  # not even a reboot helps
        status = await h.wait_state(ModemState.DEAD, timeout=20)
        assert "power" in (status.detail or "")
        h.modem.deliver_sms(SENDER, "kept on the SIM")
        h.modem.unhang()  # e.g. someone power-cycled the hub port
        await h.wait_ready(timeout=20)
        await h.wait_texts(["kept on the SIM"])


async def test_unplug_ends_run_with_gone() -> None:
    async with ModemHarness(EC25, sim_card()) as h:
        await h.wait_ready()
        h.modem.unplug()
        await h.wait_until(lambda: h.task is not None and h.task.done(), what="run() ended")
        assert h.task is not None and h.task.exception() is None
        assert h.status.state is ModemState.GONE
        assert not h.status.sellable


async def test_port_that_does_not_exist_is_gone_at_once() -> None:
    events = Recorder(lambda: None)
    driver = ModemDriver("/nonexistent/modem-port", events, LADDER_SETTINGS)
    async with asyncio.timeout(WAIT_S):
        await driver.run()
    assert driver.status.state is ModemState.GONE
    assert events.states() == [ModemState.GONE]
