"""The marketplace-facing HTTP API (Starlette).

Every action is accepted as POST with a JSON body on `/` and on the documented paths. The app
knows the pool and the dialect module, never a serial port. Bad input gets a clear `ERROR` reply
and changes nothing; nothing a client sends can produce a 500.
"""

from __future__ import annotations

import hmac
import inspect
import json
import logging
import math
import time
import zlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.marketplaces import onlinesim
from gateway.pool.pool import NoNumbers, Pool, UnknownActivation
from gateway.pool.storage import StoreError

log = logging.getLogger(__name__)

#: Largest request body accepted, before and after gzip decoding.
MAX_BODY_BYTES = 64 * 1024
JSON_TYPE = "application/json; charset=utf-8"


class ApiError(Exception):
    def __init__(self, http_status: int, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message


def encode_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def json_response(payload: dict[str, Any], status_code: int = 200) -> Response:
    return Response(encode_json(payload), status_code=status_code, media_type=JSON_TYPE)


class ApiMetrics(Protocol):
    """What the API reports to metrics (gateway.ops.metrics.Metrics); optional."""

    def request_done(self, action: str, seconds: float) -> None: ...

    def get_number_done(self, outcome: str) -> None: ...


#: A health check: a report with "status" ("ok" or not), plain or awaitable.
HealthCheck = Callable[[], dict[str, Any] | Awaitable[dict[str, Any]]]


class MarketplaceApi:
    """Routes marketplace requests to the pool; holds the cached GET_SERVICES replies."""

    def __init__(
        self,
        pool: Pool,
        key: str,
        health: HealthCheck | None = None,
        metrics: ApiMetrics | None = None,
    ):
        self.pool = pool
        self._key = key.encode()
        self._health = health
        self._metrics = metrics
        # The encoded GET_SERVICES body per form (rent-only or not) and the pool version it
        # shows. Bytes, not a Response: middleware (gzip) rewrites a Response's headers.
        self._services_cache: dict[bool, tuple[int, bytes]] = {}
        self._handlers: dict[str, Callable[[onlinesim.Request], Awaitable[Response]]] = {
            onlinesim.GET_SERVICES: self._get_services,
            onlinesim.GET_NUMBER: self._get_number,
            onlinesim.FINISH_ACTIVATION: self._finish_activation,
        }

    def routes(self) -> list[Route]:
        paths = ["/", *onlinesim.PATHS]
        return [
            *(Route(path, self.endpoint, methods=["POST"]) for path in paths),
            Route("/health", self.health, methods=["GET"]),
        ]

    async def endpoint(self, request: Request) -> Response:
        metrics = self._metrics
        started = time.perf_counter() if metrics is not None else 0.0
        action: str | None = None
        handled = False
        try:
            payload = await read_json(request)
            path = request.scope["path"]
            key = onlinesim.presented_key(payload)
            action = onlinesim.requested_action(payload, path)
            # The key before the other fields: a caller without it learns nothing about them.
            self._authenticate(request, key)
            parsed = onlinesim.parse_request(payload, path)
            handled = True
            return await self._handlers[parsed.action](parsed)
        except ApiError as exc:
            return json_response(onlinesim.error_reply(exc.message), exc.http_status)
        except onlinesim.BadRequest as exc:
            return json_response(onlinesim.error_reply(str(exc)), 400)
        except StoreError as exc:
            log.error("event=store_failed error=%r", str(exc))
            return json_response(onlinesim.error_reply("storage unavailable, try again"), 503)
        finally:
            if metrics is not None and action is not None:
                metrics.request_done(action, time.perf_counter() - started)
                if not handled and action == onlinesim.GET_NUMBER:
                    metrics.get_number_done("error")  # refused before the pool was asked

    def _authenticate(self, request: Request, body_key: str | None) -> None:
        presented: list[str] = []
        if body_key is not None:
            presented.append(body_key)
        header = request.headers.get("authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise ApiError(401, "unauthorized: Authorization must be 'Bearer <key>'")
            presented.append(token.strip())
        if not presented:
            raise ApiError(401, "unauthorized: no key")
        for candidate in presented:
            # surrogatepass: whatever the text holds, comparing it never raises.
            if not hmac.compare_digest(candidate.encode("utf-8", "surrogatepass"), self._key):
                raise ApiError(401, "unauthorized: wrong key")

    async def _get_services(self, request: onlinesim.Request) -> Response:
        rent_only = request.rent_path
        version = self.pool.version
        cached = self._services_cache.get(rent_only)
        if cached is None or cached[0] != version:
            reply = onlinesim.services_reply(self.pool.service_counts(), rent_only=rent_only)
            cached = (version, encode_json(reply))
            self._services_cache[rent_only] = cached
        return Response(cached[1], media_type=JSON_TYPE)

    async def _get_number(self, request: onlinesim.Request) -> Response:
        outcome = "error"
        try:
            issued = await self.pool.get_number(request.number_request())
            outcome = "success"
        except NoNumbers:
            outcome = "no_numbers"
            return json_response(onlinesim.no_numbers_reply())
        finally:
            if self._metrics is not None:
                self._metrics.get_number_done(outcome)
        return json_response(onlinesim.number_reply(issued.number, issued.activation_id))

    async def _finish_activation(self, request: onlinesim.Request) -> Response:
        body = request.body
        assert isinstance(body, onlinesim.FinishActivationBody)
        try:
            await self.pool.finish(body.activationId, body.status, body.sum)
        except UnknownActivation:
            return json_response(onlinesim.error_reply("unknown activation"))
        except ValueError as exc:
            raise onlinesim.BadRequest(f"status: {exc}") from None
        return json_response(onlinesim.success_reply())

    async def health(self, request: Request) -> Response:
        report: dict[str, Any] = {"status": "ok", "live_sims": len(self.pool.live_numbers())}
        if self._health is not None:
            extra = self._health()
            if inspect.isawaitable(extra):
                extra = await extra
            report.update(extra)
        return json_response(report, 200 if report.get("status") in ("ok", "degraded") else 503)


async def read_json(request: Request) -> Any:
    """The request body as JSON: size-limited, gzip-aware, with a clear error for anything else."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise ApiError(400, "bad Content-Length")
        if int(declared) > MAX_BODY_BYTES:
            raise ApiError(413, f"body larger than {MAX_BODY_BYTES} bytes")
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise ApiError(413, f"body larger than {MAX_BODY_BYTES} bytes")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ApiError(400, "client disconnected") from None
    raw = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding == "gzip":
        raw = gunzip_limited(raw, MAX_BODY_BYTES)
    elif encoding not in ("identity", ""):
        raise ApiError(415, f"unsupported Content-Encoding: {encoding[:20]}")
    if not raw.strip():
        raise ApiError(400, "empty body: a JSON object is expected")
    return decode_json(raw)


def decode_json(raw: bytes) -> Any:
    """Strict JSON in UTF-8, as RFC 8259 has it, as Python values every later step can handle.

    Python's own decoder is looser than that and fails in ways of its own: it guesses UTF-16
    and UTF-32, takes NaN and Infinity, turns an escaped lone surrogate into a string nothing
    can encode, and raises a plain ValueError for an integer of over 4,300 digits. Each of those
    is refused here with a 400 that does not echo the body.
    """
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(400, f"body is not UTF-8 (byte {exc.start})") from None
    try:
        payload = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    except _NotJson as exc:
        raise ApiError(400, f"body is not valid JSON: {exc}") from None
    except ValueError:
        raise ApiError(400, "body is not valid JSON: a number in it is too long") from None
    except RecursionError:
        raise ApiError(400, "body is not valid JSON: nested too deeply") from None
    # A lone surrogate can only come from a \u escape, since the bytes were strict UTF-8.
    if "\\u" in text and _holds_lone_surrogate(payload):
        raise ApiError(400, "body is not valid JSON text: it escapes a lone UTF-16 surrogate")
    return payload


class _NotJson(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON value")


def _holds_lone_surrogate(payload: Any) -> bool:
    """Whether any string (or object key) in a decoded body cannot be encoded as UTF-8."""
    pending = [payload]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if not item.isascii():
                try:
                    item.encode()
                except UnicodeEncodeError:
                    return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def gunzip_limited(data: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing (413) one that inflates past `limit` (a gzip bomb)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise ApiError(400, f"body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise ApiError(413, f"body larger than {limit} bytes once decompressed")
    if not inflater.eof:
        raise ApiError(400, "body is not valid gzip: truncated")
    return out


async def _not_found(request: Request, exc: Exception) -> Response:
    return json_response(onlinesim.error_reply("no such endpoint"), 404)


def allow_header(exc: Exception) -> dict[str, str]:
    """The `Allow` header the router worked out for a 405; RFC 9110 says every 405 carries one."""
    headers = exc.headers if isinstance(exc, HTTPException) else None
    allowed = (headers or {}).get("Allow")
    if not allowed:
        return {}
    # The router lists a set, in no fixed order; sorted, the reply is the same every time.
    return {"Allow": ", ".join(sorted(m.strip() for m in allowed.split(",")))}


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    allowed = allow_header(exc)
    message = f"use {allowed['Allow']}" if allowed else "method not allowed"
    if allowed.get("Allow") == "POST":
        message += " with a JSON body"
    reply = json_response(onlinesim.error_reply(message), 405)
    reply.headers.update(allowed)
    return reply


#: An unexpected error's traceback is logged at most once per this many seconds; the others
#: get one line each. Whatever a client can trigger, it cannot fill the log with tracebacks.
TRACEBACK_INTERVAL_SECONDS = 60.0


class ContainErrors:
    """Answers an unexpected exception with 503 and ends it here, logged once.

    Starlette's own last-resort handler re-raises after answering, so that the server logs a
    second traceback of the same error; this middleware sits inside it and does not.
    """

    def __init__(self, app: ASGIApp, interval: float = TRACEBACK_INTERVAL_SECONDS) -> None:
        self.app = app
        self.interval = interval
        self._last_traceback = -math.inf
        self._quiet = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            self._log(scope, exc)
            if not started:
                reply = json_response(onlinesim.error_reply("internal error"), 503)
                await reply(scope, receive, send)

    def _log(self, scope: Scope, exc: Exception) -> None:
        now = time.monotonic()
        path = scope.get("path", "")
        if now - self._last_traceback >= self.interval:
            log.error(
                "event=api_internal_error path=%r error=%s since_last_traceback=%d",
                path,
                type(exc).__name__,
                self._quiet,
                exc_info=exc,
            )
            self._last_traceback = now
            self._quiet = 0
        else:
            self._quiet += 1
            log.error("event=api_internal_error path=%r error=%s", path, type(exc).__name__)


def create_app(api: MarketplaceApi, extra_routes: list[Route] | None = None) -> Starlette:
    return Starlette(
        routes=[*api.routes(), *(extra_routes or [])],
        middleware=[Middleware(ContainErrors), Middleware(GZipMiddleware, minimum_size=0)],
        exception_handlers={404: _not_found, 405: _method_not_allowed},
    )
