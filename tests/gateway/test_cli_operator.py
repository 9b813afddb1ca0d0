"""The operator commands (`simfarm modems|activations|sms|release|trace`) through main(),
against a daemon running in the test's event loop (the CLI runs in a thread)."""

from __future__ import annotations

import asyncio
import http.server
import io
import json
import logging
import os
import threading
from pathlib import Path

import pytest

from drivers.events import ModemState
from gateway.cli import Column, admin_address, main, render_table
from tests.gateway.ops.test_admin import EVENTUALLY_SECONDS, running_daemon
from tests.processes import free_port

WIDTH = 100


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SIMFARM_KEY", "SIMFARM_CONFIG", "SIMFARM_ADMIN", "JOURNAL_STREAM"):
        monkeypatch.delenv(name, raising=False)


class Cli:
    """Runs `simfarm ...` in a thread and hands back what it printed."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys

    async def __call__(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(capsys)


class FakeTerminal(io.StringIO):
    """A stdin that is a terminal and answers the confirmation with `answer`."""

    def isatty(self) -> bool:
        return True


def assert_table(out: str, headers: list[str]) -> list[str]:
    lines = out.rstrip("\n").split("\n")
    assert all(len(line) <= WIDTH for line in lines), [len(line) for line in lines]
    for header in headers:
        assert header in lines[0]
    return lines


async def test_modems_table_and_json(tmp_path: Path, cli: Cli) -> None:
    searching = {"state": ModemState.SEARCHING, "registration": "searching", "detail": "x" * 300}
    async with running_daemon(tmp_path, 3, statuses={2: searching}) as farm:
        code, out, err = await cli("modems", "--admin", farm.admin_url)
        json_code, json_out, _ = await cli("modems", "--admin", farm.admin_url, "--json")
    assert code == 0 and err == ""
    lines = assert_table(out, ["PORT", "ICCID", "NUMBER", "NETWORK", "SIG", "MEM", "STATE"])
    assert len(lines) == 6  # headers, three modems, a blank line, the one detail
    for n in (1, 2):
        row = next(line for line in lines if f"894902000000000000{n}" in line)
        assert f"491510000000{n}" in row and "ready" in row
    assert "searching" in lines[3] and lines[3].startswith("…")  # the port's end is kept
    assert lines[5].startswith(f"{farm.ports[2]}: xxx") and lines[5].endswith("…")
    assert json_code == 0
    modems = json.loads(json_out)["modems"]
    assert [m["iccid"] for m in modems[:2]] == ["8949020000000000001", "8949020000000000002"]


async def test_modems_are_listed_in_natural_port_order(tmp_path: Path, cli: Cli) -> None:
    async with running_daemon(tmp_path, 11) as farm:  # ports modem0 ... modem10
        code, out, _ = await cli("modems", "--admin", farm.admin_url)
        _, json_out, _ = await cli("modems", "--admin", farm.admin_url, "--json")
    expected = [str(tmp_path / f"modem{n}") for n in range(11)]
    assert [m["port"] for m in json.loads(json_out)["modems"]] == expected
    assert code == 0
    rows = out.splitlines()[1:12]
    iccids = [next(word for word in row.split() if word.startswith("894902")) for row in rows]
    assert iccids == [f"894902000000000{n:04d}" for n in range(1, 12)]


async def test_activations_table_and_json(tmp_path: Path, cli: Cli) -> None:
    async with running_daemon(tmp_path, 2) as farm:
        empty_code, empty, _ = await cli("activations", "--admin", farm.admin_url)
        issued = await farm.get_number("tg")
        code, out, _ = await cli("activations", "--admin", farm.admin_url)
        _, json_out, _ = await cli("activations", "--admin", farm.admin_url, "--json")
    assert empty_code == 0 and empty == "no open activations\n"
    assert code == 0
    lines = assert_table(out, ["ID", "NUMBER", "SERVICE", "KIND", "AGE"])
    assert str(issued["activationId"]) in lines[1] and str(issued["number"]) in lines[1]
    assert "tg" in lines[1] and "single" in lines[1]
    (row,) = json.loads(json_out)["activations"]
    assert row["activation_id"] == issued["activationId"]


async def test_sms_table_and_json(tmp_path: Path, cli: Cli) -> None:
    async with running_daemon(tmp_path, 1) as farm:
        await farm.get_number("vk")
        driver = farm.drivers[farm.ports[0]]
        await driver.deliver("VK", "first code 1111")
        await driver.deliver("VK", "second code 2222\nwith a second line " + "y" * 150)
        await farm.market.wait_for(lambda received: len(received) >= 2, EVENTUALLY_SECONDS)
        code, out, _ = await cli("sms", "--admin", farm.admin_url)
        one_code, one_json, _ = await cli("sms", "--last", "1", "--json", "--admin", farm.admin_url)
        bad_code, _, bad_err = await cli("sms", "--last", "0", "--admin", farm.admin_url)
    assert code == 0
    lines = assert_table(out, ["ID", "RECEIVED (UTC)", "SENDER", "PUSH", "TEXT"])
    assert len(lines) == 3
    assert "second code 2222 with a" in lines[1] and lines[1].endswith("…")
    assert "first code 1111" in lines[2] and "pushed" in lines[2]
    assert one_code == 0
    (latest,) = json.loads(one_json)["sms"]
    assert latest["text"].startswith("second code 2222\nwith")
    assert bad_code == 2 and "--last must be from 1 to 1000" in bad_err


async def test_release_with_yes_and_refusals(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal
    async with running_daemon(tmp_path, 1) as farm:
        issued = await farm.get_number("vk")
        activation = str(issued["activationId"])
        refused_code, _, refused_err = await cli("release", activation, "--admin", farm.admin_url)
        still_open = [a.id for a in farm.pool.open_activations()]
        code, out, _ = await cli("release", activation, "--yes", "--admin", farm.admin_url)
        again_code, _, again_err = await cli("release", activation, "-y", "--admin", farm.admin_url)
        unknown_code, _, unknown_err = await cli(
            "release", "999", "--yes", "--admin", farm.admin_url
        )
        left = farm.pool.open_activations()
    assert refused_code == 2
    assert "without confirmation: stdin is not a terminal (pass --yes)" in refused_err
    assert still_open == [issued["activationId"]]
    assert code == 0
    assert out == f"released activation {activation} (number {issued['number']}, vk)\n"
    assert left == []
    assert again_code == 1 and f"activation {activation} is already finished" in again_err
    assert unknown_code == 1 and "no activation 999" in unknown_err


async def test_release_asks_on_a_terminal(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with running_daemon(tmp_path, 2) as farm:
        first = await farm.get_number("vk")
        second = await farm.get_number("vk")
        monkeypatch.setattr("sys.stdin", FakeTerminal("n\n"))
        no_code, no_out, _ = await cli(
            "release", str(first["activationId"]), "--admin", farm.admin_url
        )
        assert len(farm.pool.open_activations()) == 2
        monkeypatch.setattr("sys.stdin", FakeTerminal("y\n"))
        code, out, _ = await cli("release", str(second["activationId"]), "--admin", farm.admin_url)
        left = [a.id for a in farm.pool.open_activations()]
        monkeypatch.setattr("sys.stdin", FakeTerminal(""))  # end of input: no
        eof_code, _, _ = await cli("release", str(first["activationId"]), "--admin", farm.admin_url)
    assert no_code == 1 and no_out.endswith("not released\n")
    assert f"Release activation {first['activationId']} (number {first['number']}, vk" in no_out
    assert code == 0 and f"released activation {second['activationId']}" in out
    assert left == [first["activationId"]]
    assert eof_code == 1


async def test_trace_on_and_off(tmp_path: Path, cli: Cli, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with running_daemon(tmp_path, 1) as farm:
        port = farm.ports[0]
        on_code, on_out, _ = await cli("trace", port, "on", "--admin", farm.admin_url)
        farm.drivers[port].exchange(b"AT\r", b"OK\r\n")
        off_code, off_out, _ = await cli("trace", port, "off", "--admin", farm.admin_url)
        farm.drivers[port].exchange(b"ATI\r", b"OK\r\n")
        unknown_code, _, unknown_err = await cli(
            "trace", "/dev/none", "on", "--admin", farm.admin_url
        )
        usage_code, _, _ = await cli("trace", port, "maybe", "--admin", farm.admin_url)
    assert on_code == 0 and f"AT trace on for {port}" in on_out
    assert off_code == 0 and off_out == f"AT trace off for {port}\n"
    traced = [r.getMessage() for r in caplog.records if "event=at_trace " in r.getMessage()]
    assert traced == [
        f'event=at_trace port={port} dir=out data="AT\\r"',
        f'event=at_trace port={port} dir=in data="OK\\r\\n"',
    ]
    assert unknown_code == 1 and "no modem port /dev/none" in unknown_err
    assert usage_code == 2


@pytest.mark.parametrize(
    "argv",
    [["modems"], ["activations"], ["sms"], ["release", "1", "--yes"], ["trace", "/dev/x", "on"]],
)
async def test_every_command_says_when_the_daemon_is_not_running(cli: Cli, argv: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = await cli(*argv, "--admin", url)
    assert code == 1 and out == ""
    assert err == (
        f"simfarm is not running: nothing answers on {url} "
        "(start it with `systemctl start simfarm`)\n"
    )


async def test_the_admin_address_comes_from_the_environment_or_the_config(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "simfarm.toml"
    async with running_daemon(tmp_path, 1, source=config) as farm:
        port = farm.daemon.admin_port
        monkeypatch.setenv("SIMFARM_ADMIN", farm.admin_url)
        env_code, env_out, _ = await cli("modems", "--json")
        monkeypatch.delenv("SIMFARM_ADMIN")
        # A file the daemon could not use (no key: it lives in the service's environment)
        # still tells where the admin endpoint is.
        config.write_text(f'[admin]\nhost = "0.0.0.0"\nport = {port}\n', encoding="utf-8")
        file_code, file_out, _ = await cli("activations", "--json", "--config", str(config))
        monkeypatch.setenv("SIMFARM_CONFIG", str(config))
        env_file_code, _, _ = await cli("sms", "--json")
    assert env_code == 0 and len(json.loads(env_out)["modems"]) == 1
    assert file_code == 0 and json.loads(file_out) == {"activations": []}
    assert env_file_code == 0


def admin_file(path: Path, port: int) -> Path:
    """A configuration file whose [admin] table names `port` (all the operator commands read)."""
    path.write_text(f'[admin]\nhost = "127.0.0.1"\nport = {port}\n', encoding="utf-8")
    return path


async def test_a_config_whose_admin_port_another_daemon_holds_is_refused(
    tmp_path: Path, cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_a, config_b = tmp_path / "a.toml", tmp_path / "b.toml"
    async with running_daemon(tmp_path, 1, source=config_b) as farm_b:
        port = farm_b.daemon.admin_port
        assert port is not None
        admin_file(config_a, port)  # A's admin port, held by daemon B
        admin_file(config_b, port)
        issued = await farm_b.get_number("vk")
        modems_code, modems_out, modems_err = await cli("modems", "--config", str(config_a))
        release_code, _, release_err = await cli(
            "release", str(issued["activationId"]), "--yes", "--config", str(config_a)
        )
        monkeypatch.setenv("SIMFARM_CONFIG", str(config_a))
        env_code, _, env_err = await cli("activations")
        monkeypatch.delenv("SIMFARM_CONFIG")
        b_code, b_out, _ = await cli("activations", "--json", "--config", str(config_b))
        url_code, _, _ = await cli("modems", "--admin", farm_b.admin_url)
        still_open = [a.id for a in farm_b.pool.open_activations()]
    refusal = (
        f"simfarm: the simfarm answering on http://127.0.0.1:{port} runs {config_b} "
        f"(pid {os.getpid()}), not {config_a}; it holds the [admin] port of {config_a}: give "
        "one of the two another [admin] port\n"
    )
    assert (modems_code, modems_out, modems_err) == (1, "", refusal)
    assert (release_code, release_err) == (1, refusal)
    assert still_open == [issued["activationId"]]  # nothing was released on B
    assert (env_code, env_err) == (1, refusal)
    assert b_code == 0 and len(json.loads(b_out)["activations"]) == 1
    assert url_code == 0  # an address given alone: any simfarm will do


class NotSimfarm(http.server.BaseHTTPRequestHandler):
    """Another program on the admin port: it answers JSON, but is not simfarm."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = json.dumps({"modems": [], "activations": [], "released": {}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("argv", [["modems"], ["release", "7", "--yes"]])
