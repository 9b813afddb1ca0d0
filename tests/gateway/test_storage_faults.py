"""Storage faults cost nothing but time: real locks, a really full disk, a real read-only error.

While the store fails, GET_NUMBER and FINISH answer 503 and change nothing, an SMS read from a
modem stays on the modem (it is deleted only once it is on disk), and pushes wait. When the
store works again, everything resumes by itself and every SMS reaches the marketplace once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from gateway.pool.sqlite import schema as store_module
from tests.gateway.farm_harness import (
    EVENTUALLY_SECONDS,
    Running,
    mixed_farm,
    running_daemon,
    started,
)
from tests.gateway.farm_harness import KEY as FARM_KEY

#: A short busy timeout, so that a competing writer outlasts it quickly.
SHORT_BUSY_TIMEOUT_SECONDS = 0.3
#: The size of the small file system a full disk is made on.
TMPFS_SIZE = "8m"


def sms_on_modem(running: Running, number: str) -> int:
    modem = running.sims.by_number(number)
    return sum(len(modem.stored_messages(mem)) for mem in modem.profile.storages)


async def wait_for(predicate: Callable[[], bool], what: str) -> None:
    """Poll a condition of the outside world (log records, a modem's memory) until it holds."""
    deadline = time.monotonic() + EVENTUALLY_SECONDS
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def persist_failures(caplog) -> int:
    return sum("event=sms_persist_failed" in r.getMessage() for r in caplog.records)


# --- the faults -------------------------------------------------------------------------------


@contextlib.contextmanager
def competing_writer(db: Path) -> Iterator[None]:
    """Another process's connection holding the write lock for as long as the block runs."""
    other = sqlite3.connect(db, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A small tmpfs of its own: the only way to fill a disk for real without filling the host's."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    try:
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(mount_point)],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {exc}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@contextlib.contextmanager
def disk_full(db: Path) -> Iterator[None]:
    """Fill the file system the database is on; the write-ahead log can grow no more."""
    # Start from an empty WAL, so the next commit must grow it (an old one would be reused).
    with sqlite3.connect(db, isolation_level=None) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    filler = db.parent / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 512, 1):  # big blocks, then whatever is left
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
    finally:
        os.close(fd)
    try:
        yield
    finally:
        filler.unlink()


# --- the scenario -----------------------------------------------------------------------------


@asynccontextmanager
async def leased_farm(db: Path, monkeypatch) -> AsyncIterator[tuple[Running, dict, str]]:
    """Two simulated modems, one number leased for `wa`; SMS deleted only once on disk."""
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_SECONDS", SHORT_BUSY_TIMEOUT_SECONDS)
    sims = mixed_farm(2)
    async with started(sims), running_daemon(db, sims) as running:
        await running.wait_live({m.sim.number for m in sims})
        issued = await running.action(
            "GET_NUMBER", country="germany", operator="any", service="wa", sum=10
        )
        assert issued["status"] == "SUCCESS"
        yield running, issued, str(issued["number"])


async def storage_fails_then_recovers(
    running: Running, issued: dict, number: str, caplog, fault: contextlib.AbstractContextManager
) -> None:
    before = await running.action("GET_SERVICES")
    with fault:
        # An SMS arrives: the driver reads it, cannot persist it, and leaves it on the modem.
        running.sims.by_number(number).deliver_sms("WhatsApp", "Your code 424242")
        await wait_for(lambda: persist_failures(caplog) >= 1, "the failed hand-over")
        assert sms_on_modem(running, number) == 1
        # The marketplace's actions fail clearly and change nothing.
        got = await running.client.post(
            "/",
            json={
                "action": "GET_NUMBER",
                "key": FARM_KEY,
                "country": "germany",
                "operator": "any",
                "service": "tg",
                "sum": 10,
            },
        )
        assert got.status_code == 503
        assert got.json() == {"status": "ERROR", "error": "storage unavailable, try again"}
        finished = await running.client.post(
            "/",
            json={
                "action": "FINISH_ACTIVATION",
                "key": FARM_KEY,
                "activationId": issued["activationId"],
                "status": 3,
            },
        )
        assert finished.status_code == 503
        assert running.pool.open_activation_for(number).id == issued["activationId"]
        assert running.market.received == []
        health = (await running.client.get("/health")).json()
        assert health["store"]["ok"] is False
    # The store works again: the next sweep hands the SMS over, and it is pushed once.
    await running.wait_pushes(1)
    await wait_for(lambda: sms_on_modem(running, number) == 0, "the SMS deleted from the modem")
    [push] = running.market.received
    assert push.body["text"] == "Your code 424242" and push.body["phone"] == issued["number"]
    # Later SMS flow as usual; nothing was lost or doubled.
    running.sims.by_number(number).deliver_sms("WhatsApp", "Your code 515151")
    await running.wait_pushes(2)
    assert [p.body["text"] for p in running.market.received] == [
        "Your code 424242",
        "Your code 515151",
    ]
    assert len({p.body["smsId"] for p in running.market.received}) == 2
    assert await running.action("GET_SERVICES") == before
    done = await running.action("FINISH_ACTIVATION", activationId=issued["activationId"], status=3)
    assert done == {"status": "SUCCESS"}
    assert running.daemon.supervisor.troubles() == []


