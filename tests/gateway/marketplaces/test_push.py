"""PUSH_SMS against a fake marketplace on loopback: retried until SUCCESS, never after."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.demo.fake_marketplace import FakeMarketplace, fail_first
from gateway.marketplaces.http_server import BackgroundServer
from gateway.marketplaces.push import PushSettings, PushWorker
from gateway.pool.pool import NumberRequest, Pool
from tests.gateway.helpers import KEY, open_pool, sim, sms

#: Generous bound for things that should happen promptly; the tests never wait it out.
EVENTUALLY_SECONDS = 20.0


class FakeClock:
    """Time that moves only when the test says so: retries are tested without waiting."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Rig:
    pool: Pool
    market: FakeMarketplace
    worker: PushWorker
    clock: FakeClock


@asynccontextmanager
async def rig(tmp_path, policy=None, *, market_up: bool = True) -> AsyncIterator[Rig]:
    market = FakeMarketplace(policy=policy) if policy else FakeMarketplace()
    await market.start()
    url, rent_url = market.url, market.rent_url
    if not market_up:
        await market.stop()
    clock = FakeClock()
    pool = await open_pool(tmp_path / "simfarm.db")
    pool.clock = clock
    settings = PushSettings(key=KEY, url=url, rent_url=rent_url, retry_seconds=10)
    try:
        async with httpx.AsyncClient() as client:
            worker = PushWorker(pool.store, settings, clock=clock, client=client)
            yield Rig(pool, market, worker, clock)
    finally:
        await market.stop()
        await pool.store.close()


async def leased_sms(r: Rig, text: str = "Your code 12345", service: str = "wa") -> int:
    await r.pool.sim_online(sim(1))
    await r.pool.get_number(NumberRequest("germany", "any", service, 10))
    stored = await r.pool.sms_received(sms(sim(1).iccid, text=text))
    return stored.id


async def test_pushed_once_with_integer_fields_and_headers(tmp_path) -> None:
    async with rig(tmp_path) as r:
        sms_id = await leased_sms(r, text="Код 12345 🙂")
        assert await r.worker.push_due() == 1
        assert await r.worker.push_due() == 0
        r.clock.now += 3600
        assert await r.worker.push_due() == 0
        [push] = r.market.received
        assert push.body == {
            "action": "PUSH_SMS",
            "key": KEY,
            "smsId": sms_id,
            "phone": int(sim(1).number),
            "phoneFrom": "VK",
            "text": "Код 12345 🙂",
        }
        assert push.path == "/v1/PUSH_SMS"
        assert push.headers["content-type"] == "application/json; charset=utf-8"
        assert push.headers["authorization"] == f"Bearer {KEY}"
        assert push.headers["user-agent"]


@pytest.mark.parametrize(
    "failure",
    [
        (500, {"status": "ERROR"}),
        (200, {"status": "ERROR"}),
        (429, {"status": "TOO_MANY_ATTEMPTS"}),
        (200, "not json at all"),
        (502, None),
    ],
)
async def test_retried_every_interval_until_success(tmp_path, failure) -> None:
    async with rig(tmp_path, fail_first(3, failure)) as r:
        sms_id = await leased_sms(r)
        for _ in range(3):
            assert await r.worker.push_due() == 1
            assert await r.worker.push_due() == 0  # not due again before the interval
            r.clock.now += 10
        assert await r.worker.push_due() == 1
        r.clock.now += 100
        assert await r.worker.push_due() == 0
        assert [p.attempt for p in r.market.received] == [1, 2, 3, 4]
        assert {p.body["smsId"] for p in r.market.received} == {sms_id}
        assert len(r.market.successes()) == 1
        assert await r.pool.store.push_counts() == {"pushed": 1}


@pytest.mark.parametrize("word", ["NO_OPERATION", "NO_OP", "BAD_SERVICE", "IGNORED", "SERVICE_BAN"])
async def test_final_refusals_stop_the_retries(tmp_path, word) -> None:
    async with rig(tmp_path, lambda body, attempt: (404, {"status": word})) as r:
        await leased_sms(r)
        assert await r.worker.push_due() == 1
        r.clock.now += 3600
        assert await r.worker.push_due() == 0
        assert len(r.market.received) == 1
        assert await r.pool.store.push_counts() == {"refused": 1}
        assert r.worker.counters.refused == 1


async def test_marketplace_down_is_retried(tmp_path) -> None:
    async with rig(tmp_path, market_up=False) as r:
        await leased_sms(r)
        assert await r.worker.push_due() == 1
        assert await r.pool.store.push_counts() == {"pending": 1}
        assert r.worker.counters.retried == 1


async def test_rent_goes_to_the_rent_url_with_service_rent(tmp_path) -> None:
    async with rig(tmp_path) as r:
        await leased_sms(r, service="rent")
        await r.worker.push_due()
        [push] = r.market.received
        assert push.path == "/v1/PUSH_SMS_RENT"
        assert push.body["service"] == "rent"


async def test_sms_without_open_activation_is_stored_not_pushed(tmp_path) -> None:
    async with rig(tmp_path) as r:
        await r.pool.sim_online(sim(2))
        stored = await r.pool.sms_received(sms(sim(2).iccid))
        assert stored.activation_id is None
        assert await r.worker.push_due() == 0
        assert [row.id for row in await r.pool.store.recent_sms(10)] == [stored.id]


