"""Typed errors of the AT layer, with the CME/CMS code tables that make them readable.

Every failure the AT engine can report is an `AtError`; final result codes that mean "the modem
refused" are `AtFinalError`s carrying the line the modem sent. The tables turn `+CME ERROR: 10`
into "SIM not inserted" for an operator, and verbose forms (`AT+CMEE=2`, e.g.
`+CME ERROR: SIM not inserted`) back into their numbers so callers can branch on codes only.
"""

from __future__ import annotations

import re

# 3GPP TS 27.007 §9.2 (mobile equipment errors) plus the vendor codes seen in the field.
CME_ERRORS: dict[int, str] = {
    0: "phone failure",
    1: "no connection to phone",
    2: "phone-adaptor link reserved",
    3: "operation not allowed",
    4: "operation not supported",
    5: "PH-SIM PIN required",
    6: "PH-FSIM PIN required",
    7: "PH-FSIM PUK required",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    15: "SIM wrong",
    16: "incorrect password",
    17: "SIM PIN2 required",
    18: "SIM PUK2 required",
    20: "memory full",
    21: "invalid index",
    22: "not found",
    23: "memory failure",
    24: "text string too long",
    25: "invalid characters in text string",
    26: "dial string too long",
    27: "invalid characters in dial string",
    30: "no network service",
    31: "network timeout",
    32: "network not allowed - emergency calls only",
    40: "network personalization PIN required",
    41: "network personalization PUK required",
    42: "network subset personalization PIN required",
    43: "network subset personalization PUK required",
    44: "service provider personalization PIN required",
    45: "service provider personalization PUK required",
    46: "corporate personalization PIN required",
    47: "corporate personalization PUK required",
    50: "incorrect parameters",
    100: "unknown",
    103: "illegal MS",
    106: "illegal ME",
    107: "GPRS services not allowed",
    111: "PLMN not allowed",
    112: "location area not allowed",
    113: "roaming not allowed in this location area",
    132: "service option not supported",
    133: "requested service option not subscribed",
    134: "service option temporarily out of order",
    148: "unspecified GPRS error",
    149: "PDP authentication failure",
    150: "invalid mobile class",
    # Wavecom/SIMCom/Quectel: the module is still initialising or busy with another command.
    515: "please wait, initialisation or command processing in progress",
}

# 3GPP TS 27.005 §3.2.5 (message service failures); 0-255 are network/TP causes.
CMS_ERRORS: dict[int, str] = {
    1: "unassigned (unallocated) number",
    8: "operator determined barring",
    10: "call barred",
    21: "short message transfer rejected",
    27: "destination out of service",
    28: "unidentified subscriber",
    29: "facility rejected",
    30: "unknown subscriber",
    38: "network out of order",
    41: "temporary failure",
    42: "congestion",
    47: "resources unavailable, unspecified",
    50: "requested facility not subscribed",
    69: "requested facility not implemented",
    81: "invalid short message transfer reference value",
    95: "invalid message, unspecified",
    96: "invalid mandatory information",
    97: "message type non-existent or not implemented",
    98: "message not compatible with short message protocol state",
    99: "information element non-existent or not implemented",
    111: "protocol error, unspecified",
    127: "interworking, unspecified",
    128: "telematic interworking not supported",
    129: "short message type 0 not supported",
    130: "cannot replace short message",
    143: "unspecified TP-PID error",
    144: "data coding scheme (alphabet) not supported",
    145: "message class not supported",
    159: "unspecified TP-DCS error",
    160: "command cannot be actioned",
    161: "command unsupported",
    175: "unspecified TP-Command error",
    176: "TPDU not supported",
    192: "SC busy",
    193: "no SC subscription",
    194: "SC system failure",
    195: "invalid SME address",
    196: "destination SME barred",
    197: "SM rejected - duplicate SM",
    198: "TP-VPF not supported",
    199: "TP-VP not supported",
    208: "SIM SMS storage full",
    209: "no SMS storage capability in SIM",
    210: "error in MS",
    211: "memory capacity exceeded",
    212: "SIM application toolkit busy",
    213: "SIM data download error",
    255: "unspecified error cause",
    300: "ME failure",
    301: "SMS service of ME reserved",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    312: "PH-SIM PIN required",
    313: "SIM failure",
    314: "SIM busy",
    315: "SIM wrong",
    316: "SIM PUK required",
    317: "SIM PIN2 required",
    318: "SIM PUK2 required",
    320: "memory failure",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    332: "network timeout",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}

MANUFACTURER_SPECIFIC = "manufacturer-specific error (see the module's AT manual)"


def _text_key(text: str) -> str:
    """Fold a verbose error text so spelling variants ("SIM not inserted.") compare equal."""
    return re.sub(r"[^a-z0-9+]", "", text.lower())


_CME_BY_TEXT: dict[str, int] = {_text_key(text): code for code, text in CME_ERRORS.items()}
_CMS_BY_TEXT: dict[str, int] = {_text_key(text): code for code, text in CMS_ERRORS.items()}
# Verbose spellings modems print that differ from the standard's wording.
_CME_BY_TEXT.update(
    {
        _text_key("operation not allowed"): 3,
        _text_key("SIM not ready"): 14,
        _text_key("invalid input value"): 50,
        _text_key("unknown error"): 100,
    }
)
_CMS_BY_TEXT.update(
    {
        _text_key("invalid index"): 321,
        _text_key("invalid memory index"): 321,
        _text_key("unknown error"): 500,
        _text_key("SIM not ready"): 314,
    }
)


