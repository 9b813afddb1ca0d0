"""Every log record of a full flow, captured at DEBUG: the partner key never appears, and SMS
texts never appear at INFO or above (they may at DEBUG)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from gateway.ops.logs import KeyValueFormatter, mask_secret
from tests.gateway.ops.test_admin import EVENTUALLY_SECONDS, KEY, running_daemon

SINGLE_TEXT = "Your VK code is 583920, do not share it"
LONG_TEXT = "Ваш код для входа в Telegram: 771204. Никому не сообщайте этот код! " * 3
FORMATTER = KeyValueFormatter()


def rendered(record: logging.LogRecord) -> str:
    """The line as the daemon would write it (tracebacks and all)."""
    return FORMATTER.format(record)


def fragments(text: str) -> list[str]:
    """The text and its distinctive pieces (a multipart part carries only a slice of it)."""
    words = [word for word in text.replace(",", " ").replace(".", " ").split() if len(word) >= 6]
    return [text, *words]


def assert_no_secrets(records: list[logging.LogRecord], texts: list[str]) -> None:
    assert records, "nothing was logged"
    for record in records:
        line = rendered(record)
        assert KEY not in line, line
        if record.levelno >= logging.INFO:
            for text in texts:
                for piece in fragments(text):
                    assert piece not in line, line


async def test_a_full_flow_logs_no_key_and_no_sms_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_daemon(tmp_path, 2) as farm:
        assert farm.daemon.admin_port is not None
        await farm.action("GET_SERVICES")
        vk = await farm.get_number("vk")
        tg = await farm.get_number("tg")
        assert vk["status"] == tg["status"] == "SUCCESS"
        by_number = {s.number: s.port for s in farm.daemon.farm.statuses()}
        await farm.drivers[by_number[str(vk["number"])]].deliver("VK", SINGLE_TEXT)
        await farm.drivers[by_number[str(tg["number"])]].deliver("Telegram", LONG_TEXT)
        await farm.market.wait_for(lambda received: len(received) >= 2, EVENTUALLY_SECONDS)
        wrong = await farm.api("POST", "/", json={"action": "GET_SERVICES", "key": KEY + "x"})
        assert wrong.status_code == 401
        for reply in (vk, tg):
            await farm.action("FINISH_ACTIVATION", activationId=reply["activationId"], status=3)
        # The operator's view reads texts too; it must not log them either.
        assert (await farm.admin("GET", "/sms", params={"last": 10})).status_code == 200
        assert (await farm.admin("GET", "/metrics")).status_code == 200
    pushed = {push.body["text"] for push in farm.market.successes()}
    assert pushed == {SINGLE_TEXT, LONG_TEXT}  # the flow really carried the texts
    assert all(
        push.headers.get("authorization") == f"Bearer {KEY}" for push in farm.market.received
    )
    assert_no_secrets(caplog.records, [SINGLE_TEXT, LONG_TEXT])
    assert any("event=sms_stored" in r.getMessage() for r in caplog.records)
    assert any("event=push " in r.getMessage() for r in caplog.records)


async def test_simulated_modems_with_the_real_driver_log_no_sms_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import httpx

    from drivers.simulator import make_demo_farm
    from tests.gateway.farm_harness import KEY as FARM_KEY
    from tests.gateway.farm_harness import running_daemon, started

    caplog.set_level(logging.DEBUG)
    sims = make_demo_farm(2)
    async with started(sims), running_daemon(tmp_path / "simfarm.db", sims) as farm:
        daemon, market = farm.daemon, farm.market
        await farm.wait_live({m.sim.number for m in sims if m.sim is not None}, EVENTUALLY_SECONDS)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.port}") as client:
            body = {"country": "germany", "operator": "any", "service": "vk", "sum": 10}
            reply = await client.post("/", json={"action": "GET_NUMBER", "key": FARM_KEY, **body})
            issued = reply.json()
            assert issued["status"] == "SUCCESS"
            modem = sims.by_number(str(issued["number"]))
            modem.deliver_sms("VK", SINGLE_TEXT)
            modem.deliver_sms("Telegram", LONG_TEXT)
            await market.wait_for(lambda received: len(received) >= 2, EVENTUALLY_SECONDS)
            finish = {"activationId": issued["activationId"], "status": 3}
            await client.post("/", json={"action": "FINISH_ACTIVATION", "key": FARM_KEY, **finish})
    assert {push.body["text"] for push in market.successes()} == {SINGLE_TEXT, LONG_TEXT}
    records = caplog.records
    assert records
    for record in records:
        line = rendered(record)
        assert FARM_KEY not in line, line
        if record.levelno >= logging.INFO:
            for text in (SINGLE_TEXT, LONG_TEXT):
                for piece in fragments(text):
                    assert piece not in line, line
    # At DEBUG the text may be seen (for an operator who asks for it).
    assert any(SINGLE_TEXT in rendered(r) for r in records if r.levelno == logging.DEBUG)


def test_mask_secret_shows_at_most_a_few_last_characters() -> None:
    masked = mask_secret(KEY)
    assert masked.startswith("****") and KEY not in masked and len(masked) <= 8
