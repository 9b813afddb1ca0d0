"""A light HTTP/1.1 keep-alive load generator on raw asyncio streams.

Each of C clients holds one connection and sends its requests back to back until the deadline (or
a request budget) runs out, timing every request from the first byte written to the last byte of
the reply read. Requests are prebuilt bytes and replies are parsed just enough to find their end
(Content-Length), so the client costs far less CPU per request than httpx would: on a 2-core
machine it still competes with the server, which is why every figure is read next to a bare
endpoint measured the same way in the same run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

#: Longest wait for one reply before the request counts as an error and the connection is redone.
REQUEST_TIMEOUT_SECONDS = 10.0
#: Longest wait to open a connection.
CONNECT_TIMEOUT_SECONDS = 5.0
#: Upper bound of requests one client sends in one run, whatever the duration.
MAX_REQUESTS_PER_CLIENT = 1_000_000
#: Largest reply header block and body accepted.
MAX_REPLY_BYTES = 4 * 1024 * 1024


class ReplyError(Exception):
    """The server's reply could not be read as HTTP/1.1 with a Content-Length."""


def build_request(host: str, port: int, path: str, payload: dict, key: str | None = None) -> bytes:
    """A POST with a JSON body, ready to write on a keep-alive connection."""
    body = json.dumps(payload, separators=(",", ":")).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if key is not None:
        lines.append(f"Authorization: Bearer {key}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def build_get(host: str, port: int, path: str) -> bytes:
    """A GET without a body, ready to write on a keep-alive connection."""
    return f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()


class Connection:
    """One keep-alive HTTP/1.1 connection; `request()` returns (status, body)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        #: Status line and headers of the last reply, as received.
        self.last_head = b""

    async def open(self) -> None:
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            self._reader, self._writer = await asyncio.open_connection(
                self.host, self.port, limit=MAX_REPLY_BYTES
            )

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await self._writer.wait_closed()
        self._reader = self._writer = None

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            await self.open()
        assert self._reader is not None and self._writer is not None
        self._writer.write(raw)
        head = await self._reader.readuntil(b"\r\n\r\n")
        self.last_head = head
        status_line, _, headers = head.partition(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ReplyError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        length = None
        for line in headers.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
                break
        if length is None or length > MAX_REPLY_BYTES:
            raise ReplyError("reply without a usable Content-Length")
        body = await self._reader.readexactly(length) if length else b""
        return int(parts[1]), body


#: One step of a client: sends one or more requests on the connection, returns what it timed
#: as (kind, seconds, ok) tuples.
Step = Callable[[Connection, int], Awaitable[list[tuple[str, float, bool]]]]


@dataclass
class LoadResult:
    """What one run of C clients measured, per request kind."""

    concurrency: int
    seconds: float
    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    notes: dict[str, int] = field(default_factory=dict)

    def count(self, kind: str | None = None) -> int:
        if kind is None:
            return sum(len(v) for v in self.latencies.values())
        return len(self.latencies.get(kind, ()))

    def rate(self, kind: str | None = None) -> float:
        return self.count(kind) / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, kind: str, q: float) -> float:
        return percentile(self.latencies.get(kind, []), q)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


async def run_load(
    host: str,
    port: int,
    step: Step,
    *,
    concurrency: int,
    seconds: float,
    warmup_seconds: float = 0.5,
    max_requests_per_client: int = MAX_REQUESTS_PER_CLIENT,
) -> LoadResult:
    """Run `step` back to back on `concurrency` connections: warm-up first, then measure."""
    result = LoadResult(concurrency, 0.0)
    measuring = False

    async def client(index: int) -> None:
        conn = Connection(host, port)
        sent = 0
        try:
            while sent < max_requests_per_client and loop.time() < deadline:
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                        timed = await step(conn, index)
                except (TimeoutError, OSError, ReplyError, asyncio.IncompleteReadError) as exc:
                    if measuring:
                        kind = type(exc).__name__
                        result.errors[kind] = result.errors.get(kind, 0) + 1
                    await conn.close()
                    await asyncio.sleep(0.01)
                    continue
                sent += len(timed)
                if not measuring:
                    continue
                for kind, elapsed, ok in timed:
                    if ok:
                        result.latencies.setdefault(kind, []).append(elapsed)
                    else:
                        result.notes[kind] = result.notes.get(kind, 0) + 1
        finally:
            await conn.close()

    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + warmup_seconds + seconds
    tasks = [asyncio.create_task(client(i)) for i in range(concurrency)]
    try:
        await asyncio.sleep(warmup_seconds)
        measuring = True
        measure_start = time.perf_counter()
        await asyncio.wait(tasks, timeout=seconds + REQUEST_TIMEOUT_SECONDS + 5)
        result.seconds = time.perf_counter() - measure_start
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    return result


async def timed_request(conn: Connection, raw: bytes) -> tuple[float, int, bytes]:
    """Send one request; returns (seconds, status, body)."""
    start = time.perf_counter()
    status, body = await conn.request(raw)
    return time.perf_counter() - start, status, body
