"""The operator's endpoint: a second Starlette app on its own (loopback) listener.

The marketplace never reaches it: it lists the modems, the open activations and the latest SMS
(texts included), releases an activation the marketplace forgot, switches a port's AT trace, and
serves `/metrics` and `/health`. It has no key; the `[admin]` table keeps it on 127.0.0.1. The
`simfarm modems|activations|sms|release|trace` commands are its client.

    GET  /modems               one row per modem port, merged with the pool's names for its SIM
    GET  /activations          open activations with their age
    GET  /sms?last=N           the N latest SMS (N <= 1000), newest first
    GET  /simbank              every SIM bank: channels, active slots, rotations, failures
    POST /release              {"activationId": N}: close it with no status and no history effect
    POST /trace                {"port": P, "on": true|false}: log every byte of a port at INFO
    GET  /metrics              Prometheus text format
    GET  /health               200 when the API, the store and the farm are well, else 503
    GET  /                     which daemon this is: its configuration file and process id

Every reply, errors included, names the daemon in two headers (gateway.ops.admin_identity), which
the command line checks before it shows or changes anything.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import re
import socket
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from drivers.events import ModemState, ModemStatus
from gateway.farm.supervisor import TaskTrouble
from gateway.marketplaces.api import ApiError, allow_header, read_json
from gateway.marketplaces.http_server import watch_serving
from gateway.ops.admin_identity import DaemonIdentity
from gateway.ops.listen_check import listen_failure
from gateway.ops.metrics import Metrics, SimbankSnapshots, metrics_endpoint
from gateway.pool.pool import UnknownActivation
from gateway.pool.storage import StoreError

if TYPE_CHECKING:
    from gateway.farm.farm import Farm
    from gateway.pool.pool import Pool
    from gateway.pool.records import ActivationRecord
    from gateway.pool.storage import Storage

log = logging.getLogger(__name__)

JSON_TYPE = "application/json; charset=utf-8"
#: Most SMS one `GET /sms` lists, and how many it lists unless told.
MAX_SMS_LISTED = 1000
DEFAULT_SMS_LISTED = 20
#: How long the health check waits for the store's round trip.
STORE_HEALTH_TIMEOUT_SECONDS = 2.0
#: How long in-flight admin requests may take to finish on shutdown.
SHUTDOWN_GRACE_SECONDS = 2.0
#: How long to wait for the admin listener to come up.
START_TIMEOUT_SECONDS = 30.0


class AdminListenError(RuntimeError):
    """The admin endpoint cannot listen; `str()` is the one line to show (port, setting, fix)."""


def admin_listen_error(
    host: str, port: int, source: os.PathLike[str] | str | None, exc: OSError
) -> AdminListenError:
    """Why the [admin] listener failed, naming the setting to change and how."""
    return AdminListenError(listen_failure("the admin endpoint", "admin", host, port, source, exc))


@dataclass(frozen=True, slots=True)
class HealthSource:
    """What the health check looks at: the parts up so far (None: not up yet), and how the
    API and the background tasks are doing, asked when the report gets to them."""

    store: Storage | None
    pool: Pool | None
    farm: Farm | None
    api_serving: Callable[[], bool]
    farm_running: Callable[[], bool]
    task_troubles: Callable[[], list[TaskTrouble]]


def json_response(payload: Any, status_code: int = 200) -> Response:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return Response(body, status_code=status_code, media_type=JSON_TYPE)


def error_response(message: str, status_code: int) -> Response:
    return json_response({"error": message}, status_code)


# --- health ---------------------------------------------------------------------------------


async def health_report(source: HealthSource) -> dict[str, Any]:
    """Whether the API, the store, the farm and the background tasks are well.

    "ok" means: the marketplace API is serving, a write and read round trip through the store's
    thread comes back within STORE_HEALTH_TIMEOUT_SECONDS, the farm runs with at least one SIM to
    sell, and no background task is failing. "degraded": a task failed and is being restarted,
    but none that selling depends on is down. Anything else is "failing". A modem that is
    not ready is listed but, while others sell, is not a failure: it costs only its own SIM.
    """
    problems: list[str] = []
    api_ok = source.api_serving()
    if not api_ok:
        problems.append("api: the marketplace API is not serving")
    store_ok, store_detail = await _store_health(source.store)
    if not store_ok:
        problems.append(f"store: {store_detail}")
    farm = source.farm
    statuses = farm.statuses() if farm is not None else []
    live = len(source.pool.live_numbers()) if source.pool is not None else 0
    farm_ok = source.farm_running()
    if not farm_ok:
        problems.append("farm: the modem supervisor is not running")
    elif live == 0:
        farm_ok = False
        problems.append(_nothing_to_sell(farm, statuses))
    not_ready = [
        {"port": s.port, "state": s.state.value, "detail": s.detail}
        for s in statuses
        if s.state is not ModemState.READY
    ]
    troubles = source.task_troubles()
    for trouble in troubles:
        problems.append(
            f"task {trouble.name}: "
            + ("restarted, not yet stable" if trouble.up else "down, restarting")
            + f" ({trouble.restarts} restarts; last error: {trouble.last_error})"
        )
    tasks_ok = not any(t.vital and not t.up for t in troubles)  # a vital task is down
    if not (api_ok and store_ok and farm_ok and tasks_ok):
        status = "failing"
    else:
        status = "degraded" if troubles else "ok"
    return {
        "status": status,
        "problems": problems,
        "api": {"ok": api_ok},
        "store": {"ok": store_ok, **({"detail": store_detail} if store_detail else {})},
        "farm": {
            "ok": farm_ok,
            "modems": len(statuses),
            "ready": len(statuses) - len(not_ready),
            "live_sims": live,
            "not_ready": not_ready,
            "ports": {
                pattern: list(paths)
                for pattern, paths in (farm.port_patterns if farm is not None else {}).items()
            },
        },
        "tasks": {
            "ok": not troubles,
            "failing": [
                {
                    "task": t.name,
                    "vital": t.vital,
                    "up": t.up,
                    "restarts": t.restarts,
                    "failing_for_seconds": round(t.failing_for_seconds, 1),
                    "last_error": t.last_error,
                }
                for t in troubles
            ],
        },
    }


def _nothing_to_sell(farm: Farm | None, statuses: list[ModemStatus]) -> str:
    """Why no SIM is live, in words that point at the next thing to check."""
    if statuses:
        return "farm: no SIM is live, there is nothing to sell (see farm.not_ready)"
    patterns = farm.port_patterns if farm is not None else {}
    named = ", ".join(repr(pattern) for pattern in patterns) or "(none)"
    return (
        f"farm: no modem port found: [[modems]] port {named} matches nothing; "
        "is the modem plugged in and are the udev rules installed?"
    )


#: Health statuses answered with 200 (the host sells); anything else is 503.
SERVING_STATUSES = frozenset({"ok", "degraded"})


async def _store_health(store: Storage | None) -> tuple[bool, str | None]:
    if store is None:
        return False, "not open"
    try:
        async with asyncio.timeout(STORE_HEALTH_TIMEOUT_SECONDS):
            ok = await store.ping()
    except TimeoutError:
        return False, f"no answer within {STORE_HEALTH_TIMEOUT_SECONDS:g} s"
    except StoreError as exc:
        return False, str(exc)
    return (True, None) if ok else (False, "the round trip read back the wrong value")


# --- the app --------------------------------------------------------------------------------


HealthCheck = Callable[[], Awaitable[dict[str, Any]] | dict[str, Any]]

#: The routes that read or change the parts, with their methods (AdminApi serves them).
PART_ROUTES: dict[str, list[str]] = {
    "/modems": ["GET"],
    "/activations": ["GET"],
    "/sms": ["GET"],
    "/simbank": ["GET"],
    "/release": ["POST"],
    "/trace": ["POST"],
}


class StartingAdminApi:
    """The admin routes while the daemon starts: who it is, its health and its counters; the
    routes over the parts answer 503 until the parts exist (then AdminApi takes over)."""

    def __init__(
        self,
        metrics: Metrics,
        health: HealthCheck,
        *,
        identity: DaemonIdentity | None = None,
    ) -> None:
        self.metrics = metrics
        self._health = health
        self.identity = identity or DaemonIdentity.of_this_process(None)

    def routes(self) -> list[Route]:
        return [
            Route("/", self.whoami, methods=["GET"]),
            *(Route(path, self.starting, methods=methods) for path, methods in PART_ROUTES.items()),
            Route("/metrics", metrics_endpoint(self.metrics), methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
        ]

    async def starting(self, request: Request) -> Response:
        return error_response("the daemon is starting", 503)

    async def whoami(self, request: Request) -> Response:
        config = self.identity.config
        return json_response(
            {
                "daemon": {
                    "config": os.fspath(config) if config is not None else None,
                    "pid": self.identity.pid,
                }
            }
        )

    async def health(self, request: Request) -> Response:
        report = self._health()
        if inspect.isawaitable(report):
            report = await report
        return json_response(report, 200 if report.get("status") in SERVING_STATUSES else 503)


class AdminApi(StartingAdminApi):
    """The operator's routes over the daemon's pool, store, farm and SIM banks."""

    def __init__(
        self,
        *,
        pool: Pool,
        farm: Farm,
        store: Storage,
        simbanks: SimbankSnapshots | None,
        metrics: Metrics,
        health: HealthCheck,
        clock: Callable[[], float] = time.time,
        identity: DaemonIdentity | None = None,
    ) -> None:
        super().__init__(metrics, health, identity=identity)
        self.pool = pool
        self.farm = farm
        self.store = store
        self.simbanks = simbanks
        self.clock = clock

    def routes(self) -> list[Route]:
        return [
            Route("/", self.whoami, methods=["GET"]),
            Route("/modems", self.modems, methods=PART_ROUTES["/modems"]),
            Route("/activations", self.activations, methods=PART_ROUTES["/activations"]),
            Route("/sms", self.sms, methods=PART_ROUTES["/sms"]),
            Route("/simbank", self.simbank, methods=PART_ROUTES["/simbank"]),
            Route("/release", self.release, methods=PART_ROUTES["/release"]),
            Route("/trace", self.trace, methods=PART_ROUTES["/trace"]),
            Route("/metrics", metrics_endpoint(self.metrics), methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
        ]

    # --- reading ------------------------------------------------------------------------------

    async def modems(self, request: Request) -> Response:
        farm = self.farm
        statuses = sorted(farm.statuses(), key=lambda status: natural_order(status.port))
        patterns = farm.port_patterns
        return json_response(
            {
                "modems": [self.modem_row(s) for s in statuses],
                "ports": {pattern: list(paths) for pattern, paths in patterns.items()},
            }
        )

    def modem_row(self, status: ModemStatus) -> dict[str, Any]:
        """One modem as the operator sees it: the driver's snapshot and the pool's names."""
        pool = self.pool
        live = None
        known = None
        if status.iccid is not None:
            live = next((s for s in pool.live_numbers() if s.iccid == status.iccid), None)
            known = pool.known_sim(status.iccid)
        number = status.number or (known.number if known else None)
        open_activation = pool.open_activation_for(number) if number else None
        last_sms = status.last_sms_at
        return {
            "port": status.port,
            "state": status.state.value,
            "model": " ".join(p for p in (status.manufacturer, status.model) if p) or None,
            "revision": status.revision,
            "imei": status.imei,
            "iccid": status.iccid,
            "imsi": status.imsi,
            "number": number,
            "number_source": status.number_source,
            "country": live.country if live else (known.country if known else None),
            "operator": live.operator if live else (known.operator if known else None),
            "registration": status.registration,
            "network": status.operator_code,
            "signal": status.signal_rssi,
            "storage": {m: {"used": u, "total": t} for m, (u, t) in sorted(status.storage.items())},
            "last_sms_at": last_sms,
            "last_sms_age_seconds": _age(self.clock(), last_sms),
            "live": live is not None,
            "open_activation": open_activation.id if open_activation else None,
            "timeouts": status.timeouts,
            "recoveries": dict(status.recoveries),
            "detail": status.detail,
        }

    async def activations(self, request: Request) -> Response:
        now = self.clock()
        rows = [_activation_row(a, now) for a in self.pool.open_activations()]
        return json_response({"activations": rows})

    async def sms(self, request: Request) -> Response:
        raw = request.query_params.get("last", str(DEFAULT_SMS_LISTED))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_SMS_LISTED:
            return error_response(f"last must be a whole number from 1 to {MAX_SMS_LISTED}", 400)
        try:
            rows = await self.store.recent_sms(int(raw))
        except StoreError as exc:
            return error_response(f"storage unavailable: {exc}", 503)
        return json_response(
            {
                "sms": [
                    {
                        "id": r.id,
                        "received_at": r.received_at,
                        "iccid": r.iccid,
                        "number": r.number,
                        "sender": r.sender,
                        "text": r.text,
                        "activation_id": r.activation_id,
                        "push_state": r.push_state,
                    }
                    for r in rows
                ]
            }
        )

    async def simbank(self, request: Request) -> Response:
        """The SIM banks' snapshot (an empty list of boards when none are configured)."""
        boards = self.simbanks.snapshot() if self.simbanks is not None else []
        return json_response({"boards": boards})

    # --- acting -------------------------------------------------------------------------------

    async def release(self, request: Request) -> Response:
        try:
            body = await _object(request)
        except ApiError as exc:
            return error_response(exc.message, exc.http_status)
        activation_id = body.get("activationId")
        if type(activation_id) is not int or activation_id < 1:
            return error_response('"activationId" must be a positive whole number', 400)
        try:
            released = await self.pool.release(activation_id)
        except UnknownActivation:
            return error_response(f"no activation {activation_id}", 404)
        except StoreError as exc:
            return error_response(f"storage unavailable: {exc}", 503)
        if released is None:
            return error_response(f"activation {activation_id} is already finished", 409)
        return json_response({"released": _activation_row(released, self.clock())})

    async def trace(self, request: Request) -> Response:
        try:
            body = await _object(request)
        except ApiError as exc:
            return error_response(exc.message, exc.http_status)
        port, on = body.get("port"), body.get("on")
        if not isinstance(port, str) or not port:
            return error_response('"port" must be the path of a modem port', 400)
        if not isinstance(on, bool):
            return error_response('"on" must be true or false', 400)
        farm = self.farm
        try:
            running = farm.set_trace(port, on)
        except KeyError:
            known = ", ".join(s.port for s in farm.statuses()) or "none"
            return error_response(f"no modem port {port} (ports: {known})", 404)
        return json_response({"port": port, "trace": on, "driver_running": running})


