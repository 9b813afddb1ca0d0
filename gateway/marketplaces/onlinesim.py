"""Onlinesim Reseller API v1: the marketplace dialect, in one place.

Field names, action and status words, request validation and reply shapes live here and nowhere
else, so a second marketplace with the same four actions (SMSHUB, GrizzlySMS) is a sibling of
this module, not a change to the pool.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

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
from gateway.pool.pool import RENT, NumberRequest

# Shared with the other dialects, and part of this one.
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


#: The documented paths, each naming the action it carries and whether it is the rent twin.
PATHS: dict[str, tuple[str, bool]] = {
    "/getServices": (GET_SERVICES, False),
    "/getNumber": (GET_NUMBER, False),
    "/finishActivation": (FINISH_ACTIVATION, False),
    "/getServicesRent": (GET_SERVICES, True),
    "/getNumberRent": (GET_NUMBER, True),
    "/finishActivationRent": (FINISH_ACTIVATION, True),
}

#: PUSH_SMS replies that end the attempts without success (§D.10); anything else is retried.
FINAL_PUSH_REFUSALS = frozenset({"NO_OPERATION", "NO_OP", "BAD_SERVICE", "IGNORED", "SERVICE_BAN"})


class _Body(BaseModel):
    # Unknown fields (currency, and whatever a marketplace adds next) are ignored, not refused.
    model_config = ConfigDict(extra="ignore", frozen=True)

    action: StrictStr | None = None
    key: StrictStr | None = None


class GetServicesBody(_Body):
    pass


class GetNumberBody(_Body):
    country: StrictStr = Field(min_length=1, max_length=64)
    operator: StrictStr = Field(min_length=1, max_length=64)
    service: StrictStr = Field(min_length=1, max_length=64)
    sum: Sum  # required: the price the partner is credited with (the spec's table)
    exceptionPhoneSet: list[Prefix] = Field(default_factory=list, max_length=10_000)


class FinishActivationBody(_Body):
    activationId: Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]
    status: StrictInt
    sum: Sum | None = None  # optional here (newer pages only)
    service: StrictStr | None = None


_BODIES: dict[str, type[_Body]] = {
    GET_SERVICES: GetServicesBody,
    GET_NUMBER: GetNumberBody,
    FINISH_ACTIVATION: FinishActivationBody,
}


@dataclass(frozen=True, slots=True)
class Request:
    """One parsed marketplace request."""

    action: str
    body: _Body
    rent_path: bool

    @property
    def key(self) -> str | None:
        return self.body.key

    def number_request(self) -> NumberRequest:
        body = self.body
        assert isinstance(body, GetNumberBody)
        service = RENT if self.rent_path else body.service
        return NumberRequest(
            country=body.country,
            operator=body.operator,
            service=service,
            sum=body.sum,
            excluded_prefixes=tuple(str(p) for p in body.exceptionPhoneSet),
        )


def requested_action(payload: Any, path: str) -> str | None:
    """The action a body asks for when it is one we know, else None (for metrics); never raises."""
    if not isinstance(payload, dict):
        return None
    action = payload.get("action", PATHS.get(path, (None, False))[0])
    return action if isinstance(action, str) and action in _BODIES else None


def parse_request(payload: Any, path: str) -> Request:
    """Validate a decoded JSON body; the body's `action` wins over the path's."""
    path_action, rent_path = PATHS.get(path, (None, False))
    action, body = parse_body(payload, _BODIES, path_action)
    return Request(action=action, body=body, rent_path=rent_path)


def services_reply(
    counts: Mapping[str, Mapping[str, Mapping[str, int]]], *, rent_only: bool = False
) -> dict[str, Any]:
    """GET_SERVICES: per country, per operator and `any` (the sum over operators)."""
    country_list = []
    for country in sorted(counts):
        operators = counts[country]
        operator_map: dict[str, dict[str, int]] = {}
        total: dict[str, int] = {}
        for operator in sorted(operators):
            services = operators[operator]
            if rent_only:
                services = {RENT: services.get(RENT, 0)}
            operator_map[operator] = dict(services)
            for service, count in services.items():
                total[service] = total.get(service, 0) + count
        operator_map[ANY_OPERATOR] = total
        country_list.append({"country": country, "operatorMap": operator_map})
    return {"countryList": country_list, "status": SUCCESS}


def push_sms_body(
    *, key: str, sms_id: int, number: str, sender: str, text: str, rent: bool
) -> dict[str, Any]:
    """PUSH_SMS: `phone` and `smsId` are integers; rent SMS carry `service: "rent"`."""
    body: dict[str, Any] = {
        "action": PUSH_SMS,
        "key": key,
        "smsId": sms_id,
        "phone": int(number),
        "phoneFrom": sender,
        "text": text,
    }
    if rent:
        body["service"] = RENT
    return body


def push_outcome(http_status: int, payload: Any) -> tuple[str, str | None]:
    """Classify a PUSH_SMS reply: ("pushed" | "refused" | "retry", what the marketplace said).

    `payload` is the decoded JSON body, or the text when the body is not JSON. Delivered means
    HTTP 200 and a JSON object whose `status` is SUCCESS, nothing looser (§D.10): an SMS wrongly
    taken as delivered is lost, one wrongly retried is only sent again with the same smsId. A
    final refusal may come in any field or as the bare text, since its form is not documented.
    """
    if push_delivered(http_status, payload):
        return "pushed", None
    for word in _reply_words(payload):
        if word in FINAL_PUSH_REFUSALS:
            return "refused", word
    return "retry", f"http={http_status} reply={_shown_reply(payload)}"


#: How much of an unexpected PUSH_SMS reply is kept in the record and the log.
PUSH_REPLY_SHOWN_CHARS = 80


def _reply_words(payload: Any) -> list[str]:
    """The status-like words of a reply: its status, error and response fields, or its text."""
    if isinstance(payload, dict):
        values = [payload.get(field) for field in ("status", "error", "response")]
    else:
        values = [payload]
    return [v.strip().upper() for v in values if isinstance(v, str) and v.strip()]


def _shown_reply(payload: Any) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload)
    return repr(text[:PUSH_REPLY_SHOWN_CHARS])
