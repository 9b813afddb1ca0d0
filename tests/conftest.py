"""Fixtures shared by the whole suite."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# Real modem captures live beside the project, never inside it (see the data folder's README).
GAMMU_DATA = REPO_ROOT.parent / "shared" / "data" / "gammu"


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
