"""The number ladder through the driver: CNUM, ON phonebook, configuration, USSD (and by SMS)."""

from __future__ import annotations

import pytest

from drivers.events import ModemState
from drivers.modem.number import normalise_number
from drivers.modem.settings import UssdRule
from drivers.simulator import E3372, EC25, SIM800, Profile, make_sim
from tests.drivers.modem_harness import ModemHarness, fast_settings

PROFILES = [SIM800, EC25, E3372]
GERMAN_IMSI = "262020000000041"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
async def test_ladder_rungs_across_sim_swaps(profile: Profile) -> None:
    """Phonebook, then (SIM swapped) configuration, then (swapped again) USSD."""
    in_phonebook = make_sim(41, number="4915100000041", number_in_cnum=False)
    in_phonebook.number_in_phonebook = True
    configured = make_sim(42, number=None)
    by_ussd = make_sim(43, number="4915100000043", number_in_cnum=False)
    by_ussd.ussd["*135#"] = "Ihre Rufnummer lautet +49 151 00000043. Danke!"
    settings = fast_settings(
        known_number=lambda iccid: "015100000042" if iccid == configured.iccid else None,
        ussd={"26202": UssdRule("*135#", r"Rufnummer lautet ([+\d ]+\d)")},
    )
    async with ModemHarness(profile, in_phonebook, settings) as h:
        status = await h.wait_ready()
        assert (status.number, status.number_source) == ("4915100000041", "phonebook")

        h.modem.remove_sim()
        await h.wait_state(ModemState.NO_SIM)
        assert not h.status.sellable
        h.modem.insert_sim(configured)
        await h.wait_until(lambda: h.status.iccid == configured.iccid and h.status.sellable)
        assert (h.status.number, h.status.number_source) == ("4915100000042", "config")

        h.modem.remove_sim()
        await h.wait_state(ModemState.NO_SIM)
        h.modem.insert_sim(by_ussd)
        await h.wait_until(lambda: h.status.iccid == by_ussd.iccid and h.status.sellable)
        assert (h.status.number, h.status.number_source) == ("4915100000043", "ussd")


async def test_number_unknown_keeps_sim_unsellable_but_sweeps() -> None:
    sim = make_sim(44, number=None)
    async with ModemHarness(SIM800, sim) as h:
        await h.wait_until(lambda: h.status.last_sweep_at is not None, what="first sweep")
        assert h.status.state is ModemState.STARTING and not h.status.sellable
        assert "number" in (h.status.detail or "")
        h.modem.deliver_sms("+4917612345678", "still received")
        await h.wait_texts(["still received"])


async def test_ussd_answered_by_sms() -> None:
    sim = make_sim(45, number=None)
    settings = fast_settings(
        ussd={"26202": UssdRule("*111*0887#", r"number is (\d+)", reply_by_sms=True)}
    )
    async with ModemHarness(EC25, sim, settings) as h:
        await h.wait_until(lambda: b"CUSD=1" in h.modem.transcript.received(), what="USSD sent")
        h.modem.deliver_sms("MTS", "Your number is 4915100000045")
        status = await h.wait_ready()
        assert (status.number, status.number_source) == ("4915100000045", "ussd")
        assert h.events.texts() == ["Your number is 4915100000045"]  # still handed over


@pytest.mark.parametrize(
    ("raw", "imsi", "expected"),
    [
        ("+4915112345678", GERMAN_IMSI, "4915112345678"),
        ("004915112345678", GERMAN_IMSI, "4915112345678"),
        ("015112345678", GERMAN_IMSI, "4915112345678"),
        ("4915112345678", GERMAN_IMSI, "4915112345678"),
        ("89161234567", "250010000000001", "79161234567"),
        ("+7 916 123-45-67", "250010000000001", "79161234567"),
        ("12345", GERMAN_IMSI, None),
        ("015112345678", None, None),  # national form, country unknown: no guessing
        ("4915112345678", None, "4915112345678"),
        ("not a number", GERMAN_IMSI, None),
    ],
)
def test_normalise_number(raw: str, imsi: str | None, expected: str | None) -> None:
    assert normalise_number(raw, imsi) == expected
