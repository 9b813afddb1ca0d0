"""`+CREG`/`+CGREG`/`+CEREG`/`+C5GREG` lines into a `Registration`, whatever their shape.

The same report comes in many shapes: with or without the `<n>` the query form starts with
(several modems put `<n>` into their URCs too), with a RAC between TAC and cell id (older
`+CEREG`), with cause, PSM or slice fields after the access technology, with odd spacing, odd
quoting and leading zeros. `<stat>` is what the driver lives by, so the parser is as tolerant as
it can be about everything around it and never guesses it from the wrong field:

* whether `<n>` leads is read from the shape of the fields: a `<stat>` is a plain decimal of
  one or two digits, while a LAC/TAC is quoted, hex, empty or written with more digits;
* a location or cell id that is not hex is reported unknown (None) instead of failing the line;
  so is an access technology that is not a small decimal;
* `<stat>` itself must be a decimal, or the line is refused with `ReplyParseError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.at.errors import ReplyParseError

__all__ = ["Registration", "parse_creg"]

#: Highest `<n>` any of the four commands defines (27.007: CREG 0-3, CGREG 0-4, CEREG 0-5).
MAX_REPORT_MODE = 5
#: Highest `<stat>` 27.007 defines (11: attached for access to RLOS only).
MAX_STAT = 11
#: Highest `<AcT>` 27.007 defines (13: E-UTRA-NR dual connectivity).
MAX_ACT = 13
#: Digits a `<stat>` is written with at most; a longer plain number there is a LAC.
MAX_STAT_DIGITS = 2

_LINE = re.compile(r"^(\+C(?:G|E|5G)?REG)\s*:\s*(.*)$", re.IGNORECASE | re.DOTALL)
_DIGITS = re.compile(r"^\d+$")
_HEX = re.compile(r"^[0-9A-Fa-f]+$")


@dataclass(frozen=True, slots=True)
class Registration:
    """One registration report: `n` when the line carried it; LAC/TAC and cell id as numbers
    (None when absent or unreadable); `act` is 27.007's `<AcT>` (None when absent)."""

    command: str
    n: int | None
    stat: int
    lac: int | None
    ci: int | None
    act: int | None

    @property
    def registered(self) -> bool:
        """Home or roaming, including SMS-only (6/7) and CSFB-not-preferred (9/10) on LTE."""
        return self.stat in (1, 5, 6, 7, 9, 10)

    @property
    def roaming(self) -> bool:
        return self.stat in (5, 7, 10)


def _plain_decimal(field: str) -> int | None:
    """The value of an unquoted decimal field, else None (quoted, hex, empty, junk)."""
    value = field.strip()
    return int(value) if _DIGITS.match(value) else None


def _decimal(field: str) -> int | None:
    """The value of a decimal field, quotes allowed; None when it is not one."""
    value = field.replace('"', "").strip()
    return int(value) if _DIGITS.match(value) else None


def _hex(field: str) -> int | None:
    """A LAC/TAC or cell id; None when absent or not hex (Gobi 1000 sends `  0 5`)."""
    value = field.replace('"', "").strip()
    return int(value, 16) if _HEX.match(value) else None


def _could_be_act(field: str) -> bool:
    value = _plain_decimal(field)
    return value is not None and value <= MAX_ACT


def _act(field: str) -> int | None:
    """`<AcT>`, or None when the field is empty or not one (Samsung S8500 sends ` B`)."""
    value = _decimal(field)
    return value if value is not None and value <= MAX_ACT else None


def _starts_with_mode(fields: list[str], solicited: bool) -> bool:
    """Whether the first field is `<n>` (see the module docstring)."""
    count = len(fields)
    if count <= 2:
        return count == 2  # `<stat>` or `<n>,<stat>`: a report is never `<stat>,<lac>`
    second = fields[1]
    stat = _plain_decimal(second)
    if stat is None:
        return False  # the second field is a quoted, hex or empty location
    if solicited:
        return True  # the reply to the query starts with <n>
    if count == 4 and not _could_be_act(fields[3]):
        return True  # `<n>,<stat>,<lac>,<ci>`: the last field is a cell id, not an AcT
    if len(second.strip()) > MAX_STAT_DIGITS:
        return False  # `0001`: a LAC written without quotes
    mode = _plain_decimal(fields[0])
    return mode is not None and mode <= MAX_REPORT_MODE and stat <= MAX_STAT


def parse_creg(line: str, *, solicited: bool = False) -> Registration:
    """A registration report, the reply to `AT+CREG?` (`solicited`) or a URC.

    `solicited` says the line answers the query, so `<n>` leads unless the second field cannot
    be a `<stat>`; for a URC whether `<n>` leads is read from the shape of the fields.
    """
    match = _LINE.match(line.strip())
    if match is None:
        raise ReplyParseError(f"not a registration line: {line!r}")
    command = match.group(1).upper()
    body = match.group(2).strip()
    if not body:
        raise ReplyParseError(f"empty registration line: {line!r}")
    # Split on every comma: quotes are too often unbalanced (`2,1,"0B,"0100701",7`) to be
    # trusted, and no field of these reports holds a comma.
    fields = [field.strip() for field in body.split(",")]
    with_mode = _starts_with_mode(fields, solicited)
    offset = 1 if with_mode else 0
    n = _plain_decimal(fields[0]) if with_mode else None
    if with_mode and n is None:
        raise ReplyParseError(f"registration mode is not a number in {line!r}")
    stat = _decimal(fields[offset])
    if stat is None:
        raise ReplyParseError(f"registration status is not a number in {line!r}")
    rest = fields[offset + 1 :]
    if command == "+CEREG" and len(rest) == 4 and _could_be_act(rest[3]):
        # 27.007 v8.6 (Novatel E362): <tac>,<rac>,<ci>,<AcT>
        location, cell, technology = rest[0], rest[2], rest[3]
    else:
        # <lac>,<ci>,<AcT>, then RAC, cause, PSM timers or network slices, none of them read
        location, cell, technology = [*rest, "", "", ""][:3]
    return Registration(command, n, stat, _hex(location), _hex(cell), _act(technology))
