"""Logging: one line per event, `key=value`, fit for journald and for grep.

Messages are written as `event=name key=value ...`; the formatter puts the level and the logger in
front, and a UTC timestamp unless stderr is the systemd journal (which stamps lines itself and
takes the level from a `<N>` prefix). A traceback stays on its line, its newlines escaped.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Mapping
from typing import TextIO

#: syslog priorities by logging level, for the journal's `<N>` line prefix.
_JOURNAL_PRIORITY = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
#: Libraries that log every request at INFO; they are heard from only at DEBUG.
_CHATTY_LOGGERS = ("uvicorn.access", "httpx", "httpcore")
_KEY_VALUE_START = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*=")


def quote_value(value: object) -> str:
    """A value as it appears after `key=`: bare when it can be, JSON-quoted otherwise."""
    text = str(value)
    if text and not any(ch.isspace() or ch in '"=\\' for ch in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def mask_secret(secret: str) -> str:
    """A secret as it may appear in a log: only its last 2-4 characters (none if it is short)."""
    shown = min(4, len(secret) // 4)
    if shown < 2:
        return "****"
    return "****" + secret[-shown:]


class KeyValueFormatter(logging.Formatter):
    """`[time] level=INFO logger=gateway.pool.pool event=... key=value` on a single line."""

    def __init__(self, *, journal: bool = False) -> None:
        super().__init__()
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        parts: list[str] = []
        if self.journal:
            parts.append(f"<{_priority(record.levelno)}>level={record.levelname}")
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            parts.append(f"{stamp}.{int(record.msecs):03d}Z level={record.levelname}")
        parts.append(f"logger={record.name}")
        message = record.getMessage()
        if _KEY_VALUE_START.match(message):
            parts.append(message)
        else:
            parts.append(f"msg={quote_value(message)}")
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            parts.append(f"error={quote_value(f'{type(error).__name__}: {error}')}")
            parts.append(f"traceback={quote_value(self.formatException(record.exc_info))}")
        elif record.exc_text:
            parts.append(f"traceback={quote_value(record.exc_text)}")
        if record.stack_info:
            parts.append(f"stack={quote_value(record.stack_info)}")
        return " ".join(parts).replace("\r", "\\r").replace("\n", "\\n")


def _priority(levelno: int) -> int:
    for level in sorted(_JOURNAL_PRIORITY, reverse=True):
        if levelno >= level:
            return _JOURNAL_PRIORITY[level]
    return 7


def stream_is_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when `stream` is the systemd journal (JOURNAL_STREAM names its device and inode)."""
    environ = os.environ if environ is None else environ
    expected = environ.get("JOURNAL_STREAM", "")
    if not expected:
        return False
    try:
        status = os.fstat(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return False
    return expected == f"{status.st_dev}:{status.st_ino}"


class _SimfarmHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so a second setup replaces it."""


def setup_logging(
    level: str | int = "INFO",
    *,
    stream: TextIO | None = None,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Send every log record at `level` and above to stderr (or `stream`), one line each."""
    stream = sys.stderr if stream is None else stream
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _SimfarmHandler):
            root.removeHandler(handler)
    handler = _SimfarmHandler(stream)
    handler.setFormatter(KeyValueFormatter(journal=stream_is_journal(stream, environ)))
    root.addHandler(handler)
    root.setLevel(numeric)
    for name in _CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if numeric <= logging.DEBUG else "WARNING")
