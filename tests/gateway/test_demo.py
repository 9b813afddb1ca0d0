"""`simfarm demo` as a user runs it: it comes up, serves, pushes an SMS, stops on Ctrl-C."""

from __future__ import annotations

import asyncio
import signal
import sys

import httpx
import pytest

from tests.processes import free_port, read_until

pytest.importorskip("drivers.modem", reason="the modem driver is not built yet")

#: Generous bounds for a subprocess on a loaded machine; reached only when something is wrong.
START_TIMEOUT_SECONDS = 120.0
STEP_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


async def test_demo_serves_and_stops_on_sigint(tmp_path) -> None:
    control = tmp_path / "sim.sock"
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "demo",
        "--port",
        str(free_port()),
        "--control",
        str(control),
        "--data",
        str(tmp_path / "data"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
    )
    try:
        assert demo.stdout is not None
        live = await read_until(demo.stdout, r"(\d+) of (\d+) modems live", START_TIMEOUT_SECONDS)
        assert live.group(1) == live.group(2) == "8"
        url = (await read_until(demo.stdout, r"API is on (http://\S+)", STEP_TIMEOUT_SECONDS))[1]
        async with httpx.AsyncClient(base_url=url, timeout=STEP_TIMEOUT_SECONDS) as client:
            order = {"country": "germany", "operator": "any", "service": "vk", "sum": 10}
            reply = await client.post(
                "/", json={"action": "GET_NUMBER", "key": "demo-partner-key", **order}
            )
        issued = reply.json()
        assert issued["status"] == "SUCCESS"
        send = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "sim",
            "send",
            "--to",
            str(issued["number"]),
            "--from",
            "VK",
            "--text",
            "Your code: 12345",
            "--control",
            str(control),
            cwd=tmp_path,
        )
        assert await asyncio.wait_for(send.wait(), STEP_TIMEOUT_SECONDS) == 0
        pushed = await read_until(demo.stdout, r"PUSH_SMS .*phone=(\d+).*", STEP_TIMEOUT_SECONDS)
        assert pushed.group(1) == str(issued["number"])
        assert "Your code: 12345" in pushed.group(0)
        demo.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(demo.wait(), STOP_TIMEOUT_SECONDS) == 0
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