async def test_duplicate_sms_is_pushed_once(tmp_path) -> None:
    async with rig(tmp_path) as r:
        await r.pool.sim_online(sim(1))
        await r.pool.get_number(NumberRequest("germany", "any", "wa", 10))
        first = sms(sim(1).iccid)
        a = await r.pool.sms_received(first)
        b = await r.pool.sms_received(first)
        assert (a.id, a.duplicate, b.id, b.duplicate) == (a.id, False, a.id, True)
        await r.worker.push_due()
        assert len(r.market.received) == 1


async def test_pending_push_survives_a_restart_with_the_same_sms_id(tmp_path) -> None:
    async with rig(tmp_path, market_up=False) as r:
        sms_id = await leased_sms(r)
        await r.worker.push_due()
    async with rig(tmp_path) as r:
        r.clock.now += 60
        assert await r.worker.push_due() == 1
        [push] = r.market.received
        assert push.body["smsId"] == sms_id


async def test_running_worker_pushes_when_woken(tmp_path) -> None:
    async with rig(tmp_path) as r:
        r.pool.on_push_queued(r.worker.wake)
        task = asyncio.create_task(r.worker.run())
        try:
            await leased_sms(r)
            await r.market.wait_for(lambda received: len(received) == 1, EVENTUALLY_SECONDS)
        finally:
            await r.worker.stop(task)
        assert task.done() and not task.cancelled()
        assert await r.pool.store.push_counts() == {"pushed": 1}


class RawMarketplace:
    """A PUSH_SMS endpoint answering one fixed reply byte for byte: any status, type and body."""

    def __init__(self, status: int, content_type: str, body: bytes) -> None:
        self.reply = Response(body, status_code=status, media_type=content_type)
        self.received = 0
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self.server = BackgroundServer(app, "127.0.0.1", 0)

    async def _handle(self, request: Request) -> Response:
        await request.body()
        self.received += 1
        return self.reply

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/v1/PUSH_SMS"


@asynccontextmanager
async def answering(
    tmp_path, status: int, content_type: str, body: bytes
) -> AsyncIterator[tuple[Rig, RawMarketplace]]:
    """A rig whose worker pushes to a marketplace that always gives this one reply."""
    market = RawMarketplace(status, content_type, body)
    await market.server.start()
    try:
        async with rig(tmp_path) as r, httpx.AsyncClient() as client:
            settings = PushSettings(key=KEY, url=market.url, rent_url=market.url)
            r.worker = PushWorker(r.pool.store, settings, clock=r.clock, client=client)
            yield r, market
    finally:
        await market.server.stop()


JSON = "application/json; charset=utf-8"
TEXT = "text/plain; charset=utf-8"

NOT_DELIVERED = [
    ("success under error", 200, JSON, b'{"error":"SUCCESS"}'),
    ("success under response", 200, JSON, b'{"response":"SUCCESS"}'),
    ("json without status", 200, JSON, b'{"result":"ok"}'),
    ("empty json object", 200, JSON, b"{}"),
    ("status not a string", 200, JSON, b'{"status":1}'),
    ("json string", 200, JSON, b'"SUCCESS"'),
    ("plain text", 200, TEXT, b"SUCCESS"),
    ("empty body", 200, TEXT, b""),
    ("success with another code", 201, JSON, b'{"status":"SUCCESS"}'),
    ("error status", 200, JSON, b'{"status":"ERROR","error":"SUCCESS"}'),
    ("nested too deeply", 200, JSON, b"[" * 100_000 + b"]" * 100_000),
    ("integer too long", 200, JSON, b'{"status":"SUCCESS","n":' + b"9" * 5000 + b"}"),
    ("not utf-8", 200, JSON, b'{"status":"SUCCESS\xff"}'),
]


@pytest.mark.parametrize(
    ("label", "status", "content_type", "body"), NOT_DELIVERED, ids=[c[0] for c in NOT_DELIVERED]
)
async def test_only_200_with_status_success_counts_as_delivered(
    tmp_path, label, status, content_type, body
) -> None:
    async with answering(tmp_path, status, content_type, body) as (r, market):
        await leased_sms(r)
        assert await r.worker.push_due() == 1
        assert await r.pool.store.push_counts() == {"pending": 1}
        assert r.worker.counters.retried == 1
        r.clock.now += r.worker.settings.retry_seconds
        assert await r.worker.push_due() == 1  # sent again after the interval
        assert market.received == 2


@pytest.mark.parametrize(
    ("status", "content_type", "body"),
    [
        (404, JSON, b'{"status":"ERROR","error":"NO_OPERATION"}'),
        (404, JSON, b'{"response":"NO_OP"}'),
        (404, TEXT, b"NO_OPERATION"),
        (200, JSON, b'{"status":"BAD_SERVICE"}'),
    ],
)
async def test_refusals_are_final_in_every_shape(tmp_path, status, content_type, body) -> None:
    async with answering(tmp_path, status, content_type, body) as (r, market):
        await leased_sms(r)
        assert await r.worker.push_due() == 1
        r.clock.now += 3600
        assert await r.worker.push_due() == 0
        assert await r.pool.store.push_counts() == {"refused": 1}
        assert market.received == 1


async def test_status_success_in_lower_case_counts_as_delivered(tmp_path) -> None:
    async with answering(tmp_path, 200, JSON, b'{"status":"success"}') as (r, market):
        await leased_sms(r)
        assert await r.worker.push_due() == 1
        assert await r.pool.store.push_counts() == {"pushed": 1}
        r.clock.now += 3600
        assert await r.worker.push_due() == 0
        assert market.received == 1
