"""The field failures of spec §3 that a simulator can express, each ending with no SMS lost or
duplicated (injected texts == handed-over texts) and the modem READY again."""

from __future__ import annotations

import logging
from dataclasses import replace

import pytest

from drivers.events import ModemState
from drivers.simulator import E3372, EC25, SIM800, Profile, make_sim
from tests.drivers.modem_harness import FAST_TIMINGS, ModemHarness, fast_settings

SENDER = "+4917612345678"


def sim_card(**fields: object):
    return make_sim(51, number="4915100000051", **fields)  # type: ignore[arg-type]


async def test_f2_cmti_inside_a_reply() -> None:
    async with ModemHarness(EC25, sim_card()) as h:
        await h.wait_ready()
        h.modem.deliver_sms(SENDER, "hidden in a reply", inside_next_reply=True)
        await h.wait_texts(["hidden in a reply"])
        await h.wait_ready()


async def test_f3_garbage_and_noise_do_not_stop_the_reader() -> None:
    async with ModemHarness(SIM800, sim_card()) as h:
        await h.wait_ready()
        h.modem.noise_every = 2
        h.modem.send_garbage(b"\xff\xfe\x80\x00garbage \xc3\x28\r\n")
        h.modem.send_garbage(b"\r\n\x9c\x9d junk in a reply\r\n", mid_reply=True)
        h.modem.deliver_sms(SENDER, "after the garbage")
        h.modem.send_garbage(b"\xff\xff\xff")
        h.modem.deliver_sms(SENDER, "Ещё одно сообщение")
        await h.wait_texts(["after the garbage", "Ещё одно сообщение"])
        await h.wait_ready()


async def test_f9_routed_and_stored_duplicate_handed_over_once() -> None:
    async with ModemHarness(E3372, sim_card()) as h:
        await h.wait_ready()
        h.modem.duplicate_routed = True  # E303 style: +CMT and +CMTI for the same SMS
        h.modem.deliver_sms(SENDER, "seen twice by the modem")
        await h.wait_texts(["seen twice by the modem"])
        await h.wait_until(lambda: h.stored_count() == 0, what="stored copy deleted")
        assert len(h.events.received) == 1


async def test_f9_failed_delete_is_not_handed_over_again() -> None:
    """The modem hangs right after the hand-over: the delete fails, the re-read is suppressed."""
    async with ModemHarness(SIM800, sim_card()) as h:
        await h.wait_ready()

        def hang_once(_sms: object) -> None:
            h.events.on_received = None
            h.modem.hang(until_reboot=False, recover_after=1.2)

        h.events.on_received = hang_once
        h.modem.deliver_sms(SENDER, "delete will fail")
        await h.wait_texts(["delete will fail"])
        await h.wait_until(lambda: h.stored_count() == 0, timeout=15, what="deleted at last")
        await h.wait_ready()
        assert len(h.events.received) == 1


@pytest.mark.parametrize("profile", [SIM800, E3372], ids=lambda p: p.name)
async def test_f12_hinted_index_reads_empty_then_sweep_reconciles(profile: Profile) -> None:
    """SIM800 answers an empty slot with a bare OK, the 0-based E3372 with CMS 321."""
    async with ModemHarness(profile, sim_card()) as h:
        await h.wait_ready()
        h.modem.fail_hinted_reads = True
        h.modem.deliver_sms(SENDER, "first read fails")
        h.modem.deliver_sms(SENDER, "second too")
        await h.wait_texts(["first read fails", "second too"])
        indexes = {sms.index for sms in h.events.received}
        assert indexes == ({0, 1} if profile.index_base == 0 else {1, 2})


async def test_f13_cpms_count_lags_behind_cmti() -> None:
    async with ModemHarness(E3372, sim_card()) as h:
        await h.wait_ready()
        h.modem.cpms_lag_seconds = 3600.0  # +CPMS? never counts the new SMS
        h.modem.fail_hinted_reads = True  # and the hint does not help either
        h.modem.deliver_sms(SENDER, "not counted yet")
        await h.wait_texts(["not counted yet"])


async def test_f14_full_storage_messages_held_by_network_arrive_after_deletes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    texts = [f"queued message {n:02d}" for n in range(34)]

    def fill(modem) -> None:
        for text in texts:
            modem.deliver_sms(SENDER, text)
        assert modem.held_sms == 4  # SIM800 keeps 30 on the SIM; the network holds the rest

    caplog.set_level(logging.WARNING, logger="drivers.modem.sms")
    async with ModemHarness(SIM800, sim_card(), before_start=fill) as h:
        await h.wait_texts(texts, timeout=20)
        await h.wait_ready()
        assert h.modem.held_sms == 0
        await h.wait_until(lambda: h.stored_count() == 0, what="storage emptied")
    alarms = [r.getMessage() for r in caplog.records if "event=storage_alarm" in r.getMessage()]
    assert alarms and "used=30 total=30" in alarms[0]


