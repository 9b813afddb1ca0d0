"""The benchmark's simfarm API process: a real Daemon with N synthetic live SIMs and no modems.

`python -m bench.serve_api --db FILE --sims N` builds `Daemon(config)` on a (seeded) database,
brings N SIMs online through `pool.sim_online` (as the farm would), then serves until SIGTERM.
It prints one line `READY {"port": ..., "live": ..., "online_seconds": ...}` on stdout when the
API answers with every SIM counted. With `--profile FILE` the serving phase runs under cProfile
and the stats are dumped to FILE on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import signal
import sys
import time
from pathlib import Path

from bench.seeding import SERVICES, synthetic_sims
from gateway.config import Config, config_from_dict
from gateway.daemon import Daemon
from gateway.ops.logs import setup_logging

KEY = "bench-partner-key"
#: SIMs brought online at once (their store jobs share commits, like a farm coming up).
ONLINE_BATCH = 500
#: Cancelled issues allowed per number and service: high, so the back-to-back GET_NUMBER + FINISH
#: (status 4) cycles of a long run never wear the pool out; barred services still count.
BENCH_MAX_ISSUES = 1_000_000_000
#: Nothing is pushed in this process (no SMS arrive); a closed loopback port is enough.
UNUSED_PUSH_URL = "http://127.0.0.1:9/v1/PUSH_SMS"


def bench_config(db: Path, port: int, log_level: str) -> Config:
    data: dict = {
        "server": {"host": "127.0.0.1", "port": port},
        "marketplace": {"key": KEY, "push_url": UNUSED_PUSH_URL},
        "storage": {"path": str(db)},
        "offer": {
            "services": list(SERVICES),
            "rent": True,
            "max_issues_per_service": BENCH_MAX_ISSUES,
        },
        "log": {"level": log_level},
    }
    if "admin" in Config.model_fields:
        data["admin"] = {"host": "127.0.0.1", "port": 0}
    return config_from_dict(data)


async def serve(args: argparse.Namespace) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    daemon = Daemon(bench_config(Path(args.db), args.port, args.log_level))
    profiler = cProfile.Profile() if args.profile else None
    try:
        await daemon.start()
        pool = daemon.pool
        assert pool is not None
        started = time.perf_counter()
        sims = synthetic_sims(args.sims)
        for first in range(0, len(sims), ONLINE_BATCH):
            await asyncio.gather(*(pool.sim_online(s) for s in sims[first : first + ONLINE_BATCH]))
        online_seconds = time.perf_counter() - started
        live = len(pool.live_numbers())
        ready = {"port": daemon.port, "live": live, "online_seconds": round(online_seconds, 3)}
        print("READY " + json.dumps(ready), flush=True)
        if profiler is not None:
            profiler.enable()
        await stop.wait()
        return 0
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
        await daemon.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_api")
    parser.add_argument("--db", required=True)
    parser.add_argument("--sims", type=int, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--profile", help="dump cProfile stats of the serving phase here")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
