"""The marketplace API over real HTTP on loopback, against a pool on a real SQLite file."""

from __future__ import annotations

import gzip
import json
import logging

import httpx
import pytest

from gateway.config import config_from_dict
from gateway.daemon import Daemon
from gateway.demo.fake_marketplace import FakeMarketplace
from gateway.marketplaces.api import MarketplaceApi, create_app
from gateway.marketplaces.http_server import BackgroundServer
from tests.gateway.helpers import KEY, Served, open_pool, served_pool, sim


@pytest.fixture
async def farm(tmp_path) -> Served:
    async with served_pool(tmp_path / "simfarm.db") as served:
        for n in range(3):
            await served.pool.sim_online(sim(n, operator="vodafone"))
        await served.pool.sim_online(sim(3, operator="telekom"))
        await served.pool.sim_online(sim(4, country="russia", operator="megafon", prefix="7916"))
        yield served


async def services(farm: Served) -> dict:
    reply = await farm.action("GET_SERVICES")
    assert reply.status_code == 200
    return reply.json()


async def get_number(farm: Served, **fields) -> dict:
    body = {"country": "germany", "operator": "any", "service": "wa", "sum": 10, **fields}
    reply = await farm.action("GET_NUMBER", **body)
    assert reply.status_code == 200, reply.text
    return reply.json()


def operator_map(report: dict, country: str) -> dict:
    return next(c["operatorMap"] for c in report["countryList"] if c["country"] == country)


async def test_get_services_reports_every_operator_and_any(farm: Served) -> None:
    report = await services(farm)
    assert report["status"] == "SUCCESS"
    germany = operator_map(report, "germany")
    assert germany["vodafone"] == {"vk": 3, "wa": 3, "tg": 3, "rent": 3}
    assert germany["telekom"] == {"vk": 1, "wa": 1, "tg": 1, "rent": 1}
    assert germany["any"] == {"vk": 4, "wa": 4, "tg": 4, "rent": 4}
    assert operator_map(report, "russia")["any"]["vk"] == 1


async def test_dedicated_rent_path_reports_only_rent(farm: Served) -> None:
    reply = await farm.post({"key": KEY}, path="/getServicesRent")
    germany = operator_map(reply.json(), "germany")
    assert germany == {"vodafone": {"rent": 3}, "telekom": {"rent": 1}, "any": {"rent": 4}}


async def test_get_number_replies_integers_with_country_code(farm: Served) -> None:
    reply = await get_number(farm)
    assert reply["status"] == "SUCCESS"
    assert isinstance(reply["number"], int) and isinstance(reply["activationId"], int)
    assert str(reply["number"]).startswith("49151")
    assert operator_map(await services(farm), "germany")["any"]["wa"] == 3


async def test_operator_and_country_must_match(farm: Served) -> None:
    reply = await get_number(farm, operator="telekom")
    assert reply["number"] == int(sim(3).number)
    assert (await get_number(farm, operator="telekom"))["status"] == "NO_NUMBERS"
    assert (await get_number(farm, country="ukraine"))["status"] == "NO_NUMBERS"
    russian = await get_number(farm, country="russia", operator="megafon")
    assert str(russian["number"]).startswith("7916")


async def test_sold_number_is_gone_for_that_service_only(farm: Served) -> None:
    issued = await get_number(farm, service="wa", operator="telekom")
    finish = await farm.action("FINISH_ACTIVATION", activationId=issued["activationId"], status=3)
    assert finish.json() == {"status": "SUCCESS"}
    telekom = operator_map(await services(farm), "germany")["telekom"]
    assert telekom == {"vk": 1, "wa": 0, "tg": 1, "rent": 1}
    assert (await get_number(farm, service="wa", operator="telekom"))["status"] == "NO_NUMBERS"
    assert (await get_number(farm, service="tg", operator="telekom"))["status"] == "SUCCESS"


