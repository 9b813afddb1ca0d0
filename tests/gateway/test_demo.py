"""`simfarm demo` as a user runs it: it comes up, serves, pushes an SMS, stops on Ctrl-C; what it
prints works from any folder; a second demo whose ports or control socket are taken leaves the
first alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.processes import free_port, read_lines_until, read_until

pytest.importorskip("drivers.modem.driver", reason="the modem driver is not built yet")

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
        "--admin-port",
        "0",
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


def demo_environment(tmp_path: Path) -> dict[str, str]:
    """The demo's environment with its own temporary folder, to see what it leaves behind."""
    temporary = tmp_path / "tmp"
    temporary.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(temporary)}


def entries(folder: Path) -> list[str]:
    return sorted(entry.name for entry in folder.iterdir())


async def test_demo_prints_commands_that_work_anywhere_and_removes_its_temporary_folder(
    tmp_path: Path,
) -> None:
    environment = demo_environment(tmp_path)
    control = tmp_path / "sim.sock"
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "gateway", "demo", "--modems", "2", "--port", str(free_port())),
        *("--admin-port", "0", "--control", "sim.sock"),  # relative: printed in full
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=tmp_path,
        env=environment,
    )
    try:
        assert demo.stdout is not None
        lines = await read_lines_until(demo.stdout, "Ctrl-C stops", START_TIMEOUT_SECONDS)
        text = "\n".join(lines)
        database = re.search(r"database: (\S+)/simfarm\.db \(a temporary folder", text)
        assert database is not None, text
        folder = Path(database[1])
        assert folder.parent == Path(environment["TMPDIR"])
        assert entries(folder.parent) == [folder.name]
        admin = re.search(r"The admin endpoint .* is on (http://127\.0\.0\.1:(\d+))$", text, re.M)
        assert admin is not None and int(admin[2]) != 0, text
        simfarm = f"{shlex.quote(sys.executable)} -m gateway"
        send = next(line for line in lines if " sim send " in line)
        assert send.startswith(f"  {simfarm} sim send --to ")
        assert send.endswith(f" --control {control}")
        modems = next(line for line in lines if " modems --admin " in line)
        assert modems == f"  {simfarm} modems --admin {admin[1]}"
        # Pasted into a terminal standing somewhere else, the printed command works.
        done = await asyncio.create_subprocess_exec(
            *shlex.split(modems), stdout=asyncio.subprocess.PIPE, cwd="/"
        )
        out, _ = await asyncio.wait_for(done.communicate(), STEP_TIMEOUT_SECONDS)
        assert done.returncode == 0 and out.decode().startswith("PORT"), out
        demo.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(demo.wait(), STOP_TIMEOUT_SECONDS) == 0
    finally:
        if demo.returncode is None:
            demo.kill()
            await demo.wait()
    assert entries(folder.parent) == []  # the database folder is gone


@contextlib.contextmanager
def running_control_socket(path: Path) -> Iterator[socket.socket]:
    """A listening Unix socket at `path`, as a running demo's control socket is."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()
        yield server


def run_demo_briefly(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A demo expected to refuse at once."""
    return subprocess.run(
        [sys.executable, "-m", "gateway", "demo", *args],
        cwd=tmp_path,
        env=demo_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=STEP_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize("flag", ["--port", "--admin-port", "--market-port"])
def test_a_taken_port_stops_a_second_demo_before_it_touches_the_first(
    tmp_path: Path, flag: str
) -> None:
    control = tmp_path / "simfarm-sim.sock"
    with (
        socket.create_server(("127.0.0.1", 0)) as busy,
        running_control_socket(control) as first_demo,
    ):
        taken = busy.getsockname()[1]
        before = control.stat()
        ports = {"--port": "0", "--admin-port": "0", "--market-port": "0", flag: str(taken)}
        done = run_demo_briefly(
            tmp_path, *(word for item in ports.items() for word in item), "--control", str(control)
        )
        after = control.stat()
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(control))  # the first demo's socket still answers
            first_demo.accept()[0].close()
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"simfarm demo: port {taken} is in use; use {flag} (0 picks a free one)\n"
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert entries(tmp_path / "tmp") == []


def test_a_running_demos_control_socket_is_not_replaced(tmp_path: Path) -> None:
    control = tmp_path / "simfarm-sim.sock"
    with running_control_socket(control):
        before = control.stat()
        done = run_demo_briefly(
            tmp_path, "--port", "0", "--admin-port", "0", "--control", str(control)
        )
        after = control.stat()
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == (
        f"simfarm demo: another simfarm demo is running (it serves {control}); stop it, "
        "or use --control\n"
    )
    assert after.st_ino == before.st_ino


def test_a_file_where_the_control_socket_goes_is_not_replaced(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n", encoding="utf-8")
    done = run_demo_briefly(tmp_path, "--port", "0", "--admin-port", "0", "--control", str(notes))
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"simfarm demo: {notes} exists and is not a socket; use --control PATH\n"
    assert notes.read_text(encoding="utf-8") == "mine\n"
