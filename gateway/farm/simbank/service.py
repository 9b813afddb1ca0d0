"""The SIM banks of a daemon: one inventory, switcher and rotation per `[[simbanks]]` entry."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from drivers.simbank.board import SerialSwitchBoard
from drivers.simbank.switcher import SlotSwitcher
from gateway.farm.simbank.inventory import Inventory
from gateway.farm.simbank.rotation import BankRotation, FarmChannelModem, RotationSettings

if TYPE_CHECKING:
    from gateway.config import SimbankConfig
    from gateway.farm.farm import Farm
    from gateway.pool.pool import Pool
    from gateway.pool.storage import BankStorage

log = logging.getLogger(__name__)

#: The share of a bank's inventory live in the last this many seconds (a metric).
LIVE_SHARE_WINDOW_SECONDS = 24 * 3600.0

SwitcherFactory = Callable[["SimbankConfig", Callable[[], bool]], SlotSwitcher]
#: Runs a named long-running coroutine function (the daemon's supervisor, in production).
Spawn = Callable[[str, Callable[[], Awaitable[None]]], None]


def serial_switcher(bank: SimbankConfig, row_wide_allowed: Callable[[], bool]) -> SlotSwitcher:
    return SerialSwitchBoard(
        bank.port,
        slots=bank.slots,
        min_command_interval_seconds=bank.min_command_interval_seconds,
        reply_timeout_seconds=bank.reply_timeout_seconds,
        row_wide_allowed=row_wide_allowed,
    )


def rotation_settings(bank: SimbankConfig) -> RotationSettings:
    dwell = bank.dwell_minutes * 60.0
    return RotationSettings(
        dwell_seconds=dwell,
        max_in_transition=bank.max_in_transition,
        drain_seconds=bank.drain_seconds,
        settle_seconds=bank.settle_seconds,
        full_reset=bank.reset == "full",
        sim_ready_seconds=bank.sim_ready_seconds,
        registration_seconds=bank.registration_seconds,
        quarantine_seconds=bank.quarantine_minutes * 60.0,
        startup_seconds=max(bank.sim_ready_seconds, 30.0),
        hold_seconds=max(bank.sim_ready_seconds, 30.0),
        tick_seconds=max(0.2, min(5.0, dwell / 4)),
        anomaly_window_seconds=min(1.0, max(0.1, bank.settle_seconds)),
    )


class Simbanks:
    """Starts every bank's rotation beside the farm; the operators' view and metrics read it."""

    def __init__(
        self,
        banks: list[SimbankConfig],
        store: BankStorage,
        pool: Pool,
        farm: Farm,
        *,
        switcher_factory: SwitcherFactory = serial_switcher,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.banks = banks
        self.store = store
        self.pool = pool
        self.farm = farm
        self.switcher_factory = switcher_factory
        self.clock = clock
        self.rotations: list[BankRotation] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.spawned: list[str] = []  # names of the rotations handed to `spawn`

    async def start(self, spawn: Spawn | None = None) -> None:
        """Hold every channel (nothing is offered before its ICCID is read), then run.

        `spawn(name, run)` runs each board's rotation (the daemon's supervisor restarts one that
        fails); without it each runs as a plain task.
        """
        for bank in self.banks:
            inventory = Inventory(self.store, bank.port, bank.channels, bank.slots, self.clock)
            await inventory.load()
            modems = {
                channel: FarmChannelModem(self.farm, port)
                for channel, port in bank.channels.items()
            }
            holder: list[BankRotation] = []
            switcher = self.switcher_factory(
                bank, lambda holder=holder: bool(holder) and not holder[0].any_leased()
            )
            rotation = BankRotation(
                switcher,
                inventory,
                modems,  # type: ignore[arg-type]
                leased=lambda number: self.pool.open_activation_for(number) is not None,
                settings=rotation_settings(bank),
                clock=self.clock,
            )
            holder.append(rotation)
            rotation.hold_all()
            self.farm.on_status(rotation.status_changed)
            self.rotations.append(rotation)
            name = f"simbank {bank.port}"
            if spawn is not None:
                spawn(name, rotation.run)
                self.spawned.append(name)
            else:
                self._tasks.append(asyncio.create_task(rotation.run(), name=name))

    async def stop(self) -> None:
        """Stop the rotations (those handed to `spawn` must have been cancelled first)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for rotation in self.rotations:
            await rotation.stop()
        self._tasks.clear()

    def snapshot(self) -> list[dict[str, Any]]:
        """Boards, channels, active slot, ICCID, number, state, next rotation (plain data)."""
        now = self.clock()
        boards = []
        for rotation in self.rotations:
            inventory = rotation.inventory
            channels = []
            for channel, view in inventory.channels.items():
                run = rotation.runs[channel]
                sim = inventory.sim(view.iccid) if view.iccid else None
                channels.append(
                    {
                        "channel": channel,
                        "port": rotation.modems[channel].port,
                        "active_slot": view.active_slot,
                        "iccid": view.iccid,
                        "number": sim.number if sim else None,
                        "sim_state": sim.state if sim else None,
                        "state": run.state,
                        "step": run.step,
                        "quarantined": view.quarantined,
                        "detail": view.detail,
                        "next_rotation_in_seconds": (
                            None
                            if run.next_rotation_at is None
                            else max(0.0, run.next_rotation_at - now)
                        ),
                        "last_result": run.last_result,
                    }
                )
            boards.append(
                {
                    "board": rotation.name,
                    "slots": inventory.slots,
                    "ready": rotation.ready,
                    "sims_known": len(inventory.sims()),
                    "live_share_24h": inventory.live_share(now - LIVE_SHARE_WINDOW_SECONDS),
                    "rotations": dict(rotation.stats.rotations),
                    "failures": dict(rotation.stats.failures),
                    "quarantined": sum(1 for v in inventory.channels.values() if v.quarantined),
                    "incidents": list(rotation.stats.incidents),
                    "channels": channels,
                }
            )
        return boards
