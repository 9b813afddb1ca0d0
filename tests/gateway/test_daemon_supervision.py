"""A daemon's background task that stops is logged, counted, started again and shown in /health."""

from __future__ import annotations

import asyncio
import logging
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from gateway.daemon import API_TASK, Daemon
from gateway.demo.fake_marketplace import FakeMarketplace
from gateway.farm.supervisor import SupervisorTimings
from tests.gateway.farm_harness import (
    EVENTUALLY_SECONDS,
    KEY,
    farm_config,
    mixed_farm,
    quick_driver,
    started,
)

#: Restarts come quickly; a restarted task stays "failing" for the whole test.
TIMINGS = SupervisorTimings(
    backoff_min_seconds=0.05,
    backoff_max_seconds=0.1,
    stable_run_seconds=EVENTUALLY_SECONDS * 2,
    vital_recovery_seconds=EVENTUALLY_SECONDS * 4,
)


def restarts(metrics_text: str) -> dict[str, float]:
    for family in text_string_to_metric_families(metrics_text):
        if family.name == "simfarm_task_restarts":
            return {s.labels["task"]: s.value for s in family.samples if s.name.endswith("_total")}
    return {}


async def test_the_api_server_ending_is_restarted_counted_and_shown(tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    sims = mixed_farm(1)
    market = FakeMarketplace()
    await market.start()
    async with started(sims):
        config = farm_config([m.path for m in sims], market.url, tmp_path / "simfarm.db")
        daemon = Daemon(config, driver_factory=quick_driver, supervisor_timings=TIMINGS)
        await daemon.start()
        try:
            admin = httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.admin_port}")
            first_port = daemon.port
            # uvicorn ends its serving loop, as it does after a fatal error of its own.
            assert daemon._server is not None
            daemon._server._server.should_exit = True
            deadline = time.monotonic() + EVENTUALLY_SECONDS
            while daemon.supervisor.restarts().get(API_TASK, 0) < 1 or not daemon.api_serving():
                assert time.monotonic() < deadline, "the API was not started again"
                await asyncio.sleep(0.02)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.port}") as api:
                reply = await api.post("/", json={"action": "GET_SERVICES", "key": KEY})
            assert reply.status_code == 200 and reply.json()["status"] == "SUCCESS"
            assert first_port > 0
            answer = await admin.get("/health")
            health = answer.json()
            assert (answer.status_code, health["status"]) == (200, "degraded")
            failing = health["tasks"]["failing"]
            assert [t["task"] for t in failing] == [API_TASK]
            assert failing[0]["vital"] and failing[0]["up"] and failing[0]["restarts"] == 1
            assert any(p.startswith("task api: restarted") for p in health["problems"])
            scraped = (await admin.get("/metrics")).text
            assert restarts(scraped)[API_TASK] == 1.0
            await admin.aclose()
        finally:
            await asyncio.wait_for(daemon.stop(), EVENTUALLY_SECONDS)
    await market.stop()
    failed = [r for r in caplog.records if "event=task_failed" in r.getMessage()]
    assert len(failed) == 1 and "task=api" in failed[0].getMessage()
    assert failed[0].levelno == logging.ERROR
    assert daemon.store is not None and daemon.store._writer._thread is None  # closed
