"""The daemon: the store, the pool, the PUSH_SMS worker and the marketplace API in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

import uvicorn

from gateway.api import MarketplaceApi, create_app
from gateway.pool import Pool, PoolRules
from gateway.push import PushSettings, PushWorker
from gateway.store import Store

if TYPE_CHECKING:
    from gateway.config import Config

log = logging.getLogger(__name__)

#: How long in-flight HTTP requests may take to finish on shutdown.
SHUTDOWN_GRACE_SECONDS = 5.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def pool_rules(config: Config) -> PoolRules:
    offer = config.offer
    return PoolRules(
        services=tuple(offer.services),
        rent=offer.rent,
        max_issues_per_service=offer.max_issues_per_service,
        min_sum=dict(offer.min_sum),
    )


class Daemon:
    """One running simfarm: start() brings everything up, stop() takes it down in order."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: Store | None = None
        self.pool: Pool | None = None
        self.push: PushWorker | None = None
        self._server: _Server | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def port(self) -> int:
        """The port the API listens on (the real one when the configuration says 0)."""
        assert self._server is not None and self._server.servers
        return self._server.servers[0].sockets[0].getsockname()[1]

    async def start(self) -> None:
        config = self.config
        self.store = await Store.open(config.storage.path)
        self.pool = Pool(self.store, pool_rules(config))
        await self.pool.load()
        market = config.marketplace
        self.push = PushWorker(
            self.store,
            PushSettings(
                key=market.key,
                url=market.push_url,
                rent_url=market.rent_url,
                retry_seconds=market.push_retry_seconds,
                timeout_seconds=market.push_timeout_seconds,
            ),
        )
        self.pool.on_push_queued(self.push.wake)
        self._tasks.append(asyncio.create_task(self.push.run(), name="push-worker"))
        api = MarketplaceApi(self.pool, market.key)
        server_config = uvicorn.Config(
            create_app(api),
            host=config.server.host,
            port=config.server.port,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        self._server = _Server(server_config)
        serving = asyncio.create_task(self._server.serve(), name="api-server")
        self._tasks.append(serving)
        while not self._server.started:
            if serving.done():
                serving.result()  # raises the reason it could not start
                raise RuntimeError(
                    f"the API could not listen on {config.server.host}:{config.server.port}"
                )
            await asyncio.sleep(0.01)
        log.info("event=api_listening host=%s port=%d", config.server.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        for task in reversed(self._tasks):
            if task.get_name() != "api-server":
                task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self.store is not None:
            await self.store.close()
        log.info("event=daemon_stopped")


async def run_daemon(config: Config) -> int:
    """Run until SIGINT or SIGTERM; returns the process exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    daemon = Daemon(config)
    try:
        await daemon.start()
        await stop.wait()
        log.info("event=stopping reason=signal")
    finally:
        await daemon.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
