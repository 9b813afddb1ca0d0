"""Helpers for tests that run simfarm as a separate process."""

from __future__ import annotations

import asyncio
import re
import socket

#: Most lines read from a process while waiting for one that matches.
MAX_LINES = 500


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def read_until(stream: asyncio.StreamReader, pattern: str, timeout: float) -> re.Match:
    """Read lines until one matches `pattern`; bounded in lines and time."""
    async with asyncio.timeout(timeout):
        for _ in range(MAX_LINES):
            line = (await stream.readline()).decode(errors="replace")
            if not line:
                raise AssertionError(f"the process ended before printing {pattern!r}")
            found = re.search(pattern, line)
            if found:
                return found
    raise AssertionError(f"{pattern!r} not among the first {MAX_LINES} lines")


async def read_lines_until(stream: asyncio.StreamReader, pattern: str, timeout: float) -> list[str]:
    """Every line read up to and including the first that matches `pattern` (bounded like
    read_until), without their line ends."""
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        for _ in range(MAX_LINES):
            line = (await stream.readline()).decode(errors="replace")
            if not line:
                raise AssertionError(f"the process ended before printing {pattern!r}: {lines}")
            lines.append(line.rstrip("\n"))
            if re.search(pattern, line):
                return lines
    raise AssertionError(f"{pattern!r} not among the first {MAX_LINES} lines")
