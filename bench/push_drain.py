"""Measure (f): drain a PUSH_SMS outbox of N queued pushes against a fast marketplace.

`python -m bench.push_drain --db FILE --url URL --count 1000` queues N SMS on N open activations
through the store (as the pool does when SMS arrive), then starts the daemon's PushWorker and
times it until every push is recorded as pushed. Prints `READY {json}` with the result.
Run in a process of its own so its logging and event loop are the daemon's, not the benchmark's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from gateway.marketplaces.push import PushSettings, PushWorker
from gateway.ops.logs import setup_logging
from gateway.pool.records import ActivationRecord, IncomingSms
from gateway.pool.sqlite import Store

KEY = "bench-push-key"
#: Store jobs queued at once while filling the outbox.
FILL_BATCH = 250
#: Longest the drain may take before it is given up.
DRAIN_TIMEOUT_SECONDS = 300.0
#: How often the drain checks the worker's counter.
POLL_SECONDS = 0.005


async def fill(store: Store, count: int) -> None:
    now = time.time()
    for first in range(1, count + 1, FILL_BATCH):
        jobs = []
        for i in range(first, min(first + FILL_BATCH, count + 1)):
            activation = ActivationRecord(
                id=i,
                number=f"7916{i:07d}",
                iccid=f"8970199{i:012d}",
                service="vk",
                rent=False,
                country="russia",
                operator="mts",
                sum=10.0,
                created_at=now,
            )
            jobs.append(_queue_one(store, activation, now))
        await asyncio.gather(*jobs)


async def _queue_one(store: Store, activation: ActivationRecord, now: float) -> None:
    await store.open_activation(activation)
    sms = IncomingSms(
        iccid=activation.iccid,
        fingerprint=f"bench-{activation.id}",
        sender="VK",
        text=f"VK: {activation.id:05d} is your code",
        pdus=("00",),
        received_at=now,
    )
    await store.store_sms(sms, number=activation.number, activation=activation, push_at=now)


async def drain(db: Path, url: str, count: int) -> dict:
    store = await Store.open(db)
    try:
        await fill(store, count)
        worker = PushWorker(store, PushSettings(key=KEY, url=url, rent_url=url))
        started = time.perf_counter()
        task = asyncio.create_task(worker.run())
        deadline = started + DRAIN_TIMEOUT_SECONDS
        while worker.counters.pushed + worker.counters.refused < count:
            if time.perf_counter() > deadline or task.done():
                break
            await asyncio.sleep(POLL_SECONDS)
        seconds = time.perf_counter() - started
        await worker.stop(task)
        counts = await store.push_counts()
    finally:
        await store.close()
    return {
        "queued": count,
        "pushed": counts.get("pushed", 0),
        "pending": counts.get("pending", 0),
        "retried": worker.counters.retried,
        "seconds": round(seconds, 3),
        "per_second": round(worker.counters.pushed / seconds, 1) if seconds > 0 else 0.0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.push_drain")
    parser.add_argument("--db", required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    result = asyncio.run(drain(Path(args.db), args.url, args.count))
    print("READY " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
