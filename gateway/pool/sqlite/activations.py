"""Activations, and the per-(number, service) history their ends leave behind."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from gateway.pool.records import ActivationRecord
from gateway.pool.sqlite.writer import Repository


class ActivationRepository(Repository):
    """The `activations` and `history` tables."""

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

        return await self._writer.run(seed)

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

        await self._writer.run(insert)

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

        return await self._writer.run(finish)

    async def activation_known(self, activation_id: int) -> bool:
        def known(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT 1 FROM activations WHERE id = ?", (activation_id,))
            return row.fetchone() is not None

        return await self._writer.run(known)

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

        return await self._writer.run(released)

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

        return await self._writer.run(release)

    async def list_open_activations(self) -> list[ActivationRecord]:
        def listing(conn: sqlite3.Connection) -> list[ActivationRecord]:
            rows = conn.execute(
                "SELECT id, number, iccid, service, rent, country, operator, sum, created_at"
                " FROM activations WHERE finished_at IS NULL ORDER BY id"
            )
            return [ActivationRecord(r[0], r[1], r[2], r[3], bool(r[4]), *r[5:]) for r in rows]

        return await self._writer.run(listing)
