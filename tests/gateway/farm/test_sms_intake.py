"""From modem PDUs to stored SMS: single parts, multipart joined durably, flush on timeout."""

from __future__ import annotations

import time

from drivers.events import ReceivedPdu
from drivers.sms.pdu import PduError, SmsDeliver, decode_pdu, encode_deliver
from gateway.farm.sms_intake import MISSING_PART, SmsIntake
from gateway.pool.pool import NumberRequest
from tests.gateway.helpers import open_pool, sim

ICCID = sim(1).iccid
LONG_TEXT = "Ваш код подтверждения: 482913. Никому его не сообщайте! 🙂 " * 3


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def received(pdu: str, at: float | None = None) -> ReceivedPdu:
    try:
        decoded = decode_pdu(pdu)
        deliver = decoded if isinstance(decoded, SmsDeliver) else None
        error = None if deliver else type(decoded).__name__
    except PduError as exc:
        deliver, error = None, str(exc)
    return ReceivedPdu(
        port="/dev/null",
        iccid=ICCID,
        pdu=pdu,
        storage="SM",
        index=1,
        received_at=time.time() if at is None else at,
        deliver=deliver,
        decode_error=error,
    )


async def leased_intake(tmp_path, clock: Clock | None = None):
    pool = await open_pool(tmp_path / "simfarm.db")
    await pool.sim_online(sim(1))
    await pool.get_number(NumberRequest("germany", "any", "wa", 10))
    return SmsIntake(pool, multipart_timeout_seconds=60, clock=clock or Clock())


async def pushed_texts(intake: SmsIntake) -> list[str]:
    due = await intake.store.due_pushes(time.time() + 10**6, 100)
    return [p.text for p in due]


async def test_single_sms_is_stored_and_queued(tmp_path) -> None:
    intake = await leased_intake(tmp_path)
    [pdu] = encode_deliver("+4917612345678", "Code 1234")
    stored = await intake.received(received(pdu))
    assert stored is not None and stored.activation_id is not None
    assert await pushed_texts(intake) == ["Code 1234"]
    await intake.store.close()


async def test_multipart_out_of_order_with_duplicates_is_joined_once(tmp_path) -> None:
    intake = await leased_intake(tmp_path)
    parts = encode_deliver("VKontakte", LONG_TEXT, ref16=True)
    assert len(parts) >= 3
    order = [parts[2], parts[0], parts[2], *parts[3:], parts[1]]
    results = [await intake.received(received(p)) for p in order]
    assert [r is not None for r in results] == [False] * (len(order) - 1) + [True]
    # Re-read copies of parts already consumed start nothing new.
    for part in parts:
        assert await intake.received(received(part)) is None
    assert await pushed_texts(intake) == [LONG_TEXT]
    [row] = await intake.store.recent_sms(5)
    assert row.sender == "VKontakte"
    await intake.store.close()


async def test_parts_survive_a_restart(tmp_path) -> None:
    intake = await leased_intake(tmp_path)
    first, second = encode_deliver("+4917612345678", "x" * 200, ref=77)
    assert await intake.received(received(first)) is None
    await intake.store.close()
    pool = await open_pool(tmp_path / "simfarm.db")
    intake = SmsIntake(pool, multipart_timeout_seconds=60)
    stored = await intake.received(received(second))
    assert stored is not None
    assert await pushed_texts(intake) == ["x" * 200]
    await pool.store.close()


async def test_incomplete_group_is_flushed_after_the_timeout(tmp_path) -> None:
    clock = Clock()
    intake = await leased_intake(tmp_path, clock)
    parts = encode_deliver("+4917612345678", "abc" * 120, ref=9)
    assert len(parts) == 3
    await intake.received(received(parts[0], at=clock.now))
    await intake.received(received(parts[2], at=clock.now))
    assert await intake.flush_stale() == 0
    clock.now += 61
    assert await intake.flush_stale() == 1
    [text] = await pushed_texts(intake)
    assert text.startswith("abc") and MISSING_PART in text
    [row] = await intake.store.recent_sms(5)
    assert row.text == text
    assert await intake.flush_stale() == 0
    await intake.store.close()


async def test_undecodable_pdu_is_kept_raw(tmp_path) -> None:
    intake = await leased_intake(tmp_path)
    stored = await intake.received(received("07911326040000F0040B91"))
    assert stored is not None and not stored.duplicate
    [row] = await intake.store.recent_sms(5)
    assert row.sender == "unknown" and row.text == ""
    await intake.store.close()


async def test_sms_for_a_sim_without_activation_is_not_queued(tmp_path) -> None:
    pool = await open_pool(tmp_path / "simfarm.db")
    await pool.sim_online(sim(1))
    intake = SmsIntake(pool)
    [pdu] = encode_deliver("+4917612345678", "hello")
    stored = await intake.received(received(pdu))
    assert stored is not None and stored.activation_id is None
    assert await pushed_texts(intake) == []
    await pool.store.close()