async def test_finish_is_idempotent_and_unknown_ids_are_errors(farm: Served) -> None:
    issued = await get_number(farm)
    for _ in range(3):
        reply = await farm.action(
            "FINISH_ACTIVATION", activationId=issued["activationId"], status=4
        )
        assert (reply.status_code, reply.json()) == (200, {"status": "SUCCESS"})
    unknown = await farm.action("FINISH_ACTIVATION", activationId=999_999, status=3)
    assert unknown.status_code == 200
    assert unknown.json() == {"status": "ERROR", "error": "unknown activation"}


async def test_cancelled_issues_count_until_the_limit(farm: Served) -> None:
    for _ in range(4):
        issued = await get_number(farm, operator="telekom", service="tg")
        assert issued["status"] == "SUCCESS"
        await farm.action("FINISH_ACTIVATION", activationId=issued["activationId"], status=4)
    assert operator_map(await services(farm), "germany")["telekom"]["tg"] == 0
    assert (await get_number(farm, operator="telekom", service="tg"))["status"] == "NO_NUMBERS"


async def test_exception_phone_set_accepts_ints_and_digit_strings(farm: Served) -> None:
    excluded = [int(sim(0).number), sim(1).number, "4917", 7]
    reply = await get_number(farm, operator="vodafone", exceptionPhoneSet=excluded)
    assert reply["status"] == "SUCCESS"
    assert reply["number"] == int(sim(2).number)
    every_german = await get_number(farm, exceptionPhoneSet=[49])
    assert every_german["status"] == "NO_NUMBERS"


async def test_unoffered_service_and_low_sum_get_no_numbers(farm: Served) -> None:
    assert (await get_number(farm, service="fb"))["status"] == "NO_NUMBERS"
    assert (await get_number(farm, service="vk", sum=4.99))["status"] == "NO_NUMBERS"
    assert (await get_number(farm, service="vk", sum=5))["status"] == "SUCCESS"


async def test_rent_is_recognised_by_service_or_path_and_bars_nothing(farm: Served) -> None:
    rent = await get_number(farm, service="RENT", operator="telekom")
    assert rent["status"] == "SUCCESS"
    assert operator_map(await services(farm), "germany")["telekom"]["rent"] == 0
    await farm.action(
        "FINISH_ACTIVATION", activationId=rent["activationId"], status=3, service="rent"
    )
    assert operator_map(await services(farm), "germany")["telekom"] == {
        "vk": 1,
        "wa": 1,
        "tg": 1,
        "rent": 1,
    }
    by_path = await farm.post(
        {"key": KEY, "country": "germany", "operator": "telekom", "service": "vk", "sum": 400},
        path="/getNumberRent",
    )
    assert by_path.json()["status"] == "SUCCESS"
    assert farm.pool.open_activations()[-1].rent


async def test_body_action_wins_over_the_path(farm: Served) -> None:
    reply = await farm.post({"action": "GET_SERVICES", "key": KEY}, path="/getNumber")
    assert "countryList" in reply.json()


async def test_bearer_header_alone_is_enough(farm: Served) -> None:
    reply = await farm.post({"action": "GET_SERVICES"}, headers={"Authorization": f"Bearer {KEY}"})
    assert reply.status_code == 200


@pytest.mark.parametrize(
    ("body_key", "header"),
    [
        (None, None),
        ("wrong", None),
        (None, "Bearer wrong"),
        (KEY, "Bearer wrong"),
        ("wrong", f"Bearer {KEY}"),
        (KEY, "Basic abc"),
        ("", None),
    ],
)
async def test_wrong_or_missing_key_changes_nothing(farm: Served, body_key, header) -> None:
    before = farm.pool.service_counts()
    body = {"action": "GET_NUMBER", "country": "germany", "operator": "any", "service": "wa"}
    if body_key is not None:
        body["key"] = body_key
    headers = {"Authorization": header} if header else {}
    reply = await farm.post(body, headers=headers)
    assert reply.status_code == 401
    assert reply.json()["status"] == "ERROR"
    assert farm.pool.service_counts() == before
    assert farm.pool.open_activations() == []


