"""What a modem driver is told by whoever runs it (the farm, a test, the CLI)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class UssdRule:
    """How to learn a SIM's number by USSD on one network (keyed by MCC+MNC)."""

    code: str  # e.g. "*111*0887#"
    pattern: str  # a regex whose first group captures the number in the reply
    reply_by_sms: bool = False  # the operator answers with an SMS instead of a USSD reply


@dataclass(frozen=True, slots=True)
class DriverSettings:
    baudrate: int = 115200
    pin: str | None = None  # entered once if the SIM asks; never retried after a failure
    sweep_seconds: float = 30.0  # storage sweep even without +CMTI hints
    keepalive_seconds: float = 10.0  # probe a quiet modem this often
    signal_poll_seconds: float = 120.0
    # The number of a SIM the driver cannot learn itself (configuration, or learned before).
    known_number: Callable[[str], str | None] = lambda iccid: None
    ussd: Mapping[str, UssdRule] = field(default_factory=dict)  # MCC+MNC -> rule
    # Called with ("in" | "out", bytes) for every byte on the port while tracing is on.
    trace: Callable[[str, bytes], None] | None = None