async def test_another_program_on_the_admin_port_is_refused(
    tmp_path: Path, cli: Cli, argv: list[str]
) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotSimfarm)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        port = server.server_address[1]
        config = admin_file(tmp_path / "simfarm.toml", port)
        code, out, err = await cli(*argv, "--config", str(config))
        url_code, _, url_err = await cli(*argv, "--admin", f"http://127.0.0.1:{port}")
    finally:
        server.shutdown()
        server.server_close()
    refusal = (
        f"simfarm: what answers on http://127.0.0.1:{port} is not simfarm's admin endpoint; "
        "another program holds the port (see [admin] in the configuration, or pass --admin URL)\n"
    )
    assert (code, out, err) == (1, "", refusal)
    assert (url_code, url_err) == (1, refusal)


def test_admin_address_order(tmp_path: Path) -> None:
    config = tmp_path / "simfarm.toml"
    config.write_text('[admin]\nhost = "::"\nport = 9001\n', encoding="utf-8")
    assert admin_address(None, None, {}) == "http://127.0.0.1:8081"
    assert admin_address("127.0.0.1:9000/", None, {}) == "http://127.0.0.1:9000"
    assert admin_address(None, str(config), {}) == "http://[::1]:9001"
    assert admin_address(None, None, {"SIMFARM_CONFIG": str(config)}) == "http://[::1]:9001"
    env = {"SIMFARM_ADMIN": "http://10.0.0.1:1", "SIMFARM_CONFIG": str(config)}
    assert admin_address(None, None, env) == "http://10.0.0.1:1"
    assert admin_address("http://127.0.0.1:2", str(config), env) == "http://127.0.0.1:2"