@pytest.mark.parametrize(
    "body",
    [
        {"action": "GET_NUMBER", "key": "wrong"},
        {"action": "GET_NUMBER", "key": "wrong", "country": 5, "sum": "x"},
        {"action": "FINISH_ACTIVATION", "key": "wrong", "activationId": "1"},
        {"action": "FINISH_ACTIVATION", "activationId": 1, "status": 99},
        {"action": "NO_SUCH_ACTION", "key": "wrong"},
        {"key": "wrong"},
        {},
    ],
)
async def test_the_key_is_checked_before_the_other_fields(farm: Served, body) -> None:
    reply = await farm.post(body)
    assert reply.status_code == 401, reply.text
    assert reply.json()["status"] == "ERROR"


async def test_escaped_surrogate_pairs_are_text_like_any_other(farm: Served) -> None:
    body = raw(**GN, service="vk", sum=10).replace(b'"vk"', b'"\\ud83d\\ude00"')
    reply = await farm.client.post("/", content=body)
    assert (reply.status_code, reply.json()) == (200, {"status": "NO_NUMBERS"})


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_a_json_body_is_read_whatever_its_content_type(farm: Served, content_type) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    body = json.dumps({"action": "GET_SERVICES", "key": KEY}).encode()
    reply = await farm.client.post("/", content=body, headers=headers)
    assert reply.status_code == 200 and reply.json()["status"] == "SUCCESS"


async def test_a_huge_body_without_a_length_is_refused(farm: Served) -> None:
    async def chunks():
        yield b'{"action":"GET_SERVICES","key":"' + KEY.encode() + b'","pad":"'
        for _ in range(1_000):  # 8 MB, sent chunked: no Content-Length to refuse it by
            yield b"x" * 8192
        yield b'"}'

    reply = await farm.client.post("/", content=chunks())
    assert reply.status_code == 413 and reply.json()["status"] == "ERROR"


def raw(**fields) -> bytes:
    return json.dumps(fields).encode()


GN = {"action": "GET_NUMBER", "key": KEY, "country": "germany", "operator": "any"}
FA = {"action": "FINISH_ACTIVATION", "key": KEY}

