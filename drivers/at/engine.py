"""The AT engine: one `asyncio.Protocol` per serial port, one command in flight at a time.

Bytes go through `AtLineClassifier`; the engine matches information lines and the final result
to the command it wrote (`command`, `command_with_pdu`) and hands every unsolicited result code to
listeners, also while a command waits. It never blocks the reader: listeners run from the loop
(`call_soon`/tasks) and their exceptions are logged.

Stale input is never mistaken for a reply: lines that arrive with no command pending are URCs,
stale finals (discarded) or unexpected lines; after a timeout the engine sends ESC + `AT` and
drains until the port is quiet before the next command may start (spec §2.1, F25).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import serial
import serial_asyncio_fast

from drivers.at.errors import AtError, AtTimeout, PortGone, error_for_final
from drivers.at.lines import (
    AtLineClassifier,
    Echo,
    Event,
    Final,
    Info,
    Prompt,
    Unexpected,
    Urc,
    UrcEvent,
)

log = logging.getLogger(__name__)

PROMPT_TIMEOUT_S = 5.0  # from writing `AT+CMGS=…` to the `> ` prompt
OPEN_TIMEOUT_S = 5.0  # from opening the port to the protocol being connected
CLOSE_TIMEOUT_S = 2.0  # close() waits this long for the transport to let go
DRAIN_QUIET_S = 0.2  # after a timeout: the port counts as drained after this much silence…
DRAIN_MAX_S = 3.0  # …or after this long at most
# Before a write, wait for this much silence if the modem is talking, but no longer than the
# second. 0 by default: a line that started before the write is classified as stale anyway
# (URCs in it still reach their listeners), so only unread input makes the engine wait.
PRE_WRITE_QUIET_S = 0.0
PRE_WRITE_DRAIN_MAX_S = 0.5
#: How long to let unread input run through the classifier before writing, when there is some.
UNREAD_INPUT_QUIET_S = 0.02

ESC = b"\x1b"
CTRL_Z = b"\x1a"

UrcCallback = Callable[[Urc], Any]
UrcMatcher = str | Callable[[Urc], bool]
TranscriptHook = Callable[[str, bytes], Any]


@dataclass(frozen=True, slots=True)
class AtReply:
    """What a successful command returned: its information lines and the final result."""

    command: str
    lines: list[str] = field(default_factory=list)
    final: str = "OK"

    def lines_with(self, prefix: str) -> list[str]:
        """The information lines that start with `prefix` (e.g. `+CPMS:`)."""
        return [line for line in self.lines if line.startswith(prefix)]

    def first(self, prefix: str) -> str | None:
        """The first information line starting with `prefix`, or None."""
        found = self.lines_with(prefix)
        return found[0] if found else None


def _log_line(event: str, port: str, text: str) -> None:
    """A line nobody asked for: its length at INFO, its content (maybe SMS text) only at DEBUG."""
    if log.isEnabledFor(logging.DEBUG):
        log.debug("event=%s port=%s line=%r", event, port, text)
    else:
        log.info("event=%s port=%s chars=%d", event, port, len(text))


def normalize_command(command: str) -> str:
    """`+CPMS?` -> `AT+CPMS?`; refuses characters that would break the line framing."""
    line = command.strip()
    if not line.upper().startswith("AT"):
        line = "AT" + line
    if any(char in line for char in "\r\n\x1a\x1b") or not line.isascii():
        raise ValueError(f"an AT command must be one line of ASCII: {command!r}")
    return line


def urc_matches(matcher: UrcMatcher, urc: Urc) -> bool:
    """A string matcher is a URC name (`+CMTI`, `RDY`, `^BOOT`); a callable decides itself."""
    if isinstance(matcher, str):
        return urc.name == matcher.upper()
    return bool(matcher(urc))


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen so nobody logs 'exception was never retrieved'."""
    if not future.cancelled():
        future.exception()


