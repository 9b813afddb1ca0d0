"""Whether a TCP port can be listened on, and the one line that says why not.

The daemon and the demo check their ports before they touch anything, so a port another
program holds is a plain sentence naming the setting to change, not a traceback after half a
start.
"""

from __future__ import annotations

import errno
import os
import socket


def cannot_listen(host: str, port: int) -> OSError | None:
    """Why `host:port` cannot be listened on right now (None when it can; port 0 always can).

    Bound the way the servers bind (SO_REUSEADDR), so a port left in TIME_WAIT counts as free.
    """
    if port == 0:
        return None
    try:
        with socket.create_server((host, port)):
            return None
    except OSError as exc:
        return exc


def reason(exc: OSError) -> str:
    """ "address already in use": the error without the address socket.create_server appends
    (a host that does not resolve has a negative errno of its own, gaierror's)."""
    if exc.errno is not None and exc.errno > 0:
        return os.strerror(exc.errno).lower()
    return (exc.strerror or str(exc)).lower()


def listen_failure(
    what: str, table: str, host: str, port: int, source: os.PathLike[str] | str | None, exc: OSError
) -> str:
    """One line: what cannot listen where, why, and which setting of which file to change."""
    where = f"the [{table}] table of {os.fspath(source)}" if source is not None else f"[{table}]"
    if exc.errno == errno.EADDRINUSE:
        fix = (
            f"another program holds port {port}: stop it, or set another `port` in {where} "
            "(0 picks a free one)"
        )
    else:
        fix = f"check `host` and `port` in {where}"
    return f"{what} cannot listen on {host}:{port} ({reason(exc)}); {fix}"
