"""The one module that owns SQLite.

Every statement simfarm runs against its database lives here. All of them run on one writer
thread, so the event loop never blocks on the disk; writes that arrive together are committed
together (group commit), so each GET_NUMBER is durable (`synchronous=FULL`) without paying one
fsync per request. The schema is versioned and migrated forward in place: a provider's
database file is upgraded, never replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Most jobs folded into one transaction; bounds the latency one commit adds to the first job.
MAX_JOBS_PER_COMMIT = 256
#: How long a writer waits on a locked database before the job fails (another process holds it).
BUSY_TIMEOUT_SECONDS = 5.0

# Each migration brings the schema from version i to i + 1; append only, never edit a released one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE sims (
        iccid          TEXT PRIMARY KEY,
        imsi           TEXT,
        number         TEXT,
        number_source  TEXT,
        country        TEXT,
        operator       TEXT,
        mccmnc         TEXT,
        first_seen     REAL NOT NULL,
        last_seen      REAL NOT NULL,
        last_issued    REAL NOT NULL DEFAULT 0
    );
    CREATE INDEX sims_by_number ON sims(number);

    CREATE TABLE activations (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        number         TEXT NOT NULL,
        iccid          TEXT NOT NULL,
        service        TEXT NOT NULL,
        rent           INTEGER NOT NULL,
        country        TEXT NOT NULL,
        operator       TEXT NOT NULL,
        sum            REAL,
        created_at     REAL NOT NULL,
        finished_at    REAL,
        finish_status  INTEGER,
        finish_sum     REAL
    );
    -- Invariant 1 of the design, enforced by the database itself.
    CREATE UNIQUE INDEX activations_one_open_per_number
        ON activations(number) WHERE finished_at IS NULL;

    CREATE TABLE history (
        number         TEXT NOT NULL,
        service        TEXT NOT NULL,
        issues         INTEGER NOT NULL DEFAULT 0,
        barred         INTEGER NOT NULL DEFAULT 0,
        last_status    INTEGER,
        updated_at     REAL NOT NULL,
        PRIMARY KEY (number, service)
    ) WITHOUT ROWID;

    CREATE TABLE sms (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        fingerprint    TEXT NOT NULL UNIQUE,
        iccid          TEXT NOT NULL,
        number         TEXT,
        sender         TEXT NOT NULL,
        text           TEXT NOT NULL,
        pdus           TEXT NOT NULL,
        decode_error   TEXT,
        received_at    REAL NOT NULL,
        activation_id  INTEGER REFERENCES activations(id)
    );
    CREATE INDEX sms_by_received ON sms(received_at);

    CREATE TABLE push_outbox (
        sms_id           INTEGER PRIMARY KEY REFERENCES sms(id),
        activation_id    INTEGER NOT NULL REFERENCES activations(id),
        rent             INTEGER NOT NULL,
        state            TEXT NOT NULL CHECK (state IN ('pending', 'pushed', 'refused')),
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  REAL NOT NULL,
        last_error       TEXT,
        done_at          REAL
    );
    CREATE INDEX push_outbox_due ON push_outbox(next_attempt_at) WHERE state = 'pending';
    """,
    # 2: parts of multipart SMS, kept until their group is complete or flushed, and afterwards
    # as a record that the part was consumed (so a re-read copy never starts a new group).
    """
    CREATE TABLE sms_parts (
        fingerprint      TEXT PRIMARY KEY,
        group_key        TEXT NOT NULL,
        iccid            TEXT NOT NULL,
        sender           TEXT NOT NULL,
        seq              INTEGER NOT NULL,
        total            INTEGER NOT NULL,
        text             TEXT NOT NULL,
        pdu              TEXT NOT NULL,
        received_at      REAL NOT NULL,
        consumed_sms_id  INTEGER REFERENCES sms(id)
    ) WITHOUT ROWID;
    CREATE INDEX sms_parts_waiting ON sms_parts(group_key) WHERE consumed_sms_id IS NULL;
    """,
    # 3: SIM banks (spec simbank.md §6.1): every SIM ever seen in a slot, keyed by ICCID; what
    # each slot and channel holds; and every rotation, persisted before its switch is sent.
    """
    CREATE TABLE simbank_sims (
        iccid          TEXT PRIMARY KEY,
        board          TEXT NOT NULL,
        channel        TEXT NOT NULL,
        slot           INTEGER NOT NULL,
        number         TEXT,
        number_source  TEXT,
        state          TEXT NOT NULL CHECK (state IN ('new', 'ready', 'conflict')),
        first_seen     REAL NOT NULL,
        last_live      REAL
    );
    CREATE INDEX simbank_sims_by_number ON simbank_sims(number);

    CREATE TABLE simbank_slots (
        board          TEXT NOT NULL,
        channel        TEXT NOT NULL,
        slot           INTEGER NOT NULL,
        state          TEXT NOT NULL CHECK (state IN ('sim', 'empty')),
        iccid          TEXT,
        updated_at     REAL NOT NULL,
        PRIMARY KEY (board, channel, slot)
    ) WITHOUT ROWID;

    CREATE TABLE simbank_channels (
        board          TEXT NOT NULL,
        channel        TEXT NOT NULL,
        active_slot    INTEGER,
        iccid          TEXT,
        quarantined    INTEGER NOT NULL DEFAULT 0,
        failures       INTEGER NOT NULL DEFAULT 0,
        detail         TEXT,
        updated_at     REAL NOT NULL,
        PRIMARY KEY (board, channel)
    ) WITHOUT ROWID;

    CREATE TABLE simbank_rotations (
        id             INTEGER PRIMARY KEY AUTOINCREMENT,
        board          TEXT NOT NULL,
        channel        TEXT NOT NULL,
        from_slot      INTEGER,
        old_iccid      TEXT,
        to_slot        INTEGER NOT NULL,
        expected_iccid TEXT,
        step           TEXT NOT NULL,
        attempts       INTEGER NOT NULL DEFAULT 0,
        result         TEXT,
        detail         TEXT,
        started_at     REAL NOT NULL,
        updated_at     REAL NOT NULL,
        finished_at    REAL
    );
    CREATE INDEX simbank_rotations_open ON simbank_rotations(board, channel)
        WHERE finished_at IS NULL;
    CREATE INDEX simbank_rotations_by_start ON simbank_rotations(started_at);
    """,
    # 4: one row the health check rewrites while writes fail, to see whether storage is back
    """
    CREATE TABLE store_probe (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        checked_at REAL NOT NULL
    );
    """,
)


