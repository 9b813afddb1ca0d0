"""Stored SMS, the parts of multipart SMS, and the PUSH_SMS outbox."""

from __future__ import annotations

import json
import sqlite3

from gateway.pool.records import (
    ActivationRecord,
    IncomingSms,
    PendingPush,
    SmsPart,
    SmsRow,
    StoredSms,
)
from gateway.pool.sqlite.writer import Repository


def _waiting_parts(conn: sqlite3.Connection, group_key: str) -> list[SmsPart]:
    rows = conn.execute(
        "SELECT fingerprint, group_key, iccid, sender, seq, total, text, pdu, received_at"
        " FROM sms_parts WHERE group_key = ? AND consumed_sms_id IS NULL ORDER BY seq, received_at",
        (group_key,),
    )
    return [SmsPart(*row) for row in rows]


class SmsRepository(Repository):
    """The `sms`, `sms_parts` and `push_outbox` tables."""

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

        return await self._writer.run(store)

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

        return await self._writer.run(save)

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

        return await self._writer.run(stale)

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

        return await self._writer.run(due)

    async def next_push_at(self) -> float | None:
        def earliest(conn: sqlite3.Connection) -> float | None:
            row = conn.execute(
                "SELECT min(next_attempt_at) FROM push_outbox WHERE state = 'pending'"
            ).fetchone()
            return row[0]

        return await self._writer.run(earliest)

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

        await self._writer.run(record)

    async def push_counts(self) -> dict[str, int]:
        def counts(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute("SELECT state, count(*) FROM push_outbox GROUP BY state")
            return {state: n for state, n in rows}

        return await self._writer.run(counts)

    async def recent_sms(self, limit: int) -> list[SmsRow]:
        def recent(conn: sqlite3.Connection) -> list[SmsRow]:
            rows = conn.execute(
                "SELECT s.id, s.iccid, s.number, s.sender, s.text, s.received_at,"
                " s.activation_id, o.state FROM sms s LEFT JOIN push_outbox o ON o.sms_id = s.id"
                " ORDER BY s.id DESC LIMIT ?",
                (limit,),
            )
            return [SmsRow(*r) for r in rows]

        return await self._writer.run(recent)

    async def outbox_summary(self) -> tuple[int, float | None]:
        """Pending pushes, and when the SMS of the oldest of them was received (None if none)."""

        def summary(conn: sqlite3.Connection) -> tuple[int, float | None]:
            row = conn.execute(
                "SELECT count(*), min(s.received_at) FROM push_outbox o"
                " JOIN sms s ON s.id = o.sms_id WHERE o.state = 'pending'"
            ).fetchone()
            return row[0], row[1]

        return await self._writer.run(summary)
