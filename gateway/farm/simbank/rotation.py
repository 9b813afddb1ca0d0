"""Rotation: many SIMs through few modules without losing an activation or an SMS.

Spec simbank.md §5.3 and §6.2. Per channel, never row-wide; only a channel whose SIM holds no
open activation or rental and has dwelt its minimum; next slot = least recently live; at most
`max_in_transition` of the channels moving at once. One rotation, in order: withdraw from
GET_SERVICES (the farm holds the port), wait out in-flight requests, sweep and persist SM and ME,
detach, switch, settle, reset, wait for the SIM, verify its ICCID, then let the driver set the
storage up again, sweep again and register, and only then advertise. The rotation record is on
disk before the switch command goes out; after a restart nothing is offered until every
channel's ICCID has been read, and an interrupted rotation is resumed (switch sent) or rolled
back (not sent).

The rotation talks to each module through `ChannelModem`, and to the board through
`drivers.simbank.switcher.SlotSwitcher`, so other switchers fit without touching this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from drivers.events import Driver, ModemState, ModemStatus
from drivers.modem.held import SimRead
from drivers.simbank.switcher import SlotSwitcher, SwitcherError
from gateway.farm.simbank.inventory import Inventory
from gateway.pool.records import RotationRecord

log = logging.getLogger(__name__)

#: Failure kinds of spec §4.2 the metrics count.
NOT_APPLIED = "not_applied"  # S1: the module kept its old SIM
WRONG_LANDING = "wrong_landing"  # S2: another known SIM came up
SIM_NOT_READY = "sim_not_ready"  # S3: no readable SIM after the reset
NOT_REGISTERED = "not_registered"  # S4: the SIM never became sellable
#: Steps after which the switch command may have gone out (a restart resumes those).
SENT_STEPS = frozenset({"switch_sent", "reset", "verified"})
#: Upper bound of status reports looked at in one wait (a babbling driver cannot hold us).
MAX_STATUS_WAKEUPS = 100_000


@dataclass(frozen=True, slots=True)
class RotationSettings:
    """Every wait of the rotation, in seconds (from `[[simbanks]]`; tests pass short ones)."""

    dwell_seconds: float = 1800.0
    max_in_transition: float = 0.25
    drain_seconds: float = 130.0
    settle_seconds: float = 5.0
    full_reset: bool = True
    sim_ready_seconds: float = 90.0
    registration_seconds: float = 300.0
    verify_retries: int = 2  # more switch attempts when the old ICCID comes back (S1)
    quarantine_seconds: float = 3600.0  # a quarantined channel is tried again after this
    hold_seconds: float = 60.0  # for the driver to hand the modem over
    sweep_seconds: float = 60.0
    startup_seconds: float = 120.0  # for every channel's ICCID after a start
    anomaly_window_seconds: float = 1.0  # SIM changes this close together are one incident
    tick_seconds: float = 5.0  # how often rotations are considered without another reason


class HeldChannel(Protocol):
    """A module handed over for a switch (drivers.modem.held.HeldModem fits)."""

    async def detach(self) -> None: ...

    async def reset(self, *, full: bool = True) -> None: ...

    async def read_sim(self, timeout: float) -> SimRead: ...


class ChannelModem(Protocol):
    """What rotation needs of the module on one channel."""

    port: str

    def status(self) -> ModemStatus | None: ...

    def hold(self) -> None:
        """Out of GET_SERVICES at once, and not offered again until `unhold`."""

    def unhold(self) -> None: ...

    async def sweep(self, timeout: float) -> bool:
        """Read, persist and delete SM and ME now."""

    def held(self, timeout: float) -> AbstractAsyncContextManager[HeldChannel]:
        """The module for a switch; on exit it is set up again by its driver."""


class FarmChannelModem:
    """`ChannelModem` over the farm's hold and the modem driver's public operations."""

    def __init__(self, farm, port: str) -> None:  # farm: gateway.farm.farm.Farm
        self.farm = farm
        self.port = port

    def status(self) -> ModemStatus | None:
        return self.farm.status_of(self.port)

    def hold(self) -> None:
        self.farm.hold(self.port)

    def unhold(self) -> None:
        self.farm.unhold(self.port)

    def _driver(self) -> Driver:
        driver: Driver | None = self.farm.driver_for(self.port)
        if driver is None:
            raise ChannelUnavailable(f"no modem driver runs on {self.port}")
        return driver

    async def sweep(self, timeout: float) -> bool:
        return await self._driver().sweep_now(timeout)

    @contextlib.asynccontextmanager
    async def held(self, timeout: float) -> AsyncIterator[HeldChannel]:
        async with self._driver().held(timeout) as modem:
            yield modem


class ChannelUnavailable(Exception):
    """The module of a channel cannot be used right now (no driver, recovering)."""


@dataclass(slots=True)
class ChannelRun:
    """What the rotation is doing with one channel now (for the operators' view)."""

    state: str = "starting"  # starting | live | waiting | rotating | restoring | quarantined
    step: str | None = None
    next_rotation_at: float | None = None  # wall time
    last_result: str | None = None


@dataclass(slots=True)
class BankStats:
    rotations: Counter[str] = field(default_factory=Counter)  # by result
    failures: Counter[str] = field(default_factory=Counter)  # by §4.2 kind
    incidents: list[str] = field(default_factory=list)


class BankRotation:
    """Rotates the SIMs of one board; owns its switcher and its channels' holds."""

    def __init__(
        self,
        switcher: SlotSwitcher,
        inventory: Inventory,
        modems: dict[str, ChannelModem],
        *,
        leased: Callable[[str], bool],
        settings: RotationSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.switcher = switcher
        self.inventory = inventory
        self.modems = modems
        self.leased = leased  # number -> has an open activation or rental
        self.settings = settings
        self.clock = clock
        self.name = inventory.board
        self.runs: dict[str, ChannelRun] = {c: ChannelRun() for c in modems}
        self.stats = BankStats()
        self.ready = False  # every channel's ICCID read since the start
        self._busy: set[str] = set()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._status_changed = asyncio.Event()
        self._anomalies: set[str] = set()
        self._port_channel = {m.port: c for c, m in modems.items()}

    # --- wiring ---------------------------------------------------------------------------

    def hold_all(self) -> None:
        """At start: nothing from this bank is offered until its ICCIDs are read."""
        for modem in self.modems.values():
            modem.hold()

    def status_changed(self, port: str, status: ModemStatus) -> None:
        """From the farm: a module's driver reported; notice SIMs that moved by themselves."""
        channel = self._port_channel.get(port)
        if channel is None:
            return
        self._status_changed.set()
        if not self.ready or channel in self._busy:
            return
        view = self.inventory.channels[channel]
        moved = status.iccid is not None and view.iccid is not None and status.iccid != view.iccid
        lost = status.state is ModemState.NO_SIM and view.iccid is not None
        if moved or lost:
            self.modems[channel].hold()  # trust nothing until it is read again
            if channel not in self._anomalies:
                log.warning(
                    "event=simbank_sim_changed board=%s channel=%s expected=%s seen=%s state=%s",
                    self.name,
                    channel,
                    view.iccid,
                    status.iccid,
                    status.state,
                )
            self._anomalies.add(channel)
            self._wake.set()
        elif status.sellable and status.iccid == view.iccid:
            self._wake.set()  # a number learned, a SIM registered: maybe advertise it

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Start up, then rotate and watch until cancelled."""
        await self.start_up()
        while True:
            await self._handle_anomalies()
            await self._advertise_waiting()
            self._start_rotations()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._next_wakeup()):
                    await self._wake.wait()

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.switcher.close()

    def _next_wakeup(self) -> float:
        now = self.clock()
        times = [self.settings.tick_seconds]
        for run in self.runs.values():
            if run.next_rotation_at is not None:
                times.append(max(0.05, run.next_rotation_at - now))
        return min(times)

    # --- start-up -------------------------------------------------------------------------

    async def start_up(self) -> None:
        """Read every channel's ICCID, finish or undo interrupted rotations, then offer."""
        inventory = self.inventory
        await self.switcher.open()
        cold = all(v.active_slot is None for v in inventory.channels.values())
        if cold and not inventory.open_rotations:
            with contextlib.suppress(SwitcherError):
                await self.switcher.cold_reset()  # refused unless no SIM of it is leased
        await self._wait_for_iccids()
        interrupted = {r.channel: r for r in inventory.open_rotations}
        inventory.open_rotations = []
        order = sorted(self.modems, key=lambda c: (not self._channel_leased(c), c))
        for channel in order:
            rotation = interrupted.get(channel)
            status = self.modems[channel].status()
            if rotation is not None and rotation.step in SENT_STEPS:
                log.warning(
                    "event=simbank_rotation_resumed board=%s channel=%s rotation=%d step=%s",
                    self.name,
                    channel,
                    rotation.id,
                    rotation.step,
                )
                self._launch(channel, self._rotate(channel, resume=rotation))
                continue
            if rotation is not None:
                await inventory.rotation_done(rotation, "rolled_back", "restart before the switch")
                self.stats.rotations["rolled_back"] += 1
            view = inventory.channels[channel]
            if cold or view.active_slot is None:
                await inventory.set_channel(channel, slot=1, iccid=view.iccid)
            if (
                status is not None
                and status.iccid is not None
                and status.state
                not in (
                    ModemState.NO_SIM,
                    ModemState.GONE,
                )
            ):
                if view.iccid is not None and status.iccid != view.iccid:
                    self._anomalies.add(channel)  # restored below, leased channels first
                    continue
                await inventory.seen(channel, view.active_slot or 1, status.iccid)
                await inventory.set_channel(channel, slot=view.active_slot or 1, iccid=status.iccid)
            self.runs[channel].state = "waiting"
        self.ready = True
        log.info("event=simbank_ready board=%s channels=%d", self.name, len(self.modems))
        self._wake.set()

    async def _wait_for_iccids(self) -> None:
        def read(channel: str) -> bool:
            status = self.modems[channel].status()
            return status is not None and (
                status.iccid is not None or status.state in (ModemState.NO_SIM, ModemState.DEAD)
            )

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.startup_seconds
        for _ in range(MAX_STATUS_WAKEUPS):
            if all(read(c) for c in self.modems) or loop.time() >= deadline:
                break
            self._status_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    await self._status_changed.wait()
        missing = [c for c in self.modems if not read(c)]
        if missing:
            log.error(
                "event=simbank_iccid_unread board=%s channels=%s detail=%r",
                self.name,
                ",".join(missing),
                "these modules told no ICCID after the start; their channels stay out of sale",
            )

    # --- advertising ----------------------------------------------------------------------

    async def _advertise_waiting(self) -> None:
        """Offer channels whose verified SIM is sellable; learn numbers on the way."""
        for channel, modem in self.modems.items():
            run = self.runs[channel]
            if (
                channel in self._busy
                or channel in self._anomalies
                or run.state
                not in (
                    "waiting",
                    "live",
                    "quarantined",
                )
            ):
                continue
            await self._advertise_if_sellable(channel, modem)

    async def _advertise_if_sellable(self, channel: str, modem: ChannelModem) -> bool:
        view = self.inventory.channels[channel]
        status = modem.status()
        if status is None or not status.sellable or status.iccid != view.iccid:
            return False
        assert status.iccid is not None and status.number is not None
        if not await self.inventory.number_learned(
            status.iccid, status.number, status.number_source
        ):
            self.runs[channel].state = "conflict"
            return False
        await self.inventory.live(status.iccid)
        modem.unhold()
        run = self.runs[channel]
        if run.state != "live":
            if run.state != "quarantined":
                run.state = "live"
            live_since = view.live_since or self.clock()
            run.next_rotation_at = live_since + self.settings.dwell_seconds
            log.info(
                "event=simbank_advertised board=%s channel=%s slot=%s iccid=%s number=%s",
                self.name,
                channel,
                view.active_slot,
                status.iccid,
                status.number,
            )
        return True

    # --- choosing what to rotate ----------------------------------------------------------

    def _channel_leased(self, channel: str) -> bool:
        iccid = self.inventory.channels[channel].iccid
        sim = self.inventory.sim(iccid) if iccid else None
        return sim is not None and sim.number is not None and self.leased(sim.number)

    def any_leased(self) -> bool:
        """Whether any SIM of the board (live or not) holds an open activation or rental."""
        return any(
            sim.number is not None and self.leased(sim.number) for sim in self.inventory.sims()
        )

    def _limit(self) -> int:
        return max(1, math.floor(self.settings.max_in_transition * len(self.modems)))

    def eligible(self, channel: str) -> bool:
        run = self.runs[channel]
        if channel in self._busy or channel in self._anomalies:
            return False
        if run.state not in ("live", "waiting", "conflict", "quarantined"):
            return False
        if self._channel_leased(channel):
            return False
        if run.next_rotation_at is None:
            run.next_rotation_at = self.clock() + self.settings.dwell_seconds
            return False
        if self.clock() < run.next_rotation_at:
            return False
        return self.inventory.next_slot(channel) is not None

    def _start_rotations(self) -> None:
        if not self.ready:
            return
        for channel in sorted(self.modems, key=self._rotation_order):
            if len(self._busy) >= self._limit():
                return
            if self.eligible(channel):
                self._launch(channel, self._rotate(channel))

    def _rotation_order(self, channel: str) -> tuple[float, str]:
        view = self.inventory.channels[channel]
        return (view.live_since or 0.0, channel)

    def _launch(self, channel: str, work) -> None:
        self._busy.add(channel)

        async def wrapped() -> None:
            try:
                await work
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "event=simbank_rotation_crashed board=%s channel=%s", self.name, channel
                )
            finally:
                self._busy.discard(channel)
                self._tasks.pop(channel, None)
                self._wake.set()

        self._tasks[channel] = asyncio.create_task(wrapped(), name=f"simbank {self.name} {channel}")

    # --- one rotation ---------------------------------------------------------------------

    async def _rotate(self, channel: str, resume: RotationRecord | None = None) -> None:
        inventory, settings = self.inventory, self.settings
        modem = self.modems[channel]
        view = inventory.channels[channel]
        run = self.runs[channel]
        run.state, run.step = "rotating", "drain"
        if resume is None:
            to_slot = inventory.next_slot(channel)
            if to_slot is None:
                run.state = "waiting"
                return
            modem.hold()
            if self._channel_leased(channel):  # leased just before the hold: leave it
                modem.unhold()
                run.state = "live"
                return
            if view.iccid is not None:
                await inventory.live(view.iccid)  # last live now: it goes to the back
            if settings.drain_seconds > 0:
                await asyncio.sleep(settings.drain_seconds)  # in-flight GET_NUMBERs expire
            rotation = await inventory.rotation_planned(
                channel, view.active_slot, view.iccid, to_slot
            )
            run.step = "sweep"
            try:
                await modem.sweep(settings.sweep_seconds)
            except Exception as error:
                await self._finish(channel, rotation, "sweep_failed", str(error), advertise=True)
                return
            rotation = await inventory.rotation_step(rotation, "swept")
        else:
            rotation = resume
            modem.hold()
        await self._switch_and_verify(channel, rotation, restoring=False)

    async def _switch_and_verify(
        self, channel: str, rotation: RotationRecord, *, restoring: bool
    ) -> None:
        """Steps 4 to 9 (detach, switch, settle, reset, wait for the SIM, verify), then 10–13."""
        inventory, settings = self.inventory, self.settings
        modem = self.modems[channel]
        run = self.runs[channel]
        to_slot = rotation.to_slot
        old_iccid = None if restoring else rotation.old_iccid
        expected = rotation.expected_iccid
        result, detail, read = "error", None, SimRead(None)
        attempts = rotation.attempts
        try:
            async with modem.held(settings.hold_seconds) as held:
                run.step = "detach"
                await held.detach()
                rotation = await inventory.rotation_step(rotation, "detached")
                for attempt in range(1 + settings.verify_retries):
                    if attempt > 0:
                        await held.detach()  # the module was reset on its old SIM: again
                    run.step = "switch"
                    attempts += 1
                    rotation = await inventory.rotation_step(
                        rotation, "switch_sent", attempts=attempts
                    )
                    await self.switcher.switch(channel, to_slot)
                    run.step = "settle"
                    if settings.settle_seconds > 0:
                        await asyncio.sleep(settings.settle_seconds)
                    run.step = "reset"
                    await held.reset(full=settings.full_reset)
                    rotation = await inventory.rotation_step(rotation, "reset")
                    run.step = "verify"
                    read = await held.read_sim(settings.sim_ready_seconds)
                    if read.iccid is None or read.iccid != old_iccid:
                        break
                    log.warning(
                        "event=simbank_switch_not_applied board=%s channel=%s slot=%d attempt=%d",
                        self.name,
                        channel,
                        to_slot,
                        attempts,
                    )
                    self.stats.failures[NOT_APPLIED] += 1
                rotation = await inventory.rotation_step(rotation, "verified")
        except (SwitcherError, ChannelUnavailable, TimeoutError, OSError) as error:
            detail = f"{type(error).__name__}: {error}"
        except Exception as error:  # an AT failure of the module: its driver recovers it
            detail = f"{type(error).__name__}: {error}"
        else:
            result, detail = await self._classify(channel, rotation, read, old_iccid, expected)
        if result == "error":
            log.error(
                "event=simbank_rotation_failed board=%s channel=%s detail=%r",
                self.name,
                channel,
                detail,
            )
        await self._finish(channel, rotation, result, detail, advertise=True)

    async def _classify(
        self,
        channel: str,
        rotation: RotationRecord,
        read: SimRead,
        old_iccid: str | None,
        expected: str | None,
    ) -> tuple[str, str | None]:
        inventory = self.inventory
        to_slot = rotation.to_slot
        view = inventory.channels[channel]
        if read.iccid is None:
            if read.detail == "no SIM in the slot":
                await inventory.slot_empty(channel, to_slot)
                await inventory.set_channel(channel, slot=to_slot, iccid=None)
                return "empty", read.detail
            self.stats.failures[SIM_NOT_READY] += 1
            await inventory.set_channel(channel, slot=to_slot, iccid=None)
            return SIM_NOT_READY, read.detail
        if old_iccid is not None and read.iccid == old_iccid:
            view.failures += 1
            await inventory.set_channel(
                channel, slot=rotation.from_slot, iccid=old_iccid, failures=view.failures
            )
            await inventory.quarantine(
                channel,
                f"the switch to slot {to_slot} was never applied "
                f"({rotation.attempts} tries): check the board and the cable",
            )
            self.stats.incidents.append(f"{self.name}/{channel}: quarantined")
            return NOT_APPLIED, "quarantined"
        known = inventory.sim(read.iccid)
        if known is not None and (known.channel, known.slot) != (channel, to_slot):
            # S2: another known SIM came up (slot 1, an adjacent slot, another channel).
            self.stats.failures[WRONG_LANDING] += 1
            landed = known.slot if known.channel == channel else to_slot
            log.warning(
                "event=simbank_wrong_landing board=%s channel=%s wanted=%d landed=%s/%d",
                self.name,
                channel,
                to_slot,
                known.channel,
                known.slot,
            )
            await inventory.seen(channel, landed, read.iccid)
            await inventory.set_channel(channel, slot=landed, iccid=read.iccid, failures=0)
            return WRONG_LANDING, f"landed on slot {landed}"
        _, new = await inventory.seen(channel, to_slot, read.iccid)
        await inventory.set_channel(channel, slot=to_slot, iccid=read.iccid, failures=0)
        if view.quarantined:
            await inventory.release_quarantine(channel)
        return ("learned" if new else "ok"), None

    async def _finish(
        self,
        channel: str,
        rotation: RotationRecord,
        result: str,
        detail: str | None,
        *,
        advertise: bool,
    ) -> None:
        """Steps 10–13: the driver sets up, sweeps and registers; advertise; close the record."""
        run = self.runs[channel]
        view = self.inventory.channels[channel]
        run.step = "register"
        registered = False
        if view.iccid is not None and advertise:
            registered = await self._wait_sellable(channel)
            if not registered and result in ("ok", "learned", WRONG_LANDING):
                status = self.modems[channel].status()
                if status is None or status.number is not None or not status.iccid:
                    self.stats.failures[NOT_REGISTERED] += 1
                    detail = detail or "not sellable within registration_seconds"
        await self.inventory.rotation_done(rotation, result, detail)
        self.stats.rotations[result] += 1
        run.last_result = result
        run.step = None
        run.state = "quarantined" if view.quarantined else "waiting"
        pause = (
            self.settings.quarantine_seconds if view.quarantined else self.settings.dwell_seconds
        )
        run.next_rotation_at = self.clock() + pause
        if registered:
            await self._advertise_if_sellable(channel, self.modems[channel])
        log.info(
            "event=simbank_rotation_done board=%s channel=%s rotation=%d result=%s slot=%s"
            " iccid=%s",
            self.name,
            channel,
            rotation.id,
            result,
            view.active_slot,
            view.iccid,
        )

    async def _wait_sellable(self, channel: str) -> bool:
        """Until the driver reports the verified SIM sellable (set up, swept, registered)."""
        modem = self.modems[channel]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.registration_seconds
        for _ in range(MAX_STATUS_WAKEUPS):
            status = modem.status()
            view = self.inventory.channels[channel]
            if status is not None and status.sellable and status.iccid == view.iccid:
                return True
            if status is not None and status.registration == "denied":
                return False
            left = deadline - loop.time()
            if left <= 0:
                return False
            self._status_changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._status_changed.wait()
        return False

    # --- SIMs that moved by themselves (board power loss, S7) -----------------------------

    async def _handle_anomalies(self) -> None:
        if not self._anomalies or not self.ready:
            return
        await asyncio.sleep(self.settings.anomaly_window_seconds)  # let the others show up
        channels = sorted(self._anomalies - self._busy)
        if not channels:
            return
        if len(channels) > 1:
            leased = [c for c in self.modems if self._channel_leased(c)]
            incident = (
                f"{self.name}: SIMs of {len(channels)} channels changed at once (board reset?);"
                f" restoring, leased first ({','.join(leased) or 'none leased'})"
            )
            log.error("event=simbank_incident board=%s detail=%r", self.name, incident)
            self.stats.incidents.append(incident)
            # trust nothing on this board: every idle channel is read again
            channels = sorted(c for c in self.modems if c not in self._busy)
            for channel in channels:
                self.modems[channel].hold()
        channels.sort(key=lambda c: (not self._channel_leased(c), c))
        for channel in channels:
            self._anomalies.discard(channel)
            self._busy.add(channel)
        # Leased channels first, one after the other; the rest follow in parallel.
        first = [c for c in channels if self._channel_leased(c)]
        rest = [c for c in channels if c not in first]
        for channel in first:
            await self._restore(channel)
            self._busy.discard(channel)
        for channel in rest:
            self._busy.discard(channel)
            self._launch(channel, self._restore(channel))

    async def _restore(self, channel: str) -> None:
        """Switch the channel back to the slot the inventory says, and verify."""
        view = self.inventory.channels[channel]
        run = self.runs[channel]
        run.state = "restoring"
        slot = view.active_slot or 1
        rotation = await self.inventory.rotation_planned(channel, slot, view.iccid, slot)
        self.modems[channel].hold()
        await self._switch_and_verify(channel, rotation, restoring=True)
