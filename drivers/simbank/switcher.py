"""What the rotation logic needs of a SIM-slot switcher, whatever the hardware.

A switcher connects one slot of a channel to the module wired to that channel. Serial switch
boards (`drivers.simbank.board`), network gateways with an HTTP API and dual-SIM modules each
implement this small interface, so the rotation logic never learns how a switch is commanded.

A switcher's answer is never proof: `switch()` returning means the command was sent (and maybe
acknowledged); only the ICCID the module reads after its reset tells what is live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class SwitcherError(Exception):
    """The switcher refused every attempt, or its port is gone; nothing may be assumed."""


class RowWideRefused(SwitcherError):
    """A command that moves every channel was asked for while a SIM of the board is leased."""


@dataclass(frozen=True, slots=True)
class SwitchSent:
    """A command went out: the reply it got (None for silence) and how many tries it took."""

    command: str
    reply: str | None
    attempts: int

    @property
    def acknowledged(self) -> bool:
        return self.reply is not None


class SlotSwitcher(Protocol):
    """One board (or gateway, or dual-SIM module): channels "01".. and slots 1..`slots`."""

    @property
    def name(self) -> str:
        """How logs and the operator's view name it (the control port, the gateway URL)."""

    @property
    def slots(self) -> int: ...

    async def open(self) -> None:
        """Take the control port; one owner, one writer."""

    async def close(self) -> None: ...

    async def handshake(self) -> str | None:
        """Ask whether the board is there; its reply, None for silence."""

    async def switch(self, channel: str, slot: int) -> SwitchSent:
        """Connect `slot` (1-based) of `channel` ("01"..). Raises SwitcherError when refused."""

    async def cold_reset(self) -> SwitchSent:
        """Every channel back to slot 1; only at a cold start with no lease on the board."""
