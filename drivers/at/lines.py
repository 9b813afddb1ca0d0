"""Bytes from a modem -> lines -> classified events. Pure, synchronous and incremental.

`LineFramer` cuts bytes into lines (CR, LF, CRLF or `\\r\\r\\n`; empty lines dropped) and spots
the `> ` prompt that has no line end. `AtLineClassifier` puts every line into one of: echo,
information response, final result, prompt, unsolicited result code (URC), or unexpected.
It never raises on any byte: text is decoded as UTF-8 when valid, else latin-1, and the raw
bytes ride along.

The only context it needs is the command in flight (`begin_command`/`end_command`), because some
prefixes (`+CREG:`, `+CPIN:`, `+CUSD:`, `^ICCID:`…) are both the reply of their query and a URC:
while a command of that name is pending the line is a response, otherwise a URC. A line that was
already arriving before the command was written belongs to the past and is classified as if no
command were pending, so a late reply can never complete the next command.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

MAX_LINE_BYTES = 8192  # longer runs without a line end are cut (garbage, or a runaway modem)
MAX_CONTINUATION_LINES = 16  # a +CUSD text with raw line breaks is joined up to this many lines
_LINE_ENDS = b"\r\n"
_PROMPT = b"> "
# Bytes modems put around lines that carry no meaning (NUL on wake-up, stray ESC/Ctrl-Z).
_LINE_JUNK = " \t\x00\x1a\x1b"

# Colon-style URC names (`+CMTI: "SM",3`). Any `^NAME:` line (Huawei) is a URC too.
URC_PREFIXES: frozenset[str] = frozenset(
    {
        "+CMTI",
        "+CMT",
        "+CDS",
        "+CDSI",
        "+CBM",
        "+CBMI",
        "+CUSD",
        "+CLIP",
        "+CRING",
        "+CREG",
        "+CGREG",
        "+CEREG",
        "+C5GREG",
        "+CPIN",
        "+CFUN",
        "+CIEV",
        "+CGEV",
        "+CSMINS",
        "+CTZV",
        "+CTZE",
        "+QIND",
        "+QUSIM",
        "+QSIMSTAT",
        "+WIND",
        "+ZPASR",
        "+ZDONR",
        "+ZEND",
        "+ZUSIMR",
    }
)
# URCs whose header line is followed by one more line (the PDU, or the text in text mode).
TWO_LINE_URCS: frozenset[str] = frozenset({"+CMT", "+CDS", "+CBM"})
# Whole-word URCs: the line equals the word or starts with it followed by a space.
URC_WORDS: tuple[str, ...] = (
    "RING",
    "RDY",
    "SMS DONE",
    "PB DONE",
    "CALL READY",
    "SMS READY",
    "NORMAL POWER DOWN",
    "POWER DOWN",
    "UNDER-VOLTAGE",
    "OVER-VOLTAGE",
)
# Lines continued when their quotes are unbalanced (USSD text with raw line breaks).
_QUOTED_CONTINUATION = frozenset({"+CUSD"})

_COLON_NAME = re.compile(r"^([+^*$%#][A-Za-z0-9_]+)\s*:\s*(.*)$", re.DOTALL)
_COMMAND_NAME = re.compile(r"^([+^*$%#][A-Za-z0-9_]+)")
_CM_ERROR = re.compile(r"^\+CM([ES]) ERROR\s*:?\s*(.*)$", re.IGNORECASE)
_MODEM_ERROR = re.compile(r"^MODEM ERROR\s*:?\s*(.*)$")


class FinalKind(Enum):
    """Which final result code ended a command."""

    OK = "OK"
    ERROR = "ERROR"
    CME_ERROR = "+CME ERROR"
    CMS_ERROR = "+CMS ERROR"
    COMMAND_NOT_SUPPORT = "COMMAND NOT SUPPORT"
    NO_CARRIER = "NO CARRIER"
    BUSY = "BUSY"
    NO_ANSWER = "NO ANSWER"
    NO_DIALTONE = "NO DIALTONE"
    MODEM_ERROR = "MODEM ERROR"


_FINAL_WORDS: dict[str, FinalKind] = {
    "OK": FinalKind.OK,
    "ERROR": FinalKind.ERROR,
    "COMMAND NOT SUPPORT": FinalKind.COMMAND_NOT_SUPPORT,
    "NO CARRIER": FinalKind.NO_CARRIER,
    "BUSY": FinalKind.BUSY,
    "NO ANSWER": FinalKind.NO_ANSWER,
    "NO DIALTONE": FinalKind.NO_DIALTONE,
    "NO DIAL TONE": FinalKind.NO_DIALTONE,
}


@dataclass(frozen=True, slots=True)
class Urc:
    """One unsolicited result code: `name` (`+CMTI`, `RING`, `^RSSI`), `args` after the colon,
    the whole `line`, and for two-line URCs (`+CMT`, `+CDS`) the second line in `pdu`."""

    name: str
    args: str
    line: str
    pdu: str | None = None
    raw: bytes = b""


@dataclass(frozen=True, slots=True)
class Echo:
    """The modem repeating the command (or the PDU body) it was sent."""

    text: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Info:
    """An information response line of the pending command (e.g. `+CPMS: …`, a PDU line)."""

    text: str
    raw: bytes


@dataclass(frozen=True, slots=True)
class Final:
    """A final result code. `solicited` is False when no command was pending (a stale reply)."""

    kind: FinalKind
    text: str
    raw: bytes
    solicited: bool

    @property
    def ok(self) -> bool:
        return self.kind is FinalKind.OK


@dataclass(frozen=True, slots=True)
class Prompt:
    """The `> ` prompt asking for an SMS body."""


@dataclass(frozen=True, slots=True)
class UrcEvent:
    """An unsolicited result code, complete (two-line URCs carry their second line)."""

    urc: Urc


@dataclass(frozen=True, slots=True)
class Unexpected:
    """A line that is neither a URC nor a final result while no command is pending."""

    text: str
    raw: bytes


Event = Echo | Info | Final | Prompt | UrcEvent | Unexpected


@dataclass(frozen=True, slots=True)
class RawLine:
    """One framed line: the decoded text (junk around it stripped) and the bytes it came from."""

    text: str
    raw: bytes


def decode_line(raw: bytes) -> str:
    """Text of a line: UTF-8 when it is valid, otherwise latin-1 (which maps every byte)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    return text.strip(_LINE_JUNK)


