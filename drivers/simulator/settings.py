"""The volatile settings of a simulated modem: what `ATZ`, a reboot or a replug resets."""

from __future__ import annotations

from dataclasses import dataclass, field

from .profiles import Profile


@dataclass
class ModemSettings:
    echo: bool = True
    cmee: int = 0
    cmgf: int = 0  # 0 PDU, 1 text
    cscs: str = "IRA"
    cnmi: list[int] = field(default_factory=lambda: [0, 0, 0, 0, 0])  # mode, mt, bm, ds, bfr
    creg: int = 0
    cgreg: int = 0
    cereg: int = 0
    cops_format: int = 0
    memories: list[str] = field(default_factory=list)  # mem1 read/delete, mem2 write, mem3 receive
    csms: int = 0
    cusd: int = 0
    curc: int = 1  # Huawei periodic URCs on/off
    phonebook: str = "SM"
    vendor: dict[str, str] = field(default_factory=dict)

    @classmethod
    def defaults(cls, profile: Profile) -> ModemSettings:
        return cls(
            cmee=profile.default_cmee,
            cnmi=list(profile.default_cnmi),
            memories=[profile.default_storage] * 3,
        )
