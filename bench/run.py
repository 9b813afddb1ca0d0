"""`python -m bench.run [--quick|--full] [--only a,b,...]`: every measure, one table, one report.

Measures (the speed targets of the design):
  a  GET_NUMBER (+ FINISH) and GET_SERVICES at 1/16/64 clients, 2,000 live SIMs, 1,000,000
     history rows, side by side with a bare Starlette endpoint
  b  the same at 100, 2,000 and 20,000 SIMs (quick: 100 and 2,000)
  c  SMS end to end over 64 simulated modems (+CMTI -> PUSH_SMS received)
  d  idle farm of 64 simulated modems: CPU % of one core and peak RSS of the daemon
  e  start-up until all 64 simulated modems are live
  f  1,000 queued pushes drained against a fast fake marketplace
Prints the table on stdout and writes docs/BENCHMARKS.md (or --report PATH).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from bench import report as rep
from bench.api_bench import ApiRun, measure_api, profile_action
from bench.farm_bench import FarmResult, measure_farm
from bench.procs import REPO_ROOT
from bench.push_bench import measure_pushes
from bench.seeding import HISTORY_ROWS, seed_database

MEASURES = "abcdef"
#: The SIM count and client count the API targets are judged at.
TARGET_SIMS = 2000
TARGET_CLIENTS = 64
GET_NUMBER_P99_MS = 20.0
GET_NUMBER_RATIO = 0.50
GET_SERVICES_P99_MS = 10.0
GET_SERVICES_RATIO = 0.80
SMS_P99_MS = 100.0
IDLE_CPU_PERCENT = 2.0
IDLE_RSS_MB = 80.0
STARTUP_SECONDS = 10.0


@dataclass(frozen=True)
class Plan:
    mode: str
    history_rows: int
    extra_sims: tuple[int, ...]  # (b) besides TARGET_SIMS
    clients: tuple[int, ...]
    seconds: float
    warmup: float
    modems: int
    idle_seconds: float
    settle_seconds: float
    sms_rounds: int
    sms_spacing: float
    pushes: int
    profile_seconds: float


QUICK = Plan(
    "quick", HISTORY_ROWS, (100,), (1, 16, 64), 1.5, 0.5, 64, 10.0, 2.0, 2, 0.015, 1000, 3.0
)
FULL = Plan(
    "full", HISTORY_ROWS, (100, 20_000), (1, 16, 64), 8.0, 1.0, 64, 60.0, 5.0, 10, 0.015, 1000, 8.0
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="about two minutes")
    mode.add_argument("--full", action="store_true", help="the real thing (the default)")
    parser.add_argument("--only", default=MEASURES, help="measures to run, e.g. a,c,f")
    parser.add_argument("--report", default=str(REPO_ROOT / "docs" / "BENCHMARKS.md"))
    parser.add_argument("--no-report", action="store_true", help="print only")
    parser.add_argument("--json", help="also write every figure as JSON here")
    parser.add_argument("--workdir", help="folder for databases and logs (default: a new one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--log-level", default="INFO", help="the daemon's log level")
    parser.add_argument("--no-profile", action="store_true", help="skip profiling misses")
    # Overrides, for trying things and for the smoke test.
    parser.add_argument("--history-rows", type=int)
    parser.add_argument("--seconds", type=float, help="per API cell")
    parser.add_argument("--clients", help="comma list, e.g. 1,16,64")
    parser.add_argument("--sims", help="comma list of SIM counts for (b)")
    parser.add_argument("--pushes", type=int)
    parser.add_argument("--idle-seconds", type=float)
    parser.add_argument("--sms-rounds", type=int)
    parser.add_argument("--modems", type=int)
    return parser.parse_args(argv)


def make_plan(args: argparse.Namespace) -> Plan:
    plan = QUICK if args.quick else FULL
    changes: dict = {}
    if args.history_rows is not None:
        changes["history_rows"] = args.history_rows
    if args.seconds is not None:
        changes["seconds"] = args.seconds
        changes["warmup"] = min(plan.warmup, max(0.1, args.seconds / 4))
        changes["profile_seconds"] = min(plan.profile_seconds, args.seconds * 2)
    if args.clients:
        changes["clients"] = tuple(int(c) for c in args.clients.split(","))
    if args.sims:
        changes["extra_sims"] = tuple(int(s) for s in args.sims.split(",") if int(s) != 2000)
    if args.pushes is not None:
        changes["pushes"] = args.pushes
    if args.idle_seconds is not None:
        changes["idle_seconds"] = args.idle_seconds
        changes["settle_seconds"] = min(plan.settle_seconds, args.idle_seconds)
    if args.sms_rounds is not None:
        changes["sms_rounds"] = args.sms_rounds
    if args.modems is not None:
        changes["modems"] = args.modems
    return Plan(**{**asdict(plan), **changes})


#: Options whose value is a path on this machine: left out of the command the report shows.
PATH_OPTIONS = ("--json", "--workdir", "--report")


def command_line(argv: list[str] | None) -> str:
    given = list(sys.argv[1:] if argv is None else argv)
    shown: list[str] = []
    skip = False
    for word in given:
        if skip:
            skip = False
        elif word in PATH_OPTIONS:
            skip = True
        elif not word.startswith(tuple(f"{o}=" for o in PATH_OPTIONS)):
            shown.append(word)
    return "python -m bench.run" + ("" if not shown else " " + shlex.join(shown))


async def run(args: argparse.Namespace, argv: list[str] | None) -> rep.Report:
    plan = make_plan(args)
    only = {m for m in args.only.replace(",", "") if m in MEASURES}
    report = rep.Report(plan.mode, command_line(argv), rep.machine(), time.time())
    report.load_before = rep.load_average()
    started = time.perf_counter()
    workdir = (
        Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="simfarm-bench-"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    figures: dict = {"plan": asdict(plan)}
    print(
        f"simfarm benchmarks, {plan.mode} mode, measures {''.join(sorted(only))}; "
        f"work folder {workdir}",
        flush=True,
    )
    try:
        if only & {"a", "b"}:
            await api_measures(report, plan, only, workdir, args, figures)
        if only & {"c", "d", "e"}:
            await farm_measures(report, plan, only, workdir, figures)
        if "f" in only:
            await push_measure(report, plan, workdir, args, figures)
    finally:
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    report.load_after = rep.load_average()
    report.seconds = time.perf_counter() - started
    report.sections.append(("How it is measured", METHOD))
    if args.json:
        write_json(Path(args.json), figures)
    return report


def write_json(path: Path, figures: dict) -> None:
    path.write_text(json.dumps(figures, indent=1, default=str))


# --- (a) and (b) -------------------------------------------------------------------------------


def _cell(runs: list[ApiRun], server: str, action: str, sims: int, clients: int) -> ApiRun | None:
    for r in runs:
        if (r.server, r.action, r.sims, r.concurrency) == (server, action, sims, clients):
            return r
    return None


async def api_measures(
    report: rep.Report, plan: Plan, only: set[str], workdir: Path, args, figures: dict
) -> None:
    base_db = workdir / "base.db"
    print(f"seeding {plan.history_rows:,} history rows ...", flush=True)
    seed_seconds = await seed_database(base_db, plan.history_rows)
    print(f"  seeded in {seed_seconds:.1f} s", flush=True)
    sim_counts: list[int] = []
    if "b" in only:
        sim_counts = sorted({*plan.extra_sims, TARGET_SIMS})
    elif "a" in only:
        sim_counts = [TARGET_SIMS]
    runs, online, headers = await measure_api(
        workdir,
        base_db,
        sim_counts=tuple(sim_counts),
        concurrencies=plan.clients,
        seconds=plan.seconds,
        warmup=plan.warmup,
        log_level=args.log_level,
        progress=lambda line: print(line, flush=True),
    )
    figures["api"] = [asdict(r) for r in runs]
    figures["sims_online_seconds"] = online
    figures["get_services_headers"] = headers
    clients = TARGET_CLIENTS if TARGET_CLIENTS in plan.clients else max(plan.clients)
    sims = TARGET_SIMS
    missed: list[str] = []
    for action, p99_target, ratio_target in (
        ("GET_NUMBER", GET_NUMBER_P99_MS, GET_NUMBER_RATIO),
        ("GET_SERVICES", GET_SERVICES_P99_MS, GET_SERVICES_RATIO),
    ):
        ours = _cell(runs, "simfarm", action, sims, clients)
        bare = _cell(runs, "bare", action, sims, clients)
        where = f"{sims:,} SIMs, {plan.history_rows:,} history rows, {clients} clients"
        label = action + (" (+ FINISH)" if action == "GET_NUMBER" else "")
        if ours is None or bare is None:
            continue
        p99_ok = ours.p99_ms < p99_target and ours.errors == 0
        ratio = ours.rate / bare.rate if bare.rate else 0.0
        ratio_ok = ratio >= ratio_target and ours.errors == 0
        report.targets.append(
            rep.Target(
                f"(a) {label} p99, {where}",
                f"< {p99_target:.0f} ms",
                f"{ours.p99_ms:.1f} ms (bare endpoint: {bare.p99_ms:.1f} ms)",
                "pass" if p99_ok else "miss",
            )
        )
        report.targets.append(
            rep.Target(
                f"(a) {label} throughput vs bare, {where}",
                f">= {ratio_target:.0%}",
                f"{ratio:.0%} ({ours.rate:,.0f} vs {bare.rate:,.0f} req/s)",
                "pass" if ratio_ok else "miss",
            )
        )
        if not (p99_ok and ratio_ok):
            missed.append(action)
    if "b" in only:
        for action in ("GET_NUMBER", "GET_SERVICES"):
            cells = [_cell(runs, "simfarm", action, n, clients) for n in sim_counts]
            shown = ", ".join(
                f"{c.sims:,}: {c.rate:,.0f} req/s p99 {c.p99_ms:.1f} ms" for c in cells if c
            )
            report.targets.append(
                rep.Target(
                    f"(b) {action} by live SIMs, {clients} clients",
                    "cost grows slowly",
                    shown,
                    "info",
                )
            )
    report.sections.append(("(a) and (b): the marketplace API", api_section(runs, online, plan)))
    api_findings(report, runs, headers, sims, clients)
    if missed and not args.no_profile:
        await profile_misses(report, plan, workdir, base_db, missed, sims, clients, args)


def api_section(runs: list[ApiRun], online: dict[int, float], plan: Plan) -> str:
    rows = []
    for r in runs:
        if r.server != "simfarm":
            continue
        bare = _cell(runs, "bare", r.action, r.sims, r.concurrency)
        ratio = f"{r.rate / bare.rate:.0%}" if bare and bare.rate else "–"
        finish = (
            f"{rep.fmt(r.finish_p50_ms, 2)} / {rep.fmt(r.finish_p99_ms, 2)}"
            if r.action == "GET_NUMBER"
            else ""
        )
        rows.append(
            [
                f"{r.sims:,}",
                r.action,
                str(r.concurrency),
                f"{r.rate:,.0f}",
                f"{bare.rate:,.0f}" if bare else "–",
                ratio,
                f"{rep.fmt(r.p50_ms, 2)} / {rep.fmt(r.p99_ms, 2)}",
                f"{rep.fmt(bare.p50_ms, 2)} / {rep.fmt(bare.p99_ms, 2)}" if bare else "–",
                finish,
                f"{rep.fmt(r.cpu_loop_percent, 0)} / {rep.fmt(r.cpu_threads_percent, 0)}",
                rep.fmt(bare.cpu_loop_percent, 0) if bare else "–",
                str(r.no_numbers),
                str(r.errors),
            ]
        )
    table = rep.markdown_table(
        [
            "SIMs",
            "action",
            "clients",
            "simfarm req/s",
            "bare req/s",
            "ratio",
            "simfarm p50 / p99 ms",
            "bare p50 / p99 ms",
            "FINISH p50 / p99 ms",
            "simfarm CPU % loop / other threads",
            "bare CPU % loop",
            "NO_NUMBERS",
            "errors",
        ],
        rows,
    )
    bring_up = ", ".join(f"{n:,} SIMs in {s:.2f} s" for n, s in sorted(online.items()))
    return (
        f"Each cell: {plan.warmup:g} s warm-up, then {plan.seconds:g} s of back-to-back "
        "requests on one keep-alive connection per client. GET_NUMBER rows count GET_NUMBER and "
        "its FINISH_ACTIVATION (status 4) as two requests, for simfarm and bare alike; the "
        "latency columns are GET_NUMBER's, FINISH has its own. NO_NUMBERS replies (every "
        "eligible number of the country leased at that instant) are counted apart.\n\n"
        + table
        + f"\n\nBringing the synthetic SIMs online through `pool.sim_online` took: {bring_up}."
    )


def api_findings(
    report: rep.Report,
    runs: list[ApiRun],
    headers: dict[int, dict[str, str]],
    sims: int,
    clients: int,
) -> None:
    for count, found in sorted(headers.items()):
        vary = found.get("vary", "")
        if vary.count(",") >= 2:
            report.findings.append(
                f"GET_SERVICES reply after the {count:,}-SIM run carries a `vary` header of "
                f"{len(vary):,} characters ({vary.count(',') + 1} times `Accept-Encoding`): the "
                "cached reply is a Starlette `Response` object, and GZipMiddleware adds to its "
                "headers in place on every send, so every reply is larger and slower than the "
                "one before (h11 re-validates the growing header: its regex dominates the "
                "profile). Worse, one client sending `Accept-Encoding: gzip` leaves "
                "`content-encoding: gzip` and the compressed length on the cached object, and "
                "every later plain client gets a reply whose headers do not match its body. "
                "Fix in gateway/marketplaces/api.py: cache the encoded body bytes per "
                "(version, rent_only) "
                "and build a new `Response` per request."
            )
            break
    ours = _cell(runs, "simfarm", "GET_NUMBER", sims, clients)
    bare = _cell(runs, "bare", "GET_NUMBER", sims, clients)
    if ours and bare and ours.rate and bare.rate and ours.rate < GET_NUMBER_RATIO * bare.rate:
        loop_us = 1e4 * (ours.cpu_loop_percent or 0) / ours.rate
        bare_us = 1e4 * (bare.cpu_loop_percent or 0) / bare.rate
        report.findings.append(
            f"GET_NUMBER throughput is bound by the daemon's event-loop thread: at {clients} "
            f"clients it runs at {rep.fmt(ours.cpu_loop_percent, 0)} % of a core (the store's "
            f"writer thread at {rep.fmt(ours.cpu_threads_percent, 0)} %), about "
            f"{loop_us:.0f} us of loop CPU per request against {bare_us:.0f} us for the bare "
            "endpoint. What the bare endpoint does not do (profile below): read and validate "
            "the body with pydantic, wrap every reply in GZipMiddleware (Onlinesim asks for gzip "
            "whenever the client accepts it), re-count the number in the GET_SERVICES counters "
            "on lease, history change and close, and hand every lease and finish to the store's "
            "writer thread and wait for its durable commit (a future resolved across threads). "
            "Each is small; together they are what stands between "
            f"{ours.rate / bare.rate:.0%} and {GET_NUMBER_RATIO:.0%}."
        )
    if ours and bare and bare.rate:
        report.findings.append(
            f"At {clients} closed-loop clients latency is queueing: each client waits for the "
            f"{clients - 1} requests ahead of it, so p50 is about clients / throughput "
            f"({clients} / {ours.rate:,.0f} req/s = {1000 * clients / ours.rate:.1f} ms for "
            f"simfarm, {1000 * clients / bare.rate:.1f} ms for bare). The bare endpoint's own "
            f"p99 here is {bare.p99_ms:.1f} ms: a p99 < 20 ms at 64 saturating clients is "
            "about as much a throughput target as a latency one on this machine (the load "
            "generator shares its two cores)."
        )


async def profile_misses(
    report: rep.Report,
    plan: Plan,
    workdir: Path,
    base_db: Path,
    missed: list[str],
    sims: int,
    clients: int,
    args,
) -> None:
    for action in missed:
        print(f"profiling {action} ({clients} clients, {plan.profile_seconds:g} s) ...", flush=True)
        try:
            text = await profile_action(
                workdir,
                base_db,
                sims=sims,
                action=action,
                concurrency=clients,
                seconds=plan.profile_seconds,
                log_level=args.log_level,
            )
        except Exception as exc:  # a failed profile must not lose the measured figures
            text = f"profiling failed: {type(exc).__name__}: {exc}"
        report.sections.append(
            (
                f"Profile of the API process: {action}, {sims:,} SIMs, {clients} clients",
                "cProfile of the daemon's event-loop thread while serving (the store's writer "
                "thread is not in it), by own time and by cumulative time:\n\n```\n"
                + text
                + "\n```",
            )
        )


# --- (c), (d) and (e) ---------------------------------------------------------------------------


async def farm_measures(
    report: rep.Report, plan: Plan, only: set[str], workdir: Path, figures: dict
) -> None:
    print(f"farm of {plan.modems} simulated modems ...", flush=True)
    result = await measure_farm(
        workdir,
        modems=plan.modems,
        idle_seconds=plan.idle_seconds,
        settle_seconds=plan.settle_seconds,
        sms_rounds=plan.sms_rounds,
        sms_spacing_seconds=plan.sms_spacing,
        parts=frozenset(only & {"c", "d", "e"}),
        progress=lambda line: print(line, flush=True),
    )
    figures["farm"] = {k: v for k, v in asdict(result).items() if k != "tags_by_number"}
    n = plan.modems
    if "e" in only:
        ok = result.startup_seconds is not None and result.startup_seconds < STARTUP_SECONDS
        report.targets.append(
            rep.Target(
                f"(e) start-up until all {n} simulated modems are live",
                f"< {STARTUP_SECONDS:.0f} s",
                f"{rep.fmt(result.startup_seconds, 2, ' s')} ({result.live} of {n} live)",
                "pass" if ok else "miss",
            )
        )
    if "d" in only:
        cpu_ok = result.idle_cpu_percent is not None and result.idle_cpu_percent < IDLE_CPU_PERCENT
        rss_ok = result.peak_rss_mb is not None and result.peak_rss_mb < IDLE_RSS_MB
        window = f"{result.idle_seconds:.0f} s"
        report.targets.append(
            rep.Target(
                f"(d) idle farm of {n} simulated modems: daemon CPU over {window}",
                f"< {IDLE_CPU_PERCENT:.0f} % of a core",
                rep.fmt(result.idle_cpu_percent, 2, " %"),
                "pass" if cpu_ok else "miss",
            )
        )
        report.targets.append(
            rep.Target(
                f"(d) idle farm of {n} simulated modems: daemon peak RSS (VmHWM)",
                f"< {IDLE_RSS_MB:.0f} MB",
                rep.fmt(result.peak_rss_mb, 1, " MB"),
                "pass" if rss_ok else "miss",
            )
        )
    if "c" in only:
        ok = result.sms_p99_ms is not None and result.sms_p99_ms < SMS_P99_MS
        ok = ok and result.sms_pushed == result.sms_sent
        report.targets.append(
            rep.Target(
                f"(c) SMS end to end (+CMTI -> PUSH_SMS received), {n} simulated modems",
                f"p99 < {SMS_P99_MS:.0f} ms",
                f"p50 {rep.fmt(result.sms_p50_ms, 1)} ms, p99 {rep.fmt(result.sms_p99_ms, 1)} ms "
                f"({result.sms_pushed} of {result.sms_sent} pushed)",
                "pass" if ok else "miss",
            )
        )
    report.sections.append(
        ("(c), (d) and (e): a farm of simulated modems", farm_section(result, plan))
    )
    if "c" in only and result.sms_to_disk_ms and result.sms_p99_ms:
        to_disk, to_push = result.sms_to_disk_ms, result.disk_to_push_ms
        finding = (
            f"SMS latency, split where the SMS is on disk: +CMTI -> stored p50/p99 "
            f"{to_disk[0]:.0f}/{to_disk[1]:.0f} ms, stored -> PUSH_SMS received "
            f"{to_push[0]:.0f}/{to_push[1]:.0f} ms."  # type: ignore[index]
        )
        quiet = _pre_write_quiet()
        if quiet and to_disk[0] >= 0.8 * quiet * 1000:
            finding += (
                f" The AT engine waits for {quiet * 1000:.0f} ms of silence on the port before "
                "every write when anything arrived in the last "
                f"{quiet * 1000:.0f} ms (drivers/at/engine.py PRE_WRITE_QUIET_S): the +CMTI "
                "line itself triggers it before AT+CMGR, and the +CMGR reply triggers it again "
                "before AT+CMGD; any command queued in between (+CPMS, a keep-alive) adds "
                "another. Waiting only while a line is incomplete (bytes after the last CR LF), "
                "or never right after a complete URC or final result, would take about "
                f"{quiet * 1000:.0f} ms off p50 and more off p99."
            )
        report.findings.append(finding)


def _pre_write_quiet() -> float | None:
    with contextlib.suppress(ImportError, AttributeError):
        from drivers.at import engine as at_engine

        return float(at_engine.PRE_WRITE_QUIET_S)
    return None


def farm_section(result: FarmResult, plan: Plan) -> str:
    rows = [
        [
            "start-up until every number is offered in GET_SERVICES",
            rep.fmt(result.startup_seconds, 2, " s"),
        ],
        [f"idle window (after {plan.settle_seconds:g} s settling)", f"{result.idle_seconds:g} s"],
        [
            "daemon CPU during the window (all threads, % of one core)",
            rep.fmt(result.idle_cpu_percent, 2, " %"),
        ],
        [
            "simulator CPU during the window (another process)",
            rep.fmt(result.simulator_cpu_percent, 2, " %"),
        ],
        ["daemon RSS, highest sample in the window", rep.fmt(result.idle_rss_mb, 1, " MB")],
        ["daemon peak RSS (VmHWM), end of the run", rep.fmt(result.peak_rss_mb, 1, " MB")],
        ["SMS sent / pushed", f"{result.sms_sent} / {result.sms_pushed}"],
        [
            "SMS end to end p50 / p99 / max",
            f"{rep.fmt(result.sms_p50_ms)} / {rep.fmt(result.sms_p99_ms)} / "
            f"{rep.fmt(result.sms_max_ms)} ms",
        ],
        [
            "+CMTI -> SMS stored (daemon log) p50 / p99",
            " / ".join(rep.fmt(v) for v in result.sms_to_disk_ms) + " ms"
            if result.sms_to_disk_ms
            else "–",
        ],
        [
            "SMS stored -> PUSH_SMS received p50 / p99",
            " / ".join(rep.fmt(v) for v in result.disk_to_push_ms) + " ms"
            if result.disk_to_push_ms
            else "–",
        ],
    ]
    notes = "".join(f"\n\nNote: {n}" for n in result.notes)
    return (
        f"{result.modems} simulated modems (SIM800, EC25 and E3372 profiles) in one process, the "
        "daemon (`python -m gateway run --config F`, the real modem driver, log level INFO) in "
        "another, the marketplace stand-in in the benchmark process. SMS: every number leased "
        f"with GET_NUMBER, then {plan.sms_rounds} rounds of one SMS per modem, "
        f"{plan.sms_spacing * 1000:g} ms apart, each round waiting for its pushes.\n\n"
        + rep.markdown_table(["what", "measured"], rows)
        + notes
    )


# --- (f) ---------------------------------------------------------------------------------------


async def push_measure(report: rep.Report, plan: Plan, workdir: Path, args, figures: dict) -> None:
    print(f"draining {plan.pushes:,} queued pushes ...", flush=True)
    result = await measure_pushes(workdir, count=plan.pushes, log_level=args.log_level)
    figures["pushes"] = result
    print(
        f"  {result.get('pushed')} pushed in {result.get('seconds')} s: "
        f"{result.get('per_second')} pushes/s",
        flush=True,
    )
    complete = result.get("pushed") == plan.pushes
    report.targets.append(
        rep.Target(
            f"(f) {plan.pushes:,} queued pushes drained against a fast marketplace",
            "(no target: reported)",
            f"{result.get('per_second', 0):,.0f} pushes/s ({result.get('pushed')} in "
            f"{result.get('seconds')} s)",
            "info" if complete else "miss",
        )
    )
    report.sections.append(
        (
            "(f): draining the PUSH_SMS outbox",
            f"{plan.pushes:,} SMS queued for push through the store (one open activation each), "
            "then the daemon's PushWorker started against a raw-asyncio marketplace that answers "
            "SUCCESS at once, in its own process; timed until every push is recorded.\n\n"
            + rep.markdown_table(["what", "measured"], [[k, str(v)] for k, v in result.items()]),
        )
    )


METHOD = """\
- Processes: the daemon's API (`bench/serve_api.py`: a real `Daemon(config)`, its store on a
  copy of the seeded database, N synthetic SIMs brought online with `pool.sim_online`), the bare
  endpoint (`bench/serve_bare.py`), the simulated modems (`bench/sim_farm.py`), the daemon for
  the farm measures (`python -m gateway run --config F`), the fast marketplace and the push drain
  each run in their own process; the load generator and the PUSH_SMS stand-in of (c) run in the
  benchmark process. Everything is on loopback.
