"""Test helper: a started simulated modem plus a pyserial probe on its port, cleaned up after."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from .modem import SimulatedModem
from .profiles import Profile
from .serial_probe import SerialProbe
from .sim_card import SimCard


@asynccontextmanager
async def running_modem(
    profile: Profile,
    sim: SimCard | None,
    *,
    name: str | None = None,
    transcript_path: Path | None = None,
) -> AsyncIterator[tuple[SimulatedModem, SerialProbe]]:
    """Start a modem, open its pty with pyserial, and stop both on exit."""
    modem = SimulatedModem(profile, sim, name=name, transcript_path=transcript_path)
    await modem.start()
    probe = SerialProbe(modem.path)
    try:
        yield modem, probe
    finally:
        probe.close()
        await modem.stop()
