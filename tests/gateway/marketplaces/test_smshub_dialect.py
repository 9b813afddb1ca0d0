"""SMSHUB's dialect on its own: what it accepts, refuses, reports and sends, per its protocol."""

from __future__ import annotations

import json

import pytest

from gateway.marketplaces import smshub
from gateway.marketplaces.smshub import BadRequest, parse_request

KEY = "smshub-protocol-key-0001"


def get_number(**fields):
    body = {
        "action": "GET_NUMBER",
        "key": KEY,
        "country": "russia",
        "operator": "mts",
        "service": "tg",
        "sum": 0.0125,
        "currency": 840,
        **fields,
    }
    return {k: v for k, v in body.items() if v is not None}


def test_get_number_reads_currency_prefixes_and_four_decimal_dollars() -> None:
    request = parse_request(get_number(exceptionPhoneSet=["792831", "7916"]))
    body = request.body
    assert request.action == "GET_NUMBER" and request.key == KEY
    assert isinstance(body, smshub.GetNumberBody)
    assert (body.currency, body.sum) == (smshub.USD, 0.0125)
    assert body.exceptionPhoneSet == ["792831", "7916"]
    assert parse_request(get_number(currency=643, sum=12.5)).body.currency == smshub.RUB


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (get_number(currency=None), "missing field: currency"),
        (get_number(currency=978), "currency"),
        (get_number(currency="840"), "currency"),
        (get_number(sum=None), "missing field: sum"),
        (get_number(sum=10**309), "sum"),
        (get_number(exceptionPhoneSet=["+7916"]), "exceptionPhoneSet"),
        (get_number(operator=None), "missing field: operator"),
        ({"action": "FINISH_ACTIVATION", "key": KEY, "activationId": 7, "status": 2}, "status"),
        ({"action": "FINISH_ACTIVATION", "key": KEY, "activationId": "7", "status": 3}, "activ"),
        ({"action": "FINISH_ACTIVATION", "key": KEY, "activationId": 0, "status": 3}, "activ"),
        ({"action": "GET_BALANCE", "key": KEY}, "unknown action: GET_BALANCE"),
        ({"key": KEY}, "missing field: action"),
        ([1, 2], "the body must be a JSON object"),
    ],
)
def test_bad_requests_are_refused_with_the_field_named(body, error: str) -> None:
    with pytest.raises(BadRequest, match=error):
        parse_request(body)


def test_finish_statuses_are_smshubs_four() -> None:
    for status in (1, 3, 4, 5):
        body = {"action": "FINISH_ACTIVATION", "key": KEY, "activationId": 90017, "status": status}
        parsed = parse_request(body).body
        assert isinstance(parsed, smshub.FinishActivationBody) and parsed.status == status


def test_a_country_is_reported_by_operators_or_as_any_never_both() -> None:
    counts = {
        "russia": {"mts": {"tg": 4, "wa": 2}, "megafon": {"tg": 1, "wa": 0}},
        "ukraine": {"kyivstar": {"tg": 2, "wa": 1}, "life": {"tg": 3, "wa": 0}},
    }
    reply = smshub.services_reply(counts, split_by_operator=lambda country: country == "russia")
    assert reply == {
        "status": "SUCCESS",
        "countryList": [
            {
                "country": "russia",
                "operatorMap": {"megafon": {"tg": 1, "wa": 0}, "mts": {"tg": 4, "wa": 2}},
            },
            {"country": "ukraine", "operatorMap": {"any": {"tg": 5, "wa": 1}}},
        ],
    }


def test_numbers_and_ids_are_json_numbers_with_the_country_code() -> None:
    """SMSHUB's checks 3 and 4: every numeric field a JSON number, numbers from the country code."""
    reply = json.loads(json.dumps(smshub.number_reply("79281234567", 90017)))
    assert reply == {"status": "SUCCESS", "number": 79281234567, "activationId": 90017}
    push = json.loads(
        json.dumps(
            smshub.push_sms_body(
                key=KEY, sms_id=123, number="79281234567", sender="Telegram", text="Code 55"
            )
        )
    )
    assert push == {
        "action": "PUSH_SMS",
        "key": KEY,
        "smsId": 123,
        "phone": 79281234567,
        "phoneFrom": "Telegram",
        "text": "Code 55",
    }


@pytest.mark.parametrize(
    ("http_status", "payload", "outcome"),
    [
        (200, {"status": "SUCCESS"}, "pushed"),
        (200, {"status": "success"}, "pushed"),
        (200, {"status": "ERROR", "error": "try later"}, "retry"),
        (200, {"status": "NO_OPERATION"}, "retry"),  # no refusal is final on SMSHUB
        (200, {"error": "SUCCESS"}, "retry"),
        (200, "SUCCESS", "retry"),
        (500, {"status": "SUCCESS"}, "retry"),
        (502, "<html>bad gateway</html>", "retry"),
    ],
)
def test_a_push_is_delivered_only_on_status_success(http_status, payload, outcome) -> None:
    assert smshub.push_outcome(http_status, payload)[0] == outcome
