"""The systemd notify protocol against a real Unix datagram socket standing in for systemd."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.ops import sd_notify

RECEIVE_TIMEOUT_SECONDS = 5.0
# AF_UNIX paths are limited to 108 bytes; a long tmp_path falls back to a short private folder.
MAX_SOCKET_PATH = 100


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sd_notify, "_logged_failures", set())


def _bind(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(RECEIVE_TIMEOUT_SECONDS)
    return sock


@pytest.fixture
def systemd_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A datagram socket bound in a temporary folder, announced in $NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    with tempfile.TemporaryDirectory(prefix="sdn") as short_dir:
        if len(str(path)) > MAX_SOCKET_PATH:
            path = Path(short_dir) / "n.sock"
        sock = _bind(str(path))
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        try:
            yield sock
        finally:
            sock.close()


def _receive(sock: socket.socket) -> str:
    return sock.recv(4096).decode("utf-8")


def test_ready_and_status_arrive_as_datagrams(systemd_socket: socket.socket) -> None:
    assert sd_notify.notify("READY=1", "STATUS=serving 3 modems")
    assert _receive(systemd_socket) == "READY=1\nSTATUS=serving 3 modems"
    assert sd_notify.notify("STOPPING=1")
    assert _receive(systemd_socket) == "STOPPING=1"


def test_a_newline_inside_a_value_cannot_start_a_new_field(systemd_socket: socket.socket) -> None:
    assert sd_notify.notify("STATUS=line one\nREADY=1")
    assert _receive(systemd_socket) == "STATUS=line one READY=1"


def test_abstract_namespace_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"simfarm-test-{uuid.uuid4().hex}"
    sock = _bind("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sd_notify.notify("READY=1")
        assert _receive(sock) == "READY=1"
    finally:
        sock.close()


def test_no_op_without_the_variable() -> None:
    assert "NOTIFY_SOCKET" not in os.environ
    assert sd_notify.notify("READY=1") is False
    assert sd_notify.start_watchdog() is None


def test_no_fields_sends_nothing(systemd_socket: socket.socket) -> None:
    assert sd_notify.notify() is False
    systemd_socket.setblocking(False)
    with pytest.raises(BlockingIOError):
        systemd_socket.recv(4096)


def test_unsupported_address_form_is_ignored(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    with caplog.at_level(logging.WARNING, logger="gateway.ops.sd_notify"):
        assert sd_notify.notify("READY=1") is False
        assert sd_notify.notify("READY=1") is False
    assert len(caplog.records) == 1


def test_missing_socket_never_raises_and_logs_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone.sock"))
    with caplog.at_level(logging.WARNING, logger="gateway.ops.sd_notify"):
        for _ in range(3):
            assert sd_notify.notify("WATCHDOG=1") is False
    failures = [r for r in caplog.records if "sd_notify_failed" in r.getMessage()]
    assert len(failures) == 1


def test_full_receive_queue_drops_instead_of_blocking(systemd_socket: socket.socket) -> None:
    # Nobody reads: the kernel queue fills (net.unix.max_dgram_qlen) and sending must fail fast.
    max_attempts = 100_000
    sent = 0
    for _ in range(max_attempts):
        if not sd_notify.notify("WATCHDOG=1"):
            break
        sent += 1
    assert 0 < sent < max_attempts
    assert _receive(systemd_socket) == "WATCHDOG=1"


@pytest.mark.parametrize(
    ("usec", "expected"),
    [("30000000", 30.0), ("500000", 0.5), ("", None), ("0", None), ("-5", None), ("soon", None)],
)
def test_watchdog_interval_from_usec(
    monkeypatch: pytest.MonkeyPatch, usec: str, expected: float | None
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", usec)
    assert sd_notify.watchdog_interval() == expected


def test_watchdog_pid_must_be_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "30000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert sd_notify.watchdog_interval() == 30.0
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))
    assert sd_notify.watchdog_interval() is None
    monkeypatch.setenv("WATCHDOG_PID", "not-a-pid")
    assert sd_notify.watchdog_interval() is None


async def test_pinger_rejects_a_non_positive_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        await sd_notify.watchdog_pinger(0)


async def _receive_async(sock: socket.socket) -> str:
    loop = asyncio.get_running_loop()
    data = await asyncio.wait_for(loop.sock_recv(sock, 4096), RECEIVE_TIMEOUT_SECONDS)
    return data.decode("utf-8")


async def test_pinger_pings_from_the_loop_and_stops_when_cancelled(
    systemd_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    systemd_socket.setblocking(False)
    monkeypatch.setenv("WATCHDOG_USEC", "20000")  # 20 ms: a ping every 10 ms
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    task = sd_notify.start_watchdog()
    assert task is not None
    try:
        pings = [await _receive_async(systemd_socket) for _ in range(3)]
    finally:
        task.cancel()
    assert pings == ["WATCHDOG=1"] * 3
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    # Drain what was sent before the cancellation; nothing may arrive after it.
    for _ in range(1_000):
        try:
            assert systemd_socket.recv(4096) == b"WATCHDOG=1"
        except BlockingIOError:
            break
    for _ in range(10):
        await asyncio.sleep(0)
    with pytest.raises(BlockingIOError):
        systemd_socket.recv(4096)


async def test_a_blocked_loop_sends_no_ping(
    systemd_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pinger is a task: while the loop does not run, it cannot ping (systemd then restarts us).
    systemd_socket.setblocking(False)
    task = asyncio.create_task(sd_notify.watchdog_pinger(0.02))
    try:
        assert await _receive_async(systemd_socket) == "WATCHDOG=1"
        # From here on nothing awaits, so the loop cannot run the pinger: drain what it sent so
        # far, then hold the loop for several ping periods.
        for _ in range(1_000):
            try:
                systemd_socket.recv(4096)
            except BlockingIOError:
                break
        clock = asyncio.get_running_loop().time
        held_until = clock() + 0.1
        while clock() < held_until:
            pass
        with pytest.raises(BlockingIOError):
            systemd_socket.recv(4096)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_pings_stop_while_a_vital_task_is_lost(
    systemd_socket: socket.socket, caplog: pytest.LogCaptureFixture
) -> None:
    """A vital task the supervisor cannot bring back: no more pings, so systemd restarts us."""
    systemd_socket.setblocking(False)
    lost: list[str] = []
    period_seconds = 0.02
    task = asyncio.create_task(sd_notify.watchdog_pinger(period_seconds * 2, lambda: lost))
    try:
        assert await _receive_async(systemd_socket) == "WATCHDOG=1"
        with caplog.at_level(logging.ERROR, logger="gateway.ops.sd_notify"):
            lost.append("push-worker")
            # Once the pinger has seen the loss (it logs it), nothing more is sent.
            for _ in range(int(RECEIVE_TIMEOUT_SECONDS / period_seconds)):
                if any("event=watchdog_withheld" in r.getMessage() for r in caplog.records):
                    break
                await asyncio.sleep(period_seconds)
        for _ in range(1_000):  # drain pings sent before it saw the loss
            try:
                systemd_socket.recv(4096)
            except BlockingIOError:
                break
        for _ in range(5):  # several ping periods pass with the loop running
            await asyncio.sleep(period_seconds)
        with pytest.raises(BlockingIOError):
            systemd_socket.recv(4096)
        withheld = [r for r in caplog.records if "event=watchdog_withheld" in r.getMessage()]
        assert len(withheld) == 1 and "tasks=push-worker" in withheld[0].getMessage()
        lost.clear()  # healed after all: pings resume
        assert await _receive_async(systemd_socket) == "WATCHDOG=1"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
