"""USSD reply encodings the simulated modems use, and the GSM-7 packing they need."""

from __future__ import annotations

from .profiles import UssdEncoding

#: GSM 03.38 default alphabet, indexed by septet value.
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
#: Characters reached through the escape septet 0x1B.
GSM7_EXTENSION = {"\f": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D,
                  "]": 0x3E, "|": 0x40, "€": 0x65}  # fmt: skip
_BASIC_INDEX = {ch: i for i, ch in enumerate(GSM7_BASIC)}

DCS_GSM7 = 15
DCS_UCS2 = 72


def gsm7_encodable(text: str) -> bool:
    return all(ch in _BASIC_INDEX or ch in GSM7_EXTENSION for ch in text)


def to_septets(text: str) -> list[int]:
    """GSM-7 septets of `text`; characters outside the alphabet become "?"."""
    septets: list[int] = []
    for ch in text:
        if ch in _BASIC_INDEX:
            septets.append(_BASIC_INDEX[ch])
        elif ch in GSM7_EXTENSION:
            septets.extend((0x1B, GSM7_EXTENSION[ch]))
        else:
            septets.append(_BASIC_INDEX["?"])
    return septets


def from_septets(septets: list[int]) -> str:
    reverse_ext = {v: k for k, v in GSM7_EXTENSION.items()}
    chars: list[str] = []
    escape = False
    for septet in septets:
        if escape:
            chars.append(reverse_ext.get(septet, " "))
            escape = False
        elif septet == 0x1B:
            escape = True
        else:
            chars.append(GSM7_BASIC[septet])
    return "".join(chars)


def pack_septets(septets: list[int]) -> bytes:
    value = 0
    for i, septet in enumerate(septets):
        value |= (septet & 0x7F) << (7 * i)
    return value.to_bytes((7 * len(septets) + 7) // 8, "little")


def unpack_septets(data: bytes) -> list[int]:
    value = int.from_bytes(data, "little")
    count = len(data) * 8 // 7
    return [(value >> (7 * i)) & 0x7F for i in range(count)]


def encode_ussd_reply(text: str, encoding: UssdEncoding) -> tuple[str, int]:
    """The `<str>` and `<dcs>` of a `+CUSD` reply carrying `text` the way a model would."""
    if encoding is UssdEncoding.UCS2_HEX:
        return text.encode("utf-16-be").hex().upper(), DCS_UCS2
    if encoding is UssdEncoding.GSM7_PACKED_HEX:
        return pack_septets(to_septets(text)).hex().upper(), DCS_GSM7
    return text, DCS_GSM7


def decode_ussd_request(code: str) -> str:
    """The code a client sent: plain "*100#", or packed GSM-7 hex as Huawei sticks want it."""
    if code and all(c in "0123456789abcdefABCDEF" for c in code) and len(code) % 2 == 0:
        septets = unpack_septets(bytes.fromhex(code))
        # A trailing 0 septet that only fills the last octet is padding, not "@".
        while septets and septets[-1] == 0:
            septets.pop()
        decoded = from_septets(septets)
        if decoded and all(c in "0123456789*#" for c in decoded):
            return decoded
    return code
