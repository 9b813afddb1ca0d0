"""The systemd notify protocol (sd_notify(3)) without a dependency.

systemd passes the address of its notification socket in ``$NOTIFY_SOCKET``: a file-system path,
or an abstract-namespace name written with a leading ``@``. A notification is one datagram of
newline-separated ``KEY=value`` fields ("READY=1", "STATUS=…", "WATCHDOG=1", "STOPPING=1").

Outside systemd the variable is absent and every call here does nothing, so the daemon runs the
same under a terminal, in tests and under the unit in ``systemd/simfarm.service``.

The watchdog: with ``WatchdogSec=`` set, systemd exports ``$WATCHDOG_USEC`` (and ``$WATCHDOG_PID``)
and restarts the service when no "WATCHDOG=1" arrives within that time. ``watchdog_pinger`` sends it
from a task on the event loop itself, so a loop that is blocked (a synchronous call that hangs, a
runaway computation) stops the pings and systemd restarts the daemon: that is the point.

Socket errors never reach the caller: the daemon must not fail because its supervisor went away.
Each kind of failure is logged once, then ignored.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)

# The fraction of the watchdog interval between two pings; sd_watchdog_enabled(3) recommends half.
WATCHDOG_PING_FRACTION = 0.5

_logged_failures: set[str] = set()


def _log_once(kind: str, message: str, *args: object) -> None:
    if kind in _logged_failures:
        return
    _logged_failures.add(kind)
    log.warning(message, *args)


def _socket_address() -> str | None:
    """The notification socket's address as AF_UNIX wants it, or None when not under systemd."""
    value = os.environ.get("NOTIFY_SOCKET", "")
    if not value:
        return None
    if value.startswith("@"):
        # Abstract namespace: a leading NUL byte instead of the '@'.
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    _log_once(
        "address",
        "event=sd_notify_unsupported_address notify_socket=%r "
        "(only Unix socket paths and @abstract names are supported)",
        value,
    )
    return None


def notify(*fields: str) -> bool:
    """Send one notification made of ``fields`` (e.g. "READY=1", "STATUS=3 modems live").

    Returns True when the datagram was sent, False when there is no socket to send to or sending
    failed (logged once). Never raises for socket errors, never blocks: the socket is non-blocking,
    so a full receive queue drops the notification instead of stalling the event loop.
    """
    address = _socket_address()
    if address is None or not fields:
        return False
    # A newline inside a value would start a new field; the protocol has no escaping.
    message = "\n".join(field.replace("\n", " ") for field in fields).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.setblocking(False)
            sock.sendto(message, address)
    except OSError as exc:
        _log_once(
            f"send:{type(exc).__name__}",
            "event=sd_notify_failed notify_socket=%r error=%r "
            "(further failures of this kind are not logged)",
            os.environ.get("NOTIFY_SOCKET"),
            exc,
        )
        return False
    return True


def watchdog_interval() -> float | None:
    """The watchdog timeout in seconds when systemd expects pings from this process, else None.

    Reads ``$WATCHDOG_USEC``; when ``$WATCHDOG_PID`` is set it must be this process's id (the
    variables may have been inherited by a child that is not the one being watched).
    """
    usec_text = os.environ.get("WATCHDOG_USEC", "")
    if not usec_text:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        _log_once("watchdog_usec", "event=sd_watchdog_bad_usec watchdog_usec=%r", usec_text)
        return None
    if usec <= 0:
        return None
    pid_text = os.environ.get("WATCHDOG_PID", "")
    if pid_text:
        try:
            pid = int(pid_text)
        except ValueError:
            return None
        if pid != os.getpid():
            return None
    return usec / 1_000_000


async def watchdog_pinger(interval: float, lost: Callable[[], Sequence[str]] = lambda: ()) -> None:
    """Send "WATCHDOG=1" now and then every ``interval`` / 2 seconds, until cancelled.

    ``lost()`` names what the process cannot heal by itself (a vital task that keeps failing):
    while it names anything, no ping is sent, so systemd restarts the service. Run it as a task on
    the daemon's event loop (see ``start_watchdog``); it never returns.
    """
    if interval <= 0:
        raise ValueError(f"watchdog interval must be positive, got {interval!r}")
    period = interval * WATCHDOG_PING_FRACTION
    withheld = False
    while True:
        gone = list(lost())
        if not gone:
            notify("WATCHDOG=1")
        elif not withheld:
            log.error(
                "event=watchdog_withheld tasks=%s detail=%r",
                ",".join(gone),
                "vital tasks keep failing: systemd will restart the daemon",
            )
        withheld = bool(gone)
        await asyncio.sleep(period)


def start_watchdog(lost: Callable[[], Sequence[str]] = lambda: ()) -> asyncio.Task[None] | None:
    """Start ``watchdog_pinger`` on the running loop when systemd asked for pings, else None."""
    interval = watchdog_interval()
    if interval is None:
        return None
    log.info("event=watchdog_enabled interval_seconds=%.3f", interval)
    return asyncio.create_task(watchdog_pinger(interval, lost), name="sd-watchdog")
