"""The pool's plain data: what it keeps of SIMs, activations, SMS, pushes and SIM banks.

Neutral ground between the pool and its storage: the pool, the farm, the push worker and the
operator's tools exchange these records, and every storage engine reads and writes them, so none
of them depends on how (or in which database) a record is kept.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SimRecord:
    """What the store remembers of a SIM card, keyed by ICCID."""

    iccid: str
    imsi: str | None
    number: str | None
    number_source: str | None
    country: str | None
    operator: str | None
    mccmnc: str | None
    last_issued: float = 0.0


@dataclass(frozen=True, slots=True)
class ActivationRecord:
    """One activation (a lease of a number for one service, or a rent)."""

    id: int
    number: str
    iccid: str
    service: str
    rent: bool
    country: str
    operator: str
    sum: float | None
    created_at: float
    finished_at: float | None = None
    finish_status: int | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """Per (number, service): cancelled issues so far and whether the service is barred."""

    issues: int = 0
    barred: bool = False


@dataclass(frozen=True, slots=True)
class IncomingSms:
    """A complete SMS as the farm hands it to the pool (parts already joined)."""

    iccid: str
    fingerprint: str
    sender: str
    text: str
    pdus: tuple[str, ...]
    received_at: float
    decode_error: str | None = None


@dataclass(frozen=True, slots=True)
class SmsPart:
    """One part of a multipart SMS, waiting for the rest of its group."""

    fingerprint: str
    group_key: str
    iccid: str
    sender: str
    seq: int
    total: int
    text: str
    pdu: str
    received_at: float


@dataclass(frozen=True, slots=True)
class StoredSms:
    """The outcome of storing an SMS: its permanent id, and whether it was already known."""

    id: int
    duplicate: bool
    activation_id: int | None


@dataclass(frozen=True, slots=True)
class PendingPush:
    """A PUSH_SMS that still has to reach the marketplace."""

    sms_id: int
    activation_id: int
    rent: bool
    number: str
    sender: str
    text: str
    attempts: int


@dataclass(frozen=True, slots=True)
class SmsRow:
    """A stored SMS as the operator's tools list it."""

    id: int
    iccid: str
    number: str | None
    sender: str
    text: str
    received_at: float
    activation_id: int | None
    push_state: str | None


@dataclass(frozen=True, slots=True)
class StoredState:
    """Everything the pool needs in memory at start-up."""

    sims: dict[str, SimRecord]
    open_activations: list[ActivationRecord]
    next_activation_id: int


@dataclass(frozen=True, slots=True)
class BankSimRecord:
    """A SIM seen in a SIM bank: where it sits, its number and how it was learned."""

    iccid: str
    board: str
    channel: str
    slot: int
    number: str | None
    number_source: str | None
    state: str  # new (number not known yet) | ready | conflict (number on another ICCID too)
    first_seen: float
    last_live: float | None = None


@dataclass(frozen=True, slots=True)
class BankChannelRecord:
    """What a bank channel holds as far as the daemon knows."""

    board: str
    channel: str
    active_slot: int | None
    iccid: str | None
    quarantined: bool = False
    failures: int = 0
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class RotationRecord:
    """One rotation of one channel; written before its switch command is sent."""

    id: int
    board: str
    channel: str
    from_slot: int | None
    old_iccid: str | None
    to_slot: int
    expected_iccid: str | None
    step: str
    attempts: int
    started_at: float
    result: str | None = None
    detail: str | None = None
    finished_at: float | None = None


@dataclass(frozen=True, slots=True)
class BankState:
    """A board's persisted inventory, read at start-up."""

    sims: list[BankSimRecord]
    empty_slots: list[tuple[str, int]]
    channels: list[BankChannelRecord]
    open_rotations: list[RotationRecord]
