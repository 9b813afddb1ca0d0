"""Arbitrary JSON and arbitrary bytes against every marketplace endpoint: never a 5xx.

Real HTTP on loopback against the real app and a pool on a real SQLite file: one server per
property, one keep-alive connection, a bounded number of examples (about 500 requests, a few
seconds; real HTTP per example is fast enough that the in-process client is not needed).
"""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from gateway.marketplaces import onlinesim
from tests.gateway.helpers import KEY, Served, served_pool, sim

#: Examples per property; each is one request, so this bounds the run time.
EXAMPLES = 250
FIND = settings(max_examples=2_000, database=None)
PATHS = ["/", *onlinesim.PATHS, "/health", "/nowhere"]
ACTIONS = [onlinesim.GET_SERVICES, onlinesim.GET_NUMBER, onlinesim.FINISH_ACTIVATION, "PUSH_SMS"]

# Text with every kind of character, lone surrogates included (sent as \u escapes).
text = st.text(st.characters(exclude_categories=()), max_size=12) | st.sampled_from(
    ["\ud800", "x\udfffy", "\ud83d\ude00", "", "germany", "any", "vk", "rent", "RENT", "\x00"]
)
numbers = (
    st.integers()
    | st.integers(min_value=10**18, max_value=10**400)
    | st.sampled_from([0, 1, 3, 4, 5, -1, 2**63 - 1, 2**63, 2**64, 10**309])
    | st.floats(allow_nan=False, allow_infinity=False)
)
# Values that have broken JSON handlers before: lone surrogates, floats' edges, huge integers.
nasty = st.sampled_from(
    ["\ud800", "\udfff", "a\udc00", 10**309, -(10**309), 2**63, 2**64, 1e308, -0.0, 5e-324]
)
scalars = st.none() | st.booleans() | numbers | text | nasty
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
    max_leaves=15,
)
# Per field, values it might take as well as anything at all.
plausible = {
    "action": st.sampled_from(ACTIONS),
    "key": st.just(KEY),
    "country": st.sampled_from(["germany", "russia", "ukraine", "any"]),
    "operator": st.sampled_from(["any", "vodafone", "megafon"]),
    "service": st.sampled_from(["vk", "wa", "tg", "rent", "fb"]),
    "sum": numbers,
    "exceptionPhoneSet": st.lists(
        st.integers(min_value=-1, max_value=10**22) | st.text("0123456789x", max_size=22),
        max_size=4,
    ),
    "activationId": st.integers(min_value=-1, max_value=2**64),
    "status": st.integers(min_value=-1, max_value=7),
    "currency": st.sampled_from([643, 840]),
}
REQUIRED = {
    onlinesim.GET_SERVICES: [],
    onlinesim.GET_NUMBER: ["country", "operator", "service", "sum"],
    onlinesim.FINISH_ACTIVATION: ["activationId", "status"],
}


def shaped(action: str) -> st.SearchStrategy[dict[str, Any]]:
    """Bodies for one action: its fields always there, each plausible or anything at all."""
    anything = {field: values | nasty | json_values for field, values in plausible.items()}
    anything["action"] = st.just(action) | nasty | json_values
    required = ["action", "key", *REQUIRED[action]]
    return st.fixed_dictionaries(
        {field: anything[field] for field in required},
        optional={field: anything[field] for field in anything if field not in required},
    )


bodies = st.one_of(*(shaped(action) for action in REQUIRED), json_values)


# Bodies json.dumps cannot write: Python's own limits and JSON's non-values.
GET_NUMBER_HEAD = b'{"action":"GET_NUMBER","key":"%s","country":"germany","operator":"any",' % (
    KEY.encode()
)
RAW_BODIES = [
    b"NaN",
    b"[Infinity]",
    b'{"sum":1e999}',
    GET_NUMBER_HEAD + b'"service":"vk","sum":1e999}',
    GET_NUMBER_HEAD + b'"service":"vk","sum":%s}' % (b"9" * 4301),
    b'{"action":"GET_SERVICES","x":[%s]}' % (b"1" * 5000),
    b"\xef\xbb\xbf{}",
    b"[" * 5000,
    b'{"a":' * 5000,
]


@pytest.fixture
async def farm(tmp_path) -> Served:
    async with served_pool(tmp_path / "simfarm.db") as served:
        for n in range(4):
            await served.pool.sim_online(sim(n))
        yield served


def assert_answered(reply, label: Any) -> None:
    assert reply.status_code < 500, (label, reply.status_code, reply.text)
    payload = reply.json()
    assert isinstance(payload, dict) and payload.get("status"), (label, reply.text)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies, path=st.sampled_from(PATHS), with_header=st.booleans())
async def test_arbitrary_json_never_gets_a_5xx(farm: Served, body, path, with_header) -> None:
    raw = json.dumps(body, allow_nan=False).encode()  # ASCII: surrogates travel as \u escapes
    headers = {"Content-Type": "application/json"}
    if with_header:
        headers["Authorization"] = f"Bearer {KEY}"
    reply = await farm.client.post(path, content=raw, headers=headers)
    assert_answered(reply, body)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    raw=st.binary(max_size=300)
    | json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass"))
    | st.sampled_from(RAW_BODIES),
    path=st.sampled_from(PATHS),
    squeeze=st.booleans(),
)
async def test_arbitrary_bytes_never_get_a_5xx(farm: Served, raw, path, squeeze) -> None:
    headers = {"Content-Type": "application/json"}
    if squeeze:
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    reply = await farm.client.post(path, content=raw, headers=headers)
    assert_answered(reply, raw)


def _valid(body: Any) -> bool:
    try:
        return onlinesim.presented_key(body) == KEY and bool(onlinesim.parse_request(body, "/"))
    except onlinesim.BadRequest:
        return False


@pytest.mark.parametrize("action", ACTIONS[:3])
def test_the_shaped_bodies_include_valid_requests(action: str) -> None:
    """Not everything is refused at the key or the action: the fields get exercised too."""
    found = find(bodies, lambda b: _valid(b) and b["action"] == action, settings=FIND)
    assert found["action"] == action
