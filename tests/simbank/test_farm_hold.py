"""Farm holds: a held port's SIM leaves the pool at once and is not offered again until unheld."""

from __future__ import annotations

import asyncio

from drivers.events import ModemStatus
from tests.gateway.farm_harness import mixed_farm, running_daemon, started


async def test_hold_withdraws_and_suppresses_offers_until_unhold(tmp_path) -> None:
    sims = mixed_farm(2)
    async with started(sims), running_daemon(tmp_path / "simfarm.db", sims) as farm:
        numbers = {m.sim.number for m in sims}
        await farm.wait_live(numbers)
        daemon_farm = farm.daemon.farm
        assert daemon_farm is not None
        held = next(iter(sims))
        sellable_again = asyncio.Event()
        rebooted = False

        def watch(port: str, status: ModemStatus) -> None:
            if port == held.path and rebooted and status.sellable:
                sellable_again.set()

        daemon_farm.on_status(watch)
        daemon_farm.hold(held.path)
        assert farm.live_numbers() == numbers - {held.sim.number}  # at once, no await
        assert daemon_farm.is_held(held.path) and not daemon_farm.is_offered(held.path)
        rebooted = True
        await held.reboot()  # the driver re-initialises and reports sellable again: not offered
        async with asyncio.timeout(20):
            await sellable_again.wait()
        status = daemon_farm.status_of(held.path)
        assert status is not None
        assert held.sim.number not in farm.live_numbers()
        driver = daemon_farm.driver_for(held.path)
        assert driver is not None and driver.status.port == held.path
        daemon_farm.unhold(held.path)
        await farm.wait_live(numbers, timeout=20)
