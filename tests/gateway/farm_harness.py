"""The whole daemon on simulated modems: real ptys, real HTTP on loopback, a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx

from drivers.modem.settings import DriverSettings
from drivers.simulator import (
    E3372,
    EC25,
    SIM800,
    SIM7600,
    Profile,
    SimulatedFarm,
    SimulatedModem,
    make_sim,
    with_serial,
)
from gateway.config import config_from_dict
from gateway.daemon import Daemon
from gateway.demo.fake_marketplace import FakeMarketplace, Policy, always_succeed
from gateway.farm.farm import PortEvents
from tests.drivers.modem_harness import FAST_TIMINGS

KEY = "farm-test-partner-key"
SERVICES = ("vk", "wa", "tg")
#: Bound for what should happen promptly (a modem coming up, a push arriving); never waited out.
EVENTUALLY_SECONDS = 60.0

# (profile, a valid number with its last digits to be replaced, MCC+MNC, operator name)
MIX: tuple[tuple[Profile, str, str, str], ...] = (
    (SIM800, "4915112340000", "26202", "Vodafone.de"),
    (EC25, "4917612340000", "26203", "o2 - de"),
    (E3372, "79161230000", "25001", "MTS RUS"),
    (SIM7600, "79261230000", "25002", "MegaFon"),
)


# Short enough that the recovery ladder runs in seconds, long enough for 16 modems on a busy
# 2-core machine to answer every command in time.
FARM_TIMINGS = replace(
    FAST_TIMINGS, command_seconds=3.0, long_command_seconds=5.0, probe_seconds=2.0
)


def quick_driver(port: str, events: PortEvents, settings: DriverSettings):
    """The real modem driver with test timings."""
    from drivers.modem.driver import ModemDriver

    return ModemDriver(port, events, replace(settings, timings=FARM_TIMINGS))


def mixed_farm(count: int) -> SimulatedFarm:
    """`count` modems cycling through four models and four networks, numbers all distinct."""
    farm = SimulatedFarm()
    for n in range(count):
        profile, template, mccmnc, operator = MIX[n % len(MIX)]
        number = f"{template[:-4]}{n:04d}"
        sim = make_sim(n + 1, number=number, mcc_mnc=mccmnc, operator_name=operator)
        farm.add(SimulatedModem(with_serial(profile, n + 1), sim, name=f"m{n:02d}-{profile.name}"))
    return farm


def farm_config(ports: Iterable[str], push_url: str, db: Path, extra: dict[str, Any] | None = None):
    """A configuration with short farm intervals; `extra` adds or replaces top-level tables."""
    return config_from_dict(
        {
            "server": {"host": "127.0.0.1", "port": 0},
            "admin": {"port": 0},
            "marketplace": {"key": KEY, "push_url": push_url, "push_retry_seconds": 0.5},
            "storage": {"path": str(db)},
            "offer": {"services": list(SERVICES), "rent": True},
            "modems": [{"port": port} for port in ports],
            "farm": {
                "rescan_seconds": 0.5,
                "sweep_seconds": 2,
                "keepalive_seconds": 1,
                "multipart_timeout_seconds": 30,
            },
            **(extra or {}),
        }
    )


@dataclass
class Running:
    daemon: Daemon
    sims: SimulatedFarm
    market: FakeMarketplace
    client: httpx.AsyncClient

    async def action(self, action: str, **fields: Any) -> dict[str, Any]:
        reply = await self.client.post("/", json={"action": action, "key": KEY, **fields})
        assert reply.status_code == 200, reply.text
        return reply.json()

    @property
    def pool(self):
        assert self.daemon.pool is not None
        return self.daemon.pool

    def live_numbers(self) -> set[str]:
        return {sim.number for sim in self.pool.live_numbers()}

    async def wait_live(self, numbers: set[str], timeout: float = EVENTUALLY_SECONDS) -> None:
        await self.pool.wait_until(lambda: self.live_numbers() == numbers, timeout)

    async def wait_pushes(self, count: int, timeout: float = EVENTUALLY_SECONDS) -> None:
        await self.market.wait_for(lambda received: len(received) >= count, timeout)


@asynccontextmanager
async def running_daemon(
    db: Path,
    sims: SimulatedFarm,
    *,
    policy: Policy = always_succeed,
    extra: dict[str, Any] | None = None,
) -> AsyncIterator[Running]:
    """The daemon driving `sims` (already started), with a fake marketplace for its pushes."""
    market = FakeMarketplace(policy=policy)
    await market.start()
    daemon = Daemon(
        farm_config([m.path for m in sims], market.url, db, extra), driver_factory=quick_driver
    )
    try:
        await daemon.start()
        url = f"http://127.0.0.1:{daemon.port}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield Running(daemon, sims, market, client)
    finally:
        await daemon.stop()
        await market.stop()


@asynccontextmanager
async def started(sims: SimulatedFarm) -> AsyncIterator[SimulatedFarm]:
    await sims.start()
    try:
        yield sims
    finally:
        await sims.stop()
