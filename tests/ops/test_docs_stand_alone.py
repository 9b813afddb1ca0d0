"""The documents a provider reads stand alone: they cite nothing that is not in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "docs" / "raspberry-pi.md",
    REPO_ROOT / "docs" / "architecture.md",
    REPO_ROOT / "docs" / "BENCHMARKS.md",
    REPO_ROOT / "config" / "simfarm.example.toml",
]
#: Citations of design notes and specifications that live outside the repository.
OUTSIDE = re.compile(r"DESIGN\.md|\bspec\b|§")


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_no_citation_of_what_is_not_in_the_repository(document: Path) -> None:
    lines = document.read_text(encoding="utf-8").splitlines()
    cited = [f"{n}: {line}" for n, line in enumerate(lines, 1) if OUTSIDE.search(line)]
    assert cited == []


def test_sections_named_in_the_pi_guide_exist_and_fit() -> None:
    text = (REPO_ROOT / "docs" / "raspberry-pi.md").read_text(encoding="utf-8")
    titles = dict(re.findall(r"^## (\d+)\. (.+)$", text, re.M))
    for number in re.findall(r"\(section (\d+)\)", text):
        assert number in titles, number
    proxy = next(n for n, title in titles.items() if "reverse proxy" in title)
    assert f"reverse proxy (section {proxy})" in text


def test_the_pi_guide_puts_simfarm_on_the_path_before_it_runs_it_by_name() -> None:
    text = (REPO_ROOT / "docs" / "raspberry-pi.md").read_text(encoding="utf-8")
    link = text.index("ln -sf /opt/simfarm/venv/bin/simfarm /usr/local/bin/simfarm")
    command = r"simfarm (?:--version|--help|check-config|run|modems|activations|sms|release|trace)"
    by_name = re.search(rf"^(?:sudo -u simfarm )?\s*{command}\b", text, re.M)
    assert by_name is not None and link < by_name.start()