- Client: `bench/loadgen.py`, raw asyncio streams, one keep-alive HTTP/1.1 connection per
  client, requests prebuilt, replies read up to their Content-Length. Closed loop: each client
  sends its next request when the previous reply is in, so at 64 clients the server is
  saturated and latency includes queueing.
- Database: 1,000,000 history rows written with `Store.bulk_seed_history` (mostly numbers no
  longer live; a third of the live numbers have 1-4 services with issues or bars). SQLite
  settings are the daemon's own (WAL, `synchronous=FULL`), on the machine's disk.
- GET_NUMBER load: countries weighted like the synthetic farm, services in turn, `operator=any`;
  each success is closed with FINISH_ACTIVATION status 4 so the number comes back. The
  benchmark configuration sets `max_issues_per_service` very high so these cycles never wear
  the pool out; the seeded bars still exclude numbers.
- Idle CPU: utime + stime from /proc/PID/stat over the window (all threads); RSS: VmHWM from
  /proc/PID/status. SMS latency: time.monotonic() in the simulator when it writes `+CMTI` to the
  pty, and in the marketplace stand-in when the PUSH_SMS arrives.
- Every loop is bounded in count and time, and every child is stopped (SIGTERM, then SIGKILL)
  when its measure ends.
"""


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(run(args, argv))
    rep.print_summary(report)
    if not args.no_report:
        path = Path(args.report)
        rep.write_markdown(report, path)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
