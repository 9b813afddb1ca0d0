"""The daemon: the store, the pool, the PUSH_SMS worker and the marketplace API in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING, Any

from gateway import sd_notify
from gateway.api import MarketplaceApi, create_app
from gateway.farm import DriverFactory, Farm, default_driver_factory
from gateway.http_server import BackgroundServer
from gateway.pool import Pool, PoolRules
from gateway.push import PushSettings, PushWorker
from gateway.sms_intake import SmsIntake
from gateway.store import Store

if TYPE_CHECKING:
    from gateway.config import Config

log = logging.getLogger(__name__)


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

    def __init__(
        self, config: Config, *, driver_factory: DriverFactory = default_driver_factory
    ) -> None:
        self.config = config
        self.driver_factory = driver_factory
        self.store: Store | None = None
        self.pool: Pool | None = None
        self.push: PushWorker | None = None
        self.farm: Farm | None = None
        self._server: BackgroundServer | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._push_task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port the API listens on (the real one when the configuration says 0)."""
        assert self._server is not None
        return self._server.port

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
        self._push_task = asyncio.create_task(self.push.run(), name="push-worker")
        api = MarketplaceApi(self.pool, market.key)
        self._server = BackgroundServer(create_app(api), config.server.host, config.server.port)
        await self._server.start()
        log.info("event=api_listening host=%s port=%d", config.server.host, self.port)
        intake = SmsIntake(
            self.pool, multipart_timeout_seconds=config.farm.multipart_timeout_seconds
        )
        self.farm = Farm(config, self.pool, intake, driver_factory=self.driver_factory)
        self.farm.add_ports(port for bank in config.simbanks for port in bank.channels.values())
        self._tasks.append(asyncio.create_task(intake.run(), name="multipart-flush"))
        self._tasks.append(asyncio.create_task(self.farm.run(), name="farm"))

    async def stop(self) -> None:
        if self.farm is not None:
            await self.farm.stop()
        if self._server is not None:
            await self._server.stop()
        if self.push is not None and self._push_task is not None:
            await self.push.stop(self._push_task)
        for task in self._tasks:
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
    watchdog: asyncio.Task[None] | None = None
    try:
        await daemon.start()
        # Pinged from this loop: if the loop blocks, the pings stop and systemd restarts us.
        watchdog = sd_notify.start_watchdog()
        sd_notify.notify("READY=1", f"STATUS=serving on port {daemon.port}")
        await stop.wait()
        log.info("event=stopping reason=signal")
        sd_notify.notify("STOPPING=1")
    finally:
        if watchdog is not None:
            watchdog.cancel()
        await daemon.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
