"""Synthetic SIMs and a history of 1,000,000 rows, the same in every run.

The live SIMs are spread over five countries and a dozen operators, weighted like a farm that
sells mostly Russian and German numbers. History rows go mostly to numbers that are not live (the
SIMs a provider had before), plus a realistic share for the live ones: about a third of the live
numbers have rows, some services barred (sold or refused before), some with cancelled issues, so
the pool's per-number history loading and its eligibility checks do real work.

The rows are written with `Store.bulk_seed_history`, the one place that writes them in bulk: all
SQL stays in gateway/pool/sqlite/.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from gateway.pool.pool import OnlineSim
from gateway.pool.sqlite import Store

#: The services the benchmark daemon offers (a provider offers several; GET_SERVICES grows with
#: services x operators).
SERVICES = ("vk", "wa", "tg", "ok", "fb", "go", "ya", "av")
#: Largest live farm any measure uses; history is seeded for this many live numbers.
MAX_LIVE_SIMS = 20_000
#: History rows written by default.
HISTORY_ROWS = 1_000_000
#: Rows per bulk write (bounded memory and transaction size).
SEED_CHUNK_ROWS = 100_000

# (country, operator, number prefix, weight)
GROUPS: tuple[tuple[str, str, str, int], ...] = (
    ("russia", "mts", "7916", 14),
    ("russia", "megafon", "7926", 12),
    ("russia", "beeline", "7903", 10),
    ("russia", "tele2", "7977", 6),
    ("germany", "vodafone", "49152", 10),
    ("germany", "telekom", "49151", 8),
    ("germany", "o2", "49176", 6),
    ("ukraine", "kyivstar", "38067", 8),
    ("ukraine", "vodafone", "38050", 6),
    ("kazakhstan", "beeline", "7705", 6),
    ("kazakhstan", "kcell", "7701", 6),
    ("england", "ee", "447700", 8),
)


def _group_of(position: int) -> tuple[str, str, str]:
    """The group of the n-th SIM: a deterministic round over the weights."""
    total = sum(g[3] for g in GROUPS)
    slot = (position * 7919) % total
    for country, operator, prefix, weight in GROUPS:
        if slot < weight:
            return country, operator, prefix
        slot -= weight
    raise AssertionError("unreachable")


def live_number(position: int) -> tuple[str, str, str]:
    """(number, country, operator) of the n-th live SIM; the first n SIMs are a prefix."""
    country, operator, prefix = _group_of(position)
    digits = 11 if prefix.startswith("7") else 12
    number = prefix + f"{position:0{digits - len(prefix)}d}"
    return number, country, operator


def synthetic_sims(count: int) -> list[OnlineSim]:
    """The first `count` live SIMs (count <= MAX_LIVE_SIMS)."""
    sims = []
    for position in range(count):
        number, country, operator = live_number(position)
        sims.append(
            OnlineSim(
                iccid=f"8970199{position:012d}",
                number=number,
                country=country,
                operator=operator,
                signal=5 + position % 26,
                number_source="config",
            )
        )
    return sims


def demand(count: int) -> list[tuple[str, int]]:
    """Countries with how many of the first `count` SIMs are there, for picking GET_NUMBERs."""
    per: dict[str, int] = {}
    for position in range(count):
        country = _group_of(position)[0]
        per[country] = per.get(country, 0) + 1
    return sorted(per.items())


def history_rows(total: int, seed: int = 1) -> Iterator[tuple[str, str, int, bool, int, float]]:
    """`total` rows: ~12 % for a third of the live numbers, the rest for numbers gone away."""
    rng = random.Random(seed)
    now = time.time()
    written = 0
    live_share = total * 12 // 100
    # Live numbers: a third of them have history, 1-4 services each; 15 % of rows barred.
    position = 0
    while written < live_share and position < MAX_LIVE_SIMS:
        if position % 3 == 0:
            number = live_number(position)[0]
            for service in rng.sample(SERVICES, rng.randint(1, 4)):
                barred = rng.random() < 0.15
                issues = 0 if barred else rng.randint(1, 3)
                yield number, service, issues, barred, 3 if barred else 4, now - rng.random() * 1e7
                written += 1
        position += 1
    # Numbers no longer live: distinct prefixes, 1-8 services each.
    gone = 0
    while written < total:
        number = f"7999{gone:07d}"
        gone += 1
        for service in rng.sample(SERVICES, rng.randint(1, len(SERVICES))):
            if written >= total:
                break
            barred = rng.random() < 0.3
            yield number, service, rng.randint(0, 4), barred, 3, now - rng.random() * 1e8
            written += 1


async def seed_database(path: Path, rows: int = HISTORY_ROWS) -> float:
    """Create the database at `path` with `rows` history rows; returns the seconds it took."""
    started = time.perf_counter()
    store = await Store.open(path)
    try:
        chunk: list[tuple[str, str, int, bool, int, float]] = []
        for row in history_rows(rows):
            chunk.append(row)
            if len(chunk) >= SEED_CHUNK_ROWS:
                await store.bulk_seed_history(chunk)
                chunk = []
        if chunk:
            await store.bulk_seed_history(chunk)
    finally:
        await store.close()
    return time.perf_counter() - started


def remove_database(path: Path) -> None:
    """Delete a database file with its WAL and shared-memory files, if they exist."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def copy_database(source: Path, target: Path) -> None:
    """A fresh copy of a closed database (its WAL is checkpointed on close)."""
    remove_database(target)
    shutil.copyfile(source, target)


def seed_blocking(path: Path, rows: int = HISTORY_ROWS) -> float:
    return asyncio.run(seed_database(path, rows))
