"""The seam between a modem driver and whoever runs it: the `Driver` protocol of drivers.events."""

from __future__ import annotations

from drivers.events import Driver
from drivers.modem.driver import ModemDriver
from drivers.simulator import SIM800, make_sim
from tests.drivers.modem_harness import ModemHarness, Recorder, fast_settings


def test_modem_driver_is_a_driver() -> None:
    driver = ModemDriver("/dev/null-modem", Recorder(lambda: None), fast_settings())
    assert isinstance(driver, Driver)


async def test_set_trace_switches_the_byte_hook_while_the_driver_runs() -> None:
    first: list[tuple[str, bytes]] = []
    second: list[tuple[str, bytes]] = []
    async with ModemHarness(SIM800, make_sim(31, number="4915100000031")) as h:
        await h.wait_ready()
        assert h.driver is not None
        h.driver.set_trace(lambda way, data: (first.append((way, data)), h._poke()))
        await h.wait_until(lambda: ("out", b"AT\r") in first, what="a keep-alive in the trace")
        assert any(way == "in" and b"OK" in data for way, data in first)
        h.driver.set_trace(None)
        seen_before_switch = list(first)
        h.driver.set_trace(lambda way, data: (second.append((way, data)), h._poke()))
        await h.wait_until(lambda: ("out", b"AT\r") in second, what="a keep-alive in the trace")
    assert first == seen_before_switch