async def test_a_competing_writer_past_the_busy_timeout_costs_nothing(
    tmp_path, monkeypatch, caplog
) -> None:
    caplog.set_level(logging.INFO)
    db = tmp_path / "simfarm.db"
    async with leased_farm(db, monkeypatch) as (running, issued, number):
        await storage_fails_then_recovers(running, issued, number, caplog, competing_writer(db))


async def test_a_full_disk_costs_nothing(small_disk, monkeypatch, caplog) -> None:
    caplog.set_level(logging.INFO)
    db = small_disk / "simfarm.db"
    async with leased_farm(db, monkeypatch) as (running, issued, number):
        await storage_fails_then_recovers(running, issued, number, caplog, disk_full(db))
    assert any("full" in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)


@contextlib.contextmanager
def read_only(running: Running) -> Iterator[None]:
    """The daemon's own connection refuses every write (SQLITE_READONLY), as a read-only
    remount would make it."""
    store = running.daemon.store
    assert store is not None and store._writer._conn is not None
    store._writer._conn.execute("PRAGMA query_only = ON")
    try:
        yield
    finally:
        store._writer._conn.execute("PRAGMA query_only = OFF")


async def test_a_read_only_database_costs_nothing(tmp_path, monkeypatch, caplog) -> None:
    caplog.set_level(logging.INFO)
    async with leased_farm(tmp_path / "simfarm.db", monkeypatch) as (running, issued, number):
        await storage_fails_then_recovers(running, issued, number, caplog, read_only(running))


async def test_a_push_waits_out_a_locked_store_and_every_later_sms_is_pushed(
    tmp_path, monkeypatch, caplog
) -> None:
    """The push worker used to end on the first StoreError, leaving every SMS pending for good."""
    caplog.set_level(logging.INFO)
    db = tmp_path / "simfarm.db"
    refuse = asyncio.Event()
    refuse.set()

    def market_down_while_refusing(body, attempt):
        return (503, {"status": "ERROR"}) if refuse.is_set() else (200, {"status": "SUCCESS"})

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_SECONDS", SHORT_BUSY_TIMEOUT_SECONDS)
    sims = mixed_farm(1)
    async with started(sims), running_daemon(db, sims, policy=market_down_while_refusing) as farm:
        await farm.wait_live({m.sim.number for m in sims})
        issued = await farm.action(
            "GET_NUMBER", country="germany", operator="any", service="vk", sum=10
        )
        number = str(issued["number"])
        farm.sims.by_number(number).deliver_sms("VK", "VK code 1111")
        await farm.market.wait_for(lambda received: len(received) >= 1, EVENTUALLY_SECONDS)
        with competing_writer(db):
            await wait_for(
                lambda: any("event=push_store_failing" in r.getMessage() for r in caplog.records),
                "the push worker to meet the locked store",
            )
            refuse.clear()
        farm.sims.by_number(number).deliver_sms("VK", "VK code 2222")
        await farm.market.wait_for(
            lambda received: (
                {"VK code 1111", "VK code 2222"}
                <= {p.body["text"] for p in received if p.reply[0] == 200}
            ),
            EVENTUALLY_SECONDS,
        )
        store = farm.daemon.store
        counts: dict[str, int] = {}
        deadline = time.monotonic() + EVENTUALLY_SECONDS
        while counts != {"pushed": 2} and time.monotonic() < deadline:
            counts = await store.push_counts()  # the answer is recorded just after it arrives
        assert counts == {"pushed": 2}
        assert not any("event=task_failed" in r.getMessage() for r in caplog.records)
    assert farm.daemon.store._writer._thread is None  # stopped cleanly, store closed
    os.stat(db)
