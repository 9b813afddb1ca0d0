"""The writer thread: every statement runs on it, and jobs that arrive together commit together.

The event loop never blocks on the disk. Each job runs in a savepoint of one transaction per
batch (group commit), so each GET_NUMBER is durable (`synchronous=FULL`) without paying one fsync
per request. Whatever SQLite raises fails the jobs of the batch, never the thread; while writes
fail, `write_failure` says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from gateway.pool.storage import StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Most jobs folded into one transaction; bounds the latency one commit adds to the first job.
MAX_JOBS_PER_COMMIT = 256


class _Job:
    __slots__ = ("fn", "future", "loop")

    def __init__(self, fn: Callable[[sqlite3.Connection], Any], loop, future) -> None:
        self.fn = fn
        self.loop = loop
        self.future = future


def _resolve(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Writer:
    """One connection and the thread that runs every job on it, batch by batch."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        #: Why the last write failed, until a write succeeds again (None while writes work).
        self.write_failure: str | None = None

    def start(self, conn: sqlite3.Connection) -> None:
        """Run jobs on `conn` from now on; the writer closes it when it stops."""
        self._conn = conn
        self._thread = threading.Thread(target=self._run, name="simfarm-store", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        if self._thread is None:
            return
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    # The writer loop: take every job that is waiting, run each in a savepoint, commit once.
    def _run(self) -> None:
        conn = self._conn
        assert conn is not None
        stop = False
        while not stop:
            first = self._jobs.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < MAX_JOBS_PER_COMMIT:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._run_batch(conn, batch)
        conn.close()

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Job]) -> None:
        """Run a batch in one transaction; whatever SQLite raises fails jobs, never the thread."""
        try:
            outcomes = self._run_in_transaction(conn, batch)
        except sqlite3.Error as exc:
            self._write_failed(f"{exc}")
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            outcomes = [(job, None, StoreError(str(exc))) for job in batch]
        for job, result, error in outcomes:
            if isinstance(error, sqlite3.Error):
                error = StoreError(str(error))
            job.loop.call_soon_threadsafe(_resolve, job.future, result, error)

    def _run_in_transaction(
        self, conn: sqlite3.Connection, batch: list[_Job]
    ) -> list[tuple[_Job, Any, BaseException | None]]:
        outcomes: list[tuple[_Job, Any, BaseException | None]] = []
        conn.execute("BEGIN IMMEDIATE")
        changes_before = conn.total_changes
        storage_error: sqlite3.Error | None = None
        for job in batch:
            conn.execute("SAVEPOINT job")
            try:
                result = job.fn(conn)
            except Exception as exc:
                conn.execute("ROLLBACK TO job")
                conn.execute("RELEASE job")
                if isinstance(exc, sqlite3.OperationalError):
                    storage_error = exc  # full, read-only, I/O: the storage fails, not the job
                outcomes.append((job, None, exc))
            else:
                conn.execute("RELEASE job")
                outcomes.append((job, result, None))
        wrote = conn.total_changes != changes_before
        try:
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            log.error("event=commit_failed error=%r", str(exc))
            self._write_failed(f"commit failed: {exc}")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            return [(job, None, StoreError(f"commit failed: {exc}")) for job, _, _ in outcomes]
        if storage_error is not None:
            self._write_failed(str(storage_error))
        elif wrote:
            self._writes_work()
        return outcomes

    def _write_failed(self, error: str) -> None:
        if self.write_failure is None:
            log.warning("event=store_writes_failing error=%r", error)
        self.write_failure = error

    def _writes_work(self) -> None:
        if self.write_failure is not None:
            log.info("event=store_writes_back previous_error=%r", self.write_failure)
        self.write_failure = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn(conn)` on the writer thread inside a transaction; resolves once committed."""
        if self._thread is None:
            raise StoreError("the store is closed")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put(_Job(fn, loop, future))
        # The job runs whether or not the caller waits: never leave a half-known write behind.
        return await asyncio.shield(future)


class Repository:
    """The statements of one concern, each run as a job of the writer it shares with the rest."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
