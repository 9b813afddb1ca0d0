"""The driver's handle on the AT engine: its timeouts, proof of life, and "SIM busy" back-off."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from drivers.at.engine import AtEngine, AtReply
from drivers.at.errors import AtCommandError, AtFinalError, CmeError, CmsError
from drivers.modem.settings import DriverTimings

log = logging.getLogger(__name__)

#: `+CME ERROR` codes that mean "not yet": SIM busy, module still initialising (F19).
BUSY_CME_CODES: frozenset[int] = frozenset({14, 515})
#: `+CMS ERROR` codes that mean "not yet": SIM busy, operation not allowed (yet) (F19).
BUSY_CMS_CODES: frozenset[int] = frozenset({314, 302})


def is_busy(error: BaseException) -> bool:
    """Whether a refusal means the SIM or module is still busy starting up."""
    if isinstance(error, CmeError):
        return error.code in BUSY_CME_CODES
    if isinstance(error, CmsError):
        return error.code in BUSY_CMS_CODES
    return False


class ModemLink:
    """Sends commands with the driver's timeouts and remembers when the modem last answered."""

    def __init__(self, engine: AtEngine, timings: DriverTimings) -> None:
        self.engine = engine
        self.timings = timings
        self.port = engine.port
        self.last_answer_at = asyncio.get_running_loop().time()

    async def command(
        self,
        command: str,
        *,
        long: bool = False,
        timeout: float | None = None,
        expect: str | Iterable[str] | None = None,
    ) -> AtReply:
        """One command; `AtTimeout`/`PortGone` propagate, refusals raise `AtFinalError`s."""
        if timeout is None:
            timeout = self.timings.long_command_seconds if long else self.timings.command_seconds
        try:
            reply = await self.engine.command(command, timeout=timeout, expect=expect)
        except AtFinalError:
            self._answered()  # a refusal is still an answer: the modem is alive
            raise
        self._answered()
        return reply

    async def optional(self, command: str, **options: object) -> AtReply | None:
        """A command whose refusal is fine (vendor extras, features some models lack)."""
        try:
            return await self.command(command, **options)  # type: ignore[arg-type]
        except (AtCommandError, CmeError, CmsError) as error:
            log.debug(
                "event=optional_refused port=%s command=%s final=%r", self.port, command, error
            )
            return None

    async def patient(self, command: str, *, deadline: float, **options: object) -> AtReply:
        """Retry while the SIM/module answers "busy", backing off, until loop time `deadline`."""
        loop = asyncio.get_running_loop()
        backoff = self.timings.sim_busy_backoff_seconds
        while True:
            try:
                return await self.command(command, **options)  # type: ignore[arg-type]
            except AtFinalError as error:
                if not is_busy(error) or loop.time() + backoff > deadline:
                    raise
                log.info(
                    "event=modem_busy port=%s command=%s final=%r retry_in_s=%.2f",
                    self.port,
                    command,
                    error.final_line,
                    backoff,
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.timings.sim_busy_backoff_max_seconds)

    def _answered(self) -> None:
        self.last_answer_at = asyncio.get_running_loop().time()
