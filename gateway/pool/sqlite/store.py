"""The SQLite engine of the storage interface: one file, one writer thread, four repositories.

Every statement simfarm runs against SQLite lives in this package: the schema and its migrations
(`schema`), the writer thread with its group commit (`writer`), and one repository per concern
(`sims`, `activations`, `sms`, `banks`). `Store` joins the repositories on one writer, so their
jobs share its transactions and its order.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from gateway.pool.sqlite.activations import ActivationRepository
from gateway.pool.sqlite.banks import BankRepository
from gateway.pool.sqlite.schema import open_database
from gateway.pool.sqlite.sims import SimRepository
from gateway.pool.sqlite.sms import SmsRepository
from gateway.pool.sqlite.writer import Writer
from gateway.pool.storage import StoreError

T = TypeVar("T")


class Store(SimRepository, ActivationRepository, SmsRepository, BankRepository):
    """The database of one simfarm daemon; every method is a coroutine run on the writer thread."""

    def __init__(self, path: Path) -> None:
        super().__init__(Writer())
        self.path = path

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        """Open (creating and migrating) the database at `path`; raises StoreError."""
        store = cls(Path(path))
        conn = await asyncio.to_thread(open_database, store.path)
        store._writer.start(conn)
        return store

    async def close(self) -> None:
        await self._writer.close()

    @property
    def write_failure(self) -> str | None:
        """Why the last write failed, until a write succeeds again (None while writes work)."""
        return self._writer.write_failure

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on the writer thread inside a transaction; resolves once committed.

        SQLite's own door, for this engine's tests and tools; not part of the storage interface.
        """
        return await self._writer.run(fn)

    async def ping(self) -> bool:
        """A round trip through the writer thread: take the write lock, write and read back.

        While real writes fail (a full disk, a read-only file system), the probe writes to the
        database file itself, so the answer says whether storage is back; otherwise it writes a
        temporary table only (a health check polled every second must not wear an SD card).
        Raises StoreError while writes fail.
        """
        probe_disk = self.write_failure is not None

        def ping(conn: sqlite3.Connection) -> bool:
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS health_probe (value INTEGER)")
            conn.execute("DELETE FROM health_probe")
            conn.execute("INSERT INTO health_probe (value) VALUES (1)")
            row = conn.execute("SELECT value FROM health_probe").fetchone()
            conn.execute("SELECT max(version) FROM schema_version").fetchone()
            if probe_disk:
                conn.execute(
                    "INSERT OR REPLACE INTO store_probe (id, checked_at) VALUES (1, ?)",
                    (time.time(),),
                )
            return row is not None and row[0] == 1

        ok = await self._writer.run(ping)
        if self.write_failure is not None:
            raise StoreError(f"writes fail: {self.write_failure}")
        return ok
