"""The farm: one supervised driver per modem port, wired into the pool.

Ports come from the configuration's `[[modems]]` paths and globs (and the module ports of SIM
banks); they are re-scanned every few seconds, so a modem that appears is brought up and one
that vanishes is let go. A driver that crashes is restarted with back-off and never touches
the other modems or the API. A SIM is offered to the pool only while its driver reports it
sellable (ready, registered, number known, receive path swept), and is withdrawn the moment
that stops holding. SIMs are identified by ICCID, so one that comes back on another port keeps
its number, history and open activations.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from drivers.events import Driver, ModemState, ModemStatus, ReceivedPdu, TraceHook
from drivers.modem.settings import DriverSettings, UssdRule
from gateway.farm.sms_intake import SmsIntake
from gateway.pool.pool import OnlineSim, Pool

if TYPE_CHECKING:
    from gateway.config import Config, ModemConfig

log = logging.getLogger(__name__)

#: First and longest wait before a crashed or vanished driver is started again.
RESTART_BACKOFF_MIN_SECONDS = 1.0
RESTART_BACKOFF_MAX_SECONDS = 60.0
#: A driver that ran this long before failing starts again from the shortest back-off.
HEALTHY_RUN_SECONDS = 120.0


DriverFactory = Callable[[str, "PortEvents", DriverSettings], Driver]


def default_driver_factory(port: str, events: PortEvents, settings: DriverSettings) -> Driver:
    from drivers.modem.driver import ModemDriver

    return ModemDriver(port, events, settings)


@dataclass
class _Port:
    """One port's supervision state."""

    path: str
    modem: ModemConfig | None
    task: asyncio.Task[None] | None = None
    driver: Driver | None = None
    restarts: int = 0
    offered_iccid: str | None = None


class PortEvents:
    """A driver's reports for one port, handed to the farm."""

    def __init__(self, farm: Farm, port: str) -> None:
        self._farm = farm
        self._port = port

    async def sms_received(self, sms: ReceivedPdu) -> None:
        await self._farm.intake.received(sms)

    def status_changed(self, status: ModemStatus) -> None:
        self._farm.status_changed(self._port, status)


