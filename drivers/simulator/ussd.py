"""USSD reply encodings the simulated modems use."""

from __future__ import annotations

from drivers.sms import gsm7

from .profiles import UssdEncoding

DCS_GSM7 = 15
DCS_UCS2 = 72
_QUESTION_MARK = gsm7.encode("?")


def gsm7_encodable(text: str) -> bool:
    return gsm7.is_encodable(text)


def to_septets(text: str) -> list[int]:
    """GSM-7 septets of `text`; characters outside the alphabet become "?" (as modems do)."""
    septets: list[int] = []
    for char in text:
        septets.extend(gsm7.char_septets(char) or _QUESTION_MARK)
    return septets


def pack_septets(septets: list[int]) -> bytes:
    return gsm7.pack(septets)


def unpack_septets(data: bytes) -> list[int]:
    """Every whole septet in `data` (a trailing padding septet included)."""
    return gsm7.unpack(data, len(data) * 8 // 7)


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
        decoded = gsm7.decode(septets)
        if decoded and all(c in "0123456789*#" for c in decoded):
            return decoded
    return code
