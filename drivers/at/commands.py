"""Every AT command the modem driver sends, declared once: its text, how long it may take, and
the parser that turns its reply into a typed value.

Call sites name a command (`await link.run(READ_SIGNAL)`, `await link.run(READ_SMS.at(index=3))`)
instead of spelling its text. How many seconds a `Wait` class is worth comes from the driver's
timings, so there is one source of timeouts. Parsers raise `ReplyParseError` on junk where the
caller wants to know, and return None where an unreadable answer only means "unknown".
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from drivers.at.engine import AtReply
from drivers.at.errors import ReplyParseError
from drivers.at.replies import (
    CnmiSupport,
    CpmsSupport,
    Iccid,
    ListedMessage,
    OwnNumber,
    PhonebookEntry,
    StorageCount,
    StoredMessage,
    parse_cimi,
    parse_cmgl,
    parse_cmgr,
    parse_cnmi_test,
    parse_cnum,
    parse_cops,
    parse_cpbr,
    parse_cpin,
    parse_cpms_set,
    parse_cpms_test,
    parse_csq,
    parse_iccid,
)

T = TypeVar("T")


class Wait(enum.Enum):
    """How long a command may take before it counts as unanswered (seconds: driver timings)."""

    PROBE = "probe"  # the keep-alive and wake-up `AT`: a live modem answers at once
    SHORT = "short"  # a basic command: settings, queries, one message
    LONG = "long"  # listings, USSD, radio changes


@dataclass(frozen=True, slots=True)
class Command(Generic[T]):
    """One AT command line (without `AT`), its wait class and what its reply means."""

    text: str
    wait: Wait
    parse: Callable[[AtReply], T]


@dataclass(frozen=True, slots=True)
class CommandFamily(Generic[T]):
    """A parameterised command: `READ_SMS.at(index=3)` is the command `+CMGR=3`."""

    template: str
    wait: Wait
    parse: Callable[[AtReply], T]

    def at(self, **fields: object) -> Command[T]:
        return Command(self.template.format(**fields), self.wait, self.parse)


# -- reply parsers (AtReply -> typed value) -----------------------------------------------------


def accepted(reply: AtReply) -> None:
    """A setting or an action: that the modem said OK is all there is to know."""
    return None


def _first_parsed(prefix: str, parse: Callable[[str], T]) -> Callable[[AtReply], T | None]:
    """The first `prefix` line parsed, or None when there is none or it is unreadable."""

    def parser(reply: AtReply) -> T | None:
        line = reply.first(prefix)
        if line is None:
            return None
        try:
            return parse(line)
        except ReplyParseError:
            return None

    return parser


def _first_line(prefix: str) -> Callable[[AtReply], str | None]:
    """The first `prefix` line as the modem sent it (parsed by whoever also reads URCs)."""
    return lambda reply: reply.first(prefix)


def _identity_text(prefix: str) -> Callable[[AtReply], str | None]:
    """Manufacturer, model or revision: the first non-empty line, `+CGMI: ` and quotes off."""

    def parser(reply: AtReply) -> str | None:
        for line in reply.lines:
            text = line.strip()
            if text.upper().startswith(prefix.upper() + ":"):
                text = text.split(":", 1)[1].strip()
            text = text.strip('"').strip()
            if text:
                return text
        return None

    return parser


_IMEI = re.compile(r"\b(\d{14,17})\b")


def parse_imei(reply: AtReply) -> str | None:
    found = _IMEI.search(" ".join(reply.lines))
    return found.group(1) if found else None


def parse_storage_support(reply: AtReply) -> CpmsSupport | None:
    return _first_parsed("+CPMS:", parse_cpms_test)(reply)


def parse_storage_selected(reply: AtReply) -> StorageCount | None:
    """(used, total) of the memory just selected, when the modem says."""
    return _first_parsed("+CPMS:", lambda line: parse_cpms_set(line)[0])(reply)


def parse_indication_support(reply: AtReply) -> CnmiSupport | None:
    return _first_parsed("+CNMI:", parse_cnmi_test)(reply)


def parse_cnma_needed(reply: AtReply) -> bool:
    """`+CSMS: 1,…` (phase 2+ service): a routed `+CMT` must be acknowledged with `+CNMA`."""
    line = reply.first("+CSMS:")
    if line is None:
        return False
    return line.split(":", 1)[1].split(",", 1)[0].strip() == "1"


def parse_operator(reply: AtReply) -> str | None:
    """MCC+MNC the modem is registered on (numeric format), or None."""
    operator = _first_parsed("+COPS:", lambda line: parse_cops(line).operator)(reply)
    return operator if operator and operator.isdigit() else None


def parse_rssi(reply: AtReply) -> int | None:
    """rssi 0..31 from `+CSQ`; None when unknown (99) or unreadable."""
    rssi = _first_parsed("+CSQ:", lambda line: parse_csq(line).rssi)(reply)
    return rssi if rssi is not None and 0 <= rssi <= 31 else None


def parse_own_numbers(reply: AtReply) -> list[OwnNumber]:
    return parse_cnum(reply.lines)


def parse_phonebook_entry(reply: AtReply) -> PhonebookEntry | None:
    return _first_parsed("+CPBR:", parse_cpbr)(reply)


def parse_pin_state(reply: AtReply) -> str | None:
    """The state of a `+CPIN?` reply: its `+CPIN:` line, else a line that is a bare state."""
    lines = reply.lines
    prefixed = [line for line in lines if line.strip().upper().startswith("+CPIN")]
    for line in prefixed or lines:
        try:
            return parse_cpin(line).code
        except ReplyParseError:
            continue
    return None


def parse_first_iccid(reply: AtReply) -> Iccid | None:
    """The first line that reads as an ICCID (vendor forms differ in prefix and quoting)."""
    for line in reply.lines:
        try:
            return parse_iccid(line)
        except ReplyParseError:
            continue
    return None


def parse_imsi(reply: AtReply) -> str:
    return parse_cimi(reply.lines)


def parse_mnc_length(reply: AtReply) -> int | None:
    """2 or 3 from EF_AD's 4th byte (`+CRSM: 144,0,"…"`), None when the SIM does not say."""
    line = reply.first("+CRSM:")
    if line is None:
        return None
    fields = [field.strip().strip('"') for field in line.split(":", 1)[1].split(",")]
    data = fields[2] if len(fields) > 2 else ""
    if fields[0] in ("144", "145", "146", "159") and len(data) >= 8:
        mnc_length = int(data[6:8], 16) & 0x0F
        if mnc_length in (2, 3):
            return mnc_length
    return None


