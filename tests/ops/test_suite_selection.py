"""The README's test command is CI's: a plain `pytest` leaves the slow tests out, `-m slow` asks
for them by name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
#: Collection only, of two small folders; bounded so a hang fails instead of stalling the suite.
COLLECT_TIMEOUT_SECONDS = 120
#: The tests marked slow: the hour-long soak and the benchmark smoke run.
SLOW_TESTS = (
    "tests/soak/test_soak.py::test_soak_long",
    "tests/bench/test_bench_smoke.py::test_tiny_run_of_a_and_f_writes_the_report",
)


def collected(*args: str) -> list[str]:
    """The node ids pytest would run from the project folder with these arguments."""
    environment = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=COLLECT_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_the_default_run_leaves_the_slow_tests_out() -> None:
    default = collected("tests/soak", "tests/bench")
    assert "tests/soak/test_soak.py::test_soak_two_minutes" in default
    assert not set(SLOW_TESTS) & set(default)


def test_minus_m_slow_asks_for_them() -> None:
    assert sorted(collected("tests/soak", "tests/bench", "-m", "slow")) == sorted(SLOW_TESTS)