class LineFramer:
    """Incremental bytes -> lines. Yields `RawLine`s and `Prompt`s; never raises."""

    def __init__(self) -> None:
        self._partial = bytearray()

    @property
    def has_partial(self) -> bool:
        """Whether bytes of an unfinished line are buffered."""
        return bool(self._partial.strip(b" \t\x00"))

    def feed(self, data: bytes) -> list[RawLine | Prompt]:
        out: list[RawLine | Prompt] = []
        for byte in data:
            if byte in _LINE_ENDS:
                self._emit(out)
                continue
            self._partial.append(byte)
            if len(self._partial) == len(_PROMPT) and self._partial == _PROMPT:
                # `> ` at the start of a line has no line end after it.
                self._partial.clear()
                out.append(Prompt())
            elif len(self._partial) >= MAX_LINE_BYTES:
                self._emit(out)
        return out

    def flush(self) -> list[RawLine | Prompt]:
        """The unfinished line as a line (at end of input)."""
        out: list[RawLine | Prompt] = []
        self._emit(out)
        return out

    def _emit(self, out: list[RawLine | Prompt]) -> None:
        if not self._partial:
            return
        raw = bytes(self._partial)
        self._partial.clear()
        text = decode_line(raw)
        if text in (">", "> "):
            out.append(Prompt())
        elif text:
            out.append(RawLine(text, raw))


def final_kind(text: str) -> FinalKind | None:
    """Which final result code a line is, or None."""
    kind = _FINAL_WORDS.get(text)
    if kind is not None:
        return kind
    match = _CM_ERROR.match(text)
    if match:
        return FinalKind.CME_ERROR if match.group(1).upper() == "E" else FinalKind.CMS_ERROR
    if _MODEM_ERROR.match(text):
        return FinalKind.MODEM_ERROR
    return None


def split_name(text: str) -> tuple[str, str] | None:
    """`+CMTI: "SM",3` -> (`+CMTI`, `"SM",3`); None when the line has no `<prefix>NAME:` head."""
    match = _COLON_NAME.match(text)
    if match is None:
        return None
    return match.group(1).upper(), match.group(2).strip()


def match_urc(text: str) -> tuple[str, str] | None:
    """(name, args) when the line looks like a known URC, whatever the context."""
    named = split_name(text)
    if named is not None:
        name, args = named
        if name in URC_PREFIXES or name.startswith("^"):
            return name, args
        return None
    upper = text.upper()
    for word in URC_WORDS:
        if upper == word or upper.startswith(word + " "):
            return word, text[len(word) :].strip()
    return None


def command_names(command: str) -> frozenset[str]:
    """Names of the commands on one command line: `AT+CBC;+CSQ` -> {`+CBC`, `+CSQ`}."""
    body = command.strip()
    if body[:2].upper() == "AT":
        body = body[2:]
    names: set[str] = set()
    for part in _split_unquoted(body, ";"):
        match = _COMMAND_NAME.match(part.strip())
        if match:
            names.add(match.group(1).upper())
    return frozenset(names)


