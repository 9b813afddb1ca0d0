"""The soak's machinery: a daemon process, 32 simulated modems, a fake marketplace, a record.

The daemon runs as its own process (tests/soak/soak_daemon.py) so that it can be killed with
SIGKILL. Everything else lives in the test process: the simulated modems (they own the pty
masters; the daemon finds their slaves through a directory of symlinks that its `[[modems]]`
glob names, re-pointed when a modem is replugged on another pty, like udev names), the fake
marketplace that receives PUSH_SMS, and the record of everything the marketplace was told.
The invariants are checked from that record, from what the fake marketplace received and from
the database file, never from what the daemon says about itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import os
import random
import signal
import sqlite3
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from drivers.simulator import PowerState, SimulatedModem
from drivers.sms.pdu import encode_deliver
from gateway.demo.fake_marketplace import FakeMarketplace, ReceivedPush, Reply
from gateway.farm.sms_intake import MISSING_PART
from tests.gateway.farm_harness import mixed_farm

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "soak-partner-key"
MODEMS = 32
#: (country, operator) of modem n is GROUPS[n % 4] (the profiles and networks of mixed_farm).
GROUPS = (("germany", "vodafone"), ("germany", "o2"), ("russia", "mts"), ("russia", "megafon"))
COUNTRY_PREFIX = {"germany": "49", "russia": "7"}
BASE_SERVICES = ("vk", "wa", "tg")
VK_FLOOR = 5.0
MAX_ISSUES = 4
CLIENTS = 4
#: Far above any outage the soak causes: a flushed (incomplete) multipart SMS is a finding.
MULTIPART_TIMEOUT_SECONDS = 120
#: A complete multipart SMS joined by the timeout (its join lost at a kill) was a defect, fixed
#: (tests/gateway/test_soak_regressions.py); set True to count such late joins instead of failing.
KNOWN_LATE_MULTIPART_JOIN = False
#: Bounds: one request, the daemon coming up, modems coming up, the quiescence phase.
REQUEST_SECONDS = 10.0
START_SECONDS = 60.0
LIVE_SECONDS = 90.0
QUIESCE_SECONDS = 180.0
#: How long a wedged modem waits for the driver's +CFUN=1,1 before the test cuts its power.
HANG_SECONDS = 60.0
#: Modems that may be faulty at the same time.
MAX_FAULTY_MODEMS = 8
#: Kills happen in this leading share of the traffic phase; the rest runs on one process, so
#: its memory can be watched growing (or not) under load.
KILL_SHARE = 0.6
#: Memory bound: the last samples stay below this factor of the mid-run median plus this slack.
RSS_FACTOR = 1.5
RSS_SLACK_KB = 20 * 1024
#: …and the last process, once warm, does not grow faster than this (a gross leak in CI).
RSS_MAX_GROWTH_KB_PER_MINUTE = 10 * 1024

SENDERS = ("VK", "Telegram", "WhatsApp", "+79001234567", "+4915199887766", "Google")
SHORT_TEXTS = (
    "Your code {n}",
    "Ваш код подтверждения: {n}. Никому не сообщайте.",
    "Telegram code {n} 🔐",
    "G-{n} is your Google verification code.",
    "Código {n} — não partilhe!",
)
LONG_GSM7 = (
    "Your verification code is {n}. Do not share this code with anyone, including people "
    "who say they are from our support team. If you did not request it, ignore this message "
    "and change your password. Ref {n}."
)
LONG_UCS2 = (
    "Ваш код для входа: {n}. Не сообщайте его никому, даже сотрудникам поддержки! 🔐🙂 "
    "Если вы не запрашивали код, просто проигнорируйте это сообщение. Код {n}."
)


class Lost(Exception):
    """A request whose answer never came (the daemon was killed, or it is down)."""


@dataclass
class Activation:
    id: int
    number: str
    service: str  # "rent" for a rent
    sent_at: float  # GET_NUMBER sent (monotonic)
    answered_at: float  # its SUCCESS arrived (for an orphan: the kill that revealed it)
    orphan: bool = False  # found open in the database, its GET_NUMBER answer never came
    finish_status: int | None = None  # the status of the first FINISH sent (retries repeat it)
    finish_sent_at: float | None = None
    finished_at: float | None = None  # FINISH answered SUCCESS
    pending_sms: set[int] = field(default_factory=set)  # injected here, not yet pushed
    had_sms: bool = False
    keep_for: float = 0.0  # the marketplace lets it run this long without SMS

    @property
    def rent(self) -> bool:
        return self.service == "rent"


@dataclass
class Injected:
    seq: int
    modem: int
    number: str
    sender: str
    text: str
    parts: int
    activation: Activation | None  # open (known to the marketplace) when it was injected
    at: float
    pushed_at: float | None = None


@dataclass
class Kill:
    at: float  # SIGKILL sent
    checked_at: float = 0.0  # the database was read (the process long dead)
    lost_acks: set[int] = field(default_factory=set)  # accepted pushes not recorded on disk


@dataclass
class ModemSlot:
    """A simulated modem, its symlink and what is being done to it."""

    index: int
    modem: SimulatedModem
    number: str
    group: tuple[str, str]
    link: str
    fault: str | None = None


def child_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMFARM_")}
    env.pop("NOTIFY_SOCKET", None)
    env.pop("WATCHDOG_USEC", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def read_rss_kb(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class Soak:
    """One soak run: start(), traffic(seconds), quiesce(), check(), report(); close() always."""

    def __init__(self, folder: Path, seconds: float, seed: int) -> None:
        self.folder = folder
        self.seconds = seconds
        self.seed = seed
        self.rng = random.Random(seed)
        self.ports_dir = folder / "ports"
        self.spare_dir = folder / "spare"
        self.db = folder / "simfarm.db"
        self.config_path = folder / "simfarm.toml"
        self.log_path = folder / "daemon.log"
        # Enough services that a long run does not sell every number out (each sale bars one).
        extra = max(3, math.ceil(seconds / 20))
        self.services = (*BASE_SERVICES, *(f"s{n:03d}" for n in range(extra)))
        farm = mixed_farm(MODEMS)
        self.slots = [
            ModemSlot(n, modem, modem.sim.number, GROUPS[n % 4], f"usb1-{n:02d}")
            for n, modem in enumerate(farm)
            if modem.sim is not None
        ]
        self.by_number = {slot.number: slot for slot in self.slots}
        self.market = FakeMarketplace(policy=self._policy, on_push=self._on_push)
        self.market_mode = "healthy"
        self.market_rng = random.Random(f"{seed}-market")
        self.market_port = 0
        self.http: httpx.AsyncClient | None = None
        self.proc: asyncio.subprocess.Process | None = None
        self.url = ""
        self.up = asyncio.Event()
        self.epoch = 0
        self.inflight = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.tasks: set[asyncio.Task[Any]] = set()
        # the record
        self.activations: dict[int, Activation] = {}
        self.open: dict[str, Activation] = {}  # number -> open, no FINISH sent yet
        self.unsure: list[Activation] = []  # FINISH sent, its answer lost
        self.barred_at: dict[tuple[str, str], float] = {}  # FINISH 1/3 answered
        self.issue_times: dict[tuple[str, str], list[float]] = defaultdict(list)  # 2/4/5
        self.injected: list[Injected] = []
        self.by_text: dict[str, Injected] = {}
        self.pushes: list[tuple[float, ReceivedPush]] = []
        self.kills: list[Kill] = []
        self.rss: list[tuple[float, int, int]] = []  # (time, pid, kB)
        self.counts: Counter[str] = Counter()
        self.violations: list[str] = []
        self.rss_summary: list[tuple[str, float, int, int]] = []
        self.hang_resets: list[float] = []  # seconds from wedged to reset by the driver
        self.unexpected: list[str] = []  # transport errors while the daemon should be up
        self.started_at = time.monotonic()

    # --- bookkeeping --------------------------------------------------------------------------

    def violation(self, text: str) -> None:
        if len(self.violations) < 200:
            self.violations.append(f"[{time.monotonic() - self.started_at:7.1f}s] {text}")
        self.counts["violations"] += 1

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    # --- the fake marketplace -----------------------------------------------------------------

    def _policy(self, body: dict[str, Any], attempt: int) -> Reply:
        mode = self.market_mode
        if mode == "flaky" and self.market_rng.random() < 0.5:
            return 500, {"status": "ERROR"}
        if mode == "throttle" and self.market_rng.random() < 0.8:
            return 429, {"status": "TOO_MANY_ATTEMPTS"}
        if mode == "error":
            return 200, {"status": "ERROR"}
        return 200, {"status": "SUCCESS"}

    def _on_push(self, push: ReceivedPush) -> None:
        now = time.monotonic()
        self.pushes.append((now, push))
        if push.reply != (200, {"status": "SUCCESS"}):
            return
        injected = self.by_text.get(push.body.get("text"))
        if injected is not None and injected.pushed_at is None:
            injected.pushed_at = now
            if injected.activation is not None:
                injected.activation.pending_sms.discard(injected.seq)

    async def market_down(self, seconds: float) -> None:
        self.counts["fault market_down"] += 1
        await self.market.stop()
        try:
            await asyncio.sleep(seconds)
        finally:
            await self.market.start(port=self.market_port)

    # --- modems and their links ---------------------------------------------------------------

    def _link(self, slot: ModemSlot) -> None:
        """Point the slot's name at its modem's current pty (atomically, like udev)."""
        spare = self.spare_dir / slot.link
        with contextlib.suppress(FileNotFoundError):
            spare.unlink()
        spare.symlink_to(slot.modem.path)
        os.replace(spare, self.ports_dir / slot.link)

    def _unlink(self, slot: ModemSlot) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.ports_dir / slot.link).unlink()

    # --- the daemon process -------------------------------------------------------------------

    def write_config(self) -> None:
        services = ", ".join(f'"{s}"' for s in self.services)
        market = f"http://127.0.0.1:{self.market_port}"
        self.config_path.write_text(
            f"""
