"""The serial control port of a SIM-bank switch board ("卡池"), spec simbank.md §3.1.

Dialect: `AT+CWSIM` (handshake), `AT+SWIT<cc>-<ssss>` (channel `cc`, two digits, to slot `ssss`,
four digits, both zero-padded), `AT+NEXT00` / `AT+SWIT00-<ssss>` (every channel at once). Boards
answer `SWITCH OK`, `SWSIM OK`, `CWSIM OK`, a plain `OK`, or nothing at all; all of these mean
"sent", none of them means "done" (§4.2 S1). `ERROR` is retried a few times, spaced.

One writer per board: commands are serialised by a lock and spaced at least
`min_command_interval_seconds` apart (boards share an internal bus; simultaneous sends collide,
§4.2 S6). Row-wide commands move channels whose SIM may be leased, so they are refused unless the
owner's `row_wide_allowed()` says no SIM on the board is leased (a cold start).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import serial
import serial_asyncio_fast

from drivers.simbank.switcher import RowWideRefused, SwitcherError, SwitchSent

log = logging.getLogger(__name__)

#: How long a reply may take before silence counts as "sent" (some boards never answer).
REPLY_TIMEOUT_SECONDS = 2.0
#: Extra tries after `ERROR`, and the pause before each (never shorter than the spacing).
ERROR_RETRIES = 3
ERROR_RETRY_SECONDS = 1.0
#: Replies that mean "the board took the command" (never that the SIM is live).
ACCEPTED_REPLIES = frozenset({"OK", "SWITCH OK", "SWSIM OK", "CWSIM OK", "NEXT OK"})
#: Most stray lines skipped while waiting for one reply (a babbling board cannot hold us).
MAX_STRAY_LINES = 32
MAX_LINE_BYTES = 256


def switch_command(channel: str | int, slot: int) -> str:
    """`AT+SWIT03-0005`: channel two digits, slot four digits, both zero-padded."""
    number = int(channel)
    if not 0 <= number <= 99:
        raise ValueError(f"channel must be 00..99, got {channel!r}")
    if not 0 <= slot <= 9999:
        raise ValueError(f"slot must be 0..9999, got {slot!r}")
    return f"AT+SWIT{number:02d}-{slot:04d}"


class _LineReader(asyncio.Protocol):
    """Bytes from the board cut into lines (CR or LF ends a line, blank lines dropped)."""

    def __init__(self) -> None:
        self.lines: asyncio.Queue[str] = asyncio.Queue()
        self.connected: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.lost = False
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.connected.done():
            self.connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self._buffer:
                    line = self._buffer.decode("latin-1").strip()
                    self._buffer.clear()
                    if line:
                        self.lines.put_nowait(line)
            elif len(self._buffer) < MAX_LINE_BYTES:
                self._buffer.append(byte)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.lines.put_nowait("")  # wakes a waiting reader


class SerialSwitchBoard:
    """A kind-B switch board on its own serial control port (implements `SlotSwitcher`)."""

    def __init__(
        self,
        port: str,
        *,
        slots: int,
        min_command_interval_seconds: float = 1.0,
        reply_timeout_seconds: float = REPLY_TIMEOUT_SECONDS,
        error_retries: int = ERROR_RETRIES,
        error_retry_seconds: float = ERROR_RETRY_SECONDS,
        baudrate: int = 115200,
        row_wide_allowed: Callable[[], bool] = lambda: False,
    ) -> None:
        self.port = port
        self._slots = slots
        self.min_interval = min_command_interval_seconds
        self.reply_timeout = reply_timeout_seconds
        self.error_retries = error_retries
        self.error_retry_seconds = error_retry_seconds
        self.baudrate = baudrate
        self.row_wide_allowed = row_wide_allowed
        self._lock = asyncio.Lock()
        self._reader: _LineReader | None = None
        self._last_sent: float | None = None
        self.commands_sent = 0
        self.errors = 0
        self.silent_replies = 0
        self.last_reply: str | None = None

    @property
    def name(self) -> str:
        return self.port

    @property
    def slots(self) -> int:
        return self._slots

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        reader = _LineReader()
        try:
            await serial_asyncio_fast.create_serial_connection(
                loop, lambda: reader, self.port, baudrate=self.baudrate, exclusive=True
            )
            async with asyncio.timeout(5.0):
                await reader.connected
        except (serial.SerialException, OSError, ValueError, TimeoutError) as exc:
            raise SwitcherError(
                f"switch board on {self.port} cannot be opened ({exc}): is another program "
                "holding the control port?"
            ) from exc
        self._reader = reader
        log.info("event=simbank_board_open port=%s", self.port)

    async def close(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and reader.transport is not None:
            reader.transport.close()
            await asyncio.sleep(0)

    async def handshake(self) -> str | None:
        sent = await self._send("AT+CWSIM")
        return sent.reply

    async def switch(self, channel: str, slot: int) -> SwitchSent:
        if int(channel) == 0:
            raise RowWideRefused("channel 00 moves every channel: use cold_reset()")
        if not 1 <= slot <= self._slots:
            raise ValueError(f"slot {slot} outside 1..{self._slots} on {self.port}")
        return await self._send(switch_command(channel, slot))

    async def cold_reset(self) -> SwitchSent:
        if not self.row_wide_allowed():
            raise RowWideRefused(
                f"board {self.port}: a SIM on it is leased; every-channel commands are only "
                "sent at a cold start with no lease"
            )
        return await self._send("AT+NEXT00")

    # --- one command, serialised and spaced ------------------------------------------------

    async def _send(self, command: str) -> SwitchSent:
        async with self._lock:
            if self._reader is None or self._reader.lost:
                await self.open()
            attempts = 0
            while True:
                attempts += 1
                reply = await self._exchange(command)
                if reply is None or reply.upper() in ACCEPTED_REPLIES:
                    if reply is None:
                        self.silent_replies += 1
                    log.info(
                        "event=simbank_command port=%s command=%s reply=%r attempts=%d",
                        self.port,
                        command,
                        reply,
                        attempts,
                    )
                    return SwitchSent(command, reply, attempts)
                self.errors += 1
                log.warning(
                    "event=simbank_command_refused port=%s command=%s reply=%r attempt=%d",
                    self.port,
                    command,
                    reply,
                    attempts,
                )
                if attempts > self.error_retries:
                    raise SwitcherError(
                        f"switch board on {self.port} refused {command} {attempts} times "
                        f"({reply}); check the slot range and the cable"
                    )
                await asyncio.sleep(self.error_retry_seconds)

    async def _exchange(self, command: str) -> str | None:
        """Write one command after the spacing; its reply line, or None after silence."""
        reader = self._reader
        assert reader is not None
        loop = asyncio.get_running_loop()
        if self._last_sent is not None:
            wait = self._last_sent + self.min_interval - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
        while not reader.lines.empty():  # late replies of an earlier command are not ours
            stale = reader.lines.get_nowait()
            if stale:
                log.debug("event=simbank_stale_line port=%s line=%r", self.port, stale)
        if reader.lost or reader.transport is None:
            raise SwitcherError(f"switch board on {self.port}: the control port went away")
        reader.transport.write(command.encode("ascii") + b"\r\n")
        self._last_sent = loop.time()
        self.commands_sent += 1
        deadline = loop.time() + self.reply_timeout
        for _ in range(MAX_STRAY_LINES):
            try:
                async with asyncio.timeout(max(0.0, deadline - loop.time())):
                    line = await reader.lines.get()
            except TimeoutError:
                return None
            if reader.lost:
                raise SwitcherError(f"switch board on {self.port}: the control port went away")
            upper = line.upper()
            if upper == command.upper():
                continue  # echo
            if upper in ACCEPTED_REPLIES or "ERROR" in upper:
                self.last_reply = line
                return line
            log.info("event=simbank_stray_line port=%s line=%r", self.port, line)
        return None

    def __repr__(self) -> str:
        return f"SerialSwitchBoard({self.port!r}, slots={self._slots})"
