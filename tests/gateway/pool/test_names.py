"""Marketplace names: a country for every region, operators from IMSIs, overrides in order."""

from __future__ import annotations

import re

import phonenumbers
import pytest

from gateway.config import Config, config_from_dict
from gateway.pool.country_names import COUNTRY_NAMES
from gateway.pool.names import (
    UNKNOWN,
    SimNames,
    country_of_number,
    marketplace_country,
    names_for_sim,
    operator_of_imsi,
)

ICCID = "89490200001234567890"
OTHER_ICCID = "89701011234567890123"


def make_config(**tables: object) -> Config:
    data = {
        "marketplace": {"key": "names-partner-key-1", "push_url": "https://m.example/p"},
        "offer": {"services": ["vk"]},
        **tables,
    }
    return config_from_dict(data, environ={})


# --- countries -------------------------------------------------------------------------------


def test_every_phone_region_has_a_marketplace_name() -> None:
    missing = sorted(set(phonenumbers.SUPPORTED_REGIONS) - set(COUNTRY_NAMES))
    assert missing == []


def test_country_names_follow_the_convention() -> None:
    for region, name in COUNTRY_NAMES.items():
        assert re.fullmatch(r"[A-Z]{2}", region), region
        assert re.fullmatch(r"[a-z]+", name), (region, name)
    assert len(set(COUNTRY_NAMES.values())) == len(COUNTRY_NAMES), "two regions share a name"


@pytest.mark.parametrize(
    ("region", "name"),
    [
        ("RU", "russia"),
        ("UA", "ukraine"),
        ("DE", "germany"),
        ("KZ", "kazakhstan"),
        ("US", "usa"),
        ("GB", "england"),
        ("AE", "uae"),
        ("CZ", "czech"),
        ("ZA", "southafrica"),
        ("SA", "saudiarabia"),
        ("HK", "hongkong"),
        ("NZ", "newzealand"),
        ("KR", "southkorea"),
        ("CD", "dcongo"),
        ("CG", "congo"),
    ],
)
def test_shipped_country_names(region: str, name: str) -> None:
    assert marketplace_country(region, {}) == name


def test_country_override_wins_and_region_case_does_not_matter() -> None:
    assert marketplace_country("de", {"DE": "deutschland"}) == "deutschland"
    assert marketplace_country("de", {}) == "germany"
    assert marketplace_country("QQ", {}) == "qq"  # not a region: still a name, never a crash


@pytest.mark.parametrize(
    ("number", "region"),
    [
        ("4915112345678", "DE"),  # German mobile
        ("+4930123456", "DE"),  # German landline, with a plus
        ("79161234567", "RU"),
        ("77012345678", "KZ"),  # +7 shared with Russia
        ("380501234567", "UA"),
        ("12025550123", "US"),
        ("14165550123", "CA"),  # +1 shared with the US
        ("447700900123", "GB"),
        ("8613800138000", "CN"),
    ],
)
def test_country_of_number(number: str, region: str) -> None:
    assert country_of_number(number) == region


@pytest.mark.parametrize("number", ["", "+", "999", "abc", "88212345678", "0151123456"])
def test_country_of_number_that_has_none(number: str) -> None:
    assert country_of_number(number) is None


# --- operators -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("imsi", "expected"),
    [
        ("262011234567890", ("26201", "telekom")),  # Germany
        ("262021234567890", ("26202", "vodafone")),
        ("262031234567890", ("26203", "o2")),  # "O<sub>2</sub>" in the table
        ("250021234567890", ("25002", "megafon")),  # Russia
        ("250011234567890", ("25001", "mts")),
        ("250991234567890", ("25099", "beeline")),
        ("250201234567890", ("25020", "tele2")),  # "t2" in the table
        ("255031234567890", ("25503", "kyivstar")),  # Ukraine
        ("255061234567890", ("25506", "life")),  # "lifecell" in the table
        ("255011234567890", ("25501", "vodafone")),
        ("310410123456789", ("310410", "att")),  # USA, three-digit MNC
        ("234151234567890", ("23415", "vodafone")),  # UK, "Vodafone UK" in the table
        ("234101234567890", ("23410", "o2")),  # "O2 (UK)" in the table
        ("401771234567890", ("40177", "tele2")),  # Kazakhstan, "Tele2.kz" in the table
    ],
)
def test_operator_of_imsi(imsi: str, expected: tuple[str, str]) -> None:
    assert operator_of_imsi(imsi) == expected


