"""The `simfarm` command line: run the daemon, check a configuration, run the demo, poke the
simulator, and look after a running daemon through its admin endpoint (`modems`, `activations`,
`sms`, `release`, `trace`, `simbank`).

The operator commands find the admin endpoint with `--admin http://HOST:PORT`, else
`$SIMFARM_ADMIN`, else the `[admin]` table of `--config FILE` (or `$SIMFARM_CONFIG`), else
http://127.0.0.1:8081. Before they show or change anything they check who answers: simfarm, and,
when a configuration file was named (by --config, or by $SIMFARM_CONFIG when it gave the
address), the daemon started with that file; anything else is refused. They print tables that
fit 100 columns, or the endpoint's JSON with `--json`.

Exit codes: 0 success, 1 the action failed (e.g. the simulator refused a request, the daemon is
not running), 2 bad usage or a configuration that cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from gateway.config import ConfigError, config_warnings, load_admin_config, load_config
from gateway.ops.admin_identity import DaemonIdentity, config_identity
from gateway.ops.logs import quote_value, setup_logging

if TYPE_CHECKING:
    from gateway.config import Config

#: The environment variable naming the configuration file when --config is not given.
CONFIG_ENVIRONMENT_VARIABLE = "SIMFARM_CONFIG"
#: The environment variable naming the simulated farm's control address.
SIM_CONTROL_ENVIRONMENT_VARIABLE = "SIMFARM_SIM_CONTROL"
#: Where `simfarm demo` serves its simulator's control socket unless told otherwise.
DEFAULT_SIM_CONTROL = "var/simfarm-sim.sock"
#: The environment variable naming the running daemon's admin endpoint.
ADMIN_ENVIRONMENT_VARIABLE = "SIMFARM_ADMIN"
#: The admin endpoint when nothing else names it (the [admin] table's defaults).
DEFAULT_ADMIN = "http://127.0.0.1:8081"
#: How long an operator command waits for the daemon's answer.
ADMIN_TIMEOUT_SECONDS = 10.0
#: Tables are cut to this many columns.
TABLE_WIDTH = 100
#: SMS listed by `simfarm sms` unless --last says otherwise, and the most it may ask for.
DEFAULT_SMS_LAST = 20
MAX_SMS_LAST = 1000

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

log = logging.getLogger(__name__)


def version() -> str:
    try:
        return metadata.version("simfarm")
    except metadata.PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simfarm",
        description="Sell SMS activations from a farm of USB GSM modems "
        "through Onlinesim's Reseller API v1.",
    )
    parser.add_argument("--version", action="version", version=f"simfarm {version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run the daemon")
    run.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help=f"the configuration file (default: ${CONFIG_ENVIRONMENT_VARIABLE})",
    )

    check = commands.add_parser("check-config", help="check a configuration file and exit")
    check.add_argument(
        "config",
        nargs="?",
        metavar="FILE",
        help=f"the configuration file (default: ${CONFIG_ENVIRONMENT_VARIABLE})",
    )

    # `demo` is dispatched before parsing (its options are its own); listed here for --help.
    commands.add_parser("demo", help="the whole job on simulated modems", add_help=False)

    sim = commands.add_parser("sim", help="talk to a running simulated farm (see `demo`)")
    sim_commands = sim.add_subparsers(dest="sim_command", metavar="SIM_COMMAND")
    send = sim_commands.add_parser("send", help="deliver an SMS to a simulated modem")
    send.add_argument("--to", required=True, metavar="NUMBER", help="the receiving number")
    send.add_argument("--from", dest="sender", required=True, metavar="SENDER")
    send.add_argument("--text", required=True)
    send.add_argument(
        "--control",
        metavar="ADDRESS",
        help="the simulator's control socket path or tcp://HOST:PORT "
        f"(default: ${SIM_CONTROL_ENVIRONMENT_VARIABLE}, else {DEFAULT_SIM_CONTROL})",
    )
    _add_operator_commands(commands)
    return parser


def _add_operator_commands(commands: Any) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--admin",
        metavar="URL",
        help=f"the running daemon's admin endpoint, like {DEFAULT_ADMIN} "
        f"(default: ${ADMIN_ENVIRONMENT_VARIABLE}, else [admin] of --config, else {DEFAULT_ADMIN})",
    )
    common.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help=f"read the admin address from this file's [admin] table "
        f"(default: ${CONFIG_ENVIRONMENT_VARIABLE})",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")
    commands.add_parser(
        "modems", parents=[common], help="ports, SIMs, numbers, signal and state of every modem"
    )
    commands.add_parser("activations", parents=[common], help="open activations and their age")
    sms = commands.add_parser("sms", parents=[common], help="the latest SMS, with their texts")
    sms.add_argument(
        "--last",
        type=int,
        default=DEFAULT_SMS_LAST,
        metavar="N",
        help=f"how many (1-{MAX_SMS_LAST}, default {DEFAULT_SMS_LAST})",
    )
    release = commands.add_parser(
        "release",
        parents=[common],
        help="close an activation the marketplace forgot (no status, no history effect)",
    )
    release.add_argument("activation", type=int, metavar="ACTIVATION", help="the activation id")
    release.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    trace = commands.add_parser(
        "trace", parents=[common], help="log every byte of one modem port (event=at_trace)"
    )
    trace.add_argument("port", metavar="PORT", help="the modem's port, as `simfarm modems` shows")
    trace.add_argument("state", choices=("on", "off"), metavar="on|off")
    commands.add_parser(
        "simbank",
        parents=[common],
        help="SIM banks: active slot, SIM and next rotation per channel; rotations, failures",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit code (argparse's own exits included)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:  # everything after `demo` is the demo's own, options included
        return _demo(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.command == "run":
        return _run(args.config)
    if args.command == "check-config":
        return _check_config(args.config)
    if args.command == "sim" and args.sim_command == "send":
        return _sim_send(args.to, args.sender, args.text, args.control)
    if args.command in OPERATOR_COMMANDS:
        return _operator(args)
    _error("a command is needed" + ("" if args.command is None else " after `sim`: send"))
    parser.print_usage(sys.stderr)
    return EXIT_USAGE


def _config_path(given: str | None, usage: str) -> str | None:
    """The file given, else $SIMFARM_CONFIG; `usage` shows how the command takes a file."""
    path = given or os.environ.get(CONFIG_ENVIRONMENT_VARIABLE)
    if not path:
        _error(f"no configuration file: run `{usage}` or set ${CONFIG_ENVIRONMENT_VARIABLE}")
        return None
    return path


def _load(given: str | None, usage: str) -> Config | None:
    path = _config_path(given, usage)
    if path is None:
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # a line per mistake, each naming the file and the key
        return None


def _run(given: str | None) -> int:
    config = _load(given, "simfarm run --config FILE")
    if config is None:
        return EXIT_USAGE
    from gateway.ops.listen_check import cannot_listen, listen_failure

    server = config.server
    busy = cannot_listen(server.host, server.port)
    if busy is not None:  # said before anything starts (the admin port is the daemon's first step)
        what = "the marketplace API"
        _error(listen_failure(what, "server", server.host, server.port, config.source, busy))
        return EXIT_FAILED
    setup_logging(config.log.level)
    for warning in config_warnings(config):
        log.warning("event=config_warning detail=%s", quote_value(warning))
    from gateway.daemon import run_daemon
    from gateway.ops.admin import AdminListenError

    try:
        return asyncio.run(run_daemon(config))
    except AdminListenError as exc:
        _error(str(exc))
        return EXIT_FAILED


def _check_config(given: str | None) -> int:
    config = _load(given, "simfarm check-config FILE")
    if config is None:
        return EXIT_USAGE
    print(f"OK: {config.source}")
    for warning in config_warnings(config):
        print(f"warning: {warning}")
    return EXIT_OK


def _demo(demo_args: list[str]) -> int:
    try:
        from gateway.demo.demo import main as demo_main
    except ImportError as exc:
        if exc.name not in ("gateway.demo.demo", "gateway"):
            raise
        _error("the demo is not part of this installation (gateway.demo.demo is missing)")
        return EXIT_USAGE
    return demo_main(demo_args)


def _sim_send(to: str, sender: str, text: str, control: str | None) -> int:
    address = control or os.environ.get(SIM_CONTROL_ENVIRONMENT_VARIABLE) or DEFAULT_SIM_CONTROL
    try:
        from drivers.simulator import send_control
    except ImportError as exc:
        _error(f"the modem simulator is not available ({exc})")
        return EXIT_USAGE
    request = {"cmd": "send", "to": to, "from": sender, "text": text}
    try:
        reply = send_control(address, request)
    except (OSError, RuntimeError, ValueError) as exc:
        # ControlError (a RuntimeError) says which address could not be reached.
        _error(f"{exc}; is `simfarm demo` running? (--control ADDRESS)")
        return EXIT_FAILED
    if not reply.get("ok"):
        _error(f"the simulator refused: {reply.get('error', reply)}")
        return EXIT_FAILED
    print(f"sent to {reply.get('modem', to)}")
    return EXIT_OK


def _error(message: str) -> None:
    print(f"simfarm: {message}", file=sys.stderr)


# --- the operator commands: clients of the running daemon's admin endpoint --------------------


class AdminUnreachable(Exception):
    """Nothing answers at the admin address (the message says what to do)."""


class AdminRefused(Exception):
    """The daemon answered with an error."""


class WrongDaemon(Exception):
    """What answers is not simfarm, or another daemon than the configuration's."""


