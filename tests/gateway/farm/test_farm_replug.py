"""A port that vanishes and comes back before the farm scans again is driven again.

udev re-creates a modem's stable name within a fraction of a second when the device
re-enumerates (unplugged and plugged back, or its own `AT+CFUN=1,1`). Here the stable name is
a symlink to the simulated modem's pty, as udev's is to a ttyUSB node.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from drivers.simulator import SimulatedModem
from gateway.daemon import Daemon
from gateway.demo.fake_marketplace import FakeMarketplace
from tests.gateway.farm_harness import (
    EVENTUALLY_SECONDS,
    farm_config,
    mixed_farm,
    quick_driver,
    started,
)

#: Long enough that no scan runs by itself during a test: the test scans when it means to.
NO_AUTOMATIC_RESCAN_SECONDS = 3600


def point(link: Path, target: str) -> None:
    """Make `link` point at `target` in one step, as udev replaces a device node's name."""
    new = link.with_name(link.name + ".new")
    os.symlink(target, new)
    os.replace(new, link)


@asynccontextmanager
async def farm_on_stable_names(
    tmp_path: Path,
) -> AsyncIterator[tuple[Daemon, SimulatedModem, Path]]:
    sims = mixed_farm(1)
    dev = tmp_path / "dev"
    dev.mkdir()
    async with started(sims):
        [modem] = list(sims)
        link = dev / "usb-1-1.2"
        point(link, modem.path)
        market = FakeMarketplace()
        await market.start()
        config = farm_config(
            [str(dev / "usb-*")],
            market.url,
            tmp_path / "simfarm.db",
            {
                "farm": {
                    "rescan_seconds": NO_AUTOMATIC_RESCAN_SECONDS,
                    "sweep_seconds": 2,
                    "keepalive_seconds": 1,
                }
            },
        )
        daemon = Daemon(config, driver_factory=quick_driver)
        try:
            await daemon.start()
            yield daemon, modem, link
        finally:
            await daemon.stop()
            await market.stop()


async def wait_live(daemon: Daemon, numbers: set[str]) -> None:
    pool = daemon.pool
    assert pool is not None
    await pool.wait_until(
        lambda: {s.number for s in pool.live_numbers()} == numbers, EVENTUALLY_SECONDS
    )


async def test_a_port_back_before_the_next_scan_is_restarted(tmp_path) -> None:
    async with farm_on_stable_names(tmp_path) as (daemon, modem, link):
        farm = daemon.farm
        assert farm is not None
        await wait_live(daemon, {modem.sim.number})
        # Unplugged: the name goes, the driver's reads fail, the driver ends.
        link.unlink()
        modem.unplug()
        await wait_live(daemon, set())
        port = farm._ports[str(link)]
        assert port.task is not None
        await asyncio.wait_for(asyncio.wait({port.task}), EVENTUALLY_SECONDS)
        # Back a moment later (a new pty behind the same name), before any scan saw it missing.
        point(link, await modem.replug())
        farm.rescan()
        await wait_live(daemon, {modem.sim.number})


async def test_a_port_replaced_in_place_is_restarted(tmp_path) -> None:
    async with farm_on_stable_names(tmp_path) as (daemon, modem, link):
        farm = daemon.farm
        assert farm is not None
        await wait_live(daemon, {modem.sim.number})
        first_driver = farm.driver_for(str(link))
        # The device re-enumerates and its name is re-pointed at once: the name never goes.
        replugged = asyncio.create_task(modem.replug())
        await asyncio.sleep(0)  # replug() has closed the old pty and opened the new one
        point(link, modem.path)
        await replugged
        await wait_live(daemon, set())  # the driver on the old pty noticed and ended
        farm.rescan()
        await wait_live(daemon, {modem.sim.number})
        assert farm.driver_for(str(link)) is not first_driver
