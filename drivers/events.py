"""What a modem driver reports: plain data, no knowledge of the pool or the marketplace."""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from drivers.modem.held import HeldModem
    from drivers.sms.pdu import SmsDeliver

#: Called with ("in" | "out", bytes) for every byte that crosses a traced port.
TraceHook = Callable[[str, bytes], None]


class ModemState(enum.StrEnum):
    """Where a modem is in its life; only READY modems have a SIM worth selling."""

    STARTING = "starting"  # port opened, init running
    NO_SIM = "no_sim"  # no SIM, SIM failure, or PIN/PUK needed
    SEARCHING = "searching"  # SIM ready, not (yet) registered on a network
    READY = "ready"  # SIM ready, registered, receive path swept successfully
    RECOVERING = "recovering"  # climbing the recovery ladder
    DEAD = "dead"  # the ladder is exhausted; retried rarely
    GONE = "gone"  # the port vanished (unplugged, re-enumerated)


@dataclass(frozen=True, slots=True)
class ModemStatus:
    """A snapshot of one modem and its SIM, as the driver knows them."""

    port: str
    state: ModemState
    manufacturer: str | None = None
    model: str | None = None
    revision: str | None = None
    imei: str | None = None
    iccid: str | None = None
    imsi: str | None = None
    mccmnc: str | None = None
    number: str | None = None  # digits with country code
    number_source: str | None = None  # cnum | phonebook | config | ussd
    registration: str | None = None  # home | roaming | searching | denied | unknown | off
    operator_code: str | None = None  # MCC+MNC the modem is registered on
    signal_rssi: int | None = None  # 0..31 from +CSQ; None when unknown (99)
    storage: dict[str, tuple[int, int]] = field(default_factory=dict)  # memory -> (used, total)
    last_sweep_at: float | None = None
    last_sms_at: float | None = None
    detail: str | None = None  # why it is not ready, in words an operator can act on
    # Counters since the driver started (for /metrics; 0 and empty when the driver keeps none).
    timeouts: int = 0  # AT commands that got no final reply in time
    recoveries: dict[str, int] = field(default_factory=dict)  # rung -> recoveries it ended

    @property
    def sellable(self) -> bool:
        """Ready, registered, number known: the farm may offer this SIM."""
        return (
            self.state is ModemState.READY
            and self.iccid is not None
            and self.number is not None
            and self.registration in ("home", "roaming")
        )


@dataclass(frozen=True, slots=True)
class ReceivedPdu:
    """One SMS PDU read from a modem (or routed by it), before it is deleted there."""

    port: str
    iccid: str
    pdu: str  # hex as the modem gave it, SMSC prefix included
    storage: str | None  # memory it was read from; None for a routed +CMT
    index: int | None
    received_at: float
    deliver: SmsDeliver | None  # None when the PDU is not an SMS-DELIVER or did not decode
    decode_error: str | None = None

    @property
    def fingerprint(self) -> str:
        """Same SIM and same TPDU give the same fingerprint, however the PDU was read."""
        return pdu_fingerprint(self.iccid, self.pdu)


def pdu_fingerprint(iccid: str, pdu_hex: str) -> str:
    """Hash of the receiving ICCID and the TPDU without its SMSC prefix (spec §2.9)."""
    text = pdu_hex.strip().upper()
    try:
        smsc_octets = int(text[:2], 16)
        tpdu = text[2 + 2 * smsc_octets :]
    except ValueError:
        tpdu = text
    return hashlib.sha256(f"{iccid}:{tpdu}".encode()).hexdigest()[:32]


class DriverEvents(Protocol):
    """Where a driver reports to (the farm implements it)."""

    async def sms_received(self, sms: ReceivedPdu) -> None:
        """Persist the SMS; return only once it is on disk. Raising keeps it on the modem."""

    def status_changed(self, status: ModemStatus) -> None:
        """A new snapshot of the modem; called on every change that matters."""


@runtime_checkable
class Driver(Protocol):
    """What whoever runs a modem driver (the farm, a SIM bank's rotation) may ask of it."""

    @property
    def status(self) -> ModemStatus:
        """The newest snapshot of the modem and its SIM."""
        ...

    async def run(self) -> None:
        """Drive the modem until cancelled; return or raise when the port is gone."""

    async def sweep_now(self, timeout: float) -> bool:
        """Read, persist and delete every stored SMS now; False when there is no SIM to sweep.

        TimeoutError when the driver does not get to it in time.
        """
        ...

    def held(self, timeout: float) -> AbstractAsyncContextManager[HeldModem]:
        """The parked modem for a SIM switch; re-initialised by the driver on exit.

        TimeoutError (on entry) when the driver does not get to it in time.
        """
        ...

    def set_trace(self, hook: TraceHook | None) -> None:
        """Report every byte on the port to `hook` from now on; None stops the trace."""
