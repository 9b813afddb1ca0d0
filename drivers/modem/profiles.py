"""Per-model quirks of real modems, as data: which ICCID command works, what to send at init.

A profile is picked from `+CGMI`/`+CGMM`; anything unknown gets `GENERIC`, which only relies on
standard 27.007/27.005 commands. Vendor commands marked "(verify)" in the playbook are sent with
their errors ignored, so a wrong guess costs one round trip and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Every vendor ICCID form we know, tried after the standard `+CRSM` read (spec §2.6).
VENDOR_ICCID_COMMANDS: tuple[str, ...] = ("+CCID", "+QCCID", "+CICCID", "^ICCID?")

#: URCs that mean the module (re)started and lost its volatile settings (F23, F24).
#: `^BOOT` is left out on purpose: Huawei sticks repeat it every few seconds as noise.
RESET_URCS: frozenset[str] = frozenset(
    {"RDY", "+CFUN", "^SIMST", "UNDER-VOLTAGE", "POWER DOWN", "NORMAL POWER DOWN"}
)
#: URCs that mean the SIM or SMS part just became ready (F20): settings are re-asserted and the
#: storage swept, because SMS commands sent before them may have been refused or forgotten.
READY_URCS: frozenset[str] = frozenset({"SMS DONE", "SMS READY", "CALL READY", "PB DONE"})
#: `+QIND: <what>` values that count as READY_URCS (Quectel).
QIND_READY: frozenset[str] = frozenset({"SMS DONE", "PB DONE"})


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """What differs between modem families, for the driver."""

    name: str
    #: Lower-case fragments of "<manufacturer> <model>" that select this profile.
    match: tuple[str, ...]
    #: Vendor ICCID commands to try first (after `+CRSM`), best first.
    iccid_commands: tuple[str, ...] = ()
    #: Sent after the basic init, errors ignored (URC routing, noise off).
    vendor_init: tuple[str, ...] = ()
    #: First storage index when the modem never showed one (0-based Huawei/Quectel/SIMCom LTE).
    index_base: int = 1
    #: Whether `+CEREG` (LTE registration) is worth asking.
    has_lte: bool = False

    @property
    def iccid_order(self) -> tuple[str, ...]:
        """The profile's ICCID commands, then every other vendor form."""
        rest = tuple(cmd for cmd in VENDOR_ICCID_COMMANDS if cmd not in self.iccid_commands)
        return self.iccid_commands + rest


SIMCOM_2G = ModelProfile(
    name="simcom-2g",
    match=("sim800", "sim900", "sim808", "sim868"),
    iccid_commands=("+CCID",),
)
SIMCOM_LTE = ModelProfile(
    name="simcom-lte",
    match=("sim7", "sim8200", "simcom incorporated"),
    iccid_commands=("+CICCID",),
    index_base=0,
    has_lte=True,
)
QUECTEL = ModelProfile(
    name="quectel",
    match=("quectel", "ec25", "eg25", "ec21", "bg96"),
    iccid_commands=("+QCCID",),
    # URCs must come out of the port we read (pinephone_modem_sdk#6); set on every boot.
    vendor_init=('+QURCCFG="urcport","usbat"',),
    index_base=0,
    has_lte=True,
)
HUAWEI = ModelProfile(
    name="huawei",
    match=("huawei", "e3372", "e303", "e160", "e3531"),
    iccid_commands=("^ICCID?",),
    # Silence the periodic ^RSSI/^MODE/^BOOT lines (vendor doc; verify per model).
    vendor_init=("^CURC=0",),
    index_base=0,
    has_lte=True,
)
GENERIC = ModelProfile(name="generic", match=(), has_lte=True)

#: Most specific first: "SIMCOM_SIM800L" must not fall into the LTE profile.
PROFILES: tuple[ModelProfile, ...] = (SIMCOM_2G, SIMCOM_LTE, QUECTEL, HUAWEI)


def profile_for(manufacturer: str | None, model: str | None) -> ModelProfile:
    """The profile whose fragments appear in the identity strings, else `GENERIC`."""
    identity = f"{manufacturer or ''} {model or ''}".lower()
    for profile in PROFILES:
        if any(fragment in identity for fragment in profile.match):
            return profile
    return GENERIC
