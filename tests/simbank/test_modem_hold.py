"""The modem driver's operations for a SIM switch: sweep on demand, hold, reset, read the SIM."""

from __future__ import annotations

from drivers.events import ModemState
from drivers.simulator.simbank import BankFaults, SimulatedSimBank
from tests.drivers.modem_harness import ModemHarness


async def test_sweep_on_demand_then_hold_switch_reset_and_reinit() -> None:
    bank = SimulatedSimBank(
        channels=1, slots=3, seed=5, faults=BankFaults(sim_detect_seconds=0.3, sim_busy_commands=2)
    )
    module = bank.modules["01"]
    harness = ModemHarness(module.profile, None)
    harness.modem = module
    async with harness:
        first = await harness.wait_ready()
        assert first.iccid == bank.card("01", 1).iccid
        module.deliver_sms("+4915100000001", "left in ME", storage="ME")
        module.store_on_sim(first.iccid, "+4915100000002", "on the SIM")
        assert harness.driver is not None
        assert await harness.driver.sweep_now(timeout=5)
        texts = sorted(p.deliver.text for p in harness.events.received if p.deliver)
        assert texts == ["left in ME", "on the SIM"]
        assert {p.iccid for p in harness.events.received} == {first.iccid}
        assert module.stored_messages("ME") == []

        async with harness.driver.held(timeout=5) as held:
            assert harness.status.state is ModemState.STARTING
            await held.detach()
            bank.board._land("01", 3)
            await held.reset(full=True)
            read = await held.read_sim(timeout=5)
            assert read.iccid == bank.card("01", 3).iccid
        await harness.wait_until(
            lambda: (
                harness.status.state is ModemState.READY
                and harness.status.iccid == bank.card("01", 3).iccid
            ),
            what="ready on the new SIM",
        )

        async with harness.driver.held(timeout=5) as held:
            bank.board._land("01", 2)
            bank.cards["01"][1] = None  # the slot is empty
            module.move_contact(None)
            await held.reset(full=False)
            read = await held.read_sim(timeout=1)
            assert read.iccid is None and read.detail == "no SIM in the slot"
