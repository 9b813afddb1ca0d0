"""`simfarm demo`: the whole job on simulated modems, in one process, on one machine.

Eight simulated modems (mixed models and countries, one SIM whose number is only known through
USSD) behind real pseudo-terminals, the daemon with its API on 127.0.0.1:8080 and an SQLite
file, and a local stand-in for the marketplace that prints every PUSH_SMS it receives. With
`--traffic` it also plays the marketplace: it orders numbers and sends an SMS to each. With
`--simbank` a simulated SIM bank joins them: a switch board with 4 channels of 8 SIMs each,
rotated every half minute, and a line is printed whenever a channel switches to another SIM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import random
import shlex
import shutil
import signal
import socket
import stat
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from drivers.simulator import (
    E3372,
    EC25,
    SIM800,
    SIM7600,
    Profile,
    SimulatedFarm,
    SimulatedModem,
    make_sim,
    serve_control,
    with_serial,
)
from drivers.simulator.simbank import BankFaults, SimulatedSimBank
from gateway.config import Config, ConfigError, config_from_dict
from gateway.daemon import Daemon
from gateway.demo.fake_marketplace import FakeMarketplace, ReceivedPush
from gateway.ops.admin import AdminListenError
from gateway.ops.listen_check import cannot_listen, reason
from gateway.ops.logs import setup_logging

log = logging.getLogger(__name__)

DEMO_KEY = "demo-partner-key"
DEMO_SERVICES = ("vk", "wa", "tg")
#: How long the demo waits for every simulated modem to come up before it carries on anyway.
STARTUP_WAIT_SECONDS = 60.0
#: Pause between two orders of the traffic player.
TRAFFIC_INTERVAL_SECONDS = 4.0
#: How long the traffic player waits for the SMS it sent to come back as a PUSH_SMS.
PUSH_WAIT_SECONDS = 30.0
DEFAULT_CONTROL = "var/simfarm-sim.sock"
#: The simulated SIM bank of `--simbank`: channels x slots, German numbers +49 1523 0cc0sss.
BANK_CHANNELS = 4
BANK_SLOTS = 8
BANK_NUMBER_PREFIX = "4915230"
#: Short enough that a person sees rotations within a minute (a real bank dwells 30 minutes).
DEMO_BANK: dict[str, Any] = {
    "dwell_minutes": 0.5,
    "max_in_transition": 0.5,
    "min_command_interval_seconds": 0.1,
    "drain_seconds": 0.0,
    "settle_seconds": 0.5,
    "sim_ready_seconds": 15.0,
    "registration_seconds": 30.0,
    "reply_timeout_seconds": 1.0,
    "quarantine_minutes": 1.0,
}
#: How often the demo looks at the bank for channels that switched SIMs.
BANK_POLL_SECONDS = 2.0


@dataclass(frozen=True)
class DemoSim:
    profile: Profile
    number: str
    mcc_mnc: str
    operator_name: str
    number_only_by_ussd: bool = False


# The farm: eight modems, four countries, one SIM that tells its number only by USSD.
DEMO_SIMS = (
    DemoSim(SIM800, "4915112340001", "26202", "Vodafone.de"),
    DemoSim(EC25, "4917612340002", "26203", "o2 - de"),
    DemoSim(E3372, "79161230003", "25001", "MTS RUS"),
    DemoSim(SIM800, "79261230004", "25002", "MegaFon"),
    DemoSim(EC25, "380501230005", "25501", "Vodafone UA"),
    DemoSim(SIM7600, "447400123456", "23415", "vodafone UK"),
    DemoSim(E3372, "79031230007", "25099", "Beeline"),
    DemoSim(EC25, "4915212340008", "26202", "Vodafone.de", number_only_by_ussd=True),
)
USSD_CODE = "*135#"
USSD_PATTERN = r"(\+?\d{10,15})"


def build_farm(count: int) -> SimulatedFarm:
    farm = SimulatedFarm()
    for serial, demo in enumerate(DEMO_SIMS[:count], start=1):
        sim = make_sim(
            serial,
            number=demo.number,
            mcc_mnc=demo.mcc_mnc,
            operator_name=demo.operator_name,
            number_in_cnum=not demo.number_only_by_ussd,
            ussd={USSD_CODE: f"Ihre Rufnummer: +{demo.number}"},
        )
        name = f"modem{serial}-{demo.profile.name}"
        farm.add(SimulatedModem(with_serial(demo.profile, serial), sim, name=name))
    return farm


def build_bank() -> SimulatedSimBank:
    """A board with BANK_CHANNELS modules, BANK_SLOTS SIMs each, every number distinct."""
    return SimulatedSimBank(
        BANK_CHANNELS,
        BANK_SLOTS,
        seed=1,
        faults=BankFaults(registration_seconds=0.5),
        number_prefix=BANK_NUMBER_PREFIX,
    )


def bank_config(bank: SimulatedSimBank) -> dict[str, Any]:
    """The `[[simbanks]]` entry for the simulated bank."""
    return {
        "port": bank.board_path,
        "slots": BANK_SLOTS,
        "channels": bank.module_paths,
        **DEMO_BANK,
    }


def build_config(
    args: argparse.Namespace,
    ports: list[str],
    push_url: str,
    data: Path,
    bank: SimulatedSimBank | None = None,
) -> Config:
    return config_from_dict(
        {
            "server": {"host": args.host, "port": args.port},
            "admin": {"host": "127.0.0.1", "port": args.admin_port},
            "marketplace": {"key": DEMO_KEY, "push_url": push_url, "push_retry_seconds": 5},
            "storage": {"path": str(data / "simfarm.db")},
            "offer": {"services": list(DEMO_SERVICES), "rent": True},
            "modems": [{"port": port} for port in ports],
            "ussd": {"26202": {"code": USSD_CODE, "pattern": USSD_PATTERN}},
            "farm": {"rescan_seconds": 2, "sweep_seconds": 15, "multipart_timeout_seconds": 30},
            "log": {"level": args.log_level},
            "simbanks": [bank_config(bank)] if bank is not None else [],
        }
    )


def print_push(push: ReceivedPush) -> None:
    body = push.body
    print(
        f"  PUSH_SMS  smsId={body.get('smsId')} phone={body.get('phone')} "
        f"from={body.get('phoneFrom')!r} text={body.get('text')!r}",
        flush=True,
    )


def simfarm_command() -> str:
    """How to run this very `simfarm` from any folder: by its absolute path, or through the
    Python that runs it when started as `python -m gateway`."""
    program = Path(os.path.abspath(sys.argv[0])) if sys.argv and sys.argv[0] else None
    if program is None or program.name == "__main__.py" or not program.is_file():
        return f"{shlex.quote(sys.executable)} -m gateway"
    return shlex.quote(str(program))


def try_this(url: str, control: str, admin: str, *, simbank: bool = False) -> str:
    """What to try once the demo is up: the marketplace's calls and the operator's commands,
    written so they work when pasted into another terminal, in any folder."""
    key = DEMO_KEY
    post = f"curl -s {url}/ -H 'Content-Type: application/json' -d"
    simfarm = simfarm_command()
    control = shlex.quote(os.path.abspath(control)) if not control.startswith("tcp://") else control
    return "\n".join(
        [
            "",
            f"simfarm demo is up: the marketplace API is on {url}",
            f"The admin endpoint (for the operator's commands) is on {admin}",
            "Try this (in another terminal):",
            f"""  {post} '{{"action":"GET_SERVICES","key":"{key}"}}'""",
            f"""  {post} '{{"action":"GET_NUMBER","key":"{key}","country":"germany","""
            """"operator":"any","service":"vk","sum":10}'""",
            f"  {simfarm} sim send --to <number from GET_NUMBER> --from VK "
            f"--text 'Your code: 12345' --control {control}",
            f"""  {post} '{{"action":"FINISH_ACTIVATION","key":"{key}","activationId":"""
            """<activationId>,"status":3}'""",
            f"  {simfarm} modems --admin {admin}",
            f"  {simfarm} activations --admin {admin}",
            *([f"  {simfarm} simbank --admin {admin}"] if simbank else []),
            "Every PUSH_SMS the marketplace receives is printed below. Ctrl-C stops everything.",
            "",
        ]
    )


