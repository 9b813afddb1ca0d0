"""The operator's endpoint on a real daemon over real HTTP: modems, activations, SMS, release,
trace, health; kept off the marketplace listener."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.events import Driver, ModemState, ModemStatus, ReceivedPdu
from drivers.modem.held import HeldModem
from drivers.modem.settings import DriverSettings
from drivers.sms.pdu import decode_pdu, encode_deliver
from gateway.config import ConfigError, config_from_dict, config_warnings
from gateway.daemon import Daemon
from gateway.demo.fake_marketplace import FakeMarketplace, Policy, always_succeed
from gateway.farm.farm import PortEvents
from gateway.ops.admin import AdminListenError
from gateway.ops.admin_identity import DaemonIdentity

KEY = "admin-test-partner-key-7c1d"
SERVICES = ("vk", "wa", "tg")
#: Bound for what should happen promptly; never waited out when things work.
EVENTUALLY_SECONDS = 20.0


def make_config(
    tmp_path: Path, push_url: str, ports: list[str], source: Path | None = None, **tables: Any
):
    data: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "admin": {"host": "127.0.0.1", "port": 0},
        "marketplace": {"key": KEY, "push_url": push_url, "push_retry_seconds": 0.5},
        "storage": {"path": str(tmp_path / "simfarm.db")},
        "offer": {"services": list(SERVICES), "rent": True},
        "modems": [{"port": port} for port in ports],
        "farm": {"rescan_seconds": 0.5, "multipart_timeout_seconds": 30},
    }
    data.update(tables)
    return config_from_dict(data, source=source, environ={})


def modem_status(port: str, n: int, **changes: Any) -> ModemStatus:
    """A ready modem with SIM n: German Vodafone number 49151000000n."""
    status = ModemStatus(
        port=port,
        state=ModemState.READY,
        manufacturer="SIMCOM",
        model="SIM800",
        revision="1418B05SIM800L24",
        imei=f"86781603000{n:04d}",
        iccid=f"894902000000000{n:04d}",
        imsi=f"2620200000{n:05d}",
        mccmnc="26202",
        number=f"49151000000{n:02d}",
        number_source="cnum",
        registration="home",
        operator_code="26202",
        signal_rssi=18,
        storage={"SM": (3, 30), "ME": (0, 100)},
        last_sms_at=time.time() - 60,
        timeouts=2,
        recoveries={"escape": 1},
    )
    return replace(status, **changes)


class FakeDriver:
    """Stands in for a modem driver: reports a status, delivers SMS, traces what it 'sends'."""

    def __init__(
        self, port: str, events: PortEvents, settings: DriverSettings, status: ModemStatus
    ):
        self.port = port
        self.events = events
        self.settings = settings
        self._status = status
        self.trace_hook: Callable[[str, bytes], None] | None = None

    @property
    def status(self) -> ModemStatus:
        return self._status

    async def run(self) -> None:
        self.events.status_changed(self._status)
        await asyncio.Event().wait()  # until the farm cancels it

    async def sweep_now(self, timeout: float) -> bool:
        return False  # no storage to sweep

    def held(self, timeout: float) -> AbstractAsyncContextManager[HeldModem]:
        raise TimeoutError("a fake driver never hands over a port")

    def set_trace(self, hook: Callable[[str, bytes], None] | None) -> None:
        self.trace_hook = hook

    def exchange(self, command: bytes, reply: bytes) -> None:
        """What an AT exchange looks like to a trace: bytes out, bytes in."""
        if self.trace_hook is not None:
            self.trace_hook("out", command)
            self.trace_hook("in", reply)

    def change(self, **changes: Any) -> None:
        self._status = replace(self._status, **changes)
        self.events.status_changed(self._status)

    async def deliver(self, sender: str, text: str, timestamp: datetime | None = None) -> None:
        """An SMS read off the modem, part by part, as the real driver hands it over."""
        assert self._status.iccid is not None
        for index, pdu in enumerate(encode_deliver(sender, text, ref=7, timestamp=timestamp)):
            deliver = decode_pdu(pdu)
            await self.events.sms_received(
                ReceivedPdu(
                    port=self.port,
                    iccid=self._status.iccid,
                    pdu=pdu,
                    storage="SM",
                    index=index,
                    received_at=time.time(),
                    deliver=deliver,  # type: ignore[arg-type]
                )
            )


class SettingsTracedDriver(FakeDriver):
    """A driver that ignores set_trace: it only has the hook the farm put in its settings."""

    def set_trace(self, hook: Callable[[str, bytes], None] | None) -> None:
        pass

    def exchange(self, command: bytes, reply: bytes) -> None:
        hook = self.settings.trace
        assert hook is not None
        hook("out", command)
        hook("in", reply)


@dataclass
class Running:
    daemon: Daemon
    market: FakeMarketplace
    ports: list[str]
    drivers: dict[str, FakeDriver] = field(default_factory=dict)

    @property
    def pool(self):
        assert self.daemon.pool is not None
        return self.daemon.pool

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.daemon.admin_port}"

    async def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.admin_url, timeout=30) as client:
            return await client.request(method, path, **kwargs)

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.api_url, timeout=30) as client:
            return await client.request(method, path, **kwargs)

    async def action(self, action: str, **fields: Any) -> dict[str, Any]:
        reply = await self.api("POST", "/", json={"action": action, "key": KEY, **fields})
        assert reply.status_code == 200, reply.text
        return reply.json()

    async def get_number(self, service: str = "vk", **fields: Any) -> dict[str, Any]:
        body = {"country": "germany", "operator": "any", "service": service, "sum": 10, **fields}
        return await self.action("GET_NUMBER", **body)

    async def wait_live(self, count: int) -> None:
        await self.pool.wait_until(
            lambda: len(self.pool.live_numbers()) == count, EVENTUALLY_SECONDS
        )


@asynccontextmanager
async def running_daemon(
    tmp_path: Path,
    modems: int = 2,
    *,
    statuses: dict[int, dict[str, Any]] | None = None,
    driver_class: type[FakeDriver] = FakeDriver,
    policy: Policy = always_succeed,
    source: Path | None = None,
) -> AsyncIterator[Running]:
    """A daemon whose ports are driven by fake drivers; waits until the ready SIMs are live.

    `source` is the configuration file the daemon says it was started with (the configuration
    itself is built in code)."""
    market = FakeMarketplace(policy=policy)
    await market.start()
    ports = []
    for n in range(modems):
        path = tmp_path / f"modem{n}"
        path.touch()
        ports.append(str(path))
    drivers: dict[str, FakeDriver] = {}
    changes = statuses or {}

    def factory(port: str, events: PortEvents, settings: DriverSettings) -> FakeDriver:
        n = ports.index(port)
        driver = driver_class(
            port, events, settings, modem_status(port, n + 1, **changes.get(n, {}))
        )
        drivers[port] = driver
        return driver

    daemon = Daemon(make_config(tmp_path, market.url, ports, source), driver_factory=factory)
    running = Running(daemon, market, ports, drivers)
    try:
        await daemon.start()
        sellable = sum(1 for n in range(modems) if changes.get(n, {}).get("state") is None)
        await running.wait_live(sellable)
        await running.pool.wait_until(
            lambda: len(daemon.farm.statuses()) == modems, EVENTUALLY_SECONDS
        )
        yield running
    finally:
        await daemon.stop()
        await market.stop()


# --- listing ----------------------------------------------------------------------------------


async def test_modems_merge_driver_status_with_the_pools_names(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, 2) as farm:
        reply = await farm.admin("GET", "/modems")
    assert reply.status_code == 200
    rows = reply.json()["modems"]
    assert [row["port"] for row in rows] == sorted(farm.ports)
    first = rows[0]
    assert first["iccid"] == "8949020000000000001"
    assert first["number"] == "4915100000001"
    assert (first["country"], first["operator"]) == ("germany", "vodafone")
    assert first["model"] == "SIMCOM SIM800"
    assert first["imei"] == "867816030000001"
    assert first["state"] == "ready" and first["registration"] == "home"
    assert first["signal"] == 18
    assert first["storage"] == {"ME": {"used": 0, "total": 100}, "SM": {"used": 3, "total": 30}}
    assert first["live"] is True and first["open_activation"] is None
    assert first["timeouts"] == 2 and first["recoveries"] == {"escape": 1}
    assert 50 <= first["last_sms_age_seconds"] <= 3600


async def test_a_modem_that_is_not_ready_shows_why(tmp_path: Path) -> None:
    searching = {"state": ModemState.SEARCHING, "registration": "searching", "detail": "no network"}
    async with running_daemon(tmp_path, 2, statuses={1: searching}) as farm:
        rows = (await farm.admin("GET", "/modems")).json()["modems"]
    row = next(r for r in rows if r["port"] == farm.ports[1])
    assert row["state"] == "searching" and row["detail"] == "no network"
    assert row["live"] is False


async def test_admin_routes_are_not_on_the_marketplace_listener(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, 1) as farm:
        assert farm.daemon.admin_port != farm.daemon.port
        for path in ("/modems", "/activations", "/sms"):
            assert (await farm.api("GET", path)).status_code in (404, 405)
        for path in ("/release", "/trace"):
            reply = await farm.api("POST", path, json={"activationId": 1})
            assert reply.status_code == 404
        unknown = await farm.admin("GET", "/nothing")
    assert unknown.status_code == 404 and "error" in unknown.json()


async def test_activations_list_open_ones_with_their_age(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, 2) as farm:
        single = await farm.get_number("vk")
        rent = await farm.get_number("rent")
        assert single["status"] == rent["status"] == "SUCCESS"
        rows = (await farm.admin("GET", "/activations")).json()["activations"]
        modems = (await farm.admin("GET", "/modems")).json()["modems"]
    assert [(r["activation_id"], r["kind"]) for r in rows] == [
        (single["activationId"], "single"),
        (rent["activationId"], "rent"),
    ]
    assert rows[0]["number"] == str(single["number"]) and rows[0]["service"] == "vk"
    assert all(r["age_seconds"] >= 0 for r in rows)
    assert sorted(m["open_activation"] for m in modems) == sorted(
        [single["activationId"], rent["activationId"]]
    )


async def test_sms_lists_the_latest_with_their_texts(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, 1) as farm:
        issued = await farm.get_number("vk")
        driver = farm.drivers[farm.ports[0]]
        for n in range(3):
            await driver.deliver("VK", f"code {n}")
        await farm.market.wait_for(lambda received: len(received) >= 3, EVENTUALLY_SECONDS)
        latest = (await farm.admin("GET", "/sms", params={"last": 2})).json()["sms"]
        default = (await farm.admin("GET", "/sms")).json()["sms"]
        refused = [
            (await farm.admin("GET", "/sms", params={"last": last})).status_code
            for last in ("0", "1001", "x", "-1")
        ]
    assert [s["text"] for s in latest] == ["code 2", "code 1"]
    assert latest[0]["sender"] == "VK" and latest[0]["activation_id"] == issued["activationId"]
    assert latest[0]["number"] == str(issued["number"])
    assert len(default) == 3
    assert refused == [400, 400, 400, 400]


# --- release ----------------------------------------------------------------------------------


async def test_a_late_finish_after_a_release_still_counts(tmp_path: Path) -> None:
    """Released by the operator, then sold after all: the number is never issued twice."""
    async with running_daemon(tmp_path, 1) as farm:
        issued = await farm.get_number("tg")
        assert issued["status"] == "SUCCESS"
        released = await farm.admin(
            "POST", "/release", json={"activationId": issued["activationId"]}
        )
        assert released.status_code == 200
        finishes = [
            await farm.action("FINISH_ACTIVATION", activationId=issued["activationId"], status=3)
            for _ in range(2)  # the marketplace may repeat itself: idempotent
        ]
        assert finishes == [{"status": "SUCCESS"}] * 2
        assert (await farm.get_number("tg"))["status"] == "NO_NUMBERS"
        cancelled = await farm.action(
            "FINISH_ACTIVATION", activationId=issued["activationId"], status=4
        )
        assert cancelled == {"status": "SUCCESS"}  # the first status stands
        # The number sells for the other services, and its history is on disk.
        other = await farm.get_number("wa")
        assert other["status"] == "SUCCESS" and other["number"] == issued["number"]
    with sqlite3.connect(tmp_path / "simfarm.db") as db:
        status = db.execute(
            "SELECT finish_status FROM activations WHERE id = ?", (issued["activationId"],)
        ).fetchone()
        history = db.execute(
            "SELECT issues, barred, last_status FROM history WHERE service = 'tg'"
        ).fetchall()
    assert status == (3,)
    assert history == [(0, 1, 3)]


async def test_release_frees_the_number_without_touching_its_history(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_daemon(tmp_path, 1) as farm:
        for _ in range(4):  # one short of the limit of cancelled issues for vk
            issued = await farm.get_number("vk")
            assert issued["status"] == "SUCCESS"
            if _ < 3:
                await farm.action(
                    "FINISH_ACTIVATION", activationId=issued["activationId"], status=4
                )
        assert (await farm.get_number("wa"))["status"] == "NO_NUMBERS"  # the number is leased
        reply = await farm.admin("POST", "/release", json={"activationId": issued["activationId"]})
        assert reply.status_code == 200, reply.text
        assert reply.json()["released"]["activation_id"] == issued["activationId"]
        assert farm.pool.open_activations() == []
        # Not counted as a cancelled issue: the number can still be issued for vk once more.
        again = await farm.get_number("vk")
        assert again["status"] == "SUCCESS"
        twice = await farm.admin("POST", "/release", json={"activationId": issued["activationId"]})
        unknown = await farm.admin("POST", "/release", json={"activationId": 999})
        bad = [
            (await farm.admin("POST", "/release", json=body)).status_code
            for body in (
                {},
                {"activationId": "1"},
                {"activationId": 0},
                [1],
                {"activationId": True},
            )
        ]
        finish = await farm.action(
            "FINISH_ACTIVATION", activationId=issued["activationId"], status=3
        )
    assert twice.status_code == 409 and "already finished" in twice.json()["error"]
    assert unknown.status_code == 404 and unknown.json()["error"] == "no activation 999"
    assert bad == [400, 400, 400, 400, 400]
    assert finish["status"] == "SUCCESS"
    with sqlite3.connect(tmp_path / "simfarm.db") as db:
        row = db.execute(
            "SELECT finished_at IS NOT NULL, finish_status FROM activations WHERE id = ?",
            (issued["activationId"],),
        ).fetchone()
        history = db.execute("SELECT issues, barred FROM history WHERE service = 'vk'").fetchone()
    # The release counted nothing; the late FINISH's sale counts (see the test below).
    assert row == (1, 3)
    assert history == (3, 1)
    assert any(
        "event=activation_released_by_operator" in r.getMessage()
        and f"activation_id={issued['activationId']}" in r.getMessage()
        for r in caplog.records
    )


# --- trace ------------------------------------------------------------------------------------


def trace_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "event=at_trace " in r.getMessage()]


def test_the_fake_drivers_are_drivers() -> None:
    for driver_class in (FakeDriver, SettingsTracedDriver):
        events = PortEvents(None, "/dev/fake")  # type: ignore[arg-type]
        driver = driver_class("/dev/fake", events, DriverSettings(), modem_status("/dev/fake", 1))
        assert isinstance(driver, Driver)


async def test_trace_switches_a_ports_byte_log_at_run_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_daemon(tmp_path, 2) as farm:
        port = farm.ports[0]
        driver = farm.drivers[port]
        driver.exchange(b"AT+CSQ\r", b"\r\n+CSQ: 18,0\r\n\r\nOK\r\n")
        assert trace_lines(caplog) == []
        reply = await farm.admin("POST", "/trace", json={"port": port, "on": True})
        assert reply.status_code == 200
        assert reply.json() == {"port": port, "trace": True, "driver_running": True}
        driver.exchange(b"AT+CSQ\r", b"\r\n+CSQ: 18,0\r\n\r\nOK\r\n\x1a\xff")
        farm.drivers[farm.ports[1]].exchange(b"AT\r", b"OK\r\n")  # the other port stays quiet
        on = trace_lines(caplog)
        await farm.admin("POST", "/trace", json={"port": port, "on": False})
        driver.exchange(b"AT\r", b"OK\r\n")
        off = trace_lines(caplog)
        unknown = await farm.admin("POST", "/trace", json={"port": "/dev/nothing", "on": True})
        bad = await farm.admin("POST", "/trace", json={"port": port, "on": "yes"})
    assert driver.trace_hook is None
    assert on == [
        f'event=at_trace port={port} dir=out data="AT+CSQ\\r"',
        f'event=at_trace port={port} dir=in data="\\r\\n+CSQ: 18,0\\r\\n\\r\\nOK\\r\\n\\x1a\\xff"',
    ]
    assert off == on
    assert unknown.status_code == 404 and "/dev/nothing" in unknown.json()["error"]
    assert bad.status_code == 400


async def test_trace_reaches_a_driver_through_its_settings_hook(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with running_daemon(tmp_path, 1, driver_class=SettingsTracedDriver) as farm:
        port = farm.ports[0]
        driver = farm.drivers[port]
        driver.exchange(b"AT\r", b"OK\r\n")
        assert trace_lines(caplog) == []
        await farm.admin("POST", "/trace", json={"port": port, "on": True})
        driver.exchange(b"AT\r", b"OK\r\n")
    assert trace_lines(caplog) == [
        f'event=at_trace port={port} dir=out data="AT\\r"',
        f'event=at_trace port={port} dir=in data="OK\\r\\n"',
    ]


# --- health -----------------------------------------------------------------------------------


async def test_health_is_ok_on_both_listeners_and_names_modems_that_are_not_ready(
    tmp_path: Path,
) -> None:
    searching = {"state": ModemState.SEARCHING, "registration": "searching", "detail": "no network"}
    async with running_daemon(tmp_path, 2, statuses={1: searching}) as farm:
        admin = await farm.admin("GET", "/health")
        main = await farm.api("GET", "/health")
    assert admin.status_code == main.status_code == 200
    report = admin.json()
    assert report["status"] == "ok" and report["problems"] == []
    assert report["api"]["ok"] and report["store"]["ok"] and report["farm"]["ok"]
    assert report["farm"]["not_ready"] == [
        {"port": farm.ports[1], "state": "searching", "detail": "no network"}
    ]
    assert report["farm"]["modems"] == 2 and report["farm"]["ready"] == 1
    assert main.json()["status"] == "ok" and main.json()["live_sims"] == 1


async def test_health_fails_when_nothing_is_live(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, 1) as farm:
        farm.drivers[farm.ports[0]].change(state=ModemState.NO_SIM, detail="SIM not inserted")
        await farm.wait_live(0)
        reply = await farm.admin("GET", "/health")
    assert reply.status_code == 503
    report = reply.json()
    assert report["status"] == "failing" and report["farm"]["ok"] is False
    assert any(p.startswith("farm: no SIM is live") for p in report["problems"])
    assert report["farm"]["not_ready"][0]["detail"] == "SIM not inserted"


async def test_health_fails_when_the_store_does_not_answer(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, 1) as farm:
        assert farm.daemon.store is not None
        await farm.daemon.store.close()
        admin = await farm.admin("GET", "/health")
        main = await farm.api("GET", "/health")
    assert admin.status_code == main.status_code == 503
    assert admin.json()["store"] == {"ok": False, "detail": "the store is closed"}


# --- the [admin] table ------------------------------------------------------------------------


def base(**tables: Any) -> dict[str, Any]:
    return {
        "marketplace": {"key": KEY, "push_url": "https://market.example/v1/PUSH_SMS"},
        "offer": {"services": ["vk"]},
        "modems": [{"port": "/dev/simfarm/*"}],
        **tables,
    }


def test_admin_table_defaults_to_loopback_8081() -> None:
    config = config_from_dict(base(), environ={})
    assert (config.admin.host, config.admin.port) == ("127.0.0.1", 8081)
    assert config_warnings(config) == []


def test_admin_off_loopback_is_warned_about() -> None:
    config = config_from_dict(base(admin={"host": "0.0.0.0"}), environ={})
    (warning,) = config_warnings(config)
    assert "admin.host: 0.0.0.0 is not a loopback address" in warning


@pytest.mark.parametrize(
    ("admin", "message"),
    [
        ({"port": 8080}, "configuration: admin: port 8080 is the [server] port"),
        ({"port": 70000}, "configuration: admin.port: must be at most 65535"),
        ({"port": "8081"}, "configuration: admin.port: must be an integer, not a string"),
        ({"hots": "127.0.0.1"}, "configuration: admin.hots: unknown key (did you mean 'host'?)"),
    ],
)
def test_bad_admin_tables_are_refused_in_one_line(admin: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(base(admin=admin), environ={})
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


async def test_a_busy_admin_port_stops_the_start_before_anything_changed(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        taken = busy.getsockname()[1]
        source = tmp_path / "simfarm.toml"
        config = make_config(
            tmp_path, "http://127.0.0.1:9/v1/PUSH_SMS", [], source, admin={"port": taken}
        )
        daemon = Daemon(config)
        try:
            with pytest.raises(AdminListenError) as caught:
                await daemon.start()
        finally:
            await daemon.stop()
    assert str(caught.value) == (
        f"the admin endpoint cannot listen on 127.0.0.1:{taken} (address already in use); "
        f"another program holds port {taken}: stop it, or set another `port` in the [admin] "
        f"table of {source} (0 picks a free one)"
    )
    assert daemon.admin_port is None and daemon.store is None
    assert not (tmp_path / "simfarm.db").exists()


async def test_every_admin_reply_names_the_daemon(tmp_path: Path) -> None:
    source = tmp_path / "etc" / "simfarm ä.toml"  # a space and a non-ASCII letter travel too
    async with running_daemon(tmp_path, 1, source=source) as farm:
        replies = [
            await farm.admin("GET", "/"),
            await farm.admin("GET", "/modems"),
            await farm.admin("GET", "/nowhere"),
            await farm.admin("DELETE", "/modems"),
            await farm.admin("POST", "/release", content=b"not json"),
        ]
    assert [r.status_code for r in replies] == [200, 200, 404, 405, 400]
    for reply in replies:
        assert DaemonIdentity.from_headers(reply.headers) == DaemonIdentity(
            source.resolve(), os.getpid()
        )
    assert replies[0].json() == {"daemon": {"config": str(source.resolve()), "pid": os.getpid()}}