class StoreError(RuntimeError):
    """The database could not be opened, migrated or written."""


# --- plain data crossing the store's edge -------------------------------------------------


@dataclass(frozen=True, slots=True)
class SimRecord:
    """What the store remembers of a SIM card, keyed by ICCID."""

    iccid: str
    imsi: str | None
    number: str | None
    number_source: str | None
    country: str | None
    operator: str | None
    mccmnc: str | None
    last_issued: float = 0.0


@dataclass(frozen=True, slots=True)
class ActivationRecord:
    """One activation (a lease of a number for one service, or a rent)."""

    id: int
    number: str
    iccid: str
    service: str
    rent: bool
    country: str
    operator: str
    sum: float | None
    created_at: float
    finished_at: float | None = None
    finish_status: int | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """Per (number, service): cancelled issues so far and whether the service is barred."""

    issues: int = 0
    barred: bool = False


@dataclass(frozen=True, slots=True)
class IncomingSms:
    """A complete SMS as the farm hands it to the pool (parts already joined)."""

    iccid: str
    fingerprint: str
    sender: str
    text: str
    pdus: tuple[str, ...]
    received_at: float
    decode_error: str | None = None


@dataclass(frozen=True, slots=True)
class SmsPart:
    """One part of a multipart SMS, waiting for the rest of its group."""

    fingerprint: str
    group_key: str
    iccid: str
    sender: str
    seq: int
    total: int
    text: str
    pdu: str
    received_at: float


