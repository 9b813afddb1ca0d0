"""Registration (CREG/CGREG/CEREG), operator and signal, from queries and from URCs."""

from __future__ import annotations

import logging

from drivers.at.commands import READ_CEREG, READ_CGREG, READ_CREG, READ_OPERATOR, READ_SIGNAL
from drivers.at.errors import ReplyParseError
from drivers.at.replies import parse_creg
from drivers.modem.link import ModemLink

log = logging.getLogger(__name__)

#: 27.007 `<stat>` -> the word `ModemStatus.registration` uses.
STAT_WORDS: dict[int, str] = {
    0: "off",
    1: "home",
    2: "searching",
    3: "denied",
    4: "unknown",
    5: "roaming",
    6: "home",  # registered for SMS only (LTE)
    7: "roaming",  # roaming, SMS only (LTE)
    8: "searching",  # emergency bearer services only
    9: "home",  # registered for "CSFB not preferred" (LTE)
    10: "roaming",  # roaming, "CSFB not preferred" (LTE)
    11: "searching",  # attached for access to restricted local operator services only
}
#: Which word wins when the domains disagree (LTE-only attach shows CREG 0 with CEREG 1).
WORD_RANK: tuple[str, ...] = ("home", "roaming", "searching", "denied", "unknown", "off")
REGISTERED_WORDS = frozenset({"home", "roaming"})
#: Signal buckets (upper bounds of rssi 0..31): a new status only when the bucket changes.
SIGNAL_BUCKET_BOUNDS: tuple[int, ...] = (5, 10, 15, 20, 31)


class RegistrationBook:
    """The latest `<stat>` per domain (`+CREG`, `+CGREG`, `+CEREG`) and what they add up to."""

    def __init__(self) -> None:
        self.stats: dict[str, int] = {}

    def clear(self) -> None:
        self.stats.clear()

    def update_from_line(self, line: str, *, solicited: bool) -> bool:
        """Take a query reply (`solicited`) or a URC line; True when it changed the summary."""
        try:
            registration = parse_creg(line, solicited=solicited)
        except ReplyParseError:
            log.info("event=registration_unparsed line=%r", line)
            return False
        before = self.summary
        self.stats[registration.command] = registration.stat
        return self.summary != before

    @property
    def summary(self) -> str | None:
        """home | roaming | searching | denied | unknown | off, or None before any answer."""
        words = {STAT_WORDS.get(stat, "unknown") for stat in self.stats.values()}
        for word in WORD_RANK:
            if word in words:
                return word
        return None

    @property
    def registered(self) -> bool:
        return self.summary in REGISTERED_WORDS


async def query_registration(link: ModemLink, book: RegistrationBook, *, lte: bool) -> None:
    commands = [READ_CREG, READ_CGREG] + ([READ_CEREG] if lte else [])
    for command in commands:
        line = await link.run_optional(command)
        if line is not None:
            book.update_from_line(line, solicited=True)


async def query_operator(link: ModemLink) -> str | None:
    """MCC+MNC the modem is registered on (numeric format was set at init), or None."""
    return await link.run_optional(READ_OPERATOR)


async def query_signal(link: ModemLink) -> int | None:
    """rssi 0..31 from `+CSQ`; None when unknown (99)."""
    return await link.run_optional(READ_SIGNAL)


def signal_bucket(rssi: int | None) -> int | None:
    """Coarse signal level 0..4, None when unknown: small wobbles are not news."""
    if rssi is None:
        return None
    return next(at for at, bound in enumerate(SIGNAL_BUCKET_BOUNDS) if rssi <= bound)
