"""/metrics after a known sequence of actions: scraped over HTTP from both listeners and parsed
with the reference parser; one registry per daemon."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import prometheus_client
from prometheus_client.parser import text_string_to_metric_families

from drivers.events import ModemState
from gateway.demo.fake_marketplace import fail_first
from gateway.ops.metrics import Metrics
from gateway.pool.records import StoredSms
from tests.gateway.ops.test_admin import EVENTUALLY_SECONDS, KEY, Running, running_daemon

FIXED_TIME = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
LONG_TEXT = "Ваш код подтверждения: 4711. " * 4  # UCS2, two parts


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """sample name -> sorted labels -> value."""
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def families(text: str) -> dict[str, str]:
    return {family.name: family.type for family in text_string_to_metric_families(text)}


async def scrape(farm: Running, listener: str = "admin") -> str:
    reply = await (farm.admin if listener == "admin" else farm.api)("GET", "/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return reply.text


def port_of(farm: Running, number: str) -> str:
    assert farm.daemon.farm is not None
    return next(s.port for s in farm.daemon.farm.statuses() if s.number == number)


async def test_metrics_after_a_known_sequence(tmp_path: Path) -> None:
    searching = {"state": ModemState.SEARCHING, "registration": "searching", "detail": "no net"}
    async with running_daemon(tmp_path, 3, statuses={2: searching}) as farm:
        await farm.action("GET_SERVICES")
        issued = await farm.get_number("vk")
        assert issued["status"] == "SUCCESS"
        rent = await farm.get_number("rent")
        assert rent["status"] == "SUCCESS"
        assert (await farm.get_number("vk", country="ukraine"))["status"] == "NO_NUMBERS"
        body = {"country": "germany", "operator": "any", "service": "vk", "sum": 10}
        wrong_key = await farm.api(
            "POST", "/", json={"action": "GET_NUMBER", "key": "wrong-key", **body}
        )
        assert wrong_key.status_code == 401
        driver = farm.drivers[port_of(farm, str(issued["number"]))]
        await driver.deliver("VK", "code 1", timestamp=FIXED_TIME)
        await driver.deliver("VK", "code 1", timestamp=FIXED_TIME)  # read twice: a duplicate
        await driver.deliver("Telegram", LONG_TEXT, timestamp=FIXED_TIME)
        await farm.market.wait_for(lambda received: len(received) >= 2, EVENTUALLY_SECONDS)
        await farm.action("FINISH_ACTIVATION", activationId=issued["activationId"], status=3)
        admin_text = await scrape(farm)
        main_text = await scrape(farm, "main")

    assert families(admin_text) == families(main_text)
    kinds = families(admin_text)
    for name, kind in {
        "simfarm_get_number": "counter",
        "simfarm_request_duration_seconds": "histogram",
        "simfarm_sms_received": "counter",
        "simfarm_sms_parts_joined": "counter",
        "simfarm_pushes": "counter",
        "simfarm_modems": "gauge",
        "simfarm_sims_live": "gauge",
        "simfarm_activations_open": "gauge",
        "simfarm_numbers_available": "gauge",
        "simfarm_push_outbox_pending": "gauge",
        "simfarm_push_outbox_oldest_age_seconds": "gauge",
        "simfarm_modem_storage_used_messages": "gauge",
        "simfarm_modem_storage_total_messages": "gauge",
        "simfarm_modem_signal_rssi": "gauge",
        "simfarm_modem_command_timeouts": "counter",
        "simfarm_modem_recoveries": "counter",
    }.items():
        assert kinds.get(name) == kind, name

    m = parse(admin_text)
    assert m["simfarm_get_number_total"] == {
        (("outcome", "success"),): 2,
        (("outcome", "no_numbers"),): 1,
        (("outcome", "error"),): 1,
    }
    latency = m["simfarm_request_duration_seconds_count"]
    assert latency[(("action", "GET_SERVICES"),)] == 1
    assert latency[(("action", "GET_NUMBER"),)] == 4
    assert latency[(("action", "FINISH_ACTIVATION"),)] == 1
    assert (
        m["simfarm_request_duration_seconds_bucket"][(("action", "GET_NUMBER"), ("le", "+Inf"))]
        == 4
    )
    assert m["simfarm_sms_received_total"] == {
        (("outcome", "stored"),): 2,
        (("outcome", "duplicate"),): 1,
    }
    assert m["simfarm_sms_parts_joined_total"] == {(): 2}
    assert m["simfarm_pushes_total"] == {
        (("outcome", "pushed"),): 2,
        (("outcome", "refused"),): 0,
        (("outcome", "retry"),): 0,
    }
    modems = m["simfarm_modems"]
    assert modems[(("state", "ready"),)] == 2 and modems[(("state", "searching"),)] == 1
    assert sum(modems.values()) == 3
    assert m["simfarm_sims_live"] == {(): 2}
    assert m["simfarm_activations_open"] == {(("kind", "single"),): 0, (("kind", "rent"),): 1}
    # Two live numbers; one leased for rent; the other just sold for vk.
    assert m["simfarm_numbers_available"][(("service", "vk"),)] == 0
    assert m["simfarm_numbers_available"][(("service", "wa"),)] == 1
    assert m["simfarm_push_outbox_pending"] == {(): 0}
    assert m["simfarm_push_outbox_oldest_age_seconds"] == {(): 0}
    first = farm.ports[0]
    assert m["simfarm_modem_storage_used_messages"][(("memory", "SM"), ("port", first))] == 3
    assert m["simfarm_modem_storage_total_messages"][(("memory", "ME"), ("port", first))] == 100
    assert m["simfarm_modem_signal_rssi"][(("port", first),)] == 18
    assert m["simfarm_modem_command_timeouts_total"][(("port", first),)] == 2
    assert m["simfarm_modem_recoveries_total"][(("port", first), ("rung", "escape"))] == 1


async def test_outbox_depth_and_age_while_the_marketplace_fails(tmp_path: Path) -> None:
    async with running_daemon(tmp_path, 1, policy=fail_first(1_000_000)) as farm:
        issued = await farm.get_number("wa")
        driver = farm.drivers[farm.ports[0]]
        await driver.deliver("WhatsApp", "code 2", timestamp=FIXED_TIME)
        await farm.market.wait_for(lambda received: len(received) >= 2, EVENTUALLY_SECONDS)
        m = parse(await scrape(farm))
        assert issued["status"] == "SUCCESS"
    assert m["simfarm_push_outbox_pending"] == {(): 1}
    assert m["simfarm_push_outbox_oldest_age_seconds"][()] >= 0
    assert m["simfarm_pushes_total"][(("outcome", "retry"),)] >= 1
    assert m["simfarm_pushes_total"][(("outcome", "pushed"),)] == 0


async def test_each_daemon_has_its_own_registry(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    async with running_daemon(tmp_path / "a", 1) as one, running_daemon(tmp_path / "b", 1) as two:
        await one.get_number("vk")
        first, second = parse(await scrape(one)), parse(await scrape(two))
    assert first["simfarm_get_number_total"][(("outcome", "success"),)] == 1
    assert second["simfarm_get_number_total"][(("outcome", "success"),)] == 0
    names = {f.name for f in prometheus_client.REGISTRY.collect()}
    assert not any(name.startswith("simfarm") for name in names)


def test_metrics_without_a_daemon_has_only_the_source_counters() -> None:
    metrics = Metrics()
    metrics.sms_stored(StoredSms(1, False, None), parts=0)
    metrics.sms_stored(StoredSms(1, True, None), parts=0)
    text = prometheus_client.generate_latest(metrics.registry).decode()
    samples = parse(text)
    assert samples["simfarm_sms_received_total"] == {
        (("outcome", "stored"),): 1,
        (("outcome", "duplicate"),): 1,
    }
    assert "simfarm_modems" not in samples
    assert KEY not in text
