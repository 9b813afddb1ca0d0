"""A simulated GSM modem behind a real pseudo-terminal, with knobs for every field failure.

The modem runs in the caller's asyncio loop. The client opens `modem.path` with pyserial like
/dev/ttyUSB0 and speaks AT; tests and the demo inject SMS, change the SIM and the network, and
trigger faults through the methods here.

Hangs: `hang()` stops all answers. With `until_reboot=True` (the default) a `reboot()` or
`power_cycle()` ends it; with `until_reboot=False` only `unhang()` does. `recover_after` seconds
ends either kind by itself, and `answer_reset=True` leaves `AT+CFUN=1,1` working (the modem's
command parser is alive, the rest is stuck). A `replug()` also ends an `until_reboot` hang. SMS
that arrive while hung are stored but never announced (a driver must sweep the storage).

SMS are held by the "network" while the modem cannot take them (storage full, no SIM, not
registered, booting, unplugged) and handed over in order as soon as it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .at_syntax import MAX_LINE_BYTES, AtSyntaxError, Command, Op, parse_command_line
from .commands import AtCommands
from .errors import CmeError, CmsError, CommandFailed
from .profiles import Profile
from .pty_port import PtyPort
from .settings import ModemSettings
from .sim_card import PIN_ATTEMPTS, SimCard, SimState
from .storage import TEXT_STATS, MessageStat, MessageStorage, StoredMessage, tpdu_octets
from .transcript import Transcript
from .ussd import encode_ussd_reply, gsm7_encodable

log = logging.getLogger(__name__)

#: Delay between `AT+CUSD=1,...`'s OK and the network's `+CUSD:` answer.
USSD_REPLY_DELAY_SECONDS = 0.05
#: PIN a SIM in state PIN_LOCKED wants when its `pin` field is None.
DEFAULT_PIN = "1234"
#: Unsolicited lines the `noise_every` knob sprinkles into replies when none are given.
DEFAULT_NOISE_LINES = ("^RSSI: 12", "+CREG: 1")
#: Class-2 data coding schemes (GSM-7 / UCS2) for SIM-only messages.
DCS_CLASS2_GSM7 = 0x12
DCS_CLASS2_UCS2 = 0x1A

CTRL_Z = 0x1A
ESC = 0x1B
CR = 0x0D
LF = 0x0A


def _text_mode_timestamp(stamp: datetime) -> str:
    """`yy/MM/dd,hh:mm:ss±zz` with the zone in quarter hours, as text mode prints SCTS."""
    offset = stamp.utcoffset()
    quarters = int(offset.total_seconds() // 900) if offset is not None else 0
    sign = "-" if quarters < 0 else "+"
    return f"{stamp:%y/%m/%d,%H:%M:%S}{sign}{abs(quarters):02d}"


class PowerState(enum.Enum):
    OFF = "off"
    BOOTING = "booting"
    ON = "on"
    UNPLUGGED = "unplugged"


@dataclass
class _Hang:
    until_reboot: bool
    answer_reset: bool
    recover_handle: asyncio.TimerHandle | None = None


@dataclass
class _Prompt:
    command: str  # "+CMGS" or "+CMGW"
    body: bytearray = field(default_factory=bytearray)


@dataclass
class _HeldSms:
    """An SMS the "network" could not deliver yet (storage full, modem off or unplugged)."""

    pdu: str
    storage: str | None
    class2: bool


class SimulatedModem:
    """One modem: AT state machine, SMS memories, SIM, and fault knobs.

    Knobs (plain attributes, change at any time): `reply_delay` seconds before each reply,
    `boot_seconds` of silence on reboot, `cpms_lag_seconds`, `noise_every` (inject one line of
    `noise_lines` before the final result of every n-th reply; 0 = off), `noise_interval` (period
    of the profile's own periodic URCs), `duplicate_routed` (route AND store, E303 style),
    `fail_hinted_reads` (the first `AT+CMGR` of an index a `+CMTI` announced fails with CMS 321),
    `sim_busy_after_boot` (that many `+CPIN?`/SMS commands after boot answer "SIM busy"),
    `signal_rssi`, `pdu_on_header_line` (PDU-mode `+CMGR`/`+CMGL` put the PDU on the header
    line after the length, `+CMGR: 1,,147 0791…`, a form ModemManager reads),
    `cpin_without_prefix` (`AT+CPIN?` answers the bare state, `SIM PIN`).
    """

    def __init__(
        self,
        profile: Profile,
        sim: SimCard | None,
        *,
        name: str | None = None,
        transcript_path: Path | None = None,
    ) -> None:
        self.profile = profile
        self.sim = sim
        self.name = name or f"{profile.name}-{profile.imei[-4:]}"
        self.transcript = Transcript(transcript_path)
        self.settings = ModemSettings.defaults(profile)
        self.commands = AtCommands(self)
        # knobs
        self.reply_delay = 0.0
        self.boot_seconds = profile.boot_seconds
        self.cpms_lag_seconds = profile.cpms_lag_seconds
        self.noise_every = 0
        self.noise_lines: list[str] = list(DEFAULT_NOISE_LINES)
        self.noise_interval = profile.noise_interval_seconds
        self.duplicate_routed = profile.stores_and_routes
        self.fail_hinted_reads = False
        self.sim_busy_after_boot = 0
        self.signal_rssi = 20
        self.pdu_on_header_line = False
        self.cpin_without_prefix = False
        self.lac = "1A2B"
        self.cell_id = int(profile.imei[-7:]) & 0x0FFFFFFF
        # observable results
        self.sent_pdus: list[str] = []
        # state
        self.cfun = 1
        self.pin_attempts_left = PIN_ATTEMPTS
        self.puk_required = False
        self._pin_unlocked = True
        self._sim_busy_left = 0
        self._power = PowerState.OFF
        self._port: PtyPort | None = None
        self._last_path: str | None = None
        self._line = bytearray()
        self._jobs: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._noise_task: asyncio.Task[None] | None = None
        self._boot_task: asyncio.Task[None] | None = None
        self._busy = False
        self._deferred_urcs: list[str] = []
        self._after_reply: list[Callable[[], object]] = []
        self._next_reply_inserts: list[bytes] = []
        self._reply_count = 0
        self._prompt: _Prompt | None = None
        self._hang: _Hang | None = None
        self._held: list[_HeldSms] = []
        self._hinted_failures: set[tuple[str, int]] = set()
        self._routed_unacked = 0
        self._ussd_timers: list[asyncio.TimerHandle] = []
        self._last_reg_stat = 0
        self._me = (
            MessageStorage("ME", profile.storages["ME"], profile.index_base)
            if ("ME" in profile.storages)
            else None
        )
        self._sm_by_iccid: dict[str, MessageStorage] = {}

    # -- lifecycle --

    @property
    def path(self) -> str:
        """The slave device path the client opens (changes on `replug()`)."""
        if self._port is None or not self._port.is_open:
            raise RuntimeError(f"modem {self.name} has no port (not started or unplugged)")
        return self._port.path

    @property
    def power(self) -> PowerState:
        return self._power

    @property
    def hung(self) -> bool:
        return self._hang is not None

    async def start(self) -> str:
        """Open the pty and power on (boot URCs are printed at once); returns the port path."""
        if self._worker is not None:
            raise RuntimeError(f"modem {self.name} is already started")
        self._open_port()
        self._worker = asyncio.create_task(self._command_worker(), name=f"sim-{self.name}-worker")
        self._power_on()
        return self.path

    async def stop(self) -> None:
        self._power_off(PowerState.OFF)
        for task in (self._worker, self._boot_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._worker = self._boot_task = None
        self._close_port()

    def _open_port(self) -> None:
        """A new pty whose path differs from the last one, so the old path stays dead."""
        avoid = {self._last_path} if self._last_path else set()
        self._port = PtyPort(self._on_bytes, avoid_paths=avoid)
        self._last_path = self._port.open()

    def _close_port(self) -> None:
        if self._port is not None:
            self._port.close()

    def _power_off(self, state: PowerState) -> None:
        """Everything volatile is lost: queued commands, a pending prompt, URCs, USSD sessions."""
        self._power = state
        self._line.clear()
        self._prompt = None
        self._busy = False
        self._deferred_urcs.clear()
        self._after_reply.clear()
        self._next_reply_inserts.clear()
        while not self._jobs.empty():
            self._jobs.get_nowait()
        self.cancel_ussd()
        if self._noise_task is not None:
            self._noise_task.cancel()
            self._noise_task = None

    def _power_on(self) -> None:
        self.settings = ModemSettings.defaults(self.profile)
        self.cfun = 1
        self._sim_busy_left = self.sim_busy_after_boot
        self._reset_pin_state()
        self._power = PowerState.ON
        self._last_reg_stat = self.registration_stat()
        for line in self.profile.boot_urcs:
            self._emit_urc(line)
        self._announce_sim()
        if self.profile.periodic_noise:
            self._noise_task = asyncio.create_task(
                self._periodic_noise(), name=f"sim-{self.name}-noise"
            )
        self.release_held_sms()

    def _announce_sim(self) -> None:
        if self.profile.boot_cpin_urc is not None:
            if not self.sim_present:
                state = "NOT INSERTED"
            else:
                state = "SIM PIN" if self.sim_locked else "READY"
            self._emit_urc(self.profile.boot_cpin_urc.format(state=state))
        if self.sim_present and not self.sim_locked:
            for line in self.profile.boot_urcs_sim_ready:
                self._emit_urc(line)

    def start_reboot(self) -> asyncio.Task[None]:
        """Begin a reboot: silent for `boot_seconds`, then boot URCs with settings reset."""
        if self._hang is not None and self._hang.until_reboot:
            self._clear_hang()
        if self._boot_task is not None and not self._boot_task.done():
            self._boot_task.cancel()
        self._power_off(PowerState.BOOTING)
        self._boot_task = asyncio.create_task(self._boot(), name=f"sim-{self.name}-boot")
        return self._boot_task

    async def _boot(self) -> None:
        await asyncio.sleep(self.boot_seconds)
        if self._power is PowerState.BOOTING:
            self._power_on()

    async def reboot(self) -> None:
        """A spontaneous reboot (brown-out, watchdog); returns once the boot URCs are out."""
        await self.start_reboot()

    async def power_cycle(self) -> None:
        """Power off and on: ends any hang (also `until_reboot=False`), like a USB hub power cut."""
        self._clear_hang()
        await self.start_reboot()

    def unplug(self) -> None:
        """The USB device disappears: the pty closes, the client's reads fail. Storage is kept."""
        self._power_off(PowerState.UNPLUGGED)
        self._close_port()

    async def replug(self) -> str:
        """The device re-enumerates on a new pty (never the old path); same SIM and storage."""
        if self._port is not None and self._port.is_open:
            self.unplug()
        if self._hang is not None and self._hang.until_reboot:
            self._clear_hang()  # re-enumeration means the module lost power
        self._open_port()
        self._power = PowerState.BOOTING
        self._boot_task = asyncio.create_task(self._boot(), name=f"sim-{self.name}-boot")
        await self._boot_task
        return self.path

    # -- faults --

    def hang(
        self,
        *,
        until_reboot: bool = True,
        recover_after: float | None = None,
        answer_reset: bool = False,
    ) -> None:
        """Stop answering (see the module docstring for what ends it)."""
        self._clear_hang()
        self._hang = _Hang(until_reboot=until_reboot, answer_reset=answer_reset)
        if recover_after is not None:
            loop = asyncio.get_running_loop()
            self._hang.recover_handle = loop.call_later(recover_after, self._clear_hang)

    def unhang(self) -> None:
        self._clear_hang()

    def _clear_hang(self) -> None:
        if self._hang is not None and self._hang.recover_handle is not None:
            self._hang.recover_handle.cancel()
        self._hang = None

    def send_garbage(self, data: bytes, *, mid_reply: bool = False) -> None:
        """Write raw bytes now, or (`mid_reply`) just before the final result of the next reply."""
        if mid_reply:
            self._next_reply_inserts.append(bytes(data))
        else:
            self._write(bytes(data))

    def emit_urc(self, line: str) -> None:
        """Print any unsolicited line (deferred until the current reply is out)."""
        self._emit_urc(line)

    def inject_into_next_reply(self, line: str) -> None:
        """Put a URC line between the info lines and the final result of the next reply."""
        self._next_reply_inserts.append(b"\r\n" + line.encode("latin-1", "replace") + b"\r\n")

    def under_voltage(self, *, power_down: bool = False) -> None:
        """SIM800 brown-out warning; with `power_down` the module then restarts by itself."""
        if self.profile.under_voltage_urc is None:
            raise ValueError(f"profile {self.profile.name} has no under-voltage URC")
        self._emit_urc(self.profile.under_voltage_urc)
        if power_down:
            self._emit_urc("UNDER-VOLTAGE POWER DOWN")
            self.start_reboot()

    def remove_sim(self) -> None:
        """Pull the SIM out: `+CPIN: NOT READY`, registration lost, `AT+CPIN?` → CME 10."""
        self.sim = None
        self._emit_urc("+CPIN: NOT READY")
        self._registration_changed()

    def insert_sim(self, card: SimCard) -> None:
        self.sim = card
        self._reset_pin_state()
        self._announce_sim_insert()
        self._registration_changed()
        self.release_held_sms()

    def _announce_sim_insert(self) -> None:
        self._emit_urc("+CPIN: SIM PIN" if self.sim_locked else "+CPIN: READY")
        if not self.sim_locked:
            for line in self.profile.boot_urcs_sim_ready:
                self._emit_urc(line)

    def set_sim_busy(self, commands: int) -> None:
        """The next `commands` `+CPIN?`/SMS commands answer CME 14 / CMS 314."""
        self._sim_busy_left = commands

    def set_registration(self, state: SimState, *, roaming: bool | None = None) -> None:
        """Change what the network lets this SIM do; emits `+CREG`/`+CGREG`/`+CEREG` URCs."""
        if self.sim is None:
            raise RuntimeError(f"modem {self.name} has no SIM")
        self.sim.state = state
        if roaming is not None:
            self.sim.roaming = roaming
        self._registration_changed()

    def set_cfun(self, fun: int) -> None:
        self.cfun = fun
        self._registration_changed()

    # -- SIM and network state --

    @property
    def sim_present(self) -> bool:
        return self.sim is not None and self.sim.state is not SimState.ABSENT

    @property
    def sim_locked(self) -> bool:
        return self.sim_present and not self._pin_unlocked

    @property
    def expected_pin(self) -> str:
        return (self.sim.pin if self.sim is not None else None) or DEFAULT_PIN

    def _reset_pin_state(self) -> None:
        sim = self.sim
        self._pin_unlocked = sim is None or (
            sim.pin is None and sim.state is not SimState.PIN_LOCKED
        )
        self.pin_attempts_left = PIN_ATTEMPTS
        self.puk_required = False

    def unlock_sim(self) -> None:
        self._pin_unlocked = True
        self._emit_urc("+CPIN: READY")
        for line in self.profile.boot_urcs_sim_ready:
            self._emit_urc(line)
        self._registration_changed()
        self.release_held_sms()

    def consume_sim_busy(self) -> bool:
        if self._sim_busy_left > 0:
            self._sim_busy_left -= 1
            return True
        return False

    def require_sim(self) -> SimCard:
        if not self.sim_present or self.sim is None:
            raise CmeError(10)
        if self.puk_required:
            raise CmeError(12)
        if self.sim_locked:
            raise CmeError(11)
        return self.sim

    def require_sms_ready(self) -> None:
        if not self.sim_present:
            raise CmsError(310)
        if self.sim_locked:
            raise CmsError(311)
        if self.consume_sim_busy():
            raise CmsError(314)

    def registration_stat(self) -> int:
        """27.007 `<stat>`: 0 not registered, 1 home, 2 searching, 3 denied, 5 roaming."""
        sim = self.sim
        if sim is None or not self.sim_present or self.sim_locked or self.cfun != 1:
            return 0
        if sim.state is SimState.NOT_REGISTERED:
            return 2
        if sim.state is SimState.REGISTRATION_DENIED:
            return 3
        return 5 if sim.roaming else 1

    def _location(self) -> str:
        lte = self.profile.access_technology == 7
        cell = f"{self.cell_id:08X}" if lte else f"{self.cell_id & 0xFFFF:04X}"
        act = (
            f",{self.profile.access_technology}"
            if self.profile.access_technology is not None
            else ""
        )
        return f'"{self.lac}","{cell}"{act}'

    def registration_fields(self, mode: int) -> str:
        """`<stat>[,<lac>,<ci>[,<act>]]` as a `?` query reports it in `mode`."""
        stat = self.registration_stat()
        if mode == 2 and stat in (1, 5):
            return f"{stat},{self._location()}"
        return str(stat)

    def _registration_changed(self) -> None:
        stat = self.registration_stat()
        if stat == self._last_reg_stat:
            return
        self._last_reg_stat = stat
        if stat in (1, 5):  # the network now hands over what it held back
            if self._busy:
                self.after_reply(self.release_held_sms)
            else:
                self.release_held_sms()
        s = self.settings
        for label, mode in (("+CREG", s.creg), ("+CGREG", s.cgreg), ("+CEREG", s.cereg)):
            if label == "+CEREG" and not self.profile.has_cereg:
                continue
            if mode == 1 or (mode == 2 and stat not in (1, 5)):
                self._emit_urc(f"{label}: {stat}")
            elif mode == 2:
                self._emit_urc(f"{label}: {stat},{self._location()}")

    # -- USSD --

    def request_ussd(self, code: str) -> None:
        """The network answers `code` a moment after the OK, from the SIM's `ussd` table."""
        reply_text = self.sim.ussd.get(code) if self.sim is not None else None
        if reply_text is None:
            urc = "+CUSD: 4"
        else:
            payload, dcs = encode_ussd_reply(reply_text, self.profile.ussd_encoding)
            urc = f'+CUSD: 0,"{payload}",{dcs}'
        loop = asyncio.get_running_loop()
        self._ussd_timers.append(loop.call_later(USSD_REPLY_DELAY_SECONDS, self._emit_urc, urc))

    def cancel_ussd(self) -> None:
        for timer in self._ussd_timers:
            timer.cancel()
        self._ussd_timers.clear()

    # -- SMS --

    def storage(self, mem: str) -> MessageStorage:
        """The memory named `mem`; "SM" lives on the SIM (each ICCID keeps its own)."""
        mem = mem.upper()
        if mem == "ME" and self._me is not None:
            return self._me
        if mem == "SM" and "SM" in self.profile.storages:
            if not self.sim_present or self.sim is None:
                raise CmsError(310)
            if self.sim_locked:
                raise CmsError(311)
            iccid = self.sim.iccid
            if iccid not in self._sm_by_iccid:
                capacity = self.profile.storages["SM"]
                self._sm_by_iccid[iccid] = MessageStorage("SM", capacity, self.profile.index_base)
            return self._sm_by_iccid[iccid]
        raise CmsError(302)

    def storage_counts(self, mem: str) -> tuple[int, int]:
        store = self.storage(mem)
        return store.used_settled(self._now(), self.cpms_lag_seconds), store.capacity

    def deliver_sms(
        self,
        sender: str,
        text: str,
        *,
        encoding: str = "auto",
        ref: int | None = None,
        ref16: bool = False,
        storage: str | None = None,
        order: Sequence[int] | None = None,
        dcs: int | None = None,
        class2: bool = False,
        inside_next_reply: bool = False,
    ) -> list[int]:
        """An SMS from the network: encoded, stored and announced per `+CNMI` and `+CPMS`.

        Returns the storage indexes of the parts stored now (routed or held parts have none).
        `order` lists 0-based part numbers in delivery order (a subset drops the others);
        `class2` stores on the SIM whatever `+CPMS`/`+CNMI` say; `inside_next_reply` puts the
        indication between the info lines and the final result of the next command's reply.
        """
        from drivers.sms.pdu import encode_deliver

        if class2 and dcs is None:
            ucs2 = encoding == "ucs2" or (encoding == "auto" and not gsm7_encodable(text))
            dcs = DCS_CLASS2_UCS2 if ucs2 else DCS_CLASS2_GSM7
        parts = encode_deliver(sender, text, encoding=encoding, ref=ref, ref16=ref16, dcs=dcs)
        if order is not None:
            if any(not 0 <= i < len(parts) for i in order):
                raise ValueError(f"order {list(order)} does not fit {len(parts)} parts")
            parts = [parts[i] for i in order]
        indexes: list[int] = []
        for pdu in parts:
            index = self.deliver_pdu(
                pdu, storage=storage, class2=class2, inside_next_reply=inside_next_reply
            )
            if index is not None:
                indexes.append(index)
        return indexes

    def deliver_pdu(
        self,
        pdu_hex: str,
        *,
        storage: str | None = None,
        class2: bool = False,
        inside_next_reply: bool = False,
    ) -> int | None:
        """Deliver one raw SMS-DELIVER PDU (hex, with SMSC prefix); returns its index if stored."""
        from drivers.sms.pdu import tpdu_length

        pdu = pdu_hex.strip().upper()
        tpdu_length(pdu)  # raises PduError on anything that is not a PDU
        held = _HeldSms(pdu, storage.upper() if storage else None, class2)
        if self._held:  # the network delivers in order: queue behind what is already waiting
            self._held.append(held)
            self.release_held_sms()
            return None
        delivered, index = self._try_deliver(held, inside_next_reply=inside_next_reply)
        if not delivered:
            self._held.append(held)
        return index

    @property
    def held_sms(self) -> int:
        """SMS the network holds back (storage full, SIM missing, modem off)."""
        return len(self._held)

    def release_held_sms(self) -> None:
        while self._held:
            delivered, _ = self._try_deliver(self._held[0])
            if not delivered:
                return
            self._held.pop(0)

    def _try_deliver(
        self, sms: _HeldSms, *, inside_next_reply: bool = False
    ) -> tuple[bool, int | None]:
        """Deliver now if the modem can take it: (delivered, storage index if stored)."""
        if self._power is not PowerState.ON or self.registration_stat() not in (1, 5):
            return False, None
        mode, mt = self.settings.cnmi[0], self.settings.cnmi[1]
        urcs: list[str] = []
        if mt == 2 and not sms.class2:
            if mode != 0:
                urcs.append(self._routed_block(sms.pdu))
                self._routed_unacked += 1
            self._announce(urcs, inside_next_reply)
            return True, None
        mem = "SM" if sms.class2 else (sms.storage or self.settings.memories[2])
        try:
            store = self.storage(mem)
        except CmsError:
            return False, None
        index = store.store(sms.pdu, MessageStat.REC_UNREAD, self._now())
        if index is None:
            if self.profile.memory_full_urc:
                self._emit_urc(self.profile.memory_full_urc.format(mem=mem))
            return False, None
        if self.fail_hinted_reads:
            self._hinted_failures.add((mem, index))
        if mode != 0 and mt in (1, 2, 3):
            if self.duplicate_routed:
                urcs.append(self._routed_block(sms.pdu))
            urcs.append(f'+CMTI: "{mem}",{index}')
        self._announce(urcs, inside_next_reply)
        return True, index

    def _announce(self, urcs: list[str], inside_next_reply: bool) -> None:
        for urc in urcs:
            if inside_next_reply:
                self.inject_into_next_reply(urc)
            else:
                self._emit_urc(urc)

    def _routed_block(self, pdu: str) -> str:
        if self.settings.cmgf == 1:
            header, text = self._text_fields(pdu)
            return f"+CMT: {header}\r\n{text}"
        return f"+CMT: ,{tpdu_octets(pdu)}\r\n{pdu}"

    def acknowledge_routed(self) -> bool:
        if self._routed_unacked <= 0:
            return False
        self._routed_unacked -= 1
        return True

    def take_hinted_failure(self, mem: str, index: int) -> bool:
        key = (mem, index)
        if key in self._hinted_failures:
            self._hinted_failures.discard(key)
            return True
        return False

    def render_message(self, prefix: str, index: int, message: StoredMessage) -> list[str]:
        """The header and body lines of `+CMGR`/`+CMGL` in the current message format."""
        index_field = f"{index}," if prefix == "+CMGL" else ""
        if self.settings.cmgf == 0:
            header = f"{prefix}: {index_field}{int(message.stat)},,{tpdu_octets(message.pdu)}"
            if self.pdu_on_header_line:
                return [f"{header} {message.pdu}"]
            return [header, message.pdu]
        header, text = self._text_fields(message.pdu)
        return [f'{prefix}: {index_field}"{TEXT_STATS[message.stat]}",{header}', text]

    def _text_fields(self, pdu: str) -> tuple[str, str]:
        """`"<oa>",,"<scts>"` and the body as text mode shows them (UCS2 hex under CSCS UCS2)."""
        from drivers.sms.pdu import PduError, decode_pdu

        try:
            decoded = decode_pdu(pdu)
        except PduError:
            return '"",,""', pdu
        sender = getattr(decoded, "sender", "") or ""
        text = getattr(decoded, "text", "") or ""
        stamp = getattr(decoded, "timestamp", None)
        scts = _text_mode_timestamp(stamp) if isinstance(stamp, datetime) else ""
        if self.settings.cscs == "UCS2":
            text = text.encode("utf-16-be").hex().upper()
        return f'"{sender}",,"{scts}"', text

    def stored_messages(self, mem: str) -> list[tuple[int, StoredMessage]]:
        """What a memory holds now (for assertions)."""
        return list(self.storage(mem))

    # -- I/O --

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _write(self, data: bytes) -> None:
        port = self._port
        if port is None or not port.is_open:
            return
        self.transcript.record(port.path, "out", data)
        port.write(data)

    def _emit_urc(self, line: str) -> None:
        if self._power is not PowerState.ON or self._hang is not None:
            return
        if self._busy:
            self._deferred_urcs.append(line)
            return
        self._write(b"\r\n" + line.encode("latin-1", "replace") + b"\r\n")

    def after_reply(self, action: Callable[[], object]) -> None:
        """Run `action` once the final result of the current command line is written."""
        self._after_reply.append(action)

    def open_prompt(self, command: str) -> None:
        self._prompt = _Prompt(command)

    def _on_bytes(self, data: bytes) -> None:
        if self._port is not None:
            self.transcript.record(self._port.path, "in", data)
        if self._power is not PowerState.ON:
            return
        for byte in data:
            if self._prompt is not None:
                self._prompt_byte(byte)
            elif byte == ESC:
                self._line.clear()
            elif byte in (CR, LF):
                if self._line:
                    self._jobs.put_nowait(("line", bytes(self._line)))
                    self._line.clear()
            elif len(self._line) < MAX_LINE_BYTES:
                self._line.append(byte)

    def _prompt_byte(self, byte: int) -> None:
        assert self._prompt is not None
        if byte == CTRL_Z:
            self._jobs.put_nowait(("submit" + self._prompt.command, bytes(self._prompt.body)))
        elif byte == ESC:
            self._jobs.put_nowait(("cancel", b""))
        else:
            if len(self._prompt.body) < MAX_LINE_BYTES:
                self._prompt.body.append(byte)
            return
        self._prompt = None

    async def _command_worker(self) -> None:
        while True:
            kind, payload = await self._jobs.get()
            try:
                if kind == "line":
                    await self._execute(payload)
                elif kind.startswith("submit"):
                    self._finish_prompt(kind.removeprefix("submit"), payload)
                else:
                    self._write(b"\r\nOK\r\n")
            except Exception:  # a simulator bug must not stop the modem answering
                log.exception("simulated modem failed on a command modem=%s", self.name)
                self._busy = False

    def _is_reset_line(self, text: str) -> bool:
        try:
            commands = parse_command_line(text)
        except AtSyntaxError:
            return False
        return any(c.name == "+CFUN" and c.op is Op.SET and c.arg(1) == "1" for c in commands)

    async def _execute(self, raw: bytes) -> None:
        text = raw.decode("latin-1")
        if self._hang is not None and not (self._hang.answer_reset and self._is_reset_line(text)):
            return
        if self.settings.echo:
            self._write(raw + b"\r")
        if text.strip()[:2].upper() != "AT":
            return  # modems ignore lines that are not commands
        self._busy = True
        try:
            if self.reply_delay > 0:
                await asyncio.sleep(self.reply_delay)
            if self._power is not PowerState.ON:
                return
            info, final = self._run_line(text)
            if self._prompt is not None and final == "OK":
                self._write(b"\r\n> ")
                return
            self._write(self._render_reply(info, final))
        finally:
            self._busy = False
            deferred, self._deferred_urcs = self._deferred_urcs, []
            for line in deferred:
                self._emit_urc(line)
            actions, self._after_reply = self._after_reply, []
            for action in actions:
                action()

    def _run_line(self, text: str) -> tuple[list[str], str]:
        try:
            commands: list[Command] = parse_command_line(text)
        except AtSyntaxError:
            return [], "ERROR"
        info: list[str] = []
        for command in commands:
            try:
                info.extend(self.commands.run(command))
            except CommandFailed as failure:
                self._prompt = None
                return info, failure.final(self.settings.cmee)
            except AtSyntaxError:
                self._prompt = None
                return info, "ERROR"
            except Exception:  # a simulator bug: still answer, like firmware would
                log.exception("simulated modem failed on %s modem=%s", command.name, self.name)
                self._prompt = None
                return info, "ERROR"
        return info, "OK"

    def _render_reply(self, info: list[str], final: str) -> bytes:
        out = bytearray()
        if info:
            out += b"\r\n" + "\r\n".join(info).encode("latin-1", "replace") + b"\r\n"
        self._reply_count += 1
        if self.noise_every and self._reply_count % self.noise_every == 0 and self.noise_lines:
            line = self.noise_lines[(self._reply_count // self.noise_every) % len(self.noise_lines)]
            out += b"\r\n" + line.encode("latin-1", "replace") + b"\r\n"
        for insert in self._next_reply_inserts:
            out += insert
        self._next_reply_inserts.clear()
        out += b"\r\n" + final.encode("latin-1") + b"\r\n"
        return bytes(out)

    def _finish_prompt(self, command: str, body: bytes) -> None:
        """`AT+CMGS`/`AT+CMGW` body ended with Ctrl-Z: "send" it or store it."""
        text = body.decode("latin-1").strip()
        if self.settings.cmgf == 0 and tpdu_octets(text) is None:
            self._write(f"\r\n{CmsError(304).final(self.settings.cmee)}\r\n".encode())
            return
        self.sent_pdus.append(text)
        if command == "+CMGW":
            try:
                index = self.storage(self.settings.memories[1]).store(
                    text, MessageStat.STO_UNSENT, self._now()
                )
            except CmsError as failure:
                self._write(f"\r\n{failure.final(self.settings.cmee)}\r\n".encode())
                return
            if index is None:
                self._write(f"\r\n{CmsError(322).final(self.settings.cmee)}\r\n".encode())
                return
            self._write(f"\r\n+CMGW: {index}\r\n\r\nOK\r\n".encode())
            return
        if self.registration_stat() not in (1, 5):
            self._write(f"\r\n{CmsError(331).final(self.settings.cmee)}\r\n".encode())
            return
        self._write(f"\r\n+CMGS: {len(self.sent_pdus) % 256}\r\n\r\nOK\r\n".encode())

    async def _periodic_noise(self) -> None:
        lines = self.profile.periodic_noise
        count = 0
        while True:
            await asyncio.sleep(self.noise_interval)
            if self.settings.curc:
                self._emit_urc(lines[count % len(lines)])
                count += 1
