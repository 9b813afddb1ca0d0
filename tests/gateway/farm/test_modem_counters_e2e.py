"""What the operator sees of a modem's history: the last SMS time, command timeouts and
recoveries, through the admin endpoint of a daemon driving a simulated modem on a real pty."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from drivers.events import ModemState, ModemStatus
from tests.gateway.farm_harness import (
    EVENTUALLY_SECONDS,
    Running,
    mixed_farm,
    running_daemon,
    started,
)


class StatusWatch:
    """Waits on what the farm hears from its drivers (no polling of the endpoint)."""

    def __init__(self, farm: Running, port: str) -> None:
        assert farm.daemon.farm is not None
        self.farm = farm.daemon.farm
        self.port = port
        self.changed = asyncio.Event()
        self.farm.on_status(lambda path, status: self.changed.set())

    def current(self) -> ModemStatus | None:
        return next((s for s in self.farm.statuses() if s.port == self.port), None)

    async def until(self, predicate: Callable[[ModemStatus], bool]) -> ModemStatus:
        async with asyncio.timeout(EVENTUALLY_SECONDS):
            while True:
                self.changed.clear()
                status = self.current()
                if status is not None and predicate(status):
                    return status
                await self.changed.wait()


async def admin_row(farm: Running, port: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{farm.daemon.admin_port}") as admin:
        reply = await admin.get("/modems")
    assert reply.status_code == 200
    return next(row for row in reply.json()["modems"] if row["port"] == port)


async def scrape(farm: Running) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{farm.daemon.admin_port}") as admin:
        reply = await admin.get("/metrics")
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(reply.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


async def test_last_sms_timeouts_and_recoveries_reach_the_admin_endpoint(tmp_path: Path) -> None:
    sims = mixed_farm(1)
    [modem] = list(sims)
    async with started(sims), running_daemon(tmp_path / "simfarm.db", sims) as farm:
        await farm.wait_live({modem.sim.number})
        watch = StatusWatch(farm, modem.path)
        row = await admin_row(farm, modem.path)
        assert (row["last_sms_at"], row["timeouts"], row["recoveries"]) == (None, 0, {})

        modem.deliver_sms("+4917612345678", "Code 1234")
        await watch.until(lambda s: s.last_sms_at is not None)
        row = await admin_row(farm, modem.path)
        assert row["last_sms_at"] is not None and row["last_sms_age_seconds"] is not None

        modem.hang(answer_reset=True)  # only AT+CFUN=1,1 still works: the ladder reboots it
        await watch.until(lambda s: s.state is ModemState.RECOVERING)
        await watch.until(lambda s: s.state is ModemState.READY and bool(s.recoveries))
        row = await admin_row(farm, modem.path)
        assert row["timeouts"] >= 1
        assert sum(row["recoveries"].values()) == 1
        metrics = await scrape(farm)
        port = (("port", modem.path),)
        assert metrics["simfarm_modem_command_timeouts_total"][port] == row["timeouts"]
        [(labels, count)] = metrics["simfarm_modem_recoveries_total"].items()
        assert count == 1 and dict(labels)["rung"] in row["recoveries"]