[server]
host = "127.0.0.1"
port = 0

[admin]
host = "127.0.0.1"
port = 0

[marketplace]
key = "{KEY}"
push_url = "{market}/v1/PUSH_SMS"
push_rent_url = "{market}/v1/PUSH_SMS_RENT"
push_retry_seconds = 0.5
push_timeout_seconds = 5

[storage]
path = "{self.db.as_posix()}"

[offer]
services = [{services}]
rent = true
max_issues_per_service = {MAX_ISSUES}
min_sum = {{ vk = {VK_FLOOR} }}

[[modems]]
port = "{self.ports_dir.as_posix()}/*"

[farm]
rescan_seconds = 0.5
sweep_seconds = 2
keepalive_seconds = 1
multipart_timeout_seconds = {MULTIPART_TIMEOUT_SECONDS}

[log]
level = "INFO"
""",
            encoding="utf-8",
        )

    async def start_daemon(self) -> None:
        assert self.proc is None or self.proc.returncode is not None
        with self.log_path.open("ab") as log:
            log.write(f"--- start {len(self.kills)} ---\n".encode())
            log.flush()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.soak.soak_daemon",
                str(self.config_path),
                cwd=REPO_ROOT,
                env=child_environment(),
                stdin=asyncio.subprocess.PIPE,  # closed when this process ends: the daemon stops
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(START_SECONDS):
                line = (await self.proc.stdout.readline()).decode().split()
        except TimeoutError:
            raise AssertionError(f"the daemon did not start; {self.log_tail()}") from None
        assert line[:1] == ["ready"], f"the daemon did not start: {line}; {self.log_tail()}"
        self.url = f"http://127.0.0.1:{int(line[1])}"
        self.counts["daemon starts"] += 1
        self.up.set()

    async def kill_daemon(self) -> Kill:
        """SIGKILL, wait for it, settle the requests in flight, then check the database."""
        assert self.proc is not None
        self.up.clear()
        self.epoch += 1
        kill = Kill(time.monotonic())
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
        async with asyncio.timeout(START_SECONDS):
            await self.proc.wait()
        self._close_stdin()
        async with asyncio.timeout(REQUEST_SECONDS * 2):
            await self.idle.wait()  # every request in flight has failed or been recorded
        self.kills.append(kill)
        self.counts["kills"] += 1
        await self.check_database_after_kill(kill)
        return kill

    async def stop_daemon(self) -> None:
        """SIGTERM (a clean stop), SIGKILL if it takes too long."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.up.clear()
        self.epoch += 1
        self.proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(START_SECONDS):
                await self.proc.wait()
        except TimeoutError:
            self.violation("the daemon did not stop within a minute of SIGTERM")
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
        if self.proc.returncode != 0:
            self.violation(f"the daemon exited with {self.proc.returncode} on SIGTERM")
        self._close_stdin()

    def _close_stdin(self) -> None:
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return "no daemon log"
        return "daemon log tail:\n" + "\n".join(text[-lines:])

    # --- start and stop -----------------------------------------------------------------------

    async def start(self) -> None:
        self.ports_dir.mkdir()
        self.spare_dir.mkdir()
        await self.market.start()
        self.market_port = int(self.market.base_url.rsplit(":", 1)[1])
        for slot in self.slots:
            await slot.modem.start()
            self._link(slot)
        self.write_config()
        self.http = httpx.AsyncClient(timeout=REQUEST_SECONDS)
        await self.start_daemon()
        await self.wait_all_live("at start")

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(START_SECONDS):
                    await self.proc.wait()
        self._close_stdin()
        if self.http is not None:
            await self.http.aclose()
        for slot in self.slots:
            with contextlib.suppress(Exception):
                await slot.modem.stop()
        await self.market.stop()

    # --- requests -----------------------------------------------------------------------------

    async def call(self, payload: dict[str, Any], *, key: str = KEY) -> tuple[int, Any]:
        """POST one action; Lost when the daemon is down or died during it."""
        if not self.up.is_set():
            raise Lost
        assert self.http is not None
        epoch, url = self.epoch, self.url
        self.inflight += 1
        self.idle.clear()
        try:
            reply = await self.http.post(f"{url}/", json={"key": key, **payload})
        except httpx.TransportError as exc:
            if self.epoch == epoch and self.up.is_set():
                self.unexpected.append(f"{payload.get('action')}: {exc!r}")
            self.counts["requests lost"] += 1
            raise Lost from exc
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self.idle.set()
        self.counts[f"requests {payload.get('action')}"] += 1
        try:
            body = reply.json()
        except ValueError:
            body = reply.text
        if reply.status_code >= 500:
            self.violation(f"{payload.get('action')} answered {reply.status_code}: {body!r}")
        return reply.status_code, body

    async def wait_up(self) -> None:
        async with asyncio.timeout(START_SECONDS * 2):
            await self.up.wait()

    async def services_report(self) -> dict[str, Any]:
        status, body = await self.call({"action": "GET_SERVICES"})
        if status != 200 or not isinstance(body, dict) or body.get("status") != "SUCCESS":
            self.violation(f"GET_SERVICES answered {status} {body!r}")
            return {}
        return body

    def check_services(self, report: dict[str, Any]) -> int:
        """GET_SERVICES is sane; returns the live free numbers it reports (its rent counts)."""
        live = 0
        for entry in report.get("countryList", []):
            country, operators = entry["country"], entry["operatorMap"]
            if country not in COUNTRY_PREFIX:
                self.violation(f"GET_SERVICES reports unknown country {country!r}")
                continue
            group_size = MODEMS // len(GROUPS)
            for operator, counts in operators.items():
                if operator != "any" and (country, operator) not in GROUPS:
                    self.violation(f"GET_SERVICES reports unknown operator {operator!r}")
                for service, count in counts.items():
                    limit = group_size * (2 if operator == "any" else 1)
                    if not isinstance(count, int) or not 0 <= count <= limit:
                        self.violation(f"GET_SERVICES {country}/{operator}/{service} = {count}")
            any_counts = operators.get("any", {})
            for service in [*self.services, "rent"]:
                total = sum(c.get(service, 0) for o, c in operators.items() if o != "any")
                if any_counts.get(service, 0) != total:
                    self.violation(f"GET_SERVICES {country} any/{service} is not the sum")
            live += any_counts.get("rent", 0)
        return live

    async def wait_all_live(self, when: str) -> None:
        """Poll GET_SERVICES until every modem's number is live and free (all 32 rentable)."""
        deadline = time.monotonic() + LIVE_SECONDS
        live = 0
        while time.monotonic() < deadline:
            with contextlib.suppress(Lost):
                live = self.check_services(await self.services_report())
                if live == MODEMS:
                    return
            await asyncio.sleep(0.5)
        raise AssertionError(
            f"{when}: only {live} of {MODEMS} numbers live after {LIVE_SECONDS:.0f}s; "
            f"{self.log_tail()}"
        )

    # --- the marketplace's clients ------------------------------------------------------------

    def random_number_request(self, rng: random.Random) -> dict[str, Any]:
        roll = rng.random()
        if roll < 0.1:
            service = "rent"
        elif roll < 0.13:
            service = "facebook"  # not offered
        elif roll < 0.4:
            service = rng.choice(BASE_SERVICES)
        else:
            service = rng.choice(self.services)
        country = rng.choice(["germany", "russia"] * 10 + ["france"])
        operators = [o for c, o in GROUPS if c == country] or ["orange"]
        operator = "any" if rng.random() < 0.6 else rng.choice([*operators, "beeline"])
        request: dict[str, Any] = {
            "action": "GET_NUMBER",
            "country": country,
            "operator": operator,
            "service": service,
            "sum": rng.choice([1, 4.5, 5, 10, 40]),
        }
        if rng.random() < 0.3:
            prefixes: list[int | str] = []
            for _ in range(rng.randint(1, 4)):
                number = rng.choice(self.slots).number
                prefix = number[: rng.randint(2, len(number))]
                prefixes.append(int(prefix) if rng.random() < 0.5 else prefix)
            request["exceptionPhoneSet"] = prefixes
        return request

    def check_issue(self, request: dict[str, Any], number: str, activation_id: Any) -> bool:
        """The number fits the request and the rules; False when the reply is unusable."""
        service = request["service"]
        slot = self.by_number.get(number)
        where = f"GET_NUMBER {request} -> {number} #{activation_id}"
        if not isinstance(activation_id, int) or activation_id < 1:
            self.violation(f"{where}: activationId is not a positive integer")
            return False
        if slot is None:
            self.violation(f"{where}: not a number of the farm")
            return False
        if activation_id in self.activations:
            self.violation(f"{where}: activationId issued twice")
            return False
        country, operator = slot.group
        if country != request["country"]:
            self.violation(f"{where}: wrong country {country}")
        if request["operator"] != "any" and operator != request["operator"]:
            self.violation(f"{where}: wrong operator {operator}")
        excluded = [str(p) for p in request.get("exceptionPhoneSet", [])]
        if any(number.startswith(p) for p in excluded):
            self.violation(f"{where}: number is in exceptionPhoneSet")
        if service == "facebook":
            self.violation(f"{where}: a service that is not offered")
        if service == "vk" and request["sum"] < VK_FLOOR:
            self.violation(f"{where}: sum below the floor")
        return True

    async def get_number(self, rng: random.Random) -> None:
        request = self.random_number_request(rng)
        sent = time.monotonic()
        status, body = await self.call(request)
        if status != 200 or not isinstance(body, dict):
            self.violation(f"GET_NUMBER {request} answered {status} {body!r}")
            return
        if body.get("status") == "NO_NUMBERS":
            self.counts["GET_NUMBER no numbers"] += 1
            return
        if body.get("status") != "SUCCESS" or not isinstance(body.get("number"), int):
            self.violation(f"GET_NUMBER {request} answered {body!r}")
            return
        number, activation_id = str(body["number"]), body["activationId"]
        if not self.check_issue(request, number, activation_id):
            return
        service = "rent" if request["service"] == "rent" else request["service"]
        key = (number, service)
        if service != "rent":
            if key in self.barred_at and self.barred_at[key] < sent:
                self.violation(f"{number} issued for {service} (#{activation_id}) after 1/3")
            issues = sum(1 for t in self.issue_times[key] if t < sent)
            if issues >= MAX_ISSUES:
                self.violation(f"{number} issued for {service} after {issues} cancelled issues")
        activation = Activation(
            activation_id,
            number,
            service,
            sent,
            time.monotonic(),
            keep_for=rng.choice([0.5, 2.0, 5.0, 10.0, 20.0]),
        )
        self.activations[activation_id] = activation
        self.counts["activations issued"] += 1
        self.counts["activations rent" if activation.rent else "activations service"] += 1
        holder = self.open.get(number)
        if holder is not None:
            self.violation(
                f"{number} issued as #{activation_id} while #{holder.id} is open "
                f"(answered {holder.answered_at - self.started_at:.1f}s, no FINISH sent)"
            )
            return
        self.open[number] = activation

    def finish_candidate(self, rng: random.Random) -> Activation | None:
        if self.unsure:
            return self.unsure.pop(rng.randrange(len(self.unsure)))
        now = time.monotonic()
        ready = [
            a
            for a in self.open.values()
            if not a.pending_sms and (a.had_sms or now - a.answered_at > a.keep_for)
        ]
        if not ready:
            return None
        activation = rng.choice(ready)
        del self.open[activation.number]
        if activation.had_sms:
            statuses, weights = [3, 1, 4, 5, 2], [70, 5, 10, 10, 5]
        else:
            statuses, weights = [4, 5, 2, 1, 3], [45, 15, 10, 15, 15]
        activation.finish_status = rng.choices(statuses, weights)[0]
        activation.finish_sent_at = now
        return activation

    async def finish(self, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.04 and self.activations:
            await self.finish_again(rng)
            return
        if roll < 0.06:
            unknown = max(self.activations, default=0) + 1_000_000
            status, body = await self.call(
                {"action": "FINISH_ACTIVATION", "activationId": unknown, "status": 4}
            )
            if body != {"status": "ERROR", "error": "unknown activation"}:
                self.violation(f"FINISH of unknown #{unknown} answered {status} {body!r}")
            return
        activation = self.finish_candidate(rng)
        if activation is not None:
            await self.finish_one(activation)

    async def finish_one(self, activation: Activation) -> None:
        assert activation.finish_status is not None
        payload = {
            "action": "FINISH_ACTIVATION",
            "activationId": activation.id,
            "status": activation.finish_status,
        }
        try:
            status, body = await self.call(payload)
        except Lost:
            self.unsure.append(activation)  # the marketplace sends it again later
            raise
        if status != 200 or body != {"status": "SUCCESS"}:
            self.violation(f"FINISH #{activation.id} answered {status} {body!r}")
            return
        now = time.monotonic()
        activation.finished_at = now
        self.counts[f"finish status {activation.finish_status}"] += 1
        if not activation.rent:
            key = (activation.number, activation.service)
            if activation.finish_status in (1, 3):
                self.barred_at.setdefault(key, now)
            else:
                self.issue_times[key].append(now)

    async def finish_again(self, rng: random.Random) -> None:
        """The marketplace repeats a FINISH already answered (any status): SUCCESS, no change."""
        done = [a for a in self.activations.values() if a.finished_at is not None]
        if not done:
            return
        activation = rng.choice(done)
        status, body = await self.call(
            {
                "action": "FINISH_ACTIVATION",
                "activationId": activation.id,
                "status": rng.choice([1, 2, 3, 4, 5]),
            }
        )
        self.counts["finish repeated"] += 1
        if status != 200 or body != {"status": "SUCCESS"}:
            self.violation(f"repeated FINISH #{activation.id} answered {status} {body!r}")

    async def bad_request(self, rng: random.Random) -> None:
        roll = rng.random()
        if roll < 0.5:
            request = self.random_number_request(rng)
            status, body = await self.call(request, key="not-the-key")
            if status != 401 or not isinstance(body, dict) or body.get("status") != "ERROR":
                self.violation(f"GET_NUMBER with a wrong key answered {status} {body!r}")
        else:
            status, body = await self.call({"action": "GET_NUMBER", "country": "germany"})
            if status != 400 or not isinstance(body, dict) or body.get("status") != "ERROR":
                self.violation(f"GET_NUMBER without a service answered {status} {body!r}")
        self.counts["bad requests"] += 1

    async def client(self, n: int, until: float) -> None:
        rng = random.Random(f"{self.seed}-client-{n}")
        while time.monotonic() < until:
            try:
                await self.wait_up()
                roll = rng.random()
                if roll < 0.12:
                    self.check_services(await self.services_report())
                elif roll < 0.55:
                    await self.get_number(rng)
                elif roll < 0.97:
                    await self.finish(rng)
                else:
                    await self.bad_request(rng)
            except Lost:
                pass
            await asyncio.sleep(rng.uniform(0.02, 0.2))  # pacing, not synchronisation

    # --- SMS ----------------------------------------------------------------------------------

    def sms_text(self, rng: random.Random, seq: int, multipart: bool) -> tuple[str, str]:
        code = f"{seq:05d}-{rng.randint(1000, 9999)}"
        if multipart:
            if rng.random() < 0.5:
                return LONG_GSM7.format(n=code), "gsm7"
            return LONG_UCS2.format(n=code), "ucs2"
        return rng.choice(SHORT_TEXTS).format(n=code), "auto"

    def inject(self, rng: random.Random, leased: bool) -> None:
        now = time.monotonic()
        if leased:
            choices = [a for a in self.open.values() if len(a.pending_sms) < 3]
            if not choices:
                return
            activation: Activation | None = rng.choice(choices)
            assert activation is not None
            slot = self.by_number[activation.number]
        else:
            free = [s for s in self.slots if s.number not in self.open]
            if not free:
                return
            activation, slot = None, rng.choice(free)
        seq = len(self.injected) + 1
        multipart = rng.random() < 0.25
        text, encoding = self.sms_text(rng, seq, multipart)
        sender = rng.choice(SENDERS)
        ref16 = rng.random() < 0.5
        ref = seq % (1 << (16 if ref16 else 8))
        parts = len(encode_deliver(sender, text, encoding=encoding, ref=ref, ref16=ref16))
        order = list(range(parts))
        rng.shuffle(order)
        slot.modem.deliver_sms(sender, text, encoding=encoding, ref=ref, ref16=ref16, order=order)
        injected = Injected(seq, slot.index, slot.number, sender, text, parts, activation, now)
        self.injected.append(injected)
        self.by_text[text] = injected
        if activation is not None:
            activation.pending_sms.add(seq)
            activation.had_sms = True
        self.counts["sms injected"] += 1
        self.counts["sms multipart" if parts > 1 else "sms single"] += 1
        self.counts["sms on leased" if leased else "sms on unleased"] += 1

    async def sms_loop(self, until: float) -> None:
        rng = random.Random(f"{self.seed}-sms")
        while time.monotonic() < until:
            await asyncio.sleep(rng.uniform(0.1, 0.6))  # pacing
            self.inject(rng, leased=rng.random() < 0.75)

    # --- faults -------------------------------------------------------------------------------

    async def modem_fault(self, rng: random.Random, slot: ModemSlot, kind: str) -> None:
        modem = slot.modem
        slot.fault = kind
        self.counts[f"fault {kind}"] += 1
        try:
            if kind == "unplug":
                modem.unplug()
                self._unlink(slot)
                await asyncio.sleep(rng.uniform(0.5, 6.0))
                await modem.replug()
                if rng.random() < 0.3:  # plugged into another USB port: another name
                    name = slot.link.split("-", 1)[1]
                    slot.link = f"usb{2 if slot.link.startswith('usb1') else 1}-{name}"
                self._link(slot)
            elif kind == "hang":  # wedged until the driver's ladder reboots it
                modem.hang(until_reboot=True, answer_reset=True)
                wedged_at, kills = time.monotonic(), len(self.kills)
                for _ in range(int(HANG_SECONDS / 0.5)):  # poll for the driver's reset
                    if not modem.hung:
                        break
                    await asyncio.sleep(0.5)
                if modem.hung:  # the ladder did not reach +CFUN=1,1: a USB power cut ends it
                    if len(self.kills) == kills:
                        self.counts["hang not reset by the driver (power cut)"] += 1
                    else:
                        self.counts["hang not reset, the daemon restarted meanwhile"] += 1
                    await modem.power_cycle()
                else:
                    self.hang_resets.append(time.monotonic() - wedged_at)
            elif kind == "hang_briefly":
                modem.hang(until_reboot=False, recover_after=rng.uniform(1.0, 6.0))
                await asyncio.sleep(7.0)
            elif kind == "reboot":
                await modem.reboot()
            elif kind == "garbage":
                for _ in range(rng.randint(1, 4)):
                    data = rng.choice(
                        [
                            rng.randbytes(rng.randint(1, 64)),
                            b"\r\nOK\r\n",
                            b"\r\n+CMS ERROR: 500\r\n",
                            b'\r\n+CMTI: "SM",\r\n',
                            b"\x00\xff\r\nERROR\r\n",
                            b"AT+CMGD=1\r",
                        ]
                    )
                    modem.send_garbage(data, mid_reply=rng.random() < 0.4)
                    await asyncio.sleep(rng.uniform(0.0, 1.0))
            elif kind == "slow":
                modem.reply_delay = rng.uniform(0.2, 0.8)
                await asyncio.sleep(rng.uniform(2.0, 10.0))
                modem.reply_delay = 0.0
        finally:
            slot.fault = None

    async def market_fault(self, rng: random.Random) -> None:
        kind = rng.choice(["flaky", "throttle", "error", "down", "flaky"])
        seconds = rng.uniform(2.0, 10.0)
        if kind == "down":
            await self.market_down(seconds)
            return
        self.counts[f"fault market_{kind}"] += 1
        self.market_mode = kind
        try:
            await asyncio.sleep(seconds)
        finally:
            self.market_mode = "healthy"

    async def restart(self, rng: random.Random) -> None:
        await self.kill_daemon()
        await asyncio.sleep(rng.uniform(0.0, 3.0))  # down for a while
        await self.start_daemon()

    async def fault_loop(self, until: float, kills_until: float) -> None:
        rng = random.Random(f"{self.seed}-faults")
        next_kill = time.monotonic() + rng.uniform(8.0, 20.0)
        market_task: asyncio.Task[None] | None = None
        kinds = ["unplug", "hang", "hang_briefly", "reboot", "garbage", "garbage", "slow"]
        while time.monotonic() < until:
            await asyncio.sleep(rng.uniform(0.3, 2.0))  # pacing
            now = time.monotonic()
            if self.proc is not None and self.proc.returncode is not None and self.up.is_set():
                raise AssertionError(
                    f"the daemon died by itself ({self.proc.returncode}); {self.log_tail()}"
                )
            if now >= next_kill and now < kills_until:
                await self.restart(rng)
                next_kill = time.monotonic() + rng.uniform(10.0, 25.0)
                continue
            if (market_task is None or market_task.done()) and rng.random() < 0.25:
                market_task = self.spawn(self.market_fault(rng), "market fault")
                continue
            healthy = [s for s in self.slots if s.fault is None]
            if len(self.slots) - len(healthy) >= MAX_FAULTY_MODEMS or not healthy:
                continue
            slot = rng.choice(healthy)
            self.spawn(self.modem_fault(rng, slot, rng.choice(kinds)), f"fault {slot.index}")
        if market_task is not None:
            await market_task

    async def rss_loop(self) -> None:
        while True:
            proc = self.proc
            if proc is not None and proc.returncode is None and self.up.is_set():
                rss = read_rss_kb(proc.pid)
                if rss is not None:
                    self.rss.append((time.monotonic(), proc.pid, rss))
            await asyncio.sleep(1.0)  # sampling period

    # --- the run ------------------------------------------------------------------------------

    async def traffic(self) -> None:
        start = time.monotonic()
        until = start + self.seconds
        kills_until = start + self.seconds * KILL_SHARE
        sampler = self.spawn(self.rss_loop(), "rss")
        workers = [self.spawn(self.client(n, until), f"client {n}") for n in range(CLIENTS)]
        workers.append(self.spawn(self.sms_loop(until), "sms"))
        workers.append(self.spawn(self.fault_loop(until, kills_until), "faults"))
        try:
            done, _ = await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        # Faults still running end now (as if their durations were over).
        faults = [t for t in self.tasks if t is not sampler]
        await asyncio.gather(*faults, return_exceptions=True)
        sampler.cancel()

    async def heal(self) -> None:
        """No more faults: the marketplace up and healthy, every modem plugged and answering."""
        self.market_mode = "healthy"
        for slot in self.slots:
            modem = slot.modem
            if modem.power is PowerState.UNPLUGGED:
                await modem.replug()
                self._link(slot)
            if modem.hung:
                modem.unhang()
            modem.reply_delay = 0.0
        if self.proc is None or self.proc.returncode is not None:
            await self.start_daemon()

    async def until(self, what: str, condition: Callable[[], Any], seconds: float) -> bool:
        """Poll (the marketplace's record, the database, the modems) until `condition()`."""
        deadline = time.monotonic() + seconds
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return True
            if time.monotonic() > deadline:
                self.violation(f"quiescence: {what} not reached in {seconds:.0f}s")
                return False
            await asyncio.sleep(0.5)

    async def finish_unsure(self, rng: random.Random, deadline: float) -> None:
        """The marketplace sends every FINISH whose answer it has not got (again)."""
        while self.unsure and time.monotonic() < deadline:
            activation = self.unsure.pop()
            try:
                await self.finish_one(activation)
            except Lost:
                await asyncio.sleep(0.5)  # pacing the marketplace's retries
        for activation in self.unsure:
            self.violation(f"FINISH #{activation.id} never answered")

    async def quiesce(self) -> None:
        await self.heal()
        deadline = time.monotonic() + QUIESCE_SECONDS
        rng = random.Random(f"{self.seed}-quiesce")
        await self.finish_unsure(rng, deadline)
        # Every SMS injected on a leased number arrives.
        if not await self.until(
            "every SMS on a leased number pushed",
            lambda: all(i.pushed_at is not None for i in self.injected if i.activation is not None),
            max(10.0, deadline - time.monotonic()),
        ):
            missing = [i for i in self.injected if i.activation and i.pushed_at is None]
            for i in missing[:20]:
                slot = self.slots[i.modem]
                self.violation(
                    f"SMS #{i.seq} on {i.number} (activation #{i.activation.id}, modem "
                    f"{slot.modem.name}, {i.parts} part(s), held {slot.modem.held_sms}) "
                    f"never pushed: {i.text!r}"
                )
            self.counts["sms never pushed"] = len(missing)
            return
        # Close everything still open (the orphans too), then every number is live and free.
        for activation in list(self.open.values()):
            del self.open[activation.number]
            activation.finish_status = rng.choice([3, 4])
            activation.finish_sent_at = time.monotonic()
            self.unsure.append(activation)
        await self.finish_unsure(rng, deadline)
        try:
            await self.wait_all_live("after the faults")
        except AssertionError as exc:
            self.violation(str(exc))
        else:
            await self.check_services_exact()
        # Every SMS has been read off its modem, and every queued push has been accepted.
        await self.until(
            "every modem's SMS storage empty",
            lambda: all(self.modem_empty(slot.modem) for slot in self.slots),
            max(10.0, deadline - time.monotonic()),
        )
        await self.until(
            "the push outbox drained",
            self.outbox_drained,
            max(10.0, deadline - time.monotonic()),
        )

    async def check_services_exact(self) -> None:
        """At rest, GET_SERVICES counts exactly the numbers the rules leave issuable per service
        (computed here from the activations on disk: barred by 1/3, or MAX_ISSUES cancelled)."""
        rows = await asyncio.to_thread(
            self.query, "SELECT number, service, finish_status FROM activations WHERE rent = 0"
        )
        barred: set[tuple[str, str]] = set()
        issues: Counter[tuple[str, str]] = Counter()
        for number, service, status in rows:
            if status in (1, 3):
                barred.add((number, service))
            elif status is not None:
                issues[(number, service)] += 1
        expected: Counter[tuple[str, str, str]] = Counter()
        for slot in self.slots:
            for service in self.services:
                key = (slot.number, service)
                if key not in barred and issues[key] < MAX_ISSUES:
                    expected[(*slot.group, service)] += 1
        report = await self.services_report()
        for entry in report.get("countryList", []):
            for operator, counts in entry["operatorMap"].items():
                if operator == "any":
                    continue
                for service in self.services:
                    want = expected[(entry["country"], operator, service)]
                    if counts.get(service) != want:
                        self.violation(
                            f"at rest GET_SERVICES {entry['country']}/{operator}/{service} = "
                            f"{counts.get(service)}, the rules leave {want}"
                        )
        self.counts["services checked at rest"] = len(self.services)

    @staticmethod
    def modem_empty(modem: SimulatedModem) -> bool:
        if modem.held_sms:
            return False
        return all(not modem.stored_messages(mem) for mem in modem.profile.storages)

    # --- the database ------------------------------------------------------------------------

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.db, timeout=10)
        try:
            conn.execute("PRAGMA query_only = 1")
            return conn.execute(sql).fetchall()
        finally:
            conn.close()

    async def outbox_drained(self) -> bool:
        rows = await asyncio.to_thread(
            self.query, "SELECT count(*) FROM push_outbox WHERE state = 'pending'"
        )
        return rows[0][0] == 0

    async def check_database_after_kill(self, kill: Kill) -> None:
        """What the killed daemon left on disk keeps every promise it made."""
        rows = await asyncio.to_thread(
            self.query,
            "SELECT id, number, service, rent, finished_at, finish_status FROM activations",
        )
        self.check_activations_on_disk(rows, f"after kill {len(self.kills)}")
        on_disk = {row[0]: row for row in rows}
        for activation_id, number, service, _rent, finished_at, _ in rows:
            if finished_at is not None or activation_id in self.activations:
                continue
            # Issued, but the answer was lost with the process: the marketplace never knew it.
            # Like an operator would, the test closes it later (status 4).
            orphan = Activation(activation_id, number, service, kill.at, kill.at, orphan=True)
            self.activations[activation_id] = orphan
            self.counts["orphan activations"] += 1
            holder = self.open.get(number)
            if holder is not None:
                self.violation(f"{number}: open as #{holder.id} and as orphan #{activation_id}")
                continue
            self.open[number] = orphan
        del on_disk
        # Pushes the marketplace accepted but the daemon did not record may be sent once more.
        pushed = dict(await asyncio.to_thread(self.query, "SELECT sms_id, state FROM push_outbox"))
        kill.checked_at = time.monotonic()
        accepted = {
            p.body.get("smsId") for _, p in self.pushes if p.reply == (200, {"status": "SUCCESS"})
        }
        kill.lost_acks = {sms_id for sms_id in accepted if pushed.get(sms_id) != "pushed"}
        self.counts["pushes accepted but not recorded at a kill"] += len(kill.lost_acks)

    def check_activations_on_disk(self, rows: list[tuple[Any, ...]], when: str) -> None:
        on_disk = {row[0]: row for row in rows}
        open_numbers = Counter(row[1] for row in rows if row[4] is None)
        for number, count in open_numbers.items():
            if count > 1:
                self.violation(f"{when}: {number} is in {count} open activations on disk")
        for activation in self.activations.values():
            row = on_disk.get(activation.id)
            if row is None:
                self.violation(f"{when}: activation #{activation.id} answered SUCCESS, not on disk")
                continue
            _, number, service, _rent, finished_at, finish_status = row
            if number != activation.number or service != activation.service:
                self.violation(f"{when}: #{activation.id} on disk is {number}/{service}")
            if activation.finished_at is not None:
                if finished_at is None:
                    self.violation(f"{when}: FINISH of #{activation.id} answered, open on disk")
                elif finish_status != activation.finish_status:
                    self.violation(
                        f"{when}: #{activation.id} finished {activation.finish_status}, "
                        f"disk says {finish_status}"
                    )
            elif activation.finish_sent_at is None and finished_at is not None:
                self.violation(f"{when}: #{activation.id} closed on disk, no FINISH was sent")

    # --- the verdict ------------------------------------------------------------------------

    async def check(self) -> None:
        await self.stop_daemon()
        rows = await asyncio.to_thread(
            self.query,
            "SELECT id, number, service, rent, finished_at, finish_status FROM activations",
        )
        self.check_activations_on_disk(rows, "at the end")
        history = await asyncio.to_thread(
            self.query,
            "SELECT id, number, service, rent, created_at, finished_at, finish_status "
            "FROM activations ORDER BY created_at, id",
        )
        self.check_history_on_disk(history)
        self.check_record_intervals()
        self.check_pushes()
        stored = await asyncio.to_thread(
            self.query, "SELECT id, number, text, decode_error FROM sms"
        )
        self.check_sms_on_disk(stored)
        self.check_memory()
        for text in self.unexpected[:20]:
            self.violation(f"a request failed while the daemon was up: {text}")

    def check_history_on_disk(self, rows: list[tuple[Any, ...]]) -> None:
        """On the daemon's own clock: never two open at once, never issued after 1/3 or 4 issues."""
        by_number: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in rows:
            by_number[row[1]].append(row)
        for number, activations in by_number.items():
            previous_end = None
            previous_id = None
            for activation_id, _, _, _, created_at, finished_at, _ in activations:
                if previous_end is None and previous_id is not None:
                    self.violation(f"{number}: #{activation_id} created while #{previous_id} open")
                elif previous_end is not None and created_at < previous_end:
                    self.violation(
                        f"{number}: #{activation_id} created {previous_end - created_at:.3f}s "
                        f"before #{previous_id} was finished"
                    )
                previous_end, previous_id = finished_at, activation_id
            barred: dict[str, float] = {}
            issues: dict[str, list[float]] = defaultdict(list)
            for activation_id, _, service, rent, created_at, finished_at, status in activations:
                if rent:
                    continue
                if service in barred and barred[service] <= created_at:
                    self.violation(f"{number}: #{activation_id} issued for {service} after 1/3")
                if sum(1 for t in issues[service] if t <= created_at) >= MAX_ISSUES:
                    self.violation(f"{number}: #{activation_id} issued for {service} too often")
                if finished_at is not None and status in (1, 3):
                    barred.setdefault(service, finished_at)
                elif finished_at is not None and status is not None:
                    issues[service].append(finished_at)

    def check_record_intervals(self) -> None:
        """On the test's clock: intervals in which an activation was surely open never overlap."""
        by_number: dict[str, list[Activation]] = defaultdict(list)
        for activation in self.activations.values():
            by_number[activation.number].append(activation)
        for number, activations in by_number.items():
            activations.sort(key=lambda a: a.answered_at)
            for before, after in itertools.pairwise(activations):
                closed = before.finish_sent_at if before.finish_sent_at is not None else math.inf
                if after.answered_at >= closed:
                    continue
                self.violation(
                    f"{number}: #{after.id} answered while #{before.id} was open (no FINISH sent)"
                )

    def check_pushes(self) -> None:
        by_sms: dict[Any, list[tuple[float, ReceivedPush]]] = defaultdict(list)
        ids_by_text: dict[str, set[Any]] = defaultdict(set)
        for at, push in self.pushes:
            by_sms[push.body.get("smsId")].append((at, push))
            ids_by_text[push.body.get("text")].add(push.body.get("smsId"))
            self.counts["pushes received"] += 1
            if push.reply == (200, {"status": "SUCCESS"}):
                self.counts["pushes accepted"] += 1
        self.counts["pushes refused by the fake (retried)"] = (
            self.counts["pushes received"] - self.counts["pushes accepted"]
        )
        for sms_id, pushes in by_sms.items():
            accepted_at = None
            for at, push in pushes:
                body = push.body
                if not isinstance(sms_id, int) or not isinstance(body.get("phone"), int):
                    self.violation(f"push {body!r}: smsId and phone must be integers")
                if MISSING_PART in str(body.get("text")):
                    self.violation(f"push of SMS {sms_id} has a missing-part mark: {body!r}")
                if accepted_at is not None:
                    excused = any(
                        accepted_at < kill.checked_at < at and sms_id in kill.lost_acks
                        for kill in self.kills
                    )
                    if excused:
                        self.counts["pushes again after an unrecorded SUCCESS (kill)"] += 1
                    else:
                        self.violation(f"SMS {sms_id} pushed again after SUCCESS: {body!r}")
                if push.reply == (200, {"status": "SUCCESS"}):
                    accepted_at = at
        for text, ids in ids_by_text.items():
            if len(ids) > 1:
                self.violation(f"one SMS pushed under several smsIds {sorted(ids)}: {text!r}")
            if text not in self.by_text:
                self.violation(f"pushed an SMS nobody sent (smsIds {sorted(ids)}): {text!r}")
        by_text: dict[Any, list[tuple[float, ReceivedPush]]] = defaultdict(list)
        for at, push in self.pushes:
            by_text[push.body.get("text")].append((at, push))
        for injected in self.injected:
            pushes = by_text.get(injected.text, [])
            if injected.activation is None:
                if pushes:
                    self.counts["sms on unleased numbers pushed (leased before read)"] += 1
                for _, push in pushes:
                    if push.body.get("phone") != int(injected.number):
                        self.violation(f"SMS #{injected.seq} pushed for the wrong number")
                continue
            if not pushes:
                continue  # reported by the quiescence phase
            activation = injected.activation
            for _, push in pushes:
                body = push.body
                if body.get("phone") != int(injected.number):
                    self.violation(f"SMS #{injected.seq} pushed with phone {body.get('phone')}")
                if body.get("phoneFrom") != injected.sender:
                    self.violation(
                        f"SMS #{injected.seq} from {injected.sender!r} pushed as from "
                        f"{body.get('phoneFrom')!r}"
                    )
                rent = body.get("service") == "rent" and push.path.endswith("_RENT")
                if rent != activation.rent:
                    self.violation(f"SMS #{injected.seq}: rent push {rent}, #{activation.id}")
            if not any(p.reply == (200, {"status": "SUCCESS"}) for _, p in pushes):
                self.violation(f"SMS #{injected.seq} never accepted: {injected.text!r}")

    def check_sms_on_disk(self, rows: list[tuple[Any, ...]]) -> None:
        """Every SMS injected (leased or not) is on disk exactly once with its exact text."""
        texts = Counter(row[2] for row in rows)
        for injected in self.injected:
            count = texts.get(injected.text, 0)
            if count != 1:
                self.violation(
                    f"SMS #{injected.seq} on {injected.number} is on disk {count} times: "
                    f"{injected.text!r}"
                )
        self.counts["sms on disk"] = len(rows)
        for sms_id, number, text, error in rows:
            if MISSING_PART in text:
                self.violation(f"an SMS on {number} was flushed incomplete: {text!r}")
            elif text not in self.by_text:
                self.violation(f"SMS {sms_id} on {number} on disk, nobody sent it: {text!r}")
            elif error is not None and error.startswith("incomplete"):
                # Every part arrived, yet the group was joined by the multipart timeout.
                if KNOWN_LATE_MULTIPART_JOIN:
                    self.counts["known issue: complete multipart joined by the timeout"] += 1
                else:
                    self.violation(f"SMS {sms_id} on {number} joined by the timeout ({error})")

    def check_memory(self) -> None:
        """RSS did not grow without bound: over the run, and over the last (longest) process."""
        self.counts["rss samples"] = len(self.rss)
        for label, samples in (
            ("the run", [kb for _, _, kb in self.rss]),
            ("the last process", [kb for _, pid, kb in self.rss if pid == self.rss[-1][1]]),
        ):
            if len(samples) < 12:
                continue
            third = len(samples) // 3
            middle = statistics.median(samples[third : 2 * third])
            last = max(samples[-5:])
            self.rss_summary.append((label, middle, last, max(samples)))
            if last >= middle * RSS_FACTOR + RSS_SLACK_KB:
                self.violation(
                    f"daemon RSS grew over {label}: mid median {middle:.0f} kB, last {last} kB"
                )
        last_process = [(t, kb) for t, pid, kb in self.rss if self.rss and pid == self.rss[-1][1]]
        if len(last_process) >= 12:
            (t0, kb0), (t1, kb1) = last_process[len(last_process) // 3], last_process[-1]
            rate = (kb1 - kb0) / max(t1 - t0, 1.0) * 60
            self.counts["rss growth of the last process, kB per minute"] = round(rate)
            if t1 - t0 >= 20.0 and rate > RSS_MAX_GROWTH_KB_PER_MINUTE:
                self.violation(f"daemon RSS grows {rate:.0f} kB a minute under steady load")

    def report(self) -> str:
        lines = [f"soak: seed={self.seed} seconds={self.seconds:.0f} modems={MODEMS}"]
        for name in sorted(self.counts):
            lines.append(f"  {name}: {self.counts[name]}")
        if self.hang_resets:
            lines.append(
                f"  wedged modems reset by the driver after {min(self.hang_resets):.1f}"
                f"-{max(self.hang_resets):.1f}s (median "
                f"{statistics.median(self.hang_resets):.1f}s)"
            )
        for label, middle, last, peak in self.rss_summary:
            lines.append(
                f"  daemon RSS over {label}: mid median {middle / 1024:.1f} MB, "
                f"last {last / 1024:.1f} MB, peak {peak / 1024:.1f} MB"
            )
        return "\n".join(lines)


async def run_soak(folder: Path, seconds: float, seed: int) -> Soak:
    """The whole soak; raises AssertionError listing every invariant violation found."""
    print(f"soak: seed={seed} seconds={seconds:.0f} (rerun: --soak-seed {seed})", flush=True)
    soak = Soak(folder, seconds, seed)
    try:
        await soak.start()
        await soak.traffic()
        await soak.quiesce()
        await soak.check()
    finally:
        await soak.close()
        print(soak.report(), flush=True)
    assert not soak.violations, (
        f"{soak.counts['violations']} invariant violation(s), seed {seed}:\n"
        + "\n".join(soak.violations)
    )
    return soak