# --- before anything starts: the ports and the control socket it needs ---------------------


def port_problem(args: argparse.Namespace) -> str | None:
    """Why the demo could not have one of its ports (None when all are free), checked before
    any file is touched: a demo that fails must leave a running one alone."""
    wanted = [(args.host, args.port, "--port"), ("127.0.0.1", args.admin_port, "--admin-port")]
    wanted.append(("127.0.0.1", args.market_port, "--market-port"))
    fixed = [(host, port, flag) for host, port, flag in wanted if port != 0]
    for n, (_, port, flag) in enumerate(fixed):
        for _, other_port, other_flag in fixed[n + 1 :]:
            if port == other_port:
                return f"{flag} and {other_flag} are both {port}; give each its own port"
    for host, port, flag in fixed:
        exc = cannot_listen(host, port)
        if exc is None:
            continue
        if exc.errno == errno.EADDRINUSE:
            return f"port {port} is in use; use {flag} (0 picks a free one)"
        return f"cannot listen on {host}:{port} ({reason(exc)}); check --host and {flag}"
    return None


def control_problem(address: str) -> str | None:
    """Why the control socket cannot be served at `address` (None when it can): a live socket
    belongs to a running demo, and anything that is not a socket is not ours to replace."""
    if address.startswith("tcp://"):
        return None
    path = Path(address)
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return None
    if not stat.S_ISSOCK(mode):
        return f"{address} exists and is not a socket; use --control PATH"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(2.0)
        try:
            probe.connect(address)
        except OSError:
            return None  # left by a demo that is gone: replaced when the demo starts
    return f"another simfarm demo is running (it serves {address}); stop it, or use --control"