def admin_address(
    given: str | None, config: str | None, environ: dict[str, str] | None = None
) -> str:
    """Where the running daemon's admin endpoint is (see the module docstring for the order)."""
    environ = dict(os.environ) if environ is None else environ
    address = given or environ.get(ADMIN_ENVIRONMENT_VARIABLE)
    if not address:
        path = config or environ.get(CONFIG_ENVIRONMENT_VARIABLE)
        if path:
            admin = load_admin_config(path, environ)  # ConfigError for an unusable file
            address = f"http://{_connectable(admin.host)}:{admin.port}"
        else:
            address = DEFAULT_ADMIN
    if "://" not in address:
        address = f"http://{address}"
    return address.rstrip("/")


def expected_config(
    given_admin: str | None, config: str | None, environ: dict[str, str] | None = None
) -> Path | None:
    """The configuration file the daemon must have been started with, when one was named: the
    --config file, else $SIMFARM_CONFIG when it (and not --admin or $SIMFARM_ADMIN) gave the
    address."""
    environ = dict(os.environ) if environ is None else environ
    if config:
        return config_identity(config)
    if given_admin or environ.get(ADMIN_ENVIRONMENT_VARIABLE):
        return None
    path = environ.get(CONFIG_ENVIRONMENT_VARIABLE)
    return config_identity(path) if path else None


