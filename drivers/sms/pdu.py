"""SMS PDU codec (3GPP TS 23.040 / 23.038): decode what modems give, encode SMS-DELIVER for tests.

Decoding is total: any input either decodes or raises `PduError`, so one bad PDU can be stored
raw and flagged without killing the task that read it.

Decisions worth knowing:
* UCS2 is decoded as UTF-16-BE. A lone trailing odd octet or an unpaired surrogate becomes
  U+FFFD (the rest of the text stays readable); `.text` is therefore always encodable as UTF-8.
  `.data` keeps the raw octets, so parts of a message that split a surrogate pair can be joined
  before decoding.
* A concatenation IE whose length is wrong, whose total is 0, or whose sequence number is 0 or
  above the total is kept in `.udh` but `.concat` is None: the text still reaches its reader as a
  single message instead of being lost.
* IE lengths that overrun the UDH length, or a UDH longer than the user data, raise `PduError`.
* Reserved DCS groups decode as GSM-7 (TS 23.038 says so); compressed text is returned as 8-bit
  data (`.text` empty) rather than failing.
* Octets after the user data are ignored (some modems pad); fewer octets than the lengths say
  raise `PduError`. A UDHI bit with empty user data means an empty message (seen live), unless
  the address before it is broken too (its type octet lacks bit 8): then the PDU is refused.
* SCTS years are 2000 + YY. A time-zone octet that is not BCD leaves the zone unknown: the
  timestamp is then naive (the message is kept; only the offset is lost).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from drivers.sms import gsm7

# TS 23.040 limits
MAX_UD_OCTETS = 140
MAX_GSM7_SEPTETS = 160
MAX_UCS2_UNITS = 70
MAX_PARTS = 255
MAX_ALPHA_SENDER_SEPTETS = 11
MAX_ADDRESS_DIGITS = 20

# Type-of-address octets
TOA_INTERNATIONAL = 0x91
TOA_UNKNOWN = 0x81
TOA_ALPHANUMERIC = 0xD0
TOA_EXTENSION_BIT = 0x80  # set in every type-of-address octet TS 23.040 §9.1.2.5 defines

# Information element identifiers
IEI_CONCAT_8BIT = 0x00
IEI_PORTS_8BIT = 0x04
IEI_PORTS_16BIT = 0x05
IEI_CONCAT_16BIT = 0x08

# First-octet bits
MTI_DELIVER = 0
MTI_SUBMIT = 1
MTI_STATUS_REPORT = 2
FO_MORE_MESSAGES_NOT = 0x04  # TP-MMS: set when NO more messages wait at the SMSC
FO_UDHI = 0x40

_BCD_DIGITS = "0123456789*#abc"
_NUMERIC_SENDER = re.compile(r"\+?[0-9]{1,20}")


class PduError(ValueError):
    """The one error type for any PDU that cannot be decoded. .pdu holds the raw input as given."""

    def __init__(self, message: str, pdu: str | bytes = "") -> None:
        super().__init__(message)
        self.pdu = pdu


@dataclass(frozen=True)
class Concat:
    ref: int  # concatenation reference
    total: int  # number of parts
    seq: int  # 1-based part number
    ref_bits: int  # 8 (IEI 0x00) or 16 (IEI 0x08)


@dataclass(frozen=True)
class SmsDeliver:
    smsc: str | None
    sender: str  # '+4915…' international, digits national/unknown, text alphanumeric
    sender_is_alpha: bool
    sender_toa: int
    pid: int
    dcs: int
    encoding: str  # "gsm7" | "ucs2" | "8bit"
    message_class: int | None
    timestamp: datetime  # timezone-aware; naive when the PDU's zone octet is not BCD
    text: str  # "" for 8-bit data
    data: bytes  # user data without the UDH
    udh: tuple[tuple[int, bytes], ...]
    concat: Concat | None
    ports: tuple[int, int] | None  # (destination, source)
    more_messages: bool  # the SMSC holds more messages for this recipient
    reply_path: bool = False
    status_report_indication: bool = False


@dataclass(frozen=True)
class SmsStatusReport:
    smsc: str | None
    message_ref: int
    recipient: str
    timestamp: datetime  # when the SMSC received the submitted message
    discharge_time: datetime
    status: int  # TP-ST: 0x00 delivered, 0x20-0x3F still trying, 0x40+ failed


@dataclass(frozen=True)
class SmsSubmit:
    """A sent or unsent SMS-SUBMIT as stored on the SIM (`+CMGR` stat 2/3)."""

    smsc: str | None
    message_ref: int
    recipient: str
    pid: int
    dcs: int
    encoding: str
    text: str
    udh: tuple[tuple[int, bytes], ...]
    concat: Concat | None


# ---------------------------------------------------------------- decoding


class _Reader:
    """Octets of one PDU with a cursor; every short read raises PduError."""

    def __init__(self, data: bytes, raw: str | bytes) -> None:
        self.data = data
        self.raw = raw
        self.pos = 0

    def error(self, message: str) -> PduError:
        return PduError(f"{message} (at octet {self.pos})", self.raw)

    def octet(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise self.error(f"PDU ends before {what}")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def take(self, count: int, what: str) -> bytes:
        if self.pos + count > len(self.data):
            raise self.error(
                f"PDU ends inside {what}: needs {count} octets, {len(self.data) - self.pos} left"
            )
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk


def _to_bytes(pdu: str | bytes) -> bytes:
    if isinstance(pdu, bytes | bytearray | memoryview):
        return bytes(pdu)
    if not isinstance(pdu, str):
        raise PduError(f"a PDU is hex text or bytes, not {type(pdu).__name__}", pdu)
    text = pdu.strip()
    if len(text) % 2:
        raise PduError(f"odd number of hex digits ({len(text)})", pdu)
    if not all(char in "0123456789abcdefABCDEF" for char in text):
        raise PduError("PDU is not hex", pdu)
    return bytes.fromhex(text)


def _semi_octets(octets: bytes, count: int, reader: _Reader, what: str) -> str:
    """`count` BCD semi-octets (low nibble first); 0xF is only allowed as filler after them."""
    digits: list[str] = []
    for index in range(count):
        octet = octets[index // 2]
        nibble = octet & 0x0F if index % 2 == 0 else octet >> 4
        if nibble == 0x0F:
            raise reader.error(f"filler semi-octet inside {what}")
        digits.append(_BCD_DIGITS[nibble])
    return "".join(digits)


def _read_smsc(reader: _Reader) -> str | None:
    length = reader.octet("the SMSC length")
    if length == 0:
        return None
    body = reader.take(length, "the SMSC address")
    toa, digits_octets = body[0], body[1:]
    count = 2 * len(digits_octets)
    if count and digits_octets[-1] >> 4 == 0x0F:
        count -= 1
    if count == 0:
        return None
    digits = _semi_octets(digits_octets, count, reader, "the SMSC address")
    return "+" + digits if toa & 0x70 == 0x10 else digits


def _read_address(reader: _Reader, what: str) -> tuple[str, int, bool]:
    """(address, type-of-address, is alphanumeric) of an OA/DA/RA field."""
    semi_octet_count = reader.octet(f"the {what} length")
    toa = reader.octet(f"the {what} type")
    body = reader.take((semi_octet_count + 1) // 2, f"the {what}")
    if toa & 0x70 == 0x50:
        septets = gsm7.unpack(body, semi_octet_count * 4 // 7)
        return gsm7.decode(septets), toa, True
    if semi_octet_count > MAX_ADDRESS_DIGITS:
        raise reader.error(f"{what} of {semi_octet_count} digits is longer than 20")
    digits = _semi_octets(body, semi_octet_count, reader, f"the {what}")
    if toa & 0x70 == 0x10 and digits:
        return "+" + digits, toa, False
    return digits, toa, False


def _bcd_swapped(octet: int, reader: _Reader, what: str) -> int:
    low, high = octet & 0x0F, octet >> 4
    if low > 9 or high > 9:
        raise reader.error(f"{what} octet {octet:02X} is not two decimal digits")
    return low * 10 + high


def _read_timestamp(reader: _Reader, what: str) -> datetime:
    octets = reader.take(7, what)
    year, month, day, hour, minute, second = (
        _bcd_swapped(octet, reader, what) for octet in octets[:6]
    )
    zone = octets[6]
    tzinfo: timezone | None = None  # the zone units digit is not BCD: the offset is unknown
    if zone >> 4 <= 9:
        quarters = (zone & 0x07) * 10 + (zone >> 4)
        offset = timedelta(minutes=15 * quarters)
        tzinfo = timezone(-offset if zone & 0x08 else offset)
    try:
        return datetime(2000 + year, month, day, hour, minute, second, tzinfo=tzinfo)
    except ValueError as exc:
        raise reader.error(f"{what} is not a valid date: {exc}") from None


def _dcs_meaning(dcs: int) -> tuple[str, int | None]:
    """(encoding, message class) of a DCS octet per TS 23.038 §4."""
    group = dcs >> 4
    if group <= 0x7:  # general data coding (0x40-0x7F: same, marked for automatic deletion)
        message_class = dcs & 0x03 if dcs & 0x10 else None
        if dcs & 0x20:  # compressed: we cannot decompress, hand over the octets
            return "8bit", message_class
        alphabet = (dcs >> 2) & 0x03
        return ("gsm7", "8bit", "ucs2", "gsm7")[alphabet], message_class
    if group in (0xC, 0xD):  # message waiting indication, discard / store, GSM-7
        return "gsm7", None
    if group == 0xE:  # message waiting indication, store, UCS2
        return "ucs2", None
    if group == 0xF:  # data coding / message class
        return ("8bit" if dcs & 0x04 else "gsm7"), dcs & 0x03
    return "gsm7", None  # reserved groups 0x8-0xB: assume the default alphabet


def _parse_udh(header: bytes, reader: _Reader) -> tuple[tuple[int, bytes], ...]:
    elements: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(header):
        if pos + 2 > len(header):
            raise reader.error("UDH ends inside an information element header")
        iei, length = header[pos], header[pos + 1]
        if pos + 2 + length > len(header):
            raise reader.error(f"UDH element {iei:02X} of {length} octets overruns the UDH")
        elements.append((iei, bytes(header[pos + 2 : pos + 2 + length])))
        pos += 2 + length
    return tuple(elements)


def _concat_of(udh: tuple[tuple[int, bytes], ...]) -> Concat | None:
    for iei, value in udh:
        if iei == IEI_CONCAT_8BIT and len(value) == 3:
            concat = Concat(ref=value[0], total=value[1], seq=value[2], ref_bits=8)
        elif iei == IEI_CONCAT_16BIT and len(value) == 4:
            ref = int.from_bytes(value[:2], "big")
            concat = Concat(ref=ref, total=value[2], seq=value[3], ref_bits=16)
        else:
            continue
        if concat.total >= 1 and 1 <= concat.seq <= concat.total:
            return concat
    return None


def _ports_of(udh: tuple[tuple[int, bytes], ...]) -> tuple[int, int] | None:
    for iei, value in udh:
        if iei == IEI_PORTS_8BIT and len(value) == 2:
            return value[0], value[1]
        if iei == IEI_PORTS_16BIT and len(value) == 4:
            return int.from_bytes(value[:2], "big"), int.from_bytes(value[2:], "big")
    return None


@dataclass(frozen=True)
class _UserData:
    text: str
    data: bytes
    udh: tuple[tuple[int, bytes], ...]


def _read_user_data(
    reader: _Reader, encoding: str, has_udh: bool, *, address_well_formed: bool
) -> _UserData:
    udl = reader.octet("the user data length")
    if encoding == "gsm7":
        if udl > MAX_GSM7_SEPTETS:
            raise reader.error(f"user data length {udl} septets exceeds {MAX_GSM7_SEPTETS}")
        body = reader.take(gsm7.packed_length(udl), "the user data")
    else:
        if udl > MAX_UD_OCTETS:
            raise reader.error(f"user data length {udl} octets exceeds {MAX_UD_OCTETS}")
        body = reader.take(udl, "the user data")
    udh: tuple[tuple[int, bytes], ...] = ()
    header_octets = 0
    if has_udh and not body and not address_well_formed:
        raise reader.error("UDHI set but no user data, after an address type without bit 8")
    if has_udh and body:  # an empty user data with the UDHI bit set is just empty (seen live)
        header_octets = body[0] + 1
        if header_octets > len(body):
            raise reader.error(f"UDH of {body[0]} octets does not fit the user data")
        udh = _parse_udh(body[1:header_octets], reader)
    if encoding != "gsm7":
        payload = bytes(body[header_octets:])
        text = payload.decode("utf-16-be", errors="replace") if encoding == "ucs2" else ""
        return _UserData(text, payload, udh)
    header_septets = (header_octets * 8 + 6) // 7
    if header_septets > udl:
        raise reader.error(f"UDH of {header_octets} octets is longer than {udl} septets")
    fill_bits = header_septets * 7 - header_octets * 8
    text_bytes = body[header_octets:]
    septets = gsm7.unpack(text_bytes, udl - header_septets, fill_bits)
    return _UserData(gsm7.decode(septets), bytes(text_bytes), udh)


def _decode_deliver(reader: _Reader, smsc: str | None, first: int) -> SmsDeliver:
    sender, toa, is_alpha = _read_address(reader, "originating address")
    pid = reader.octet("the protocol identifier")
    dcs = reader.octet("the data coding scheme")
    encoding, message_class = _dcs_meaning(dcs)
    timestamp = _read_timestamp(reader, "the service centre time stamp")
    user_data = _read_user_data(
        reader, encoding, bool(first & FO_UDHI), address_well_formed=bool(toa & TOA_EXTENSION_BIT)
    )
    return SmsDeliver(
        smsc=smsc,
        sender=sender,
        sender_is_alpha=is_alpha,
        sender_toa=toa,
        pid=pid,
        dcs=dcs,
        encoding=encoding,
        message_class=message_class,
        timestamp=timestamp,
        text=user_data.text,
        data=user_data.data,
        udh=user_data.udh,
        concat=_concat_of(user_data.udh),
        ports=_ports_of(user_data.udh),
        more_messages=not first & FO_MORE_MESSAGES_NOT,
        reply_path=bool(first & 0x80),
        status_report_indication=bool(first & 0x20),
    )


def _decode_submit(reader: _Reader, smsc: str | None, first: int) -> SmsSubmit:
    message_ref = reader.octet("the message reference")
    recipient, toa, _ = _read_address(reader, "destination address")
    pid = reader.octet("the protocol identifier")
    dcs = reader.octet("the data coding scheme")
    encoding, _ = _dcs_meaning(dcs)
    validity_format = (first >> 3) & 0x03
    if validity_format == 0b10:
        reader.take(1, "the relative validity period")
    elif validity_format in (0b01, 0b11):
        reader.take(7, "the validity period")
    user_data = _read_user_data(
        reader, encoding, bool(first & FO_UDHI), address_well_formed=bool(toa & TOA_EXTENSION_BIT)
    )
    return SmsSubmit(
        smsc=smsc,
        message_ref=message_ref,
        recipient=recipient,
        pid=pid,
        dcs=dcs,
        encoding=encoding,
        text=user_data.text,
        udh=user_data.udh,
        concat=_concat_of(user_data.udh),
    )


def _decode_status_report(reader: _Reader, smsc: str | None) -> SmsStatusReport:
    message_ref = reader.octet("the message reference")
    recipient, _, _ = _read_address(reader, "recipient address")
    timestamp = _read_timestamp(reader, "the service centre time stamp")
    discharge_time = _read_timestamp(reader, "the discharge time")
    status = reader.octet("the status")
    # Optional parameter indicator, PID, DCS and user data may follow; nobody needs them here.
    return SmsStatusReport(smsc, message_ref, recipient, timestamp, discharge_time, status)


def decode_pdu(
    pdu: str | bytes, *, has_smsc: bool = True
) -> SmsDeliver | SmsStatusReport | SmsSubmit:
    """Decode one PDU as a modem gives it in `+CMGR`/`+CMGL`/`+CMT` (SMSC prefix by default).

    Raises PduError, and nothing else, for anything that is not a well-formed PDU.
    """
    try:
        reader = _Reader(_to_bytes(pdu), pdu)
        smsc = _read_smsc(reader) if has_smsc else None
        first = reader.octet("the first octet")
        mti = first & 0x03
        if mti == MTI_DELIVER:
            return _decode_deliver(reader, smsc, first)
        if mti == MTI_SUBMIT:
            return _decode_submit(reader, smsc, first)
        if mti == MTI_STATUS_REPORT:
            return _decode_status_report(reader, smsc)
        raise reader.error(f"reserved message type indicator {mti}")
    except PduError:
        raise
    except gsm7.Gsm7Error as exc:
        raise PduError(str(exc), pdu) from None
    except Exception as exc:  # a decoder bug must not kill the reading task
        raise PduError(f"unexpected decoder failure: {exc!r}", pdu) from exc


def tpdu_length(pdu_hex: str) -> int:
    """Octets of the TPDU without the SMSC prefix: the <length> of `+CMGR`/`+CMGL`/`+CMT`.

    Checks only that the text is hex and the SMSC prefix fits, not the TPDU itself, so that
    deliberately broken PDUs can still be handed around.
    """
    data = _to_bytes(pdu_hex)
    if not data:
        raise PduError("empty PDU", pdu_hex)
    smsc_octets = 1 + data[0]
    if smsc_octets >= len(data):
        raise PduError(f"SMSC prefix of {data[0]} octets leaves no TPDU", pdu_hex)
    return len(data) - smsc_octets


# ---------------------------------------------------------------- encoding


def _encode_bcd(digits: str) -> bytes:
    nibbles = [_BCD_DIGITS.index(char) for char in digits]
    if len(nibbles) % 2:
        nibbles.append(0x0F)
    return bytes(low | high << 4 for low, high in zip(nibbles[::2], nibbles[1::2], strict=True))


def _encode_number(number: str) -> tuple[int, str]:
    """(type of address, digits) of a '+…' or plain number."""
    if number.startswith("+"):
        return TOA_INTERNATIONAL, number[1:]
    return TOA_UNKNOWN, number


def _encode_smsc(smsc: str | None) -> bytes:
    if not smsc:
        return b"\x00"
    toa, digits = _encode_number(smsc)
    if not _NUMERIC_SENDER.fullmatch(smsc) or len(digits) > MAX_ADDRESS_DIGITS:
        raise ValueError(f"SMSC {smsc!r} is not a phone number")
    body = bytes([toa]) + _encode_bcd(digits)
    return bytes([len(body)]) + body


def _encode_sender(sender: str) -> bytes:
    if _NUMERIC_SENDER.fullmatch(sender):
        toa, digits = _encode_number(sender)
        return bytes([len(digits), toa]) + _encode_bcd(digits)
    if not sender:
        raise ValueError("empty sender")
    try:
        septets = gsm7.encode(sender)
    except gsm7.Gsm7Error as exc:
        raise ValueError(f"alphanumeric sender {sender!r}: {exc}") from None
    if len(septets) > MAX_ALPHA_SENDER_SEPTETS:
        raise ValueError(f"alphanumeric sender {sender!r} is longer than 11 GSM-7 characters")
    semi_octets = (7 * len(septets) + 3) // 4
    return bytes([semi_octets, TOA_ALPHANUMERIC]) + gsm7.pack(septets)


def _encode_timestamp(stamp: datetime) -> bytes:
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    offset = stamp.utcoffset() or timedelta(0)
    minutes = int(offset.total_seconds()) // 60
    if minutes % 15 or abs(minutes) > 79 * 15:
        raise ValueError(f"time zone offset {offset} is not whole quarter hours within ±19:45")
    if not 2000 <= stamp.year <= 2099:
        raise ValueError(f"year {stamp.year} does not fit a two-digit SCTS year")

    def swapped(value: int) -> int:
        return (value % 10) << 4 | value // 10

    fields = (stamp.year % 100, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
    quarters = abs(minutes) // 15
    zone = swapped(quarters) | (0x08 if minutes < 0 else 0)
    return bytes(swapped(value) for value in fields) + bytes([zone])


def _split_units(units: list[list[int]], limit: int) -> list[list[int]]:
    """Group per-character units into parts of at most `limit`, never splitting a character."""
    parts: list[list[int]] = [[]]
    for char_units in units:
        if len(parts[-1]) + len(char_units) > limit:
            parts.append([])
        parts[-1].extend(char_units)
    return parts


def _utf16_units(char: str) -> list[int]:
    """UTF-16 code units of one character (two for a surrogate pair)."""
    octets = char.encode("utf-16-be")
    return [int.from_bytes(octets[i : i + 2], "big") for i in range(0, len(octets), 2)]


def _concat_udh(ref: int, ref16: bool, total: int, seq: int) -> bytes:
    """The UDH (with its length octet) of one part of a concatenated message."""
    if ref16:
        element = bytes([IEI_CONCAT_16BIT, 4]) + ref.to_bytes(2, "big") + bytes([total, seq])
    else:
        element = bytes([IEI_CONCAT_8BIT, 3, ref, total, seq])
    return bytes([len(element)]) + element


def _resolve_encoding(text: str, encoding: str, dcs: int | None) -> tuple[str, int]:
    if encoding not in ("auto", "gsm7", "ucs2"):
        raise ValueError(f"encoding must be 'auto', 'gsm7' or 'ucs2', not {encoding!r}")
    if dcs is not None:
        if not 0 <= dcs <= 0xFF:
            raise ValueError(f"DCS {dcs} is not an octet")
        implied, _ = _dcs_meaning(dcs)
        if implied == "8bit":  # includes compressed text
            raise ValueError(f"DCS {dcs:02X} means 8-bit or compressed data, not text")
        if encoding not in ("auto", implied):
            raise ValueError(f"DCS {dcs:02X} means {implied}, not {encoding}")
        encoding = implied
    elif encoding == "auto":
        encoding = "gsm7" if gsm7.is_encodable(text) else "ucs2"
    if encoding == "gsm7" and not gsm7.is_encodable(text):
        raise ValueError("text has characters outside GSM-7; use UCS2")
    if dcs is None:
        dcs = 0x00 if encoding == "gsm7" else 0x08
    return encoding, dcs


def encode_deliver(
    sender: str,
    text: str,
    *,
    timestamp: datetime | None = None,
    encoding: str = "auto",
    ref: int | None = None,
    ref16: bool = False,
    smsc: str | None = None,
    dcs: int | None = None,
    pid: int = 0,
) -> list[str]:
    """SMS-DELIVER PDUs (uppercase hex with SMSC prefix) as a network would send `text`.

    One PDU when the text fits (160 GSM-7 septets / 70 UCS2 code units), else parts with a
    concatenation UDH. Raises ValueError for arguments that have no valid PDU form.
    """
    encoding, dcs = _resolve_encoding(text, encoding, dcs)
    if not 0 <= pid <= 0xFF:
        raise ValueError(f"PID {pid} is not an octet")
    ref_limit = 1 << (16 if ref16 else 8)
    if ref is None:
        ref = random.randrange(ref_limit)
    elif not 0 <= ref < ref_limit:
        raise ValueError(
            f"concatenation reference {ref} does not fit {ref_limit.bit_length() - 1} bits"
        )
    head = _encode_smsc(smsc)
    sender_field = _encode_sender(sender)
    stamp = _encode_timestamp(timestamp or datetime.now(UTC).replace(microsecond=0))

    if encoding == "gsm7":
        units = [list(gsm7.char_septets(char) or ()) for char in text]
        single_limit = MAX_GSM7_SEPTETS
    else:
        units = [_utf16_units(char) for char in text]
        single_limit = MAX_UCS2_UNITS
    if sum(len(u) for u in units) <= single_limit:
        chunks = [[unit for char_units in units for unit in char_units]]
        split = False
    else:
        header_octets = 1 + (6 if ref16 else 5)
        if encoding == "gsm7":
            limit = (MAX_UD_OCTETS * 8 - header_octets * 8) // 7  # 153 or 152 septets
        else:
            limit = (MAX_UD_OCTETS - header_octets) // 2  # 67 or 66 code units
        chunks = _split_units(units, limit)
        split = True
    if len(chunks) > MAX_PARTS:
        raise ValueError(f"text needs {len(chunks)} parts, more than {MAX_PARTS}")

    pdus: list[str] = []
    for seq, chunk in enumerate(chunks, start=1):
        udh = _concat_udh(ref, ref16, len(chunks), seq) if split else b""
        if encoding == "gsm7":
            header_septets = (len(udh) * 8 + 6) // 7
            fill_bits = header_septets * 7 - len(udh) * 8
            user_data = udh + gsm7.pack(chunk, fill_bits)
            udl = header_septets + len(chunk)
        else:
            user_data = udh + b"".join(unit.to_bytes(2, "big") for unit in chunk)
            udl = len(user_data)
        first = FO_MORE_MESSAGES_NOT | (FO_UDHI if udh else 0)
        tpdu = bytes([first]) + sender_field + bytes([pid, dcs]) + stamp
        tpdu += bytes([udl]) + user_data
        pdus.append((head + tpdu).hex().upper())
    return pdus
