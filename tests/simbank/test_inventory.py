"""The SIM-bank inventory on a real SQLite file: learning, conflicts, slot choice, restarts."""

from __future__ import annotations

from gateway.farm.simbank.inventory import CONFLICT, NEW, READY, Inventory
from gateway.pool.sqlite import Store


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def open_inventory(path, clock) -> Inventory:
    store = await Store.open(path)
    inventory = Inventory(store, "board0", ["01", "02"], 4, clock=clock)
    await inventory.load()
    return inventory


async def test_new_sim_waits_for_its_number_and_a_shared_number_is_a_conflict(tmp_path) -> None:
    clock = Clock()
    inventory = await open_inventory(tmp_path / "db", clock)
    try:
        record, new = await inventory.seen("01", 1, "89490000000000000011")
        assert new and record.state == NEW and not inventory.sellable(record.iccid)
        assert await inventory.number_learned(record.iccid, "4915200000001", "cnum")
        assert inventory.sellable(record.iccid)
        await inventory.seen("02", 3, "89490000000000000023")
        assert not await inventory.number_learned("89490000000000000023", "4915200000001", "cnum")
        assert inventory.sim("89490000000000000011").state == CONFLICT
        assert inventory.sim("89490000000000000023").state == CONFLICT
        await inventory.resolve_conflict("89490000000000000011")
        assert inventory.sim("89490000000000000011").state == READY
        assert inventory.sim("89490000000000000023").state == NEW
    finally:
        await inventory.store.close()


async def test_next_slot_is_least_recently_live_and_skips_empty_and_conflict(tmp_path) -> None:
    clock = Clock()
    inventory = await open_inventory(tmp_path / "db", clock)
    try:
        await inventory.set_channel("01", slot=1, iccid=None)
        assert inventory.next_slot("01") == 2  # never seen: round the channel
        for slot, at in ((2, 50.0), (3, 10.0), (4, 30.0)):
            iccid = f"894900000000000001{slot}"
            await inventory.seen("01", slot, iccid)
            await inventory.number_learned(iccid, f"49152000000{slot}", "cnum")
            clock.now = at
            await inventory.live(iccid)
        assert inventory.next_slot("01") == 3
        await inventory.slot_empty("01", 3)
        assert inventory.next_slot("01") == 4
        await inventory.seen("02", 1, "89490000000000000201")
        await inventory.number_learned("89490000000000000201", "491520000004", "cnum")
        assert inventory.next_slot("01") == 2  # slot 4's number is in conflict now
    finally:
        await inventory.store.close()


async def test_inventory_and_open_rotations_survive_a_restart(tmp_path) -> None:
    clock = Clock()
    inventory = await open_inventory(tmp_path / "db", clock)
    await inventory.seen("01", 2, "89490000000000000012")
    await inventory.number_learned("89490000000000000012", "4915200000012", "ussd")
    await inventory.set_channel("01", slot=1, iccid="89490000000000000011")
    await inventory.slot_empty("02", 4)
    await inventory.quarantine("02", "switch never applied")
    rotation = await inventory.rotation_planned("01", 1, "89490000000000000011", 2)
    assert rotation.expected_iccid == "89490000000000000012"
    await inventory.rotation_step(rotation, "switch_sent", attempts=1)
    finished = await inventory.rotation_planned("01", 1, "89490000000000000011", 3)
    await inventory.rotation_done(finished, "ok")
    await inventory.store.close()

    again = await open_inventory(tmp_path / "db", clock)
    try:
        sim = again.sim("89490000000000000012")
        assert sim is not None and (sim.slot, sim.number, sim.number_source) == (
            2,
            "4915200000012",
            "ussd",
        )
        assert again.channels["01"].active_slot == 1
        assert again.channels["02"].quarantined and 4 in again.channels["02"].empty_slots
        assert [(r.id, r.step, r.attempts) for r in again.open_rotations] == [
            (rotation.id, "switch_sent", 1)
        ]
        assert await again.store.rotation_results("board0", 0) == {"ok": 1}
    finally:
        await again.store.close()
