"""Smoke test of the benchmark harness: a tiny run of measures (a) and (f), report structure only.

The figures themselves are not checked (this machine is shared and small); what is checked is that
the one command runs its children, stops them, and writes a report with the sections it promises.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The whole tiny run: seeding, two API servers, twelve short cells, the push drain.
RUN_TIMEOUT_SECONDS = 240


@pytest.mark.slow
def test_tiny_run_of_a_and_f_writes_the_report(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    figures = tmp_path / "figures.json"
    command = [
        sys.executable,
        "-m",
        "bench.run",
        "--quick",
        "--only",
        "a,f",
        "--history-rows",
        "20000",
        "--seconds",
        "0.3",
        "--clients",
        "1,4",
        "--pushes",
        "50",
        "--no-profile",
        "--workdir",
        str(tmp_path / "work"),
        "--report",
        str(report),
        "--json",
        str(figures),
    ]
    done = subprocess.run(
        command,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]

    text = report.read_text()
    for heading in (
        "# simfarm benchmarks",
        "## Machine",
        "## Targets",
        "## (a) and (b): the marketplace API",
        "## (f): draining the PUSH_SMS outbox",
        "## How it is measured",
    ):
        assert heading in text
    assert "python -m bench.run --quick --only a,f" in text
    assert str(tmp_path) not in text  # no machine paths in the report
    for row in ("GET_NUMBER (+ FINISH) p99", "GET_SERVICES throughput vs bare", "queued pushes"):
        assert row in text
    assert "PASS" in text or "MISS" in text

    data = json.loads(figures.read_text())
    cells = {(c["server"], c["action"], c["concurrency"]) for c in data["api"]}
    for server in ("simfarm", "bare"):
        for action in ("GET_NUMBER", "GET_SERVICES"):
            for clients in (1, 4):
                assert (server, action, clients) in cells
    assert all(c["requests"] > 0 and c["sims"] == 2000 for c in data["api"])
    assert data["pushes"]["queued"] == 50
    assert data["pushes"]["pushed"] == 50

    # The table went to stdout too.
    assert "measure" in done.stdout and "result" in done.stdout
