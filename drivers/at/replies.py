"""Parsers for modem reply lines into plain dataclasses.

Each parser takes the line(s) the engine returned (prefix included, e.g. `+CPMS: "ME",3,23`) and
raises `ReplyParseError` — one type — on junk. They are lenient where real modems are sloppy
(odd quoting, missing spaces, empty fields, extra trailing fields) and strict where a wrong guess
would hurt (indexes, counts, PDUs).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from stdnum import luhn

from drivers.at.errors import ReplyParseError
from drivers.at.registration import Registration, parse_creg
from drivers.sms import gsm7

__all__ = [
    "PIN_STATES",
    "CnmiSupport",
    "CpmsSupport",
    "Iccid",
    "ListedMessage",
    "NewMessageIndication",
    "OperatorSelection",
    "OwnNumber",
    "PhonebookEntry",
    "Registration",
    "ReplyParseError",
    "SignalQuality",
    "SimPinState",
    "StorageCount",
    "StorageUsage",
    "StoredMessage",
    "UssdReply",
    "UssdText",
    "decode_ussd",
    "parse_cimi",
    "parse_cmgl",
    "parse_cmgr",
    "parse_cmti",
    "parse_cnmi_test",
    "parse_cnum",
    "parse_cops",
    "parse_cpbr",
    "parse_cpin",
    "parse_cpms_query",
    "parse_cpms_set",
    "parse_cpms_test",
    "parse_creg",
    "parse_csq",
    "parse_cusd",
    "parse_iccid",
]

_HEX = re.compile(r"^[0-9A-Fa-f]*$")
_INT = re.compile(r"^\d+$")
_LENGTH_THEN_PDU = re.compile(r"^(\d+)\s+([0-9A-Fa-f]+)$")


# -- shared helpers ------------------------------------------------------------------------------


def _body(line: str, prefix: str) -> str:
    """What follows `<prefix>:` on `line` (the prefix is matched case-insensitively)."""
    text = line.strip()
    if not text.upper().startswith(prefix.upper()):
        raise ReplyParseError(f"expected a {prefix} line, got {line!r}")
    rest = text[len(prefix) :].lstrip()
    if not rest.startswith(":"):
        raise ReplyParseError(f"expected '{prefix}:' in {line!r}")
    return rest[1:].strip()


def _split(text: str) -> list[str]:
    """Split on commas outside quotes and parentheses; fields are stripped."""
    fields: list[str] = []
    current: list[str] = []
    quoted = False
    depth = 0
    for char in text:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth = max(0, depth - 1)
        if char == "," and not quoted and depth == 0:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    fields.append("".join(current).strip())
    return fields


def _unquote(field: str) -> str:
    """Drop the quotes around a field, also unbalanced ones (`"5E25`, `ME"`)."""
    return field.strip().strip('"').strip()


def _int(field: str, what: str, line: str) -> int:
    value = _unquote(field)
    if not _INT.match(value):
        raise ReplyParseError(f"{what} is not a number in {line!r}")
    return int(value)


def _optional_int(field: str | None, what: str, line: str) -> int | None:
    if field is None or _unquote(field) == "":
        return None
    return _int(field, what, line)


def _lines(lines: str | Iterable[str]) -> list[str]:
    if isinstance(lines, str):
        lines = lines.splitlines()
    return [line.strip() for line in lines if line.strip()]


def _pdu(text: str, line: str) -> str:
    """The hex PDU of a listing. An odd digit count (Pantech) is kept: the codec refuses it and
    the message is handed over raw, where refusing here would leave it on the modem for good."""
    pdu = _unquote(text)  # a stray quote after the PDU has been seen in the field
    if not pdu or not _HEX.match(pdu):
        raise ReplyParseError(f"not a hex PDU: {line!r}")
    return pdu.upper()


def _pdu_on_header(fields: list[str]) -> str | None:
    """The PDU when a header carries it after its length (`+CMGR: 1,,147 0791…`): the last
    field is cut back to the length and the PDU returned; None for the usual two lines."""
    joined = _LENGTH_THEN_PDU.match(fields[-1])
    if joined is None:
        return None
    fields[-1] = joined.group(1)
    return joined.group(2)


# -- message storage: +CPMS ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StorageCount:
    """Messages used and slots in total in one storage."""

    used: int
    total: int


@dataclass(frozen=True, slots=True)
class StorageUsage:
    """`+CPMS?`: one memory (`SM`, `ME`, `MT`, `SR`) with its used/total counts."""

    memory: str
    used: int
    total: int


@dataclass(frozen=True, slots=True)
class CpmsSupport:
    """`+CPMS=?`: the memories each parameter (read/delete, write/send, receive) accepts."""

    read: tuple[str, ...]
    write: tuple[str, ...]
    receive: tuple[str, ...]


def parse_cpms_query(line: str) -> tuple[StorageUsage, ...]:
    """`+CPMS: "ME",3,23,"ME",3,23,"ME",3,23` -> one `StorageUsage` per parameter given."""
    fields = _split(_body(line, "+CPMS"))
    if len(fields) < 3 or len(fields) % 3:
        raise ReplyParseError(f"+CPMS? reply needs memory,used,total triples: {line!r}")
    usages = []
    for at in range(0, len(fields), 3):
        memory = _unquote(fields[at])
        if not memory or memory.isdigit():
            raise ReplyParseError(f"+CPMS? reply has no memory name: {line!r}")
        used = _int(fields[at + 1], "used count", line)
        total = _int(fields[at + 2], "total count", line)
        usages.append(StorageUsage(memory.upper(), used, total))
    return tuple(usages)


def parse_cpms_set(line: str) -> tuple[StorageCount, ...]:
    """`+CPMS: 3,23,3,23,3,23` (the reply to `AT+CPMS="ME",…`) -> used/total per parameter."""
    fields = _split(_body(line, "+CPMS"))
    if len(fields) < 2 or len(fields) % 2:
        raise ReplyParseError(f"+CPMS= reply needs used,total pairs: {line!r}")
    return tuple(
        StorageCount(_int(fields[at], "used count", line), _int(fields[at + 1], "total", line))
        for at in range(0, len(fields), 2)
    )


def _split_outside_parentheses(text: str) -> list[str]:
    """Split on commas outside parentheses; quotes are ignored (see `parse_cpms_test`)."""
    fields: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == "," and depth == 0:
            fields.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    fields.append("".join(current).strip())
    return fields


def _memory_names(field: str) -> tuple[str, ...]:
    """`("SM","ME")` or a bare `"ME"` -> its memory names; `()` or nothing -> ()."""
    inner = field.strip()
    if inner.startswith("("):
        inner = inner[1:]
        if inner.endswith(")"):
            inner = inner[:-1]
    return tuple(_unquote(name).upper() for name in inner.split(",") if _unquote(name))


def parse_cpms_test(line: str) -> CpmsSupport:
    """`+CPMS: ("SM","ME"),("SM","ME"),("SM","ME")` and the forms seen in the field.

    Each parameter is a parenthesised list or a single bare memory, also mixed
    (`("ME","MT"),"ME",("SM")`). Without any parentheses, three fields are one memory per
    parameter and any other count is one list valid for every parameter. An empty list
    (`+CPMS: `) means the modem names no memories.
    """
    body = _body(line, "+CPMS")
    if not body:
        return CpmsSupport((), (), ())
    # Memory names never hold commas, quotes or parentheses, so quotes (sometimes unbalanced,
    # `(ME", "SR")`) are simply dropped instead of being trusted for splitting.
    groups: list[tuple[str, ...]]
    if "(" in body:
        groups = [_memory_names(field) for field in _split_outside_parentheses(body)][:3]
    else:
        fields = [_unquote(field).upper() for field in body.split(",")]
        if len(fields) == 3:
            groups = [(field,) if field else () for field in fields]
        else:
            shared = tuple(field for field in fields if field)
            groups = [shared, shared, shared]
    for names in groups:
        for name in names:
            if not re.match(r"^[A-Z_0-9]+$", name):
                raise ReplyParseError(f"odd memory name {name!r} in {line!r}")
    groups += [()] * (3 - len(groups))
    return CpmsSupport(groups[0], groups[1], groups[2])


# -- registration: +CREG / +CGREG / +CEREG / +C5GREG lives in drivers.at.registration ----------


# -- new message indications: +CNMI=? ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CnmiSupport:
    """`+CNMI=?`: the values each parameter accepts (mode, mt, bm, ds, bfr)."""

    mode: frozenset[int]
    mt: frozenset[int]
    bm: frozenset[int]
    ds: frozenset[int]
    bfr: frozenset[int]


def _int_set(group: str, line: str) -> frozenset[int]:
    """`(0-1,3)` -> {0, 1, 3}; `(2)` -> {2}; `()` -> {}."""
    inner = group.strip()
    if inner.startswith("("):
        inner = inner[1:]
    if inner.endswith(")"):
        inner = inner[:-1]
    values: set[int] = set()
    for part in inner.split(","):
        part = part.strip()
        if not part:
            continue
        bounds = part.split("-")
        if len(bounds) == 2 and _INT.match(bounds[0].strip()) and _INT.match(bounds[1].strip()):
            low, high = int(bounds[0]), int(bounds[1])
            if low > high or high - low > 255:
                raise ReplyParseError(f"odd range {part!r} in {line!r}")
            values.update(range(low, high + 1))
        elif _INT.match(part):
            values.add(int(part))
        else:
            raise ReplyParseError(f"odd value {part!r} in {line!r}")
    return frozenset(values)


def parse_cnmi_test(line: str) -> CnmiSupport:
    """`+CNMI: (2),(0-1,3),(0,2),(0-1),(0)` (also without the space after the colon)."""
    groups = [_int_set(group, line) for group in _split(_body(line, "+CNMI"))]
    if not groups or not groups[0]:
        raise ReplyParseError(f"+CNMI=? reply lists no modes: {line!r}")
    groups += [frozenset()] * (5 - len(groups))
    return CnmiSupport(*groups[:5])


# -- operator, signal, numbers -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OperatorSelection:
    """`+COPS?`: mode, and when registered the name format, the operator and the access tech."""

    mode: int
    format: int | None
    operator: str | None
    act: int | None


def parse_cops(line: str) -> OperatorSelection:
    """`+COPS: 0,2,"25001",7` or just `+COPS: 0` when not registered."""
    fields = _split(_body(line, "+COPS"))
    if fields[0].startswith("("):
        raise ReplyParseError(f"this is a +COPS=? list, not a +COPS? reply: {line!r}")
    mode = _int(fields[0], "mode", line)
    name_format = _optional_int(fields[1], "format", line) if len(fields) > 1 else None
    operator = _unquote(fields[2]) if len(fields) > 2 and _unquote(fields[2]) else None
    act = _optional_int(fields[3], "access technology", line) if len(fields) > 3 else None
    return OperatorSelection(mode, name_format, operator, act)


@dataclass(frozen=True, slots=True)
class SignalQuality:
    """`+CSQ`: rssi 0-31 (99 unknown) and bit error rate 0-7 (99 unknown)."""

    rssi: int
    ber: int

    @property
    def dbm(self) -> int | None:
        """Received power in dBm (-113 + 2·rssi), or None when unknown."""
        if self.rssi == 99 or not 0 <= self.rssi <= 31:
            return None
        return -113 + 2 * self.rssi


def parse_csq(line: str) -> SignalQuality:
    fields = _split(_body(line, "+CSQ"))
    if len(fields) < 2:
        raise ReplyParseError(f"+CSQ needs rssi,ber: {line!r}")
    return SignalQuality(_int(fields[0], "rssi", line), _int(fields[1], "ber", line))


@dataclass(frozen=True, slots=True)
class OwnNumber:
    """One `+CNUM` entry. `number` carries a leading `+` when the type says international."""

    alpha: str | None
    number: str
    type: int | None

    @property
    def international(self) -> bool:
        return self.number.startswith("+")


def _normalise_number(raw: str, number_type: int | None) -> str:
    number = raw.replace(" ", "")
    if number_type == 145 and number and not number.startswith("+"):
        number = "+" + number
    return number


def parse_cnum(lines: str | Iterable[str]) -> list[OwnNumber]:
    """Every `+CNUM: [<alpha>],<number>,<type>` line; no line at all (many SIMs) -> []."""
    entries = []
    for line in _lines(lines):
        if not line.upper().startswith("+CNUM"):
            continue
        fields = _split(_body(line, "+CNUM"))
        if len(fields) < 2:
            raise ReplyParseError(f"+CNUM needs at least alpha,number: {line!r}")
        alpha = _unquote(fields[0]) or None
        raw_number = _unquote(fields[1])
        number_type = _optional_int(fields[2], "type", line) if len(fields) > 2 else None
        if not raw_number:
            continue  # an empty slot of the MSISDN file
        if not re.match(r"^\+?[0-9*#pPwW]+$", raw_number.replace(" ", "")):
            raise ReplyParseError(f"odd number in {line!r}")
        entries.append(OwnNumber(alpha, _normalise_number(raw_number, number_type), number_type))
    return entries


@dataclass(frozen=True, slots=True)
class PhonebookEntry:
    """`+CPBR`: index, number (with `+` when international), type and text."""

    index: int
    number: str
    type: int | None
    text: str


def parse_cpbr(line: str) -> PhonebookEntry:
    """`+CPBR: 1,"+4915112345678",145,"Own number"`."""
    fields = _split(_body(line, "+CPBR"))
    if len(fields) < 2:
        raise ReplyParseError(f"+CPBR needs index,number: {line!r}")
    index = _int(fields[0], "index", line)
    number_type = _optional_int(fields[2], "type", line) if len(fields) > 2 else None
    number = _normalise_number(_unquote(fields[1]), number_type)
    text = _unquote(",".join(fields[3:])) if len(fields) > 3 else ""
    return PhonebookEntry(index, number, number_type, text)


# -- stored messages: +CMGR, +CMGL, +CMTI --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """`+CMGR` in PDU mode: status (None on ZTE's `+CMGR: ,,27`), alpha, TPDU length, PDU."""

    stat: int | None
    alpha: str | None
    length: int
    pdu: str


@dataclass(frozen=True, slots=True)
class ListedMessage:
    """One `+CMGL` entry in PDU mode."""

    index: int
    stat: int | None
    length: int
    pdu: str


def parse_cmgr(lines: str | Iterable[str]) -> StoredMessage | None:
    """`+CMGR: <stat>,[<alpha>],<length>` + PDU line; None when the reply is empty (free slot)."""
    found = _lines(lines)
    if not found:
        return None
    header_at = next(
        (at for at, line in enumerate(found) if line.upper().startswith("+CMGR")), None
    )
    if header_at is None:
        raise ReplyParseError(f"no +CMGR line in {found!r}")
    header = found[header_at]
    fields = _split(_body(header, "+CMGR"))
    pdu = _pdu_on_header(fields)
    if pdu is None:
        if header_at + 1 >= len(found):
            raise ReplyParseError(f"+CMGR header without a PDU line: {header!r}")
        pdu = found[header_at + 1]
    # <stat>,[<alpha>],<length>; seen in the field: `<stat>,<length>`, `<length>` alone, and
    # `<index>,<stat>,,<length>`. The length is always last, the alpha just before it.
    length = _int(fields[-1], "length", header)
    stat_field = fields[-3] if len(fields) >= 3 else (fields[0] if len(fields) == 2 else None)
    stat = _optional_int(stat_field, "status", header)
    alpha = (_unquote(fields[-2]) or None) if len(fields) >= 3 else None
    return StoredMessage(stat, alpha, length, _pdu(pdu, pdu))


def parse_cmgl(lines: str | Iterable[str]) -> list[ListedMessage]:
    """`+CMGL: <index>,<stat>,[<alpha>],<length>` + PDU line, for every entry listed."""
    found = _lines(lines)
    messages = []
    at = 0
    while at < len(found):
        header = found[at]
        if not header.upper().startswith("+CMGL"):
            raise ReplyParseError(f"expected a +CMGL header, got {header!r}")
        fields = _split(_body(header, "+CMGL"))
        if len(fields) < 3:
            raise ReplyParseError(f"+CMGL header needs index,stat,[alpha,]length: {header!r}")
        pdu = _pdu_on_header(fields)
        at += 1
        if pdu is None:
            if at >= len(found) or found[at].upper().startswith("+CMGL"):
                raise ReplyParseError(f"+CMGL header without a PDU line: {header!r}")
            pdu = found[at]
            at += 1
        index = _int(fields[0], "index", header)
        stat = _optional_int(fields[1], "status", header)
        length = _int(fields[-1], "length", header)
        messages.append(ListedMessage(index, stat, length, _pdu(pdu, pdu)))
    return messages


@dataclass(frozen=True, slots=True)
class NewMessageIndication:
    """`+CMTI: "SM",3`: where the new message was stored."""

    memory: str
    index: int


def parse_cmti(line: str) -> NewMessageIndication:
    """`+CMTI: "SM",3`; extra fields are tolerated (SIM800 adds `"MMS PUSH"`)."""
    fields = _split(_body(line, "+CMTI"))
    if len(fields) < 2:
        raise ReplyParseError(f"+CMTI needs memory,index: {line!r}")
    memory = _unquote(fields[0]).upper()
    if not memory:
        raise ReplyParseError(f"+CMTI without a memory: {line!r}")
    return NewMessageIndication(memory, _int(fields[1], "index", line))


# -- SIM identity and state ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Iccid:
    """A normalised ICCID (19/20 characters, `89…`) and whether its Luhn check digit holds.

    `luhn_valid` is None when the ICCID carries hex letters (CMCC), where Luhn does not apply.
    A failed check is reported, not raised: the SIM's identity must not be lost to a check digit;
    the driver decides (e.g. re-read and compare).
    """

    value: str
    luhn_valid: bool | None


# "ICCID" bare is SIMCom SIM7600's answer to AT+CICCID; it must come after the longer forms.
_ICCID_PREFIXES = (
    "+CCID",
    "+QCCID",
    "+ICCID",
    "^ICCID",
    "+CICCID",
    "^SCID",
    "+ZGETICCID",
    "ICCID",
)
_SW1_OK = (0x90, 0x91, 0x92, 0x9F)


def _swap_nibbles(text: str) -> str:
    return "".join(text[at + 1] + text[at] for at in range(0, len(text) - 1, 2)) + (
        text[-1] if len(text) % 2 else ""
    )


def parse_iccid(line: str) -> Iccid:
    """ICCID from `+CRSM: 144,0,"98…"`, `+CCID:`/`+QCCID:`/`+ICCID:`/`^ICCID:` or bare digits.

    ModemManager's rules: quotes stripped; only digits in the first 6, hex A–F tolerated after
    (CMCC); length 19 or 20; MII `89`, or `98` meaning nibble-swapped (raw EF_ICCID, 20 only);
    a trailing `F` filler dropped.
    """
    text = line.strip()
    upper = text.upper()
    if upper.startswith("+CRSM"):
        fields = _split(_body(text, "+CRSM"))
        if len(fields) < 3:
            raise ReplyParseError(f"+CRSM reply without data: {line!r}")
        sw1 = _int(fields[0], "SW1", line)
        if sw1 not in _SW1_OK:
            raise ReplyParseError(f"SIM refused the EF_ICCID read (SW1={sw1}): {line!r}")
        raw = _unquote(fields[2])
    else:
        raw = text
        for prefix in _ICCID_PREFIXES:
            if upper.startswith(prefix):
                raw = _body(text, prefix)
                break
        raw = _unquote(raw)
    raw = raw.replace(" ", "").upper()
    if not raw or not _HEX.match(raw):
        raise ReplyParseError(f"not an ICCID: {line!r}")
    if len(raw) not in (19, 20):
        raise ReplyParseError(f"an ICCID has 19 or 20 digits, got {len(raw)}: {line!r}")
    if raw.startswith("98"):
        if len(raw) != 20:
            raise ReplyParseError(f"a nibble-swapped ICCID must have 20 digits: {line!r}")
        raw = _swap_nibbles(raw)
    elif not raw.startswith("89"):
        raise ReplyParseError(f"an ICCID starts with 89 (telecom MII): {line!r}")
    if not raw[:6].isdigit():
        raise ReplyParseError(f"hex digits in the first six ICCID digits: {line!r}")
    if raw.endswith("F"):
        raw = raw[:-1]
    if "F" in raw[-1:] or len(raw) < 18:
        raise ReplyParseError(f"not an ICCID: {line!r}")
    luhn_valid = luhn.is_valid(raw) if raw.isdigit() else None
    return Iccid(raw, luhn_valid)


def parse_cimi(lines: str | Iterable[str]) -> str:
    """IMSI from the `AT+CIMI` reply (bare digits; some modems prefix `+CIMI:` or quote it)."""
    for line in _lines(lines):
        value = _body(line, "+CIMI") if line.upper().startswith("+CIMI") else line
        value = _unquote(value)
        if value.isdigit() and 6 <= len(value) <= 15:
            return value
        raise ReplyParseError(f"not an IMSI: {line!r}")
    raise ReplyParseError("empty +CIMI reply")


#: 27.007's `+CPIN` states and the SIM-absent words vendors add. A reply that comes without
#: its `+CPIN:` prefix (ModemManager reads those) is taken only when it is one of these.
PIN_STATES = frozenset(
    {
        "READY",
        "SIM PIN",
        "SIM PUK",
        "SIM PIN2",
        "SIM PUK2",
        "PH-SIM PIN",
        "PH-SIM PUK",
        "PH-FSIM PIN",
        "PH-FSIM PUK",
        "PH-NET PIN",
        "PH-NET PUK",
        "PH-NETSUB PIN",
        "PH-NETSUB PUK",
        "PH-SP PIN",
        "PH-SP PUK",
        "PH-CORP PIN",
        "PH-CORP PUK",
        "NOT INSERTED",
        "NOT READY",
        "REMOVED",
    }
)


@dataclass(frozen=True, slots=True)
class SimPinState:
    """`+CPIN: READY` / `SIM PIN` / `SIM PUK` / `NOT INSERTED`…"""

    code: str

    @property
    def ready(self) -> bool:
        return self.code == "READY"


def parse_cpin(line: str) -> SimPinState:
    """`+CPIN: SIM PIN`, `+CPIN: "SIM PIN"`, or a known state without the prefix (`SIM PUK`)."""
    text = line.strip()
    prefixed = text.upper().startswith("+CPIN")
    code = " ".join(_unquote(_body(text, "+CPIN") if prefixed else text).upper().split())
    if not code:
        raise ReplyParseError(f"+CPIN without a state: {line!r}")
    if not prefixed and code not in PIN_STATES:
        raise ReplyParseError(f"not a +CPIN reply: {line!r}")
    return SimPinState(code)


# -- USSD ----------------------------------------------------------------------------------------

# Raw (unpacked) GSM-7 bytes shown as ASCII put these characters where national letters were.
_GSM7_AS_ASCII = {
    "[": "Ä",
    "\\": "Ö",
    "]": "Ñ",
    "^": "Ü",
    "{": "ä",
    "|": "ö",
    "}": "ñ",
    "~": "ü",
}
_USSD_HEX_MIN_CHARS = 8  # shorter all-hex strings are far more likely plain text ("1234")
_TEXT_SCORE_MIN = 0.8  # share of "ordinary" characters a decoding must reach to be believed


def _unpack_septets(data: bytes) -> list[int]:
    septets = gsm7.unpack(data, len(data) * 8 // 7)
    if len(data) % 7 == 0 and septets and septets[-1] in (0x00, 0x0D):
        septets.pop()  # 7 spare bits: filled with CR (23.038 §6.1.2.3.1) or, sloppily, zeros
    return septets


def _gsm7_text(septets: Sequence[int]) -> str:
    return gsm7.decode(list(septets))


def _text_score(text: str) -> float:
    """Share of characters that ordinary operator text is made of."""
    if not text:
        return 0.0
    good = sum(
        1
        for char in text
        if (char.isalnum() and ord(char) < 0x3000) or char in " .,:;!?-()*#+/%'\"\n\r=_&<>€$£"
    )
    return good / len(text)


def _ucs2(data: bytes) -> str:
    text = data[: len(data) - len(data) % 2].decode("utf-16-be", errors="replace")
    return text.split("\x00", 1)[0]


@dataclass(frozen=True, slots=True)
class UssdText:
    """Decoded USSD text and which decoding was used (`ucs2`, `gsm7-packed`, `plain`…)."""

    text: str
    decoding: str


def _alphabet(dcs: int) -> str:
    """Alphabet of a CBS data coding scheme (3GPP TS 23.038 §5)."""
    group = dcs >> 4
    if dcs == 0x11:
        return "ucs2-lang"
    if group in (0x0, 0x2, 0x3) or dcs == 0x10:
        return "gsm7"
    if 0x4 <= group <= 0x7 or group == 0x9:
        return {0: "gsm7", 1: "8bit", 2: "ucs2"}.get((dcs >> 2) & 0x3, "gsm7")
    if group == 0xF:
        return "8bit" if dcs & 0x04 else "gsm7"
    return "gsm7"


def _raw_gsm7_fixed(text: str) -> str | None:
    """`w{hlen` -> `wählen`: GSM-7 bytes sent unconverted. None when nothing looks like that."""
    chars = list(text)
    changed = False
    for at, char in enumerate(chars):
        if char not in _GSM7_AS_ASCII:
            continue
        before = chars[at - 1] if at > 0 else ""
        after = chars[at + 1] if at + 1 < len(chars) else ""
        if before.isalpha() and after.isalpha():  # inside a word, never real ASCII punctuation
            chars[at] = _GSM7_AS_ASCII[char]
            changed = True
    return "".join(chars) if changed else None


def decode_ussd(text: str, dcs: int | None = None) -> UssdText:
    """Best-effort operator text from a `+CUSD` string and its data coding scheme.

    Never raises. Heuristics, in order:
    * dcs says UCS2 (e.g. 72 = 0x48) and the string is hex -> UTF-16BE (Huawei E3276).
    * dcs 17 (UCS2 with language) -> skip the 2-octet packed language code, then UTF-16BE, cut at
      the first NUL (Telit HE910-D pads with junk after it).
    * dcs says GSM-7 (15, 0, none) but the string is long all-hex: decode it both as UCS2
      (Quectel M35 labels UCS2 as 15) and as packed GSM-7 (Huawei E160), keep the one that reads
      like text; neither -> plain.
    * 8-bit dcs and hex -> the bytes as UTF-8, else latin-1.
    * Plain text: as is, except `{|}~[\\]^` between two letters, which are GSM-7 national
      letters that reached us as raw bytes (`w{hlen` -> `wählen`): decoding `gsm7-raw`.
    """
    value = text.strip()
    alphabet = _alphabet(dcs) if dcs is not None else "gsm7"
    is_hex = len(value) >= 4 and len(value) % 2 == 0 and bool(_HEX.match(value)) and value != ""
    try:
        if is_hex and alphabet == "ucs2":
            return UssdText(_ucs2(bytes.fromhex(value)), "ucs2")
        if is_hex and alphabet == "ucs2-lang" and len(value) >= 8:
            language = _gsm7_text(_unpack_septets(bytes.fromhex(value[:4]))[:2])
            return UssdText(_ucs2(bytes.fromhex(value[4:])), f"ucs2-lang:{language}")
        if is_hex and alphabet == "8bit":
            data = bytes.fromhex(value)
            try:
                return UssdText(data.decode("utf-8"), "8bit-utf8")
            except UnicodeDecodeError:
                return UssdText(data.decode("latin-1"), "8bit-latin1")
        if is_hex and len(value) >= _USSD_HEX_MIN_CHARS:
            data = bytes.fromhex(value)
            candidates: list[UssdText] = []
            if len(value) % 4 == 0 and (
                not value.isdigit()
                or all(value[at : at + 2] == "00" for at in range(0, len(value), 4))
            ):
                candidates.append(UssdText(_ucs2(data), "ucs2"))
            if not value.isdigit():
                candidates.append(UssdText(_gsm7_text(_unpack_septets(data)), "gsm7-packed"))
            scored = [(_text_score(c.text), c) for c in candidates if c.text]
            scored.sort(key=lambda pair: pair[0], reverse=True)
            if scored and scored[0][0] >= _TEXT_SCORE_MIN:
                return scored[0][1]
    except ValueError:
        pass  # odd hex after all: fall through to plain text
    fixed = _raw_gsm7_fixed(value)
    if fixed is not None:
        return UssdText(fixed, "gsm7-raw")
    return UssdText(value, "plain")


@dataclass(frozen=True, slots=True)
class UssdReply:
    """`+CUSD: <m>[,<str>[,<dcs>]]`: status (0 done, 1 more expected, 2 ended, 4 unsupported…),
    the raw string, the dcs, and the decoded text with the decoding used."""

    status: int
    raw: str | None
    dcs: int | None
    text: str
    decoding: str


def parse_cusd(line: str) -> UssdReply:
    """Parse a `+CUSD` line; the string may be quoted, unquoted (Huawei E160) or contain commas."""
    body = _body(line, "+CUSD")
    head, _, rest = body.partition(",")
    status = _int(head, "status", line)
    rest = rest.strip()
    if not rest:
        return UssdReply(status, None, None, "", "none")
    dcs: int | None = None
    if rest.startswith('"'):
        closing = rest.rfind('"')
        if closing > 0:
            raw = rest[1:closing]
            tail = rest[closing + 1 :].strip().lstrip(",").strip()
            dcs = int(tail) if _INT.match(tail) else None
        else:
            raw = rest[1:]
    else:
        match = re.match(r"^(.*?)\s*,\s*(\d+)$", rest, re.DOTALL)
        raw, dcs = (match.group(1), int(match.group(2))) if match else (rest, None)
    decoded = decode_ussd(raw, dcs)
    return UssdReply(status, raw, dcs, decoded.text, decoded.decoding)
