"""SMS memories of a simulated modem (SM, ME): fixed capacity, slots numbered from a base."""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass


class MessageStat(enum.IntEnum):
    """`<stat>` of 3GPP TS 27.005 (PDU mode numbers; text mode names in `TEXT_STATS`)."""

    REC_UNREAD = 0
    REC_READ = 1
    STO_UNSENT = 2
    STO_SENT = 3


TEXT_STATS: dict[MessageStat, str] = {
    MessageStat.REC_UNREAD: "REC UNREAD",
    MessageStat.REC_READ: "REC READ",
    MessageStat.STO_UNSENT: "STO UNSENT",
    MessageStat.STO_SENT: "STO SENT",
}

#: `AT+CMGD=<i>,<delflag>`: which stats each delflag removes (0 = just the index).
DELFLAG_STATS: dict[int, frozenset[MessageStat]] = {
    1: frozenset({MessageStat.REC_READ}),
    2: frozenset({MessageStat.REC_READ, MessageStat.STO_SENT}),
    3: frozenset({MessageStat.REC_READ, MessageStat.STO_SENT, MessageStat.STO_UNSENT}),
    4: frozenset(MessageStat),
}


@dataclass
class StoredMessage:
    pdu: str  # uppercase hex with the SMSC prefix
    stat: MessageStat
    stored_at: float  # loop time, for the Huawei CPMS lag


def tpdu_octets(pdu_hex: str) -> int | None:
    """The `<length>` of `+CMGR`/`+CMGL`/`+CMT`: octets after the SMSC prefix (None if not hex)."""
    try:
        octets = bytes.fromhex(pdu_hex)
    except ValueError:
        return None
    if not octets or len(octets) < 1 + octets[0] + 2:
        return None
    return len(octets) - 1 - octets[0]


class InvalidIndex(LookupError):
    """The index lies outside the memory (the modem answers `+CMS ERROR: 321`)."""


class MessageStorage:
    """One memory of `capacity` slots numbered from `base`; the lowest free slot is used first."""

    def __init__(self, name: str, capacity: int, base: int) -> None:
        if capacity < 1:
            raise ValueError(f"storage {name} needs at least one slot")
        self.name = name
        self.capacity = capacity
        self.base = base
        self._slots: dict[int, StoredMessage] = {}

    def __len__(self) -> int:
        return len(self._slots)

    def __iter__(self) -> Iterator[tuple[int, StoredMessage]]:
        return iter(sorted(self._slots.items()))

    @property
    def full(self) -> bool:
        return len(self._slots) >= self.capacity

    def check_index(self, index: int) -> None:
        if not self.base <= index < self.base + self.capacity:
            raise InvalidIndex(f"index {index} outside {self.name} {self.base}..")

    def store(self, pdu: str, stat: MessageStat, now: float) -> int | None:
        """Put `pdu` in the lowest free slot and return its index, or None when full."""
        for index in range(self.base, self.base + self.capacity):
            if index not in self._slots:
                self._slots[index] = StoredMessage(pdu.upper(), stat, now)
                return index
        return None

    def get(self, index: int) -> StoredMessage | None:
        self.check_index(index)
        return self._slots.get(index)

    def delete(self, index: int) -> bool:
        self.check_index(index)
        return self._slots.pop(index, None) is not None

    def delete_by_stat(self, stats: frozenset[MessageStat]) -> int:
        doomed = [i for i, m in self._slots.items() if m.stat in stats]
        for index in doomed:
            del self._slots[index]
        return len(doomed)

    def used_settled(self, now: float, lag_seconds: float) -> int:
        """Used count as a lagging modem reports it: messages younger than the lag are left out."""
        if lag_seconds <= 0:
            return len(self._slots)
        return sum(1 for m in self._slots.values() if now - m.stored_at >= lag_seconds)
