"""The daemon as a process for the soak test.

    python -m tests.soak.soak_daemon CONFIG

The real Daemon built from the configuration file, with the real modem driver on the farm
test's short timings (so a wedged modem's recovery ladder runs in seconds, not minutes). Prints
`ready <port>` once the marketplace API listens, runs until SIGTERM or SIGINT (then stops
cleanly) or until it is killed, which is the point. When stdin is a pipe, its end (the test
process is gone) stops it too, so a daemon never outlives its test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys

from gateway.config import load_config
from gateway.daemon import Daemon
from gateway.ops.logs import setup_logging
from tests.gateway.farm_harness import quick_driver


async def serve(config_path: str) -> int:
    config = load_config(config_path)
    setup_logging(config.log.level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if stat.S_ISFIFO(os.fstat(sys.stdin.fileno()).st_mode):
        loop.add_reader(sys.stdin.fileno(), lambda: _stdin_readable(loop, stop))
    daemon = Daemon(config, driver_factory=quick_driver)
    try:
        await daemon.start()
        sys.stdout.write(f"ready {daemon.port}\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await daemon.stop()
    return 0


def _stdin_readable(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    if not os.read(sys.stdin.fileno(), 4096):  # end of file: the test process is gone
        loop.remove_reader(sys.stdin.fileno())
        stop.set()


if __name__ == "__main__":
    sys.exit(asyncio.run(serve(sys.argv[1])))
