"""A farm of simulated modems: lookup by name, number or ICCID, and a ready-made demo farm."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

from stdnum import luhn

from .modem import SimulatedModem
from .profiles import E3372, EC25, SIM800, Profile
from .sim_card import make_sim


class UnknownModem(LookupError):
    """No modem in the farm matches the selector."""


def with_serial(profile: Profile, serial: int) -> Profile:
    """The profile with its own Luhn-valid IMEI (same TAC), so modems in one farm differ."""
    body = profile.imei[:8] + f"{serial % 1_000_000:06d}"
    imei = body + luhn.calc_check_digit(body)
    ati = tuple(f"IMEI: {imei}" if line.startswith("IMEI:") else line for line in profile.ati_lines)
    return replace(profile, imei=imei, ati_lines=ati)


def _digits(number: str) -> str:
    return "".join(ch for ch in number if ch.isdigit())


class SimulatedFarm:
    """The modems a test or the demo runs; names are unique."""

    def __init__(self, modems: Iterable[SimulatedModem] = ()) -> None:
        self._modems: dict[str, SimulatedModem] = {}
        for modem in modems:
            self.add(modem)

    def add(self, modem: SimulatedModem) -> SimulatedModem:
        if modem.name in self._modems:
            raise ValueError(f"a modem named {modem.name!r} is already in the farm")
        self._modems[modem.name] = modem
        return modem

    def __iter__(self) -> Iterator[SimulatedModem]:
        return iter(self._modems.values())

    def __len__(self) -> int:
        return len(self._modems)

    async def start(self) -> None:
        for modem in self:
            await modem.start()

    async def stop(self) -> None:
        for modem in self:
            await modem.stop()

    def by_name(self, name: str) -> SimulatedModem:
        try:
            return self._modems[name]
        except KeyError:
            raise UnknownModem(f"no simulated modem named {name!r}") from None

    def by_number(self, number: str) -> SimulatedModem:
        wanted = _digits(number)
        for modem in self:
            if modem.sim is not None and modem.sim.number == wanted:
                return modem
        raise UnknownModem(f"no simulated modem has a SIM with number {number!r}")

    def by_iccid(self, iccid: str) -> SimulatedModem:
        for modem in self:
            if modem.sim is not None and modem.sim.iccid == iccid:
                return modem
        raise UnknownModem(f"no simulated modem has a SIM with ICCID {iccid!r}")

    def select(self, request: dict[str, Any]) -> SimulatedModem:
        """The modem a control request names by "modem", "number"/"to" or "iccid"."""
        if "modem" in request:
            return self.by_name(str(request["modem"]))
        if "iccid" in request:
            return self.by_iccid(str(request["iccid"]))
        for key in ("number", "to"):
            if key in request:
                return self.by_number(str(request[key]))
        raise UnknownModem('name the modem with "modem", "number" or "iccid"')

    def describe(self) -> list[dict[str, Any]]:
        rows = []
        for modem in self:
            path = None
            with contextlib.suppress(RuntimeError):
                path = modem.path
            sim = modem.sim
            rows.append(
                {
                    "name": modem.name,
                    "profile": modem.profile.name,
                    "imei": modem.profile.imei,
                    "path": path,
                    "power": modem.power.value,
                    "hung": modem.hung,
                    "iccid": sim.iccid if sim else None,
                    "number": sim.number if sim else None,
                    "registration": modem.registration_stat(),
                    "held_sms": modem.held_sms,
                }
            )
        return rows


def make_demo_farm(
    count: int = 4,
    *,
    profiles: tuple[Profile, ...] = (SIM800, EC25, E3372),
    number_prefix: str = "49151",
    mcc_mnc: str = "26202",
    operator_name: str = "Vodafone.de",
) -> SimulatedFarm:
    """`count` modems cycling through `profiles`, each with a ready SIM and a distinct number."""
    farm = SimulatedFarm()
    for position in range(count):
        base = profiles[position % len(profiles)]
        number = f"{number_prefix}{10_000_000 + position:08d}"
        sim = make_sim(
            position + 1,
            number=number,
            mcc_mnc=mcc_mnc,
            operator_name=operator_name,
            ussd={"*135#": f"Ihre Rufnummer: +{number}"},
        )
        profile = with_serial(base, position + 1)
        farm.add(SimulatedModem(profile, sim, name=f"sim{position:02d}-{base.name}"))
    return farm
