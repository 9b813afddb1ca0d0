"""Measures (c), (d) and (e) on a farm of simulated modems, the daemon in a process of its own.

Three processes: the simulated modems (bench.sim_farm) open their ptys and print the paths; the
daemon is `simfarm run --config F` (as `python -m gateway run --config F`) with those paths as
`[[modems]]` ports and the real modem driver; the benchmark process plays the marketplace (the
project's FakeMarketplace receives PUSH_SMS) and watches the daemon's /proc entries.

(e) start-up: from spawning the daemon until GET_SERVICES offers every modem's number.
(d) idle: after a short settling pause, CPU time (utime + stime of all its threads, from
    /proc/PID/stat) over the window, as % of one core; peak RSS is VmHWM from /proc/PID/status.
    Nothing talks to the daemon during the window; its drivers keep their own keep-alive polls.
(c) SMS end to end: every number is leased (GET_NUMBER), then SMS are delivered to them in
    rounds, paced over the farm; latency is from the simulator writing `+CMTI` to the pty until
    the marketplace stand-in has the PUSH_SMS (time.monotonic() in both processes).
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import Connection, build_request, percentile
from bench.procs import Child, free_port, python_module
from bench.seeding import remove_database
from gateway.config import Config
from gateway.demo.fake_marketplace import FakeMarketplace, ReceivedPush

HOST = "127.0.0.1"
KEY = "bench-farm-partner-key"
SERVICES = ("vk", "wa", "tg")
#: How often start-up polls GET_SERVICES, and how long it waits at most.
STARTUP_POLL_SECONDS = 0.1
STARTUP_TIMEOUT_SECONDS = 120.0
#: How long one round of SMS may take to come back as pushes before it is given up.
ROUND_TIMEOUT_SECONDS = 60.0
#: How often RSS is sampled during the idle window (VmHWM is the figure; this is a cross-check).
RSS_SAMPLE_SECONDS = 1.0
_TAG = re.compile(r"tag=(\S+)")


@dataclass
class FarmResult:
    modems: int
    startup_seconds: float | None = None
    live: int = 0
    idle_seconds: float = 0.0
    idle_cpu_percent: float | None = None
    idle_rss_mb: float | None = None
    peak_rss_mb: float | None = None
    simulator_cpu_percent: float | None = None
    sms_sent: int = 0
    sms_pushed: int = 0
    sms_p50_ms: float | None = None
    sms_p99_ms: float | None = None
    sms_max_ms: float | None = None
    #: (p50, p99) ms of the two halves: +CMTI -> SMS on disk (the daemon's log line), and
    #: SMS on disk -> PUSH_SMS received.
    sms_to_disk_ms: tuple[float, float] | None = None
    disk_to_push_ms: tuple[float, float] | None = None
    tags_by_number: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), in seconds."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values


def _toml_string(value: str) -> str:
    return json.dumps(value)


def write_config(path: Path, *, port: int, push_url: str, db: Path, ports: list[str]) -> None:
    lines = [
        "[server]",
        f"host = {_toml_string(HOST)}",
        f"port = {port}",
        "",
        "[marketplace]",
        f"key = {_toml_string(KEY)}",
        f"push_url = {_toml_string(push_url)}",
        "",
        "[storage]",
        f"path = {_toml_string(str(db))}",
        "",
        "[offer]",
        f"services = [{', '.join(_toml_string(s) for s in SERVICES)}]",
        "",
    ]
    if "admin" in Config.model_fields:
        lines += ["[admin]", f"host = {_toml_string(HOST)}", "port = 0", ""]
    for tty in ports:
        lines += ["[[modems]]", f"port = {_toml_string(tty)}", ""]
    path.write_text("\n".join(lines))


async def _offered(conn: Connection, request: bytes) -> tuple[int, str | None]:
    """(numbers offered for the first service, the first country offering it) per GET_SERVICES."""
    status, body = await conn.request(request)
    if status != 200:
        return 0, None
    report = json.loads(body)
    total, country = 0, None
    for entry in report.get("countryList", []):
        n = entry["operatorMap"].get("any", {}).get(SERVICES[0], 0)
        total += n
        if n and country is None:
            country = entry["country"]
    return total, country


async def measure_farm(
    workdir: Path,
    *,
    modems: int,
    idle_seconds: float,
    settle_seconds: float,
    sms_rounds: int,
    sms_spacing_seconds: float,
    parts: frozenset[str] = frozenset("cde"),
    progress=print,
) -> FarmResult:
    result = FarmResult(modems)
    received: dict[str, float] = {}

    def on_push(push: ReceivedPush) -> None:
        match = _TAG.search(str(push.body.get("text", "")))
        if match:
            received.setdefault(match.group(1), time.monotonic())

    market = FakeMarketplace(on_push=on_push)
    sim = Child(
        "simulated modems",
        python_module("bench.sim_farm", "--modems", str(modems)),
        workdir / "sim-farm.log",
        stdin=True,
    )
    daemon: Child | None = None
    announced: dict[str, float] = {}
    announced_wall: dict[str, float] = {}
    reader: asyncio.Task[None] | None = None
    conn: Connection | None = None
    try:
        await market.start()
        await sim.start()
        ports, numbers = sim.ready["ports"], sim.ready["numbers"]

        async def read_announcements() -> None:
            while True:
                words = (await sim.readline()).split()
                if len(words) == 4 and words[0] == "ANNOUNCED":
                    announced[words[1]] = float(words[2])
                    announced_wall[words[1]] = float(words[3])

        reader = asyncio.create_task(read_announcements())
        port = free_port()
        config = workdir / "farm.toml"
        db = workdir / "farm.db"
        remove_database(db)
        write_config(config, port=port, push_url=market.url, db=db, ports=ports)
        daemon = Child(
            "daemon",
            python_module("gateway", "run", "--config", str(config)),
            workdir / "farm-daemon.log",
        )
        await daemon.start(wait_ready=False)
        services = build_request(HOST, port, "/", {"action": "GET_SERVICES", "key": KEY})
        conn = Connection(HOST, port)
        country = None
        deadline = daemon.started_at + STARTUP_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            assert daemon.proc is not None
            if daemon.proc.returncode is not None:
                raise RuntimeError(f"the daemon exited; see {daemon.log_path}")
            try:
                result.live, country = await _offered(conn, services)
            except (OSError, asyncio.IncompleteReadError):
                await conn.close()
            if result.live >= modems:
                result.startup_seconds = time.monotonic() - daemon.started_at
                break
            await asyncio.sleep(STARTUP_POLL_SECONDS)
        progress(
            f"  start-up: {result.live} of {modems} live"
            + (f" after {result.startup_seconds:.2f} s" if result.startup_seconds else "")
        )
        await conn.close()

        if "d" in parts:
            await asyncio.sleep(settle_seconds)
            await _idle(result, daemon.pid, sim.pid, idle_seconds)
            progress(
                f"  idle {idle_seconds:.0f} s: {result.idle_cpu_percent:.2f} % of a core, "
                f"RSS {result.idle_rss_mb:.1f} MB, peak {result.peak_rss_mb:.1f} MB"
            )
        if "c" in parts and country is not None:
            await _sms_rounds(
                result,
                conn,
                sim,
                port,
                country,
                numbers,
                announced,
                received,
                sms_rounds,
                sms_spacing_seconds,
                progress,
            )
            _stages(result, daemon.log_path, announced, announced_wall, received)
        if daemon.proc is not None and daemon.proc.returncode is None:
            result.peak_rss_mb = round(memory_mb(daemon.pid).get("VmHWM", 0.0), 1)
        return result
    finally:
        if conn is not None:
            await conn.close()
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        if daemon is not None:
            await daemon.stop()
        await sim.stop()
        await market.stop()


async def _idle(result: FarmResult, pid: int, sim_pid: int, seconds: float) -> None:
    loop = asyncio.get_running_loop()
    start_wall = loop.time()
    start_cpu, start_sim = cpu_seconds(pid), cpu_seconds(sim_pid)
    rss = 0.0
    end = start_wall + seconds
    while loop.time() < end:
        await asyncio.sleep(min(RSS_SAMPLE_SECONDS, max(0.0, end - loop.time())))
        rss = max(rss, memory_mb(pid).get("VmRSS", 0.0))
    wall = loop.time() - start_wall
    result.idle_seconds = round(wall, 2)
    result.idle_cpu_percent = round(100 * (cpu_seconds(pid) - start_cpu) / wall, 3)
    result.simulator_cpu_percent = round(100 * (cpu_seconds(sim_pid) - start_sim) / wall, 3)
    result.idle_rss_mb = round(rss, 1)
    result.peak_rss_mb = round(memory_mb(pid).get("VmHWM", 0.0), 1)


async def _sms_rounds(
    result: FarmResult,
    conn: Connection,
    sim: Child,
    port: int,
    country: str,
    numbers: list[str],
    announced: dict[str, float],
    received: dict[str, float],
    rounds: int,
    spacing: float,
    progress,
) -> None:
    leased: list[str] = []
    for _ in range(len(numbers)):
        request = build_request(
            HOST,
            port,
            "/",
            {
                "action": "GET_NUMBER",
                "key": KEY,
                "country": country,
                "operator": "any",
                "service": SERVICES[0],
                "sum": 10,
            },
        )
        status, body = await conn.request(request)
        reply = json.loads(body) if status == 200 else {}
        if reply.get("status") != "SUCCESS":
            break
        leased.append(str(reply["number"]))
    await conn.close()
    ours = [n for n in leased if n in set(numbers)]
    if len(ours) < len(leased):
        result.notes.append(f"{len(leased) - len(ours)} leased numbers are not simulated")
    tags: list[str] = []
    for round_no in range(rounds):
        round_tags = []
        for index, number in enumerate(ours):
            tag = f"r{round_no}m{index}"
            round_tags.append(tag)
            result.tags_by_number.setdefault(number, []).append(tag)
            await sim.send_line(f"deliver {number} {tag}")
            await asyncio.sleep(spacing)
        tags += round_tags
        deadline = time.monotonic() + ROUND_TIMEOUT_SECONDS
        # Polls a dict the marketplace's callback fills; bounded by the deadline.
        while time.monotonic() < deadline and not all(t in received for t in round_tags):  # noqa: ASYNC110
            await asyncio.sleep(0.05)
    await asyncio.sleep(0.2)  # the last announcement lines
    latencies = [received[t] - announced[t] for t in tags if t in received and t in announced]
    result.sms_sent = len(tags)
    result.sms_pushed = sum(1 for t in tags if t in received)
    missing_announce = sum(1 for t in tags if t in received and t not in announced)
    if missing_announce:
        result.notes.append(f"{missing_announce} pushed SMS without a seen +CMTI")
    if latencies:
        result.sms_p50_ms = round(1000 * percentile(latencies, 50), 2)
        result.sms_p99_ms = round(1000 * percentile(latencies, 99), 2)
        result.sms_max_ms = round(1000 * max(latencies), 2)
    progress(
        f"  SMS: {result.sms_pushed} of {result.sms_sent} pushed over {len(ours)} modems, "
        f"p50 {result.sms_p50_ms} ms, p99 {result.sms_p99_ms} ms"
    )


_STORED = re.compile(r"^(\S+)Z level=INFO logger=gateway.pool.pool event=sms_stored .*number=(\d+)")


def _log_time(stamp: str) -> float:
    """A log line's UTC time stamp (2026-01-02T03:04:05.678) in seconds since the epoch."""
    whole, _, millis = stamp.partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + int(millis or 0) / 1000


def _stages(
    result: FarmResult,
    log_path: Path,
    announced: dict[str, float],
    announced_wall: dict[str, float],
    received: dict[str, float],
) -> None:
    """Split each SMS's latency at the daemon's `sms_stored` log line (1 ms resolution)."""
    stored: dict[str, list[float]] = {}
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return
    for line in lines:
        match = _STORED.match(line)
        if match:
            stored.setdefault(match.group(2), []).append(_log_time(match.group(1)))
    to_disk: list[float] = []
    to_push: list[float] = []
    for number, tags in result.tags_by_number.items():
        for tag, at in zip(tags, stored.get(number, []), strict=False):
            if tag in announced_wall and tag in received and tag in announced:
                first = at - announced_wall[tag]
                to_disk.append(first)
                to_push.append(received[tag] - announced[tag] - first)
    if to_disk:
        result.sms_to_disk_ms = (
            round(1000 * percentile(to_disk, 50), 1),
            round(1000 * percentile(to_disk, 99), 1),
        )
        result.disk_to_push_ms = (
            round(1000 * percentile(to_push, 50), 1),
            round(1000 * percentile(to_push, 99), 1),
        )