@dataclass(frozen=True, slots=True)
class StoredSms:
    """The outcome of storing an SMS: its permanent id, and whether it was already known."""

    id: int
    duplicate: bool
    activation_id: int | None


@dataclass(frozen=True, slots=True)
class PendingPush:
    """A PUSH_SMS that still has to reach the marketplace."""

    sms_id: int
    activation_id: int
    rent: bool
    number: str
    sender: str
    text: str
    attempts: int


@dataclass(frozen=True, slots=True)
class SmsRow:
    """A stored SMS as the operator's tools list it."""

    id: int
    iccid: str
    number: str | None
    sender: str
    text: str
    received_at: float
    activation_id: int | None
    push_state: str | None


@dataclass(frozen=True, slots=True)
class StoredState:
    """Everything the pool needs in memory at start-up."""

    sims: dict[str, SimRecord]
    open_activations: list[ActivationRecord]
    next_activation_id: int


@dataclass(frozen=True, slots=True)
class BankSimRecord:
    """A SIM seen in a SIM bank: where it sits, its number and how it was learned."""

    iccid: str
    board: str
    channel: str
    slot: int
    number: str | None
    number_source: str | None
    state: str  # new (number not known yet) | ready | conflict (number on another ICCID too)
    first_seen: float
    last_live: float | None = None


@dataclass(frozen=True, slots=True)
class BankChannelRecord:
    """What a bank channel holds as far as the daemon knows."""

    board: str
    channel: str
    active_slot: int | None
    iccid: str | None
    quarantined: bool = False
    failures: int = 0
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RotationRecord:
    """One rotation of one channel; written before its switch command is sent."""

    id: int
    board: str
    channel: str
    from_slot: int | None
    old_iccid: str | None
    to_slot: int
    expected_iccid: str | None
    step: str
    attempts: int
    started_at: float
    result: str | None = None
    detail: str | None = None
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class BankState:
    """A board's persisted inventory, read at start-up."""

    sims: list[BankSimRecord]
    empty_slots: list[tuple[str, int]]
    channels: list[BankChannelRecord]
    open_rotations: list[RotationRecord]


# --- the writer thread ----------------------------------------------------------------------


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