def _connectable(host: str) -> str:
    """A listen address as one to connect to: any-address means this machine."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "[::1]"
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


class AdminClient:
    """The daemon's admin endpoint over HTTP (loopback, no proxies).

    Every reply must say it comes from simfarm and, when `expected` names a configuration file,
    from the daemon started with it (WrongDaemon otherwise). A request that changes something
    is sent only after a reading one has shown who answers.
    """

    def __init__(
        self, address: str, timeout: float = ADMIN_TIMEOUT_SECONDS, expected: Path | None = None
    ) -> None:
        self.address = address
        self.timeout = timeout
        self.expected = expected
        self._checked = False

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        if method != "GET" and not self._checked:
            self._exchange("GET", "/")
        reply = self._exchange(method, path, **kwargs)
        try:
            payload = reply.json()
        except ValueError:
            payload = None
        if reply.status_code >= 400:
            if isinstance(payload, dict) and "error" in payload:
                message = str(payload["error"])
            else:
                message = f"HTTP {reply.status_code} from {self.address}{path}"
            raise AdminRefused(message)
        if payload is None:
            raise AdminRefused(f"{self.address}{path} did not answer JSON: is this simfarm?")
        return payload

    def _exchange(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request; the reply once its sender is known to be the right daemon."""
        import httpx

        try:
            with httpx.Client(
                base_url=self.address, timeout=self.timeout, trust_env=False
            ) as client:
                reply = client.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise AdminUnreachable(
                f"simfarm is not running: nothing answers on {self.address} "
                "(start it with `systemctl start simfarm`)"
            ) from None
        except httpx.TimeoutException:
            raise AdminUnreachable(
                f"simfarm does not answer on {self.address} within {self.timeout:g} s "
                "(is it stuck? see `journalctl -u simfarm`)"
            ) from None
        except httpx.HTTPError as exc:
            raise AdminUnreachable(f"cannot talk to simfarm on {self.address}: {exc}") from None
        self._check(DaemonIdentity.from_headers(reply.headers))
        return reply

    def _check(self, identity: DaemonIdentity | None) -> None:
        if identity is None:
            raise WrongDaemon(
                f"what answers on {self.address} is not simfarm's admin endpoint; another "
                "program holds the port (see [admin] in the configuration, or pass --admin URL)"
            )
        if self.expected is not None and identity.config != self.expected:
            raise WrongDaemon(
                f"the simfarm answering on {self.address} runs {identity.describe()}, not "
                f"{self.expected}; it holds the [admin] port of {self.expected}: give one of "
                "the two another [admin] port"
            )
        self._checked = True


