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


def switches_of(bank: SimulatedSimBank, channel: str, after: int = 0) -> int:
    lines = [line for _, line in bank.board.log[after:]]
    return sum(1 for line in lines if line.startswith(f"AT+SWIT{channel}-"))


async def test_leased_channels_are_never_switched_and_their_sms_are_pushed(tmp_path) -> None:
    bank = SimulatedSimBank(4, 8, seed=3, faults=BankFaults(silent_failure_rate=0.3))
    async with (
        started_bank(bank),
        running_bank(tmp_path, bank, bank_options={"max_in_transition": 0.5}) as run,
    ):
        await run.wait(lambda: len(run.live()) == 4, 30)
        single = await run.action(
            "GET_NUMBER", country="germany", operator="any", service="vk", sum=10
        )
        rent = await run.action(
            "GET_NUMBER", country="germany", operator="any", service="rent", sum=10
        )
        assert single["status"] == rent["status"] == "SUCCESS"
        leased = {}
        for issued in (single, rent):
            iccid = next(c.iccid for c in bank.all_cards() if c.number == str(issued["number"]))
            leased[bank.where(iccid)[0]] = issued["number"]
        mark = len(bank.board.log)
        others = sorted(set(bank.modules) - set(leased))

        def ten_rounds() -> bool:
            return all(switches_of(bank, channel, mark) >= 10 for channel in others)

        await run.wait(ten_rounds, 60)
        assert all(switches_of(bank, channel, mark) == 0 for channel in leased)
        for channel in leased:
            bank.modules[channel].deliver_sms("VK", f"code for {channel}")
        await run.market.wait_for(lambda received: len(received) >= 2, 20)
        pushed = {(p.body["phone"], p.body["text"]) for p in run.market.received}
        assert pushed == {(leased[c], f"code for {c}") for c in leased}
        assert run.violations == []


async def test_a_channel_that_keeps_failing_is_quarantined_and_reported(tmp_path) -> None:
    bank = SimulatedSimBank(4, 8, seed=5, faults=BankFaults(stuck_channels={"03": 1.0}))
    stuck_iccid = bank.card("03", 1).iccid
    async with started_bank(bank), running_bank(tmp_path, bank) as run:
        rotation = None

        def quarantined() -> bool:
            nonlocal rotation
            rotation = run.daemon.simbanks.rotations[0] if run.daemon.simbanks else None
            return rotation is not None and rotation.inventory.channels["03"].quarantined

        await run.wait(quarantined, 40)
        view = run.daemon.simbanks.snapshot()[0]
        row = next(c for c in view["channels"] if c["channel"] == "03")
        assert row["quarantined"] and "never applied" in row["detail"]
        assert view["quarantined"] == 1 and view["failures"]["not_applied"] >= 3
        assert switches_of(bank, "03") == 3  # the first try and 2 more
        # the SIM that stayed is verified and still sold
        await run.wait(lambda: stuck_iccid in run.live().values(), 20)
        assert run.violations == []


async def test_sms_left_in_me_at_switch_time_are_stored_under_the_old_sim(tmp_path) -> None:
    bank = SimulatedSimBank(4, 8, seed=9)
    module = bank.modules["02"]
    first = bank.card("02", 1)
    async with (
        started_bank(bank),
        running_bank(tmp_path, bank, bank_options={"dwell_minutes": 0.05}) as run,
    ):
        await run.wait(lambda: first.number in run.live(), 30)
        module.settings.cnmi = (0, 0, 0, 0, 0)  # no +CMTI: it sits in ME until a sweep
        module.deliver_sms("+4930999", "left behind", storage="ME")
        await run.wait(lambda: bank.live_iccid("02") != first.iccid, 30)
        rows = await run.pool.store.recent_sms(50)
        row = next(r for r in rows if r.text == "left behind")
        assert (row.iccid, row.number) == (first.iccid, first.number)
        assert module.stored_messages("ME") == []
