"""Registration URCs in the shapes real modems send them reach the driver's status as they mean.

The simulator reports the network's real state in its own format; the test then writes the
lines other modems send (with `<n>` in a URC, trailing fields, a RAC) and checks the driver's
registration word after each one. Polls are kept out of the way so only the URCs count.
"""

from __future__ import annotations

from drivers.events import ModemStatus
from drivers.simulator import EC25, SimState, make_sim
from tests.drivers.modem_harness import ModemHarness, fast_settings

#: No registration poll during the test: what the status says comes from the URCs alone.
NO_POLLS = fast_settings(signal_poll_seconds=600.0)


async def _wait_registration(h: ModemHarness, word: str, since: int) -> ModemStatus:
    """The first status reported after `since` statuses whose registration is `word`."""

    def reported() -> ModemStatus | None:
        later = h.events.statuses[since:]
        return next((status for status in later if status.registration == word), None)

    await h.wait_until(lambda: reported() is not None, what=f"registration {word}")
    status = reported()
    assert status is not None
    return status


async def test_urcs_with_n_and_extra_fields_are_read_by_their_shape() -> None:
    async with ModemHarness(EC25, make_sim(71, number="4915100000071"), NO_POLLS) as h:
        await h.wait_ready()
        h.modem.set_registration(SimState.NOT_REGISTERED)  # CREG/CGREG/CEREG all say 2
        await _wait_registration(h, "searching", 0)

        # Altair LTE puts <n> into its URC: n=2, stat=1 (home).
        mark = len(h.events.statuses)
        h.modem.emit_urc("+CEREG: 2, 1, 0001, 00000100, 7")
        status = await _wait_registration(h, "home", mark)
        assert status.sellable

        # The same with stat=2: searching, not "registered" read from the <n> field.
        mark = len(h.events.statuses)
        h.modem.emit_urc("+CEREG: 1, 2, 0001, 00000100, 7")
        status = await _wait_registration(h, "searching", mark)
        assert not status.sellable

        # Novatel's RAC between TAC and cell id, then Samsung's trailing fields.
        mark = len(h.events.statuses)
        h.modem.emit_urc("+CEREG: 5, 1F00, 20 ,79D903 ,7")
        await _wait_registration(h, "roaming", mark)
        mark = len(h.events.statuses)
        h.modem.emit_urc("+CEREG: 2")
        await _wait_registration(h, "searching", mark)
        mark = len(h.events.statuses)
        h.modem.emit_urc("+CREG: 2,1,000B,2816, B, C2816")
        await _wait_registration(h, "home", mark)