def natural_order(port: str) -> tuple[tuple[int, int | str], ...]:
    """A sort key that puts /dev/pts/9 before /dev/pts/16: runs of digits compare as numbers."""
    return tuple(
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", port) if part
    )


def _activation_row(activation: ActivationRecord, now: float) -> dict[str, Any]:
    return {
        "activation_id": activation.id,
        "number": activation.number,
        "iccid": activation.iccid,
        "service": activation.service,
        "kind": "rent" if activation.rent else "single",
        "country": activation.country,
        "operator": activation.operator,
        "sum": activation.sum,
        "created_at": activation.created_at,
        "age_seconds": _age(now, activation.created_at),
    }


def _age(now: float, then: float | None) -> float | None:
    return None if then is None else round(max(0.0, now - then), 3)


async def _object(request: Request) -> dict[str, Any]:
    payload = await read_json(request)
    if not isinstance(payload, dict):
        raise ApiError(400, "the body must be a JSON object")
    return payload


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(
        "no such endpoint (GET /, /modems, /activations, /sms, /simbank, /metrics, /health; "
        "POST /release, /trace)",
        404,
    )


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    reply = error_response(f"{request.method} is not allowed on {request.url.path}", 405)
    reply.headers.update(allow_header(exc))
    return reply


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("event=admin_internal_error path=%s", request.url.path, exc_info=exc)
    return error_response("internal error (see the daemon's log)", 500)


