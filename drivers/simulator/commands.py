"""The AT command set of a simulated modem: one small handler per command, reading the profile.

Handlers return the information lines of the reply and raise `CommandFailed` for an error
result. They read and change the modem's state through the `SimulatedModem` they serve.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .at_syntax import AtSyntaxError, Command, Op
from .errors import CmeError, CmsError, CommandFailed, PlainError, Unsupported
from .settings import ModemSettings
from .sim_card import PIN_ATTEMPTS, iccid_to_ef
from .storage import DELFLAG_STATS, TEXT_STATS, InvalidIndex, MessageStat
from .ussd import decode_ussd_request

if TYPE_CHECKING:
    from .modem import SimulatedModem

Handler = Callable[[Command], list[str]]

#: EF identifiers readable with `AT+CRSM=176,<fileid>,...`.
EF_ICCID = 12258
EF_SPN = 28486
EF_AD = 28589
CRSM_READ_BINARY = 176

#: Commands accepted with a bare OK because a driver may send them, though they change nothing here.
ACCEPTED_NOOPS = frozenset(
    {"Q", "X", "&C", "&D", "&W", "+CSMP", "+CLIP", "+CRC", "+CVHU", "+CSCB", "+CSDH", "+CMMS"}
)

TEXT_STAT_BY_NAME = {text: stat for stat, text in TEXT_STATS.items()}


class AtCommands:
    """Dispatch of parsed commands to handlers for one modem."""

    def __init__(self, modem: SimulatedModem) -> None:
        self.m = modem
        self.handlers: dict[str, Handler] = {
            "E": self.echo,
            "V": self.verbose,
            "Z": self.reset,
            "&F": self.reset,
            "I": self.ati,
            "+CMEE": self.cmee,
            "+CGMI": self.identity("manufacturer"),
            "+GMI": self.identity("manufacturer"),
            "+CGMM": self.identity("model"),
            "+GMM": self.identity("model"),
            "+CGMR": self.identity("revision"),
            "+GMR": self.identity("revision"),
            "+CGSN": self.identity("imei"),
            "+GSN": self.identity("imei"),
            "+CRSM": self.crsm,
            "+CCID": self.vendor_iccid,
            "+QCCID": self.vendor_iccid,
            "+CICCID": self.vendor_iccid,
            "^ICCID": self.vendor_iccid,
            "+CIMI": self.cimi,
            "+CPIN": self.cpin,
            "+CREG": self.registration("creg"),
            "+CGREG": self.registration("cgreg"),
            "+CEREG": self.registration("cereg"),
            "+COPS": self.cops,
            "+CSQ": self.csq,
            "+CNUM": self.cnum,
            "+CPBS": self.cpbs,
            "+CPBR": self.cpbr,
            "+CUSD": self.cusd,
            "+CMGF": self.cmgf,
            "+CSCS": self.cscs,
            "+CPMS": self.cpms,
            "+CNMI": self.cnmi,
            "+CMGL": self.cmgl,
            "+CMGR": self.cmgr,
            "+CMGD": self.cmgd,
            "+CMGS": self.cmgs,
            "+CMGW": self.cmgs,
            "+CFUN": self.cfun,
            "+CSMS": self.csms,
            "+CNMA": self.cnma,
            "+CSCA": self.csca,
        }

    def run(self, command: Command) -> list[str]:
        name = command.name
        if name in self.m.profile.vendor_commands:
            return self.vendor_setting(command)
        if name in ACCEPTED_NOOPS or name.startswith("S"):
            return []
        handler = self.handlers.get(name)
        if handler is None or (name == "+CEREG" and not self.m.profile.has_cereg):
            raise Unsupported(self.m.profile.unsupported_reply)
        return handler(command)

    # -- helpers -------------------------------------------------------------------------------

    @property
    def settings(self) -> ModemSettings:
        return self.m.settings

    def unsupported(self) -> CommandFailed:
        return Unsupported(self.m.profile.unsupported_reply)

    @staticmethod
    def choice(command: Command, position: int, allowed: range | tuple[int, ...]) -> int:
        value = command.int_arg(position)
        if value is None or value not in allowed:
            raise PlainError()
        return value

    # -- basic ---------------------------------------------------------------------------------

    def echo(self, command: Command) -> list[str]:
        self.settings.echo = command.int_arg(0, 0) == 1
        return []

    def verbose(self, command: Command) -> list[str]:
        return []  # ATV1 is what we speak; ATV0 is accepted and ignored

    def reset(self, command: Command) -> list[str]:
        self.m.settings = ModemSettings.defaults(self.m.profile)
        return []

    def ati(self, command: Command) -> list[str]:
        return list(self.m.profile.ati_lines)

    def cmee(self, command: Command) -> list[str]:
        if command.op is Op.READ:
            return [f"+CMEE: {self.settings.cmee}"]
        if command.op is Op.TEST:
            return ["+CMEE: (0-2)"]
        self.settings.cmee = self.choice(command, 0, range(3)) if command.args else 0
        return []

    def identity(self, field_name: str) -> Handler:
        def handler(command: Command) -> list[str]:
            if command.op is Op.TEST:
                return []
            return [str(getattr(self.m.profile, field_name))]

        return handler

    # -- SIM -----------------------------------------------------------------------------------

    def crsm(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return []
        sim = self.m.require_sim()
        if command.int_arg(0) != CRSM_READ_BINARY:
            return ["+CRSM: 109,0"]  # wrong instruction class
        fileid = command.int_arg(1)
        if fileid == EF_ICCID:
            return [f'+CRSM: 144,0,"{iccid_to_ef(sim.iccid)}"']
        if fileid == EF_AD:
            return [f'+CRSM: 144,0,"000000{sim.mnc_length:02X}"']
        if fileid == EF_SPN:
            name = sim.operator_name.encode("ascii", "replace")[:16]
            return [f'+CRSM: 144,0,"00{name.hex().upper().ljust(32, "F")}"']
        return ["+CRSM: 106,130"]  # file not found

    def vendor_iccid(self, command: Command) -> list[str]:
        name = command.name
        if name not in self.m.profile.iccid_commands:
            raise self.unsupported()
        if command.op is Op.TEST:
            return []
        if name == "^ICCID" and command.op is not Op.READ:
            raise self.unsupported()
        sim = self.m.require_sim()
        if name == "+CCID":
            return [sim.iccid]
        if name == "+QCCID":
            return [f"+QCCID: {sim.iccid}"]
        if name == "+CICCID":
            return [f"ICCID: {sim.iccid}"]
        return [f"^ICCID: {iccid_to_ef(sim.iccid)}"]

    def cimi(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return []
        return [self.m.require_sim().imsi]

    def cpin(self, command: Command) -> list[str]:
        m = self.m
        if command.op is Op.TEST:
            return []
        if not m.sim_present:
            raise CmeError(10)
        if m.consume_sim_busy():
            raise CmeError(14)
        if command.op is Op.READ:
            state = "SIM PUK" if m.puk_required else "SIM PIN" if m.sim_locked else "READY"
            return [state if m.cpin_without_prefix else f"+CPIN: {state}"]
        if command.op is not Op.SET:
            raise PlainError()
        if m.puk_required:
            raise CmeError(12)
        if not m.sim_locked:
            raise CmeError(3)
        if command.arg(0) != m.expected_pin:
            m.pin_attempts_left -= 1
            if m.pin_attempts_left <= 0:
                m.puk_required = True
            raise CmeError(16)
        m.pin_attempts_left = PIN_ATTEMPTS
        m.unlock_sim()
        return []

    def cnum(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return []
        sim = self.m.require_sim()
        if sim.number and sim.number_in_cnum:
            return [f'+CNUM: "","{sim.international_number}",145']
        return []

    def cpbs(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ['+CPBS: ("SM","ON")']
        sim = self.m.require_sim()
        if command.op is Op.READ:
            book = self.settings.phonebook
            used = int(book == "ON" and bool(sim.number) and sim.number_in_phonebook)
            total = 1 if book == "ON" else 250
            return [f'+CPBS: "{book}",{used},{total}']
        book = (command.arg(0) or "").upper()
        if book not in ("SM", "ON"):
            raise CmeError(3)
        self.settings.phonebook = book
        return []

    def cpbr(self, command: Command) -> list[str]:
        sim = self.m.require_sim()
        if command.op is Op.TEST:
            return [
                "+CPBR: (1-1),40,18" if self.settings.phonebook == "ON" else "+CPBR: (1-250),40,18"
            ]
        if command.op is not Op.SET:
            raise PlainError()
        first = command.int_arg(0)
        last = command.int_arg(1, first)
        if first is None or last is None or first < 1 or last < first:
            raise CmeError(21)
        if (
            self.settings.phonebook == "ON"
            and first == 1
            and sim.number
            and sim.number_in_phonebook
        ):
            return [f'+CPBR: 1,"{sim.international_number}",145,"My number"']
        return []

    # -- network -------------------------------------------------------------------------------

    def registration(self, which: str) -> Handler:
        label = "+" + which.upper()

        def handler(command: Command) -> list[str]:
            if command.op is Op.TEST:
                return [f"{label}: (0-2)"]
            if command.op is Op.READ:
                mode = getattr(self.settings, which)
                return [f"{label}: {mode}," + self.m.registration_fields(mode)]
            setattr(self.settings, which, self.choice(command, 0, range(3)) if command.args else 0)
            return []

        return handler

    def cops(self, command: Command) -> list[str]:
        m = self.m
        if command.op is Op.TEST:
            if m.sim is None:
                return ["+COPS: ,,(0-4),(0-2)"]
            sim = m.sim
            act = (
                f",{m.profile.access_technology}" if m.profile.access_technology is not None else ""
            )
            names = f'"{sim.operator_name}","{sim.operator_name}","{sim.mcc_mnc}"'
            return [f"+COPS: (2,{names}{act}),,(0-4),(0-2)"]
        if command.op is Op.SET:
            mode = self.choice(command, 0, (0, 1, 2, 3, 4))
            if mode == 3:
                self.settings.cops_format = self.choice(command, 1, (0, 1, 2))
            return []
        stat = m.registration_stat()
        if stat not in (1, 5) or m.sim is None:
            return ["+COPS: 0"]
        fmt = self.settings.cops_format
        oper = m.sim.mcc_mnc if fmt == 2 else m.sim.operator_name
        act = f",{m.profile.access_technology}" if m.profile.access_technology is not None else ""
        return [f'+COPS: 0,{fmt},"{oper}"{act}']

    def csq(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CSQ: (0-31,99),(0-7,99)"]
        rssi = self.m.signal_rssi if self.m.cfun == 1 else 99
        return [f"+CSQ: {rssi},99"]

    def cusd(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CUSD: (0-2)"]
        if command.op is Op.READ:
            return [f"+CUSD: {self.settings.cusd}"]
        if command.op is not Op.SET:
            raise PlainError()
        mode = self.choice(command, 0, (0, 1, 2))
        code = command.arg(1)
        if mode == 2:
            self.m.cancel_ussd()
            return []
        self.settings.cusd = mode
        if code is None:
            return []
        self.m.require_sim()
        if self.m.registration_stat() not in (1, 5):
            raise CmeError(30)
        self.m.request_ussd(decode_ussd_request(code))
        return []

    def cfun(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CFUN: (0,1,4),(0-1)"]
        if command.op is Op.READ:
            return [f"+CFUN: {self.m.cfun}"]
        fun = self.choice(command, 0, (0, 1, 4))
        reset = self.choice(command, 1, (0, 1)) if command.arg(1) is not None else 0
        if reset:
            self.m.after_reply(self.m.start_reboot)
            return []
        self.m.set_cfun(fun)
        return []

    # -- SMS -----------------------------------------------------------------------------------

    def cmgf(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CMGF: (0-1)"]
        if command.op is Op.READ:
            return [f"+CMGF: {self.settings.cmgf}"]
        self.settings.cmgf = self.choice(command, 0, (0, 1)) if command.args else 0
        return []

    def cscs(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ['+CSCS: ("IRA","GSM","UCS2")']
        if command.op is Op.READ:
            return [f'+CSCS: "{self.settings.cscs}"']
        charset = (command.arg(0) or "").upper()
        if charset not in ("IRA", "GSM", "UCS2"):
            raise CmeError(4)
        self.settings.cscs = charset
        return []

    def cpms(self, command: Command) -> list[str]:
        m = self.m
        names = list(m.profile.storages)
        if command.op is Op.TEST:
            listed = ",".join(f'"{n}"' for n in names)
            return [f"+CPMS: ({listed}),({listed}),({listed})"]
        m.require_sms_ready()
        if command.op is Op.READ:
            parts = []
            for mem in self.settings.memories:
                used, total = m.storage_counts(mem)
                parts.append(f'"{mem}",{used},{total}')
            return ["+CPMS: " + ",".join(parts)]
        if command.op is not Op.SET or not 1 <= len(command.args) <= 3:
            raise CmsError(302)
        chosen = [a.upper() for a in command.args]
        if any(mem not in names for mem in chosen):
            raise CmsError(302)
        for mem in chosen:
            m.storage(mem)  # SM without a SIM fails here
        memories = chosen + self.settings.memories[len(chosen) :]
        self.settings.memories = memories
        counts = []
        for mem in memories:
            used, total = m.storage_counts(mem)
            counts.append(f"{used},{total}")
        return ["+CPMS: " + ",".join(counts)]

    def cnmi(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return [f"+CNMI: {self.m.profile.cnmi_ranges}"]
        if command.op is Op.READ:
            return ["+CNMI: " + ",".join(str(v) for v in self.settings.cnmi)]
        if command.op is not Op.SET or len(command.args) > 5:
            raise CmsError(303)
        values = list(self.settings.cnmi)
        allowed = [range(4), range(4), (0, 2), range(3), (0, 1)]
        for position in range(len(command.args)):
            value = command.int_arg(position)
            if value is None:
                continue
            if value not in allowed[position]:
                raise CmsError(303)
            values[position] = value
        self.settings.cnmi = values
        return []

    def cmgl(self, command: Command) -> list[str]:
        m = self.m
        if command.op is Op.TEST:
            if self.settings.cmgf == 1:
                return ['+CMGL: ("REC UNREAD","REC READ","STO UNSENT","STO SENT","ALL")']
            return ["+CMGL: (0-4)"]
        m.require_sms_ready()
        wanted = self.listing_filter(command)
        storage = m.storage(self.settings.memories[0])
        lines: list[str] = []
        for index, message in storage:
            if wanted is not None and message.stat is not wanted:
                continue
            lines.extend(m.render_message("+CMGL", index, message))
            if message.stat is MessageStat.REC_UNREAD:
                message.stat = MessageStat.REC_READ
        return lines

    def listing_filter(self, command: Command) -> MessageStat | None:
        """The stat `AT+CMGL` asks for (None = all); the default is "received unread"."""
        raw = command.arg(0)
        if self.settings.cmgf == 1:
            name = (raw or "REC UNREAD").upper()
            if name == "ALL":
                return None
            if name not in TEXT_STAT_BY_NAME:
                raise CmsError(302)
            return TEXT_STAT_BY_NAME[name]
        try:
            value = int(raw) if raw is not None else 0
        except ValueError:
            raise CmsError(302) from None
        if value == 4:
            return None
        if value not in range(4):
            raise CmsError(302)
        return MessageStat(value)

    def cmgr(self, command: Command) -> list[str]:
        m = self.m
        if command.op is Op.TEST:
            return []
        m.require_sms_ready()
        index = command.int_arg(0)
        if index is None:
            raise CmsError(302)
        mem = self.settings.memories[0]
        storage = m.storage(mem)
        try:
            message = storage.get(index)
        except InvalidIndex:
            raise CmsError(321) from None
        if m.take_hinted_failure(mem, index):
            raise CmsError(321)
        if message is None:
            if m.profile.empty_read_is_error:
                raise CmsError(321)
            return []
        lines = m.render_message("+CMGR", index, message)
        if message.stat is MessageStat.REC_UNREAD:
            message.stat = MessageStat.REC_READ
        return lines

    def cmgd(self, command: Command) -> list[str]:
        m = self.m
        mem = self.settings.memories[0]
        if command.op is Op.TEST:
            m.require_sms_ready()
            used = ",".join(str(i) for i, _ in m.storage(mem))
            return [f"+CMGD: ({used}),(0-4)"]
        if command.op is not Op.SET:
            raise CmsError(302)
        m.require_sms_ready()
        storage = m.storage(mem)
        index = command.int_arg(0)
        delflag = command.int_arg(1, 0)
        if delflag not in range(5):
            raise CmsError(302)
        if delflag:
            storage.delete_by_stat(DELFLAG_STATS[delflag])
        else:
            if index is None:
                raise CmsError(302)
            try:
                storage.delete(index)
            except InvalidIndex:
                raise CmsError(321) from None
        m.after_reply(m.release_held_sms)
        return []

    def cmgs(self, command: Command) -> list[str]:
        m = self.m
        if command.op is Op.TEST:
            return []
        if command.op is not Op.SET:
            raise CmsError(302)
        m.require_sms_ready()
        if self.settings.cmgf == 0:
            length = command.int_arg(0)
            if length is None or not 1 <= length <= 180:
                raise CmsError(304)
        elif not command.arg(0):
            raise CmsError(305)
        m.open_prompt(command.name)
        return []

    def csms(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CSMS: (0,1)"]
        if command.op is Op.READ:
            return [f"+CSMS: {self.settings.csms},1,1,1"]
        self.settings.csms = self.choice(command, 0, (0, 1))
        return ["+CSMS: 1,1,1"]

    def cnma(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return ["+CNMA: (0-2)"]
        if not self.m.acknowledge_routed():
            raise CmsError(340)
        return []

    def csca(self, command: Command) -> list[str]:
        if command.op is Op.TEST:
            return []
        sim = self.m.require_sim()
        if command.op is Op.READ:
            return [f'+CSCA: "{sim.smsc}",145']
        address = command.arg(0)
        if not address:
            raise CmsError(304)
        sim.smsc = address
        return []

    # -- vendor ---------------------------------------------------------------------------------

    def vendor_setting(self, command: Command) -> list[str]:
        """Quectel `+QURCCFG`, Huawei `^CURC`: remembered, read back from the profile."""
        name = command.name
        if name == "+QURCCFG" and command.op is Op.SET:
            if len(command.args) == 1:  # AT+QURCCFG="urcport" asks for the current port
                port = self.settings.vendor.get(name, "usbat")
                return [f'+QURCCFG: "urcport","{port}"']
            self.settings.vendor[name] = command.arg(1, "usbat") or "usbat"
            return []
        if command.op is Op.SET:
            self.settings.vendor[name] = command.raw_args
            if name == "^CURC":
                self.settings.curc = self.choice(command, 0, (0, 1))
            return []
        if command.op is Op.READ or (command.op is Op.EXEC and command.args == []):
            if name == "^CURC":
                return [f"^CURC: {self.settings.curc}"]
            return [self.m.profile.vendor_commands[name]]
        return []


__all__ = ["AtCommands", "AtSyntaxError"]
