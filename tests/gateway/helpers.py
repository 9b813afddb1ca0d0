"""Building blocks for gateway tests: a pool on a real SQLite file, served over real HTTP."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from gateway.marketplaces.api import MarketplaceApi, create_app
from gateway.marketplaces.http_server import BackgroundServer
from gateway.pool.pool import OnlineSim, Pool, PoolRules
from gateway.pool.records import IncomingSms
from gateway.pool.sqlite import Store

KEY = "test-partner-key"
RULES = PoolRules(
    services=("vk", "wa", "tg"), rent=True, max_issues_per_service=4, min_sum={"vk": 5.0}
)

_fingerprints = itertools.count(1)


def sim(
    n: int, *, country: str = "germany", operator: str = "vodafone", prefix: str = "49151"
) -> OnlineSim:
    """The n-th test SIM: a stable ICCID and a number under `prefix`."""
    return OnlineSim(
        iccid=f"894902{n:013d}",
        number=f"{prefix}{n:07d}",
        country=country,
        operator=operator,
        signal=10 + n % 20,
    )


def sms(iccid: str, text: str = "Your code 12345", sender: str = "VK") -> IncomingSms:
    return IncomingSms(
        iccid=iccid,
        fingerprint=f"fp-{next(_fingerprints)}",
        sender=sender,
        text=text,
        pdus=("00",),
        received_at=time.time(),
    )


async def open_pool(path: Path, rules: PoolRules = RULES) -> Pool:
    store = await Store.open(path)
    pool = Pool(store, rules)
    await pool.load()
    return pool


@dataclass
class Served:
    pool: Pool
    client: httpx.AsyncClient
    url: str

    async def post(self, payload: object, path: str = "/", **kwargs) -> httpx.Response:
        return await self.client.post(path, json=payload, **kwargs)

    async def action(self, action: str, **fields) -> httpx.Response:
        return await self.post({"action": action, "key": KEY, **fields})


@asynccontextmanager
async def served_pool(path: Path, rules: PoolRules = RULES) -> AsyncIterator[Served]:
    """A pool behind the real marketplace app on a loopback port, and a client for it."""
    pool = await open_pool(path, rules)
    server = BackgroundServer(create_app(MarketplaceApi(pool, KEY)), "127.0.0.1", 0)
    await server.start()
    url = f"http://127.0.0.1:{server.port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            yield Served(pool, client, url)
    finally:
        await server.stop()
        await pool.store.close()
