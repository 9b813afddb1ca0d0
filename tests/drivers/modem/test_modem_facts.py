"""The driver's facts and what they report, driven as pure functions: no modem, no pty."""

from __future__ import annotations

import dataclasses

import pytest

from drivers.events import ModemState
from drivers.modem import facts
from drivers.modem.facts import ModemFacts, Phase
from drivers.modem.init import ModemIdentity, SmsSetup
from drivers.modem.number import NumberFound, SmsNumberWait
from drivers.modem.profiles import GENERIC
from drivers.modem.sim import SimCheck, SimIdentity

PORT = "/dev/simfarm/1-1.4-if02"
SIM = SimIdentity("8949000000000000001", "ccid", True, "262011234567890", "26201")
OTHER_SIM = SimIdentity("8949000000000000019", "ccid", True, "262017654321098", "26201")
NUMBER = NumberFound("491701234567", "cnum")
SETUP = SmsSetup(primary="SM", swept=("SM", "ME"), cnmi="2,1,0,0,0", cnma_needed=False)


def ready_facts() -> ModemFacts:
    """A modem that has everything READY needs."""
    return dataclasses.replace(
        facts.initial_facts(PORT),
        phase=Phase.RUNNING,
        identity=ModemIdentity("SIMCOM", "SIM800", "R1", "861234567890123", GENERIC),
        sim_check=SimCheck(True),
        sim=SIM,
        setup=SETUP,
        swept=True,
        registration="home",
        operator="26201",
        rssi=17,
        number=NUMBER,
        number_iccid=SIM.iccid,
        last_sweep_at=1000.0,
    )


def test_initial_facts_report_starting_with_nothing_known() -> None:
    status = facts.status_of(facts.initial_facts(PORT))
    assert status.state is ModemState.STARTING
    assert status.detail is None
    assert (status.iccid, status.number, status.timeouts, status.recoveries) == (None, None, 0, {})


def test_worker_started_without_sim_answer_is_initialising() -> None:
    state = facts.state_of(facts.worker_started(facts.initial_facts(PORT)))
    assert state == (ModemState.STARTING, "initialising")


def test_everything_known_is_ready_and_sellable() -> None:
    status = facts.status_of(ready_facts())
    assert status.state is ModemState.READY
    assert status.detail is None
    assert status.sellable
    assert (status.iccid, status.number, status.number_source) == (
        SIM.iccid,
        "491701234567",
        "cnum",
    )
    assert (status.manufacturer, status.operator_code, status.signal_rssi) == (
        "SIMCOM",
        "26201",
        17,
    )


def test_sim_missing_is_no_sim_with_its_words() -> None:
    missing = dataclasses.replace(ready_facts(), sim_check=SimCheck(False, "no SIM inserted"))
    assert facts.state_of(missing) == (ModemState.NO_SIM, "no SIM inserted")


def test_sim_identity_unread_is_starting() -> None:
    unread = dataclasses.replace(ready_facts(), sim=None)
    assert facts.state_of(unread) == (ModemState.STARTING, "reading the SIM's identity")
    assert not unread.sim_ready


@pytest.mark.parametrize(
    ("registration", "word"), [("searching", "searching"), ("denied", "denied"), (None, "unknown")]
)
def test_not_registered_is_searching(registration: str | None, word: str) -> None:
    searching = dataclasses.replace(ready_facts(), registration=registration)
    assert facts.state_of(searching) == (
        ModemState.SEARCHING,
        f"not registered on a network ({word})",
    )


def test_roaming_counts_as_registered() -> None:
    assert facts.state_of(dataclasses.replace(ready_facts(), registration="roaming"))[0] is (
        ModemState.READY
    )


def test_not_swept_waits_for_the_first_sweep() -> None:
    unswept = dataclasses.replace(ready_facts(), swept=False)
    assert facts.state_of(unswept) == (ModemState.STARTING, "waiting for the first storage sweep")


def test_number_unknown_tells_how_to_configure_it() -> None:
    unknown = dataclasses.replace(ready_facts(), number=None)
    state, detail = facts.state_of(unknown)
    assert state is ModemState.STARTING
    assert detail == facts.NUMBER_UNKNOWN_DETAIL
    assert not facts.status_of(unknown).sellable


def test_restart_seen_is_starting_with_the_urc_in_the_detail() -> None:
    restarted = facts.restart_urc(ready_facts(), "RDY", at=5.0)
    assert restarted.restart_seen_at == 5.0
    assert not restarted.swept
    assert facts.state_of(restarted) == (
        ModemState.STARTING,
        "modem restarted (RDY): re-initialising",
    )


def test_restart_seen_while_recovering_keeps_the_recovery_words() -> None:
    recovering = facts.recovering(ready_facts(), "modem stopped answering properly (x); recovering")
    restarted = facts.restart_urc(recovering, "RDY", at=5.0)
    assert restarted.restart_seen_at == 5.0
    assert facts.state_of(restarted) == (ModemState.RECOVERING, recovering.detail)


