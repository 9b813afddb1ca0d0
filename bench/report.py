"""The machine, the table on stdout and docs/BENCHMARKS.md."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.procs import REPO_ROOT


@dataclass
class Target:
    """One row of the targets table."""

    measure: str
    target: str
    measured: str
    status: str  # "pass", "miss", "info" or "not run"


@dataclass
class Report:
    mode: str
    command: str
    machine: dict[str, str]
    started: float
    targets: list[Target] = field(default_factory=list)
    sections: list[tuple[str, str]] = field(default_factory=list)  # (title, markdown body)
    findings: list[str] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""
    seconds: float = 0.0


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {
        "cores": str(os.cpu_count()),
        "cpu": model,
        "memory": memory,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "commit": git_commit(),
        "http": http_stack(),
    }


def git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "gateway", "drivers"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + (" (with uncommitted changes in gateway/ or drivers/)" if dirty else "")


def http_stack() -> str:
    from importlib import metadata

    parts = []
    for name in ("uvicorn", "starlette", "h11", "httptools", "uvloop", "httpx"):
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            if name in ("httptools", "uvloop"):
                parts.append(f"no {name}")
    return ", ".join(parts)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def fmt(value: float | None, digits: int = 1, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}{unit}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out)


def targets_rows(report: Report) -> list[list[str]]:
    return [[t.measure, t.target, t.measured, t.status.upper()] for t in report.targets]


def print_summary(report: Report) -> None:
    print()
    print(
        f"simfarm benchmarks ({report.mode}) on {report.machine['cores']} cores, "
        f"{report.machine['cpu']}, Python {report.machine['python']}, "
        f"commit {report.machine['commit']}"
    )
    print()
    print(text_table(["measure", "target", "measured", "result"], targets_rows(report)))
    if report.findings:
        print()
        print("Findings:")
        for finding in report.findings:
            print(f"- {finding}")
    print()


def write_markdown(report: Report, path: Path) -> None:
    m = report.machine
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(report.started))
    parts = [
        "# simfarm benchmarks",
        "",
        f"Produced by `{report.command}` ({report.mode} mode) on {when}, "
        f"in {report.seconds:.0f} s. Regenerate with the same command; `--quick` is the "
        "two-minute version, the default is the full run.",
        "",
        "## Machine",
        "",
        markdown_table(
            ["what", "value"],
            [
                ["cores", m["cores"]],
                ["CPU", m["cpu"]],
                ["memory", m["memory"]],
                ["OS", m["os"]],
                ["Python", m["python"]],
                ["HTTP stack", m["http"]],
                ["simfarm commit", m["commit"]],
                ["load average before / after", f"{report.load_before} / {report.load_after}"],
            ],
        ),
        "",
        "The machine is shared: other people ran test suites on it during this run, so absolute "
        "figures are noisy (see the load average). The load generator runs on the same 2 cores "
        "as the server and competes with it for CPU; that is why every API figure is read next "
        "to a bare Starlette endpoint measured the same way, with the same client, in the same "
        "run, and why the ratio is the figure that counts.",
        "",
        "## Targets (the design's speed targets)",
        "",
        markdown_table(["measure", "target", "measured", "result"], targets_rows(report)),
        "",
    ]
    if report.findings:
        parts += ["## Findings", ""]
        parts += [f"- {finding}" for finding in report.findings]
        parts.append("")
    for title, body in report.sections:
        parts += [f"## {title}", "", body.rstrip(), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
