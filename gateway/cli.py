"""The `simfarm` command line."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    print("simfarm: not wired yet", file=sys.stderr)
    return 2
