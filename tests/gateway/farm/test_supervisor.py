"""The task supervisor: a failing task is logged once, counted, restarted and shown until stable."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway.farm.supervisor import Supervisor, SupervisorTimings

#: Bound for what should happen promptly; never waited out.
EVENTUALLY_SECONDS = 10.0
FAST = SupervisorTimings(
    backoff_min_seconds=0.01,
    backoff_max_seconds=0.02,
    stable_run_seconds=5.0,
    vital_recovery_seconds=60.0,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Flaky:
    """A task body that fails the first `failures` times it runs, then runs until cancelled."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.runs = 0
        self.running = asyncio.Event()

    async def __call__(self) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError(f"failure {self.runs}")
        self.running.set()
        await asyncio.Event().wait()


async def test_a_failing_task_is_logged_once_counted_and_restarted(caplog) -> None:
    restarted: list[str] = []
    clock = Clock()
    supervisor = Supervisor(on_restart=restarted.append, timings=FAST, clock=clock)
    body = Flaky(failures=3)
    with caplog.at_level(logging.INFO, logger="gateway.farm.supervisor"):
        supervisor.start("push-worker", body, vital=True)
        await asyncio.wait_for(body.running.wait(), EVENTUALLY_SECONDS)
    try:
        assert body.runs == 4
        assert restarted == ["push-worker"] * 3
        assert supervisor.restarts() == {"push-worker": 3}
        failed = [r for r in caplog.records if "event=task_failed" in r.getMessage()]
        assert len(failed) == 3
        assert all(r.levelno == logging.ERROR and r.exc_info is not None for r in failed)
        assert "task=push-worker" in failed[0].getMessage()
        # Up again, but not yet for the stable run time: still shown as failing.
        [trouble] = supervisor.troubles()
        assert (trouble.name, trouble.up, trouble.restarts) == ("push-worker", True, 3)
        assert trouble.last_error == "RuntimeError: failure 3"
        clock.now += FAST.stable_run_seconds
        assert supervisor.troubles() == []
    finally:
        await supervisor.stop()


async def test_a_task_that_returns_is_a_failure_too() -> None:
    supervisor = Supervisor(timings=FAST)
    runs = 0
    again = asyncio.Event()

    async def returns() -> None:
        nonlocal runs
        runs += 1
        if runs >= 2:
            again.set()
            await asyncio.Event().wait()

    supervisor.start("multipart-flush", returns, vital=False)
    await asyncio.wait_for(again.wait(), EVENTUALLY_SECONDS)
    [trouble] = supervisor.troubles()
    assert trouble.last_error == "ended by itself" and not trouble.vital
    assert supervisor.vital_lost() == []
    await supervisor.stop()


async def test_a_vital_task_failing_past_the_bound_is_lost() -> None:
    clock = Clock()
    supervisor = Supervisor(timings=FAST, clock=clock)
    failures = 0
    failed_twice = asyncio.Event()

    async def always_fails() -> None:
        nonlocal failures
        failures += 1
        if failures >= 2:
            failed_twice.set()
        raise OSError("cannot listen")

    supervisor.start("api", always_fails, vital=True)
    await asyncio.wait_for(failed_twice.wait(), EVENTUALLY_SECONDS)
    assert supervisor.vital_lost() == []
    clock.now += FAST.vital_recovery_seconds + 1
    assert supervisor.vital_lost() == ["api"]
    await supervisor.stop()


async def test_stop_completes_after_failures_and_retire_lets_a_task_finish() -> None:
    supervisor = Supervisor(timings=FAST)
    body = Flaky(failures=1)
    supervisor.start("farm", body, vital=True)
    await asyncio.wait_for(body.running.wait(), EVENTUALLY_SECONDS)

    stop_asked = asyncio.Event()
    finished: list[str] = []

    async def graceful() -> None:
        await stop_asked.wait()
        finished.append("recorded in-flight work")

    supervisor.start("push-worker", graceful, vital=True)
    await supervisor.retire("push-worker", stop_asked.set, timeout=EVENTUALLY_SECONDS)
    assert finished == ["recorded in-flight work"]
    assert supervisor.restarts() == {"farm": 1}  # the retired task is no longer supervised
    await asyncio.wait_for(supervisor.stop(), EVENTUALLY_SECONDS)
    assert supervisor.restarts() == {}


async def test_names_are_unique() -> None:
    supervisor = Supervisor(timings=FAST)
    supervisor.start("api", Flaky(0), vital=True)
    with pytest.raises(ValueError, match="supervised already"):
        supervisor.start("api", Flaky(0), vital=True)
    await supervisor.stop()
