"""The daemon: the store, the pool, the PUSH_SMS worker and the marketplace API in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from gateway import sd_notify
from gateway.admin import AdminApi, AdminServer, create_admin_app, health_report
from gateway.api import MarketplaceApi, create_app
from gateway.farm import DriverFactory, Farm, default_driver_factory
from gateway.http_server import BackgroundServer, ConnectionLimits
from gateway.metrics import Metrics, metrics_endpoint
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
        self.simbanks: Any = None  # gateway.simbank.service.Simbanks when [[simbanks]] exist
        self._server: BackgroundServer | None = None
        self._admin: AdminServer | None = None
        self.metrics = Metrics(self)
        self._tasks: list[asyncio.Task[Any]] = []
        self._push_task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        """The port the API listens on (the real one when the configuration says 0)."""
        assert self._server is not None
        return self._server.port

    @property
    def admin_port(self) -> int | None:
        """The port the admin endpoint listens on (None when it could not listen)."""
        return self._admin.port if self._admin is not None else None

    async def health(self) -> dict[str, Any]:
        return await health_report(self)

    def api_serving(self) -> bool:
        task = self._server._task if self._server is not None else None
        return task is not None and not task.done()

    def farm_running(self) -> bool:
        return any(t.get_name() == "farm" and not t.done() for t in self._tasks)

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
        self.pool.on_sms_stored(self.metrics.sms_stored)
        self._push_task = asyncio.create_task(self.push.run(), name="push-worker")
        api = MarketplaceApi(self.pool, market.key, health=self.health, metrics=self.metrics)
        scrape = Route("/metrics", metrics_endpoint(self.metrics), methods=["GET"])
        app = create_app(api, extra_routes=[scrape])
        limits = ConnectionLimits.of(config.server)
        self._server = BackgroundServer(app, config.server.host, config.server.port, limits)
        await self._server.start()
        log.info("event=api_listening host=%s port=%d", config.server.host, self.port)
        intake = SmsIntake(
            self.pool, multipart_timeout_seconds=config.farm.multipart_timeout_seconds
        )
        self.farm = Farm(config, self.pool, intake, driver_factory=self.driver_factory)
        self.farm.add_ports(port for bank in config.simbanks for port in bank.channels.values())
        if config.simbanks:
            from gateway.simbank.service import Simbanks

            self.simbanks = Simbanks(config.simbanks, self.store, self.pool, self.farm)
            await self.simbanks.start()  # holds every channel before its driver starts
        self._tasks.append(asyncio.create_task(intake.run(), name="multipart-flush"))
        self._tasks.append(asyncio.create_task(self.farm.run(), name="farm"))
        await self._start_admin()

    async def _start_admin(self) -> None:
        """The operator's listener; when it cannot listen, the marketplace side runs on."""
        admin = self.config.admin
        server = AdminServer(
            create_admin_app(AdminApi(self, self.metrics, self.health)), admin.host, admin.port
        )
        try:
            await server.start()
        except OSError as exc:
            await server.stop()
            log.error(
                "event=admin_unavailable host=%s port=%d error=%r detail=%s",
                admin.host,
                admin.port,
                str(exc),
                '"the operator commands (simfarm modems ...) will not answer; free the port or '
                'change [admin] port"',
            )
            return
        self._admin = server
        log.info("event=admin_listening host=%s port=%d", admin.host, server.port)

    async def stop(self) -> None:
        if self._admin is not None:
            await self._admin.stop()
        if self.simbanks is not None:
            await self.simbanks.stop()
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
