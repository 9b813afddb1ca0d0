"""The recovery ladder of playbook §2.12, with a budget per rung and counters per port.

Rungs, gentlest first: ESC + `AT` -> full re-init -> radio off/on (`+CFUN=0/1`) -> module reboot
(`+CFUN=1,1`). After each rung the driver tries a full bring-up; the first that works ends the
episode. When every rung has spent its budget the modem is DEAD and the driver climbs again
rarely. A USB power cycle (uhubctl) is the next rung on real hardware and is left to the farm.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from drivers.at.commands import PROBE, RADIO_OFF_QUICK, RADIO_ON, REBOOT_QUICK
from drivers.at.errors import AtError, AtFinalError, AtTimeout, PortGone
from drivers.modem.link import ModemLink
from drivers.modem.settings import DriverTimings

log = logging.getLogger(__name__)


class Rung(enum.StrEnum):
    ESCAPE = "escape"  # ESC + AT: leave a stuck prompt, drain late replies
    REINIT = "reinit"  # the whole init sequence again
    RADIO_RESET = "radio_reset"  # AT+CFUN=0, pause, AT+CFUN=1
    MODULE_REBOOT = "module_reboot"  # AT+CFUN=1,1: the module restarts (USB may re-enumerate)


#: Attempts per rung in one recovery episode, in climbing order.
LADDER: tuple[tuple[Rung, int], ...] = (
    (Rung.ESCAPE, 1),
    (Rung.REINIT, 1),
    (Rung.RADIO_RESET, 1),
    (Rung.MODULE_REBOOT, 1),
)

BringUp = Callable[[], Awaitable[None]]
WaitForReboot = Callable[[float], Awaitable[bool]]


class RecoveryLadder:
    """Climbs the rungs for one port and counts what it did (for logs and the operator).

    The driver keeps one ladder for its whole life and points `link` at each new port it opens,
    so the counters cover every episode since the driver started.
    """

    def __init__(self, link: ModemLink, wait_for_reboot: WaitForReboot) -> None:
        self.link = link
        self.wait_for_reboot = wait_for_reboot
        self.attempts: Counter[Rung] = Counter()
        self.successes: Counter[Rung] = Counter()
        self.episodes = 0
        self.deaths = 0

    async def climb(self, bring_up: BringUp) -> Rung | None:
        """Try each rung, then `bring_up`; the rung that worked, or None when all failed.

        `PortGone` and cancellation pass through: a vanished port is the farm's business.
        """
        self.episodes += 1
        for rung, budget in LADDER:
            for attempt in range(1, budget + 1):
                self.attempts[rung] += 1
                log.warning(
                    "event=recovery_rung port=%s rung=%s attempt=%d episode=%d total=%d",
                    self.link.port,
                    rung,
                    attempt,
                    self.episodes,
                    self.attempts[rung],
                )
                try:
                    await self._act(rung)
                    await bring_up()
                except PortGone:
                    raise
                except AtError as error:
                    log.warning(
                        "event=recovery_rung_failed port=%s rung=%s error=%r",
                        self.link.port,
                        rung,
                        str(error),
                    )
                    continue
                self.successes[rung] += 1
                log.warning(
                    "event=recovered port=%s rung=%s episode=%d",
                    self.link.port,
                    rung,
                    self.episodes,
                )
                return rung
        self.deaths += 1
        return None

    async def _act(self, rung: Rung) -> None:
        link = self.link
        timings = link.timings
        if rung is Rung.ESCAPE:
            # The engine sends ESC + AT and drains after every timeout; one more probe tells.
            await link.run(PROBE)
        elif rung is Rung.RADIO_RESET:
            await link.run(RADIO_OFF_QUICK)
            await asyncio.sleep(timings.radio_off_seconds)
            await link.run(RADIO_ON)
        elif rung is Rung.MODULE_REBOOT:
            try:
                await link.run(REBOOT_QUICK)
            except (AtTimeout, AtFinalError) as error:
                # A stuck module may reboot without a word, or not at all: the wait tells.
                log.info("event=reboot_unanswered port=%s error=%r", link.port, str(error))
            if not await self.wait_for_reboot(timings.reboot_wait_seconds):
                log.info("event=reboot_not_seen port=%s", link.port)
        # Rung.REINIT: the bring-up that follows is the whole rung.

    def recoveries(self) -> dict[str, int]:
        """Recoveries each rung ended, for the status; rungs that never ended one are left out."""
        return {str(rung): self.successes[rung] for rung, _ in LADDER if self.successes[rung]}

    def summary(self) -> str:
        """`escape=2/1 reinit=1/0 …` attempts/successes, for the DEAD detail and logs."""
        return " ".join(
            f"{rung}={self.attempts[rung]}/{self.successes[rung]}" for rung, _ in LADDER
        )


def silence_detection_bound(keepalive_seconds: float, timings: DriverTimings) -> float:
    """Longest time from a modem's last answer to the driver reporting RECOVERING."""
    return keepalive_seconds + timings.probe_seconds + timings.drain_max_seconds


def reboot_recovery_bound(keepalive_seconds: float, timings: DriverTimings) -> float:
    """Longest time from going silent to the reboot rung's bring-up starting (boot included)."""
    timeout_cost = timings.drain_max_seconds
    escape = timings.probe_seconds + timeout_cost
    reinit = timings.wake_attempts * (timings.probe_seconds + timeout_cost)
    radio = timings.command_seconds + timeout_cost
    reboot = timings.command_seconds + timeout_cost + timings.reboot_wait_seconds
    detection = silence_detection_bound(keepalive_seconds, timings)
    return detection + escape + reinit + radio + reboot
