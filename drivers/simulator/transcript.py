"""Every byte a simulated modem received and sent, timestamped, for debugging failed tests."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Direction = Literal["in", "out"]


@dataclass(frozen=True)
class TranscriptEntry:
    timestamp: float  # wall clock, seconds since the epoch
    port: str  # the pty path the bytes went through
    direction: Direction  # "in" = from the client to the modem
    data: bytes

    def render(self) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.timestamp))
        millis = int(self.timestamp % 1 * 1000)
        arrow = "<<" if self.direction == "in" else ">>"
        return f"{stamp}.{millis:03d} {self.port} {arrow} {self.data!r}"


class Transcript:
    """In-memory log of one modem's traffic, optionally appended to a text file as it happens."""

    def __init__(self, path: Path | None = None, *, max_entries: int = 100_000) -> None:
        self.path = path
        self.max_entries = max_entries
        self.entries: list[TranscriptEntry] = []

    def record(self, port: str, direction: Direction, data: bytes) -> None:
        entry = TranscriptEntry(time.time(), port, direction, bytes(data))
        self.entries.append(entry)
        if len(self.entries) > self.max_entries:
            del self.entries[: len(self.entries) - self.max_entries]
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as log:
                log.write(entry.render() + "\n")

    def received(self) -> bytes:
        return b"".join(e.data for e in self.entries if e.direction == "in")

    def sent(self) -> bytes:
        return b"".join(e.data for e in self.entries if e.direction == "out")

    def render(self) -> str:
        return "\n".join(e.render() for e in self.entries)
