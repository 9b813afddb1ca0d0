"""Final error results of the simulated modems (`+CME ERROR`, `+CMS ERROR`, plain `ERROR`)."""

from __future__ import annotations

CME_TEXTS: dict[int, str] = {
    3: "operation not allowed",
    4: "operation not supported",
    10: "SIM not inserted",
    11: "SIM PIN required",
    12: "SIM PUK required",
    13: "SIM failure",
    14: "SIM busy",
    16: "incorrect password",
    21: "invalid index",
    30: "no network service",
    50: "Incorrect parameters",
    100: "unknown",
}

CMS_TEXTS: dict[int, str] = {
    300: "ME failure",
    302: "operation not allowed",
    303: "operation not supported",
    304: "invalid PDU mode parameter",
    305: "invalid text mode parameter",
    310: "SIM not inserted",
    311: "SIM PIN required",
    314: "SIM busy",
    321: "invalid memory index",
    322: "memory full",
    330: "SMSC address unknown",
    331: "no network service",
    340: "no +CNMA acknowledgement expected",
    500: "unknown error",
}


class CommandFailed(Exception):
    """A command ends in an error result; `final(cmee)` renders it as the modem would."""

    def final(self, cmee: int) -> str:
        return "ERROR"


class PlainError(CommandFailed):
    """Bare `ERROR` (syntax errors, bad parameters on most models)."""


class Unsupported(CommandFailed):
    """The model does not know the command; the profile decides the wording."""

    def __init__(self, reply: str = "ERROR") -> None:
        super().__init__(reply)
        self.reply = reply

    def final(self, cmee: int) -> str:
        return self.reply


class CmeError(CommandFailed):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    def final(self, cmee: int) -> str:
        if cmee == 0:
            return "ERROR"
        if cmee == 2:
            return f"+CME ERROR: {CME_TEXTS.get(self.code, 'unknown')}"
        return f"+CME ERROR: {self.code}"


class CmsError(CommandFailed):
    """SMS errors; shown numerically even under `CMEE=0`, as most modules do."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    def final(self, cmee: int) -> str:
        if cmee == 2:
            return f"+CMS ERROR: {CMS_TEXTS.get(self.code, 'unknown error')}"
        return f"+CMS ERROR: {self.code}"
