"""The daemon as a process for the crash tests, with a farm of fake SIMs and an SMS hook.

    python -m tests.gateway.crash_daemon CONFIG SIMS

Builds the real Daemon from the configuration file, announces SIMS fake SIMs (the n-th is
`tests.gateway.helpers.sim(n)`), prints `ready <port>` and then obeys one command per line on
stdin:

    sms <slot> <fingerprint>   an SMS arrives on SIM <slot>; answers
                               `stored <fingerprint> <sms id> <activation id or ->`

It runs until stdin is closed (then it stops cleanly) or it is killed, which is the point.
"""

from __future__ import annotations

import asyncio
import sys
import time

from gateway.config import load_config
from gateway.daemon import Daemon
from gateway.ops.logs import setup_logging
from gateway.pool.records import IncomingSms
from tests.gateway.helpers import sim


def reply(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve(config_path: str, sims: int) -> int:
    config = load_config(config_path)
    setup_logging("WARNING")
    daemon = Daemon(config)
    await daemon.start()
    try:
        assert daemon.pool is not None
        for n in range(sims):
            if not await daemon.pool.sim_online(sim(n)):
                raise RuntimeError(f"fake SIM {n} was refused")
        reply(f"ready {daemon.port}")
        loop = asyncio.get_running_loop()
        commands = asyncio.StreamReader()
        await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(commands), sys.stdin.buffer
        )
        while line := (await commands.readline()).decode().strip():
            word, *args = line.split()
            if word != "sms" or len(args) != 2:
                reply(f"error unknown command {line!r}")
                continue
            slot, fingerprint = int(args[0]), args[1]
            stored = await daemon.pool.sms_received(
                IncomingSms(
                    iccid=sim(slot).iccid,
                    fingerprint=fingerprint,
                    sender="VK",
                    text=f"Your code {fingerprint}",
                    pdus=("00",),
                    received_at=time.time(),
                )
            )
            activation = "-" if stored.activation_id is None else str(stored.activation_id)
            reply(f"stored {fingerprint} {stored.id} {activation}")
    finally:
        await daemon.stop()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(serve(sys.argv[1], int(sys.argv[2]))))