async def test_a_bad_admin_table_is_a_usage_error(tmp_path: Path, cli: Cli) -> None:
    config = tmp_path / "simfarm.toml"
    config.write_text('[admin]\nport = "x"\n', encoding="utf-8")
    code, _, err = await cli("modems", "--config", str(config))
    assert code == 2
    assert err == f'{config}: admin.port: must be an integer, not a string (got "x")\n'


def test_tables_cut_the_widest_cells_first() -> None:
    rows = [{"id": n, "text": "z" * 200, "port": "/dev/simfarm/1-1.4-if02"} for n in range(3)]
    columns = [
        Column("ID", lambda r: r["id"], keep=True),
        Column("PORT", lambda r: r["port"]),
        Column("TEXT", lambda r: r["text"]),
    ]
    lines = render_table(columns, rows).split("\n")
    assert all(len(line) <= WIDTH for line in lines)
    assert "/dev/simfarm/1-1.4-if02" in lines[1]  # the long text gave way, not the port
    assert lines[1].endswith("…")
    narrow = render_table(columns, rows, width=20).split("\n")
    assert all(len(line) <= 20 for line in narrow)


# --- on simulated modems with the real driver ---------------------------------------------------


async def test_modems_and_trace_on_simulated_modems(
    tmp_path: Path, cli: Cli, caplog: pytest.LogCaptureFixture
) -> None:
    from drivers.simulator import make_demo_farm
    from tests.gateway.farm_harness import running_daemon, started

    caplog.set_level(logging.INFO)
    sims = make_demo_farm(2)
    async with started(sims), running_daemon(tmp_path / "simfarm.db", sims) as farm:
        daemon = farm.daemon
        numbers = {m.sim.number for m in sims if m.sim is not None}
        await farm.wait_live(numbers, EVENTUALLY_SECONDS)
        url = f"http://127.0.0.1:{daemon.admin_port}"
        code, out, _ = await cli("modems", "--admin", url)
        lines = assert_table(out, ["PORT", "ICCID", "NUMBER", "STATE"])
        for modem in sims:
            assert modem.sim is not None
            row = next(line for line in lines if modem.sim.iccid in line)
            assert modem.sim.number in row and "ready" in row
        assert code == 0
        port = sims.by_number(sorted(numbers)[0]).path
        trace_code, _, _ = await cli("trace", port, "on", "--admin", url)
        assert trace_code == 0
        # The driver probes a quiet modem every keepalive (1 s here): wait for bytes both ways.
        seen = asyncio.Event()
        ways: set[str] = set()

        class Watch(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                message = record.getMessage()
                if "event=at_trace " in message:
                    ways.add("out" if " dir=out " in message else "in")
                    if len(ways) == 2:
                        seen.set()

        watcher = Watch()
        logging.getLogger("gateway.farm.farm").addHandler(watcher)
        try:
            await asyncio.wait_for(seen.wait(), EVENTUALLY_SECONDS)
        finally:
            logging.getLogger("gateway.farm.farm").removeHandler(watcher)
        await cli("trace", port, "off", "--admin", url)
    traced = [r.getMessage() for r in caplog.records if "event=at_trace " in r.getMessage()]
    assert traced and all(f"port={port} dir=" in line for line in traced)
    assert any("dir=out" in line for line in traced) and any("dir=in" in line for line in traced)
