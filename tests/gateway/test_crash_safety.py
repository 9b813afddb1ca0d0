"""SIGKILL in the middle of load: nothing answered SUCCESS is lost, nothing is issued twice.

The daemon runs as a real process (tests/gateway/crash_daemon.py: the real Daemon plus fake
SIMs and an SMS hook on stdin). Several clients fire GET_NUMBER, FINISH_ACTIVATION and
GET_SERVICES at it; the test kills it with SIGKILL while requests are in flight, checks the
database directly, starts it again on the same file and carries on, three times. At the end the
real command line (`python -m gateway run`) is started on the same database.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.helpers import KEY, sim
from tests.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Fake SIMs the helper announces.
SIMS = 80
#: Concurrent marketplace clients.
CLIENTS = 6
#: GET_NUMBER answered SUCCESS in a round before the kill comes.
ISSUES_BEFORE_KILL = 40
#: Bound on starting the process, on one round of load, on everything else.
START_SECONDS = 30.0
ROUND_SECONDS = 60.0
REQUEST_SECONDS = 10.0
ROUNDS = 3

pytestmark = pytest.mark.timeout(300)


def write_config(folder: Path, db: Path, port: int) -> Path:
    path = folder / "simfarm.toml"
    path.write_text(
        f"""
[server]
host = "127.0.0.1"
port = {port}

[admin]
port = 0

[marketplace]
key = "{KEY}"
# Nothing listens on the discard port: every push fails and stays queued.
push_url = "http://127.0.0.1:9/PUSH_SMS"
push_retry_seconds = 1

[storage]
path = "{db.as_posix()}"

