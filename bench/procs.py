"""Child processes of the benchmark: started with a READY handshake, always killed at the end.

A child prints `READY {json}` on stdout once it serves; its stderr goes to a log file in the
work folder (read it when a child fails). `Child.stop()` sends SIGTERM, waits, then SIGKILL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

#: The repository root (children run with it as their working folder and import path).
REPO_ROOT = Path(__file__).resolve().parent.parent
#: How long a child may take to say READY.
READY_TIMEOUT_SECONDS = 300.0
#: How long a child gets between SIGTERM and SIGKILL.
STOP_GRACE_SECONDS = 10.0


class ChildFailed(RuntimeError):
    """A child exited or stayed silent before it was ready."""


def free_port() -> int:
    """A loopback port free right now (for children that cannot report the one they got)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("SIMFARM_CONFIG", None)
    return env


class Child:
    """One child process; `ready` holds what its READY line said."""

    def __init__(self, name: str, argv: list[str], log_path: Path, *, stdin: bool = False):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.want_stdin = stdin
        self.proc: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}
        self.started_at = 0.0
        self._log = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self, *, wait_ready: bool = True) -> None:
        self._log = self.log_path.open("wb")
        self.started_at = time.monotonic()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE if self.want_stdin else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=self._log,
            cwd=REPO_ROOT,
            env=child_env(),
            start_new_session=True,
        )
        if wait_ready:
            await self.wait_ready()

    async def wait_ready(self, timeout: float = READY_TIMEOUT_SECONDS) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    line = await self.proc.stdout.readline()
                    if not line:
                        raise ChildFailed(f"{self.name} exited before READY; see {self.log_path}")
                    text = line.decode(errors="replace").strip()
                    if text.startswith("READY"):
                        rest = text[len("READY") :].strip()
                        self.ready = json.loads(rest) if rest else {}
                        return self.ready
        except TimeoutError:
            raise ChildFailed(
                f"{self.name} not READY in {timeout:.0f} s; see {self.log_path}"
            ) from None

    async def readline(self) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        if not line:
            raise ChildFailed(f"{self.name} closed its output; see {self.log_path}")
        return line.decode(errors="replace").rstrip("\n")

    async def send_line(self, text: str) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(text.encode() + b"\n")
        await self.proc.stdin.drain()

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after the grace period; returns the exit code."""
        proc = self.proc
        if proc is None:
            return None
        try:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), STOP_GRACE_SECONDS)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
            return proc.returncode
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
