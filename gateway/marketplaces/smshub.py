"""SMSHUB's agent protocol (version of 6 March 2024): the marketplace dialect, in one place.

SMSHUB posts every action to one URL and branches on the body's `action`. It differs from
Onlinesim where it matters to a pool: GET_NUMBER carries the `currency` of its `sum` (643 RUB,
840 USD, the latter with 4 decimals), a country is reported either by its real operators or as
`any` (never both, the opposite of Onlinesim), there is no rent, and a PUSH_SMS is resent until
SMSHUB answers SUCCESS: no refusal is final. GrizzlySMS clones this protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from gateway.marketplaces.fields import (
    ANY_OPERATOR,
    FINISH_ACTIVATION,
    GET_NUMBER,
    GET_SERVICES,
    PUSH_SMS,
    SUCCESS,
    BadRequest,
    Prefix,
    Sum,
    error_reply,
    no_numbers_reply,
    number_reply,
    parse_body,
    presented_key,
    push_delivered,
    success_reply,
)

__all__ = [
    "ANY_OPERATOR",
    "FINISH_ACTIVATION",
    "GET_NUMBER",
    "GET_SERVICES",
    "PUSH_SMS",
    "SUCCESS",
    "BadRequest",
    "error_reply",
    "no_numbers_reply",
    "number_reply",
    "presented_key",
    "success_reply",
]


#: ISO 4217 numeric codes SMSHUB prices in.
RUB = 643
USD = 840
CURRENCIES = {RUB: "RUB", USD: "USD"}

#: FINISH_ACTIVATION statuses: 1 not for this service, 3 sold, 4 cancelled, 5 refunded.
FINISH_STATUSES = frozenset({1, 3, 4, 5})

ULONG_MAX = 2**63 - 1


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    action: StrictStr
    key: StrictStr | None = None


class GetServicesBody(_Body):
    pass


class GetNumberBody(_Body):
    country: StrictStr = Field(min_length=1, max_length=64)
    operator: StrictStr = Field(min_length=1, max_length=64)
    service: StrictStr = Field(min_length=1, max_length=64)
    sum: Sum
    currency: Literal[643, 840]
    exceptionPhoneSet: list[Prefix] = Field(default_factory=list, max_length=10_000)


class FinishActivationBody(_Body):
    activationId: Annotated[StrictInt, Field(ge=1, le=ULONG_MAX)]
    status: Literal[1, 3, 4, 5]


_BODIES: dict[str, type[_Body]] = {
    GET_SERVICES: GetServicesBody,
    GET_NUMBER: GetNumberBody,
    FINISH_ACTIVATION: FinishActivationBody,
}


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed SMSHUB request."""

    action: str
    body: _Body

    @property
    def key(self) -> str | None:
        return self.body.key


def requested_action(payload: Any) -> str | None:
    """The action a body asks for when it is one we know, else None (for metrics); never raises."""
    action = payload.get("action") if isinstance(payload, dict) else None
    return action if isinstance(action, str) and action in _BODIES else None


def parse_request(payload: Any) -> Request:
    """Validate a decoded JSON body (every SMSHUB action arrives on the one agent URL)."""
    action, body = parse_body(payload, _BODIES)
    return Request(action=action, body=body)


def services_reply(
    counts: Mapping[str, Mapping[str, Mapping[str, int]]],
    *,
    split_by_operator: Callable[[str], bool],
) -> dict[str, Any]:
    """GET_SERVICES: a country by its real operators, or as `any` alone, never both.

    `counts` is country -> operator -> service -> numbers issuable now (rent excluded by the
    caller: SMSHUB sells none). `split_by_operator(country)` says how the country is reported;
    once SMSHUB has seen a country one way, only its support can switch it.
    """
    country_list = []
    for country in sorted(counts):
        operators = counts[country]
        operator_map: dict[str, dict[str, int]]
        if split_by_operator(country):
            operator_map = {op: dict(operators[op]) for op in sorted(operators)}
        else:
            total: dict[str, int] = {}
            for services in operators.values():
                for service, count in services.items():
                    total[service] = total.get(service, 0) + count
            operator_map = {ANY_OPERATOR: total}
        country_list.append({"country": country, "operatorMap": operator_map})
    return {"status": SUCCESS, "countryList": country_list}


def push_sms_body(*, key: str, sms_id: int, number: str, sender: str, text: str) -> dict[str, Any]:
    """PUSH_SMS: `smsId` and `phone` are JSON numbers; `phoneFrom` is the real sender."""
    return {
        "action": PUSH_SMS,
        "key": key,
        "smsId": sms_id,
        "phone": int(number),
        "phoneFrom": sender,
        "text": text,
    }


def push_outcome(http_status: int, payload: Any) -> tuple[str, str | None]:
    """Classify a PUSH_SMS reply: ("pushed" | "retry", what SMSHUB said).

    Delivered only on HTTP 200 with a JSON object whose `status` is SUCCESS; anything else is
    resent with the same payload until it is (the protocol knows no final refusal).
    """
    if push_delivered(http_status, payload):
        return "pushed", None
    shown = payload if isinstance(payload, str) else repr(payload)
    return "retry", f"http={http_status} reply={shown[:80]!r}"
