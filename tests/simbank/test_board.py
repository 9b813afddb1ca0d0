"""The switch-board driver against the simulated board on a real pty."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from drivers.simbank.board import SerialSwitchBoard, switch_command
from drivers.simbank.switcher import RowWideRefused, SwitcherError
from drivers.simulator.simbank import BankFaults, SimulatedSimBank


@pytest.fixture
async def bank() -> AsyncIterator[SimulatedSimBank]:
    bank = SimulatedSimBank(channels=2, slots=4, seed=3)
    await bank.start()
    try:
        yield bank
    finally:
        await bank.stop()


def board_for(bank: SimulatedSimBank, **options) -> SerialSwitchBoard:
    values = {"min_command_interval_seconds": 0.05, "reply_timeout_seconds": 0.3}
    values.update(options)
    return SerialSwitchBoard(bank.board_path, slots=4, **values)


def test_switch_command_is_zero_padded() -> None:
    assert switch_command("03", 5) == "AT+SWIT03-0005"
    assert switch_command(7, 13) == "AT+SWIT07-0013"
    with pytest.raises(ValueError):
        switch_command("100", 1)


async def test_switch_moves_the_contact_and_the_module_sees_it_only_after_a_reset(bank) -> None:
    board = board_for(bank)
    await board.open()
    try:
        assert await board.handshake() == "SWSIM OK"
        sent = await board.switch("02", 3)
        assert sent.command == "AT+SWIT02-0003" and sent.reply == "SWITCH OK"
        module = bank.modules["02"]
        assert bank.board.active["02"] == 3 and module.contact is bank.card("02", 3)
        assert module.sim is bank.card("02", 1)  # not reset yet
        await module.reboot()
        assert module.sim is bank.card("02", 3)
    finally:
        await board.close()


async def test_silence_and_plain_ok_count_as_sent(bank) -> None:
    board = board_for(bank)
    await board.open()
    try:
        bank.faults.reply = None
        assert (await board.switch("01", 2)).reply is None
        bank.faults.reply = "OK"
        assert (await board.switch("01", 3)).reply == "OK"
        assert bank.board.active["01"] == 3
        assert board.silent_replies == 1
    finally:
        await board.close()


async def test_error_is_retried_then_refused(bank) -> None:
    bank.faults.error_rate = 1.0
    board = board_for(bank, error_retries=2, error_retry_seconds=0.01)
    await board.open()
    try:
        with pytest.raises(SwitcherError):
            await board.switch("01", 2)
        lines = [line for _, line in bank.board.log]
        assert lines == ["AT+SWIT01-0002"] * 3
        assert bank.board.active["01"] == 1
    finally:
        await board.close()


async def test_commands_are_spaced_and_serialised(bank) -> None:
    board = board_for(bank, min_command_interval_seconds=0.2)
    await board.open()
    try:
        await asyncio.gather(*(board.switch(ch, s) for ch in ("01", "02") for s in (2, 3)))
        times = [at for at, _ in bank.board.log]
        assert len(times) == 4
        assert all(b - a >= 0.19 for a, b in itertools.pairwise(times))
    finally:
        await board.close()


async def test_row_wide_commands_only_when_no_lease(bank) -> None:
    leased = True
    board = board_for(bank, row_wide_allowed=lambda: not leased)
    await board.open()
    try:
        await board.switch("01", 4)
        with pytest.raises(RowWideRefused):
            await board.cold_reset()
        with pytest.raises(RowWideRefused):
            await board.switch("00", 2)
        assert bank.board.active["01"] == 4
        leased = False
        await board.cold_reset()
        assert bank.board.active == {"01": 1, "02": 1}
        assert [line for _, line in bank.board.log][-1] == "AT+NEXT00"
    finally:
        await board.close()


async def test_simulated_board_failure_knobs_are_deterministic() -> None:
    outcomes = []
    for _ in range(2):
        bank = SimulatedSimBank(
            channels=1, slots=8, seed=11, faults=BankFaults(silent_failure_rate=0.5)
        )
        for slot in range(2, 8):
            bank.board._switch("01", slot)
            outcomes.append(bank.board.active["01"])
    assert outcomes[:6] == outcomes[6:]
    assert len(set(outcomes[:6])) > 1


async def test_power_loss_moves_every_channel_to_slot_one(bank) -> None:
    board = board_for(bank)
    await board.open()
    try:
        await board.switch("01", 3)
        await bank.modules["01"].reboot()
        bank.board.power_loss()
        assert bank.board.active == {"01": 1, "02": 1}
        assert bank.modules["01"].sim is None  # the contact dropped
        await bank.modules["01"].reboot()
        assert bank.modules["01"].sim is bank.card("01", 1)
    finally:
        await board.close()