def create_admin_app(api: StartingAdminApi) -> Any:
    """The admin routes, every reply (errors included) carrying the daemon's identity."""
    app = Starlette(
        routes=api.routes(),
        exception_handlers={404: _not_found, 405: _method_not_allowed, Exception: _internal_error},
    )
    return _WithIdentity(app, api.identity)


class AdminAppSlot:
    """The ASGI app the admin listener serves, replaceable while it serves: the listener binds
    before the parts exist (a taken port stops the start), and their routes join later."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


class _WithIdentity:
    """ASGI wrapper outside Starlette's own error handling, so even a 500 says who answered."""

    def __init__(self, app: Any, identity: DaemonIdentity) -> None:
        self.app = app
        self.headers = identity.headers()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_identity(message: Any) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *self.headers]}
            await send(message)

        await self.app(scope, receive, send_with_identity)


# --- the listener ---------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the daemon owns SIGINT and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class AdminServer:
    """The admin app served on a socket bound here, so a busy port is a plain OSError.

    (uvicorn, left to bind itself, answers a busy port with SystemExit, which would end the
    whole daemon for the sake of the operator's side listener.)
    """

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self._sock: socket.socket | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def port(self) -> int:
        assert self._sock is not None
        return self._sock.getsockname()[1]

    async def start(self) -> None:
        """Listen; raises OSError when the address cannot be bound."""
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            self.host, self.requested_port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        if not infos:
            raise OSError(f"cannot resolve {self.host}")
        family, _, _, _, address = infos[0]
        self._sock = socket.create_server(address[:2], family=family)
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="admin")
        async with asyncio.timeout(START_TIMEOUT_SECONDS):
            while not self._server.started:
                if self._task.done():
                    self._task.result()
                    raise OSError(f"could not serve on {self.host}:{self.port}")
                await asyncio.sleep(0.01)

    async def serve(self) -> None:
        """Serve until stop(); raise when serving ends otherwise, so a supervisor restarts it."""
        if self._task is None or self._task.done():
            if self._sock is not None:
                self._sock.close()
            await self.start()
        assert self._task is not None
        await watch_serving(self._task, lambda: self._stopping, "the admin server")

    async def stop(self) -> None:
        self._stopping = True
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._task = None
        if self._sock is not None:
            self._sock.close()
