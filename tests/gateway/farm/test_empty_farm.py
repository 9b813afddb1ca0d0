"""A farm whose `[[modems]] port` matches nothing says so: in the log, in /health, in the CLI."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import httpx
import pytest

from gateway.cli import main
from gateway.daemon import Daemon
from gateway.demo.fake_marketplace import FakeMarketplace
from tests.gateway.farm_harness import EVENTUALLY_SECONDS, farm_config


def matched_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "event=ports_matched" in r.getMessage()]


async def test_an_empty_farm_names_its_patterns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    dev = tmp_path / "dev"
    dev.mkdir()
    pattern = str(dev / "ttyModem*")
    market = FakeMarketplace()
    await market.start()
    config = farm_config([pattern], market.url, tmp_path / "simfarm.db")
    daemon = Daemon(config)
    await daemon.start()
    try:
        deadline = time.monotonic() + EVENTUALLY_SECONDS
        while not matched_lines(caplog):  # the farm's first scan runs as its task starts
            assert time.monotonic() < deadline, "the first scan was not logged"
            await asyncio.sleep(0.02)
        [empty] = matched_lines(caplog)
        assert empty.levelno == logging.WARNING
        assert f"pattern={pattern} count=0" in empty.getMessage()
        assert "no modem port found" in empty.getMessage()
        assert daemon.status_line().endswith(f"no modem port matches {pattern}")
        admin = f"http://127.0.0.1:{daemon.admin_port}"
        async with httpx.AsyncClient(base_url=admin) as client:
            health = (await client.get("/health")).json()
        assert health["farm"]["ports"] == {pattern: []}
        assert any(pattern in problem for problem in health["problems"])
        capsys.readouterr()
        code = await asyncio.to_thread(main, ["modems", "--admin", admin])
        out = capsys.readouterr().out
        assert code == 0 and pattern in out and "/dev/simfarm" not in out
        # A port appears: the change is logged once, by the next scan.
        (dev / "ttyModem0").touch()
        deadline = time.monotonic() + EVENTUALLY_SECONDS
        while len(matched_lines(caplog)) < 2:
            assert time.monotonic() < deadline, "the new port was not logged"
            await asyncio.sleep(0.05)
        found = matched_lines(caplog)[1]
        assert f"pattern={pattern} count=1 ports={dev / 'ttyModem0'}" in found.getMessage()
        os.unlink(dev / "ttyModem0")
    finally:
        await daemon.stop()
        await market.stop()
