"""GSM 03.38 (3GPP TS 23.038) default alphabet, its extension table and septet packing.

Written out here rather than taken from a dependency: the tables are small, fixed by the standard,
and the codec needs exact control over escape handling and fill bits.
"""

from __future__ import annotations

ESCAPE = 0x1B  # switches the next septet to the extension table
SPACE = 0x20

# The default alphabet, indexed by septet. 0x1B is the escape and never a character of its own.
DEFAULT_ALPHABET = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(DEFAULT_ALPHABET) == 128

# The extension table (septets that follow an escape), default language.
EXTENSION_TABLE: dict[int, str] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_DEFAULT_SEPTET: dict[str, int] = {
    char: septet for septet, char in enumerate(DEFAULT_ALPHABET) if septet != ESCAPE
}
_EXTENSION_SEPTET: dict[str, int] = {char: septet for septet, char in EXTENSION_TABLE.items()}


class Gsm7Error(ValueError):
    """Text that has no GSM-7 form, or packed data too short for the septets asked for."""


def char_septets(char: str) -> tuple[int, ...] | None:
    """The septets of one character (two for an extension character), None if it has none."""
    septet = _DEFAULT_SEPTET.get(char)
    if septet is not None:
        return (septet,)
    septet = _EXTENSION_SEPTET.get(char)
    if septet is not None:
        return (ESCAPE, septet)
    return None


def is_encodable(text: str) -> bool:
    """True when every character is in the default alphabet or its extension table."""
    return all(char in _DEFAULT_SEPTET or char in _EXTENSION_SEPTET for char in text)


def septet_length(text: str) -> int:
    """Septets `text` takes (extension characters count two); raises Gsm7Error if not encodable."""
    return len(encode(text))


def encode(text: str) -> list[int]:
    """Characters to septets (unpacked), extension characters as escape pairs."""
    septets: list[int] = []
    for char in text:
        code = char_septets(char)
        if code is None:
            raise Gsm7Error(f"character {char!r} (U+{ord(char):04X}) has no GSM-7 form")
        septets.extend(code)
    return septets


def decode(septets: list[int] | bytes) -> str:
    """Septets to text; never fails.

    An escape followed by a septet the extension table does not define shows the default
    character for that septet (TS 23.038 asks receivers to do so); a double escape or an escape at
    the very end shows a space.
    """
    chars: list[str] = []
    index = 0
    count = len(septets)
    while index < count:
        septet = septets[index] & 0x7F
        index += 1
        if septet != ESCAPE:
            chars.append(DEFAULT_ALPHABET[septet])
            continue
        if index >= count:
            chars.append(" ")
            break
        following = septets[index] & 0x7F
        index += 1
        if following in EXTENSION_TABLE:
            chars.append(EXTENSION_TABLE[following])
        elif following == ESCAPE:
            chars.append(" ")
        else:
            chars.append(DEFAULT_ALPHABET[following])
    return "".join(chars)


def pack(septets: list[int], fill_bits: int = 0) -> bytes:
    """Pack septets LSB-first into octets, after `fill_bits` zero bits (0..6, used after a UDH)."""
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, got {fill_bits}")
    total_bits = fill_bits + 7 * len(septets)
    value = 0
    for position, septet in enumerate(septets):
        value |= (septet & 0x7F) << (fill_bits + 7 * position)
    return value.to_bytes((total_bits + 7) // 8, "little")


def unpack(data: bytes, septet_count: int, fill_bits: int = 0) -> list[int]:
    """Read `septet_count` septets from packed `data`, skipping `fill_bits` leading bits."""
    if not 0 <= fill_bits <= 6:
        raise ValueError(f"fill_bits must be 0..6, got {fill_bits}")
    if septet_count < 0 or fill_bits + 7 * septet_count > 8 * len(data):
        raise Gsm7Error(
            f"{len(data)} octets cannot hold {septet_count} septets after {fill_bits} fill bits"
        )
    value = int.from_bytes(data, "little") >> fill_bits
    return [(value >> (7 * position)) & 0x7F for position in range(septet_count)]


def packed_length(septet_count: int, fill_bits: int = 0) -> int:
    """Octets that `septet_count` septets take when packed after `fill_bits` fill bits."""
    return (fill_bits + 7 * septet_count + 7) // 8
