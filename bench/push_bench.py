"""Measure (f): N queued pushes drained against a fast fake marketplace, in pushes per second.

Two children: the fast marketplace (bench.fast_market) and the drain (bench.push_drain, the
daemon's PushWorker on a store filled with N pending pushes).
"""

from __future__ import annotations

from pathlib import Path

from bench.procs import Child, python_module
from bench.seeding import remove_database


async def measure_pushes(workdir: Path, *, count: int, log_level: str = "INFO") -> dict:
    market = Child("fast marketplace", python_module("bench.fast_market"), workdir / "market.log")
    drain: Child | None = None
    db = workdir / "push.db"
    remove_database(db)
    try:
        await market.start()
        url = f"http://127.0.0.1:{market.ready['port']}/v1/PUSH_SMS"
        drain = Child(
            "push drain",
            python_module(
                "bench.push_drain",
                "--db",
                str(db),
                "--url",
                url,
                "--count",
                str(count),
                "--log-level",
                log_level,
            ),
            workdir / "push-drain.log",
        )
        await drain.start()
        return dict(drain.ready)
    finally:
        if drain is not None:
            await drain.stop()
        await market.stop()
