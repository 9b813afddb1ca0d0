"""A small stand-in for the marketplace's PUSH_SMS endpoint, for tests and `simfarm demo`.

It records every push it receives and answers by a policy the caller sets: success, a failure
for the first N attempts, 429, a final refusal, or being down.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.marketplaces.http_server import BackgroundServer

#: The reply a policy gives: HTTP status and JSON body.
Reply = tuple[int, Any]
#: A policy sees the push body and how many times this smsId has arrived (1 for the first).
Policy = Callable[[dict[str, Any], int], Reply]


def always_succeed(body: dict[str, Any], attempt: int) -> Reply:
    return 200, {"status": "SUCCESS"}


def fail_first(failures: int, reply: Reply = (500, {"status": "ERROR"})) -> Policy:
    """Answer `reply` to the first `failures` attempts of each SMS, then SUCCESS."""

    def policy(body: dict[str, Any], attempt: int) -> Reply:
        return reply if attempt <= failures else (200, {"status": "SUCCESS"})

    return policy


@dataclass
class ReceivedPush:
    body: dict[str, Any]
    headers: dict[str, str]
    path: str
    attempt: int
    reply: Reply


@dataclass
class FakeMarketplace:
    """Records PUSH_SMS requests; `received` holds every one, in arrival order."""

    policy: Policy = always_succeed
    on_push: Callable[[ReceivedPush], None] | None = None
    received: list[ReceivedPush] = field(default_factory=list)
    _attempts: dict[Any, int] = field(default_factory=dict)
    _server: BackgroundServer | None = None
    _arrived: asyncio.Condition | None = None

    @property
    def url(self) -> str:
        return f"{self.base_url}/v1/PUSH_SMS"

    @property
    def rent_url(self) -> str:
        return f"{self.base_url}/v1/PUSH_SMS_RENT"

    @property
    def base_url(self) -> str:
        assert self._server is not None
        return f"http://{self._server.host}:{self._server.port}"

    def successes(self) -> list[ReceivedPush]:
        """Pushes answered SUCCESS (what the marketplace has accepted)."""
        return [
            p for p in self.received if p.reply[0] == 200 and p.reply[1] == {"status": "SUCCESS"}
        ]

    async def _handle(self, request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except ValueError:
            return JSONResponse({"status": "ERROR", "error": "not JSON"}, 400)
        if not isinstance(body, dict):
            return JSONResponse({"status": "ERROR", "error": "not an object"}, 400)
        sms_id = body.get("smsId")
        attempt = self._attempts.get(sms_id, 0) + 1
        self._attempts[sms_id] = attempt
        reply = self.policy(body, attempt)
        push = ReceivedPush(body, dict(request.headers), request.url.path, attempt, reply)
        self.received.append(push)
        if self.on_push is not None:
            self.on_push(push)
        assert self._arrived is not None
        async with self._arrived:
            self._arrived.notify_all()
        return JSONResponse(reply[1], reply[0])

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["POST"])])
        self._arrived = asyncio.Condition()
        self._server = BackgroundServer(app, host, port)
        await self._server.start()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
        self._server = None

    async def wait_for(
        self, predicate: Callable[[list[ReceivedPush]], bool], timeout: float
    ) -> None:
        """Wait until `predicate(received)` holds; TimeoutError after `timeout` seconds."""
        assert self._arrived is not None

        async def waiting() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: predicate(self.received))

        await asyncio.wait_for(waiting(), timeout)
