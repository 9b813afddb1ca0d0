"""Which daemon answers on an admin port.

Every reply of the admin endpoint names the configuration file its daemon was started with and
its process id, in two headers. The command line compares the file with the one it was given
before it shows or changes anything: a port taken by another daemon (or another program) must
not make `simfarm release` act on someone else's farm.

Kept apart from the endpoint itself so the command line can read it without importing the
server.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

CONFIG_HEADER = "Simfarm-Config"
PID_HEADER = "Simfarm-Pid"
#: The config header's value for a daemon built without a file (the demo).
NO_FILE = "-"


def config_identity(path: str | os.PathLike[str]) -> Path:
    """A configuration file as both sides compare it: absolute, symbolic links resolved."""
    return Path(path).resolve()


@dataclass(frozen=True)
class DaemonIdentity:
    """The configuration file a daemon runs (None: built without one) and its process id."""

    config: Path | None
    pid: int

    @classmethod
    def of_this_process(cls, config: str | os.PathLike[str] | None) -> DaemonIdentity:
        return cls(config_identity(config) if config is not None else None, os.getpid())

    def headers(self) -> list[tuple[bytes, bytes]]:
        """The identity as raw ASGI headers (the path percent-encoded: headers are ASCII)."""
        config = quote(os.fspath(self.config), safe="/") if self.config is not None else NO_FILE
        return [
            (CONFIG_HEADER.lower().encode(), config.encode("ascii")),
            (PID_HEADER.lower().encode(), str(self.pid).encode("ascii")),
        ]

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> DaemonIdentity | None:
        """The identity a reply carries; None when it carries none (it is not simfarm's)."""
        config, pid = headers.get(CONFIG_HEADER), headers.get(PID_HEADER)
        if config is None or pid is None or not pid.isdigit():
            return None
        return cls(None if config == NO_FILE else Path(unquote(config)), int(pid))

    def describe(self) -> str:
        """ "/etc/simfarm/simfarm.toml (pid 812)" for a message."""
        runs = os.fspath(self.config) if self.config is not None else "no configuration file"
        return f"{runs} (pid {self.pid})"
