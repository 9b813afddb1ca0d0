"""Invariant 1 under load: many GET_NUMBER at once never hand one number out twice.

First straight against the pool (1,000 coroutines, 10 live SIMs), then over real HTTP on
loopback through the whole daemon, and the marketplace's own acceptance test: 30 identical
GET_NUMBER in parallel.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.config import config_from_dict
from gateway.daemon import Daemon
from gateway.pool.pool import NoNumbers, NumberRequest, Pool
from tests.gateway.helpers import KEY, RULES, open_pool, sim

#: Requests in flight at once over HTTP.
HTTP_CONCURRENCY = 100
#: Bound on every wait in this module.
WAIT_SECONDS = 60.0

WA = NumberRequest(country="germany", operator="any", service="wa", sum=10.0)


def open_numbers_on_disk(db: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT id, number FROM activations WHERE finished_at IS NULL")
        return sorted(rows.fetchall())
    finally:
        conn.close()


@pytest.fixture
async def pool(tmp_path: Path) -> AsyncIterator[Pool]:
    pool = await open_pool(tmp_path / "simfarm.db")
    try:
        yield pool
    finally:
        await pool.store.close()


async def test_thousand_concurrent_get_number_on_ten_sims(pool: Pool, tmp_path: Path) -> None:
    for n in range(10):
        assert await pool.sim_online(sim(n))

    async def one() -> str | None:
        try:
            return (await pool.get_number(WA)).number
        except NoNumbers:
            return None

    async with asyncio.timeout(WAIT_SECONDS):
        results = await asyncio.gather(*(one() for _ in range(1000)))

    issued = [number for number in results if number is not None]
    assert len(issued) == 10
    assert sorted(issued) == sorted(sim(n).number for n in range(10))
    assert results.count(None) == 990
    assert sorted(a.number for a in pool.open_activations()) == sorted(issued)
    assert sorted(n for _, n in open_numbers_on_disk(tmp_path / "simfarm.db")) == sorted(issued)
    assert all(count == 0 for count in pool.service_counts()["germany"]["vodafone"].values())


async def test_concurrent_churn_never_shares_a_number(pool: Pool, tmp_path: Path) -> None:
    """Workers lease, finish and lease again all at once; no number is ever held twice."""
    for n in range(10):
        assert await pool.sim_online(sim(n))
    holders: dict[str, int] = {}
    leased = Counter[str]()
    rng = random.Random(7)
    statuses = [rng.choice([2, 4, 5]) for _ in range(2000)]
    requests = [
        NumberRequest("germany", "any", rng.choice(["wa", "tg", "rent"]), 10.0) for _ in range(2000)
    ]

    async def worker(first: int) -> None:
        for step in range(first, 2000, 50):
            try:
                issued = await pool.get_number(requests[step])
            except NoNumbers:
                continue
            # The lease is durable now; nobody else may hold this number until we finish it.
            assert issued.number not in holders, f"{issued.number} is leased twice"
            holders[issued.number] = issued.activation_id
            leased[issued.number] += 1
            await asyncio.sleep(0)  # let everybody else try to take it meanwhile
            del holders[issued.number]
            await pool.finish(issued.activation_id, statuses[step], None)

    async with asyncio.timeout(WAIT_SECONDS):
        await asyncio.gather(*(worker(first) for first in range(50)))

    assert sum(leased.values()) > 10  # numbers were reused after their finish
    assert pool.open_activations() == []
    assert open_numbers_on_disk(tmp_path / "simfarm.db") == []


# --- over HTTP, through the daemon ----------------------------------------------------------


def daemon_config(db: Path) -> Any:
    return config_from_dict(
        {
            "server": {"host": "127.0.0.1", "port": 0},
            "admin": {"host": "127.0.0.1", "port": 0},  # a taken admin port stops the start
            # Nothing listens on the discard port: pushes stay queued, which is all we need.
            "marketplace": {"key": KEY, "push_url": "http://127.0.0.1:9/PUSH_SMS"},
            "storage": {"path": str(db)},
            "offer": {
                "services": list(RULES.services),
                "rent": RULES.rent,
                "max_issues_per_service": RULES.max_issues_per_service,
                "min_sum": dict(RULES.min_sum),
            },
        },
        environ={},
    )


@pytest.fixture
async def daemon(tmp_path: Path) -> AsyncIterator[Daemon]:
    daemon = Daemon(daemon_config(tmp_path / "simfarm.db"))
    await daemon.start()
    try:
        yield daemon
    finally:
        await daemon.stop()


async def get_numbers_over_http(
    daemon: Daemon, count: int, concurrency: int, body: dict[str, Any]
) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(concurrency)
    url = f"http://127.0.0.1:{daemon.port}"
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=WAIT_SECONDS, limits=limits) as client:

        async def one() -> dict[str, Any]:
            async with limit:
                reply = await client.post("/", json={"action": "GET_NUMBER", "key": KEY, **body})
            assert reply.status_code == 200, reply.text
            return reply.json()

        async with asyncio.timeout(WAIT_SECONDS):
            return await asyncio.gather(*(one() for _ in range(count)))


def split_replies(replies: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    successes = [r for r in replies if r["status"] == "SUCCESS"]
    no_numbers = [r for r in replies if r == {"status": "NO_NUMBERS"}]
    assert len(successes) + len(no_numbers) == len(replies), "unexpected replies"
    for reply in successes:
        assert type(reply["number"]) is int and type(reply["activationId"]) is int
    return successes, len(no_numbers)


WA_BODY = {"country": "germany", "operator": "any", "service": "wa", "sum": 10}


async def test_thousand_get_number_over_http(daemon: Daemon, tmp_path: Path) -> None:
    assert daemon.pool is not None
    for n in range(10):
        assert await daemon.pool.sim_online(sim(n))

    replies = await get_numbers_over_http(daemon, 1000, HTTP_CONCURRENCY, WA_BODY)

    successes, no_numbers = split_replies(replies)
    assert len(successes) == 10
    assert no_numbers == 990
    numbers = [r["number"] for r in successes]
    assert sorted(numbers) == sorted(int(sim(n).number) for n in range(10))
    ids = [r["activationId"] for r in successes]
    assert len(set(ids)) == 10
    on_disk = open_numbers_on_disk(tmp_path / "simfarm.db")
    assert on_disk == sorted((i, str(n)) for i, n in zip(ids, numbers, strict=True))


@pytest.mark.parametrize("live", [40, 20])
async def test_thirty_parallel_identical_get_number_never_share(
    daemon: Daemon, tmp_path: Path, live: int
) -> None:
    """The marketplace's acceptance test: 30 identical GET_NUMBER at once."""
    assert daemon.pool is not None
    for n in range(live):
        assert await daemon.pool.sim_online(sim(n))

    replies = await get_numbers_over_http(daemon, 30, 30, WA_BODY)

    successes, no_numbers = split_replies(replies)
    numbers = [r["number"] for r in successes]
    assert len(set(numbers)) == len(numbers) == min(30, live)
    assert no_numbers == 30 - min(30, live)
    assert len(open_numbers_on_disk(tmp_path / "simfarm.db")) == len(numbers)


async def test_repeated_get_services_with_gzip(daemon: Daemon) -> None:
    """The marketplace polls GET_SERVICES, compressed, while nothing changes in the pool."""
    assert daemon.pool is not None
    for n in range(3):
        assert await daemon.pool.sim_online(sim(n))
    url = f"http://127.0.0.1:{daemon.port}"
    body = {"action": "GET_SERVICES", "key": KEY}
    async with httpx.AsyncClient(base_url=url, timeout=WAIT_SECONDS) as client:
        for encoding in ["gzip", "gzip", "identity", "gzip", "identity", "identity"]:
            reply = await client.post("/", json=body, headers={"Accept-Encoding": encoding})
            assert reply.status_code == 200
            assert reply.json()["countryList"][0]["operatorMap"]["any"]["wa"] == 3
