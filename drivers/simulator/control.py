"""Control a running simulated farm over JSON lines (Unix socket or loopback TCP).

One request per line, one reply per line: `{"cmd": "send", "to": "4915112345678", "from": "VK",
"text": "Code 12345"}` → `{"ok": true, "modem": "...", "indexes": [0]}`. Commands: list, send,
unplug, replug, hang, unhang, reboot, power_cycle. Errors come back as
`{"ok": false, "error": "..."}` and never close the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from pathlib import Path
from typing import Any

from .farm import SimulatedFarm, UnknownModem

#: Longest request line accepted.
MAX_REQUEST_BYTES = 64 * 1024
#: Default bound for one request/reply round trip of the client.
CONTROL_TIMEOUT_SECONDS = 10.0

ControlAddress = str | Path | tuple[str, int]


class ControlError(RuntimeError):
    """The control server could not be reached or sent no valid reply."""


def _tcp_address(address: ControlAddress) -> tuple[str, int] | None:
    if isinstance(address, tuple):
        return address
    text = str(address)
    if text.startswith("tcp://"):
        host, _, port = text.removeprefix("tcp://").rpartition(":")
        return host or "127.0.0.1", int(port)
    return None


def _remove_stale_socket(path: Path) -> None:
    """A socket file left by an earlier run would make the bind fail (a quick local unlink)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class ControlServer:
    """Serves `farm` on `address` ("tcp://127.0.0.1:0" picks a free port; see `address`)."""

    def __init__(self, farm: SimulatedFarm, address: ControlAddress) -> None:
        self.farm = farm
        self._requested = address
        self._server: asyncio.AbstractServer | None = None
        self.address: ControlAddress = address

    async def start(self) -> ControlAddress:
        tcp = _tcp_address(self._requested)
        if tcp is not None:
            host, port = tcp
            self._server = await asyncio.start_server(
                self._serve, host, port, limit=MAX_REQUEST_BYTES
            )
            bound = self._server.sockets[0].getsockname()
            self.address = (bound[0], bound[1])
        else:
            path = Path(self._requested)
            _remove_stale_socket(path)
            self._server = await asyncio.start_unix_server(
                self._serve, str(path), limit=MAX_REQUEST_BYTES
            )
            self.address = str(path)
        return self.address

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if _tcp_address(self._requested) is None:
            _remove_stale_socket(Path(self._requested))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except (ValueError, asyncio.LimitOverrunError):
                    writer.write(_encode({"ok": False, "error": "request line too long"}))
                    break
                if not line:
                    break
                writer.write(_encode(await self.handle_line(line)))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def handle_line(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object"}
        try:
            return await self.handle(request)
        except (UnknownModem, KeyError, TypeError, ValueError, RuntimeError) as exc:
            return {"ok": False, "error": str(exc) or type(exc).__name__}

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        command = request.get("cmd")
        if command == "list":
            return {"ok": True, "modems": self.farm.describe()}
        if command == "send":
            for key in ("to", "from", "text"):
                if not isinstance(request.get(key), str):
                    raise ValueError(f'"send" needs a string "{key}"')
            modem = self.farm.select({"to": request["to"]})
            indexes = modem.deliver_sms(
                request["from"],
                request["text"],
                encoding=str(request.get("encoding", "auto")),
                class2=bool(request.get("class2", False)),
            )
            return {"ok": True, "modem": modem.name, "indexes": indexes, "held": modem.held_sms}
        modem = self.farm.select(request)
        if command == "unplug":
            modem.unplug()
            return {"ok": True, "modem": modem.name}
        if command == "replug":
            return {"ok": True, "modem": modem.name, "path": await modem.replug()}
        if command == "hang":
            recover_after = request.get("recover_after")
            modem.hang(
                until_reboot=bool(request.get("until_reboot", True)),
                recover_after=float(recover_after) if recover_after is not None else None,
                answer_reset=bool(request.get("answer_reset", False)),
            )
            return {"ok": True, "modem": modem.name}
        if command == "unhang":
            modem.unhang()
            return {"ok": True, "modem": modem.name}
        if command == "reboot":
            await modem.reboot()
            return {"ok": True, "modem": modem.name}
        if command == "power_cycle":
            await modem.power_cycle()
            return {"ok": True, "modem": modem.name}
        raise ValueError(f"unknown cmd {command!r}")


def _encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, ensure_ascii=False).encode() + b"\n"


async def serve_control(farm: SimulatedFarm, address: ControlAddress) -> ControlServer:
    server = ControlServer(farm, address)
    await server.start()
    return server


def _decode_reply(data: bytes) -> dict[str, Any]:
    try:
        reply = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(f"control server sent no JSON reply: {data[:200]!r}") from exc
    if not isinstance(reply, dict):
        raise ControlError(f"control server sent {type(reply).__name__}, not an object")
    return reply


def send_control(
    address: ControlAddress, request: dict[str, Any], *, timeout: float = CONTROL_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """Send one request to a running simulated farm and return its reply (blocking)."""
    tcp = _tcp_address(address)
    try:
        if tcp is not None:
            sock = socket.create_connection(tcp, timeout=timeout)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(str(address))
        with sock:
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = bytearray()
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if len(data) > 16 * MAX_REQUEST_BYTES:
                    raise ControlError("control reply too long")
    except OSError as exc:
        raise ControlError(f"cannot reach the simulated farm at {address}: {exc}") from exc
    return _decode_reply(bytes(data))


async def send_control_async(
    address: ControlAddress, request: dict[str, Any], *, timeout: float = CONTROL_TIMEOUT_SECONDS
) -> dict[str, Any]:
    """`send_control` from inside an event loop."""
    tcp = _tcp_address(address)
    try:
        async with asyncio.timeout(timeout):
            if tcp is not None:
                reader, writer = await asyncio.open_connection(*tcp)
            else:
                reader, writer = await asyncio.open_unix_connection(str(address))
            try:
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                data = await reader.readline()
            finally:
                writer.close()
                with contextlib.suppress(ConnectionError):
                    await writer.wait_closed()
    except (OSError, TimeoutError) as exc:
        raise ControlError(f"cannot reach the simulated farm at {address}: {exc}") from exc
    return _decode_reply(data)
