"""Keep-alive and the recovery ladder: a hung modem is reported and recovered, or marked DEAD;
an unplugged one ends run() with GONE."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from drivers.events import ModemState, ModemStatus
from drivers.modem.driver import ModemDriver
from drivers.modem.recovery import reboot_recovery_bound, silence_detection_bound
from drivers.modem.settings import DriverSettings
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


def _first_at(statuses: list[ModemStatus], state: ModemState, after: int = 0) -> int:
    """Where the first status in `state` from `after` on is in the reported statuses."""
    return next(at for at in range(after, len(statuses)) if statuses[at].state is state)


async def test_counters_after_a_module_reboot_recovery() -> None:
    """Timeouts: the command in flight, the escape `AT`, the re-init's wake-up `AT`, and
    `+CFUN=0` (the hung modem only answers `+CFUN=1,1`); one recovery by the reboot rung."""
    async with ModemHarness(SIM800, sim_card(), LADDER_SETTINGS) as h:
        ready = await h.wait_ready()
        assert (ready.timeouts, ready.recoveries) == (0, {})
        h.modem.hang(answer_reset=True)
        await h.wait_state(ModemState.RECOVERING)
        mark = _first_at(h.events.statuses, ModemState.RECOVERING)
        assert h.events.statuses[mark].timeouts == 1  # reported with the state change
        await h.wait_until(
            lambda: any(s.state is ModemState.READY for s in h.events.statuses[mark:]),
            timeout=20,
            what="ready again",
        )
        recovered = h.events.statuses[_first_at(h.events.statuses, ModemState.READY, mark)]
        assert LADDER_SETTINGS.timings.wake_attempts == 1
        assert recovered.timeouts == 4
        assert recovered.recoveries == {"module_reboot": 1}


async def test_counters_of_a_modem_that_stays_silent() -> None:
    """Every rung fails: six timeouts (the module reboot's own `+CFUN=1,1` and the wake-up after
    it included) and no recovery when it is declared DEAD; one recovery once it answers."""
    async with ModemHarness(SIM800, sim_card(), LADDER_SETTINGS) as h:
        await h.wait_ready()
        h.modem.hang(until_reboot=False)
        await h.wait_state(ModemState.DEAD, timeout=20)
        dead = h.events.statuses[_first_at(h.events.statuses, ModemState.DEAD)]
        assert (dead.timeouts, dead.recoveries) == (6, {})
        mark = len(h.events.statuses)
        h.modem.unhang()
        await h.wait_until(
            lambda: any(s.state is ModemState.READY for s in h.events.statuses[mark:]),
            timeout=20,
            what="ready again",
        )
        recovered = h.events.statuses[_first_at(h.events.statuses, ModemState.READY, mark)]
        assert recovered.timeouts >= dead.timeouts
        assert sum(recovered.recoveries.values()) == 1  # the rung depends on when it answered


async def test_last_sms_time_reaches_the_reported_status() -> None:
    async with ModemHarness(EC25, sim_card()) as h:
        ready = await h.wait_ready()
        assert ready.last_sms_at is None
        h.modem.deliver_sms(SENDER, "a code")
        await h.wait_texts(["a code"])
        await h.wait_until(
            lambda: h.events.statuses[-1].last_sms_at is not None, what="last_sms_at reported"
        )
        [sms] = h.events.received
        assert h.events.statuses[-1].last_sms_at >= sms.received_at
