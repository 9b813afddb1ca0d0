"""Regressions the fault-injection soak (tests/soak) found, each reduced to a deterministic test.

1. A complete multipart SMS waited for the multipart timeout and was recorded as incomplete when
   the join of its last part did not reach the disk (SIGKILL between the part's commit and the
   join's commit, or a failed join write). The part was on disk, so the modem kept its copy and
   handed it over again (after the restart, or at the next sweep); `Store.save_part` saw a known
   fingerprint and answered None ("a re-read copy"), so `SmsIntake.received` never looked at the
   group again. Only `flush_stale` joined it, one multipart timeout later, with
   `decode_error = "incomplete: N of N parts"`. A 40-minute soak (about 70 SIGKILLs) saw it four
   times. Fixed: `save_part` ignores only a part already consumed.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from drivers.events import ReceivedPdu
from drivers.sms.pdu import SmsDeliver, decode_pdu, encode_deliver
from gateway.farm.sms_intake import SmsIntake
from gateway.pool.pool import NumberRequest
from tests.gateway.helpers import open_pool, sim

SIM = sim(1)
TEXT = "Your verification code is 739451. Do not share this code with anyone, ever. " * 3


def part(pdu: str, index: int) -> ReceivedPdu:
    decoded = decode_pdu(pdu)
    assert isinstance(decoded, SmsDeliver)
    return ReceivedPdu("/dev/null", SIM.iccid, pdu, "SM", index, time.time(), decoded)


async def leased_intake(db: Path) -> SmsIntake:
    pool = await open_pool(db)
    assert await pool.sim_online(SIM)
    if pool.open_activation_for(SIM.number) is None:
        await pool.get_number(NumberRequest("germany", "any", "wa", 10))
    return SmsIntake(pool, multipart_timeout_seconds=60)


async def queued_texts(intake: SmsIntake) -> list[str]:
    due = await intake.store.due_pushes(time.time() + 10**6, 100)
    return [p.text for p in due]


async def test_multipart_whose_join_was_lost_is_joined_when_its_part_comes_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "simfarm.db"
    first, last = encode_deliver("VK", TEXT, ref=77)
    intake = await leased_intake(db)
    assert await intake.received(part(first, 1)) is None  # waiting for the other part

    async def killed(*args, **kwargs):
        raise SystemExit("SIGKILL (test): the join never reaches the disk")

    # The daemon dies after the last part's commit, before the join's commit.
    monkeypatch.setattr(intake.pool, "sms_received", killed)
    with pytest.raises(SystemExit):
        await intake.received(part(last, 2))
    await intake.store.close()

    # Restarted on the same file: the modem still holds the last part and hands it over again.
    intake = await leased_intake(db)
    try:
        stored = await intake.received(part(last, 2))
        assert stored is not None, "the complete group was left for the multipart timeout"
        assert not stored.duplicate and stored.activation_id is not None
        assert await queued_texts(intake) == [TEXT]
    finally:
        await intake.store.close()


async def test_multipart_whose_join_failed_is_joined_when_the_driver_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, last = encode_deliver("VK", TEXT, ref=78)
    intake = await leased_intake(tmp_path / "simfarm.db")
    try:
        assert await intake.received(part(first, 1)) is None
        real = intake.pool.sms_received
        calls = 0

        async def failing_once(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == 1:
                raise OSError("disk I/O error (test)")
            return await real(*args, **kwargs)

        monkeypatch.setattr(intake.pool, "sms_received", failing_once)
        with pytest.raises(OSError):
            await intake.received(part(last, 2))  # the driver keeps the PDU on the modem
        stored = await intake.received(part(last, 2))  # and hands it over at the next sweep
        assert stored is not None, "the complete group was left for the multipart timeout"
        assert not stored.duplicate and stored.activation_id is not None
        assert await queued_texts(intake) == [TEXT]
    finally:
        await intake.store.close()
