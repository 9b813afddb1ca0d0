"""A simulated SIM bank: a switch board on its own pty and the modules wired to its channels.

The board speaks the serial dialect of spec simbank.md §3.1 (`AT+CWSIM`, `AT+SWIT<cc>-<ssss>`,
`AT+NEXT00`, `AT+NEXT11`). Switching a channel only moves the SIM *contact*: the module keeps
the SIM it read until it is reset (`AT+CFUN=1,1`, `AT+CFUN=0` then `1`, a reboot), as real
modules do (§4.2 S3). Every failure of §4.2 has a knob (`BankFaults`), and every random choice
comes from one seeded `random.Random`, so a run is repeatable.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from stdnum import luhn

from .modem import PowerState, SimulatedModem
from .profiles import EC25, Profile
from .pty_port import PtyPort
from .sim_card import SimCard, make_sim
from .storage import MessageStat, MessageStorage

log = logging.getLogger(__name__)

_SWIT = re.compile(r"AT\+SWIT(\d{2})-(\d{4})$")
_NEXT = re.compile(r"AT\+NEXT(00|11)(?:-(\d{2}))?$")


@dataclass
class BankFaults:
    """Failure knobs of §4.2; rates are probabilities per switch command, drawn from the seed."""

    silent_failure_rate: float = 0.0  # S1: answered as usual, not applied
    stuck_channels: dict[str, float] = field(default_factory=dict)  # per channel, overrides S1
    wrong_landing_rate: float = 0.0  # S2: lands on slot 1 or an adjacent slot
    error_rate: float = 0.0  # answers ERROR, not applied
    silence_rate: float = 0.0  # applied, but no reply at all
    reply: str | None = "SWITCH OK"  # the board's success reply ("OK", None: never answers)
    handshake_reply: str | None = "SWSIM OK"
    reply_delay: float = 0.0  # seconds before a reply
    # After a module reset:
    sim_detect_seconds: float = 0.0  # S3: `+CPIN?` answers CME 10 this long
    sim_busy_commands: int = 0  # S4: then this many SIM commands answer CME 14
    registration_seconds: float = 0.0  # S4/S5: then CREG 2 (CME 30 for USSD) this long…
    registration_jitter: float = 0.0  # …plus up to this much more (slow registration)


class BankModule(SimulatedModem):
    """A module on a bank channel: it sees the SIM under its contact only after a reset."""

    def __init__(self, profile: Profile, contact: SimCard | None, *, name: str) -> None:
        super().__init__(profile, contact, name=name)
        self.contact = contact
        self.faults = BankFaults()
        self.rng = random.Random(0)
        self.resets = 0
        self._register_at: float | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._first_boot = True

    # -- the SIM under the contact ---------------------------------------------------------

    def move_contact(self, card: SimCard | None, *, interrupted: bool = False) -> None:
        """The board connected another slot; `interrupted`: the module noticed the SIM go."""
        self.contact = card
        if interrupted and self.sim is not None:
            self.remove_sim()

    def _take_contact(self) -> None:
        """A reset: the module reads whatever SIM the board connects now, after settling."""
        self.resets += 1
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        card = self.contact
        if self._first_boot or card is None:
            self._first_boot = False
            self.sim = card
            self._register_at = None
            return
        faults = self.faults
        loop = asyncio.get_running_loop()
        settle = faults.registration_seconds + faults.registration_jitter * self.rng.random()
        if faults.sim_detect_seconds > 0:
            self.sim = None
            self._timers.append(loop.call_later(faults.sim_detect_seconds, self._detected, card))
            settle += faults.sim_detect_seconds
        else:
            self.sim = card
        self._register_at = loop.time() + settle if settle > 0 else None
        if self._register_at is not None:
            self._timers.append(loop.call_later(settle, self._registration_changed))

    def _detected(self, card: SimCard) -> None:
        if self.contact is card and self.power is PowerState.ON and self.sim is None:
            self.insert_sim(card)
            self.set_sim_busy(self.faults.sim_busy_commands)

    def _power_on(self) -> None:
        self._take_contact()
        self.sim_busy_after_boot = self.faults.sim_busy_commands if self.sim else 0
        super()._power_on()

    def set_cfun(self, fun: int) -> None:
        if fun == 1 and self.cfun in (0, 4):
            self._take_contact()  # the radio coming back re-reads the SIM
        super().set_cfun(fun)

    def registration_stat(self) -> int:
        stat = super().registration_stat()
        register_at = self._register_at
        if stat in (1, 5) and register_at is not None:
            if asyncio.get_running_loop().time() < register_at:
                return 2
            self._register_at = None
        return stat

    def store_on_sim(self, iccid: str, sender: str, text: str) -> None:
        """An SMS left in the SM storage of a SIM (from an earlier stint), read when it is live."""
        from drivers.sms.pdu import encode_deliver

        capacity = self.profile.storages["SM"]
        if iccid not in self._sm_by_iccid:
            self._sm_by_iccid[iccid] = MessageStorage("SM", capacity, self.profile.index_base)
        for pdu in encode_deliver(sender, text):
            self._sm_by_iccid[iccid].store(pdu, MessageStat.REC_UNREAD, self._now())

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await super().stop()


class SimulatedSwitchBoard:
    """The control port of a bank: channels "01".. each with `slots` slots (None = empty)."""

    def __init__(
        self,
        slots: dict[str, list[SimCard | None]],
        modules: dict[str, BankModule],
        *,
        faults: BankFaults,
        seed: int,
    ) -> None:
        self.slots = slots
        self.modules = modules
        self.faults = faults
        # One random stream per channel: a channel's outcomes do not depend on how the
        # commands of different channels interleave.
        self.rngs = {channel: random.Random(f"{seed}-{channel}") for channel in slots}
        self.active: dict[str, int] = {channel: 1 for channel in slots}
        self.log: list[tuple[float, str]] = []  # (loop time, command line) as received
        self.powered = True
        self._port: PtyPort | None = None
        self._line = bytearray()

    @property
    def path(self) -> str:
        if self._port is None:
            raise RuntimeError("the switch board is not started")
        return self._port.path

    def start(self) -> str:
        self._port = PtyPort(self._on_bytes)
        return self._port.open()

    def stop(self) -> None:
        if self._port is not None:
            self._port.close()

    def card(self, channel: str, slot: int) -> SimCard | None:
        cards = self.slots[channel]
        return cards[slot - 1] if 1 <= slot <= len(cards) else None

    def power_loss(self) -> None:
        """S7: the board loses power and comes back with every channel on slot 1."""
        for channel, module in self.modules.items():
            self.active[channel] = 1
            module.move_contact(self.card(channel, 1), interrupted=True)
        log.info("simulated switch board lost power: every channel on slot 1")

    # -- the serial side ----------------------------------------------------------------------

    def _on_bytes(self, data: bytes) -> None:
        for byte in data:
            if byte in (0x0D, 0x0A):
                if self._line:
                    line = self._line.decode("latin-1").strip()
                    self._line.clear()
                    if line:
                        self._handle(line)
            elif len(self._line) < 256:
                self._line.append(byte)

    def _reply(self, text: str | None) -> None:
        if text is None or self._port is None or not self._port.is_open:
            return
        data = b"\r\n" + text.encode("latin-1") + b"\r\n"
        port = self._port
        if self.faults.reply_delay > 0:
            asyncio.get_running_loop().call_later(
                self.faults.reply_delay, lambda: port.is_open and port.write(data)
            )
        else:
            port.write(data)

    def _handle(self, line: str) -> None:
        self.log.append((asyncio.get_running_loop().time(), line))
        upper = line.upper()
        if upper == "AT+CWSIM":
            self._reply(self.faults.handshake_reply)
            return
        if upper == "AT":
            self._reply("OK")
            return
        match = _SWIT.match(upper)
        if match:
            channel, slot = match[1], int(match[2])
            if channel == "00":
                for each in self.slots:
                    self._land(each, slot)
                self._reply(self.faults.reply)
            elif channel in self.slots and slot >= 1:
                self._switch(channel, slot)
            else:
                self._reply("ERROR")
            return
        match = _NEXT.match(upper)
        if match:
            chosen = [match[2]] if match[2] else list(self.slots)
            if any(channel not in self.slots for channel in chosen):
                self._reply("ERROR")
                return
            for channel in chosen:
                count = len(self.slots[channel])
                target = 1 if match[1] == "00" else self.active[channel] % count + 1
                self._land(channel, target)
            self._reply(self.faults.reply)
            return
        self._reply("ERROR")  # unpadded forms (`AT+SWIT=3,5`, `AT+SWIT3-0005`) included

    def _switch(self, channel: str, slot: int) -> None:
        faults, rng = self.faults, self.rngs[channel]
        if rng.random() < faults.error_rate:
            self._reply("ERROR")
            return
        failure = faults.stuck_channels.get(channel, faults.silent_failure_rate)
        silent = rng.random() < faults.silence_rate
        if rng.random() < failure:
            log.info("simulated board: switch of %s to %d silently not applied", channel, slot)
        elif rng.random() < faults.wrong_landing_rate:
            slots = len(self.slots[channel])
            wrong = rng.choice([1, max(1, slot - 1), min(slots, slot + 1)])
            log.info("simulated board: switch of %s to %d landed on %d", channel, slot, wrong)
            self._land(channel, wrong)
        else:
            self._land(channel, min(slot, len(self.slots[channel])))
        if not silent:
            self._reply(faults.reply)

    def _land(self, channel: str, slot: int) -> None:
        slot = max(1, min(slot, len(self.slots[channel])))
        self.active[channel] = slot
        self.modules[channel].move_contact(self.card(channel, slot))


class SimulatedSimBank:
    """`channels` modules behind one board with `slots` SIMs each; every SIM has a number."""

    def __init__(
        self,
        channels: int = 4,
        slots: int = 8,
        *,
        seed: int = 1,
        faults: BankFaults | None = None,
        profile: Profile = EC25,
        empty: Iterable[tuple[str, int]] = (),
        number_prefix: str = "4915230",
        serial_base: int = 7000,
    ) -> None:
        self.faults = faults or BankFaults()
        holes = set(empty)
        self.cards: dict[str, list[SimCard | None]] = {}
        self.modules: dict[str, BankModule] = {}
        for c in range(1, channels + 1):
            channel = f"{c:02d}"
            cards: list[SimCard | None] = []
            for s in range(1, slots + 1):
                if (channel, s) in holes:
                    cards.append(None)
                    continue
                serial = serial_base + c * 100 + s
                number = f"{number_prefix}{c:02d}{s:04d}"
                cards.append(make_sim(serial, number=number))
            self.cards[channel] = cards
            imei_body = f"86675804{serial_base % 100:02d}{c:04d}"
            module_profile = replace(
                profile, imei=imei_body + luhn.calc_check_digit(imei_body), boot_seconds=0.1
            )
            module = BankModule(module_profile, cards[0], name=f"bank-{channel}")
            module.faults = self.faults
            module.rng = random.Random(f"{seed}-module-{channel}")
            self.modules[channel] = module
        self.board = SimulatedSwitchBoard(self.cards, self.modules, faults=self.faults, seed=seed)

    async def start(self) -> None:
        for module in self.modules.values():
            await module.start()
        self.board.start()

    async def stop(self) -> None:
        self.board.stop()
        for module in self.modules.values():
            await module.stop()

    @property
    def board_path(self) -> str:
        return self.board.path

    @property
    def module_paths(self) -> dict[str, str]:
        return {channel: module.path for channel, module in self.modules.items()}

    def card(self, channel: str, slot: int) -> SimCard | None:
        return self.board.card(channel, slot)

    def all_cards(self) -> list[SimCard]:
        return [card for cards in self.cards.values() for card in cards if card is not None]

    def where(self, iccid: str) -> tuple[str, int]:
        for channel, cards in self.cards.items():
            for slot, card in enumerate(cards, start=1):
                if card is not None and card.iccid == iccid:
                    return channel, slot
        raise KeyError(iccid)

    def live_iccid(self, channel: str) -> str | None:
        """The SIM the channel's module reads now (None: none)."""
        sim = self.modules[channel].sim
        return sim.iccid if sim is not None else None