OPERATOR_COMMANDS = ("modems", "activations", "sms", "release", "trace", "simbank")


def _operator(args: argparse.Namespace) -> int:
    try:
        address = admin_address(args.admin, args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    scheme = urlsplit(address).scheme
    if scheme not in ("http", "https"):
        _error(f"--admin must be an http:// URL (got {address})")
        return EXIT_USAGE
    client = AdminClient(address, expected=expected_config(args.admin, args.config))
    command: Callable[[AdminClient, argparse.Namespace], int] = {
        "modems": _modems,
        "activations": _activations,
        "sms": _sms,
        "release": _release,
        "trace": _trace,
        "simbank": _simbank,
    }[args.command]
    try:
        return command(client, args)
    except AdminUnreachable as exc:
        print(exc, file=sys.stderr)
        return EXIT_FAILED
    except (AdminRefused, WrongDaemon) as exc:
        _error(str(exc))
        return EXIT_FAILED


def _print_json(payload: Any) -> None:
    print(json.dumps(payload, ensure_ascii=False, indent=2))


def _modems(client: AdminClient, args: argparse.Namespace) -> int:
    payload = client.request("GET", "/modems")
    if args.json:
        _print_json(payload)
        return EXIT_OK
    rows = payload["modems"]
    if not rows:
        patterns = list(payload.get("ports") or {})
        named = ", ".join(patterns) if patterns else "none is configured"
        print(f"no modems: no configured [[modems]] port exists ({named}); `ls` it to check")
        return EXIT_OK
    print(
        render_table(
            [
                Column("PORT", lambda r: r["port"], cut_left=True),
                Column("ICCID", lambda r: r["iccid"], keep=True),
                Column("NUMBER", lambda r: r["number"], keep=True),
                Column("NETWORK", _network),
                Column("SIG", lambda r: r["signal"]),
                Column("MEM", lambda r: _storage(r["storage"])),
                Column("STATE", lambda r: r["state"], keep=True),
                Column("LAST SMS", lambda r: _ago(r["last_sms_age_seconds"])),
            ],
            rows,
        )
    )
    # Why a modem is not ready, one line each under the table (the model is in --json).
    details = [row for row in rows if row["detail"]]
    if details:
        print()
        for row in details:
            print(_fit(f"{row['port']}: {_cell_text(row['detail'])}", TABLE_WIDTH).rstrip())
    return EXIT_OK


def _activations(client: AdminClient, args: argparse.Namespace) -> int:
    payload = client.request("GET", "/activations")
    if args.json:
        _print_json(payload)
        return EXIT_OK
    rows = payload["activations"]
    if not rows:
        print("no open activations")
        return EXIT_OK
    print(
        render_table(
            [
                Column("ID", lambda r: r["activation_id"], keep=True),
                Column("NUMBER", lambda r: r["number"], keep=True),
                Column("SERVICE", lambda r: r["service"]),
                Column("KIND", lambda r: r["kind"]),
                Column("COUNTRY", lambda r: r["country"]),
                Column("OPERATOR", lambda r: r["operator"]),
                Column("SUM", lambda r: r["sum"]),
                Column("AGE", lambda r: _duration(r["age_seconds"]), keep=True),
            ],
            rows,
        )
    )
    return EXIT_OK


def _sms(client: AdminClient, args: argparse.Namespace) -> int:
    if not 1 <= args.last <= MAX_SMS_LAST:
        _error(f"--last must be from 1 to {MAX_SMS_LAST} (got {args.last})")
        return EXIT_USAGE
    payload = client.request("GET", "/sms", params={"last": args.last})
    if args.json:
        _print_json(payload)
        return EXIT_OK
    rows = payload["sms"]
    if not rows:
        print("no SMS received yet")
        return EXIT_OK
    print(
        render_table(
            [
                Column("ID", lambda r: r["id"], keep=True),
                Column("RECEIVED (UTC)", lambda r: _utc(r["received_at"]), keep=True),
                Column("NUMBER", lambda r: r["number"]),
                Column("SENDER", lambda r: r["sender"]),
                Column("ACTIVATION", lambda r: r["activation_id"]),
                Column("PUSH", lambda r: r["push_state"]),
                Column("TEXT", lambda r: r["text"]),
            ],
            rows,
        )
    )
    return EXIT_OK


def _release(client: AdminClient, args: argparse.Namespace) -> int:
    activation_id = args.activation
    if not args.yes:
        if not sys.stdin.isatty():
            _error(
                f"not releasing activation {activation_id} without confirmation: stdin is not "
                "a terminal (pass --yes)"
            )
            return EXIT_USAGE
        open_ones = client.request("GET", "/activations")["activations"]
        known = next((a for a in open_ones if a["activation_id"] == activation_id), None)
        what = (
            f"activation {activation_id} (number {known['number']}, {known['service']}, "
            f"open for {_duration(known['age_seconds'])})"
            if known
            else f"activation {activation_id} (not among the open ones)"
        )
        print(
            f"Release {what}? It is closed with no status and its number is free to be "
            "issued again."
        )
        try:
            answer = input("Release it? [y/N] ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("not released")
            return EXIT_FAILED
    payload = client.request("POST", "/release", json={"activationId": activation_id})
    if args.json:
        _print_json(payload)
        return EXIT_OK
    released = payload["released"]
    print(
        f"released activation {released['activation_id']} "
        f"(number {released['number']}, {released['service']})"
    )
    return EXIT_OK


def _trace(client: AdminClient, args: argparse.Namespace) -> int:
    on = args.state == "on"
    payload = client.request("POST", "/trace", json={"port": args.port, "on": on})
    if args.json:
        _print_json(payload)
        return EXIT_OK
    if on:
        print(
            f"AT trace on for {args.port}: every byte in and out is logged as event=at_trace "
            f"(see `journalctl -u simfarm`); stop it with `simfarm trace {args.port} off`"
        )
        if not payload.get("driver_running"):
            print("no driver runs on that port right now; the trace starts with the next one")
    else:
        print(f"AT trace off for {args.port}")
    return EXIT_OK


#: The failure kinds of a rotation, in the order they happen, and their labels in the summary.
SIMBANK_FAILURE_KINDS = (
    ("S1", "not_applied"),
    ("S2", "wrong_landing"),
    ("S3", "sim_not_ready"),
    ("S4", "not_registered"),
)


def _simbank(client: AdminClient, args: argparse.Namespace) -> int:
    payload = client.request("GET", "/simbank")
    if args.json:
        _print_json(payload)
        return EXIT_OK
    boards = payload["boards"]
    if not boards:
        print("no SIM banks configured (see [[simbanks]])")
        return EXIT_OK
    rows = [
        {**channel, "board": board["board"]} for board in boards for channel in board["channels"]
    ]
    print(
        render_table(
            [
                Column("BOARD", lambda r: r["board"], cut_left=True),
                Column("CH", lambda r: r["channel"], keep=True),
                Column("SLOT", lambda r: r["active_slot"], keep=True),
                Column("ICCID", lambda r: r["iccid"], keep=True),
                Column("NUMBER", lambda r: r["number"], keep=True),
                Column("STATE", _channel_state, keep=True),
                Column("NEXT", lambda r: _next_rotation(r["next_rotation_in_seconds"])),
            ],
            rows,
        )
    )
    print()
    for board in boards:
        print(_fit(board_summary(board), TABLE_WIDTH).rstrip())
    return EXIT_OK


def _channel_state(row: dict[str, Any]) -> str:
    state = str(row["state"])
    if row.get("quarantined") and state != "quarantined":
        state += " (quarantined)"
    return state


def _next_rotation(seconds: float | None) -> str:
    return "-" if seconds is None else f"in {_duration(seconds)}"


def board_summary(board: dict[str, Any]) -> str:
    """One line per board: rotations, failures by kind, quarantined channels, 24 h live share."""
    rotations = board["rotations"]
    done = sum(rotations.values())
    by_result = ", ".join(f"{result} {n}" for result, n in sorted(rotations.items()))
    failures = board["failures"]
    kinds = " ".join(f"{label} {failures.get(kind, 0)}" for label, kind in SIMBANK_FAILURE_KINDS)
    share = board["live_share_24h"]
    line = (
        f"{board['board']}: rotations {done}; failures {kinds}; "
        f"quarantined {board['quarantined']}/{len(board['channels'])}; live 24h {share * 100:.0f}%"
    )
    return f"{line}; {by_result}" if by_result else line


# --- tables -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """A table column: its header, how a row gives its cell, and whether to spare it from cuts."""

    header: str
    cell: Callable[[dict[str, Any]], Any]
    keep: bool = False
    cut_left: bool = False  # keep the end of long cells (port paths differ at their end)


#: Narrowest a column is cut to.
MIN_COLUMN_WIDTH = 3
COLUMN_GAP = "  "


def render_table(
    columns: list[Column], rows: list[dict[str, Any]], width: int = TABLE_WIDTH
) -> str:
    """Rows under headers, cut to `width` columns: the widest cells lose first, with "…".

    Ordinary columns are cut down to their header first, then kept ones down to theirs; only a
    table that still does not fit has its headers cut too.
    """
    cells = [[_cell_text(column.cell(row)) for column in columns] for row in rows]
    widths = [
        max([len(column.header), *(len(line[i]) for line in cells)])
        for i, column in enumerate(columns)
    ]
    excess = sum(widths) + len(COLUMN_GAP) * (len(columns) - 1) - width

    def to_header(column: Column) -> int:
        return max(len(column.header), MIN_COLUMN_WIDTH)

    passes: list[tuple[bool, Callable[[Column], int]]] = [
        (False, to_header),
        (True, to_header),
        (True, lambda column: MIN_COLUMN_WIDTH),
    ]
    for cut_kept, narrowest in passes:
        while excess > 0:
            cuttable = [
                i
                for i, column in enumerate(columns)
                if (cut_kept or not column.keep) and widths[i] > narrowest(column)
            ]
            if not cuttable:
                break
            widest = max(cuttable, key=lambda i: widths[i])
            widths[widest] -= 1
            excess -= 1
    lines = [[column.header for column in columns], *cells]
    return "\n".join(
        COLUMN_GAP.join(
            _fit(text, widths[i], left=columns[i].cut_left and n > 0) for i, text in enumerate(line)
        ).rstrip()
        for n, line in enumerate(lines)
    )


def _cell_text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return " ".join(str(value).split())  # one line, whatever the text held


def _fit(text: str, width: int, *, left: bool = False) -> str:
    if len(text) > width:
        text = "…" + text[len(text) - width + 1 :] if left else text[: width - 1] + "…"
    return text.ljust(width)


def _network(row: dict[str, Any]) -> str | None:
    names = [name for name in (row["country"], row["operator"]) if name]
    return "/".join(names) or None


def _storage(storage: dict[str, dict[str, int]]) -> str:
    return " ".join(f"{memory} {use['used']}/{use['total']}" for memory, use in storage.items())


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h {seconds % 3600 // 60}m"
    return f"{seconds // 86400}d {seconds % 86400 // 3600}h"


def _ago(seconds: float | None) -> str:
    return "never" if seconds is None else f"{_duration(seconds)} ago"


def _utc(stamp: float | None) -> str:
    if stamp is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(stamp))
