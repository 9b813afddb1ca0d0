"""Splitting an AT command line into commands (basic `E0`, `&F`; extended `+CMGR=1`, `^ICCID?`)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

#: Longest command line accepted (real modems have a few hundred bytes of buffer).
MAX_LINE_BYTES = 4096


class AtSyntaxError(ValueError):
    """The line is not a well-formed AT command line."""


class Op(enum.Enum):
    EXEC = "exec"  # AT+CSQ, ATZ
    READ = "read"  # AT+CREG?
    TEST = "test"  # AT+CNMI=?
    SET = "set"  # AT+CMGF=0, ATE0


@dataclass(frozen=True)
class Command:
    name: str  # upper case: "E", "&F", "+CMGR", "^ICCID"
    op: Op
    args: list[str] = field(default_factory=list)  # quotes removed
    raw_args: str = ""

    def arg(self, position: int, default: str | None = None) -> str | None:
        if position < len(self.args) and self.args[position] != "":
            return self.args[position]
        return default

    def int_arg(self, position: int, default: int | None = None) -> int | None:
        value = self.arg(position)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise AtSyntaxError(f"{self.name}: parameter {position + 1} is not a number") from None


def split_args(text: str) -> list[str]:
    """Comma-separated parameters; quoted strings may hold commas and semicolons."""
    args: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        elif ch == "," and not quoted:
            args.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
    if quoted:
        raise AtSyntaxError("unterminated quoted string")
    args.append("".join(current).strip())
    return args


def _extended(body: str, start: int) -> tuple[Command, int]:
    end = start + 1
    while end < len(body) and (body[end].isalnum() or body[end] == "_"):
        end += 1
    name = body[start:end].upper()
    if len(name) < 2:
        raise AtSyntaxError(f"empty command name at {body[start:]!r}")
    # The command runs to the next ';' outside quotes.
    stop, quoted = end, False
    while stop < len(body) and (quoted or body[stop] != ";"):
        if body[stop] == '"':
            quoted = not quoted
        stop += 1
    rest = body[end:stop].strip()
    if rest == "":
        command = Command(name, Op.EXEC)
    elif rest == "?":
        command = Command(name, Op.READ)
    elif rest == "=?":
        command = Command(name, Op.TEST)
    elif rest.startswith("="):
        command = Command(name, Op.SET, split_args(rest[1:]), rest[1:])
    else:
        raise AtSyntaxError(f"unexpected {rest!r} after {name}")
    return command, stop + 1


def _basic(body: str, start: int) -> tuple[Command, int]:
    pos = start
    name = body[pos].upper()
    pos += 1
    if name == "&":
        if pos >= len(body) or not body[pos].isalpha():
            raise AtSyntaxError("'&' without a command letter")
        name += body[pos].upper()
        pos += 1
    if name == "S":  # S-registers: S0=1, S7?
        digits_end = pos
        while digits_end < len(body) and body[digits_end].isdigit():
            digits_end += 1
        name += body[pos:digits_end]
        pos = digits_end
        if body[pos : pos + 1] == "?":
            return Command(name, Op.READ), pos + 1
        if body[pos : pos + 1] == "=":
            value_end = pos + 1
            while value_end < len(body) and body[value_end].isdigit():
                value_end += 1
            value = body[pos + 1 : value_end]
            return Command(name, Op.SET, [value], value), value_end
        return Command(name, Op.EXEC), pos
    digits_end = pos
    while digits_end < len(body) and body[digits_end].isdigit():
        digits_end += 1
    value = body[pos:digits_end]
    if value:
        return Command(name, Op.SET, [value], value), digits_end
    return Command(name, Op.EXEC), pos


def parse_command_line(line: str) -> list[Command]:
    """All commands of one line such as `AT+CFUN=0;+CFUN=1` or `ATE0V1`; `AT` alone gives []."""
    text = line.strip()
    if text[:2].upper() != "AT":
        raise AtSyntaxError(f"not an AT command: {text[:20]!r}")
    body = text[2:]
    commands: list[Command] = []
    pos = 0
    while pos < len(body):
        ch = body[pos]
        if ch in " ;":
            pos += 1
        elif ch in "+^$%*#":
            command, pos = _extended(body, pos)
            commands.append(command)
        elif ch.isalpha() or ch == "&":
            command, pos = _basic(body, pos)
            commands.append(command)
        else:
            raise AtSyntaxError(f"unexpected {ch!r} in command line")
    return commands