def _split_unquoted(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == separator and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _echo_key(text: str) -> str:
    return "".join(text.split()).strip(_LINE_JUNK).upper()


@dataclass(slots=True)
class _PendingCommand:
    names: frozenset[str]
    echo: str | None


@dataclass(slots=True)
class _HeldUrc:
    """A URC waiting for its next line (two-line URC body, or the rest of a quoted text)."""

    name: str
    args: str
    text: str
    raw: bytes
    as_info: bool  # a continued line that is really the pending command's response
    continuation: bool  # True: join lines until quotes balance; False: the next line is the PDU
    lines_joined: int = 0


class AtLineClassifier:
    """Feed bytes, get classified events. Knows which command is in flight, nothing else."""

    def __init__(self) -> None:
        self._framer = LineFramer()
        self._pending: _PendingCommand | None = None
        self._held: _HeldUrc | None = None
        self._next_line_is_stale = False

    @property
    def pending(self) -> bool:
        """Whether a command is waiting for its final result."""
        return self._pending is not None

    def begin_command(self, command: str, expect: str | Iterable[str] | None = None) -> None:
        """A command line (as written, e.g. `AT+CPMS?`) is about to go out.

        `expect` adds names whose lines are this command's responses (default: the names in the
        command itself).
        """
        names = set(command_names(command))
        if isinstance(expect, str):
            names.add(expect.upper())
        elif expect is not None:
            names.update(name.upper() for name in expect)
        self._pending = _PendingCommand(frozenset(names), _echo_key(command) or None)
        self._next_line_is_stale = self._framer.has_partial

    def expect_echo(self, text: str) -> None:
        """The modem may echo `text` (the PDU body after `> `); treat that line as echo."""
        if self._pending is not None:
            self._pending.echo = _echo_key(text) or None

    def end_command(self) -> None:
        """Abandon the pending command (timeout, cancel): its late lines become stale."""
        self._pending = None
        if self._held is not None and self._held.as_info:
            self._held.as_info = False

    def feed(self, data: bytes) -> list[Event]:
        """Classify whatever complete lines `data` finishes."""
        events: list[Event] = []
        for item in self._framer.feed(data):
            self._take(item, events)
        return events

    def flush(self) -> list[Event]:
        """End of input: classify the unfinished line and release a held URC."""
        events: list[Event] = []
        for item in self._framer.flush():
            self._take(item, events)
        if self._held is not None:
            self._release_held(events)
        return events

    def _take(self, item: RawLine | Prompt, events: list[Event]) -> None:
        if isinstance(item, Prompt):
            events.append(item)
            return
        stale = self._next_line_is_stale
        self._next_line_is_stale = False
        if self._held is not None and self._continue_held(item, events):
            return
        self._classify(item, events, stale)

    def _continue_held(self, line: RawLine, events: list[Event]) -> bool:
        """Give `line` to the held URC if it belongs to it; True when consumed."""
        held = self._held
        assert held is not None
        if final_kind(line.text) is not None or match_urc(line.text) is not None:
            # A final result or a new URC cannot be the body: release what we hold as it is.
            self._release_held(events)
            return False
        if held.continuation:
            held.text += "\n" + line.text
            held.args += "\n" + line.text
            held.raw += b"\n" + line.raw
            held.lines_joined += 1
            if held.text.count('"') % 2 == 0 or held.lines_joined >= MAX_CONTINUATION_LINES:
                self._release_held(events)
            return True
        self._held = None
        urc = Urc(held.name, held.args, held.text, line.text, held.raw + b"\n" + line.raw)
        events.append(UrcEvent(urc))
        return True

    def _release_held(self, events: list[Event]) -> None:
        held = self._held
        assert held is not None
        self._held = None
        if held.as_info and self._pending is not None:
            events.append(Info(held.text, held.raw))
        else:
            events.append(UrcEvent(Urc(held.name, held.args, held.text, None, held.raw)))

    def _classify(self, line: RawLine, events: list[Event], stale: bool) -> None:
        pending = None if stale else self._pending
        text = line.text
        if pending is not None and pending.echo is not None and _echo_key(text) == pending.echo:
            pending.echo = None
            events.append(Echo(text, line.raw))
            return
        kind = final_kind(text)
        if kind is not None:
            if pending is not None:
                self._pending = None
            events.append(Final(kind, text, line.raw, solicited=pending is not None))
            return
        named = match_urc(text)
        is_response = named is not None and pending is not None and named[0] in pending.names
        if named is not None:
            name, args = named
            if name in _QUOTED_CONTINUATION and text.count('"') % 2 == 1:
                self._held = _HeldUrc(name, args, text, line.raw, is_response, continuation=True)
                return
            if not is_response:
                if name in TWO_LINE_URCS:
                    self._held = _HeldUrc(name, args, text, line.raw, False, continuation=False)
                    return
                events.append(UrcEvent(Urc(name, args, text, None, line.raw)))
                return
        if pending is not None:
            events.append(Info(text, line.raw))
        else:
            events.append(Unexpected(text, line.raw))
