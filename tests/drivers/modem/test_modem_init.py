"""Driver bring-up over the simulator, for every profile: init, identity, settings, READY."""

from __future__ import annotations

import pytest

from drivers.events import ModemState
from drivers.simulator import E3372, EC25, SIM800, Profile, make_sim
from tests.drivers.modem_harness import ModemHarness

PROFILES = [SIM800, EC25, E3372]
NUMBER = "4915100000021"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
async def test_bring_up_reaches_ready_with_identity(profile: Profile) -> None:
    sim = make_sim(21, number=NUMBER)
    async with ModemHarness(profile, sim) as h:
        status = await h.wait_ready()
        assert status.sellable
        assert status.iccid == sim.iccid
        assert status.imsi == sim.imsi
        assert status.mccmnc == "26202"
        assert status.imei == profile.imei
        assert status.model == profile.model
        assert status.number == NUMBER and status.number_source == "cnum"
        assert status.registration == "home"
        assert status.operator_code == "26202"
        assert status.signal_rssi == 20
        assert status.last_sweep_at is not None
        assert h.modem.settings.cmgf == 0
        assert h.modem.settings.cnmi == [2, 1, 0, 0, 0]
        assert h.modem.settings.creg == 2
        expected_storage = "ME" if "ME" in profile.storages else "SM"
        assert h.modem.settings.memories[1:] == [expected_storage] * 2
        assert set(status.storage) >= {expected_storage}
        assert h.events.states()[0] is ModemState.STARTING
