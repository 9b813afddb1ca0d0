"""The `simfarm` command line: run the daemon, check a configuration, run the demo, poke the
simulator.

Exit codes: 0 success, 1 the action failed (e.g. the simulator refused a request), 2 bad usage or
a configuration that cannot be used.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import TYPE_CHECKING

from gateway.config import ConfigError, config_warnings, load_config
from gateway.logs import quote_value, setup_logging

if TYPE_CHECKING:
    from gateway.config import Config

#: The environment variable naming the configuration file when --config is not given.
CONFIG_ENVIRONMENT_VARIABLE = "SIMFARM_CONFIG"
#: The environment variable naming the simulated farm's control address.
SIM_CONTROL_ENVIRONMENT_VARIABLE = "SIMFARM_SIM_CONTROL"
#: Where `simfarm demo` serves its simulator's control socket unless told otherwise.
DEFAULT_SIM_CONTROL = "var/simfarm-sim.sock"

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
    return parser


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
    _error("a command is needed" + ("" if args.command is None else " after `sim`: send"))
    parser.print_usage(sys.stderr)
    return EXIT_USAGE


def _config_path(given: str | None) -> str | None:
    path = given or os.environ.get(CONFIG_ENVIRONMENT_VARIABLE)
    if not path:
        _error(f"no configuration file: pass --config FILE or set ${CONFIG_ENVIRONMENT_VARIABLE}")
        return None
    return path


def _load(given: str | None) -> Config | None:
    path = _config_path(given)
    if path is None:
        return None
    try:
        return load_config(path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)  # already one line naming the file and the key
        return None


def _run(given: str | None) -> int:
    config = _load(given)
    if config is None:
        return EXIT_USAGE
    setup_logging(config.log.level)
    for warning in config_warnings(config):
        log.warning("event=config_warning detail=%s", quote_value(warning))
    from gateway.daemon import run_daemon

    return asyncio.run(run_daemon(config))


def _check_config(given: str | None) -> int:
    config = _load(given)
    if config is None:
        return EXIT_USAGE
    print(f"OK: {config.source}")
    for warning in config_warnings(config):
        print(f"warning: {warning}")
    return EXIT_OK


def _demo(demo_args: list[str]) -> int:
    try:
        from gateway.demo import main as demo_main
    except ImportError as exc:
        if exc.name not in ("gateway.demo", "gateway"):
            raise
        _error("the demo is not part of this installation (gateway.demo is missing)")
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
