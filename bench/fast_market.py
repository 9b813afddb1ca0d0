"""A fast stand-in for the marketplace's PUSH_SMS endpoint, for measure (f).

Raw asyncio HTTP/1.1 with keep-alive: reads each request up to its Content-Length and answers
`{"status":"SUCCESS"}` at once, so the daemon's push worker, not the receiver, sets the pace.
`python -m bench.fast_market` prints `READY {"port": ...}`; on SIGTERM it prints
`RECEIVED {"pushes": N}` and exits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys

REPLY_BODY = b'{"status":"SUCCESS"}'
REPLY = (
    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(REPLY_BODY)).encode() + b"\r\n\r\n" + REPLY_BODY
)
#: Largest request head and body accepted.
MAX_REQUEST_BYTES = 256 * 1024


class Counter:
    pushes = 0


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length > MAX_REQUEST_BYTES:
                return
            if length:
                await reader.readexactly(length)
            Counter.pushes += 1
            writer.write(REPLY)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError, ConnectionError):
            await writer.wait_closed()


async def serve(port: int) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=MAX_REQUEST_BYTES)
    try:
        print("READY " + json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
        await stop.wait()
    finally:
        server.close()
    print("RECEIVED " + json.dumps({"pushes": Counter.pushes}), flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fast_market")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    return asyncio.run(serve(args.port))


if __name__ == "__main__":
    sys.exit(main())
