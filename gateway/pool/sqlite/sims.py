"""SIM cards by ICCID, and the state the pool loads at start-up."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from gateway.pool.records import ActivationRecord, HistoryEntry, SimRecord, StoredState
from gateway.pool.sqlite.writer import Repository


class SimRepository(Repository):
    """The `sims` table (and, for a SIM coming online, its number's history)."""

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

        return await self._writer.run(load)

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

        return await self._writer.run(save)
