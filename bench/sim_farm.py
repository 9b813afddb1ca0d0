"""The simulated modems of measures (c)-(e), in a process of their own.

`python -m bench.sim_farm --modems 64` opens one pty per modem (drivers.simulator's demo farm),
prints `READY {"ports": [...], "numbers": [...]}` and then reads commands on stdin, one a line:

    deliver NUMBER TAG    an SMS from the network to NUMBER, with TAG in its text

For every SMS it prints `ANNOUNCED TAG T W` when the modem writes its `+CMTI` (or routed `+CMT`)
indication to the pty: T is time.monotonic() (one clock for every process of the machine), W the
wall clock (to line up with the daemon's log lines).
It stops on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import signal
import sys
import time

from drivers.simulator import Transcript, make_demo_farm

#: Text of every benchmark SMS; the tag lets the marketplace side find its announcement.
SMS_TEXT = "Your code 4711 tag={tag}"
SMS_SENDER = "BENCH"
#: Longest command line read from stdin.
MAX_COMMAND_BYTES = 4096


class AnnouncementClock(Transcript):
    """A modem transcript that keeps nothing and notes when an SMS indication goes out."""

    def __init__(self) -> None:
        super().__init__(max_entries=0)
        self.waiting: collections.deque[str] = collections.deque()

    def record(self, port: str, direction: str, data: bytes) -> None:  # type: ignore[override]
        if direction != "out" or not self.waiting:
            return
        if b"+CMTI:" in data or b"+CMT:" in data:
            tag = self.waiting.popleft()
            sys.stdout.write(f"ANNOUNCED {tag} {time.monotonic():.6f} {time.time():.6f}\n")
            sys.stdout.flush()


async def serve(count: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    farm = make_demo_farm(count)
    clocks: dict[str, AnnouncementClock] = {}
    for modem in farm:
        clock = AnnouncementClock()
        modem.transcript = clock
        assert modem.sim is not None
        clocks[modem.sim.number] = clock
    reader = asyncio.StreamReader(limit=MAX_COMMAND_BYTES)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await farm.start()
    try:
        ready = {
            "ports": [m.path for m in farm],
            "numbers": [m.sim.number for m in farm if m.sim is not None],
        }
        print("READY " + json.dumps(ready), flush=True)
        commands = asyncio.create_task(_commands(reader, farm, clocks))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait({commands, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (commands, stopped):
            task.cancel()
        return 0
    finally:
        await farm.stop()


async def _commands(reader: asyncio.StreamReader, farm, clocks) -> None:
    while line := await reader.readline():
        words = line.decode(errors="replace").split()
        if len(words) == 3 and words[0] == "deliver":
            _, number, tag = words
            clocks[number].waiting.append(tag)
            farm.by_number(number).deliver_sms(SMS_SENDER, SMS_TEXT.format(tag=tag))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sim_farm")
    parser.add_argument("--modems", type=int, default=64)
    args = parser.parse_args(argv)
    return asyncio.run(serve(args.modems))


if __name__ == "__main__":
    sys.exit(main())
