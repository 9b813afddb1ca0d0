"""Serving a Starlette app with uvicorn inside an event loop the caller owns, with bounded clients.

uvicorn on its own keeps a connection that never sends a request open for ever, lets a client
take as long as it likes over a request's headers and body (a byte every few seconds resets its
only timer), reads headers of any size, and counts idle connections against its concurrency
limit, so that a few hundred idle sockets turn every real request away - or, against a small
file limit, take the last descriptors the store and the pushes need. Here:

* a connection with no request in progress is closed after `idle_timeout_seconds`, counted from
  when it opened or its last reply went out, whatever bytes arrive that do not start a request;
* a request must arrive whole, headers and body, within `request_timeout_seconds` of its first
  byte (408), with at most `MAX_HEADER_BYTES` of headers (431);
* at most `max_connections` are open at once - never more than half the process's file limit -
  and a new one beyond that takes the place of the longest idle one, or gets 503 when none is
  idle; at most `max_requests` are being handled at once, and more get 503 at once.

This is the defence for a listener on a small machine; heavy slow-client defence belongs to a
reverse proxy in front.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import resource
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

log = logging.getLogger(__name__)

#: How long in-flight HTTP requests may take to finish on shutdown.
SHUTDOWN_GRACE_SECONDS = 5.0
#: How long to wait for the listening socket before giving up.
START_TIMEOUT_SECONDS = 30.0
#: The most header bytes a request may carry (request line included).
MAX_HEADER_BYTES = 32 * 1024
#: uvicorn's listen backlog when the file limit leaves room for it.
DEFAULT_BACKLOG = 2048
#: Seconds a client is told to wait after a 503.
RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """How long and how many clients may hold the listener; see the module's docstring."""

    idle_timeout_seconds: float = 5.0
    request_timeout_seconds: float = 10.0
    max_connections: int = 1024
    max_requests: int = 128

    @classmethod
    def of(cls, settings: _LimitSettings) -> ConnectionLimits:
        """The limits a configuration's `[server]` table sets."""
        return cls(
            idle_timeout_seconds=settings.idle_timeout_seconds,
            request_timeout_seconds=settings.request_timeout_seconds,
            max_connections=settings.max_connections,
            max_requests=settings.max_requests,
        )


class _LimitSettings(Protocol):
    idle_timeout_seconds: float
    request_timeout_seconds: float
    max_connections: int
    max_requests: int


def descriptor_limit() -> int:
    """How many files this process may have open (the soft RLIMIT_NOFILE)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def error_bytes(status: int, reason: str, message: str, *, headers: bytes = b"") -> bytes:
    """A whole HTTP/1.1 error reply that closes the connection, in the API's JSON shape."""
    body = json.dumps({"status": "ERROR", "error": message}).encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: application/json; charset=utf-8\r\n"
        b"content-length: %d\r\nconnection: close\r\n%s\r\n%s"
        % (status, reason.encode(), len(body), headers, body)
    )


class BoundedHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with the deadlines and the connection cap described above.

    One timer per connection, for whichever phase it is in: idle (no request begun, no reply
    due), receiving (a request begun and not complete) or busy (the app has the whole request;
    not bounded here).
    """

    def __init__(self, *args: Any, limits: ConnectionLimits, max_connections: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.max_connections = max_connections
        self._timer: asyncio.TimerHandle | None = None
        self._receiving = False
        self._headers_done = False
        self._head_bytes = 0
        self.idle_since: float | None = None

    # --- connection ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self._open_connections() > self.max_connections and not self._evict_longest_idle():
            transport.write(
                error_bytes(
                    503,
                    "Service Unavailable",
                    "too many connections, try again",
                    headers=b"retry-after: %d\r\n" % RETRY_AFTER_SECONDS,
                )
            )
            transport.close()
            return
        self._become_idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self.idle_since = None
        super().connection_lost(exc)

    def _open_connections(self) -> int:
        return sum(1 for c in self.connections if not c.transport.is_closing())

    def _evict_longest_idle(self) -> bool:
        """Close the connection idle the longest (not this one); False when none is idle."""
        idle = [
            c
            for c in self.connections
            if c is not self
            and isinstance(c, BoundedHttpProtocol)
            and c.idle_since is not None
            and not c.transport.is_closing()
        ]
        if not idle:
            return False
        victim = min(idle, key=lambda c: c.idle_since or 0.0)
        victim.idle_since = None
        victim.transport.close()
        return True

    # --- phases -------------------------------------------------------------------------------

    def _become_idle(self) -> None:
        self._cancel_timer()
        self.idle_since = self.loop.time()
        self._timer = self.loop.call_later(self.limits.idle_timeout_seconds, self._idle_too_long)

    def _idle_too_long(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._receiving and not self._headers_done and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEADER_BYTES:
                self._refuse(431, "Request Header Fields Too Large", "request headers too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._cancel_timer()
        self.idle_since = None
        self._receiving = True
        self._headers_done = False
        self._head_bytes = 0
        self._timer = self.loop.call_later(
            self.limits.request_timeout_seconds, self._request_too_slow
        )

    def on_headers_complete(self) -> None:
        self._headers_done = True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        # Before uvicorn's own handling, which returns early when the reply went out already.
        self._cancel_timer()
        self._receiving = False
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or self._receiving:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            return  # a pipelined request is being handled
        self._unset_keepalive_if_required()  # ours replaces uvicorn's keep-alive timer
        self._become_idle()

    def _request_too_slow(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        message = f"request not received within {self.limits.request_timeout_seconds:g} s"
        if not self._headers_done:
            answerable = cycle is None or cycle.response_complete
        else:
            answerable = cycle is not None and not cycle.response_started and not self.pipeline
            if answerable:
                # The app is waiting for the rest of the body: it sees the client gone, and
                # whatever it answers goes nowhere, so the 408 below is the only reply.
                cycle.disconnected = True
                cycle.message_event.set()
        if answerable:
            self._refuse(408, "Request Timeout", message)
        else:
            self.transport.close()

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._cancel_timer()
        self.transport.write(error_bytes(status, reason, message))
        self.transport.close()

    def _unsupported_upgrade_warning(self) -> None:
        # uvicorn logs two WARNING lines per such request, which anyone could repeat; the
        # request is served as plain HTTP either way.
        log.debug("event=http_upgrade_ignored")


class LimitRequests:
    """At most `limit` requests in the app at once; the next gets 503 without waiting."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.in_flight = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.limit:
            body = json.dumps({"status": "ERROR", "error": "busy, try again"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json; charset=utf-8"),
                        (b"content-length", b"%d" % len(body)),
                        (b"retry-after", b"%d" % RETRY_AFTER_SECONDS),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the caller owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


async def watch_serving(task: asyncio.Task[None], stopping: Callable[[], bool], what: str) -> None:
    """Wait for a server's task to end; raise unless its end was asked for (by stop()).

    A cancelled caller (a supervisor stopping) leaves the server itself to stop(), which ends it
    gracefully; the server's own error, if it had one, is what is raised.
    """
    await asyncio.wait({task})
    if not stopping():
        task.result()
        raise RuntimeError(f"{what} stopped serving")


class BackgroundServer:
    """An HTTP server running as a task; `port` is the real one even when asked for 0."""

    def __init__(
        self, app: Any, host: str, port: int, limits: ConnectionLimits | None = None
    ) -> None:
        self.limits = limits or ConnectionLimits()
        files = descriptor_limit()
        # Half the descriptors at most for clients: the store, the modems and the pushes
        # need the rest. An accept burst adds up to a backlog's worth more for a moment.
        self.max_connections = min(self.limits.max_connections, max(1, files // 2))
        if self.max_connections < self.limits.max_connections:
            log.warning(
                "event=api_connections_capped max_connections=%d file_limit=%d detail=%s",
                self.max_connections,
                files,
                '"raise LimitNOFILE to allow more"',
            )
        self._requests = LimitRequests(app, self.limits.max_requests)
        config = uvicorn.Config(
            self._requests,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            ws="none",
            http=functools.partial(  # type: ignore[arg-type]
                BoundedHttpProtocol, limits=self.limits, max_connections=self.max_connections
            ),
            timeout_keep_alive=self.limits.idle_timeout_seconds,  # type: ignore[arg-type]
            backlog=min(DEFAULT_BACKLOG, max(16, files // 4)),
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,  # type: ignore[arg-type]
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def serving(self) -> bool:
        """Listening and answering now (not while starting, not once ended)."""
        return self._task is not None and not self._task.done() and self._server.started

    async def start(self) -> None:
        if self._server.started:  # served before and ended: a uvicorn server runs only once
            self._server = _Server(self._server.config)
        self._stopping = False
        self._task = asyncio.create_task(self._server.serve(), name="http-server")
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises why it could not start
                    raise OSError(
                        f"could not listen on {self._server.config.host}:{self._server.config.port}"
                    )
                await asyncio.sleep(0.01)

    @property
    def host(self) -> str:
        return self._server.servers[0].sockets[0].getsockname()[0]

    @property
    def port(self) -> int:
        return self._server.servers[0].sockets[0].getsockname()[1]

    async def serve(self) -> None:
        """Serve until stop(); raise when serving ends otherwise, so a supervisor restarts it."""
        if self._task is None or self._task.done():
            await self.start()
        assert self._task is not None
        await watch_serving(self._task, lambda: self._stopping, "the HTTP server")

    @property
    def requests_in_flight(self) -> int:
        """Requests the app is handling now (their body may still be arriving)."""
        return self._requests.in_flight

    @property
    def connections(self) -> int:
        """Client connections open now."""
        state: ServerState = self._server.server_state
        return sum(1 for c in state.connections if not c.transport.is_closing())

    async def stop(self) -> None:
        self._stopping = True
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