class Farm:
    """Supervises the modem drivers and keeps the pool's live SIMs in step with them."""

    def __init__(
        self,
        config: Config,
        pool: Pool,
        intake: SmsIntake,
        *,
        driver_factory: DriverFactory = default_driver_factory,
        names: Callable[[ModemStatus], tuple[str, str]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.pool = pool
        self.intake = intake
        self._driver_factory = driver_factory
        self._names = names or self._names_from_config
        self._clock = clock
        self._ports: dict[str, _Port] = {}
        self._statuses: dict[str, ModemStatus] = {}
        self._offers: dict[str, ModemStatus] = {}  # port -> newest sellable status to offer
        self._offer_tasks: dict[str, asyncio.Task[None]] = {}
        self._extra_ports: list[str] = []
        self._stopping = False
        self._traced: set[str] = set()  # ports whose every byte is logged (event=at_trace)
        self._held: set[str] = set()  # ports whose SIM is kept out of the pool (SIM banks)
        self._status_listeners: list[Callable[[str, ModemStatus], None]] = []
        # Each port pattern and the ports it matched at the last scan (None before the first).
        self._matched: dict[str, tuple[str, ...]] | None = None

    # --- ports ------------------------------------------------------------------------------

    def add_ports(self, paths: Iterable[str]) -> None:
        """Drive these ports too (the module ports of SIM banks, the demo's simulated modems)."""
        self._extra_ports.extend(paths)

    def discover(self) -> dict[str, ModemConfig | None]:
        """Every port the configuration names that exists right now."""
        found: dict[str, ModemConfig | None] = {}
        matched: dict[str, tuple[str, ...]] = {}
        for modem in self.config.modems:
            pattern = modem.port
            matches = glob.glob(pattern) if glob.has_magic(pattern) else [pattern]
            existing = tuple(path for path in sorted(matches) if os.path.exists(path))
            matched[pattern] = existing
            for path in existing:
                found.setdefault(path, modem)
        for path in self._extra_ports:
            if os.path.exists(path):
                found.setdefault(path, None)
        self._report_matches(matched)
        return found

    @property
    def port_patterns(self) -> dict[str, tuple[str, ...]]:
        """Each configured `[[modems]] port` (path or glob) and the ports it matched last."""
        return dict(self._matched or {})

    def _report_matches(self, matched: dict[str, tuple[str, ...]]) -> None:
        """Log what each configured port pattern matches, at start and whenever it changes."""
        before, self._matched = self._matched, matched
        for pattern, paths in matched.items():
            if before is not None and before.get(pattern) == paths:
                continue
            if paths:
                log.info(
                    "event=ports_matched pattern=%s count=%d ports=%s",
                    pattern,
                    len(paths),
                    ",".join(paths),
                )
            else:
                log.warning(
                    "event=ports_matched pattern=%s count=0 detail=%r",
                    pattern,
                    "no modem port found: is the modem plugged in, and are the udev rules "
                    "installed (see docs/raspberry-pi.md)? The farm keeps looking.",
                )

    def rescan(self) -> None:
        """Start drivers for ports that appeared or came back; let go of ports that vanished.

        A port whose driver ended (it vanished) is started again whenever its path exists, however
        quickly it came back: udev may re-create a device node between two scans.
        """
        if self._stopping:
            return
        present = self.discover()
        for path, modem in present.items():
            port = self._ports.get(path)
            if port is None:
                port = _Port(path, modem)
                self._ports[path] = port
                log.info("event=port_added port=%s", path)
            elif port.task is None or port.task.done():
                log.info("event=port_back port=%s", path)
            else:
                continue
            port.task = asyncio.create_task(self._supervise(port), name=f"modem {path}")
        for path, port in list(self._ports.items()):
            if path not in present and port.task is not None and port.task.done():
                del self._ports[path]
                self._statuses.pop(path, None)
                log.info("event=port_removed port=%s", path)

    async def run(self) -> None:
        """Scan for ports every `rescan_seconds` until cancelled."""
        while True:
            self.rescan()
            await asyncio.sleep(self.config.farm.rescan_seconds)

    async def stop(self) -> None:
        self._stopping = True
        tasks = [p.task for p in self._ports.values() if p.task is not None]
        tasks += list(self._offer_tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for port in self._ports.values():
            self._withdraw(port.path)

    def statuses(self) -> list[ModemStatus]:
        return [self._statuses[path] for path in sorted(self._statuses)]

    # --- holds (SIM-bank rotation) ---------------------------------------------------------

    def hold(self, path: str) -> None:
        """Withdraw the SIM on `path` from the pool at once; offer nothing from it until unhold."""
        self._held.add(path)
        self._offers.pop(path, None)
        port = self._ports.get(path)
        if port is not None and port.offered_iccid is not None:
            self.pool.sim_offline(port.offered_iccid)
            port.offered_iccid = None
        log.info("event=port_held port=%s", path)

    def unhold(self, path: str) -> None:
        """Let the port's SIM be offered again (at once, when its driver reports it sellable)."""
        if path not in self._held:
            return
        self._held.discard(path)
        log.info("event=port_unheld port=%s", path)
        status = self._statuses.get(path)
        if status is not None:
            self.status_changed(path, status)

    def is_held(self, path: str) -> bool:
        return path in self._held

    def is_offered(self, path: str) -> bool:
        """Whether the port's SIM is in the pool now."""
        port = self._ports.get(path)
        return port is not None and port.offered_iccid is not None

    def driver_for(self, path: str) -> Driver | None:
        """The driver running on `path` now (None between restarts)."""
        port = self._ports.get(path)
        return port.driver if port is not None else None

    def status_of(self, path: str) -> ModemStatus | None:
        return self._statuses.get(path)

    def on_status(self, listener: Callable[[str, ModemStatus], None]) -> None:
        """Call `listener(port, status)` on every status a driver reports."""
        self._status_listeners.append(listener)

    # --- AT trace ---------------------------------------------------------------------------

    def set_trace(self, path: str, on: bool) -> bool:
        """Log every byte in and out of a port at INFO (`event=at_trace`), or stop doing so.

        Raises KeyError for a port the farm does not drive. Returns whether a driver runs on the
        port right now (a driver started later on it is traced from its first byte too).
        """
        port = self._ports.get(path)
        if port is None:
            raise KeyError(path)
        if on:
            self._traced.add(path)
        else:
            self._traced.discard(path)
        log.info("event=at_trace_switched port=%s on=%s", path, "yes" if on else "no")
        self._apply_trace(port)
        return port.driver is not None and port.task is not None and not port.task.done()

    def _apply_trace(self, port: _Port) -> None:
        """Switch the trace of the port's driver at run time."""
        if port.driver is not None:
            traced = port.path in self._traced
            port.driver.set_trace(self._trace_hook(port.path) if traced else None)

    def _trace_hook(self, path: str) -> TraceHook:
        """The hook a driver calls with ("in"|"out", bytes); logs only while the port is traced."""

        def hook(direction: str, data: bytes) -> None:
            if path in self._traced:
                way = "in" if direction in ("in", "rx") else "out"
                log.info("event=at_trace port=%s dir=%s data=%s", path, way, escape_bytes(data))

        return hook

    # --- supervision ------------------------------------------------------------------------

    def driver_settings(self, modem: ModemConfig | None) -> DriverSettings:
        farm = self.config.farm
        return DriverSettings(
            baudrate=modem.baudrate if modem else 115200,
            pin=modem.pin if modem else None,
            sweep_seconds=farm.sweep_seconds,
            keepalive_seconds=farm.keepalive_seconds,
            known_number=self.known_number,
            ussd={
                mccmnc: UssdRule(rule.code, rule.pattern, rule.reply_by_sms)
                for mccmnc, rule in self.config.ussd.items()
            },
        )

    def known_number(self, iccid: str) -> str | None:
        """A number the driver cannot learn itself: configured, else learned before."""
        configured = self.config.sims.get(iccid)
        if configured is not None and configured.number:
            return configured.number
        known = self.pool.known_sim(iccid)
        return known.number if known is not None else None

    async def _supervise(self, port: _Port) -> None:
        """Run the port's driver, again and again, until the port is gone or the farm stops.

        Whatever goes wrong here is logged; the next rescan starts a port whose task ended
        while its path exists, so no port is left undriven.
        """
        try:
            await self._drive(port)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("event=task_failed task=%r error=%r", f"modem {port.path}", str(exc))

    async def _drive(self, port: _Port) -> None:
        backoff = RESTART_BACKOFF_MIN_SECONDS
        while not self._stopping:
            started = self._clock()
            try:
                settings = replace(
                    self.driver_settings(port.modem), trace=self._trace_hook(port.path)
                )
                port.driver = self._driver_factory(port.path, PortEvents(self, port.path), settings)
                self._apply_trace(port)
                await port.driver.run()
                reason = "ended"
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = f"{type(exc).__name__}: {exc}"
                log.exception("event=driver_failed port=%s", port.path)
            finally:
                self._withdraw(port.path)
            if not os.path.exists(port.path):  # noqa: ASYNC240 - a stat of a device node
                log.info("event=port_gone port=%s reason=%r", port.path, reason)
                return  # the next rescan starts it again if it comes back
            if self._clock() - started > HEALTHY_RUN_SECONDS:
                backoff = RESTART_BACKOFF_MIN_SECONDS
            port.restarts += 1
            log.warning(
                "event=driver_restart port=%s restarts=%d in_seconds=%.0f reason=%r",
                port.path,
                port.restarts,
                backoff,
                reason,
            )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RESTART_BACKOFF_MAX_SECONDS)

    # --- from driver status to the pool -----------------------------------------------------

    def _withdraw(self, path: str) -> None:
        status = self._statuses.get(path)
        if status is not None and status.state is not ModemState.GONE:
            self.status_changed(path, replace(status, state=ModemState.GONE))

    def status_changed(self, path: str, status: ModemStatus) -> None:
        """A driver's new snapshot of `path`: tell the listeners, offer or withdraw its SIM."""
        port = self._ports.get(path)
        self._statuses[path] = status
        for listener in self._status_listeners:
            try:
                listener(path, status)
            except Exception:
                log.exception("event=status_listener_failed port=%s", path)
        offered = port.offered_iccid if port else None
        if offered is not None and (not status.sellable or status.iccid != offered):
            self.pool.sim_offline(offered)
            port.offered_iccid = None
            self._offers.pop(path, None)
        if not status.sellable or port is None or path in self._held:
            return
        if offered == status.iccid:
            self.pool.sim_signal(status.iccid, status.signal_rssi)
            return
        self._offers[path] = status
        if path not in self._offer_tasks:
            self._offer_tasks[path] = asyncio.create_task(self._offer(port), name=f"offer {path}")

    async def _offer(self, port: _Port) -> None:
        """Offer the newest sellable status of a port; statuses that arrive meanwhile win."""
        try:
            while (status := self._offers.pop(port.path, None)) is not None:
                assert status.iccid is not None and status.number is not None
                country, operator = self._names(status)
                sim = OnlineSim(
                    iccid=status.iccid,
                    number=status.number,
                    country=country,
                    operator=operator,
                    imsi=status.imsi,
                    mccmnc=status.mccmnc,
                    signal=status.signal_rssi,
                    number_source=status.number_source,
                )
                if await self.pool.sim_online(sim):
                    current = self._statuses.get(port.path)
                    if (
                        current is not None
                        and current.sellable
                        and current.iccid == sim.iccid
                        and port.path not in self._held
                    ):
                        port.offered_iccid = sim.iccid
                    else:
                        self.pool.sim_offline(sim.iccid)  # it stopped being sellable meanwhile
        except Exception:
            log.exception("event=offer_failed port=%s", port.path)
        finally:
            self._offer_tasks.pop(port.path, None)

    def _names_from_config(self, status: ModemStatus) -> tuple[str, str]:
        from gateway.pool.names import names_for_sim

        assert status.number is not None and status.iccid is not None
        names = names_for_sim(
            number=status.number, imsi=status.imsi, iccid=status.iccid, config=self.config
        )
        return names.country, names.operator


def escape_bytes(data: bytes) -> str:
    """Bytes as a double-quoted line: printable ASCII kept, the rest as \\r, \\n or \\xNN."""
    out: list[str] = []
    for byte in data:
        char = chr(byte)
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif 0x20 <= byte < 0x7F:
            out.append(char)
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"'


_ESCAPES = {"\r": "\\r", "\n": "\\n", "\t": "\\t", '"': '\\"', "\\": "\\\\"}
