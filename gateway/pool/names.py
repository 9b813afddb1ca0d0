"""The marketplace's names for a SIM: its country (from the number) and operator (from the IMSI).

GET_SERVICES groups numbers by country and operator using the marketplace's lower-case names
(`germany`, `russia`, `megafon`). Defaults come from the number's region (`phonenumbers`) and the
IMSI's MCC-MNC (`python-stdnum`'s operator table, brand first); the configuration overrides both.
A SIM whose operator cannot be named is sold under the operator "unknown": it still counts in the
marketplace's `any`. A number whose country cannot be told is sold under the country "unknown"
(set `[sims.<iccid>] country` for it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import phonenumbers
from stdnum import imsi as stdnum_imsi
from stdnum.exceptions import ValidationError as StdnumValidationError

from gateway.pool.country_names import COUNTRY_NAMES

if TYPE_CHECKING:
    from gateway.config import Config

#: The name used when a country or an operator cannot be told.
UNKNOWN = "unknown"

#: Operator names the marketplaces use where the brand in the operator table differs, by MCC+MNC.
OPERATOR_BY_MCCMNC: dict[str, str] = {
    "25020": "tele2",  # Russia: Tele2 rebranded "t2"; the marketplaces still say tele2
    "25506": "life",  # Ukraine: lifecell
    "25704": "life",  # Belarus: life:)
    "40177": "tele2",  # Kazakhstan: Tele2.kz
    "23420": "three",  # United Kingdom: "3"
}
#: The same, by the name derived from the table (for brands that appear under many MCC+MNCs).
OPERATOR_BY_NAME: dict[str, str] = {
    "lifecell": "life",
    "t2": "tele2",
    "vodafoneuk": "vodafone",
    "tele2kz": "tele2",
}


@dataclass(frozen=True, slots=True)
class SimNames:
    """What GET_SERVICES files a SIM under."""

    country: str
    operator: str
    mccmnc: str | None


def country_of_number(digits: str) -> str | None:
    """The ISO region of an international number (digits, optional +), or None."""
    digits = digits.strip().removeprefix("+")
    if not digits.isdigit():
        return None
    try:
        parsed = phonenumbers.parse("+" + digits)
    except phonenumbers.NumberParseException:
        return None
    region = phonenumbers.region_code_for_number(parsed)
    if not _is_region(region):
        # A range newer than the metadata, or a shared code (+1, +7): the code's main region.
        region = phonenumbers.region_code_for_country_code(parsed.country_code)
    return region if _is_region(region) else None


def _is_region(region: str | None) -> bool:
    return bool(region) and region not in ("ZZ", "001")


def marketplace_country(region: str, overrides: Mapping[str, str]) -> str:
    """The marketplace's name for an ISO region: `[countries]` first, then the shipped table."""
    region = region.upper()
    if region in overrides:
        return overrides[region]
    return COUNTRY_NAMES.get(region, region.lower())


def operator_of_imsi(imsi: str) -> tuple[str, str] | None:
    """(MCC+MNC, default operator name) of an IMSI, or None when its network is not known.

    The name is the brand (else the operator) from the operator table, lower-cased, with only
    letters and digits kept, corrected where the marketplaces use another name; "unknown" when the
    network is known but unnamed.
    """
    imsi = imsi.strip()
    if not re.fullmatch(r"\d{6,15}", imsi):
        return None
    try:
        info = stdnum_imsi.info(imsi)
    except (StdnumValidationError, ValueError):  # an MCC the table does not know
        return None
    mcc, mnc = info.get("mcc"), info.get("mnc")
    if not mcc or not mnc:
        return None
    mccmnc = f"{mcc}{mnc}"
    if mccmnc in OPERATOR_BY_MCCMNC:
        return mccmnc, OPERATOR_BY_MCCMNC[mccmnc]
    for candidate in (info.get("brand"), info.get("operator")):
        name = _plain_name(candidate or "")
        if name:
            return mccmnc, OPERATOR_BY_NAME.get(name, name)
    return mccmnc, UNKNOWN


def _plain_name(text: str) -> str:
    """A table name as a marketplace name: "O<sub>2</sub>", "O2 (UK)" -> "o2"; "AT&T" -> "att"."""
    text = text.split(";")[0]
    text = re.sub(r"<[^>]*>", "", text)
    text = re.sub(r"\([^)]*\)", "", text)
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _mccmnc_guesses(imsi: str) -> list[str]:
    """MCC+MNC with a 2- and a 3-digit MNC, for an IMSI the operator table does not know."""
    digits = imsi.strip()
    return [digits[:5], digits[:6]] if digits.isdigit() and len(digits) >= 6 else []


def names_for_sim(*, number: str, imsi: str | None, iccid: str, config: Config) -> SimNames:
    """Country and operator of one SIM: `[sims.<iccid>]`, then `[countries]`/`[operators]`,
    then the defaults from the number and the IMSI."""
    sim = config.sims.get(iccid)
    network = operator_of_imsi(imsi) if imsi else None
    mccmnc = network[0] if network else None

    country = sim.country if sim is not None else None
    if country is None:
        region = country_of_number(number) or _region_of_imsi(imsi)
        country = marketplace_country(region, config.countries) if region else UNKNOWN

    operator = sim.operator if sim is not None else None
    if operator is None:
        keys = [mccmnc] if mccmnc else _mccmnc_guesses(imsi or "")
        operator = next((config.operators[k] for k in keys if k in config.operators), None)
    if operator is None:
        operator = network[1] if network else UNKNOWN
    return SimNames(country=country, operator=operator, mccmnc=mccmnc)


def _region_of_imsi(imsi: str | None) -> str | None:
    """The home region of an IMSI's network, for a number whose region cannot be told."""
    if not imsi or not re.fullmatch(r"\d{6,15}", imsi.strip()):
        return None
    try:
        code = stdnum_imsi.info(imsi.strip()).get("cc")
    except (StdnumValidationError, ValueError):
        return None
    return code.upper() if code and len(code) == 2 else None
