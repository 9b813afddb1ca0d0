"""The operators' view of SIM banks: GET /simbank, `simfarm simbank`, the simbank metrics and
`simfarm demo --simbank`, against a daemon driving a simulated 4 x 8 bank."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from drivers.simulator.simbank import BankFaults, SimulatedSimBank
from gateway.cli import main
from tests.gateway.ops.test_admin import running_daemon
from tests.processes import free_port, read_until
from tests.simbank.harness import running_bank, started_bank

WIDTH = 100
SIMBANK_FAMILIES = {
    "simfarm_simbank_rotations",
    "simfarm_simbank_failures",
    "simfarm_simbank_quarantined_channels",
    "simfarm_simbank_live_share_24h",
}
#: Bounds for the demo subprocess on a loaded machine; reached only when something is wrong.
DEMO_START_SECONDS = 120.0
DEMO_STOP_SECONDS = 30.0


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIMFARM_KEY", "SIMFARM_CONFIG", "SIMFARM_ADMIN", "JOURNAL_STREAM"):
        monkeypatch.delenv(name, raising=False)


async def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def families(text: str) -> dict[str, list]:
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


async def test_route_cli_and_metrics_show_the_bank(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bank = SimulatedSimBank(4, 8, seed=11, faults=BankFaults(silent_failure_rate=0.3))
    async with started_bank(bank), running_bank(tmp_path, bank) as run:
        rotation = run.rotation

        def rotated_and_failed() -> bool:
            stats = rotation.stats
            return sum(stats.rotations.values()) >= 4 and stats.failures["not_applied"] > 0

        await run.wait(rotated_and_failed, 60)
        admin = f"http://127.0.0.1:{run.daemon.admin_port}"
        async with httpx.AsyncClient(base_url=admin, timeout=30) as client:
            reply = await client.get("/simbank")
            scrape = await client.get("/metrics")
        code, out, err = await run_cli(capsys, "simbank", "--admin", admin)
        json_code, json_out, _ = await run_cli(capsys, "simbank", "--admin", admin, "--json")

    assert reply.status_code == 200
    (board,) = reply.json()["boards"]
    assert board["board"] == bank.board_path and board["slots"] == 8
    assert [c["channel"] for c in board["channels"]] == ["01", "02", "03", "04"]
    numbers = {card.number for card in bank.all_cards()}
    for channel in board["channels"]:
        assert 1 <= channel["active_slot"] <= 8
        assert channel["number"] is None or channel["number"] in numbers
    assert sum(board["rotations"].values()) >= 4 and board["failures"]["not_applied"] > 0
    assert 0 < board["live_share_24h"] <= 1

    assert code == 0 and err == ""
    lines = out.rstrip("\n").split("\n")
    assert all(len(line) <= WIDTH for line in lines), [len(line) for line in lines]
    for header in ("BOARD", "CH", "SLOT", "ICCID", "NUMBER", "STATE", "NEXT"):
        assert header in lines[0]
    assert len(lines) == 1 + 4 + 1 + 1  # headers, four channels, a blank line, the board
    summary = lines[-1]
    assert re.search(r"rotations \d+; failures S1 [1-9]\d* S2 \d+ S3 \d+ S4 \d+;", summary)
    assert re.search(r"quarantined \d/4; live 24h \d+%", summary)
    assert json_code == 0
    (json_board,) = json.loads(json_out)["boards"]
    assert json_board["board"] == bank.board_path and len(json_board["channels"]) == 4

    assert scrape.status_code == 200
    found = families(scrape.text)
    assert SIMBANK_FAMILIES <= set(found)
    (rotations,) = found["simfarm_simbank_rotations"]
    assert rotations.name == "simfarm_simbank_rotations_total"
    assert rotations.labels == {"board": bank.board_path} and rotations.value >= 4
    kinds = {s.labels["kind"]: s.value for s in found["simfarm_simbank_failures"]}
    assert set(kinds) >= {"not_applied", "wrong_landing", "sim_not_ready", "not_registered"}
    assert kinds["not_applied"] > 0
    assert all(
        s.name == "simfarm_simbank_failures_total" for s in found["simfarm_simbank_failures"]
    )
    (share,) = found["simfarm_simbank_live_share_24h"]
    assert 0 < share.value <= 1
    (quarantined,) = found["simfarm_simbank_quarantined_channels"]
    assert quarantined.value in (0, 1, 2, 3, 4)


async def test_no_banks_configured(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with running_daemon(tmp_path, 1) as farm:
        reply = await farm.admin("GET", "/simbank")
        scrape = await farm.admin("GET", "/metrics")
        code, out, _ = await run_cli(capsys, "simbank", "--admin", farm.admin_url)
        json_code, json_out, _ = await run_cli(
            capsys, "simbank", "--admin", farm.admin_url, "--json"
        )
    assert reply.status_code == 200 and reply.json() == {"boards": []}
    assert not SIMBANK_FAMILIES & set(families(scrape.text))
    assert code == 0 and out == "no SIM banks configured (see [[simbanks]])\n"
    assert json_code == 0 and json.loads(json_out) == {"boards": []}


async def test_simbank_says_when_the_daemon_is_not_running(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await run_cli(capsys, "simbank", "--admin", url)
    assert code == 1 and out == ""
    assert err.startswith(f"simfarm is not running: nothing answers on {url}")


async def test_demo_with_a_simbank_comes_up_and_stops_on_sigint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "demo",
        "--simbank",
        "--port",
        str(free_port()),
        "--admin-port",
        "0",
        "--control",
        str(tmp_path / "sim.sock"),
        "--data",
        str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        assert demo.stdout is not None
        live = await read_until(demo.stdout, r"(\d+) of (\d+) modems live", DEMO_START_SECONDS)
        assert live.group(1) == live.group(2) == "12"  # 8 plain modems and 4 bank channels
        admin = await read_until(demo.stdout, r" simbank --admin (\S+)", DEMO_START_SECONDS)
        code, out, _ = await run_cli(capsys, "simbank", "--admin", admin.group(1), "--json")
        assert code == 0
        (board,) = json.loads(out)["boards"]
        assert board["slots"] == 8 and len(board["channels"]) == 4
        numbers = [c["number"] for c in board["channels"]]
        assert all(n and n.startswith("49152") for n in numbers) and len(set(numbers)) == 4
        demo.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(demo.wait(), DEMO_STOP_SECONDS) == 0
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