BAD_BODIES = [
    ("not json", b"{nope", 400),
    ("array", b"[1, 2]", 400),
    ("empty", b"", 400),
    ("unknown action", raw(action="BUY_ALL", key=KEY), 400),
    ("action not a string", raw(action=5, key=KEY), 400),
    ("missing action", raw(key=KEY), 400),
    ("missing service", raw(**GN), 400),
    ("country not a string", raw(**{**GN, "country": 5, "service": "wa"}), 400),
    ("sum not a number", raw(**GN, service="wa", sum="10"), 400),
    ("bad prefix", raw(**GN, service="wa", exceptionPhoneSet=["49x"]), 400),
    ("activationId a string", raw(**FA, activationId="1", status=3), 400),
    ("status out of range", raw(**FA, activationId=1, status=9), 400),
    ("status missing", raw(**FA, activationId=1), 400),
    ("key not a string", raw(action="GET_SERVICES", key=12345), 400),
    ("oversized", raw(action="GET_SERVICES", key=KEY, pad="x" * 70_000), 413),
    ("deeply nested", b"[" * 30_000 + b"]" * 30_000, 400),
    ("deeply nested and big", b"[" * 100_000 + b"]" * 100_000, 413),
    ("deeply nested objects", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400),
    ("null", b"null", 400),
    ("a JSON string", b'"GET_SERVICES"', 400),
    ("whitespace only", b" \r\n\t ", 400),
    ("form encoded", f"action=GET_SERVICES&key={KEY}".encode(), 400),
    ("NaN is not JSON", b'{"action":"GET_SERVICES","key":"%s","x":NaN}' % KEY.encode(), 400),
    ("Infinity is not JSON", b'{"action":"GET_SERVICES","x":-Infinity}', 400),
    # Python refuses to turn more than 4,300 digits into an int, with a plain ValueError.
    ("integer over 4300 digits", b'{"action":"GET_SERVICES","n":%s}' % (b"7" * 4301), 400),
    (
        "long integer as a prefix",
        raw(**GN, service="wa", sum=10).replace(
            b"}", b',"exceptionPhoneSet":[%s]}' % (b"4" * 5000)
        ),
        400,
    ),
    ("lone surrogate action", b'{"action":"\\ud800","key":"%s"}' % KEY.encode(), 400),
    ("lone surrogate key", b'{"action":"GET_SERVICES","key":"\\ud800"}', 400),
    (
        "lone low surrogate service",
        raw(**GN, service="vk", sum=10).replace(b'"vk"', b'"\\udc00vk"'),
        400,
    ),
    (
        "lone surrogate field name",
        b'{"\\udbff":1,"action":"GET_SERVICES","key":"%s"}' % KEY.encode(),
        400,
    ),
    ("surrogate encoded in utf-8", b'{"action":"GET_SERVICES","key":"\xed\xa0\x80"}', 400),
    ("not utf-8", b'{"action":"GET_SERVICES","key":"\xff\xfe"}', 400),
    ("utf-16", json.dumps({"action": "GET_SERVICES", "key": KEY}).encode("utf-16"), 400),
    ("sum missing", raw(**GN, service="wa"), 400),
    ("sum null", raw(**GN, service="wa", sum=None), 400),
    ("sum too large for a float", raw(**GN, service="wa", sum=10**309), 400),
    ("sum overflows to infinity", raw(**GN, service="wa").replace(b"}", b',"sum":1e999}'), 400),
    ("finish sum too large for a float", raw(**FA, activationId=1, status=3, sum=10**309), 400),
    (
        "finish sum overflows",
        raw(**FA, activationId=1, status=3).replace(b"}", b',"sum":-1e999}'),
        400,
    ),
    ("prefix too long", raw(**GN, service="wa", sum=10, exceptionPhoneSet=[10**25]), 400),
]