@pytest.mark.parametrize("imsi", ["", "12345", "25002abc", "2500212345678901234"])
def test_operator_of_an_unusable_imsi(imsi: str) -> None:
    assert operator_of_imsi(imsi) is None


# --- names for a SIM: overrides in order -------------------------------------------------------


def test_defaults_from_number_and_imsi() -> None:
    names = names_for_sim(
        number="79161234567", imsi="250021234567890", iccid=ICCID, config=make_config()
    )
    assert names == SimNames(country="russia", operator="megafon", mccmnc="25002")


def test_countries_and_operators_tables_override_the_defaults() -> None:
    config = make_config(countries={"RU": "rossiya"}, operators={"25002": "mega"})
    names = names_for_sim(number="79161234567", imsi="250021234567890", iccid=ICCID, config=config)
    assert names == SimNames(country="rossiya", operator="mega", mccmnc="25002")


def test_sim_entry_overrides_everything() -> None:
    config = make_config(
        countries={"DE": "deutschland"},
        operators={"26202": "vf"},
        sims={ICCID: {"country": "germany", "operator": "vodafone"}},
    )
    names = names_for_sim(
        number="4915112345678", imsi="262021234567890", iccid=ICCID, config=config
    )
    assert names == SimNames(country="germany", operator="vodafone", mccmnc="26202")
    other = names_for_sim(
        number="4915112345678", imsi="262021234567890", iccid=OTHER_ICCID, config=config
    )
    assert other == SimNames(country="deutschland", operator="vf", mccmnc="26202")


def test_sim_entry_may_override_only_one_name() -> None:
    config = make_config(sims={ICCID: {"operator": "fonic"}})
    names = names_for_sim(
        number="4917612345678", imsi="262071234567890", iccid=ICCID, config=config
    )
    assert names == SimNames(country="germany", operator="fonic", mccmnc="26207")


def test_operator_without_an_imsi_is_unknown() -> None:
    names = names_for_sim(number="380501234567", imsi=None, iccid=ICCID, config=make_config())
    assert names == SimNames(country="ukraine", operator=UNKNOWN, mccmnc=None)


def test_operators_table_serves_a_network_the_operator_table_lacks() -> None:
    imsi = "111121234567890"  # an MCC no operator table knows
    assert operator_of_imsi(imsi) is None
    for key in ("11112", "111121"):  # a 2- or a 3-digit MNC
        config = make_config(operators={key: "testnet"})
        names = names_for_sim(number="4915112345678", imsi=imsi, iccid=ICCID, config=config)
        assert names == SimNames(country="germany", operator="testnet", mccmnc=None)


def test_known_network_without_a_name_is_unknown() -> None:
    assert operator_of_imsi("555121234567890") == ("55512", UNKNOWN)


def test_country_falls_back_to_the_imsi_home_network() -> None:
    names = names_for_sim(number="999", imsi="250021234567890", iccid=ICCID, config=make_config())
    assert names.country == "russia"


def test_country_that_cannot_be_told_is_unknown() -> None:
    names = names_for_sim(number="999", imsi=None, iccid=ICCID, config=make_config())
    assert names == SimNames(country=UNKNOWN, operator=UNKNOWN, mccmnc=None)


def test_names_are_plain_frozen_data() -> None:
    names = SimNames(country="germany", operator="o2", mccmnc="26203")
    with pytest.raises(AttributeError):
        names.country = "france"  # type: ignore[misc]
