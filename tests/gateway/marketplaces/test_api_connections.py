"""Connections are bounded: idle ones close, slow requests are cut, the listener stays usable.

Real sockets on loopback against the real app (uvicorn, a pool on a real SQLite file), with
short limits so that the deadlines pass in a fraction of a second; every wait is for a condition
with a generous bound, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gateway.config import ConfigError, config_from_dict
from gateway.daemon import Daemon
from gateway.demo.fake_marketplace import FakeMarketplace
from gateway.marketplaces.api import MarketplaceApi, create_app
from gateway.marketplaces.http_server import MAX_HEADER_BYTES, BackgroundServer, ConnectionLimits
from gateway.pool.pool import Pool
from tests.gateway.helpers import KEY, open_pool, sim
from tests.processes import read_until

#: Test-short limits: what the deadlines are measured against.
IDLE_SECONDS = 0.5
REQUEST_SECONDS = 0.5
#: Bound for what should happen promptly; never waited out when things work.
EVENTUALLY_SECONDS = 15.0
#: Gap between the bytes of a trickle: well inside both limits, so no idle timer would ever fire.
TRICKLE_GAP_SECONDS = 0.05
SERVICES = {"action": "GET_SERVICES", "key": KEY}


@dataclass
class Listener:
    pool: Pool
    server: BackgroundServer

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"

    async def services(self) -> httpx.Response:
        """GET_SERVICES on a connection of its own."""
        async with httpx.AsyncClient(base_url=self.url, timeout=EVENTUALLY_SECONDS) as client:
            return await client.post("/", json=SERVICES)

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.server.port)


@asynccontextmanager
async def listening(tmp_path, **limits) -> AsyncIterator[Listener]:
    settings = ConnectionLimits(
        idle_timeout_seconds=limits.pop("idle", IDLE_SECONDS),
        request_timeout_seconds=limits.pop("request", REQUEST_SECONDS),
        **limits,
    )
    pool = await open_pool(tmp_path / "simfarm.db")
    await pool.sim_online(sim(1))
    server = BackgroundServer(create_app(MarketplaceApi(pool, KEY)), "127.0.0.1", 0, settings)
    await server.start()
    try:
        yield Listener(pool, server)
    finally:
        await server.stop()
        await pool.store.close()


async def closed_by_server(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection (a reset counts as closed)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := await reader.read(65536):
            received += chunk
    return received


async def wait_until(predicate, timeout: float = EVENTUALLY_SECONDS) -> None:
    """Until `predicate()` holds; it reads the listener's counters, which nothing signals."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110 - polls counters that have no event
            await asyncio.sleep(0.01)


