"""Rotation end to end: a simulated 4 x 8 bank, the real driver, pool, API and pushes."""

from __future__ import annotations

from drivers.simulator.simbank import BankFaults, SimulatedSimBank
from tests.simbank.harness import running_bank, started_bank


async def test_every_sim_becomes_live_despite_silent_switch_failures(tmp_path) -> None:
    bank = SimulatedSimBank(
        4, 8, seed=7, faults=BankFaults(silent_failure_rate=0.3, sim_detect_seconds=0.05)
    )
    all_numbers = {card.number for card in bank.all_cards()}
    async with (
        started_bank(bank),
        running_bank(tmp_path, bank, bank_options={"max_in_transition": 1.0}) as run,
    ):
        await run.wait(lambda: run.ever_live >= all_numbers, 60)
        assert run.violations == []
        rotation = run.rotation
        assert rotation.stats.failures["not_applied"] > 0  # the 30 % did happen
        # never-seen and least recently live slots first: each new SIM was learned once
        assert rotation.stats.rotations["learned"] == 4 * 7, rotation.stats
        lines = [line for _, line in bank.board.log]
        assert not any(line.startswith(("AT+SWIT00", "AT+NEXT11")) for line in lines)
