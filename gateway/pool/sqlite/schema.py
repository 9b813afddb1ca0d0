"""The SQLite schema, its migrations, and how every simfarm connection is opened.

The schema is versioned and migrated forward in place: a provider's database file is upgraded,
never replaced.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from gateway.pool.storage import StoreError

log = logging.getLogger(__name__)

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


def _split_sql(script: str) -> Iterable[str]:
    """Statements of a migration (ours never hold a ';' inside a literal)."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def open_database(path: Path) -> sqlite3.Connection:
    """Connect to the database at `path` (creating its folder) and migrate it; or StoreError."""
    try:
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(path)
        try:
            migrate(conn)
        except BaseException:
            conn.close()
            raise
    except (OSError, sqlite3.Error) as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    return conn
