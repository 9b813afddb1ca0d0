"""The storage interface: the operations the daemon asks of its database, engine aside.

The pool, the SMS intake, the push worker, the SIM-bank inventory and the operator's tools talk to
these protocols only, never to a database driver: every argument and result is a record of
`gateway.pool.records` or a builtin, and every failure of the storage is a `StoreError`. SQLite
(`gateway.pool.sqlite`) is one engine behind them; another engine implements the same methods.

What every engine promises: a call resolves only once its effect is durable (committed); each
call is one transaction, so what one call writes is all there or not at all; and calls take
effect in the order they were made.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from gateway.pool.records import (
    ActivationRecord,
    BankChannelRecord,
    BankSimRecord,
    BankState,
    HistoryEntry,
    IncomingSms,
    PendingPush,
    RotationRecord,
    SimRecord,
    SmsPart,
    SmsRow,
    StoredSms,
    StoredState,
)


class StoreError(RuntimeError):
    """The database could not be opened, migrated or written."""


class SimStorage(Protocol):
    """SIM cards by ICCID, and what the pool loads at start-up."""

    async def load_state(self) -> StoredState:
        """Every known SIM, the open activations and the next activation id."""
        ...

    async def save_sim(
        self, sim: SimRecord, seen_at: float, services: Iterable[str]
    ) -> dict[str, HistoryEntry]:
        """Remember a SIM that came online; returns its number's history for `services`.

        Ordered with the other calls: a FINISH made after it is not in the history it
        returns, one made before it is.
        """
        ...


class ActivationStorage(Protocol):
    """Activations, and the per-(number, service) history their ends leave behind."""

    async def open_activation(self, activation: ActivationRecord) -> None:
        """Persist a new activation; refuses (StoreError) a second open one for a number."""
        ...

    async def finish_activation(
        self,
        activation_id: int,
        *,
        status: int,
        finish_sum: float | None,
        finished_at: float,
        history_effect: str | None,
        released: bool = False,
    ) -> bool:
        """Close an activation and apply `history_effect` ("bar", "issue" or None).

        With `released`, record the status of one the operator released. Returns whether
        anything changed.
        """
        ...

    async def activation_known(self, activation_id: int) -> bool: ...

    async def released_activation(self, activation_id: int) -> ActivationRecord | None:
        """The activation if the operator released it and no status came since."""
        ...

    async def release_activation(self, activation_id: int, released_at: float) -> bool:
        """Close an open activation with no status and no history effect."""
        ...


class SmsStorage(Protocol):
    """Stored SMS, the parts of multipart SMS, and the PUSH_SMS outbox."""

    async def store_sms(
        self,
        sms: IncomingSms,
        *,
        number: str | None,
        activation: ActivationRecord | None,
        push_at: float,
        consumed_parts: tuple[str, ...] = (),
    ) -> StoredSms:
        """Store an SMS, queue its push (with an activation) and consume its parts, at once.

        A fingerprint seen before returns the first copy's id and changes nothing.
        """
        ...

    async def save_part(self, part: SmsPart) -> list[SmsPart] | None:
        """Keep a multipart part; returns its group's waiting parts (None once it was joined)."""
        ...

    async def stale_part_groups(self, received_before: float) -> list[list[SmsPart]]:
        """Waiting groups whose first part arrived before `received_before`."""
        ...

    async def due_pushes(self, now: float, limit: int) -> list[PendingPush]: ...

    async def next_push_at(self) -> float | None: ...

    async def record_push(
        self, sms_id: int, *, outcome: str, at: float, error: str | None, retry_at: float | None
    ) -> None:
        """Record one push attempt: "pushed", "refused" (final) or "retry" at `retry_at`."""
        ...

    async def recent_sms(self, limit: int) -> list[SmsRow]: ...

    async def outbox_summary(self) -> tuple[int, float | None]:
        """Pending pushes, and when the SMS of the oldest of them was received (None if none)."""
        ...


class BankStorage(Protocol):
    """SIM banks: the SIMs seen in their slots, what each channel holds, every rotation."""

    async def load_bank(self, board: str) -> BankState: ...

    async def save_bank_sim(self, sim: BankSimRecord) -> None: ...

    async def save_bank_slot_empty(
        self, board: str, channel: str, slot: int, at: float
    ) -> None: ...

    async def save_bank_channel(self, channel: BankChannelRecord, at: float) -> None: ...

    async def open_rotation(
        self,
        *,
        board: str,
        channel: str,
        from_slot: int | None,
        old_iccid: str | None,
        to_slot: int,
        expected_iccid: str | None,
        at: float,
    ) -> RotationRecord:
        """Persist a rotation before its switch command is sent."""
        ...

    async def save_rotation(self, rotation: RotationRecord, at: float) -> None:
        """Record a rotation's progress (step, attempts) or its end (result, finished_at)."""
        ...


class Storage(SimStorage, ActivationStorage, SmsStorage, BankStorage, Protocol):
    """One daemon's whole storage: every concern above, a health probe, and its end."""

    async def ping(self) -> bool:
        """A write-and-read round trip; raises StoreError while writes fail."""
        ...

    async def close(self) -> None: ...
