"""A modem handed over by its driver for a SIM switch (spec simbank.md §6.2 steps 4, 7, 8).

While a caller holds the modem the driver's worker is parked: nothing else talks on the port.
The caller detaches the radio, has the slot switched, resets the module and reads the new SIM;
when it lets go, the driver re-initialises as after a reboot (storage setup, a sweep,
registration, the number) and reports the new SIM in its status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from drivers.at.commands import PROBE, RADIO_OFF, RADIO_ON, REBOOT
from drivers.at.errors import AtError, AtTimeout, CmeError, CmsError
from drivers.modem.link import ModemLink
from drivers.modem.profiles import ModelProfile
from drivers.modem.sim import CME_NO_SIM, _cpin_state, read_sim_identity

log = logging.getLogger(__name__)

#: `+CME ERROR` codes that only mean "the SIM is settling" right after a switch (§4.2 S3, S4).
SETTLING_CME_CODES = frozenset({10, 13, 14, 515})


@dataclass(frozen=True, slots=True)
class SimRead:
    """The SIM a module reads after a switch: its ICCID and IMSI, or None and why not."""

    iccid: str | None
    imsi: str | None = None
    detail: str | None = None


class HeldModem:
    """The port of a parked driver, with the few operations a SIM switch needs."""

    def __init__(
        self,
        link: ModemLink,
        profile: ModelProfile,
        wait_for_restart: Callable[[float], Awaitable[bool]],
    ) -> None:
        self.link = link
        self.profile = profile
        self.port = link.port
        self._wait_for_restart = wait_for_restart

    async def detach(self) -> None:
        """Radio off (`AT+CFUN=0`): the module lets go of the network before the SIM moves."""
        await self.link.run(RADIO_OFF)

    async def reset(self, *, full: bool = True) -> None:
        """Make the module read the SIM again: `AT+CFUN=1,1` (full), or `CFUN=0` then `1`."""
        timings = self.link.timings
        if not full:
            await self.link.run(RADIO_OFF)
            await asyncio.sleep(timings.radio_off_seconds)
            await self.link.run(RADIO_ON)
            return
        await self.link.run(REBOOT)
        if await self._wait_for_restart(timings.reboot_wait_seconds):
            return
        # No boot URC (some models print none): the module is back once it answers.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timings.reboot_wait_seconds
        while loop.time() < deadline:
            try:
                await self.link.run(PROBE)
                return
            except AtTimeout:
                continue
        raise AtTimeout("the module did not come back after AT+CFUN=1,1", port=self.port)

    async def read_sim(self, timeout: float) -> SimRead:
        """Wait for the SIM (CME 10/13/14/515 and silence count as settling) and read it."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        timings = self.link.timings
        backoff = timings.sim_busy_backoff_seconds
        last = "no answer"
        while True:
            try:
                state = await _cpin_state(self.link)
            except AtTimeout:
                state = "BUSY"
            except (CmeError, CmsError) as error:
                state = f"BUSY ({error.final_line})"
            if state == "READY":
                try:
                    sim = await read_sim_identity(self.link, self.profile)
                except AtError as error:
                    last = f"the ICCID could not be read ({error})"
                else:
                    return SimRead(sim.iccid, sim.imsi)
            elif state in ("SIM PIN", "SIM PUK", "PH-SIM PIN"):
                return SimRead(None, detail=f"the SIM is locked ({state})")
            else:
                last = state
            if loop.time() + backoff > deadline:
                no_sim = last.startswith("NO SIM:") and any(
                    why in last for why in CME_NO_SIM.values()
                )
                detail = "no SIM in the slot" if no_sim else f"the SIM never got ready ({last})"
                return SimRead(None, detail=detail)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, timings.sim_busy_backoff_max_seconds)
