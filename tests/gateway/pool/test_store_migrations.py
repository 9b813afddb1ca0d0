"""The schema: created at the newest version, migrated in place, refused when from the future."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from gateway.pool.records import ActivationRecord
from gateway.pool.sqlite import Store
from gateway.pool.sqlite.schema import MIGRATIONS, connect
from gateway.pool.storage import StoreError


def schema_versions(path: Path) -> list[int]:
    conn = sqlite3.connect(path)
    try:
        return [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY 1")]
    finally:
        conn.close()


def schema_objects(path: Path) -> list[tuple[str, str, str | None]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT type, name, sql FROM sqlite_master ORDER BY type, name"
        ).fetchall()
    finally:
        conn.close()


def activation(activation_id: int, number: str) -> ActivationRecord:
    return ActivationRecord(
        id=activation_id,
        number=number,
        iccid="89490200000000000001",
        service="vk",
        rent=False,
        country="germany",
        operator="vodafone",
        sum=10.0,
        created_at=1.0,
    )


async def test_new_file_gets_the_newest_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "new" / "simfarm.db"
    store = await Store.open(path)
    await store.close()
    assert path.exists()
    assert schema_versions(path) == list(range(1, len(MIGRATIONS) + 1))
    assert max(schema_versions(path)) == len(MIGRATIONS)


async def test_reopening_is_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "simfarm.db"
    store = await Store.open(path)
    await store.open_activation(activation(1, "4915100000001"))
    await store.close()
    before_versions, before_objects = schema_versions(path), schema_objects(path)

    for _ in range(2):
        store = await Store.open(path)
        assert [a.id for a in await store.list_open_activations()] == [1]
        await store.close()

    assert schema_versions(path) == before_versions
    assert schema_objects(path) == before_objects


async def test_newer_schema_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "simfarm.db"
    store = await Store.open(path)
    await store.close()
    newer = len(MIGRATIONS) + 1
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (newer,))
    conn.close()

    with pytest.raises(StoreError) as refused:
        await Store.open(path)
    message = str(refused.value)
    assert f"version {newer}" in message
    assert "newer" in message
    assert "upgrade simfarm" in message
    # Refusing changed nothing: the file still says what it said.
    assert max(schema_versions(path)) == newer


async def test_connections_use_wal_full_sync_and_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "simfarm.db"
    store = await Store.open(path)
    try:
        seen = await store.run(
            lambda conn: (
                conn.execute("PRAGMA journal_mode").fetchone()[0],
                conn.execute("PRAGMA synchronous").fetchone()[0],
                conn.execute("PRAGMA foreign_keys").fetchone()[0],
            )
        )
    finally:
        await store.close()
    assert seen == ("wal", 2, 1)  # synchronous: 2 is FULL

    conn = connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        # Foreign keys are enforced, not just declared.
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO push_outbox (sms_id, activation_id, rent, state, next_attempt_at)"
                " VALUES (999, 999, 0, 'pending', 0)"
            )
    finally:
        conn.close()


async def test_unique_partial_index_refuses_a_second_open_activation(tmp_path: Path) -> None:
    path = tmp_path / "simfarm.db"
    store = await Store.open(path)
    try:
        await store.open_activation(activation(1, "4915100000001"))
        with pytest.raises(StoreError, match="UNIQUE"):
            await store.open_activation(activation(2, "4915100000001"))
        # Another number is fine, and so is the same number once the first one is finished.
        await store.open_activation(activation(3, "4915100000002"))
        await store.finish_activation(
            1, status=4, finish_sum=None, finished_at=2.0, history_effect="issue"
        )
        await store.open_activation(activation(4, "4915100000001"))
        assert [a.id for a in await store.list_open_activations()] == [3, 4]
    finally:
        await store.close()

    conn = connect(path)
    try:
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(
                "INSERT INTO activations (number, iccid, service, rent, country, operator,"
                " created_at) VALUES ('4915100000001', 'x', 'wa', 0, 'germany', 'vodafone', 5)"
            )
        # A finished row for the same number is allowed: the index covers open ones only.
        conn.execute(
            "INSERT INTO activations (number, iccid, service, rent, country, operator,"
            " created_at, finished_at, finish_status) VALUES"
            " ('4915100000001', 'x', 'wa', 0, 'germany', 'vodafone', 5, 6, 3)"
        )
        open_rows = conn.execute(
            "SELECT count(*) FROM activations WHERE number = '4915100000001'"
            " AND finished_at IS NULL"
        ).fetchone()[0]
        assert open_rows == 1
    finally:
        conn.close()