async def wait_until_live(daemon: Daemon, count: int, timeout: float) -> int:
    """Wait for `count` live SIMs (or the timeout); returns how many are live."""
    pool = daemon.pool
    assert pool is not None
    with contextlib.suppress(TimeoutError):
        await pool.wait_until(lambda: len(pool.live_numbers()) >= count, timeout)
    return len(pool.live_numbers())


def deliver(farm: SimulatedFarm, bank: SimulatedSimBank | None, number: str, *sms: str) -> None:
    """An SMS to the simulated modem that holds `number` now (a plain modem or a bank's)."""
    if bank is not None:
        for module in bank.modules.values():
            if module.sim is not None and module.sim.number == number:
                module.deliver_sms(*sms)
                return
    farm.by_number(number).deliver_sms(*sms)


def bank_positions(boards: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[Any, Any]]:
    """(board, channel) -> (active slot, number) from the banks' snapshot."""
    return {
        (board["board"], row["channel"]): (row["active_slot"], row["number"])
        for board in boards
        for row in board["channels"]
    }


async def report_rotations(daemon: Daemon) -> None:
    """Print a line whenever a channel of a bank has switched to another SIM."""
    simbanks = daemon.simbanks
    if simbanks is None:
        return
    seen = bank_positions(simbanks.snapshot())
    quarantined: set[tuple[str, str]] = set()
    while True:
        await asyncio.sleep(BANK_POLL_SECONDS)
        boards = simbanks.snapshot()
        now = bank_positions(boards)
        for key, (slot, number) in sorted(now.items()):
            before = seen.get(key)
            if before is None or before == (slot, number) or number is None:
                continue
            board, channel = key
            print(
                f"  ROTATED   channel {channel}: slot {before[0]} -> {slot}, "
                f"+{before[1]} -> +{number}",
                flush=True,
            )
            seen[key] = (slot, number)
        for board in boards:
            for row in board["channels"]:
                key = (board["board"], row["channel"])
                if not row["quarantined"]:
                    quarantined.discard(key)
                elif key not in quarantined:
                    quarantined.add(key)
                    print(f"  QUARANTINED channel {row['channel']}: {row['detail']}", flush=True)


async def play_traffic(
    url: str, farm: SimulatedFarm, market: FakeMarketplace, bank: SimulatedSimBank | None = None
) -> None:
    """Act as the marketplace: order a number, send it an SMS, wait for the push, close it."""
    rng = random.Random(7)
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        while True:
            await asyncio.sleep(TRAFFIC_INTERVAL_SECONDS)
            report = (
                await client.post("/", json={"action": "GET_SERVICES", "key": DEMO_KEY})
            ).json()
            offers = [
                (c["country"], service)
                for c in report.get("countryList", [])
                for service, n in c["operatorMap"].get("any", {}).items()
                if n > 0 and service != "rent"
            ]
            if not offers:
                print("  traffic: nothing to order right now", flush=True)
                continue
            country, service = rng.choice(offers)
            order = {"country": country, "operator": "any", "service": service, "sum": 10}
            reply = (
                await client.post("/", json={"action": "GET_NUMBER", "key": DEMO_KEY, **order})
            ).json()
            if reply.get("status") != "SUCCESS":
                print(f"  traffic: GET_NUMBER {country}/{service} -> {reply}", flush=True)
                continue
            number, activation = str(reply["number"]), reply["activationId"]
            print(
                f"  traffic: GET_NUMBER {country}/{service} -> {number} (activation {activation})"
            )
            code = rng.randrange(10000, 99999)
            seen = len(market.received)
            deliver(farm, bank, number, service.upper(), f"Your {service} code: {code}")
            try:
                await market.wait_for(lambda r, seen=seen: len(r) > seen, PUSH_WAIT_SECONDS)
            except TimeoutError:
                print(f"  traffic: no PUSH_SMS for {number} within {PUSH_WAIT_SECONDS:.0f} s")
            finish = {"activationId": activation, "status": 3}
            done = await client.post(
                "/", json={"action": "FINISH_ACTIVATION", "key": DEMO_KEY, **finish}
            )
            print(f"  traffic: FINISH_ACTIVATION {activation} status=3 -> {done.json()['status']}")


