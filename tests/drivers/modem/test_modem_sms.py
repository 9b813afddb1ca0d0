"""SMS receive through the driver for every profile: hints, sweep, persist-then-delete, kinds."""

from __future__ import annotations

import pytest

from drivers.simulator import E3372, EC25, SIM800, MessageStat, Profile, make_sim
from tests.drivers.modem_harness import ModemHarness

PROFILES = [SIM800, EC25, E3372]
SENDER = "+4917612345678"
LONG_TEXT = "Your verification code is 481516. " * 11  # three GSM-7 parts


def sim_card():
    return make_sim(31, number="4915100000031")


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
async def test_single_ucs2_emoji_alphanumeric_and_multipart(profile: Profile) -> None:
    async with ModemHarness(profile, sim_card()) as h:
        await h.wait_ready()
        h.modem.deliver_sms(SENDER, "Code 12345")
        h.modem.deliver_sms(SENDER, "Код подтверждения: 7788")
        h.modem.deliver_sms("+79161234567", "ok 👍 done")
        h.modem.deliver_sms("MyBank", "Login code 4242")
        h.modem.deliver_sms(SENDER, LONG_TEXT, order=[2, 0, 1])
        expected = [
            "Code 12345",
            "Код подтверждения: 7788",
            "ok 👍 done",
            "Login code 4242",
            LONG_TEXT,
        ]
        await h.wait_texts(expected)
        await h.wait_until(lambda: h.stored_count() == 0, what="storage emptied")
        senders = {sms.deliver.sender for sms in h.events.received if sms.deliver}
        assert "MyBank" in senders
        parts = [sms for sms in h.events.received if sms.deliver and sms.deliver.concat]
        assert [p.deliver.concat.seq for p in parts if p.deliver] == [3, 1, 2]
        assert all(sms.iccid == h.modem.sim.iccid for sms in h.events.received)
        assert all(sms.storage is not None and sms.index is not None for sms in h.events.received)
        assert h.status.state.value == "ready"


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
async def test_messages_stored_before_start_are_swept(profile: Profile) -> None:
    def preload(modem) -> None:
        modem.deliver_sms(SENDER, "waiting one")
        modem.deliver_sms(SENDER, "waiting two", class2=True)  # class 2 lands on the SIM

    async with ModemHarness(profile, sim_card(), before_start=preload) as h:
        await h.wait_ready()
        await h.wait_texts(["waiting one", "waiting two"])
        await h.wait_until(lambda: h.stored_count() == 0, what="storage emptied")


async def test_sms_without_hints_found_by_sweep_both_memories() -> None:
    async with ModemHarness(EC25, sim_card()) as h:
        await h.wait_ready()
        h.modem.settings.cnmi = [0, 0, 0, 0, 0]  # another program switched indications off
        h.modem.deliver_sms(SENDER, "silent ME")
        h.modem.deliver_sms(SENDER, "silent SM", storage="SM")
        await h.wait_texts(["silent ME", "silent SM"])
        await h.wait_until(lambda: h.stored_count() == 0, what="storage emptied")


async def test_persist_failure_keeps_sms_on_modem_until_handed_over() -> None:
    """F10: events.sms_received raising leaves the SMS on the modem; a later sweep retries."""
    async with ModemHarness(SIM800, sim_card()) as h:
        await h.wait_ready()
        h.events.fail_next = 2
        h.modem.deliver_sms(SENDER, "must survive")
        await h.wait_until(lambda: len(h.events.failed) == 1, what="first persist failure")
        assert h.stored_count() == 1  # not deleted after a failed hand-over
        await h.wait_texts(["must survive"])
        await h.wait_until(lambda: h.stored_count() == 0, what="deleted after persisting")
        assert len(h.events.received) == 1


async def test_undecodable_status_report_and_submit_are_handed_over_raw() -> None:
    """F10: what does not decode as an SMS-DELIVER is still handed over, never dropped."""
    broken = "07919471101920F0" + "040B919471162143F50000"  # a DELIVER cut short
    report = "07919471101920000606" + "0B919471162143F5" + "621012914500806210129145008000"
    submit = "0011000B919471162143F50000AA05E8329BFD06"
    async with ModemHarness(SIM800, sim_card()) as h:
        await h.wait_ready()
        store = h.modem.storage("SM")
        loop_time = 0.0
        store.store(broken, MessageStat.REC_UNREAD, loop_time)
        store.store(report, MessageStat.REC_UNREAD, loop_time)
        store.store(submit, MessageStat.STO_UNSENT, loop_time)
        await h.wait_until(lambda: len(h.events.received) == 3, what="three raw hand-overs")
        await h.wait_until(lambda: h.stored_count() == 0, what="deleted after persisting")
        errors = sorted(sms.decode_error or "" for sms in h.events.received)
        assert all(sms.deliver is None for sms in h.events.received)
        assert any("undecodable" in e for e in errors), errors
        assert any("SMS-SUBMIT" in e for e in errors), errors
        assert {sms.pdu for sms in h.events.received} >= {broken}


async def test_routed_cmt_is_persisted_and_acknowledged() -> None:
    """Routing mode switched on behind our back: +CMT is persisted, +CNMA sent, and alerted."""
    async with ModemHarness(EC25, sim_card()) as h:
        await h.wait_ready()
        h.modem.settings.csms = 1
        h.modem.settings.cnmi = [2, 2, 0, 0, 0]
        h.modem.deliver_sms(SENDER, "routed one")
        await h.wait_texts(["routed one"])
        routed = h.events.received[0]
        assert routed.storage is None and routed.index is None


@pytest.mark.parametrize("profile", [SIM800, E3372], ids=lambda p: p.name)
async def test_pdu_on_the_header_line_is_read_by_hint_and_by_sweep(profile: Profile) -> None:
    """`+CMGR: 1,,147 0791…` (and the same in `+CMGL`): the SMS is handed over and deleted."""

    def preload(modem) -> None:
        modem.pdu_on_header_line = True
        modem.deliver_sms(SENDER, "waiting for the sweep")

    async with ModemHarness(profile, sim_card(), before_start=preload) as h:
        await h.wait_ready()
        await h.wait_texts(["waiting for the sweep"])
        h.modem.deliver_sms(SENDER, "announced by +CMTI")
        await h.wait_texts(["waiting for the sweep", "announced by +CMTI"])
        await h.wait_until(lambda: h.stored_count() == 0, what="storage emptied")
