"""Prometheus metrics of one daemon, served as `/metrics` on the admin listener and the API.

Every daemon has its own `CollectorRegistry` (never the process-wide one), so tests can run many
daemons in one process. Two kinds of numbers:

* counters and histograms updated where things happen: GET_NUMBER outcomes, request latency per
  marketplace action, SMS handed to the pool (stored, duplicate, multipart parts joined);
* gauges computed at scrape time from the current state (modems by state, live SIMs, open
  activations, the PUSH_SMS outbox, SMS storage per modem) together with the counters the push
  worker and the modem drivers keep themselves (push outcomes, command timeouts, recoveries),
  and, when SIM banks are configured, their rotations, failures by kind, quarantined channels
  and 24-hour live share, read from the banks' snapshot.

Nothing here knows HTTP except `metrics_endpoint`, and nothing here changes state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from starlette.requests import Request
from starlette.responses import Response

from drivers.events import ModemState
from gateway.pool.storage import StoreError

if TYPE_CHECKING:
    from gateway.farm.farm import Farm
    from gateway.marketplaces.push import PushWorker
    from gateway.pool.pool import Pool
    from gateway.pool.records import StoredSms
    from gateway.pool.storage import SmsStorage

log = logging.getLogger(__name__)

#: How long a scrape waits for the store's outbox figures before it leaves them out.
OUTBOX_QUERY_TIMEOUT_SECONDS = 2.0
#: Latency buckets (seconds): the API's targets are a p99 of 10-20 ms.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: What a GET_NUMBER can end in.
GET_NUMBER_OUTCOMES = ("success", "no_numbers", "error")
#: The marketplace actions whose latency is measured.
ACTIONS = ("GET_SERVICES", "GET_NUMBER", "FINISH_ACTIVATION")
#: The failure kinds of a SIM-bank rotation (spec simbank.md §4.2 S1-S4), always exposed.
SIMBANK_FAILURE_KINDS = ("not_applied", "wrong_landing", "sim_not_ready", "not_registered")


class SimbankSnapshots(Protocol):
    """The SIM banks as plain data (gateway.farm.simbank.service.Simbanks)."""

    def snapshot(self) -> list[dict[str, Any]]: ...


class Metrics:
    """The metrics of one daemon: its registry, the counters the code updates, the scrape.

    The counters exist from the start (the supervisor and the API update them while the rest
    is still coming up); the gauges join once the parts they read exist (`watch`).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.registry = CollectorRegistry()
        self.get_number = Counter(
            "simfarm_get_number",
            "GET_NUMBER requests by outcome (success, no_numbers, error).",
            ["outcome"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "simfarm_request_duration_seconds",
            "Time to answer a marketplace request, by action.",
            ["action"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.sms_received = Counter(
            "simfarm_sms_received",
            "SMS handed to the pool by the farm, by outcome (stored, duplicate).",
            ["outcome"],
            registry=self.registry,
        )
        self.sms_parts = Counter(
            "simfarm_sms_parts_joined",
            "Parts of multipart SMS joined into stored SMS.",
            registry=self.registry,
        )
        self.task_restarts = Counter(
            "simfarm_task_restarts",
            "Background tasks started again after they failed, by task.",
            ["task"],
            registry=self.registry,
        )
        for outcome in GET_NUMBER_OUTCOMES:
            self.get_number.labels(outcome)
        for action in ACTIONS:
            self.request_seconds.labels(action)
        for outcome in ("stored", "duplicate"):
            self.sms_received.labels(outcome)
        self._state: StateCollector | None = None

    def watch(self, state: StateCollector) -> None:
        """Serve the scrape-time gauges of `state` from now on (once, when the parts are up)."""
        self._state = state
        self.registry.register(state)

    # --- updated at the source ----------------------------------------------------------------

    def request_done(self, action: str, seconds: float) -> None:
        """A marketplace request of `action` was answered after `seconds`."""
        self.request_seconds.labels(action).observe(seconds)

    def task_restarted(self, task: str) -> None:
        """The supervisor started `task` again after it failed."""
        self.task_restarts.labels(task).inc()

    def get_number_done(self, outcome: str) -> None:
        """A GET_NUMBER ended in `outcome` (one of GET_NUMBER_OUTCOMES)."""
        self.get_number.labels(outcome).inc()

    def sms_stored(self, stored: StoredSms, parts: int) -> None:
        """The pool stored an SMS (a pool listener; `parts` > 0 for a joined multipart SMS)."""
        if stored.duplicate:
            self.sms_received.labels("duplicate").inc()
            return
        self.sms_received.labels("stored").inc()
        if parts:
            self.sms_parts.inc(parts)

    # --- the scrape ---------------------------------------------------------------------------

    async def exposition(self) -> bytes:
        """The text format Prometheus scrapes, computed now."""
        if self._state is not None:
            await self._state.refresh()
        return generate_latest(self.registry)


class StateCollector:
    """Gauges read from the daemon's current state when Prometheus scrapes."""

    def __init__(
        self,
        *,
        pool: Pool,
        farm: Farm,
        push: PushWorker,
        outbox: SmsStorage,
        simbanks: SimbankSnapshots | None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.pool = pool
        self.farm = farm
        self.push = push
        self.outbox = outbox
        self.simbanks = simbanks
        self.clock = clock
        self._outbox: tuple[int, float | None] | None = None

    def describe(self) -> Iterable[Metric]:
        return ()  # nothing to check at registration; the families depend on the state

    async def refresh(self) -> None:
        """Read what only the store knows (the outbox), bounded by a timeout."""
        self._outbox = None
        try:
            async with asyncio.timeout(OUTBOX_QUERY_TIMEOUT_SECONDS):
                self._outbox = await self.outbox.outbox_summary()
        except (TimeoutError, StoreError) as exc:
            log.warning("event=metrics_outbox_unavailable error=%r", str(exc) or "timeout")

    def collect(self) -> Iterable[Metric]:
        yield from self._farm(self.farm)
        yield from self._pool(self.pool)
        yield from self._push(self.push)
        yield from self._simbanks(self.simbanks)

    def _farm(self, farm: Farm) -> Iterable[Metric]:
        statuses = farm.statuses()
        by_state = GaugeMetricFamily(
            "simfarm_modems", "Modem ports by the state of their driver.", labels=["state"]
        )
        for state in ModemState:
            by_state.add_metric([state.value], sum(1 for s in statuses if s.state is state))
        yield by_state
        used = GaugeMetricFamily(
            "simfarm_modem_storage_used_messages",
            "SMS held in a modem's message memory.",
            labels=["port", "memory"],
        )
        total = GaugeMetricFamily(
            "simfarm_modem_storage_total_messages",
            "Capacity of a modem's message memory.",
            labels=["port", "memory"],
        )
        signal = GaugeMetricFamily(
            "simfarm_modem_signal_rssi", "Signal of a modem, 0-31 from +CSQ.", labels=["port"]
        )
        timeouts = CounterMetricFamily(
            "simfarm_modem_command_timeouts",
            "AT commands that got no reply in time, since the port's driver started.",
            labels=["port"],
        )
        recoveries = CounterMetricFamily(
            "simfarm_modem_recoveries",
            "Recoveries of a modem by the rung of the ladder that ended them.",
            labels=["port", "rung"],
        )
        for status in statuses:
            for memory, (in_use, capacity) in sorted(status.storage.items()):
                used.add_metric([status.port, memory], in_use)
                total.add_metric([status.port, memory], capacity)
            if status.signal_rssi is not None:
                signal.add_metric([status.port], status.signal_rssi)
            timeouts.add_metric([status.port], status.timeouts)
            for rung, count in sorted(status.recoveries.items()):
                recoveries.add_metric([status.port, rung], count)
        yield from (used, total, signal, timeouts, recoveries)

    def _pool(self, pool: Pool) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "simfarm_sims_live",
            "SIMs the pool sells from (ready, registered, number known).",
            value=len(pool.live_numbers()),
        )
        open_activations = pool.open_activations()
        kinds = GaugeMetricFamily(
            "simfarm_activations_open", "Open activations by kind.", labels=["kind"]
        )
        rent = sum(1 for a in open_activations if a.rent)
        kinds.add_metric(["single"], len(open_activations) - rent)
        kinds.add_metric(["rent"], rent)
        yield kinds
        available = GaugeMetricFamily(
            "simfarm_numbers_available",
            "Numbers GET_NUMBER would issue now, by service (summed over countries).",
            labels=["service"],
        )
        per_service: dict[str, int] = {}
        for operators in pool.service_counts().values():
            for services in operators.values():
                for service, count in services.items():
                    per_service[service] = per_service.get(service, 0) + count
        for service, count in sorted(per_service.items()):
            available.add_metric([service], count)
        yield available
        if self._outbox is not None:
            pending, oldest = self._outbox
            yield GaugeMetricFamily(
                "simfarm_push_outbox_pending",
                "SMS waiting to be pushed to the marketplace.",
                value=pending,
            )
            yield GaugeMetricFamily(
                "simfarm_push_outbox_oldest_age_seconds",
                "Age of the SMS of the oldest pending push (0 when none is pending).",
                value=max(0.0, self.clock() - oldest) if oldest is not None else 0.0,
            )

    def _push(self, push: PushWorker) -> Iterable[Metric]:
        outcomes = CounterMetricFamily(
            "simfarm_pushes",
            "PUSH_SMS attempts by outcome (pushed, refused for good, retry later).",
            labels=["outcome"],
        )
        counters = push.counters
        outcomes.add_metric(["pushed"], counters.pushed)
        outcomes.add_metric(["refused"], counters.refused)
        outcomes.add_metric(["retry"], counters.retried)
        yield outcomes

    def _simbanks(self, simbanks: SimbankSnapshots | None) -> Iterable[Metric]:
        """Per board, from `Simbanks.snapshot()`; nothing when no bank is configured."""
        boards = simbanks.snapshot() if simbanks is not None else []
        if not boards:
            return
        rotations = CounterMetricFamily(
            "simfarm_simbank_rotations",
            "Rotations of a SIM bank's channels ended, whatever the result, since the start.",
            labels=["board"],
        )
        failures = CounterMetricFamily(
            "simfarm_simbank_failures",
            "Failed rotation steps of a SIM bank by kind (not_applied S1, wrong_landing S2, "
            "sim_not_ready S3, not_registered S4), since the start.",
            labels=["board", "kind"],
        )
        quarantined = GaugeMetricFamily(
            "simfarm_simbank_quarantined_channels",
            "Channels of a SIM bank resting in quarantine.",
            labels=["board"],
        )
        live_share = GaugeMetricFamily(
            "simfarm_simbank_live_share_24h",
            "Share of a SIM bank's SIMs that were live in the last 24 hours (0-1).",
            labels=["board"],
        )
        for board in boards:
            name = str(board["board"])
            rotations.add_metric([name], sum(board["rotations"].values()))
            kinds = board["failures"]
            for kind in (*SIMBANK_FAILURE_KINDS, *sorted(set(kinds) - set(SIMBANK_FAILURE_KINDS))):
                failures.add_metric([name, kind], kinds.get(kind, 0))
            quarantined.add_metric([name], board["quarantined"])
            live_share.add_metric([name], board["live_share_24h"])
        yield from (rotations, failures, quarantined, live_share)


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], object]:
    """A Starlette endpoint serving `metrics` in the Prometheus text format."""

    async def endpoint(request: Request) -> Response:
        return Response(await metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return endpoint
