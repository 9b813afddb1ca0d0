"""The driver's handle on the AT engine: its timeouts, proof of life, and "SIM busy" back-off."""

from __future__ import annotations

import asyncio
import logging
from typing import TypeVar

from drivers.at.commands import Command, Wait
from drivers.at.engine import AtEngine
from drivers.at.errors import (
    AtCommandError,
    AtFinalError,
    CmeError,
    CmsError,
    ReplyParseError,
    UnparsedReply,
)
from drivers.modem.settings import DriverTimings

log = logging.getLogger(__name__)

T = TypeVar("T")

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
    """Runs the commands of `drivers.at.commands` with the driver's timeouts and remembers when
    the modem last answered."""

    def __init__(self, engine: AtEngine, timings: DriverTimings) -> None:
        self.engine = engine
        self.timings = timings
        self.port = engine.port
        self.last_answer_at = asyncio.get_running_loop().time()

    def seconds(self, wait: Wait) -> float:
        """What a wait class is worth on this driver (the one source of command timeouts)."""
        if wait is Wait.PROBE:
            return self.timings.probe_seconds
        if wait is Wait.LONG:
            return self.timings.long_command_seconds
        return self.timings.command_seconds

    async def run(self, command: Command[T]) -> T:
        """One command and its parsed reply; `AtTimeout`/`PortGone` propagate, refusals raise
        `AtFinalError`s, a reply its parser refuses raises `UnparsedReply`."""
        try:
            reply = await self.engine.command(command.text, timeout=self.seconds(command.wait))
        except AtFinalError:
            self._answered()  # a refusal is still an answer: the modem is alive
            raise
        self._answered()
        try:
            return command.parse(reply)
        except UnparsedReply:
            raise
        except ReplyParseError as error:
            raise UnparsedReply(
                str(error.args[0]), lines=reply.lines, command=command.text, port=self.port
            ) from error

    async def run_optional(self, command: Command[T]) -> T | None:
        """A command whose refusal is fine (vendor extras, features some models lack): None."""
        try:
            return await self.run(command)
        except (AtCommandError, CmeError, CmsError) as error:
            log.debug(
                "event=optional_refused port=%s command=%s final=%r", self.port, command.text, error
            )
            return None

    async def accepts(self, command: Command[None]) -> bool:
        """Whether the modem took a setting whose refusal is fine."""
        try:
            await self.run(command)
        except (AtCommandError, CmeError, CmsError) as error:
            log.debug(
                "event=optional_refused port=%s command=%s final=%r", self.port, command.text, error
            )
            return False
        return True

    async def run_patient(self, command: Command[T], *, deadline: float) -> T:
        """Retry while the SIM/module answers "busy", backing off, until loop time `deadline`."""
        loop = asyncio.get_running_loop()
        backoff = self.timings.sim_busy_backoff_seconds
        while True:
            try:
                return await self.run(command)
            except AtFinalError as error:
                if not is_busy(error) or loop.time() + backoff > deadline:
                    raise
                log.info(
                    "event=modem_busy port=%s command=%s final=%r retry_in_s=%.2f",
                    self.port,
                    command.text,
                    error.final_line,
                    backoff,
                )
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.timings.sim_busy_backoff_max_seconds)

    def _answered(self) -> None:
        self.last_answer_at = asyncio.get_running_loop().time()