@pytest.mark.parametrize(("label", "body", "status"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
async def test_bad_input_is_refused_and_changes_nothing(
    farm: Served, caplog, label, body, status
) -> None:
    issued = await get_number(farm, operator="telekom")
    before = (farm.pool.service_counts(), farm.pool.open_activations())
    with caplog.at_level(logging.DEBUG):
        reply = await farm.client.post(
            "/", content=body, headers={"Content-Type": "application/json"}
        )
    assert reply.status_code == status, reply.text
    assert reply.json()["status"] == "ERROR" and reply.json()["error"]
    assert (farm.pool.service_counts(), farm.pool.open_activations()) == before
    loud = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(loud) <= 1 and not any(r.exc_info for r in caplog.records), loud
    # Still serving, and the activation that was open is still intact.
    done = await farm.action("FINISH_ACTIVATION", activationId=issued["activationId"], status=4)
    assert done.json() == {"status": "SUCCESS"}


async def test_gzip_request_bodies_are_accepted(farm: Served) -> None:
    raw = gzip.compress(json.dumps({"action": "GET_SERVICES", "key": KEY}).encode())
    reply = await farm.client.post(
        "/", content=raw, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert reply.status_code == 200 and reply.json()["status"] == "SUCCESS"


@pytest.mark.parametrize(
    ("label", "body", "status"),
    [
        ("bomb", gzip.compress(b" " * 50_000_000), 413),
        ("not gzip", b"plainly not gzip", 400),
        ("truncated", gzip.compress(b'{"action": "GET_SERVICES"}')[:-12], 400),
    ],
)
async def test_bad_gzip_bodies_are_refused(farm: Served, label, body, status) -> None:
    reply = await farm.client.post(
        "/", content=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert reply.status_code == status
    assert reply.json()["status"] == "ERROR"


async def test_replies_are_gzipped_when_asked(farm: Served) -> None:
    reply = await farm.post(
        {"action": "GET_SERVICES", "key": KEY}, headers={"Accept-Encoding": "gzip"}
    )
    assert reply.headers["content-encoding"] == "gzip"
    assert reply.headers["content-type"] == "application/json; charset=utf-8"
    assert reply.json()["status"] == "SUCCESS"


async def test_wrong_method_and_path_get_json_errors(farm: Served) -> None:
    wrong_method = await farm.client.get("/")
    assert wrong_method.status_code == 405 and wrong_method.json()["status"] == "ERROR"
    missing = await farm.post({"action": "GET_SERVICES", "key": KEY}, path="/nowhere")
    assert missing.status_code == 404 and missing.json()["status"] == "ERROR"


def methods(allow: str) -> set[str]:
    """The methods an Allow header lists (their order is not fixed)."""
    return {part.strip() for part in allow.split(",")}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/", "POST"),
        ("PUT", "/getNumber", "POST"),
        ("DELETE", "/finishActivationRent", "POST"),
        ("POST", "/health", "GET, HEAD"),
    ],
)
async def test_405_names_the_allowed_methods(farm: Served, method, path, allowed) -> None:
    reply = await farm.client.request(method, path)
    assert reply.status_code == 405
    assert methods(reply.headers["allow"]) == methods(allowed)
    assert reply.json()["status"] == "ERROR"


async def test_admin_405_names_the_allowed_methods(tmp_path) -> None:
    market = FakeMarketplace()
    await market.start()
    config = config_from_dict(
        {
            "server": {"host": "127.0.0.1", "port": 0},
            "admin": {"host": "127.0.0.1", "port": 0},
            "marketplace": {"key": KEY, "push_url": market.url},
            "storage": {"path": str(tmp_path / "simfarm.db")},
            "offer": {"services": ["vk"]},
        },
        environ={},
    )
    daemon = Daemon(config)
    try:
        await daemon.start()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{daemon.admin_port}") as admin:
            release = await admin.get("/release")
            modems = await admin.post("/modems")
        assert (release.status_code, methods(release.headers["allow"])) == (405, {"POST"})
        assert (modems.status_code, methods(modems.headers["allow"])) == (405, {"GET", "HEAD"})
    finally:
        await daemon.stop()
        await market.stop()


async def test_health(farm: Served) -> None:
    reply = await farm.client.get("/health")
    assert reply.status_code == 200
    assert reply.json()["live_sims"] == 5


async def test_offline_sim_leaves_get_services_and_returns(farm: Served) -> None:
    farm.pool.sim_offline(sim(3).iccid)
    assert "telekom" not in operator_map(await services(farm), "germany")
    assert (await get_number(farm, operator="telekom"))["status"] == "NO_NUMBERS"
    await farm.pool.sim_online(sim(3, operator="telekom"))
    assert operator_map(await services(farm), "germany")["telekom"]["wa"] == 1


async def test_an_unexpected_error_is_a_503_with_one_traceback_per_interval(
    tmp_path, caplog
) -> None:
    def broken_health() -> dict:
        raise KeyError("a bug")

    pool = await open_pool(tmp_path / "simfarm.db")
    server = BackgroundServer(
        create_app(MarketplaceApi(pool, KEY, health=broken_health)), "127.0.0.1", 0
    )
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
            with caplog.at_level(logging.INFO):
                replies = [await client.get("/health") for _ in range(3)]
    finally:
        await server.stop()
        await pool.store.close()
    assert [r.status_code for r in replies] == [503, 503, 503]
    assert all(r.json() == {"status": "ERROR", "error": "internal error"} for r in replies)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 3, [r.getMessage() for r in errors]  # one line per request, no more
    assert [bool(r.exc_info) for r in errors] == [True, False, False]
