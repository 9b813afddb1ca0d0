"""The yardstick: a bare Starlette JSON endpoint, served exactly like the daemon's API.

Same uvicorn settings (gateway.marketplaces.http_server.BackgroundServer), same kind of process
(its own, under asyncio.run), same client. The endpoint reads the JSON body, decodes it and answers
a small JSON object: the least any JSON-over-HTTP endpoint must do. GET_NUMBER-shaped requests get
a number and an increasing activationId, so the client's GET_NUMBER + FINISH cycle runs unchanged.
Prints `READY {"port": ...}` when it listens; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import signal
import sys

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.marketplaces.http_server import BackgroundServer

_ids = itertools.count(1)


async def endpoint(request: Request) -> Response:
    payload = json.loads(await request.body())
    if payload.get("action") == "GET_NUMBER":
        reply = {"number": 79160000000, "activationId": next(_ids), "status": "SUCCESS"}
    else:
        reply = {"status": "SUCCESS"}
    body = json.dumps(reply, separators=(",", ":")).encode()
    return Response(body, media_type="application/json")


def create_app() -> Starlette:
    return Starlette(routes=[Route("/", endpoint, methods=["POST"])])


async def serve(port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = BackgroundServer(create_app(), "127.0.0.1", port)
    await server.start()
    try:
        print("READY " + json.dumps({"port": server.port}), flush=True)
        await stop.wait()
        return 0
    finally:
        await server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serve_bare")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    return asyncio.run(serve(args.port))


if __name__ == "__main__":
    sys.exit(main())
