"""The whole job end to end: simulated modems on ptys, the real driver, pool, API and pushes."""

from __future__ import annotations

import asyncio

import pytest

from drivers.simulator import EC25, SimulatedFarm, SimulatedModem, make_sim
from tests.gateway.farm_harness import (
    EVENTUALLY_SECONDS,
    mixed_farm,
    running_daemon,
    started,
)

pytest.importorskip("drivers.modem.driver", reason="the modem driver is not built yet")

MULTIPART_UCS2 = "Ваш код для входа: 739451. Не сообщайте его никому! 🔐🙂 " * 2


def operator_map(report: dict, country: str) -> dict:
    return next(c["operatorMap"] for c in report["countryList"] if c["country"] == country)


def count(report: dict, country: str, operator: str, service: str) -> int:
    for entry in report["countryList"]:
        if entry["country"] == country:
            return entry["operatorMap"].get(operator, {}).get(service, 0)
    return 0


async def test_sixteen_modems_serve_the_whole_loop(tmp_path) -> None:
    sims = mixed_farm(16)
    async with started(sims), running_daemon(tmp_path / "simfarm.db", sims) as farm:
        numbers = {m.sim.number for m in sims}
        await farm.wait_live(numbers)
        report = await farm.action("GET_SERVICES")
        germany, russia = operator_map(report, "germany"), operator_map(report, "russia")
        assert germany["any"]["vk"] == 8 and russia["any"]["vk"] == 8
        assert germany["vodafone"]["wa"] == 4 and germany["o2"]["wa"] == 4
        assert russia["mts"]["tg"] == 4 and russia["megafon"]["tg"] == 4

        issued = await farm.action(
            "GET_NUMBER", country="russia", operator="mts", service="vk", sum=10
        )
        assert issued["status"] == "SUCCESS" and isinstance(issued["number"], int)
        modem = sims.by_number(str(issued["number"]))
        modem.deliver_sms("+79001234567", "Код: 5521")
        modem.deliver_sms("VK", MULTIPART_UCS2, ref16=True, order=[1, 0])
        await farm.wait_pushes(2)
        pushes = {p.body["text"]: p.body for p in farm.market.received}
        assert set(pushes) == {"Код: 5521", MULTIPART_UCS2}
        assert pushes["Код: 5521"]["phoneFrom"] == "+79001234567"
        assert pushes[MULTIPART_UCS2]["phoneFrom"] == "VK"
        assert {p["phone"] for p in pushes.values()} == {issued["number"]}

        done = await farm.action("FINISH_ACTIVATION", activationId=issued["activationId"], status=3)
        assert done == {"status": "SUCCESS"}
        after = await farm.action("GET_SERVICES")
        assert count(after, "russia", "mts", "vk") == 3
        assert count(after, "russia", "mts", "wa") == 4


async def test_unplugged_modem_leaves_and_comes_back_with_its_activation(tmp_path) -> None:
    sims = mixed_farm(4)
    async with started(sims), running_daemon(tmp_path / "simfarm.db", sims) as farm:
        await farm.wait_live({m.sim.number for m in sims})
        issued = await farm.action(
            "GET_NUMBER", country="germany", operator="vodafone", service="wa", sum=10
        )
        number = str(issued["number"])
        modem = sims.by_number(number)
        old_path = modem.path
        modem.unplug()
        await farm.wait_live({m.sim.number for m in sims} - {number}, timeout=15)
        others = await farm.action(
            "GET_NUMBER", country="russia", operator="any", service="wa", sum=10
        )
        assert others["status"] == "SUCCESS"  # the rest keep serving

        modem.deliver_sms("+4930123456", "arrived while unplugged")  # held by the network
        new_path = await modem.replug()
        assert new_path != old_path
        farm.daemon.farm.add_ports([new_path])
        await farm.wait_live({m.sim.number for m in sims})
        await farm.wait_pushes(1)
        [push] = farm.market.received
        assert push.body["text"] == "arrived while unplugged"
        assert push.body["phone"] == issued["number"]
        # The activation survived the move: still open, the same id finishes it.
        assert farm.pool.open_activation_for(number).id == issued["activationId"]
        done = await farm.action("FINISH_ACTIVATION", activationId=issued["activationId"], status=3)
        assert done == {"status": "SUCCESS"}


async def test_hung_modem_costs_only_its_own_sim(tmp_path) -> None:
    sims = mixed_farm(3)
    async with started(sims), running_daemon(tmp_path / "simfarm.db", sims) as farm:
        await farm.wait_live({m.sim.number for m in sims})
        hung = sims.by_name("m00-sim800")
        hung.hang(until_reboot=True, answer_reset=True)  # only +CFUN=1,1 still works
        await farm.wait_live({m.sim.number for m in sims} - {hung.sim.number}, timeout=30)
        # The API keeps answering while the modem is probed and recovered.
        for _ in range(5):
            assert (await farm.action("GET_SERVICES"))["status"] == "SUCCESS"
        # The recovery ladder reboots it (+CFUN=1,1 or a re-init) and it comes back.
        await farm.wait_live({m.sim.number for m in sims}, timeout=EVENTUALLY_SECONDS * 2)


async def test_sms_that_arrived_while_stopped_are_swept_and_pushed(tmp_path) -> None:
    sims = mixed_farm(2)
    db = tmp_path / "simfarm.db"
    async with started(sims):
        async with running_daemon(db, sims) as farm:
            await farm.wait_live({m.sim.number for m in sims})
            issued = await farm.action(
                "GET_NUMBER", country="germany", operator="any", service="tg", sum=10
            )
        modem = sims.by_number(str(issued["number"]))
        modem.deliver_sms("TG", "Telegram code 77812")  # nobody is listening now
        async with running_daemon(db, sims) as farm:
            await farm.wait_pushes(1)
            [push] = farm.market.received
            assert push.body["text"] == "Telegram code 77812"
            assert push.body["phone"] == issued["number"]


async def test_a_sim_without_a_number_is_learned_by_ussd(tmp_path) -> None:
    sim = make_sim(
        3,
        number="4915212340008",
        number_in_cnum=False,
        ussd={"*135#": "Ihre Rufnummer: +4915212340008"},
    )
    sims = SimulatedFarm([SimulatedModem(EC25, sim, name="ussd-only")])
    ussd = {"ussd": {"26202": {"code": "*135#", "pattern": r"(\+?\d{10,15})"}}}
    async with started(sims), running_daemon(tmp_path / "simfarm.db", sims, extra=ussd) as farm:
        await farm.wait_live({"4915212340008"})
        [live] = farm.pool.live_numbers()
        assert live.number_source == "ussd"


async def test_api_answers_while_modems_come_up(tmp_path) -> None:
    sims = mixed_farm(8)
    async with started(sims), running_daemon(tmp_path / "simfarm.db", sims) as farm:
        replies = await asyncio.gather(*(farm.action("GET_SERVICES") for _ in range(20)))
        assert all(r["status"] == "SUCCESS" for r in replies)
        await farm.wait_live({m.sim.number for m in sims})
