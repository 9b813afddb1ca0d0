"""The daemon as a process for the soak test.

    python -m tests.soak.soak_daemon CONFIG

The real Daemon built from the configuration file, with the real modem driver on the farm
test's short timings (so a wedged modem's recovery ladder runs in seconds, not minutes). Prints
`ready <port>` once the marketplace API listens, runs until SIGTERM or SIGINT (then stops
cleanly) or until it is killed, which is the point.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from gateway.config import load_config
from gateway.daemon import Daemon
from gateway.logs import setup_logging
from tests.gateway.farm_harness import quick_driver


async def serve(config_path: str) -> int:
    config = load_config(config_path)
    setup_logging(config.log.level)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    daemon = Daemon(config, driver_factory=quick_driver)
    try:
        await daemon.start()
        sys.stdout.write(f"ready {daemon.port}\n")
        sys.stdout.flush()
        await stop.wait()
    finally:
        await daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(serve(sys.argv[1])))
