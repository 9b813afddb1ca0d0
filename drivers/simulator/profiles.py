"""Per-model behaviour of the simulated modems, as plain data.

A profile says what a model answers and how it misbehaves; `modem.py` has one state machine that
reads these fields. New models are new `Profile` values (often `dataclasses.replace` of a similar
one), not subclasses.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace


class UssdEncoding(enum.Enum):
    """How a model hands the operator's USSD text back in `+CUSD: 0,"<str>",<dcs>`."""

    TEXT = "text"  # plain text, dcs 15
    UCS2_HEX = "ucs2-hex"  # hex of UTF-16BE, dcs 72 (Huawei E3276 style)
    GSM7_PACKED_HEX = "gsm7-packed-hex"  # hex of packed GSM-7 septets, dcs 15 (Huawei E160 style)


@dataclass(frozen=True)
class Profile:
    """Identity strings, command set, storage layout and quirks of one modem model."""

    name: str
    manufacturer: str
    model: str
    revision: str
    imei: str
    ati_lines: tuple[str, ...]
    #: Vendor ICCID commands that work, e.g. "+CCID", "+QCCID", "+CICCID", "^ICCID".
    iccid_commands: frozenset[str]
    #: SMS memories and their capacities, in the order `AT+CPMS=?` lists them.
    storages: dict[str, int]
    default_storage: str
    index_base: int = 1
    #: `AT+CMGR` of an empty slot: True -> `+CMS ERROR: 321`, False -> a bare `OK`.
    empty_read_is_error: bool = True
    #: Final result for an unknown command.
    unsupported_reply: str = "ERROR"
    default_cmee: int = 0
    default_cnmi: tuple[int, int, int, int, int] = (2, 1, 0, 0, 0)
    cnmi_ranges: str = "(0-3),(0-3),(0,2),(0-2),(0,1)"
    #: Lines printed after every power-up, before the SIM is looked at.
    boot_urcs: tuple[str, ...] = ("RDY", "+CFUN: 1")
    #: Printed after the boot lines when the SIM is ready ("{cpin}" is filled in before).
    boot_urcs_sim_ready: tuple[str, ...] = ()
    #: Template of the SIM status URC at boot; "{state}" is READY / SIM PIN / NOT INSERTED.
    boot_cpin_urc: str | None = "+CPIN: {state}"
    #: Access technology in +COPS/+CREG replies (0 GSM, 2 UTRAN, 7 E-UTRAN); None: not shown.
    access_technology: int | None = None
    has_cereg: bool = False
    #: Vendor commands accepted with a bare OK (and a canned read reply), e.g. "+QURCCFG".
    vendor_commands: dict[str, str] = field(default_factory=dict)
    ussd_encoding: UssdEncoding = UssdEncoding.TEXT
    #: Seconds a freshly stored SMS is left out of the `+CPMS` used count (Huawei lag).
    cpms_lag_seconds: float = 0.0
    #: Periodic unsolicited lines (Huawei ^RSSI/^MODE), every `noise_interval_seconds`.
    periodic_noise: tuple[str, ...] = ()
    noise_interval_seconds: float = 5.0
    #: Both route (+CMT) and store (+CMTI) every SMS under mt=1 (Huawei E303 style).
    stores_and_routes: bool = False
    #: URC when the receive memory is full, e.g. '^SMMEMFULL: "{mem}"'.
    memory_full_urc: str | None = None
    under_voltage_urc: str | None = None
    #: How long the modem stays silent while it reboots.
    boot_seconds: float = 0.2


SIM800 = Profile(
    name="sim800",
    manufacturer="SIMCOM_Ltd",
    model="SIMCOM_SIM800L",
    revision="Revision:1418B04SIM800L24",
    imei="865067020000019",
    ati_lines=("SIM800 R14.18",),
    iccid_commands=frozenset({"+CCID"}),
    storages={"SM": 30},
    default_storage="SM",
    index_base=1,
    empty_read_is_error=False,
    default_cmee=0,
    cnmi_ranges="(0-3),(0-3),(0,2),(0-2),(0,1)",
    boot_urcs=("RDY", "+CFUN: 1"),
    boot_urcs_sim_ready=("Call Ready", "SMS Ready"),
    boot_cpin_urc="+CPIN: {state}",
    under_voltage_urc="UNDER-VOLTAGE WARNNING",
)

