"""Measures (a) and (b): GET_SERVICES and GET_NUMBER (+ its FINISH) against the bare endpoint.

For each SIM count: a fresh copy of the seeded database, the daemon's API in one child process
(bench.serve_api, N synthetic live SIMs) and the bare Starlette endpoint in another
(bench.serve_bare), both idle while the other is measured. For each number of clients the bare
endpoint and simfarm are measured back to back with the same client, so the ratio of their
throughputs is read under the same machine load.

GET_NUMBER cycles: each client asks for a number (countries weighted like the farm, services in
turn), and when it gets one closes it with FINISH_ACTIVATION status 4 (cancelled) before the next.
Both requests are timed; throughput counts both (requests per second), and the bare endpoint's
client does the same two requests. A NO_NUMBERS reply is counted apart and not in the latencies.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import pstats
from dataclasses import dataclass, field
from pathlib import Path

from bench.loadgen import (
    Connection,
    LoadResult,
    ReplyError,
    build_request,
    run_load,
    timed_request,
)
from bench.procs import Child, python_module
from bench.seeding import SERVICES, copy_database, demand
from bench.serve_api import KEY

HOST = "127.0.0.1"
ACTIONS = ("GET_SERVICES", "GET_NUMBER")
#: Status of the FINISH that closes each benchmark GET_NUMBER (cancelled: the number comes back).
FINISH_STATUS = 4


@dataclass
class ApiRun:
    """One measured (server, action, clients) cell."""

    server: str  # "simfarm" or "bare"
    action: str
    sims: int
    concurrency: int
    seconds: float
    requests: int
    rate: float  # requests per second, every request kind counted
    p50_ms: float
    p99_ms: float
    finish_p50_ms: float | None = None
    finish_p99_ms: float | None = None
    no_numbers: int = 0
    errors: int = 0
    #: Server CPU over the cell, % of one core: its main (event-loop) thread, its other threads
    #: (for simfarm: the store's writer thread running SQLite and its commits).
    cpu_loop_percent: float | None = None
    cpu_threads_percent: float | None = None
    failures: dict[str, int] = field(default_factory=dict)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _weighted_countries(sims: int) -> list[str]:
    """A round of countries, each as often as its share of the live SIMs (in tenths)."""
    per = demand(sims)
    total = sum(n for _, n in per)
    round_: list[str] = []
    for country, n in per:
        round_ += [country] * max(1, round(10 * n / total))
    return round_


class Steps:
    """The per-client steps of both actions, with their requests built once."""

    def __init__(self, port: int, sims: int) -> None:
        self.port = port
        self.services_request = build_request(
            HOST, port, "/", {"action": "GET_SERVICES", "key": KEY}
        )
        self.countries = _weighted_countries(sims)
        self.number_requests = {
            (country, service): build_request(
                HOST,
                port,
                "/",
                {
                    "action": "GET_NUMBER",
                    "key": KEY,
                    "country": country,
                    "operator": "any",
                    "service": service,
                    "sum": 10,
                },
            )
            for country in set(self.countries)
            for service in SERVICES
        }
        self._turn: dict[int, int] = {}

    async def services(self, conn: Connection, index: int) -> list[tuple[str, float, bool]]:
        elapsed, status, body = await timed_request(conn, self.services_request)
        return [("GET_SERVICES", elapsed, status == 200 and b'"SUCCESS"' in body)]

    async def number(self, conn: Connection, index: int) -> list[tuple[str, float, bool]]:
        turn = self._turn.get(index, index * 7)
        self._turn[index] = turn + 1
        country = self.countries[turn % len(self.countries)]
        service = SERVICES[(turn // len(self.countries) + index) % len(SERVICES)]
        elapsed, status, body = await timed_request(conn, self.number_requests[country, service])
        if status != 200:
            return [("GET_NUMBER", elapsed, False)]
        reply = json.loads(body)
        if reply.get("status") == "NO_NUMBERS":
            return [("NO_NUMBERS", elapsed, True)]
        if reply.get("status") != "SUCCESS":
            return [("GET_NUMBER", elapsed, False)]
        finish = build_request(
            HOST,
            self.port,
            "/",
            {
                "action": "FINISH_ACTIVATION",
                "key": KEY,
                "activationId": reply["activationId"],
                "status": FINISH_STATUS,
            },
        )
        finish_elapsed, finish_status, finish_body = await timed_request(conn, finish)
        finish_ok = finish_status == 200 and b'"SUCCESS"' in finish_body
        return [("GET_NUMBER", elapsed, True), ("FINISH", finish_elapsed, finish_ok)]


def _summarise(server: str, action: str, sims: int, result: LoadResult, concurrency: int) -> ApiRun:
    kind = action
    run = ApiRun(
        server=server,
        action=action,
        sims=sims,
        concurrency=concurrency,
        seconds=round(result.seconds, 3),
        requests=result.count(),
        rate=round(result.rate(), 1),
        p50_ms=_ms(result.percentile(kind, 50)),
        p99_ms=_ms(result.percentile(kind, 99)),
        no_numbers=result.count("NO_NUMBERS"),
        errors=sum(result.errors.values()) + sum(result.notes.values()),
        failures={**result.errors, **{f"bad {k}": v for k, v in result.notes.items()}},
    )
    if action == "GET_NUMBER":
        run.finish_p50_ms = _ms(result.percentile("FINISH", 50))
        run.finish_p99_ms = _ms(result.percentile("FINISH", 99))
    return run


async def measure_cell(
    server: str, port: int, action: str, sims: int, concurrency: int, seconds: float, warmup: float
) -> ApiRun:
    steps = Steps(port, sims)
    step = steps.services if action == "GET_SERVICES" else steps.number
    result = await run_load(
        HOST, port, step, concurrency=concurrency, seconds=seconds, warmup_seconds=warmup
    )
    return _summarise(server, action, sims, result, concurrency)


async def start_api(
    workdir: Path, base_db: Path, sims: int, log_level: str, profile: Path | None = None
) -> Child:
    db = workdir / f"api-{sims}.db"
    copy_database(base_db, db)
    args = ["--db", str(db), "--sims", str(sims), "--log-level", log_level]
    if profile is not None:
        args += ["--profile", str(profile)]
    child = Child(
        f"simfarm API ({sims} SIMs)",
        python_module("bench.serve_api", *args),
        workdir / f"api-{sims}.log",
    )
    await child.start()
    return child


async def measure_api(
    workdir: Path,
    base_db: Path,
    *,
    sim_counts: tuple[int, ...],
    concurrencies: tuple[int, ...],
    seconds: float,
    warmup: float,
    log_level: str = "INFO",
    progress=print,
) -> tuple[list[ApiRun], dict[int, float], dict[int, dict[str, str]]]:
    """Every (SIM count, clients, action) cell for simfarm and bare; SIM bring-up seconds; and
    the headers of one plain GET_SERVICES reply taken after the load, per SIM count."""
    runs: list[ApiRun] = []
    online: dict[int, float] = {}
    headers: dict[int, dict[str, str]] = {}
    for sims in sim_counts:
        bare = Child("bare endpoint", python_module("bench.serve_bare"), workdir / "bare.log")
        api: Child | None = None
        try:
            await bare.start()
            api = await start_api(workdir, base_db, sims, log_level)
            online[sims] = float(api.ready.get("online_seconds", 0.0))
            if api.ready.get("live") != sims:
                progress(f"  warning: {api.ready.get('live')} of {sims} SIMs live")
            for concurrency in concurrencies:
                for action in ACTIONS:
                    for server, child in (("bare", bare), ("simfarm", api)):
                        before = thread_cpu(child.pid)
                        cell = await measure_cell(
                            server,
                            int(child.ready["port"]),
                            action,
                            sims,
                            concurrency,
                            seconds,
                            warmup,
                        )
                        after = thread_cpu(child.pid)
                        window = seconds + warmup
                        cell.cpu_loop_percent = round(100 * (after[0] - before[0]) / window, 1)
                        cell.cpu_threads_percent = round(100 * (after[1] - before[1]) / window, 1)
                        runs.append(cell)
                        progress(
                            f"  {sims:>6} SIMs {action:<12} c={concurrency:<3} {server:<7} "
                            f"{cell.rate:>8.1f} req/s  p50 {cell.p50_ms:7.2f} ms  "
                            f"p99 {cell.p99_ms:7.2f} ms"
                            + (f"  no_numbers={cell.no_numbers}" if cell.no_numbers else "")
                            + (f"  errors={cell.failures}" if cell.errors else "")
                        )
            headers[sims] = await reply_headers(int(api.ready["port"]))
        finally:
            if api is not None:
                await api.stop()
            await bare.stop()
    return runs, online, headers


def thread_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (utime + stime) of a process's main thread and of all its other threads."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            text = (task / "stat").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        fields = text[text.rindex(")") + 2 :].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        if task.name == str(pid):
            main += used
        else:
            other += used
    return main, other


async def reply_headers(port: int) -> dict[str, str]:
    """The headers of one GET_SERVICES reply to a client that does not accept gzip."""
    conn = Connection(HOST, port)
    try:
        raw = build_request(HOST, port, "/", {"action": "GET_SERVICES", "key": KEY})
        await conn.request(raw)
        head = conn.last_head
    except (OSError, ReplyError, asyncio.IncompleteReadError, TimeoutError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        await conn.close()
    found: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name:
            found[name.strip().lower()] = value.strip()
    return found


async def profile_action(
    workdir: Path,
    base_db: Path,
    *,
    sims: int,
    action: str,
    concurrency: int,
    seconds: float,
    log_level: str = "INFO",
    top: int = 18,
) -> str:
    """Run one cell with the API process under cProfile; returns the top functions as text."""
    stats_path = workdir / f"profile-{action}-{sims}.pstats"
    api = await start_api(workdir, base_db, sims, log_level, profile=stats_path)
    try:
        await measure_cell(
            "simfarm", int(api.ready["port"]), action, sims, concurrency, seconds, 0.5
        )
    finally:
        await api.stop()
    if not stats_path.exists():
        return "(no profile was written)"
    out = io.StringIO()
    stats = pstats.Stats(str(stats_path), stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(top)
    out.write("\n")
    stats.sort_stats("cumulative").print_stats(top)
    return _trim_pstats(out.getvalue())


def _trim_pstats(text: str) -> str:
    """pstats output without its banner lines."""
    keep = []
    for line in text.splitlines():
        if ".pstats" in line:
            continue  # the stats file's name and date
        if line.strip().startswith(("Ordered by", "ncalls")) or "function calls" in line:
            keep.append(line.rstrip())
        elif line.strip() and not line.startswith(" " * 20):
            keep.append(line.rstrip())
    return "\n".join(keep)


def profile_summary(stats_path: Path, top: int = 12) -> list[tuple[str, float, float]]:
    """(function, tottime, cumtime) of the top functions by own time."""
    stats = pstats.Stats(str(stats_path))
    rows = []
    for (filename, line, name), (_, _, tt, ct, _) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append((f"{Path(filename).name}:{line}({name})", tt, ct))
    rows.sort(key=lambda r: r[1], reverse=True)
    return rows[:top]
