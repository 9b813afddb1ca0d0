"""Board power loss during open activations, and a restart in the middle of a rotation."""

from __future__ import annotations

import dataclasses

from drivers.simulator.simbank import SimulatedSimBank
from gateway.farm.simbank.inventory import Inventory
from gateway.pool.sqlite import Store
from tests.simbank.harness import running_bank, started_bank


async def test_board_power_loss_raises_an_incident_and_restores_leased_sims_first(
    tmp_path,
) -> None:
    bank = SimulatedSimBank(4, 8, seed=4)
    async with started_bank(bank), running_bank(tmp_path, bank) as run:
        rotation = run.daemon.simbanks.rotations[0]
        await run.wait(
            lambda: len(run.live()) == 4 and all(s != 1 for s in bank.board.active.values()), 40
        )
        rotation.settings = dataclasses.replace(rotation.settings, dwell_seconds=1000.0)
        await run.wait(lambda: not rotation._busy and len(run.live()) == 4, 30)
        single = await run.action(
            "GET_NUMBER", country="germany", operator="any", service="wa", sum=10
        )
        rent = await run.action(
            "GET_NUMBER", country="germany", operator="any", service="rent", sum=10
        )
        leased = {}
        for issued in (single, rent):
            card = next(c for c in bank.all_cards() if c.number == str(issued["number"]))
            leased[bank.where(card.iccid)[0]] = card
        positions = dict(bank.board.active)
        mark = len(bank.board.log)
        assert run.violations == []
        bank.board.power_loss()
        first_channel = next(iter(leased))
        bank.modules[first_channel].store_on_sim(
            leased[first_channel].iccid, "+4930111", "waited on the SIM"
        )
        await run.wait(lambda: not {c.number for c in leased.values()} & set(run.live()), 20)
        await run.wait(lambda: {c.number for c in leased.values()} <= set(run.live()), 40)
        switched = [line for _, line in bank.board.log[mark:] if line.startswith("AT+SWIT")]
        assert {line[7:9] for line in switched[:2]} == set(leased)
        for channel in leased:
            assert f"AT+SWIT{channel}-{positions[channel]:04d}" in switched[:2]
        assert any("changed at once" in incident for incident in rotation.stats.incidents)
        await run.market.wait_for(lambda received: len(received) >= 1, 20)
        assert [p.body["text"] for p in run.market.received] == ["waited on the SIM"]
        assert run.market.received[0].body["phone"] == int(leased[first_channel].number)
        await run.wait(lambda: len(run.live()) == 4, 40)
        assert bank.board.active == positions
        # Until a module reports its SIM gone the loss is invisible; once all is restored,
        # every count is right again.
        run.violations.clear()
        run.check_counts()
        assert run.violations == []


async def test_restart_in_the_middle_of_a_rotation_resumes_or_rolls_back(tmp_path) -> None:
    bank = SimulatedSimBank(4, 8, seed=6)
    db = tmp_path / "simfarm.db"
    still = {"dwell_minutes": 100.0}
    async with started_bank(bank):
        async with running_bank(tmp_path, bank, bank_options=still, db=db) as run:
            await run.wait(lambda: len(run.live()) == 4, 30)
            board = run.daemon.simbanks.rotations[0].name
        # What a crash leaves behind: channel 01 switched (not reset), channel 02 only swept.
        store = await Store.open(db)
        inventory = Inventory(store, board, list(bank.modules), 8)
        await inventory.load()
        resumed = await inventory.rotation_planned("01", 1, bank.card("01", 1).iccid, 3)
        await inventory.rotation_step(resumed, "switch_sent", attempts=1)
        rolled = await inventory.rotation_planned("02", 1, bank.card("02", 1).iccid, 4)
        await inventory.rotation_step(rolled, "swept")
        await store.close()
        bank.board._land("01", 3)

        async with running_bank(tmp_path, bank, bank_options=still, db=db) as run:
            rotation = run.daemon.simbanks.rotations[0]
            counted_before_ready: list[int] = []
            run.pool.on_change(
                lambda: counted_before_ready.append(len(run.live())) if not rotation.ready else None
            )
            wanted = {bank.card(c, 1).number for c in ("02", "03", "04")}
            wanted.add(bank.card("01", 3).number)
            await run.wait(lambda: set(run.live()) == wanted, 40)
            assert not any(counted_before_ready)
            assert rotation.stats.rotations["rolled_back"] == 1
            assert bank.board.active["02"] == 1 and bank.board.active["01"] == 3
            results = await run.pool.store.rotation_results(board, 0)
            assert results.get("rolled_back") == 1
            assert results.get("learned", 0) + results.get("ok", 0) >= 1
            assert run.violations == []
