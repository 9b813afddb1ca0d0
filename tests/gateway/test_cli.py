"""The command line: check-config and run through main() and through `python -m gateway`, the
demo and simulator hand-offs, and the log format."""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

import gateway.daemon
from gateway.cli import main
from gateway.config import Config
from gateway.ops.logs import KeyValueFormatter, mask_secret, setup_logging, stream_is_journal

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "config" / "simfarm.example.toml"
SUBPROCESS_TIMEOUT_SECONDS = 60

GOOD = """\
[marketplace]
key = "partner-key-1234"
push_url = "https://market.example/v1/PUSH_SMS"

[offer]
services = ["vk"]

[[modems]]
port = "/dev/simfarm/*"
"""


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIMFARM_KEY", "SIMFARM_CONFIG", "SIMFARM_SIM_CONTROL", "JOURNAL_STREAM"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """setup_logging changes the root logger; give the next test the one it had."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    chatty = {name: logging.getLogger(name).level for name in ("uvicorn.access", "httpx")}
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, chatty_level in chatty.items():
        logging.getLogger(name).setLevel(chatty_level)


def write(tmp_path: Path, text: str, name: str = "simfarm.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


# --- check-config through main() -------------------------------------------------------------


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD)
    assert main(["check-config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert out == f"OK: {path}\n"
    assert err == ""


def test_check_config_prints_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD.replace("https://market", "http://market"))
    path.chmod(0o644)
    assert main(["check-config", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"OK: {path}"
    assert any(line.startswith("warning: ") and "chmod 600" in line for line in lines[1:])
    assert any(line.startswith("warning: ") and "plain http" in line for line in lines[1:])


def test_check_config_bad(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, GOOD.replace('["vk"]', "[]"))
    assert main(["check-config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"{path}: offer.services: must not be empty\n"


def test_check_config_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: cannot read (No such file or directory)" in capsys.readouterr().err


def test_check_config_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD)
    monkeypatch.setenv("SIMFARM_CONFIG", str(path))
    assert main(["check-config"]) == 0
    assert capsys.readouterr().out == f"OK: {path}\n"


def test_check_config_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config"]) == 2
    assert capsys.readouterr().err == (
        "simfarm: no configuration file: run `simfarm check-config FILE` or set $SIMFARM_CONFIG\n"
    )


def test_run_needs_a_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    assert capsys.readouterr().err == (
        "simfarm: no configuration file: run `simfarm run --config FILE` or set $SIMFARM_CONFIG\n"
    )


def test_example_configuration_passes_with_a_real_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SIMFARM_KEY", "env-partner-key-42")
    assert main(["check-config", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.startswith(f"OK: {EXAMPLE}\n")


def test_example_configuration_as_shipped_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(EXAMPLE)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"{EXAMPLE}: marketplace.key: is still the example's placeholder")
    assert err.count("\n") == 1


def test_check_config_lists_every_mistake(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, GOOD.replace('["vk"]', "[]") + "[server]\nport = 70000\nhots = 1\n")
    assert main(["check-config", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"{path}: server.port: must be at most 65535 (got 70000)",
        f"{path}: server.hots: unknown key (did you mean 'host'?)",
        f"{path}: offer.services: must not be empty",
    ]


# --- usage -----------------------------------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("simfarm ")


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage: simfarm" in capsys.readouterr().err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fly"]) == 2
    assert "invalid choice" in capsys.readouterr().err


def test_sim_without_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim"]) == 2
    assert "send" in capsys.readouterr().err


# --- run ---------------------------------------------------------------------------------------


def test_run_hands_the_config_to_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    seen: list[Config] = []

    async def fake_run_daemon(config: Config) -> int:
        seen.append(config)
        return 7

    monkeypatch.setattr(gateway.daemon, "run_daemon", fake_run_daemon)
    path = write(tmp_path, GOOD)
    assert main(["run", "--config", str(path)]) == 7
    assert [config.source for config in seen] == [path]


def test_run_logs_warnings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_logging: None,
) -> None:
    async def fake_run_daemon(config: Config) -> int:
        return 0

    monkeypatch.setattr(gateway.daemon, "run_daemon", fake_run_daemon)
    path = write(tmp_path, GOOD.replace('[[modems]]\nport = "/dev/simfarm/*"\n', ""))
    monkeypatch.setenv("SIMFARM_CONFIG", str(path))
    assert main(["run"]) == 0
    err = capsys.readouterr().err
    assert "level=WARNING" in err and "event=config_warning" in err and "no [[modems]]" in err


def test_run_refuses_a_bad_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def must_not_run(config: Config) -> int:
        raise AssertionError("the daemon ran on a bad configuration")

    monkeypatch.setattr(gateway.daemon, "run_daemon", must_not_run)
    path = write(tmp_path, GOOD.replace("[offer]", "[offer]\nbogus = 1"))
    assert main(["run", "--config", str(path)]) == 2
    assert capsys.readouterr().err == f"{path}: offer.bogus: unknown key\n"


# --- python -m gateway -------------------------------------------------------------------------


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        k: v for k, v in os.environ.items() if k not in ("SIMFARM_KEY", "SIMFARM_CONFIG")
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )


@pytest.mark.parametrize(
    ("table", "what"), [("server", "the marketplace API"), ("admin", "the admin endpoint")]
)
def test_run_with_a_port_taken_exits_with_one_line(tmp_path: Path, table: str, what: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = busy.getsockname()[1]
        ports = {"server": 0, "admin": 0, table: taken}
        database = tmp_path / "simfarm.db"
        path = write(
            tmp_path,
            GOOD.replace("/dev/simfarm/*", str(tmp_path / "no-modem-*"))
            + f"[server]\nport = {ports['server']}\n[admin]\nport = {ports['admin']}\n"
            + f'[storage]\npath = "{database}"\n',
        )
        done = run_module("run", "--config", str(path))
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    # Log lines (key=value, with an event) may come and go; the error is one plain line.
    plain = [line for line in done.stderr.splitlines() if " event=" not in line]
    assert plain == [
        f"simfarm: {what} cannot listen on 127.0.0.1:{taken} (address already in use); "
        f"another program holds port {taken}: stop it, or set another `port` in the "
        f"[{table}] table of {path} (0 picks a free one)"
    ]
    assert not database.exists()  # refused before the store was opened


def test_module_check_config_ok(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    done = run_module("check-config", str(path))
    assert (done.returncode, done.stdout, done.stderr) == (0, f"OK: {path}\n", "")


def test_module_check_config_bad(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "[server]\nport = 70000\n")
    done = run_module("check-config", str(path))
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"{path}: server.port: must be at most 65535 (got 70000)\n"


def test_module_check_config_invalid_toml(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("[offer]", "[offer"))
    done = run_module("check-config", str(path))
    assert done.returncode == 2
    assert done.stderr.startswith(f"{path}: line 5: invalid TOML (")
    assert done.stderr.count("\n") == 1


# --- demo and sim hand-offs --------------------------------------------------------------------


def test_demo_gets_its_own_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    received: list[list[str]] = []
    fake = types.ModuleType("gateway.demo.demo")
    fake.main = lambda argv: received.append(list(argv)) or 5  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gateway.demo.demo", fake)
    assert main(["demo", "--modems", "4", "--help"]) == 5
    assert received == [["--modems", "4", "--help"]]


def test_demo_missing_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "gateway.demo.demo", None)  # makes the import fail
    assert main(["demo"]) == 2
    assert "demo is not part of this installation" in capsys.readouterr().err


class OneShotControlServer:
    """A loopback stand-in for the simulator's control socket: answers one JSON line."""

    def __init__(self, reply: dict[str, object]) -> None:
        self.reply = reply
        self.requests: list[dict[str, object]] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(SUBPROCESS_TIMEOUT_SECONDS)
        self.address = f"tcp://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve_one, daemon=True)

    def __enter__(self) -> OneShotControlServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._listener.close()
        self._thread.join(SUBPROCESS_TIMEOUT_SECONDS)

    def _serve_one(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:
            return
        with connection, connection.makefile("rwb") as stream:
            self.requests.append(json.loads(stream.readline()))
            stream.write(json.dumps(self.reply).encode() + b"\n")
            stream.flush()


def test_sim_send(capsys: pytest.CaptureFixture[str]) -> None:
    with OneShotControlServer({"ok": True, "modem": "sim0", "indexes": [0]}) as server:
        code = main(
            ["sim", "send", "--to", "4915112345678", "--from", "VK", "--text", "Code 12345",
             "--control", server.address]
        )  # fmt: skip
    assert code == 0
    assert server.requests == [
        {"cmd": "send", "to": "4915112345678", "from": "VK", "text": "Code 12345"}
    ]
    assert capsys.readouterr().out == "sent to sim0\n"


def test_sim_send_address_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with OneShotControlServer({"ok": True, "modem": "sim3"}) as server:
        monkeypatch.setenv("SIMFARM_SIM_CONTROL", server.address)
        assert main(["sim", "send", "--to", "1", "--from", "x", "--text", "y"]) == 0
    assert len(server.requests) == 1


def test_sim_send_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with OneShotControlServer({"ok": False, "error": "no modem has number 1"}) as server:
        code = main(["sim", "send", "--to", "1", "--from", "x", "--text", "y",
                     "--control", server.address])  # fmt: skip
    assert code == 1
    assert "the simulator refused: no modem has number 1" in capsys.readouterr().err


def test_sim_send_nobody_listening(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    address = str(tmp_path / "nobody.sock")
    code = main(["sim", "send", "--to", "1", "--from", "x", "--text", "y", "--control", address])
    assert code == 1
    err = capsys.readouterr().err
    assert address in err and "simfarm demo" in err


def test_sim_send_needs_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim", "send", "--to", "1"]) == 2
    assert "--from" in capsys.readouterr().err


# --- logs ----------------------------------------------------------------------------------------


def format_record(formatter: logging.Formatter, message: str, *args: object) -> str:
    record = logging.LogRecord(
        "gateway.pool.pool", logging.WARNING, __file__, 1, message, args, None
    )
    return formatter.format(record)


def test_log_line_is_key_value() -> None:
    line = format_record(KeyValueFormatter(), "event=issued number=%d", 4915112345678)
    expected = " level=WARNING logger=gateway.pool.pool event=issued number=4915112345678"
    assert line.endswith(expected)
    assert line[:24].endswith("Z")  # UTC timestamp first


def test_log_line_for_the_journal_has_a_priority_and_no_time() -> None:
    line = format_record(KeyValueFormatter(journal=True), "event=x")
    assert line == "<4>level=WARNING logger=gateway.pool.pool event=x"


def test_free_text_and_tracebacks_stay_on_one_line() -> None:
    formatter = KeyValueFormatter(journal=True)
    assert format_record(formatter, 'two\nlines "quoted"').endswith(
        'msg="two\\nlines \\"quoted\\""'
    )
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "event=failed", None, sys.exc_info()
        )
    line = formatter.format(record)
    assert "\n" not in line
    assert 'error="ValueError: bad\\nthing"' in line
    assert "traceback=" in line


def test_setup_logging_writes_to_the_stream(restore_logging: None) -> None:
    stream = io.StringIO()
    setup_logging("warning", stream=stream)
    setup_logging("INFO", stream=stream)  # a second call replaces, never doubles
    logging.getLogger("gateway.test").info("event=hello who=%s", "world")
    logging.getLogger("gateway.test").debug("event=hidden")
    assert stream.getvalue().count("\n") == 1
    assert "event=hello who=world" in stream.getvalue()


def test_setup_logging_refuses_an_unknown_level(restore_logging: None) -> None:
    with pytest.raises(ValueError):
        setup_logging("LOUD", stream=io.StringIO())


def test_journal_is_recognised_by_device_and_inode(tmp_path: Path) -> None:
    with open(tmp_path / "journal", "w") as stream:
        status = os.fstat(stream.fileno())
        assert stream_is_journal(stream, {"JOURNAL_STREAM": f"{status.st_dev}:{status.st_ino}"})
        assert not stream_is_journal(stream, {"JOURNAL_STREAM": "1:2"})
        assert not stream_is_journal(stream, {})
    assert not stream_is_journal(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


@pytest.mark.parametrize(
    ("secret", "masked"),
    [
        ("", "****"),
        ("abc", "****"),
        ("abcdefg", "****"),
        ("abcdefgh", "****gh"),
        ("abcdefghijkl", "****jkl"),
        ("partner-key-with-many-chars-WXYZ", "****WXYZ"),
    ],
)
def test_mask_secret(secret: str, masked: str) -> None:
    assert mask_secret(secret) == masked
