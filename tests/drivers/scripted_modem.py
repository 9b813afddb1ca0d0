"""A small scripted modem on the master side of a pseudo-terminal, for engine tests.

The engine under test opens the pty's slave path like a real `/dev/ttyUSBn`; this helper reads
what it writes (command lines ending in CR, ESC, PDU bodies ending in Ctrl-Z) from the master fd
in the same event loop (`loop.add_reader`) and answers from a table of rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

ESC = 0x1B
CTRL_Z = 0x1A
MAX_BUFFER_BYTES = 64 * 1024  # bound on what the fake modem buffers from the engine
READ_CHUNK_BYTES = 4096

Reply = bytes | None
Responder = Reply | Callable[[str], Reply]


def frame(*lines: str | bytes) -> bytes:
    """Lines as a modem in verbose mode (ATV1) sends them: each one as `\\r\\n<line>\\r\\n`."""
    out = bytearray()
    for line in lines:
        out += b"\r\n" + (line.encode() if isinstance(line, str) else line) + b"\r\n"
    return bytes(out)


@dataclass
class _PromptRule:
    body_reply: Callable[[str], Reply]


@dataclass
class ScriptedModem:
    """Answers command lines from `rules`; records everything it received."""

    master_fd: int
    echo: bool = False
    rules: dict[str, Responder | _PromptRule] = field(default_factory=dict)
    default: Responder = b"\r\nERROR\r\n"
    commands: list[str] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)
    escapes: int = 0
    _buffer: bytearray = field(default_factory=bytearray)
    _body: bytearray | None = None
    _prompt_rule: _PromptRule | None = None
    _closed: bool = False
    _waiters: list[tuple[str, int, asyncio.Future[None]]] = field(default_factory=list)

    def start(self) -> None:
        os.set_blocking(self.master_fd, False)
        asyncio.get_running_loop().add_reader(self.master_fd, self._on_readable)

    def on(self, command: str, reply: Responder) -> None:
        """Answer `command` (the line without CR, e.g. `AT+CSQ`) with bytes, None (silence)
        or a callable(command) -> bytes | None."""
        self.rules[command.upper()] = reply

    def on_prompt(self, command: str, body_reply: Callable[[str], Reply]) -> None:
        """Answer `command` with the `> ` prompt, then answer the body with `body_reply(body)`."""
        self.rules[command.upper()] = _PromptRule(body_reply)

    def send(self, data: bytes) -> None:
        """Write unsolicited bytes to the engine."""
        if not self._closed:
            os.write(self.master_fd, data)

    def close(self) -> None:
        """Pull the plug: the engine's side of the pty goes away."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self.master_fd)
        with contextlib.suppress(OSError):
            os.close(self.master_fd)

    async def wait_for_command(self, command: str, timeout: float, count: int = 1) -> None:
        """Return once `command` has been received `count` times (TimeoutError otherwise)."""
        wanted = command.upper()
        if self.commands.count(wanted) >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (wanted, count, future)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def _on_readable(self) -> None:
        try:
            data = os.read(self.master_fd, READ_CHUNK_BYTES)
        except BlockingIOError:
            return
        except OSError:  # the engine closed its side
            data = b""
        if not data:
            with contextlib.suppress(ValueError, OSError):
                asyncio.get_running_loop().remove_reader(self.master_fd)
            return
        if self.echo:
            self.send(data)
        for byte in data:
            self._take(byte)

    def _take(self, byte: int) -> None:
        if byte == ESC:
            self.escapes += 1
            self._body = None
            self._prompt_rule = None
            self._buffer.clear()
            return
        if self._body is not None:
            if byte == CTRL_Z:
                body = self._body.decode("ascii", "replace")
                rule = self._prompt_rule
                self._body = None
                self._prompt_rule = None
                self.bodies.append(body)
                if rule is not None:
                    self._write_reply(rule.body_reply(body))
            elif len(self._body) < MAX_BUFFER_BYTES:
                self._body.append(byte)
            return
        if byte in b"\r\n":
            if self._buffer:
                line = self._buffer.decode("ascii", "replace").strip().upper()
                self._buffer.clear()
                self._answer(line)
            return
        if len(self._buffer) < MAX_BUFFER_BYTES:
            self._buffer.append(byte)

    def _answer(self, line: str) -> None:
        self.commands.append(line)
        self._notify()
        rule = self.rules.get(line, self.default)
        if isinstance(rule, _PromptRule):
            self._prompt_rule = rule
            self._body = bytearray()
            self.send(b"\r\n> ")
            return
        reply = rule(line) if callable(rule) else rule
        self._write_reply(reply)

    def _write_reply(self, reply: Reply) -> None:
        if reply:
            self.send(reply)

    def _notify(self) -> None:
        for wanted, count, future in self._waiters:
            if not future.done() and self.commands.count(wanted) >= count:
                future.set_result(None)
