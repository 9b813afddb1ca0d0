"""Serving a Starlette app with uvicorn inside an event loop the caller owns."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Generator
from typing import Any

import uvicorn

#: How long in-flight HTTP requests may take to finish on shutdown.
SHUTDOWN_GRACE_SECONDS = 5.0
#: How long to wait for the listening socket before giving up.
START_TIMEOUT_SECONDS = 30.0


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the caller owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class BackgroundServer:
    """An HTTP server running as a task; `port` is the real one even when asked for 0."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def serving(self) -> bool:
        return self._task is not None and not self._task.done()

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
        if not self.serving:
            await self.start()
        assert self._task is not None
        task = self._task
        await asyncio.wait({task})  # a cancelled caller leaves the server to stop()
        if not self._stopping:
            task.result()
            raise RuntimeError("the HTTP server stopped serving")

    async def stop(self) -> None:
        self._stopping = True
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None
