"""SIM banks: the SIMs seen in their slots, what each channel holds, every rotation."""

from __future__ import annotations

import sqlite3

from gateway.pool.records import BankChannelRecord, BankSimRecord, BankState, RotationRecord
from gateway.pool.sqlite.writer import Repository


class BankRepository(Repository):
    """The `simbank_sims`, `simbank_slots`, `simbank_channels` and `simbank_rotations` tables."""

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

        return await self._writer.run(load)

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

        await self._writer.run(save)

    async def save_bank_slot_empty(self, board: str, channel: str, slot: int, at: float) -> None:
        def save(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO simbank_slots (board, channel, slot, state, iccid,"
                " updated_at) VALUES (?, ?, ?, 'empty', NULL, ?)",
                (board, channel, slot, at),
            )

        await self._writer.run(save)

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

        await self._writer.run(save)

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

        rotation_id = await self._writer.run(insert)
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

        await self._writer.run(save)

    async def rotation_results(self, board: str, since: float) -> dict[str, int]:
        """Finished rotations of a board since `since`, counted by result."""

        def count(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT result, count(*) FROM simbank_rotations WHERE board = ?"
                " AND finished_at IS NOT NULL AND started_at >= ? GROUP BY result",
                (board, since),
            )
            return {result: n for result, n in rows}

        return await self._writer.run(count)