def parse_stored_message(reply: AtReply) -> StoredMessage | None:
    """The message of a `+CMGR` reply, or None when there is none or it cannot be read."""
    try:
        return parse_cmgr(reply.lines)
    except ReplyParseError:
        return None


def parse_listed_messages(reply: AtReply) -> list[tuple[str, ListedMessage | None]]:
    """(header, entry or None when unreadable) for every `+CMGL` header; the PDU is the next
    line, or on the header itself; junk lines elsewhere are skipped (F3)."""
    lines = reply.lines
    entries: list[tuple[str, ListedMessage | None]] = []
    for at, header in enumerate(lines):
        if not header.upper().startswith("+CMGL"):
            continue
        following = lines[at + 1 : at + 2]
        entry = None
        for candidate in ([header], [header, *following]):
            try:
                (entry,) = parse_cmgl(candidate)
                break
            except (ReplyParseError, ValueError):
                continue
        entries.append((header, entry))
    return entries


# -- the table ----------------------------------------------------------------------------------

PROBE = Command("AT", Wait.PROBE, accepted)

# basics (playbook §2.2): echo on (anchors replies), verbose results, numeric errors
ECHO_ON = Command("E1", Wait.SHORT, accepted)
VERBOSE_RESULTS = Command("V1", Wait.SHORT, accepted)
NUMERIC_ERRORS = Command("+CMEE=1", Wait.SHORT, accepted)
#: A model's own setting (`ModelProfile.vendor_init`), sent with its errors ignored.
VENDOR_SETTING = CommandFamily("{setting}", Wait.SHORT, accepted)

# identity
READ_MANUFACTURER = Command("+CGMI", Wait.SHORT, _identity_text("+CGMI"))
READ_MODEL = Command("+CGMM", Wait.SHORT, _identity_text("+CGMM"))
READ_REVISION = Command("+CGMR", Wait.SHORT, _identity_text("+CGMR"))
READ_IMEI = Command("+CGSN", Wait.SHORT, parse_imei)
READ_IMEI_GSN = Command("+GSN", Wait.SHORT, parse_imei)

