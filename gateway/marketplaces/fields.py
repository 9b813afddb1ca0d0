"""What every marketplace dialect reads and writes alike: sums, number prefixes, the key,
errors, the status words and the replies built from them.

Onlinesim and SMSHUB (and its clones) share the shape of GET_NUMBER: a price, and prefixes of
full international numbers that must not be issued. Each dialect module declares its own bodies
with these types, so both refuse bad input with the same words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

GET_SERVICES = "GET_SERVICES"
GET_NUMBER = "GET_NUMBER"
FINISH_ACTIVATION = "FINISH_ACTIVATION"
PUSH_SMS = "PUSH_SMS"

SUCCESS = "SUCCESS"
ERROR = "ERROR"
NO_NUMBERS = "NO_NUMBERS"
ANY_OPERATOR = "any"

#: The longest number prefix `exceptionPhoneSet` may hold (E.164 numbers are at most 15 digits).
MAX_PREFIX_DIGITS = 20


def _as_float(value: int | float) -> float:
    """A sum as the float the pool keeps: a JSON integer too large for a float is refused here."""
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("too large") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


# In the marketplace's currency; JSON allows any size of integer, the pool and the store hold a
# float.
Sum = Annotated[StrictInt | StrictFloat, Field(ge=0), AfterValidator(_as_float)]
# A prefix of the full international number: the docs send integers, SMSHUB digit strings.
Prefix = (
    Annotated[StrictInt, Field(ge=0, lt=10**MAX_PREFIX_DIGITS)]
    | Annotated[StrictStr, Field(pattern=rf"^[0-9]{{1,{MAX_PREFIX_DIGITS}}}$")]
)


class BadRequest(Exception):
    """A request the marketplace must be told is wrong (HTTP 400, nothing changed)."""


def presented_key(payload: Any) -> str | None:
    """The body's `key`, read on its own so that the key is checked before any other field."""
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    key = payload.get("key")
    if key is not None and not isinstance(key, str):
        raise BadRequest("key: must be a string")
    return key


BodyT = TypeVar("BodyT", bound=BaseModel)


def parse_body(
    payload: Any, bodies: Mapping[str, type[BodyT]], default_action: str | None = None
) -> tuple[str, BodyT]:
    """The action a decoded JSON body asks for and the body validated by that action's model.

    `default_action` stands when the body names none (Onlinesim's documented paths carry it).
    """
    if not isinstance(payload, dict):
        raise BadRequest("the body must be a JSON object")
    action = payload.get("action", default_action)
    if action is None:
        raise BadRequest("missing field: action")
    if not isinstance(action, str):
        raise BadRequest("action: must be a string")
    model = bodies.get(action)
    if model is None:
        raise BadRequest(f"unknown action: {action[:40]}")
    try:
        return action, model.model_validate(payload)
    except ValidationError as exc:
        raise BadRequest(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """The first validation error, in one line that names the field."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    if first["type"] == "missing":
        return f"missing field: {where}"
    return f"{where}: {first['msg']}"


def number_reply(number: str, activation_id: int) -> dict[str, Any]:
    """`number` is the full international number as a JSON number, never a string."""
    return {"number": int(number), "activationId": activation_id, "status": SUCCESS}


def no_numbers_reply() -> dict[str, Any]:
    return {"status": NO_NUMBERS}


def success_reply() -> dict[str, Any]:
    return {"status": SUCCESS}


def error_reply(message: str) -> dict[str, Any]:
    return {"status": ERROR, "error": message}


def push_delivered(http_status: int, payload: Any) -> bool:
    """A PUSH_SMS counts as delivered on HTTP 200 with a JSON object whose `status` is SUCCESS,
    nothing looser: an SMS wrongly taken as delivered is lost, one wrongly retried is only sent
    again with the same smsId."""
    status = payload.get("status") if isinstance(payload, dict) else None
    return http_status == 200 and isinstance(status, str) and status.strip().upper() == SUCCESS
