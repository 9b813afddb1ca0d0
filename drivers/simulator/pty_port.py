"""The modem's end of a pseudo-terminal, served from the asyncio loop.

The client (the daemon, a test) opens `path` like /dev/ttyUSB0. The simulator keeps its own slave
descriptor open too, so a client closing and reopening the port never hangs up the master.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import tty
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Bytes read from the master per wake-up.
READ_CHUNK_BYTES = 4096
#: Pending output kept while nobody reads the port; beyond it the oldest bytes are dropped,
#: like a modem's UART buffer overflowing.
MAX_PENDING_OUTPUT_BYTES = 256 * 1024


class PortClosed(ConnectionError):
    """The port was unplugged."""


class PtyPort:
    """One pty pair: `write()` sends to the client, `on_bytes` receives what the client wrote."""

    def __init__(self, on_bytes: Callable[[bytes], None], *, avoid_paths: set[str] = frozenset()):
        self._on_bytes = on_bytes
        self._avoid_paths = avoid_paths
        self._loop: asyncio.AbstractEventLoop | None = None
        self._master_fd = -1
        self._slave_fd = -1
        self._pending = bytearray()
        self._writer_armed = False
        self.path = ""
        self.dropped_bytes = 0

    @property
    def is_open(self) -> bool:
        return self._master_fd >= 0

    def open(self) -> str:
        """Open a new pty (whose path is not in `avoid_paths`) and start serving it."""
        self._loop = asyncio.get_running_loop()
        spares: list[tuple[int, int]] = []
        try:
            for _ in range(16):
                master_fd, slave_fd = os.openpty()
                path = os.ttyname(slave_fd)
                if path not in self._avoid_paths:
                    break
                spares.append((master_fd, slave_fd))
            else:
                raise OSError("could not get a fresh pty path")
        finally:
            for spare in spares:
                for fd in spare:
                    os.close(fd)
        # Raw on both ends: no echo, no CR/LF translation, bytes pass untouched.
        tty.setraw(slave_fd)
        tty.setraw(master_fd)
        os.set_blocking(master_fd, False)
        self._master_fd, self._slave_fd, self.path = master_fd, slave_fd, path
        self._loop.add_reader(master_fd, self._read_ready)
        return path

    def close(self) -> None:
        """Close both ends: a client reading the slave gets an error or EOF, like a USB unplug."""
        if self._master_fd < 0:
            return
        assert self._loop is not None
        self._loop.remove_reader(self._master_fd)
        if self._writer_armed:
            self._loop.remove_writer(self._master_fd)
            self._writer_armed = False
        os.close(self._master_fd)
        os.close(self._slave_fd)
        self._master_fd = self._slave_fd = -1
        self._pending.clear()

    def write(self, data: bytes) -> None:
        if self._master_fd < 0:
            raise PortClosed(f"port {self.path} is closed")
        self._pending += data
        if len(self._pending) > MAX_PENDING_OUTPUT_BYTES:
            excess = len(self._pending) - MAX_PENDING_OUTPUT_BYTES
            del self._pending[:excess]
            self.dropped_bytes += excess
        self._flush()

    def _flush(self) -> None:
        assert self._loop is not None
        while self._pending:
            try:
                written = os.write(self._master_fd, self._pending)
            except BlockingIOError:
                break
            except OSError as exc:  # EIO: nobody can ever read it; drop like a dead UART
                if exc.errno != errno.EIO:
                    raise
                self.dropped_bytes += len(self._pending)
                self._pending.clear()
                break
            del self._pending[:written]
        want_writer = bool(self._pending)
        if want_writer and not self._writer_armed:
            self._loop.add_writer(self._master_fd, self._flush)
        elif not want_writer and self._writer_armed:
            self._loop.remove_writer(self._master_fd)
        self._writer_armed = want_writer

    def _read_ready(self) -> None:
        try:
            data = os.read(self._master_fd, READ_CHUNK_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO while no slave is open; ours stays open, so this is transient
        if data:
            try:
                self._on_bytes(data)
            except Exception:  # a simulator bug must not stop the port from being served
                log.exception("simulated modem failed on input port=%s", self.path)