async def test_f15_multipart_interleaved_out_of_order_parts_handed_over() -> None:
    long_a = "Первая часть длинного сообщения. " * 5
    long_b = "Second sender, another long text with the same reference. " * 4
    async with ModemHarness(EC25, sim_card()) as h:
        await h.wait_ready()
        h.modem.deliver_sms(SENDER, long_a, ref=7, order=[1])
        h.modem.deliver_sms("+4917699999999", long_b, ref=7, ref16=True, order=[1, 0])
        h.modem.deliver_sms(SENDER, long_a, ref=7, order=[2, 0])
        await h.wait_texts([long_a, long_b])
        assert all(sms.deliver and sms.deliver.concat for sms in h.events.received)


async def test_f19_busy_sim_after_boot_with_pin() -> None:
    def busy(modem) -> None:
        modem.set_sim_busy(4)

    settings = fast_settings(pin="4321")
    async with ModemHarness(SIM800, sim_card(pin="4321"), settings, before_start=busy) as h:
        await h.wait_ready()
        assert h.modem.transcript.received().count(b'AT+CPIN="4321"') == 1


async def test_f19_wrong_pin_is_tried_once_only() -> None:
    settings = fast_settings(pin="0000", timings=replace(FAST_TIMINGS, sim_retry_seconds=0.3))
    async with ModemHarness(SIM800, sim_card(pin="4321"), settings) as h:
        status = await h.wait_state(ModemState.NO_SIM)
        assert "PIN" in (status.detail or "")
        await h.wait_until(
            lambda: h.modem.transcript.received().count(b"AT+CPIN?") >= 4,
            what="the SIM re-checked a few times",
        )
        assert h.modem.transcript.received().count(b'AT+CPIN="') == 1
        assert h.modem.pin_attempts_left == 2


async def test_f20_sms_done_between_command_and_reply() -> None:
    async with ModemHarness(EC25, sim_card()) as h:
        await h.wait_ready()
        before = h.modem.transcript.received().count(b"AT+CNMI=2,1,0,0,0")
        h.modem.inject_into_next_reply("+QIND: SMS DONE")
        h.modem.deliver_sms(SENDER, "around SMS DONE")
        await h.wait_until(
            lambda: h.modem.transcript.received().count(b"AT+CNMI=2,1,0,0,0") > before,
            what="settings re-asserted after SMS DONE",
        )
        await h.wait_texts(["around SMS DONE"])
        await h.wait_ready()


async def test_f23_spontaneous_reboot_reinit_and_sweep() -> None:
    async with ModemHarness(E3372, sim_card()) as h:
        await h.wait_ready()
        await h.modem.reboot()  # CNMI back to the profile default 2,1,0,2,0; ^CURC back on
        h.modem.deliver_sms(SENDER, "right after the reboot")
        await h.wait_until(lambda: h.modem.settings.cnmi == [2, 1, 0, 0, 0], what="CNMI again")
        await h.wait_texts(["right after the reboot"])
        await h.wait_ready()
        assert ModemState.STARTING in h.events.states()[2:]  # it went not-ready in between


async def test_f23_settings_lost_silently_are_reasserted() -> None:
    settings = fast_settings(timings=replace(FAST_TIMINGS, reassert_seconds=0.5))
    async with ModemHarness(SIM800, sim_card(), settings) as h:
        await h.wait_ready()
        h.modem.settings.cnmi = [0, 0, 0, 0, 0]
        h.modem.settings.cmgf = 1
        h.modem.deliver_sms(SENDER, "no indication for this one")
        await h.wait_texts(["no indication for this one"])
        await h.wait_until(
            lambda: h.modem.settings.cnmi == [2, 1, 0, 0, 0] and h.modem.settings.cmgf == 0,
            what="settings re-asserted",
        )


async def test_f24_under_voltage_power_down() -> None:
    async with ModemHarness(SIM800, sim_card()) as h:
        await h.wait_ready()
        h.modem.under_voltage(power_down=True)
        h.modem.deliver_sms(SENDER, "sent during the brown-out")
        await h.wait_texts(["sent during the brown-out"])
        await h.wait_ready()
        assert ModemState.STARTING in h.events.states()[2:]


async def test_f25_late_replies_beyond_the_timeout() -> None:
    async with ModemHarness(SIM800, sim_card()) as h:
        await h.wait_ready()
        h.modem.reply_delay = 1.5  # longer than the driver's 1 s command timeout
        h.modem.deliver_sms(SENDER, "while replies are late")
        await h.wait_state(ModemState.RECOVERING)
        h.modem.reply_delay = 0.0
        await h.wait_texts(["while replies are late"], timeout=20)
        await h.wait_ready(timeout=20)


async def test_pin_state_without_its_prefix_is_read() -> None:
    """`AT+CPIN?` answered `SIM PIN` / `READY` without `+CPIN:`: the PIN is entered once."""

    def bare(modem) -> None:
        modem.cpin_without_prefix = True

    settings = fast_settings(pin="4321")
    async with ModemHarness(SIM800, sim_card(pin="4321"), settings, before_start=bare) as h:
        await h.wait_ready()
        assert h.modem.transcript.received().count(b'AT+CPIN="4321"') == 1
