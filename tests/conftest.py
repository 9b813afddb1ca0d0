"""Fixtures shared by the whole suite."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Real modem captures live beside the project, never inside it (see the data folder's README).
GAMMU_DATA = REPO_ROOT.parent / "shared" / "data" / "gammu"
# ModemManager's parser cases (real replies with the values it reads), beside the project too.
MODEMMANAGER_DATA = REPO_ROOT.parent / "shared" / "data" / "modemmanager"


def gammu_dumps(folder: str) -> list[Path]:
    """The capture files of one folder, or an empty list when the captures are absent."""
    base = GAMMU_DATA / folder
    return sorted(base.glob("*.dump")) if base.is_dir() else []


@pytest.fixture
def gammu_data() -> Path:
    """The folder of real-world modem captures; skips the test when it is absent."""
    if not GAMMU_DATA.is_dir():
        pytest.skip(f"real-world captures not found at {GAMMU_DATA} (only beside the project)")
    return GAMMU_DATA


def modemmanager_cases(name: str) -> list[Any]:
    """The cases of one ModemManager file as pytest params (ids = case ids); a single skipped
    param saying why when the folder is absent."""
    path = MODEMMANAGER_DATA / name
    if not path.is_file():
        reason = f"ModemManager's parser cases not found at {path} (only beside the project)"
        return [pytest.param(None, id=name, marks=pytest.mark.skip(reason=reason))]
    cases = json.loads(path.read_text(encoding="utf-8"))
    return [pytest.param(case, id=case["id"]) for case in cases]