def connect(path: Path) -> sqlite3.Connection:
    """Open the database with the settings every simfarm connection uses."""
    conn = sqlite3.connect(
        path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
    )
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the schema up to the newest version; returns the version it is at."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    version = row[0] or 0
    if version > len(MIGRATIONS):
        raise StoreError(
            f"database schema version {version} is newer than this simfarm knows "
            f"({len(MIGRATIONS)}); upgrade simfarm instead of using an older one"
        )
    for target in range(version + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _split_sql(MIGRATIONS[target - 1]):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (?)", (target,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        log.info("event=schema_migrated version=%d", target)
    return len(MIGRATIONS)


def _waiting_parts(conn: sqlite3.Connection, group_key: str) -> list[SmsPart]:
    rows = conn.execute(
        "SELECT fingerprint, group_key, iccid, sender, seq, total, text, pdu, received_at"
        " FROM sms_parts WHERE group_key = ? AND consumed_sms_id IS NULL ORDER BY seq, received_at",
        (group_key,),
    )
    return [SmsPart(*row) for row in rows]


def _split_sql(script: str) -> Iterable[str]:
    """Statements of a migration (ours never hold a ';' inside a literal)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class Store:
    """The database of one simfarm daemon; every method is a coroutine run on the writer thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        #: Why the last write failed, until a write succeeds again (None while writes work).
        self.write_failure: str | None = None

    @classmethod
    async def open(cls, path: str | Path) -> Store:
        store = cls(Path(path))
        await asyncio.to_thread(store._open_blocking)
        store._thread = threading.Thread(target=store._run, name="simfarm-store", daemon=True)
        store._thread.start()
        return store

    def _open_blocking(self) -> None:
        try:
            if self.path.parent and not self.path.parent.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect(self.path)
            try:
                migrate(conn)
            except BaseException:
                conn.close()
                raise
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open database {self.path}: {exc}") from exc
        self._conn = conn

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

    # --- start-up ---------------------------------------------------------------------------

    async def load_state(self) -> StoredState:
        def load(conn: sqlite3.Connection) -> StoredState:
            sims = {
                row[0]: SimRecord(*row)
                for row in conn.execute(
                    "SELECT iccid, imsi, number, number_source, country, operator, mccmnc,"
                    " last_issued FROM sims"
                )
            }
            open_rows = conn.execute(
                "SELECT id, number, iccid, service, rent, country, operator, sum, created_at"
                " FROM activations WHERE finished_at IS NULL"
            ).fetchall()
            seq = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'activations'"
            ).fetchone()
            top = conn.execute("SELECT max(id) FROM activations").fetchone()[0]
            next_id = max(seq[0] if seq else 0, top or 0) + 1
            return StoredState(
                sims=sims,
                open_activations=[
                    ActivationRecord(r[0], r[1], r[2], r[3], bool(r[4]), *r[5:]) for r in open_rows
                ],
                next_activation_id=next_id,
            )

        return await self.run(load)

    async def bulk_seed_history(
        self, rows: Iterable[tuple[str, str, int, bool, int | None, float]]
    ) -> int:
        """Write many history rows in one transaction; returns how many rows were given.

        Each row is (number, service, issues, barred, last_status, updated_at); a row for a
        (number, service) already present is replaced. For filling a database before a daemon
        uses it (benchmarks, an import from another system), not for a running pool: the pool
        does not see rows written behind its back for numbers that are already live. Pass rows
        in chunks of some 100,000 so neither memory nor one transaction grows without bound.
        """
        batch = [
            (number, service, issues, int(barred), last_status, updated_at)
            for number, service, issues, barred, last_status, updated_at in rows
        ]

        def seed(conn: sqlite3.Connection) -> int:
            conn.executemany(
                "INSERT OR REPLACE INTO history"
                " (number, service, issues, barred, last_status, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                batch,
            )
            return len(batch)

        return await self.run(seed)

    # --- SIMs -------------------------------------------------------------------------------

    async def save_sim(
        self, sim: SimRecord, seen_at: float, services: Iterable[str]
    ) -> dict[str, HistoryEntry]:
        """Remember a SIM that came online and return its number's history for `services`.

        One job, so its place in the writer's queue is fixed when it is called: a FINISH
        queued after it is not in the history it returns, one queued before it is.
        """
        wanted = list(services)

        def save(conn: sqlite3.Connection) -> dict[str, HistoryEntry]:
            conn.execute(
                "INSERT INTO sims (iccid, imsi, number, number_source, country, operator, mccmnc,"
                " first_seen, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(iccid) DO UPDATE SET imsi = excluded.imsi,"
                " number = excluded.number, number_source = excluded.number_source,"
                " country = excluded.country, operator = excluded.operator,"
                " mccmnc = excluded.mccmnc, last_seen = excluded.last_seen",
                (
                    sim.iccid,
                    sim.imsi,
                    sim.number,
                    sim.number_source,
                    sim.country,
                    sim.operator,
                    sim.mccmnc,
                    seen_at,
                    seen_at,
                ),
            )
            marks = ",".join("?" * len(wanted))
            rows = conn.execute(
                f"SELECT service, issues, barred FROM history"
                f" WHERE number = ? AND service IN ({marks})",
                (sim.number, *wanted),
            )
            return {service: HistoryEntry(issues, bool(barred)) for service, issues, barred in rows}

        return await self.run(save)

    # --- activations ------------------------------------------------------------------------

    async def open_activation(self, activation: ActivationRecord) -> None:
        """Persist a new activation; the unique index refuses a second open one per number."""

        def insert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO activations (id, number, iccid, service, rent, country, operator,"
                " sum, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    activation.id,
                    activation.number,
                    activation.iccid,
                    activation.service,
                    int(activation.rent),
                    activation.country,
                    activation.operator,
                    activation.sum,
                    activation.created_at,
                ),
            )
            conn.execute(
                "UPDATE sims SET last_issued = ? WHERE iccid = ?",
                (activation.created_at, activation.iccid),
            )

        await self.run(insert)

    async def finish_activation(
        self,
        activation_id: int,
        *,
        status: int,
        finish_sum: float | None,
        finished_at: float,
        history_effect: str | None,
        released: bool = False,
    ) -> bool:
        """Close an activation and apply its effect on the number's history for the service.

        `history_effect` is "bar" (status 3 and 1), "issue" (4, 5 and 2) or None (rent). With
        `released`, the activation is one the operator released: its status is recorded late
        (it stays closed when it was). Returns whether anything changed.
        """

        def finish(conn: sqlite3.Connection) -> bool:
            open_or_released = (
                "finished_at IS NOT NULL AND finish_status IS NULL"
                if released
                else "finished_at IS NULL"
            )
            row = conn.execute(
                f"SELECT number, service FROM activations WHERE id = ? AND {open_or_released}",
                (activation_id,),
            ).fetchone()
            if row is None:
                return False
            conn.execute(
                "UPDATE activations SET finished_at = coalesce(finished_at, ?),"
                " finish_status = ?, finish_sum = ? WHERE id = ?",
                (finished_at, status, finish_sum, activation_id),
            )
            if history_effect is None:
                return True
            number, service = row
            barred, issues = (1, 0) if history_effect == "bar" else (0, 1)
            conn.execute(
                "INSERT INTO history (number, service, issues, barred, last_status, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(number, service) DO UPDATE SET"
                " issues = issues + excluded.issues, barred = max(barred, excluded.barred),"
                " last_status = excluded.last_status, updated_at = excluded.updated_at",
                (number, service, issues, barred, status, finished_at),
            )
            return True

        return await self.run(finish)

    async def activation_known(self, activation_id: int) -> bool:
        def known(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT 1 FROM activations WHERE id = ?", (activation_id,))
            return row.fetchone() is not None

        return await self.run(known)

    async def released_activation(self, activation_id: int) -> ActivationRecord | None:
        """The activation with this id if the operator released it and no status came since."""

        def released(conn: sqlite3.Connection) -> ActivationRecord | None:
            row = conn.execute(
                "SELECT id, number, iccid, service, rent, country, operator, sum, created_at"
                " FROM activations WHERE id = ? AND finished_at IS NOT NULL"
                " AND finish_status IS NULL",
                (activation_id,),
            ).fetchone()
            return None if row is None else ActivationRecord(*row[:4], bool(row[4]), *row[5:])

        return await self.run(released)

    async def release_activation(self, activation_id: int, released_at: float) -> bool:
        """Close an open activation on the operator's word: no status, no history effect.

        A closed activation with `finish_status` NULL is one the operator released. Returns
        False when the activation was not open.
        """

        def release(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE activations SET finished_at = ?, finish_status = NULL, finish_sum = NULL"
                " WHERE id = ? AND finished_at IS NULL",
                (released_at, activation_id),
            )
            return cursor.rowcount == 1

        return await self.run(release)

    async def list_open_activations(self) -> list[ActivationRecord]:
        def listing(conn: sqlite3.Connection) -> list[ActivationRecord]:
            rows = conn.execute(
                "SELECT id, number, iccid, service, rent, country, operator, sum, created_at"
                " FROM activations WHERE finished_at IS NULL ORDER BY id"
            )
            return [ActivationRecord(r[0], r[1], r[2], r[3], bool(r[4]), *r[5:]) for r in rows]

        return await self.run(listing)

    # --- SMS and the push outbox ------------------------------------------------------------

    async def store_sms(
        self,
        sms: IncomingSms,
        *,
        number: str | None,
        activation: ActivationRecord | None,
        push_at: float,
        consumed_parts: tuple[str, ...] = (),
    ) -> StoredSms:
        """Store an SMS and, when its number has an open activation, queue its push.

        Both happen in one transaction: an SMS on disk with an open activation always has its
        push queued. A fingerprint seen before returns the first copy's id and changes nothing.
        The multipart parts it was joined from (`consumed_parts`) are marked consumed in the
        same transaction.
        """

        def store(conn: sqlite3.Connection) -> StoredSms:
            known = conn.execute(
                "SELECT id, activation_id FROM sms WHERE fingerprint = ?", (sms.fingerprint,)
            ).fetchone()
            if known is not None:
                return StoredSms(known[0], True, known[1])
            cursor = conn.execute(
                "INSERT INTO sms (fingerprint, iccid, number, sender, text, pdus, decode_error,"
                " received_at, activation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sms.fingerprint,
                    sms.iccid,
                    number,
                    sms.sender,
                    sms.text,
                    json.dumps(list(sms.pdus)),
                    sms.decode_error,
                    sms.received_at,
                    activation.id if activation else None,
                ),
            )
            sms_id = cursor.lastrowid
            if activation is not None:
                conn.execute(
                    "INSERT INTO push_outbox (sms_id, activation_id, rent, state, next_attempt_at)"
                    " VALUES (?, ?, ?, 'pending', ?)",
                    (sms_id, activation.id, int(activation.rent), push_at),
                )
            conn.executemany(
                "UPDATE sms_parts SET consumed_sms_id = ? WHERE fingerprint = ?",
                [(sms_id, fingerprint) for fingerprint in consumed_parts],
            )
            return StoredSms(sms_id, False, activation.id if activation else None)

        return await self.run(store)

    async def save_part(self, part: SmsPart) -> list[SmsPart] | None:
        """Keep a multipart part; returns its group's waiting parts (None once it was joined)."""

        def save(conn: sqlite3.Connection) -> list[SmsPart] | None:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO sms_parts (fingerprint, group_key, iccid, sender, seq,"
                " total, text, pdu, received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    part.fingerprint,
                    part.group_key,
                    part.iccid,
                    part.sender,
                    part.seq,
                    part.total,
                    part.text,
                    part.pdu,
                    part.received_at,
                ),
            )
            if cursor.rowcount == 0:
                consumed = conn.execute(
                    "SELECT consumed_sms_id FROM sms_parts WHERE fingerprint = ?",
                    (part.fingerprint,),
                ).fetchone()[0]
                if consumed is not None:
                    return None
                # Known but not joined yet (the join never reached the disk): look again.
            return _waiting_parts(conn, part.group_key)

        return await self.run(save)

    async def stale_part_groups(self, received_before: float) -> list[list[SmsPart]]:
        """Waiting groups whose first part arrived before `received_before`."""

        def stale(conn: sqlite3.Connection) -> list[list[SmsPart]]:
            keys = [
                row[0]
                for row in conn.execute(
                    "SELECT group_key FROM sms_parts WHERE consumed_sms_id IS NULL"
                    " GROUP BY group_key HAVING min(received_at) < ?",
                    (received_before,),
                )
            ]
            return [_waiting_parts(conn, key) for key in keys]

        return await self.run(stale)

    async def due_pushes(self, now: float, limit: int) -> list[PendingPush]:
        def due(conn: sqlite3.Connection) -> list[PendingPush]:
            rows = conn.execute(
                "SELECT o.sms_id, o.activation_id, o.rent, a.number, s.sender, s.text, o.attempts"
                " FROM push_outbox o JOIN sms s ON s.id = o.sms_id"
                " JOIN activations a ON a.id = o.activation_id"
                " WHERE o.state = 'pending' AND o.next_attempt_at <= ?"
                " ORDER BY o.next_attempt_at, o.sms_id LIMIT ?",
                (now, limit),
            )
            return [PendingPush(r[0], r[1], bool(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

        return await self.run(due)

    async def next_push_at(self) -> float | None:
        def earliest(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT min(next_attempt_at) FROM push_outbox WHERE state = 'pending'"
            ).fetchone()
            return row[0]

        return await self.run(earliest)

    async def record_push(
        self, sms_id: int, *, outcome: str, at: float, error: str | None, retry_at: float | None
    ) -> None:
        """Record one push attempt: "pushed", "refused" (final) or "retry" at `retry_at`."""
        if outcome not in ("pushed", "refused", "retry"):
            raise ValueError(f"unknown push outcome {outcome!r}")

        def record(conn: sqlite3.Connection) -> None:
            if outcome == "retry":
                conn.execute(
                    "UPDATE push_outbox SET attempts = attempts + 1, next_attempt_at = ?,"
                    " last_error = ? WHERE sms_id = ? AND state = 'pending'",
                    (retry_at, error, sms_id),
                )
            else:
                conn.execute(
                    "UPDATE push_outbox SET attempts = attempts + 1, state = ?, done_at = ?,"
                    " last_error = ? WHERE sms_id = ? AND state = 'pending'",
                    (outcome, at, error, sms_id),
                )

        await self.run(record)

    async def push_counts(self) -> dict[str, int]:
        def counts(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT state, count(*) FROM push_outbox GROUP BY state")
            return {state: n for state, n in rows}

        return await self.run(counts)

    async def recent_sms(self, limit: int) -> list[SmsRow]:
        def recent(conn: sqlite3.Connection) -> list[SmsRow]:
            rows = conn.execute(
                "SELECT s.id, s.iccid, s.number, s.sender, s.text, s.received_at,"
                " s.activation_id, o.state FROM sms s LEFT JOIN push_outbox o ON o.sms_id = s.id"
                " ORDER BY s.id DESC LIMIT ?",
                (limit,),
            )
            return [SmsRow(*r) for r in rows]

        return await self.run(recent)

    async def outbox_summary(self) -> tuple[int, float | None]:
        """Pending pushes, and when the SMS of the oldest of them was received (None if none)."""

        def summary(conn: sqlite3.Connection) -> tuple[int, float | None]:
            row = conn.execute(
                "SELECT count(*), min(s.received_at) FROM push_outbox o"
                " JOIN sms s ON s.id = o.sms_id WHERE o.state = 'pending'"
            ).fetchone()
            return row[0], row[1]

        return await self.run(summary)

    # --- SIM banks --------------------------------------------------------------------------

    async def load_bank(self, board: str) -> BankState:
        def load(conn: sqlite3.Connection) -> BankState:
            sims = [
                BankSimRecord(*row)
                for row in conn.execute(
                    "SELECT iccid, board, channel, slot, number, number_source, state,"
                    " first_seen, last_live FROM simbank_sims WHERE board = ?",
                    (board,),
                )
            ]
            empty = [
                (row[0], row[1])
                for row in conn.execute(
                    "SELECT channel, slot FROM simbank_slots WHERE board = ? AND state = 'empty'",
                    (board,),
                )
            ]
            channels = [
                BankChannelRecord(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6])
                for r in conn.execute(
                    "SELECT board, channel, active_slot, iccid, quarantined, failures, detail"
                    " FROM simbank_channels WHERE board = ?",
                    (board,),
                )
            ]
            rotations = [
                RotationRecord(*row)
                for row in conn.execute(
                    "SELECT id, board, channel, from_slot, old_iccid, to_slot, expected_iccid,"
                    " step, attempts, started_at, result, detail, finished_at"
                    " FROM simbank_rotations WHERE board = ? AND finished_at IS NULL ORDER BY id",
                    (board,),
                )
            ]
            return BankState(sims, empty, channels, rotations)

        return await self.run(load)

    async def save_bank_sim(self, sim: BankSimRecord) -> None:
        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO simbank_sims (iccid, board, channel, slot, number, number_source,"
                " state, first_seen, last_live) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT(iccid) DO UPDATE SET board = excluded.board,"
                " channel = excluded.channel, slot = excluded.slot, number = excluded.number,"
                " number_source = excluded.number_source, state = excluded.state,"
                " last_live = excluded.last_live",
                (
                    sim.iccid,
                    sim.board,
                    sim.channel,
                    sim.slot,
                    sim.number,
                    sim.number_source,
                    sim.state,
                    sim.first_seen,
                    sim.last_live,
                ),
            )
            conn.execute(
                "INSERT OR REPLACE INTO simbank_slots (board, channel, slot, state, iccid,"
                " updated_at) VALUES (?, ?, ?, 'sim', ?, ?)",
                (sim.board, sim.channel, sim.slot, sim.iccid, sim.last_live or sim.first_seen),
            )

        await self.run(save)

    async def save_bank_slot_empty(self, board: str, channel: str, slot: int, at: float) -> None:
        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO simbank_slots (board, channel, slot, state, iccid,"
                " updated_at) VALUES (?, ?, ?, 'empty', NULL, ?)",
                (board, channel, slot, at),
            )

        await self.run(save)

    async def save_bank_channel(self, channel: BankChannelRecord, at: float) -> None:
        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO simbank_channels (board, channel, active_slot, iccid,"
                " quarantined, failures, detail, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    channel.board,
                    channel.channel,
                    channel.active_slot,
                    channel.iccid,
                    int(channel.quarantined),
                    channel.failures,
                    channel.detail,
                    at,
                ),
            )

        await self.run(save)

    async def open_rotation(
        self,
        *,
        board: str,
        channel: str,
        from_slot: int | None,
        old_iccid: str | None,
        to_slot: int,
        expected_iccid: str | None,
        at: float,
    ) -> RotationRecord:
        """Persist a rotation before its switch command is sent."""

        def insert(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "INSERT INTO simbank_rotations (board, channel, from_slot, old_iccid, to_slot,"
                " expected_iccid, step, started_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, 'planned', ?, ?)",
                (board, channel, from_slot, old_iccid, to_slot, expected_iccid, at, at),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

        rotation_id = await self.run(insert)
        return RotationRecord(
            rotation_id,
            board,
            channel,
            from_slot,
            old_iccid,
            to_slot,
            expected_iccid,
            "planned",
            0,
            at,
        )

    async def save_rotation(self, rotation: RotationRecord, at: float) -> None:
        """Record a rotation's progress (step, attempts) or its end (result, finished_at)."""

        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE simbank_rotations SET step = ?, attempts = ?, result = ?, detail = ?,"
                " finished_at = ?, updated_at = ? WHERE id = ?",
                (
                    rotation.step,
                    rotation.attempts,
                    rotation.result,
                    rotation.detail,
                    rotation.finished_at,
                    at,
                    rotation.id,
                ),
            )

        await self.run(save)

    async def rotation_results(self, board: str, since: float) -> dict[str, int]:
        """Finished rotations of a board since `since`, counted by result."""

        def count(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT result, count(*) FROM simbank_rotations WHERE board = ?"
                " AND finished_at IS NOT NULL AND started_at >= ? GROUP BY result",
                (board, since),
            )
            return {result: n for result, n in rows}

        return await self.run(count)

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

        ok = await self.run(ping)
        if self.write_failure is not None:
            raise StoreError(f"writes fail: {self.write_failure}")
        return ok