def cme_text(code: int) -> str:
    """What a numeric `+CME ERROR` means, for log lines and messages."""
    if code in CME_ERRORS:
        return CME_ERRORS[code]
    if code >= 256:
        return MANUFACTURER_SPECIFIC
    return "unknown CME error"


def cms_text(code: int) -> str:
    """What a numeric `+CMS ERROR` means, for log lines and messages."""
    if code in CMS_ERRORS:
        return CMS_ERRORS[code]
    if code >= 512:
        return MANUFACTURER_SPECIFIC
    if code < 128:
        return "network cause (3GPP TS 24.011)"
    return "unknown CMS error"


def _split_code(argument: str, by_text: dict[str, int]) -> tuple[int | None, str]:
    """`10` -> (10, ""), `SIM not inserted` -> (10, "SIM not inserted"), junk -> (None, junk)."""
    argument = argument.strip().strip('"').strip()
    if argument.isdigit():
        return int(argument), ""
    return by_text.get(_text_key(argument)), argument


def parse_cme_argument(argument: str) -> tuple[int | None, str]:
    """Code and text of what follows `+CME ERROR:`; the text is the table's when numeric."""
    code, text = _split_code(argument, _CME_BY_TEXT)
    if code is not None and not text:
        text = cme_text(code)
    return code, text


def parse_cms_argument(argument: str) -> tuple[int | None, str]:
    """Code and text of what follows `+CMS ERROR:`; the text is the table's when numeric."""
    code, text = _split_code(argument, _CMS_BY_TEXT)
    if code is not None and not text:
        text = cms_text(code)
    return code, text


class AtError(Exception):
    """Anything that went wrong talking AT to one port."""

    def __init__(self, message: str, *, command: str | None = None, port: str | None = None):
        super().__init__(message)
        self.command = command
        self.port = port

    def __str__(self) -> str:
        parts = [super().__str__()]
        if self.command is not None:
            parts.append(f"command={self.command}")
        if self.port is not None:
            parts.append(f"port={self.port}")
        return " ".join(parts)


class AtTimeout(AtError):
    """The modem did not finish its reply in time (wrong port or baud rate, busy or hung)."""


class PortGone(AtError):
    """The serial port went away (USB unplugged, module rebooted, pty closed) or was closed."""


class ReplyParseError(AtError, ValueError):
    """A reply line did not have the shape its parser expects."""


class UnparsedReply(ReplyParseError):
    """A command's reply its parser refused; `lines` are the information lines, for the log."""

    def __init__(self, message: str, *, lines: list[str], **context: str | None) -> None:
        super().__init__(message, **context)
        self.lines = lines


class AtFinalError(AtError):
    """The modem ended the command with an error final result; `final_line` is what it sent."""

    def __init__(self, final_line: str, message: str | None = None, **context: str | None):
        super().__init__(message or final_line, **context)
        self.final_line = final_line


class AtCommandError(AtFinalError):
    """`ERROR`, `COMMAND NOT SUPPORT`, `NO CARRIER`, `MODEM ERROR: n` and the like."""


class CmeError(AtFinalError):
    """`+CME ERROR: <n|text>`: the mobile equipment refused (SIM missing, busy, PIN needed…)."""

    def __init__(self, code: int | None, text: str, final_line: str = "", **context: str | None):
        self.code = code
        self.text = text
        shown = f"+CME ERROR {code}: {text}" if code is not None else f"+CME ERROR: {text}"
        super().__init__(final_line or shown, shown, **context)

    @classmethod
    def from_line(cls, line: str, **context: str | None) -> CmeError:
        argument = line.split(":", 1)[1] if ":" in line else ""
        code, text = parse_cme_argument(argument)
        return cls(code, text, line, **context)


class CmsError(AtFinalError):
    """`+CMS ERROR: <n|text>`: the message service refused (index empty, memory full…)."""

    def __init__(self, code: int | None, text: str, final_line: str = "", **context: str | None):
        self.code = code
        self.text = text
        shown = f"+CMS ERROR {code}: {text}" if code is not None else f"+CMS ERROR: {text}"
        super().__init__(final_line or shown, shown, **context)

    @classmethod
    def from_line(cls, line: str, **context: str | None) -> CmsError:
        argument = line.split(":", 1)[1] if ":" in line else ""
        code, text = parse_cms_argument(argument)
        return cls(code, text, line, **context)


def error_for_final(final_line: str, **context: str | None) -> AtFinalError | None:
    """The typed error a final result line stands for, or None when it means success (`OK`)."""
    line = final_line.strip()
    if line == "OK":
        return None
    upper = line.upper()
    if upper.startswith("+CME ERROR"):
        return CmeError.from_line(line, **context)
    if upper.startswith("+CMS ERROR"):
        return CmsError.from_line(line, **context)
    return AtCommandError(line, **context)