# SMS set-up
PDU_MODE = Command("+CMGF=0", Wait.SHORT, accepted)
STORAGE_SUPPORT = Command("+CPMS=?", Wait.SHORT, parse_storage_support)
USE_STORAGE = CommandFamily('+CPMS="{memory}","{memory}","{memory}"', Wait.SHORT, accepted)
SELECT_STORAGE = CommandFamily('+CPMS="{memory}"', Wait.SHORT, parse_storage_selected)
INDICATION_SUPPORT = Command("+CNMI=?", Wait.SHORT, parse_indication_support)
SET_INDICATIONS = CommandFamily("+CNMI={arguments}", Wait.SHORT, accepted)
SMS_SERVICE = Command("+CSMS?", Wait.SHORT, parse_cnma_needed)

# network
REPORT_CREG = Command("+CREG=2", Wait.SHORT, accepted)
REPORT_CGREG = Command("+CGREG=2", Wait.SHORT, accepted)
REPORT_CEREG = Command("+CEREG=2", Wait.SHORT, accepted)  # LTE parts only
NUMERIC_OPERATOR_FORMAT = Command("+COPS=3,2", Wait.SHORT, accepted)
READ_CREG = Command("+CREG?", Wait.SHORT, _first_line("+CREG:"))
READ_CGREG = Command("+CGREG?", Wait.SHORT, _first_line("+CGREG:"))
READ_CEREG = Command("+CEREG?", Wait.SHORT, _first_line("+CEREG:"))
READ_OPERATOR = Command("+COPS?", Wait.SHORT, parse_operator)
READ_SIGNAL = Command("+CSQ", Wait.SHORT, parse_rssi)

# the SIM
READ_PIN_STATE = Command("+CPIN?", Wait.SHORT, parse_pin_state)
ENTER_PIN = CommandFamily('+CPIN="{pin}"', Wait.SHORT, accepted)
#: EF_ICCID read through the standard restricted SIM access (ModemManager does the same).
READ_ICCID = Command("+CRSM=176,12258,0,0,10", Wait.SHORT, parse_first_iccid)
#: A vendor ICCID form (`ModelProfile.iccid_order`): `+CCID`, `+QCCID`, …
READ_VENDOR_ICCID = CommandFamily("{command}", Wait.SHORT, parse_first_iccid)
READ_IMSI = Command("+CIMI", Wait.SHORT, parse_imsi)
#: EF_AD: its 4th byte tells whether the MNC has 2 or 3 digits.
READ_MNC_LENGTH = Command("+CRSM=176,28589,0,0,4", Wait.SHORT, parse_mnc_length)

# the number
READ_OWN_NUMBERS = Command("+CNUM", Wait.SHORT, parse_own_numbers)
SELECT_OWN_NUMBER_BOOK = Command('+CPBS="ON"', Wait.SHORT, accepted)
READ_FIRST_BOOK_ENTRY = Command("+CPBR=1", Wait.SHORT, parse_phonebook_entry)
SEND_USSD = CommandFamily('+CUSD=1,"{code}",{dcs}', Wait.LONG, _first_line("+CUSD:"))
CANCEL_USSD = Command("+CUSD=2", Wait.SHORT, accepted)

# SMS
READ_SMS = CommandFamily("+CMGR={index}", Wait.SHORT, parse_stored_message)
#: `+CMGL` in PDU mode: 4 = all messages, read or not, sent or not.
LIST_SMS = Command("+CMGL=4", Wait.LONG, parse_listed_messages)
DELETE_SMS = CommandFamily("+CMGD={index}", Wait.SHORT, accepted)
ACK_SMS = Command("+CNMA", Wait.SHORT, accepted)

# the radio and the module
RADIO_OFF = Command("+CFUN=0", Wait.LONG, accepted)
RADIO_ON = Command("+CFUN=1", Wait.LONG, accepted)
REBOOT = Command("+CFUN=1,1", Wait.LONG, accepted)
#: The recovery ladder does not give a module that may be hung a minute to switch its radio
#: off or to acknowledge a reboot: silence there is expected, and the next step tells.
RADIO_OFF_QUICK = Command("+CFUN=0", Wait.SHORT, accepted)
REBOOT_QUICK = Command("+CFUN=1,1", Wait.SHORT, accepted)
