"""The daemon driving a simulated SIM bank: board and modules on real ptys, real SQLite, HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from drivers.simulator.simbank import SimulatedSimBank
from gateway.daemon import Daemon
from gateway.demo.fake_marketplace import FakeMarketplace
from gateway.farm.simbank.rotation import BankRotation
from tests.gateway.farm_harness import KEY, farm_config, quick_driver

#: Short waits so that the whole rotation runs in about a second per channel.
FAST_BANK: dict[str, Any] = {
    "dwell_minutes": 0.01,
    "max_in_transition": 0.25,
    "min_command_interval_seconds": 0.02,
    "drain_seconds": 0.0,
    "settle_seconds": 0.02,
    "sim_ready_seconds": 4.0,
    "registration_seconds": 10.0,
    "reply_timeout_seconds": 0.2,
    "quarantine_minutes": 0.02,
}


@dataclass
class BankRun:
    daemon: Daemon
    bank: SimulatedSimBank
    market: FakeMarketplace
    client: httpx.AsyncClient
    violations: list[str] = field(default_factory=list)
    ever_live: set[str] = field(default_factory=set)

    @property
    def pool(self):
        assert self.daemon.pool is not None
        return self.daemon.pool

    @property
    def rotation(self) -> BankRotation:
        return self.daemon.simbanks.rotations[0]

    async def action(self, action: str, **fields: Any) -> dict[str, Any]:
        reply = await self.client.post("/", json={"action": action, "key": KEY, **fields})
        assert reply.status_code == 200, reply.text
        return reply.json()

    def live(self) -> dict[str, str]:
        """number -> ICCID of the SIMs on offer now."""
        return {sim.number: sim.iccid for sim in self.pool.live_numbers()}

    def check_counts(self) -> None:
        """GET_SERVICES counts only verified SIMs in active slots, never more than modules."""
        live = self.live()
        self.ever_live.update(live)
        if len(live) > len(self.bank.modules):
            self.violations.append(f"{len(live)} SIMs live on {len(self.bank.modules)} modules")
        rotation = self.rotation
        for number, iccid in live.items():
            channel, _ = self.bank.where(iccid)
            state = rotation.runs[channel].state
            if state not in ("live", "waiting", "quarantined"):
                self.violations.append(f"{number} counted while its channel is {state}")
            if self.bank.live_iccid(channel) != iccid:
                self.violations.append(f"{number} counted but not in the module of {channel}")
            board_slot = self.bank.board.active[channel]
            card = self.bank.card(channel, board_slot)
            if card is None or card.iccid != iccid:
                self.violations.append(f"{number} counted but not in the active slot of {channel}")

    async def wait(self, predicate, timeout: float) -> None:
        await self.pool.wait_until(predicate, timeout)


@asynccontextmanager
async def running_bank(
    tmp: Path, bank: SimulatedSimBank, *, bank_options: dict[str, Any] | None = None, db=None
) -> AsyncIterator[BankRun]:
    market = FakeMarketplace()
    await market.start()
    options = {**FAST_BANK, **(bank_options or {})}
    simbank = {
        "port": bank.board_path,
        "slots": len(next(iter(bank.cards.values()))),
        "channels": bank.module_paths,
        **options,
    }
    config = farm_config([], market.url, db or tmp / "simfarm.db", {"simbanks": [simbank]})
    daemon = Daemon(config, driver_factory=quick_driver)
    try:
        await daemon.start()
        url = f"http://127.0.0.1:{daemon.port}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            run = BankRun(daemon, bank, market, client)
            daemon.pool.on_change(run.check_counts)
            yield run
    finally:
        await daemon.stop()
        await market.stop()


@asynccontextmanager
async def started_bank(bank: SimulatedSimBank) -> AsyncIterator[SimulatedSimBank]:
    await bank.start()
    try:
        yield bank
    finally:
        await bank.stop()
