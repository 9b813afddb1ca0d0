"""Every long-running task of the daemon runs here, so that none can die silently.

A task that raises (or returns, which a task meant to run for the daemon's life never should) is
logged once at ERROR with its traceback (`event=task_failed task=NAME`), counted, and started
again after a back-off that doubles up to a bound. While it is down, or until it has run for
STABLE_RUN_SECONDS after a failure, it is *failing*: the health report names it. A *vital* task
(one that selling depends on: the marketplace API, the push worker, the farm) that has been
failing for longer than VITAL_RECOVERY_SECONDS means this process cannot heal itself: the
watchdog pings stop, so systemd restarts the whole daemon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: First and longest wait before a failed task is started again.
RESTART_BACKOFF_MIN_SECONDS = 0.5
RESTART_BACKOFF_MAX_SECONDS = 30.0
#: A task that ran this long after its last start has recovered (and starts from the shortest
#: back-off when it fails again).
STABLE_RUN_SECONDS = 10.0
#: How long a vital task may keep failing before the process gives up on healing itself.
VITAL_RECOVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class SupervisorTimings:
    backoff_min_seconds: float = RESTART_BACKOFF_MIN_SECONDS
    backoff_max_seconds: float = RESTART_BACKOFF_MAX_SECONDS
    stable_run_seconds: float = STABLE_RUN_SECONDS
    vital_recovery_seconds: float = VITAL_RECOVERY_SECONDS


@dataclass(frozen=True, slots=True)
class TaskTrouble:
    """A task that is failing now, as the health report shows it."""

    name: str
    vital: bool
    up: bool  # running again (but not for long enough to count as recovered)
    restarts: int
    failing_for_seconds: float
    last_error: str


@dataclass(slots=True)
class _Supervised:
    name: str
    factory: Callable[[], Awaitable[None]]
    vital: bool
    task: asyncio.Task[None] | None = None
    up: bool = False
    started_at: float = 0.0
    restarts: int = 0
    failing_since: float | None = None
    last_error: str = ""
    retiring: bool = False  # asked to end: its return is the end, not a failure
    backing_off: bool = False  # failed, waiting to be started again


class Supervisor:
    """Runs named tasks, restarts them when they fail, and says which ones are in trouble."""

    def __init__(
        self,
        *,
        on_restart: Callable[[str], None] | None = None,
        timings: SupervisorTimings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._on_restart = on_restart or (lambda name: None)
        self.timings = timings or SupervisorTimings()
        self._clock = clock
        self._tasks: dict[str, _Supervised] = {}

    def start(self, name: str, factory: Callable[[], Awaitable[None]], *, vital: bool) -> None:
        """Run `factory()` as the task `name` until stop(); start it again whenever it ends."""
        if name in self._tasks:
            raise ValueError(f"a task named {name!r} is supervised already")
        entry = _Supervised(name, factory, vital)
        entry.task = asyncio.create_task(self._keep(entry), name=name)
        self._tasks[name] = entry

    def is_up(self, name: str) -> bool:
        entry = self._tasks.get(name)
        return entry is not None and entry.up

    def restarts(self) -> dict[str, int]:
        return {name: entry.restarts for name, entry in self._tasks.items()}

    def troubles(self) -> list[TaskTrouble]:
        """The tasks failing now (down, or up again for less than the stable run time)."""
        now = self._clock()
        troubles = []
        for entry in self._tasks.values():
            if entry.failing_since is None:
                continue
            if entry.up and now - entry.started_at >= self.timings.stable_run_seconds:
                entry.failing_since = None  # it has run long enough: recovered
                continue
            troubles.append(
                TaskTrouble(
                    entry.name,
                    entry.vital,
                    entry.up,
                    entry.restarts,
                    now - entry.failing_since,
                    entry.last_error,
                )
            )
        return troubles

    def vital_lost(self) -> list[str]:
        """Vital tasks failing for longer than the process may take to heal itself."""
        limit = self.timings.vital_recovery_seconds
        return [t.name for t in self.troubles() if t.vital and t.failing_for_seconds > limit]

    async def retire(self, name: str, ask: Callable[[], None], timeout: float) -> None:
        """End the task `name` gracefully: `ask()` tells it to return, and it is cancelled if it
        has not within `timeout` seconds. It is not started again."""
        entry = self._tasks.pop(name, None)
        if entry is None or entry.task is None:
            return
        entry.retiring = True
        ask()
        if entry.backing_off:
            entry.task.cancel()  # nothing runs that could finish anything
        done, _ = await asyncio.wait({entry.task}, timeout=timeout)
        if not done:
            entry.task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await entry.task

    async def cancel(self, name: str) -> None:
        """End the task `name` now; it is not started again."""
        entry = self._tasks.pop(name, None)
        if entry is not None and entry.task is not None:
            entry.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await entry.task

    async def stop(self) -> None:
        """Cancel every task and wait for each to end; never raises for a task's failure."""
        entries = list(self._tasks.values())
        self._tasks.clear()
        for entry in entries:
            if entry.task is not None:
                entry.task.cancel()
        for entry in entries:
            if entry.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await entry.task

    async def _keep(self, entry: _Supervised) -> None:
        backoff = self.timings.backoff_min_seconds
        while True:
            entry.started_at = self._clock()
            entry.up = True
            try:
                await entry.factory()
            except asyncio.CancelledError:
                entry.up = False
                raise
            except Exception as exc:
                entry.last_error = f"{type(exc).__name__}: {exc}"[:300]
                log.exception("event=task_failed task=%s error=%r", entry.name, entry.last_error)
            else:
                if entry.retiring:
                    entry.up = False
                    return
                entry.last_error = "ended by itself"
                log.error("event=task_failed task=%s error=%r", entry.name, entry.last_error)
            entry.up = False
            if entry.retiring:
                return
            now = self._clock()
            ran = now - entry.started_at
            if ran >= self.timings.stable_run_seconds:
                backoff = self.timings.backoff_min_seconds
            if entry.failing_since is None or ran >= self.timings.stable_run_seconds:
                entry.failing_since = now
            entry.restarts += 1
            try:
                self._on_restart(entry.name)
            except Exception:
                log.exception("event=task_restart_listener_failed task=%s", entry.name)
            log.warning(
                "event=task_restart task=%s restarts=%d in_seconds=%.1f",
                entry.name,
                entry.restarts,
                backoff,
            )
            entry.backing_off = True
            try:
                await asyncio.sleep(backoff)
            finally:
                entry.backing_off = False
            backoff = min(backoff * 2, self.timings.backoff_max_seconds)
