"""A running simulated farm, driven through its control socket with the client function."""

from __future__ import annotations

import asyncio
import socket
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import serial

from drivers.simulator import (
    ControlError,
    SerialProbe,
    SimulatedFarm,
    iccid_is_valid,
    make_demo_farm,
    send_control,
    send_control_async,
    serve_control,
)
from drivers.simulator.control import ControlAddress

REPLY_TIMEOUT_S = 3.0


@asynccontextmanager
async def controlled_farm(address: ControlAddress) -> AsyncIterator[tuple[SimulatedFarm, object]]:
    farm = make_demo_farm(3)
    await farm.start()
    server = await serve_control(farm, address)
    try:
        yield farm, server.address
    finally:
        await server.stop()
        await farm.stop()


@pytest.fixture
def socket_path() -> Iterator[Path]:
    # Unix socket paths are limited to ~107 bytes; pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="simctl") as folder:
        yield Path(folder) / "control.sock"


def test_demo_farm_has_distinct_valid_identities() -> None:
    farm = make_demo_farm(6)
    modems = list(farm)
    assert len({m.profile.imei for m in modems}) == 6
    assert len({m.sim.iccid for m in modems if m.sim}) == 6
    assert all(m.sim is not None and iccid_is_valid(m.sim.iccid) for m in modems)
    numbers = [m.sim.number for m in modems if m.sim]
    assert len(set(numbers)) == 6
    assert farm.by_number("+" + numbers[2]) is modems[2]
    assert farm.by_iccid(modems[4].sim.iccid) is modems[4]  # type: ignore[union-attr]
    with pytest.raises(LookupError):
        farm.by_number("1")


async def test_list_unplug_replug_over_unix_socket(socket_path: Path) -> None:
    async with controlled_farm(socket_path) as (farm, address):
        listing = await asyncio.to_thread(send_control, address, {"cmd": "list"})
        assert listing["ok"] and [row["name"] for row in listing["modems"]] == [
            m.name for m in farm
        ]
        target = list(farm)[1]
        old_path = target.path
        with SerialProbe(old_path) as probe:
            reply = await asyncio.to_thread(
                send_control, address, {"cmd": "unplug", "modem": target.name}
            )
            assert reply == {"ok": True, "modem": target.name}
            with pytest.raises(serial.SerialException):
                await asyncio.to_thread(probe.read_for_blocking, 0.2)
        reply = await send_control_async(address, {"cmd": "replug", "number": target.sim.number})
        assert reply["ok"] and reply["path"] != old_path
        with SerialProbe(reply["path"]) as probe:
            assert (await probe.command("AT")).ok


async def test_hang_and_reboot_over_tcp() -> None:
    async with controlled_farm("tcp://127.0.0.1:0") as (farm, address):
        assert isinstance(address, tuple) and address[0] == "127.0.0.1"
        target = next(iter(farm))
        with SerialProbe(target.path) as probe:
            reply = await send_control_async(address, {"cmd": "hang", "iccid": target.sim.iccid})
            assert reply["ok"] and target.hung
            with pytest.raises(TimeoutError):
                await probe.command("AT", timeout=0.3)
            reply = await send_control_async(address, {"cmd": "reboot", "modem": target.name})
            assert reply["ok"] and not target.hung
            assert (await probe.command("AT")).ok


async def test_bad_requests_get_errors_and_the_server_keeps_serving(socket_path: Path) -> None:
    async with controlled_farm(socket_path) as (_, address):
        reply = await send_control_async(address, {"cmd": "unplug", "modem": "nope"})
        assert reply["ok"] is False and "nope" in reply["error"]
        reply = await send_control_async(address, {"cmd": "send", "to": "4915100000000"})
        assert reply["ok"] is False and "from" in reply["error"]
        reply = await send_control_async(address, {"cmd": "dance", "modem": "sim00-sim800"})
        assert reply["ok"] is False and "dance" in reply["error"]

        def raw_exchange() -> bytes:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(REPLY_TIMEOUT_S)
                sock.connect(str(address))
                sock.sendall(b"\xff{not json\n[1]\n")
                data = b""
                while data.count(b"\n") < 2:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                return data

        lines = (await asyncio.to_thread(raw_exchange)).splitlines()
        assert [b'"ok": false' in line for line in lines] == [True, True]
        assert (await send_control_async(address, {"cmd": "list"}))["ok"]


def test_client_reports_an_unreachable_farm(tmp_path: Path) -> None:
    with pytest.raises(ControlError, match="cannot reach"):
        send_control(tmp_path / "absent.sock", {"cmd": "list"}, timeout=1.0)


async def test_send_delivers_on_the_modem_with_that_number(socket_path: Path) -> None:
    pytest.importorskip("drivers.sms.pdu", reason="the PDU codec is not there yet")
    async with controlled_farm(socket_path) as (farm, address):
        target = list(farm)[2]
        assert target.sim is not None
        with SerialProbe(target.path) as probe:
            request = {"cmd": "send", "to": target.sim.number, "from": "VK", "text": "Code 12345"}
            reply = await asyncio.to_thread(send_control, address, request)
            assert reply == {"ok": True, "modem": target.name, "indexes": [0], "held": 0}
            mem = target.profile.default_storage
            assert (await probe.wait_for("+CMTI:", REPLY_TIMEOUT_S))[0] == f'+CMTI: "{mem}",0'
        reply = await send_control_async(
            address, {"cmd": "send", "to": "+49 151 0000", "from": "VK", "text": "x"}
        )
        assert reply["ok"] is False and "number" in reply["error"]