def test_restart_seen_alone_still_blocks_ready() -> None:
    seen = dataclasses.replace(ready_facts(), restart_seen_at=3.0)
    assert facts.state_of(seen) == (ModemState.STARTING, "waiting for the first storage sweep")


def test_sim_lost_is_no_sim_and_asks_for_a_reinit() -> None:
    lost = facts.sim_lost(ready_facts(), "NOT INSERTED", at=7.0)
    assert facts.state_of(lost) == (ModemState.NO_SIM, "the SIM went away (+CPIN: NOT INSERTED)")
    assert lost.restart_seen_at == 7.0
    assert not lost.swept


def test_held_reports_starting_whatever_the_sim() -> None:
    held = facts.held(ready_facts())
    assert held.phase is Phase.HELD
    assert not held.swept
    assert facts.state_of(held) == (ModemState.STARTING, facts.HELD_DETAIL)


def test_recovering_dead_and_back() -> None:
    recovering = facts.recovering(ready_facts(), "stopped answering; recovering")
    assert facts.state_of(recovering) == (ModemState.RECOVERING, "stopped answering; recovering")
    assert not recovering.swept
    dead = facts.dead(recovering, "does not recover: check its power supply")
    assert facts.state_of(dead) == (ModemState.DEAD, "does not recover: check its power supply")
    retrying = facts.recovering(dead)
    assert facts.state_of(retrying) == (ModemState.RECOVERING, dead.detail)
    back = facts.worker_started(retrying)
    # the sweep since the recovery is still missing; the last words stay until one succeeds
    assert facts.state_of(back) == (ModemState.STARTING, dead.detail)
    assert facts.state_of(facts.sweep_done(back, at=2000.0)) == (ModemState.READY, None)


def test_port_gone_is_gone_whatever_else_is_known() -> None:
    gone = facts.gone(dataclasses.replace(ready_facts(), port_lost=True), "the port went away: EIO")
    assert facts.state_of(gone) == (
        ModemState.GONE,
        "the port went away: EIO; the farm retries when the port is back",
    )


def test_bring_up_forgets_setup_sweep_registration_and_a_ready_sim() -> None:
    began = facts.bring_up_began(facts.restart_urc(ready_facts(), "RDY", at=1.0))
    assert (began.setup, began.swept, began.registration, began.restart_seen_at) == (
        None,
        False,
        None,
        None,
    )
    assert began.sim_check is None
    assert began.sim == SIM and began.number == NUMBER  # kept until the SIM is read again


def test_bring_up_keeps_a_failed_sim_check() -> None:
    failed = dataclasses.replace(ready_facts(), sim_check=SimCheck(False, "SIM PIN required"))
    assert facts.bring_up_began(failed).sim_check == SimCheck(False, "SIM PIN required")


def test_same_sim_keeps_its_number_another_forgets_it() -> None:
    waiting = dataclasses.replace(ready_facts(), number_wait=SmsNumberWait(r"\d+", 9.0))
    same = facts.sim_identified(waiting, SIM)
    assert same.number == NUMBER and same.number_wait is not None
    other = facts.sim_identified(waiting, OTHER_SIM)
    assert (other.sim, other.number, other.number_wait) == (OTHER_SIM, None, None)


def test_number_found_belongs_to_the_sim_in_the_modem() -> None:
    waiting = dataclasses.replace(
        ready_facts(), number=None, number_iccid=None, number_wait=SmsNumberWait(r"\d+", 9.0)
    )
    found = facts.number_found(waiting, NumberFound("491709999999", "ussd"))
    assert (found.number_iccid, found.number_wait) == (SIM.iccid, None)
    assert facts.status_of(found).number_source == "ussd"


def test_counters_and_storage_are_reported_as_copies() -> None:
    counted = dataclasses.replace(
        ready_facts(),
        storage={"SM": (2, 30)},
        last_sms_at=1234.5,
        timeouts=4,
        recoveries={"escape": 1},
    )
    status = facts.status_of(counted)
    assert (status.timeouts, status.recoveries, status.storage) == (
        4,
        {"escape": 1},
        {"SM": (2, 30)},
    )
    assert status.last_sms_at == 1234.5
    status.recoveries["reinit"] = 1
    assert counted.recoveries == {"escape": 1}


def test_counters_have_no_default() -> None:
    with pytest.raises(TypeError):
        ModemFacts(port=PORT)  # type: ignore[call-arg]


def test_restart_settles_after_the_boot_burst() -> None:
    assert not facts.restart_settled(ready_facts(), now=100.0, settle_seconds=2.0)
    restarted = facts.restart_urc(ready_facts(), "RDY", at=10.0)
    assert not facts.restart_settled(restarted, now=11.9, settle_seconds=2.0)
    assert facts.restart_settled(restarted, now=12.0, settle_seconds=2.0)
    assert not facts.restart_settled(facts.bring_up_began(restarted), now=50.0, settle_seconds=2.0)
