"""The inventory of one SIM bank: every SIM ever seen, keyed by ICCID, and what each slot holds.

In memory for decisions (which slot next, is this number in conflict), written through to the
store for restarts. A SIM first seen in a slot is `new` until its number is known (the driver's
number ladder); a number seen on two ICCIDs puts both in `conflict`, and a SIM in conflict is
never sold until an operator resolves it (spec simbank.md §4.2 S13).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from gateway.pool.records import BankChannelRecord, BankSimRecord, RotationRecord
from gateway.pool.storage import BankStorage

log = logging.getLogger(__name__)

NEW = "new"
READY = "ready"
CONFLICT = "conflict"


@dataclass(slots=True)
class ChannelView:
    """What the inventory knows of one channel."""

    channel: str
    active_slot: int | None = None
    iccid: str | None = None
    quarantined: bool = False
    failures: int = 0
    detail: str | None = None
    live_since: float | None = None  # wall time the current SIM became live (None: not live)
    empty_slots: set[int] = field(default_factory=set)


class Inventory:
    """One board's SIMs and channels; every change is persisted before it is relied upon."""

    def __init__(
        self,
        store: BankStorage,
        board: str,
        channels: Iterable[str],
        slots: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.board = board
        self.slots = slots
        self.clock = clock
        self.channels: dict[str, ChannelView] = {c: ChannelView(c) for c in sorted(channels)}
        self._sims: dict[str, BankSimRecord] = {}
        self._at: dict[tuple[str, int], str] = {}  # (channel, slot) -> ICCID
        self.open_rotations: list[RotationRecord] = []

    async def load(self) -> None:
        state = await self.store.load_bank(self.board)
        for sim in state.sims:
            self._sims[sim.iccid] = sim
            self._at[(sim.channel, sim.slot)] = sim.iccid
        for channel, slot in state.empty_slots:
            if channel in self.channels:
                self.channels[channel].empty_slots.add(slot)
        for record in state.channels:
            view = self.channels.get(record.channel)
            if view is not None:
                view.active_slot = record.active_slot
                view.iccid = record.iccid
                view.quarantined = record.quarantined
                view.failures = record.failures
                view.detail = record.detail
        self.open_rotations = list(state.open_rotations)
        log.info(
            "event=simbank_inventory_loaded board=%s sims=%d open_rotations=%d",
            self.board,
            len(self._sims),
            len(self.open_rotations),
        )

    # --- reading ------------------------------------------------------------------------

    def sim(self, iccid: str) -> BankSimRecord | None:
        return self._sims.get(iccid)

    def sim_at(self, channel: str, slot: int) -> BankSimRecord | None:
        iccid = self._at.get((channel, slot))
        return self._sims.get(iccid) if iccid else None

    def sims(self) -> list[BankSimRecord]:
        return sorted(self._sims.values(), key=lambda s: (s.channel, s.slot))

    def holders_of(self, number: str) -> list[str]:
        return sorted(i for i, s in self._sims.items() if s.number == number)

    def sellable(self, iccid: str) -> bool:
        """Known, number known, not in conflict."""
        sim = self._sims.get(iccid)
        return sim is not None and sim.state == READY

    def next_slot(self, channel: str) -> int | None:
        """Least recently live slot other than the active one; never-seen slots first.

        Empty slots are skipped, and so are SIMs in number conflict (they cannot be sold).
        Ties go round the channel from the active slot.
        """
        view = self.channels[channel]
        active = view.active_slot or 1
        best: tuple[float, int] | None = None
        best_slot = None
        for step in range(1, self.slots):
            slot = (active - 1 + step) % self.slots + 1
            if slot in view.empty_slots:
                continue
            sim = self.sim_at(channel, slot)
            if sim is not None and sim.state == CONFLICT:
                continue
            last = -1.0 if sim is None or sim.last_live is None else sim.last_live
            if best is None or (last, step) < best:
                best, best_slot = (last, step), slot
        return best_slot

    def live_share(self, since: float) -> float:
        """Share of the known SIMs (and never-seen slots) that were live since `since`."""
        total = self.slots * len(self.channels) - sum(
            len(v.empty_slots) for v in self.channels.values()
        )
        if total <= 0:
            return 0.0
        live = sum(1 for s in self._sims.values() if s.last_live and s.last_live >= since)
        return min(1.0, live / total)

    # --- learning -------------------------------------------------------------------------

    async def seen(self, channel: str, slot: int, iccid: str) -> tuple[BankSimRecord, bool]:
        """A SIM read in a slot; (its record, whether it was never seen before)."""
        now = self.clock()
        known = self._sims.get(iccid)
        view = self.channels[channel]
        view.empty_slots.discard(slot)
        if known is not None and (known.channel, known.slot) == (channel, slot):
            return known, False
        if known is None:
            record = BankSimRecord(iccid, self.board, channel, slot, None, None, NEW, now)
            log.info(
                "event=simbank_sim_learned board=%s channel=%s slot=%d iccid=%s",
                self.board,
                channel,
                slot,
                iccid,
            )
        else:
            log.warning(
                "event=simbank_sim_moved board=%s iccid=%s from=%s/%d to=%s/%d",
                self.board,
                iccid,
                known.channel,
                known.slot,
                channel,
                slot,
            )
            self._at.pop((known.channel, known.slot), None)
            record = replace(known, channel=channel, slot=slot)
        previous = self._at.get((channel, slot))
        if previous is not None and previous != iccid:
            log.info(
                "event=simbank_slot_changed board=%s channel=%s slot=%d old_iccid=%s iccid=%s",
                self.board,
                channel,
                slot,
                previous,
                iccid,
            )
        self._sims[iccid] = record
        self._at[(channel, slot)] = iccid
        await self.store.save_bank_sim(record)
        return record, known is None

    async def number_learned(self, iccid: str, number: str, source: str | None) -> bool:
        """The driver knows this SIM's number; False when the number is in conflict."""
        sim = self._sims.get(iccid)
        if sim is None:
            return True
        if sim.number == number and sim.state != NEW:
            return sim.state != CONFLICT
        others = [i for i in self.holders_of(number) if i != iccid]
        state = CONFLICT if others else READY
        self._sims[iccid] = replace(sim, number=number, number_source=source, state=state)
        await self.store.save_bank_sim(self._sims[iccid])
        for other in others:
            record = self._sims[other]
            if record.state != CONFLICT:
                self._sims[other] = replace(record, state=CONFLICT)
                await self.store.save_bank_sim(self._sims[other])
        if others:
            log.warning(
                "event=simbank_number_conflict board=%s number=%s iccids=%s detail=%r",
                self.board,
                number,
                ",".join([iccid, *others]),
                "one number on several SIMs: none of them is sold until resolved",
            )
        return not others

    async def resolve_conflict(self, iccid: str) -> None:
        """The operator says this SIM's number is right (the others get theirs re-learned)."""
        sim = self._sims.get(iccid)
        if sim is None or sim.number is None:
            return
        for other in self.holders_of(sim.number):
            record = self._sims[other]
            if other == iccid:
                self._sims[other] = replace(record, state=READY)
            else:
                self._sims[other] = replace(record, number=None, number_source=None, state=NEW)
            await self.store.save_bank_sim(self._sims[other])

    async def slot_empty(self, channel: str, slot: int) -> None:
        self.channels[channel].empty_slots.add(slot)
        iccid = self._at.pop((channel, slot), None)
        if iccid is not None:
            log.info(
                "event=simbank_slot_emptied board=%s channel=%s slot=%d iccid=%s",
                self.board,
                channel,
                slot,
                iccid,
            )
        await self.store.save_bank_slot_empty(self.board, channel, slot, self.clock())

    async def live(self, iccid: str) -> None:
        """The SIM is advertised now (and still is): remember when it was last live."""
        sim = self._sims.get(iccid)
        if sim is None:
            return
        now = self.clock()
        view = self.channels[sim.channel]
        if view.iccid == iccid and view.live_since is None:
            view.live_since = now
        self._sims[iccid] = replace(sim, last_live=now)
        await self.store.save_bank_sim(self._sims[iccid])

    async def set_channel(
        self, channel: str, *, slot: int | None, iccid: str | None, failures: int | None = None
    ) -> None:
        view = self.channels[channel]
        if view.iccid != iccid:
            view.live_since = None
        view.active_slot, view.iccid = slot, iccid
        if failures is not None:
            view.failures = failures
        await self._save_channel(view)

    async def quarantine(self, channel: str, detail: str) -> None:
        view = self.channels[channel]
        view.quarantined, view.detail = True, detail
        log.error(
            "event=simbank_channel_quarantined board=%s channel=%s detail=%r",
            self.board,
            channel,
            detail,
        )
        await self._save_channel(view)

    async def release_quarantine(self, channel: str) -> None:
        view = self.channels[channel]
        view.quarantined, view.detail, view.failures = False, None, 0
        await self._save_channel(view)

    async def _save_channel(self, view: ChannelView) -> None:
        record = BankChannelRecord(
            self.board,
            view.channel,
            view.active_slot,
            view.iccid,
            view.quarantined,
            view.failures,
            view.detail,
        )
        await self.store.save_bank_channel(record, self.clock())

    # --- rotation records -----------------------------------------------------------------

    async def rotation_planned(
        self, channel: str, from_slot: int | None, old_iccid: str | None, to_slot: int
    ) -> RotationRecord:
        expected = self.sim_at(channel, to_slot)
        return await self.store.open_rotation(
            board=self.board,
            channel=channel,
            from_slot=from_slot,
            old_iccid=old_iccid,
            to_slot=to_slot,
            expected_iccid=expected.iccid if expected else None,
            at=self.clock(),
        )

    async def rotation_step(self, rotation: RotationRecord, step: str, **fields) -> RotationRecord:
        updated = replace(rotation, step=step, **fields)
        await self.store.save_rotation(updated, self.clock())
        return updated

    async def rotation_done(
        self, rotation: RotationRecord, result: str, detail: str | None = None
    ) -> RotationRecord:
        now = self.clock()
        done = replace(rotation, result=result, detail=detail, finished_at=now)
        await self.store.save_rotation(done, now)
        return done