EC25 = Profile(
    name="ec25",
    manufacturer="Quectel",
    model="EC25",
    revision="EC25EFAR06A03M4G",
    imei="866758040000016",
    ati_lines=("Quectel", "EC25", "Revision: EC25EFAR06A03M4G"),
    iccid_commands=frozenset({"+QCCID"}),
    storages={"ME": 255, "SM": 50},
    default_storage="ME",
    index_base=0,
    empty_read_is_error=True,
    default_cmee=1,
    cnmi_ranges="(0-2),(0-3),(0,2),(0-2),(0,1)",
    boot_urcs=("RDY", "+CFUN: 1"),
    boot_urcs_sim_ready=("+QUSIM: 1", "+QIND: SMS DONE", "+QIND: PB DONE"),
    access_technology=7,
    has_cereg=True,
    vendor_commands={"+QURCCFG": '+QURCCFG: "urcport","usbat"'},
)

E3372 = Profile(
    name="e3372",
    manufacturer="huawei",
    model="E3372",
    revision="22.328.62.00.1217",
    imei="867223020000013",
    ati_lines=(
        "Manufacturer: huawei",
        "Model: E3372",
        "Revision: 22.328.62.00.1217",
        "IMEI: 867223020000013",
        "+GCAP: +CGSM,+DS,+ES",
    ),
    iccid_commands=frozenset({"^ICCID"}),
    storages={"SM": 50, "ME": 100},
    default_storage="SM",
    index_base=0,
    empty_read_is_error=True,
    unsupported_reply="COMMAND NOT SUPPORT",
    default_cmee=2,
    default_cnmi=(2, 1, 0, 2, 0),
    cnmi_ranges="(0-2),(0-3),(0,2),(0-2),(0,1)",
    boot_urcs=("^BOOT:20952,0,0,0,72", "^SIMST: 1"),
    boot_urcs_sim_ready=("^SRVST: 2",),
    boot_cpin_urc=None,
    access_technology=7,
    has_cereg=True,
    vendor_commands={"^CURC": "^CURC: 1"},
    ussd_encoding=UssdEncoding.UCS2_HEX,
    cpms_lag_seconds=0.5,
    periodic_noise=("^RSSI: 18", "^MODE: 5,4", "^BOOT:20952,0,0,0,72"),
    memory_full_urc='^SMMEMFULL: "{mem}"',
)

#: Huawei E160: packed GSM-7 hex USSD replies, 1-based, no LTE.
E160 = replace(
    E3372,
    name="e160",
    model="E160",
    revision="11.608.12.02.21",
    imei="353142030000014",
    ati_lines=("Manufacturer: huawei", "Model: E160", "Revision: 11.608.12.02.21"),
    index_base=1,
    access_technology=2,
    has_cereg=False,
    ussd_encoding=UssdEncoding.GSM7_PACKED_HEX,
    cpms_lag_seconds=0.0,
)

#: Huawei E303: stores every SMS and routes it too, so a driver sees +CMT and +CMTI.
E303 = replace(
    E3372,
    name="e303",
    model="E303",
    revision="21.157.01.00.00",
    imei="861234010000017",
    ati_lines=("Manufacturer: huawei", "Model: E303", "Revision: 21.157.01.00.00"),
    access_technology=2,
    has_cereg=False,
    stores_and_routes=True,
    cpms_lag_seconds=0.0,
)

SIM7600 = Profile(
    name="sim7600",
    manufacturer="SIMCOM INCORPORATED",
    model="SIMCOM_SIM7600E-H",
    revision="+CGMR: LE20B04SIM7600M22",
    imei="862636050000016",
    ati_lines=("Manufacturer: SIMCOM INCORPORATED", "Model: SIMCOM_SIM7600E-H"),
    iccid_commands=frozenset({"+CICCID"}),
    storages={"ME": 255, "SM": 50},
    default_storage="ME",
    index_base=0,
    empty_read_is_error=True,
    default_cmee=1,
    boot_urcs=("RDY",),
    boot_urcs_sim_ready=("SMS DONE", "PB DONE"),
    access_technology=7,
    has_cereg=True,
)

PROFILES: dict[str, Profile] = {p.name: p for p in (SIM800, EC25, E3372, E160, E303, SIM7600)}


def profile_by_name(name: str) -> Profile:
    try:
        return PROFILES[name.lower()]
    except KeyError:
        raise KeyError(f"unknown modem profile {name!r}; known: {', '.join(PROFILES)}") from None
