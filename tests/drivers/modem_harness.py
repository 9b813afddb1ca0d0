"""A simulated modem, a ModemDriver on its pty, and a recorder of what the driver reports.

Waits are conditions, not sleeps: `wait_until(predicate)` re-checks its predicate whenever the
driver reports something or a byte crosses the port (the driver's trace hook), and fails with
the driver's status after a generous timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from drivers.events import ModemState, ModemStatus, ReceivedPdu
from drivers.modem.driver import ModemDriver
from drivers.modem.settings import DriverSettings, DriverTimings
from drivers.simulator import Profile, SimCard, SimulatedModem

#: Bound for anything that should happen soon (only reached when something is wrong).
WAIT_S = 10.0
#: Short waits so the whole ladder runs in seconds; real modems get the defaults.
FAST_TIMINGS = DriverTimings(
    command_seconds=1.0,
    long_command_seconds=2.0,
    probe_seconds=0.4,
    drain_quiet_seconds=0.05,
    drain_max_seconds=0.3,
    wake_attempts=2,
    reboot_settle_seconds=0.1,
    reassert_seconds=30.0,
    sim_ready_seconds=5.0,
    sim_busy_backoff_seconds=0.05,
    sim_busy_backoff_max_seconds=0.2,
    sim_retry_seconds=1.0,
    number_retry_seconds=2.0,
    ussd_seconds=2.0,
    ussd_sms_window_seconds=5.0,
    radio_off_seconds=0.05,
    reboot_wait_seconds=2.0,
    dead_retry_seconds=1.0,
)


def fast_settings(**overrides: Any) -> DriverSettings:
    """Driver settings for tests: sweeps and keep-alives every second, short timings."""
    values: dict[str, Any] = {
        "sweep_seconds": 1.0,
        "keepalive_seconds": 1.0,
        "signal_poll_seconds": 5.0,
        "timings": FAST_TIMINGS,
    }
    values.update(overrides)
    return DriverSettings(**values)


class Recorder:
    """The farm side of a driver: keeps PDUs in memory; can be told to fail persisting."""

    def __init__(self, changed: Callable[[], None]) -> None:
        self.received: list[ReceivedPdu] = []
        self.statuses: list[ModemStatus] = []
        self.fail_next = 0  # this many sms_received calls raise, as a full disk would
        self.failed: list[ReceivedPdu] = []
        self.on_received: Callable[[ReceivedPdu], None] | None = None
        self._changed = changed

    async def sms_received(self, sms: ReceivedPdu) -> None:
        if self.fail_next > 0:
            self.fail_next -= 1
            self.failed.append(sms)
            self._changed()
            raise OSError("disk full (test)")
        self.received.append(sms)
        if self.on_received is not None:
            self.on_received(sms)
        self._changed()

    def status_changed(self, status: ModemStatus) -> None:
        self.statuses.append(status)
        self._changed()

    def states(self) -> list[ModemState]:
        return [status.state for status in self.statuses]

    def texts(self) -> list[str]:
        """Texts of the delivered SMS, multipart parts joined (the farm does that for real)."""
        singles: list[str] = []
        groups: dict[tuple[str, int, int], dict[int, str]] = defaultdict(dict)
        for sms in self.received:
            deliver = sms.deliver
            if deliver is None:
                continue
            if deliver.concat is None:
                singles.append(deliver.text)
            else:
                key = (deliver.sender, deliver.concat.ref, deliver.concat.total)
                groups[key][deliver.concat.seq] = deliver.text
        joined = [
            "".join(parts[seq] for seq in sorted(parts))
            for (_, _, total), parts in groups.items()
            if len(parts) == total
        ]
        return singles + joined


class ModemHarness:
    """`async with ModemHarness(SIM800, sim) as h:` — the modem and the driver are running."""

    def __init__(
        self,
        profile: Profile,
        sim: SimCard | None,
        settings: DriverSettings | None = None,
        *,
        before_start: Callable[[SimulatedModem], None] | None = None,
    ) -> None:
        self.modem = SimulatedModem(profile, sim)
        self.settings = replace(settings or fast_settings(), trace=self._traced)
        self.events = Recorder(self._poke)
        self.driver: ModemDriver | None = None
        self.task: asyncio.Task[None] | None = None
        self.bytes_seen = 0
        self._before_start = before_start
        self._changed = asyncio.Event()

    async def __aenter__(self) -> ModemHarness:
        await self.modem.start()
        if self._before_start is not None:
            self._before_start(self.modem)
        self.start_driver()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.stop_driver()
        finally:
            await self.modem.stop()

    def start_driver(self, path: str | None = None) -> ModemDriver:
        self.driver = ModemDriver(path or self.modem.path, self.events, self.settings)
        self.task = asyncio.create_task(self.driver.run(), name="driver under test")
        self.task.add_done_callback(lambda _: self._poke())
        return self.driver

    async def stop_driver(self) -> None:
        if self.task is not None:
            self.task.cancel()
            done, _ = await asyncio.wait({self.task}, timeout=5)
            if not done:
                self.task.print_stack()
                raise AssertionError("driver task ignores cancellation")
            with contextlib.suppress(asyncio.CancelledError):
                await self.task

    @property
    def status(self) -> ModemStatus:
        assert self.driver is not None
        return self.driver.status

    def _traced(self, direction: str, data: bytes) -> None:
        self.bytes_seen += len(data)
        self._poke()

    def _poke(self) -> None:
        self._changed.set()

    async def wait_until(
        self, predicate: Callable[[], object], *, timeout: float = WAIT_S, what: str = ""
    ) -> None:
        """Return once `predicate()` holds; re-checked on every report and every byte."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            self._changed.clear()
            if predicate():
                return
            if self.task is not None and self.task.done() and self.task.exception() is not None:
                raise AssertionError(f"driver crashed: {self.task.exception()!r}")
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what or predicate}; "
                    f"status={self.driver.status if self.driver else None}"
                )
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._changed.wait()

    async def wait_state(self, state: ModemState, *, timeout: float = WAIT_S) -> ModemStatus:
        await self.wait_until(lambda: self.status.state is state, timeout=timeout, what=state)
        return self.status

    async def wait_ready(self, *, timeout: float = WAIT_S) -> ModemStatus:
        return await self.wait_state(ModemState.READY, timeout=timeout)

    async def wait_texts(self, expected: list[str], *, timeout: float = WAIT_S) -> None:
        """Until every expected text arrived; then check none came twice or unexpectedly."""
        await self.wait_until(
            lambda: sorted(self.events.texts()) == sorted(expected),
            timeout=timeout,
            what=f"texts {expected!r} (got {self.events.texts()!r})",
        )
        fingerprints = [sms.fingerprint for sms in self.events.received]
        assert len(fingerprints) == len(set(fingerprints)), "a PDU was handed over twice"

    def stored_count(self) -> int:
        """Messages left in every memory of the modem (SM of the current SIM included)."""
        count = 0
        for memory in self.modem.profile.storages:
            with contextlib.suppress(Exception):
                count += len(self.modem.stored_messages(memory))
        return count
