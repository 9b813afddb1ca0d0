"""The driver's scheduled work and the requests its worker serves, as types instead of strings.

A misspelt string key schedules work nobody does; an enum member cannot be misspelt. Requests
carry their future typed, so the worker needs no `isinstance` to know what it hands back.
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from drivers.modem.held import HeldModem


class Job(enum.Enum):
    """Work the worker does when its deadline passes."""

    SWEEP = "sweep"  # list and read every swept memory (hints get lost)
    SIGNAL = "signal"  # poll registration, operator and signal
    REASSERT = "reassert"  # re-send the volatile settings
    NUMBER = "number"  # try the number ladder again
    SIM_RETRY = "sim_retry"  # re-initialise to look for a SIM again


@dataclass(frozen=True, slots=True)
class Handover:
    """What a hold hands over: the parked modem, and the event that gives it back."""

    held: HeldModem
    release: asyncio.Event


@dataclass(frozen=True, slots=True)
class SweepRequest:
    """`sweep_now`: the future gets whether the SIM was ready (there was anything to sweep)."""

    future: asyncio.Future[bool]


@dataclass(frozen=True, slots=True)
class HoldRequest:
    """`held`: the future gets the handover once the worker is parked."""

    future: asyncio.Future[Handover]

    def give_back(self) -> None:
        """The caller gave up just as the handover came: release the modem at once."""
        future = self.future
        if future.done() and not future.cancelled() and future.exception() is None:
            future.result().release.set()


Request = SweepRequest | HoldRequest