[offer]
services = ["vk", "wa", "tg"]
rent = true
max_issues_per_service = 1000
min_sum = {{ vk = 5.0 }}
""",
        encoding="utf-8",
    )
    return path


def child_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


class Process:
    """One daemon process; `kill()` is SIGKILL, and teardown always kills what is left."""

    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    async def sms(self, slot: int, fingerprint: str) -> tuple[int, int | None]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"sms {slot} {fingerprint}\n".encode())
        await self.proc.stdin.drain()
        async with asyncio.timeout(REQUEST_SECONDS):
            line = (await self.proc.stdout.readline()).decode().split()
        assert line[:2] == ["stored", fingerprint], line
        return int(line[2]), None if line[3] == "-" else int(line[3])

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(START_SECONDS):
            await self.proc.wait()


@pytest.fixture
async def processes() -> AsyncIterator[list[Process]]:
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in started:
            with contextlib.suppress(ProcessLookupError):
                await process.kill()


async def wait_for_health(url: str, proc: asyncio.subprocess.Process) -> None:
    """Poll the external process's /health until it answers (bounded by a deadline).

    503 counts too: it is how /health says "serving, but no SIM is live", and this daemon has
    no modems.
    """
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_SECONDS) as client:
        async with asyncio.timeout(START_SECONDS):
            while True:
                assert proc.returncode is None, f"the daemon exited with {proc.returncode}"
                with contextlib.suppress(httpx.TransportError):
                    reply = await client.get("/health")
                    if reply.status_code in (200, 503) and "status" in reply.json():
                        return
                await asyncio.sleep(0.1)


async def start_helper(config: Path, log: Path, processes: list[Process]) -> Process:
    with log.open("ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.gateway.crash_daemon",
            str(config),
            str(SIMS),
            cwd=REPO_ROOT,
            env=child_environment(),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    process = Process(proc, 0)
    processes.append(process)
    assert proc.stdout is not None
    async with asyncio.timeout(START_SECONDS):
        line = (await proc.stdout.readline()).decode().split()
    assert line[:1] == ["ready"], f"the helper did not start: {line}; see {log.name}"
    process.port = int(line[1])
    process.url = f"http://127.0.0.1:{process.port}"
    await wait_for_health(process.url, proc)
    return process


# --- what the clients saw -------------------------------------------------------------------


@dataclass
class Ledger:
    """Every answer the marketplace received, across all rounds."""

    issued: dict[int, str] = field(default_factory=dict)  # GET_NUMBER answered SUCCESS
    finish_sent: set[int] = field(default_factory=set)
    finished: dict[int, int] = field(default_factory=dict)  # FINISH answered SUCCESS: status
    left_open: list[int] = field(default_factory=list)  # issued and deliberately not finished
    reserved: list[int] = field(default_factory=list)  # left open, carrying test SMS
    unsure: list[tuple[int, int]] = field(default_factory=list)  # FINISH sent, answer lost
    sms: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # fp: (id, activation)
    issued_this_round: int = 0
    server_errors: list[str] = field(default_factory=list)


async def client_loop(
    url: str, seed: int, ledger: Ledger, enough: asyncio.Event, killing: asyncio.Event
) -> None:
    """One marketplace client: runs until the daemon dies, recording every answer."""
    rng = random.Random(seed)
    # Uncompressed replies: compressed GET_SERVICES has its own test (test_pool_concurrency).
    headers = {"Accept-Encoding": "identity"}
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_SECONDS, headers=headers) as client:

        async def call(payload: dict[str, Any]) -> dict[str, Any]:
            reply = await client.post("/", json={"key": KEY, **payload})
            if reply.status_code != 200:
                ledger.server_errors.append(f"{reply.status_code} {reply.text}")
            assert reply.status_code == 200, reply.text
            return reply.json()

        async def finish(activation_id: int, status: int) -> None:
            ledger.finish_sent.add(activation_id)
            answer = await call(
                {"action": "FINISH_ACTIVATION", "activationId": activation_id, "status": status}
            )
            assert answer == {"status": "SUCCESS"}, answer
            ledger.finished.setdefault(activation_id, status)

        try:
            while True:
                roll = rng.random()
                if roll < 0.15:
                    report = await call({"action": "GET_SERVICES"})
                    assert report["status"] == "SUCCESS"
                elif roll < 0.25 and (ledger.unsure or ledger.left_open):
                    # The marketplace retries a FINISH whose answer it lost (same status), or
                    # closes an activation it left open earlier.
                    if ledger.unsure:
                        activation_id, status = ledger.unsure.pop()
                    else:
                        activation_id = ledger.left_open.pop(rng.randrange(len(ledger.left_open)))
                        status = rng.choice([2, 3, 4, 5])
                    try:
                        await finish(activation_id, status)
                    except httpx.TransportError:
                        ledger.unsure.append((activation_id, status))
                        raise
                else:
                    service = rng.choice(["vk", "wa", "tg", "rent"])
                    answer = await call(
                        {
                            "action": "GET_NUMBER",
                            "country": "germany",
                            "operator": "any",
                            "service": service,
                            "sum": 10,
                        }
                    )
                    if answer["status"] == "NO_NUMBERS":
                        continue
                    assert answer["status"] == "SUCCESS", answer
                    activation_id, number = answer["activationId"], str(answer["number"])
                    assert activation_id not in ledger.issued, "activationId issued twice"
                    ledger.issued[activation_id] = number
                    ledger.issued_this_round += 1
                    if ledger.issued_this_round >= ISSUES_BEFORE_KILL:
                        enough.set()
                    if rng.random() < 0.2:
                        ledger.left_open.append(activation_id)
                        continue
                    status = rng.choice([2, 4, 5, 4, 3])
                    try:
                        await finish(activation_id, status)
                    except httpx.TransportError:
                        ledger.unsure.append((activation_id, status))
                        raise
        except httpx.TransportError as exc:
            # The only way out: the connection broke because we are killing the daemon.
            if not killing.is_set():
                ledger.server_errors.append(f"connection broke while alive: {exc!r}")


# --- what the database says -----------------------------------------------------------------


def read_db(db: Path) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    try:
        return {
            "activations": {
                row[0]: (row[1], row[2])
                for row in conn.execute("SELECT id, number, finished_at FROM activations")
            },
            "doubles": conn.execute(
                "SELECT number, count(*) FROM activations WHERE finished_at IS NULL"
                " GROUP BY number HAVING count(*) > 1"
            ).fetchall(),
            "finish_status": dict(
                conn.execute("SELECT id, finish_status FROM activations WHERE finished_at > 0")
            ),
            "sms": dict(conn.execute("SELECT fingerprint, id FROM sms")),
            "pushes": dict(conn.execute("SELECT sms_id, state FROM push_outbox")),
        }
    finally:
        conn.close()


def check_after_kill(db: Path, ledger: Ledger) -> int:
    """Every promise the clients were given holds on disk; returns the highest id on disk."""
    state = read_db(db)
    activations = state["activations"]
    assert state["doubles"] == [], f"numbers in two open activations: {state['doubles']}"
    for activation_id, number in ledger.issued.items():
        assert activation_id in activations, f"activation {activation_id} answered but lost"
        on_disk_number, finished_at = activations[activation_id]
        assert on_disk_number == number
        if activation_id in ledger.finished:
            assert finished_at is not None, f"FINISH of {activation_id} answered but lost"
            assert state["finish_status"][activation_id] == ledger.finished[activation_id]
        elif activation_id not in ledger.finish_sent:
            assert finished_at is None, f"activation {activation_id} closed by the gateway"
    for fingerprint, (sms_id, activation_id) in ledger.sms.items():
        assert state["sms"].get(fingerprint) == sms_id, f"SMS {fingerprint} lost or renumbered"
        if activation_id is not None:
            assert state["pushes"].get(sms_id) == "pending", f"push of SMS {sms_id} not queued"
        else:
            assert sms_id not in state["pushes"]
    return max(activations, default=0)


async def run_round(process: Process, ledger: Ledger, round_no: int) -> None:
    """Load from several clients, SMS through the hook, SIGKILL while requests are in flight."""
    ledger.issued_this_round = 0
    enough, killing = asyncio.Event(), asyncio.Event()
    clients = [
        asyncio.create_task(client_loop(process.url, 100 * round_no + c, ledger, enough, killing))
        for c in range(CLIENTS)
    ]
    try:
        async with asyncio.timeout(ROUND_SECONDS):
            waiting = asyncio.create_task(enough.wait())
            done, _ = await asyncio.wait([waiting, *clients], return_when=asyncio.FIRST_COMPLETED)
            if waiting not in done:
                waiting.cancel()
                for task in done:
                    task.result()  # a client failed: show why
                assert ledger.server_errors == []
                raise AssertionError("every client stopped before the kill")
            # SMS while the load goes on: on leased numbers (queued) and on a free one (not).
            # (Taken out of the clients' reach first, so nobody finishes them meanwhile.)
            carrying = [ledger.left_open.pop() for _ in range(min(3, len(ledger.left_open)))]
            ledger.reserved.extend(carrying)
            for n, activation_id in enumerate(carrying):
                slot = int(ledger.issued[activation_id][-7:])
                fingerprint = f"round{round_no}-leased{n}"
                ledger.sms[fingerprint] = await process.sms(slot, fingerprint)
                assert ledger.sms[fingerprint][1] == activation_id
            leased = {ledger.issued[i] for i in [*ledger.left_open, *ledger.reserved]}
            free = next(n for n in range(SIMS) if sim(n).number not in leased)
            fingerprint = f"round{round_no}-free"
            stored = await process.sms(free, fingerprint)
            if stored[1] is None:  # (a client may have leased it meanwhile)
                ledger.sms[fingerprint] = stored
            # A re-read SMS keeps its id, also after a crash and restart.
            for fingerprint, known in list(ledger.sms.items())[:2]:
                again = await process.sms(0, fingerprint)
                assert again == known
            killing.set()
            await process.kill()
            await asyncio.gather(*clients)
    finally:
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    assert ledger.server_errors == []


async def test_sigkill_under_load_loses_nothing(tmp_path: Path, processes: list[Process]) -> None:
    db = tmp_path / "var" / "simfarm.db"
    config = write_config(tmp_path, db, 0)
    log = tmp_path / "daemon.log"
    ledger = Ledger()
    highest = 0
    for round_no in range(ROUNDS):
        process = await start_helper(config, log, processes)
        await run_round(process, ledger, round_no)
        new_ids = [i for i in ledger.issued if i > highest]
        assert new_ids, "no GET_NUMBER answered this round"
        previous = highest
        highest = check_after_kill(db, ledger)
        # Ids issued after a restart continue above everything on disk before it.
        assert min(new_ids) > previous
    assert len(ledger.issued) >= ROUNDS * ISSUES_BEFORE_KILL
    assert ledger.sms, "no SMS went through the hook"

    # The real command line on the same database: it loads what the killed processes left.
    port = free_port()
    config = write_config(tmp_path, db, port)
    with log.open("ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway",
            "run",
            "--config",
            str(config),
            cwd=tmp_path,
            env=child_environment(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
        )
    process = Process(proc, port)
    processes.append(process)
    await wait_for_health(process.url, proc)
    still_open = [
        i for i in ledger.issued if i not in ledger.finished and i not in ledger.finish_sent
    ]
    assert still_open
    async with httpx.AsyncClient(base_url=process.url, timeout=REQUEST_SECONDS) as client:

        async def finish(activation_id: int, status: int) -> dict[str, Any]:
            payload = {"action": "FINISH_ACTIVATION", "key": KEY}
            reply = await client.post(
                "/", json={**payload, "activationId": activation_id, "status": status}
            )
            assert reply.status_code == 200
            return reply.json()

        for activation_id in still_open:
            assert await finish(activation_id, 4) == {"status": "SUCCESS"}
        for activation_id in list(ledger.finished)[:5]:
            assert await finish(activation_id, 3) == {"status": "SUCCESS"}  # idempotent
        assert await finish(highest + 1000, 4) == {
            "status": "ERROR",
            "error": "unknown activation",
        }
    await process.kill()
    state = read_db(db)
    for activation_id in still_open:
        assert state["activations"][activation_id][1] is not None
    for activation_id, status in ledger.finished.items():
        assert state["finish_status"][activation_id] == status