async def run_demo(args: argparse.Namespace, stop: asyncio.Event) -> int:
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="simfarm-demo-"))
    data.mkdir(parents=True, exist_ok=True)
    try:
        return await _run_demo(args, stop, data)
    finally:
        if not args.data:
            shutil.rmtree(data, ignore_errors=True)


async def _run_demo(args: argparse.Namespace, stop: asyncio.Event, data: Path) -> int:
    farm = build_farm(args.modems)
    market = FakeMarketplace(on_push=print_push)
    await market.start(port=args.market_port)
    control_path = Path(args.control)
    control_path.parent.mkdir(parents=True, exist_ok=True)
    control = await serve_control(farm, str(control_path))
    bank = build_bank() if args.simbank else None
    daemon: Daemon | None = None
    tasks: list[asyncio.Task[None]] = []
    try:
        await farm.start()
        if bank is not None:
            await bank.start()
        config = build_config(args, [m.path for m in farm], market.url, data, bank)
        daemon = Daemon(config)
        started = time.monotonic()
        await daemon.start()
        url = f"http://{args.host}:{daemon.port}"
        total = len(farm) + (len(bank.modules) if bank is not None else 0)
        kept = "" if args.data else " (a temporary folder, removed on exit; --data FOLDER keeps it)"
        print(f"Starting {total} simulated modems; database: {data / 'simfarm.db'}{kept} ...")
        coming_up = asyncio.ensure_future(wait_until_live(daemon, total, STARTUP_WAIT_SECONDS))
        stopping = asyncio.ensure_future(stop.wait())
        await asyncio.wait({coming_up, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            coming_up.cancel()
            print("\nStopping ...", flush=True)
            return 0
        stopping.cancel()
        live = coming_up.result()
        print(f"{live} of {total} modems live after {time.monotonic() - started:.1f} s")
        for row in farm.describe():
            print(f"  {row['name']:<20} {row['path']:<14} +{row['number']}")
        if bank is not None:
            print_bank(bank)
        admin = f"http://127.0.0.1:{daemon.admin_port}"
        print(try_this(url, str(control_path), admin, simbank=bank is not None), flush=True)
        if bank is not None:
            tasks.append(asyncio.create_task(report_rotations(daemon)))
        if args.traffic:
            tasks.append(asyncio.create_task(play_traffic(url, farm, market, bank)))
        await stop.wait()
        print("\nStopping ...", flush=True)
        return 0
    finally:
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if daemon is not None:
            await daemon.stop()
        await control.stop()
        await farm.stop()
        if bank is not None:
            await bank.stop()
        await market.stop()


def print_bank(bank: SimulatedSimBank) -> None:
    print(
        f"SIM bank on {bank.board_path}: {len(bank.modules)} channels x {BANK_SLOTS} slots, "
        f"rotating every {DEMO_BANK['dwell_minutes'] * 60:.0f} s"
    )
    for channel, module in bank.modules.items():
        numbers = [card.number for card in bank.cards[channel] if card is not None]
        print(f"  channel {channel}  {module.path:<14} +{numbers[0]} ... +{numbers[-1]}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="simfarm demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="the marketplace API (0: any free)")
    parser.add_argument("--market-port", type=int, default=0, help="the stand-in marketplace")
    parser.add_argument("--modems", type=int, default=len(DEMO_SIMS), choices=range(1, 9))
    parser.add_argument("--traffic", action="store_true", help="also play the marketplace")
    parser.add_argument(
        "--simbank",
        action="store_true",
        help=f"add a rotating simulated SIM bank ({BANK_CHANNELS} channels x {BANK_SLOTS} SIMs)",
    )
    parser.add_argument(
        "--admin-port", type=int, default=8081, help="the admin endpoint (0: any free)"
    )
    parser.add_argument("--data", help="folder for the database (default: a new temporary one)")
    parser.add_argument("--control", default=DEFAULT_CONTROL, help="simulator control socket")
    parser.add_argument("--log-level", default="WARNING", choices=("DEBUG", "INFO", "WARNING"))
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    problem = port_problem(args) or control_problem(args.control)
    if problem is not None:
        print(f"simfarm demo: {problem}", file=sys.stderr)
        return 1
    setup_logging(args.log_level)

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await run_demo(args, stop)

    try:
        return asyncio.run(run())
    except (OSError, AdminListenError, ConfigError) as exc:  # e.g. a port taken since the check
        print(f"simfarm demo: {exc}", file=sys.stderr)
        return 1