@dataclass(slots=True)
class _Exchange:
    """The command in flight: what was written and what has come back so far."""

    command: str
    final: asyncio.Future[Final]
    prompt: asyncio.Future[None] | None
    lines: list[str] = field(default_factory=list)


class AtEngine(asyncio.Protocol):
    """AT request/response and URC dispatch over one serial port."""

    def __init__(
        self,
        port: str = "<unopened>",
        *,
        drain_quiet_s: float = DRAIN_QUIET_S,
        drain_max_s: float = DRAIN_MAX_S,
        pre_write_quiet_s: float = PRE_WRITE_QUIET_S,
    ) -> None:
        self.port = port
        self.on_unexpected: Callable[[str, bytes], Any] | None = None
        self.on_connection_lost: Callable[[BaseException | None], Any] | None = None
        self._drain_quiet_s = drain_quiet_s
        self._drain_max_s = drain_max_s
        self._pre_write_quiet_s = pre_write_quiet_s
        self._classifier = AtLineClassifier()
        self._lock = asyncio.Lock()
        self._transport: asyncio.Transport | None = None
        self._connected: asyncio.Future[None] | None = None
        self._lost: asyncio.Future[None] | None = None
        self._closed = False
        self._closing = False
        self._exchange: _Exchange | None = None
        self._listeners: list[tuple[str | None, UrcCallback]] = []
        self._waiters: list[tuple[UrcMatcher, asyncio.Future[Urc]]] = []
        self._callback_tasks: set[asyncio.Task[Any]] = set()
        self._transcript: TranscriptHook | None = None
        self._rx_seen = asyncio.Event()
        self._last_rx = float("-inf")
        self._stale_finals = 0
        self._needs_drain = False
        self._timeouts = 0

    # -- opening and closing -------------------------------------------------------------------

    @classmethod
    async def open(cls, port_path: str, baudrate: int = 115200, **options: Any) -> AtEngine:
        """Open `port_path` (a tty, a pty slave, or a pyserial URL) and return its engine."""
        loop = asyncio.get_running_loop()
        engine = cls(port_path, **options)
        engine._connected = loop.create_future()
        engine._lost = loop.create_future()
        try:
            await serial_asyncio_fast.create_serial_connection(
                loop, lambda: engine, port_path, baudrate=baudrate, exclusive=True
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            log.warning("event=open_failed port=%s error=%r", port_path, str(exc))
            raise PortGone(f"cannot open the serial port: {exc}", port=port_path) from exc
        try:
            await asyncio.wait_for(asyncio.shield(engine._connected), OPEN_TIMEOUT_S)
        except TimeoutError as exc:
            raise PortGone("serial port did not come up", port=port_path) from exc
        log.info("event=port_open port=%s baudrate=%d", port_path, baudrate)
        return engine

    @property
    def timeouts(self) -> int:
        """Commands since the port was opened that got no prompt or final result in time."""
        return self._timeouts

    @property
    def is_open(self) -> bool:
        return self._transport is not None and not self._closed

    async def close(self) -> None:
        """Close the port; a pending command fails with `PortGone`."""
        if self._transport is None or self._closed:
            return
        self._closing = True
        self._transport.close()
        if self._lost is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._lost), CLOSE_TIMEOUT_S)

    # -- asyncio.Protocol ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        if self._connected is not None and not self._connected.done():
            self._connected.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self._last_rx = asyncio.get_running_loop().time()
            self._rx_seen.set()
            self._record("rx", data)
            for event in self._classifier.feed(data):
                self._handle(event)
        except Exception:  # the reader must survive anything; this is a bug, not bad input
            log.exception("event=reader_error port=%s", self.port)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._closed = True
        self._transport = None
        reason = "closed" if self._closing and exc is None else f"lost: {exc or 'closed'}"
        if self._closing and exc is None:
            log.info("event=port_closed port=%s", self.port)
        else:
            log.warning("event=port_lost port=%s error=%r", self.port, str(exc))
        try:
            for event in self._classifier.flush():
                if isinstance(event, UrcEvent):
                    self._dispatch_urc(event.urc)
        except Exception:
            log.exception("event=reader_error port=%s", self.port)
        exchange = self._exchange
        if exchange is not None:
            for future in (exchange.final, exchange.prompt):
                if future is not None and not future.done():
                    future.set_exception(PortGone(f"serial port {reason}", port=self.port))
        for _, waiter in list(self._waiters):
            if not waiter.done():
                waiter.set_exception(PortGone(f"serial port {reason}", port=self.port))
        if self.on_connection_lost is not None:
            self._call_soon_safely(self.on_connection_lost, exc)
        if self._lost is not None and not self._lost.done():
            self._lost.set_result(None)

    # -- listeners -----------------------------------------------------------------------------

    def add_listener(self, callback: UrcCallback) -> Callable[[], None]:
        """Call `callback(urc)` for every URC; returns a function that removes it."""
        return self._add(None, callback)

    def on_urc(self, name: str, callback: UrcCallback) -> Callable[[], None]:
        """Call `callback(urc)` for URCs named `name` (`+CMTI`, `RDY`, `^BOOT`…)."""
        return self._add(name.upper(), callback)

    def _add(self, name: str | None, callback: UrcCallback) -> Callable[[], None]:
        entry = (name, callback)
        self._listeners.append(entry)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(entry)

        return remove

    def set_transcript(self, hook: TranscriptHook | None) -> None:
        """Switch the byte trace on (`hook("rx"|"tx", data)`) or off (None) at run time."""
        self._transcript = hook

    def urc_future(self, matcher: UrcMatcher) -> asyncio.Future[Urc]:
        """A future for the next URC that `matcher` accepts, registered right now.

        Register before sending the command that provokes the URC, then await the future.
        """
        future: asyncio.Future[Urc] = asyncio.get_running_loop().create_future()
        if self._closed:
            future.set_exception(PortGone("serial port is closed", port=self.port))
            future.add_done_callback(_retrieve)
            return future
        entry = (matcher, future)
        self._waiters.append(entry)

        def forget(done: asyncio.Future[Urc]) -> None:
            _retrieve(done)
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

        future.add_done_callback(forget)
        return future

    async def wait_for_urc(self, matcher: UrcMatcher, timeout: float) -> Urc:
        """Await the next URC that `matcher` accepts; `AtTimeout` when none comes in time."""
        future = self.urc_future(matcher)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError as exc:
            raise AtTimeout(
                f"no URC matching {matcher!r} within {timeout} s", port=self.port
            ) from exc

    # -- commands ------------------------------------------------------------------------------

    async def command(
        self,
        command: str,
        *,
        timeout: float,
        expect: str | Iterable[str] | None = None,
    ) -> AtReply:
        """Send one command line and return its reply, or raise a typed `AtError`.

        `command` may omit the `AT` (`"+CPMS?"`). `expect` names extra prefixes whose lines are
        this command's responses rather than URCs. `timeout` is the caller's: the driver's
        timings know how long each command may take (`drivers.at.commands.Wait`).
        """
        line = normalize_command(command)
        return await self._run(line, expect, timeout, body=None, prompt_timeout=PROMPT_TIMEOUT_S)

    async def command_with_pdu(
        self,
        command: str,
        body: str,
        *,
        timeout: float,
        prompt_timeout: float = PROMPT_TIMEOUT_S,
        expect: str | Iterable[str] | None = None,
    ) -> AtReply:
        """Send `command` (e.g. `+CMGS=23`), wait for `> `, send `body` + Ctrl-Z, await the reply.

        On any failure while the prompt is armed the engine sends ESC so the modem leaves it.
        """
        line = normalize_command(command)
        if any(char in body for char in "\r\n\x1a\x1b") or not body.isascii():
            raise ValueError("a PDU body must be one line of ASCII (hex)")
        return await self._run(line, expect, timeout, body=body, prompt_timeout=prompt_timeout)

    async def _run(
        self,
        line: str,
        expect: str | Iterable[str] | None,
        timeout: float,
        *,
        body: str | None,
        prompt_timeout: float,
    ) -> AtReply:
        async with self._lock:
            self._check_open(line)
            await self._settle_before_write()
            self._check_open(line)
            loop = asyncio.get_running_loop()
            exchange = _Exchange(
                line,
                loop.create_future(),
                loop.create_future() if body is not None else None,
            )
            for future in (exchange.final, exchange.prompt):
                if future is not None:
                    future.add_done_callback(_retrieve)
            self._exchange = exchange
            self._classifier.begin_command(line, expect)
            stage = "reply"
            try:
                self._write(line.encode("ascii") + b"\r")
                log.debug("event=command port=%s command=%s", self.port, line)
                if body is not None:
                    stage = "prompt"
                    if await self._await_prompt(exchange, prompt_timeout):
                        self._classifier.expect_echo(body)
                        self._write(body.encode("ascii") + CTRL_Z)
                    stage = "reply"
                async with asyncio.timeout(timeout):
                    final = await asyncio.shield(exchange.final)
            except TimeoutError:
                self._abandon(exchange)
                self._timeouts += 1
                limit = prompt_timeout if stage == "prompt" else timeout
                log.warning(
                    "event=timeout port=%s command=%s waiting_for=%s timeout_s=%s",
                    self.port,
                    line,
                    stage,
                    limit,
                )
                await self._recover()
                raise AtTimeout(
                    f"no {stage} within {limit} s (wrong port or baud rate, busy or hung modem?)",
                    command=line,
                    port=self.port,
                ) from None
            except asyncio.CancelledError:
                self._abandon(exchange)
                self._needs_drain = True
                if stage == "prompt":
                    self._write_quietly(ESC)
                raise
            except BaseException:
                self._abandon(exchange)
                if stage == "prompt":
                    self._write_quietly(ESC)
                raise
            self._exchange = None
            error = error_for_final(final.text, command=line, port=self.port)
            if error is not None:
                log.info(
                    "event=command_failed port=%s command=%s final=%r",
                    self.port,
                    line,
                    final.text,
                )
                raise error
            return AtReply(line, list(exchange.lines), final.text)

    async def _await_prompt(self, exchange: _Exchange, timeout: float) -> bool:
        """True once `> ` came; False when a final result came instead (an error, usually)."""
        assert exchange.prompt is not None
        done, _ = await asyncio.wait(
            {exchange.prompt, exchange.final},
            timeout=timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if exchange.prompt in done:
            exchange.prompt.result()  # raises PortGone if that is why it finished
            return True
        if exchange.final in done:
            return False
        raise TimeoutError

    def _abandon(self, exchange: _Exchange) -> None:
        if self._exchange is exchange:
            self._exchange = None
        self._classifier.end_command()

    async def _recover(self) -> None:
        """After a timeout: ESC (leave a `> ` prompt), `AT`, then drain until quiet."""
        self._stale_finals = 0
        self._write_quietly(ESC)
        self._write_quietly(b"AT\r")
        await self._drain(self._drain_quiet_s, self._drain_max_s, require_final=True)
        log.info("event=drained port=%s stale_finals=%d", self.port, self._stale_finals)

    async def _settle_before_write(self) -> None:
        """Let stale input run through the classifier before a new command goes out."""
        if self._needs_drain:
            self._needs_drain = False
            await self._drain(self._drain_quiet_s, self._drain_max_s, require_final=False)
            return
        loop = asyncio.get_running_loop()
        quiet = self._pre_write_quiet_s
        if self._input_waiting():
            await self._drain(
                max(quiet, UNREAD_INPUT_QUIET_S), PRE_WRITE_DRAIN_MAX_S, require_final=False
            )
        elif quiet > 0 and loop.time() - self._last_rx < quiet:
            await self._drain(quiet, PRE_WRITE_DRAIN_MAX_S, require_final=False)

    def _input_waiting(self) -> bool:
        """Whether bytes sit in the port's input queue that the reader has not handled yet."""
        transport = self._transport
        port = transport.get_extra_info("serial") if transport is not None else None
        try:
            return bool(port is not None and port.in_waiting)
        except (serial.SerialException, OSError, ValueError, TypeError):
            return False

    async def _drain(self, quiet_s: float, max_s: float, *, require_final: bool) -> None:
        """Return after `quiet_s` of silence (and a final result, if required), or `max_s`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max_s
        while not self._closed:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._rx_seen.clear()
            try:
                async with asyncio.timeout(min(quiet_s, left)):
                    await self._rx_seen.wait()
            except TimeoutError:
                if not require_final or self._stale_finals > 0:
                    return

    def _check_open(self, line: str) -> None:
        if self._closed or self._transport is None:
            raise PortGone("serial port is closed", command=line, port=self.port)

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise PortGone("serial port is closed", port=self.port)
        self._record("tx", data)
        transport.write(data)

    def _write_quietly(self, data: bytes) -> None:
        with contextlib.suppress(AtError):
            self._write(data)

    # -- incoming events -----------------------------------------------------------------------

    def _handle(self, event: Event) -> None:
        exchange = self._exchange
        if isinstance(event, UrcEvent):
            self._dispatch_urc(event.urc)
        elif isinstance(event, Info):
            if exchange is not None:
                exchange.lines.append(event.text)
            else:
                self._report_unexpected(event.text, event.raw)
        elif isinstance(event, Final):
            if event.solicited and exchange is not None and not exchange.final.done():
                exchange.final.set_result(event)
            else:
                self._stale_finals += 1
                _log_line("stale_discarded", self.port, event.text)
        elif isinstance(event, Prompt):
            if exchange is not None and exchange.prompt is not None and not exchange.prompt.done():
                exchange.prompt.set_result(None)
            else:
                log.debug("event=stray_prompt port=%s", self.port)
        elif isinstance(event, Echo):
            log.debug("event=echo port=%s line=%r", self.port, event.text)
        elif isinstance(event, Unexpected):
            self._report_unexpected(event.text, event.raw)

    def _report_unexpected(self, text: str, raw: bytes) -> None:
        _log_line("unexpected", self.port, text)
        if self.on_unexpected is not None:
            self._call_soon_safely(self.on_unexpected, text, raw)

    def _dispatch_urc(self, urc: Urc) -> None:
        log.debug("event=urc port=%s name=%s", self.port, urc.name)
        for matcher, waiter in list(self._waiters):
            if waiter.done():
                continue
            try:
                matched = urc_matches(matcher, urc)
            except Exception:
                log.exception("event=matcher_error port=%s name=%s", self.port, urc.name)
                continue
            if matched:
                waiter.set_result(urc)
        for name, callback in list(self._listeners):
            if name is None or name == urc.name:
                self._call_soon_safely(callback, urc)

    def _call_soon_safely(self, callback: Callable[..., Any], *args: Any) -> None:
        asyncio.get_running_loop().call_soon(self._run_callback, callback, args)

    def _run_callback(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            result = callback(*args)
        except Exception:
            log.exception("event=listener_error port=%s callback=%r", self.port, callback)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._await_callback(result, callback))
            self._callback_tasks.add(task)
            task.add_done_callback(self._callback_tasks.discard)

    async def _await_callback(self, result: Awaitable[Any], callback: Callable[..., Any]) -> None:
        try:
            await result
        except Exception:
            log.exception("event=listener_error port=%s callback=%r", self.port, callback)

    def _record(self, direction: str, data: bytes) -> None:
        hook = self._transcript
        if hook is None:
            return
        try:
            hook(direction, data)
        except Exception:
            log.exception("event=transcript_error port=%s", self.port)
