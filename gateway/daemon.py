"""The daemon: the store, the pool, the PUSH_SMS worker and the marketplace API in one process."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.routing import Route

from gateway.farm.farm import DriverFactory, Farm, default_driver_factory
from gateway.farm.sms_intake import SmsIntake
from gateway.farm.supervisor import Supervisor, SupervisorTimings, TaskTrouble
from gateway.marketplaces.api import MarketplaceApi, create_app
from gateway.marketplaces.http_server import BackgroundServer, ConnectionLimits
from gateway.marketplaces.push import PushSettings, PushWorker
from gateway.ops import sd_notify
from gateway.ops.admin import (
    AdminApi,
    AdminAppSlot,
    AdminServer,
    HealthSource,
    StartingAdminApi,
    admin_listen_error,
    create_admin_app,
    health_report,
)
from gateway.ops.admin_identity import DaemonIdentity
from gateway.ops.metrics import Metrics, StateCollector, metrics_endpoint
from gateway.pool.pool import Pool, PoolRules
from gateway.pool.sqlite import Store

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.farm.simbank.service import Simbanks

log = logging.getLogger(__name__)

#: The names of the supervised tasks (in logs, /health and simfarm_task_restarts_total).
API_TASK = "api"
PUSH_TASK = "push-worker"
FARM_TASK = "farm"
MULTIPART_TASK = "multipart-flush"
ADMIN_TASK = "admin"
WATCHDOG_TASK = "watchdog"


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
        self,
        config: Config,
        *,
        driver_factory: DriverFactory = default_driver_factory,
        supervisor_timings: SupervisorTimings | None = None,
    ) -> None:
        self.config = config
        self.driver_factory = driver_factory
        # The parts, each set as start() builds it (None: not built), so stop() ends those
        # that exist; the parts themselves get what they read by their constructors.
        self.store: Store | None = None
        self.pool: Pool | None = None
        self.push: PushWorker | None = None
        self.farm: Farm | None = None
        self.simbanks: Simbanks | None = None  # when [[simbanks]] exist
        self._server: BackgroundServer | None = None
        self._admin: AdminServer | None = None
        self._identity = DaemonIdentity.of_this_process(config.source)
        self._admin_app: AdminAppSlot | None = None
        self.metrics = Metrics()
        self.supervisor = Supervisor(
            on_restart=self.metrics.task_restarted,
            timings=supervisor_timings or SupervisorTimings(),
        )

    @property
    def port(self) -> int:
        """The port the API listens on (the real one when the configuration says 0)."""
        assert self._server is not None
        return self._server.port

    @property
    def admin_port(self) -> int | None:
        """The port the admin endpoint listens on (None before start)."""
        return self._admin.port if self._admin is not None else None

    async def health(self) -> dict[str, Any]:
        return await health_report(
            HealthSource(
                store=self.store,
                pool=self.pool,
                farm=self.farm,
                api_serving=self.api_serving,
                farm_running=self.farm_running,
                task_troubles=self.task_troubles,
            )
        )

    def api_serving(self) -> bool:
        return self._server is not None and self._server.serving

    def farm_running(self) -> bool:
        return self.supervisor.is_up(FARM_TASK)

    def status_line(self) -> str:
        """What systemd shows for the service: where it serves, and an empty farm."""
        line = f"serving on port {self.port}"
        patterns = self.farm.port_patterns if self.farm is not None else {}
        if patterns and not any(patterns.values()):
            line += "; no modem port matches " + ", ".join(patterns)
        return line

    def task_troubles(self) -> list[TaskTrouble]:
        return self.supervisor.troubles()

    async def start(self) -> None:
        config = self.config
        await self._start_admin()  # first: a port it cannot have stops us before anything changed
        store = self.store = await Store.open(config.storage.path)
        pool = self.pool = Pool(store, pool_rules(config))
        await pool.load()
        market = config.marketplace
        push = self.push = PushWorker(
            store,
            PushSettings(
                key=market.key,
                url=market.push_url,
                rent_url=market.rent_url,
                retry_seconds=market.push_retry_seconds,
                timeout_seconds=market.push_timeout_seconds,
            ),
        )
        pool.on_push_queued(push.wake)
        pool.on_sms_stored(self.metrics.sms_stored)
        self.supervisor.start(PUSH_TASK, push.run, vital=True)
        api = MarketplaceApi(pool, market.key, health=self.health, metrics=self.metrics)
        scrape = Route("/metrics", metrics_endpoint(self.metrics), methods=["GET"])
        app = create_app(api, extra_routes=[scrape])
        limits = ConnectionLimits.of(config.server)
        self._server = BackgroundServer(app, config.server.host, config.server.port, limits)
        await self._server.start()
        log.info("event=api_listening host=%s port=%d", config.server.host, self.port)
        self.supervisor.start(API_TASK, self._server.serve, vital=True)
        intake = SmsIntake(pool, multipart_timeout_seconds=config.farm.multipart_timeout_seconds)
        farm = self.farm = Farm(config, pool, intake, driver_factory=self.driver_factory)
        farm.add_ports(port for bank in config.simbanks for port in bank.channels.values())
        simbanks: Simbanks | None = None
        if config.simbanks:
            from gateway.farm.simbank.service import Simbanks

            simbanks = self.simbanks = Simbanks(config.simbanks, store, pool, farm)
        self._show_parts(store, pool, push, farm, simbanks)
        if simbanks is not None:
            # Holds every channel before its driver starts.
            await simbanks.start(lambda name, run: self.supervisor.start(name, run, vital=False))
        self.supervisor.start(MULTIPART_TASK, intake.run, vital=False)
        self.supervisor.start(FARM_TASK, farm.run, vital=True)

    def _show_parts(
        self, store: Store, pool: Pool, push: PushWorker, farm: Farm, simbanks: Simbanks | None
    ) -> None:
        """Give the gauges and the operator's routes the parts they read, now that all exist."""
        self.metrics.watch(
            StateCollector(
                pool=pool,
                farm=farm,
                push=push,
                outbox=store,
                simbanks=simbanks,
                clock=self.metrics.clock,
            )
        )
        admin = AdminApi(
            pool=pool,
            farm=farm,
            store=store,
            simbanks=simbanks,
            metrics=self.metrics,
            health=self.health,
            identity=self._identity,
        )
        if self._admin_app is not None:
            self._admin_app.app = create_admin_app(admin)

    async def _start_admin(self) -> None:
        """The operator's listener. One that cannot listen is an AdminListenError: running on
        would leave `simfarm modems` and `release` talking to whatever holds the port."""
        admin = self.config.admin
        starting = StartingAdminApi(self.metrics, self.health, identity=self._identity)
        self._admin_app = AdminAppSlot(create_admin_app(starting))
        server = AdminServer(self._admin_app, admin.host, admin.port)
        try:
            await server.start()
        except OSError as exc:
            await server.stop()
            raise admin_listen_error(admin.host, admin.port, self.config.source, exc) from None
        self._admin = server
        log.info("event=admin_listening host=%s port=%d", admin.host, server.port)
        self.supervisor.start(ADMIN_TASK, server.serve, vital=False)

    def start_watchdog(self) -> bool:
        """Ping systemd's watchdog while no vital task is lost; False when not asked to."""
        interval = sd_notify.watchdog_interval()
        if interval is None:
            return False
        log.info("event=watchdog_enabled interval_seconds=%.3f", interval)
        self.supervisor.start(
            WATCHDOG_TASK,
            lambda: sd_notify.watchdog_pinger(interval, self.supervisor.vital_lost),
            vital=False,
        )
        return True

    async def stop(self) -> None:
        """Take everything down in order; completes whatever failed before or fails now."""
        # Each part's supervised task is ended first, so that its end is not taken for a failure.
        cancel = self.supervisor.cancel
        steps: list[tuple[str, Callable[[], Awaitable[None]]]] = []
        if self._admin is not None:
            steps += [(ADMIN_TASK, lambda: cancel(ADMIN_TASK)), ("admin", self._admin.stop)]
        if self.simbanks is not None:
            simbanks = self.simbanks
            steps += [(name, lambda name=name: cancel(name)) for name in simbanks.spawned]
            steps.append(("simbanks", simbanks.stop))
        if self.farm is not None:
            steps += [(FARM_TASK, lambda: cancel(FARM_TASK)), ("farm", self.farm.stop)]
        if self._server is not None:
            steps += [(API_TASK, lambda: cancel(API_TASK)), ("api", self._server.stop)]
        if self.push is not None:
            push = self.push
            steps.append(
                (
                    PUSH_TASK,
                    lambda: self.supervisor.retire(
                        PUSH_TASK, push.request_stop, push.stop_grace_seconds
                    ),
                )
            )
        steps.append(("tasks", self.supervisor.stop))
        if self.store is not None:
            steps.append(("store", self.store.close))
        for name, step in steps:
            try:
                await step()
            except Exception:
                log.exception("event=stop_step_failed step=%s", name)
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
        # Pinged from this loop: if the loop blocks, the pings stop and systemd restarts us.
        daemon.start_watchdog()
        sd_notify.notify("READY=1", f"STATUS={daemon.status_line()}")
        await stop.wait()
        log.info("event=stopping reason=signal")
        sd_notify.notify("STOPPING=1")
    finally:
        await daemon.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
