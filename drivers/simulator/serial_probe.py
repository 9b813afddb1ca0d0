"""A minimal blocking AT client over pyserial, with asyncio wrappers, for poking simulated modems.

Tests use it to speak to a simulator over the real pty exactly as a user would with a terminal:
every call is bounded by a timeout, and the blocking reads run in a worker thread
(`asyncio.to_thread`) so the simulator keeps running in the event loop meanwhile.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import serial

#: How long one blocking read waits before the deadline is checked again.
POLL_SECONDS = 0.02
#: Default bound for one command's reply.
COMMAND_TIMEOUT_SECONDS = 3.0

FINAL_RESULT = re.compile(r"^(OK|ERROR|NO CARRIER|COMMAND NOT SUPPORT|\+CM[ES] ERROR:.*)$")


@dataclass
class AtReply:
    command: str
    lines: list[str]  # every non-empty line after the echo, URCs included, final excluded
    final: str
    raw: bytes

    @property
    def ok(self) -> bool:
        return self.final == "OK"

    def starting(self, prefix: str) -> list[str]:
        return [line for line in self.lines if line.startswith(prefix)]


class SerialProbe:
    """One open serial port; line-oriented reads that never wait past their deadline."""

    def __init__(self, path: str, *, baudrate: int = 115200) -> None:
        self.path = path
        self.port = serial.Serial(path, baudrate, timeout=POLL_SECONDS)
        self._buffer = bytearray()
        self.received = bytearray()  # everything read, for debugging

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> SerialProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- blocking -----------------------------------------------------------------------------

    def _fill(self) -> None:
        chunk = self.port.read(1)
        if chunk:
            chunk += self.port.read(self.port.in_waiting)
            self._buffer += chunk
            self.received += chunk

    def _pop_line(self) -> str | None:
        match = re.search(rb"\r\n|\r|\n", self._buffer)
        while match is not None:
            line = bytes(self._buffer[: match.start()])
            del self._buffer[: match.end()]
            if line.strip():
                return line.decode("latin-1").strip()
            match = re.search(rb"\r\n|\r|\n", self._buffer)
        return None

    def read_line_blocking(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self._pop_line()
            if line is not None:
                return line
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no line from {self.path} within {timeout} s")
            self._fill()

    def wait_for_blocking(
        self, matches: Callable[[str], bool], timeout: float
    ) -> tuple[str, list[str]]:
        """Read lines until one `matches`; returns it and the lines read before it."""
        deadline = time.monotonic() + timeout
        skipped: list[str] = []
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.path}: awaited line never came; saw {skipped!r}")
            line = self.read_line_blocking(remaining)
            if matches(line):
                return line, skipped
            skipped.append(line)

    def command_blocking(self, command: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> AtReply:
        start = len(self.received)
        self.port.write(command.encode("latin-1") + b"\r")
        final, lines = self.wait_for_blocking(
            lambda ln: FINAL_RESULT.match(ln) is not None, timeout
        )
        if command in lines:  # drop the echo and any URC that came before it
            lines = lines[len(lines) - lines[::-1].index(command) :]
        return AtReply(command, lines, final, bytes(self.received[start:]))

    def read_for_blocking(self, seconds: float) -> bytes:
        """Whatever arrives within `seconds` (for asserting silence), plus anything buffered."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._fill()
        data, self._buffer = bytes(self._buffer), bytearray()
        return data

    # -- asyncio ------------------------------------------------------------------------------

    async def command(self, command: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> AtReply:
        return await asyncio.to_thread(self.command_blocking, command, timeout)

    async def write(self, data: bytes) -> None:
        await asyncio.to_thread(self.port.write, data)

    async def read_line(self, timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
        return await asyncio.to_thread(self.read_line_blocking, timeout)

    async def wait_for(
        self, prefix: str | Callable[[str], bool], timeout: float = COMMAND_TIMEOUT_SECONDS
    ) -> tuple[str, list[str]]:
        matches = prefix if callable(prefix) else (lambda line: line.startswith(prefix))
        return await asyncio.to_thread(self.wait_for_blocking, matches, timeout)

    async def read_for(self, seconds: float) -> bytes:
        return await asyncio.to_thread(self.read_for_blocking, seconds)

    async def wait_for_bytes(
        self, needle: bytes, timeout: float = COMMAND_TIMEOUT_SECONDS
    ) -> bytes:
        """Read until `needle` shows up in the raw stream (e.g. the `> ` prompt)."""

        def blocking() -> bytes:
            deadline = time.monotonic() + timeout
            while needle not in self._buffer:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{needle!r} never came from {self.path}")
                self._fill()
            position = self._buffer.index(needle) + len(needle)
            data = bytes(self._buffer[:position])
            del self._buffer[:position]
            return data

        return await asyncio.to_thread(blocking)
