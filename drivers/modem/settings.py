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
class DriverTimings:
    """Every wait of the modem driver, in seconds; tests pass short ones to run the ladder fast."""

    command_seconds: float = 5.0  # Wait.SHORT: one basic AT command (+CPMS?, +CMGR, +CSQ…)
    long_command_seconds: float = 60.0  # Wait.LONG: +CMGL on a full storage, +CUSD, +CFUN
    probe_seconds: float = 3.0  # Wait.PROBE: the keep-alive `AT` of a quiet modem
    drain_quiet_seconds: float = 0.2  # after a timeout the port counts as drained after this…
    drain_max_seconds: float = 3.0  # …or after this long at most
    wake_attempts: int = 3  # `AT`s sent to wake an autobauding or booting module
    reboot_settle_seconds: float = 0.5  # quiet after the last boot URC before re-init starts
    reassert_seconds: float = 600.0  # re-send CMGF/CPMS/CNMI/CREG even without a reboot URC
    sim_ready_seconds: float = 60.0  # how long a busy SIM may take before it counts as failed
    sim_busy_backoff_seconds: float = 0.5  # first wait after "SIM busy"; doubles per try…
    sim_busy_backoff_max_seconds: float = 5.0  # …up to this
    sim_retry_seconds: float = 30.0  # re-check a missing/locked SIM this often
    number_retry_seconds: float = 300.0  # climb the number ladder again while it is unknown
    ussd_seconds: float = 30.0  # from `AT+CUSD=1,…` to the operator's reply
    ussd_sms_window_seconds: float = 120.0  # operators that answer by SMS: wait this long
    radio_off_seconds: float = 3.0  # pause between AT+CFUN=0 and AT+CFUN=1
    reboot_wait_seconds: float = 45.0  # after AT+CFUN=1,1: wait this long for the modem
    dead_retry_seconds: float = 300.0  # a DEAD modem is tried again this often


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
    # How long the driver waits for what (defaults suit real modems).
    timings: DriverTimings = field(default_factory=DriverTimings)