async def trickle(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send `data` a byte at a time until it is all sent or the server hangs up."""
    with contextlib.suppress(ConnectionError):
        for byte in data:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(TRICKLE_GAP_SECONDS)


def request_head(length: int) -> bytes:
    return (
        b"POST / HTTP/1.1\r\nHost: simfarm\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % length
    )


# --- idle connections ---------------------------------------------------------------------------


async def test_hundreds_of_idle_connections_are_closed_after_the_idle_timeout(tmp_path) -> None:
    async with listening(tmp_path) as api:
        opened = time.monotonic()
        sockets = [await api.connect() for _ in range(300)]
        await wait_until(lambda: api.server.connections == 300)
        # While they are open, the marketplace is served.
        assert (await api.services()).status_code == 200
        async with asyncio.timeout(EVENTUALLY_SECONDS):
            received = await asyncio.gather(*(closed_by_server(r) for r, _ in sockets))
        elapsed = time.monotonic() - opened
        print(f"300 idle connections closed {elapsed:.2f} s after opening (timeout {IDLE_SECONDS})")
        assert received == [b""] * 300  # closed without a word: they never asked anything
        assert elapsed >= IDLE_SECONDS * 0.9
        await wait_until(lambda: api.server.connections == 0)
        for _, writer in sockets:
            writer.close()


async def test_blank_lines_do_not_keep_a_connection_open(tmp_path) -> None:
    async with listening(tmp_path) as api:
        reader, writer = await api.connect()
        sender = asyncio.create_task(trickle(writer, b"\r\n" * 10_000))
        async with asyncio.timeout(EVENTUALLY_SECONDS):
            await closed_by_server(reader)
        assert not sender.done()  # it was still sending when the server hung up
        sender.cancel()
        writer.close()


async def test_keep_alive_serves_requests_one_after_another(tmp_path) -> None:
    async with listening(tmp_path) as api:
        async with httpx.AsyncClient(base_url=api.url) as client:
            for _ in range(20):
                assert (await client.post("/", json=SERVICES)).status_code == 200
            assert api.server.connections == 1


async def test_a_reply_restarts_the_idle_timeout_and_then_it_closes(tmp_path) -> None:
    async with listening(tmp_path) as api:
        reader, writer = await api.connect()
        body = b'{"action":"GET_SERVICES","key":"%s"}' % KEY.encode()
        writer.write(request_head(len(body)) + body)
        async with asyncio.timeout(EVENTUALLY_SECONDS):
            received = await closed_by_server(reader)
        assert received.startswith(b"HTTP/1.1 200 ")
        assert received.count(b"HTTP/1.1") == 1
        writer.close()


# --- slow requests ------------------------------------------------------------------------------


async def test_a_header_trickle_is_cut_with_408(tmp_path) -> None:
    async with listening(tmp_path) as api:
        reader, writer = await api.connect()
        head = b"POST / HTTP/1.1\r\nHost: simfarm\r\n" + b"X-Slow: a\r\n" * 1000 + b"\r\n"
        sender = asyncio.create_task(trickle(writer, head))
        async with asyncio.timeout(EVENTUALLY_SECONDS):
            received = await closed_by_server(reader)
        assert not sender.done()
        sender.cancel()
        assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received
        assert (await api.services()).status_code == 200
        writer.close()


async def test_a_body_trickle_is_cut_with_408(tmp_path) -> None:
    async with listening(tmp_path) as api:
        reader, writer = await api.connect()
        body = b'{"action":"GET_SERVICES","key":"%s","pad":"%s"}' % (KEY.encode(), b"x" * 1000)
        writer.write(request_head(len(body)))
        sender = asyncio.create_task(trickle(writer, body))
        await wait_until(lambda: api.server.requests_in_flight == 1)
        assert (await api.services()).status_code == 200  # served meanwhile
        async with asyncio.timeout(EVENTUALLY_SECONDS):
            received = await closed_by_server(reader)
        assert not sender.done()
        sender.cancel()
        assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received
        await wait_until(lambda: api.server.requests_in_flight == 0)
        writer.close()


async def test_oversized_headers_get_431(tmp_path) -> None:
    async with listening(tmp_path, request=EVENTUALLY_SECONDS) as api:
        reader, writer = await api.connect()
        writer.write(b"POST / HTTP/1.1\r\nHost: simfarm\r\nX-Big: " + b"a" * (2 * MAX_HEADER_BYTES))
        async with asyncio.timeout(EVENTUALLY_SECONDS):
            received = await closed_by_server(reader)
        assert received.startswith(b"HTTP/1.1 431 "), received[:100]
        writer.close()


# --- how many at once ---------------------------------------------------------------------------


async def test_requests_beyond_the_limit_get_503_at_once(tmp_path) -> None:
    async with listening(tmp_path, request=EVENTUALLY_SECONDS * 4, max_requests=4) as api:
        # Four requests whose bodies never finish: the app holds them, waiting.
        stuck = [await api.connect() for _ in range(4)]
        for _, writer in stuck:
            writer.write(request_head(100) + b'{"action":')
        await wait_until(lambda: api.server.requests_in_flight == 4)
        reply = await api.services()
        assert reply.status_code == 503
        assert reply.json()["status"] == "ERROR"
        assert reply.headers["retry-after"] == "1"
        for _, writer in stuck:
            writer.close()
        await wait_until(lambda: api.server.requests_in_flight == 0)
        assert (await api.services()).status_code == 200


async def test_a_new_connection_beyond_the_cap_replaces_the_longest_idle(tmp_path) -> None:
    async with listening(tmp_path, idle=EVENTUALLY_SECONDS * 4, max_connections=20) as api:
        sockets = []
        for _ in range(20):
            sockets.append(await api.connect())
            await wait_until(lambda: api.server.connections == len(sockets))
        assert (await api.services()).status_code == 200
        oldest_reader, _ = sockets[0]
        async with asyncio.timeout(EVENTUALLY_SECONDS):
            assert await closed_by_server(oldest_reader) == b""
        await wait_until(lambda: api.server.connections == 19)
        # The next oldest was left alone: it still serves a request.
        reader, writer = sockets[1]
        body = b'{"action":"GET_SERVICES","key":"%s"}' % KEY.encode()
        writer.write(request_head(len(body)) + body)
        async with asyncio.timeout(EVENTUALLY_SECONDS):
            assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200 ")
        for _, writer in sockets:
            writer.close()


async def test_beyond_the_cap_with_none_idle_a_new_connection_gets_503(tmp_path) -> None:
    limits = {"request": EVENTUALLY_SECONDS * 4, "max_connections": 3}
    async with listening(tmp_path, **limits) as api:
        busy = [await api.connect() for _ in range(3)]
        for _, writer in busy:
            writer.write(b"POST / HTTP/1.1\r\n")  # a request begun: not idle
        await wait_until(lambda: api.server.connections == 3)
        reader, writer = await api.connect()
        async with asyncio.timeout(EVENTUALLY_SECONDS):
            received = await closed_by_server(reader)
        assert received.startswith(b"HTTP/1.1 503 "), received
        for _, w in [*busy, (reader, writer)]:
            w.close()


@pytest.mark.parametrize("files", [64, 1000])
async def test_connections_are_capped_at_half_the_file_limit(tmp_path, files) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(files, 64), hard))
    try:
        async with listening(tmp_path) as api:
            assert api.server.max_connections == min(1024, max(files, 64) // 2)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- the daemon's own listener ------------------------------------------------------------------

REPO_ROOT = Path(__file__).resolve().parents[3]
#: The file limit the daemon runs under below: as small as the one the problem was seen with.
SMALL_FILE_LIMIT = 256
#: Idle sockets held open against it: nearly all of its descriptors.
IDLE_SOCKETS = 250


def daemon_config(tmp_path: Path, push_url: str, **server) -> dict:
    return {
        "server": {"host": "127.0.0.1", "port": 0, **server},
        "admin": {"host": "127.0.0.1", "port": 0},
        "marketplace": {"key": KEY, "push_url": push_url, "push_retry_seconds": 1},
        "storage": {"path": str(tmp_path / "simfarm.db")},
        "offer": {"services": ["vk"]},
    }


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("idle_timeout_seconds", 0),
        ("request_timeout_seconds", -1),
        ("max_connections", 0),
        ("max_requests", "many"),
    ],
)
def test_bad_server_limits_are_refused_naming_the_key(tmp_path, key, value) -> None:
    with pytest.raises(ConfigError) as refused:
        config_from_dict(daemon_config(tmp_path, "http://127.0.0.1:9/", **{key: value}), environ={})
    assert refused.value.key == f"server.{key}"


async def test_the_daemon_listens_with_the_configured_limits(tmp_path) -> None:
    config = config_from_dict(
        daemon_config(tmp_path, "http://127.0.0.1:9/", idle_timeout_seconds=IDLE_SECONDS),
        environ={},
    )
    daemon = Daemon(config)
    await daemon.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
        async with asyncio.timeout(EVENTUALLY_SECONDS):
            assert await closed_by_server(reader) == b""
        writer.close()
    finally:
        await daemon.stop()


def _small_file_limit() -> None:
    """Runs in the child before it starts: the soft limit of a default desktop session."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (SMALL_FILE_LIMIT, hard))


async def test_with_a_small_file_limit_idle_sockets_stop_neither_sales_nor_pushes(
    tmp_path,
) -> None:
    market = FakeMarketplace()
    await market.start()
    config = tmp_path / "simfarm.toml"
    config.write_text(
        f"""
[server]
host = "127.0.0.1"
port = 0
[admin]
port = 0
[marketplace]
key = "{KEY}"
push_url = "{market.url}"
push_retry_seconds = 1
[storage]
path = "{(tmp_path / "simfarm.db").as_posix()}"
[offer]
services = ["vk"]
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIMFARM_", "NOTIFY_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    log = tmp_path / "daemon.log"
    with log.open("wb") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.gateway.crash_daemon",
            str(config),
            "2",
            cwd=REPO_ROOT,
            env=env,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            preexec_fn=_small_file_limit,
        )
    sockets: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port = int((await read_until(proc.stdout, r"^ready (\d+)", EVENTUALLY_SECONDS))[1])
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=url, timeout=EVENTUALLY_SECONDS) as client:
            order = {"country": "germany", "operator": "any", "service": "vk", "sum": 10}
            issued = await client.post("/", json={"action": "GET_NUMBER", "key": KEY, **order})
            assert issued.json()["status"] == "SUCCESS", issued.text
        slot = next(n for n in range(2) if int(sim(n).number) == issued.json()["number"])

        for _ in range(IDLE_SOCKETS):
            sockets.append(await asyncio.open_connection("127.0.0.1", port))

        # An SMS arrives on the leased number: stored, and pushed to the marketplace.
        proc.stdin.write(f"sms {slot} fp-1\n".encode())
        await proc.stdin.drain()
        await read_until(proc.stdout, r"^stored fp-1 ", EVENTUALLY_SECONDS)
        await market.wait_for(lambda received: len(received) == 1, EVENTUALLY_SECONDS)
        # And the marketplace is served, on new connections, while the idle ones are open.
        async with httpx.AsyncClient(base_url=url, timeout=EVENTUALLY_SECONDS) as client:
            for _ in range(5):
                reply = await client.post("/", json=SERVICES, headers={"Connection": "close"})
                assert reply.status_code == 200, reply.text
        still_open = sum(1 for r, _ in sockets if not r.at_eof())
        print(f"{still_open} of {IDLE_SOCKETS} idle sockets still open; pushes and sales went on")
    finally:
        for _, writer in sockets:
            writer.close()
        if proc.returncode is None:
            proc.stdin.close()
            try:
                async with asyncio.timeout(EVENTUALLY_SECONDS):
                    await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await market.stop()
    text = log.read_text(errors="replace")
    assert "Too many open files" not in text and "out of system resource" not in text, text[-3000:]
