"""Options of the soak: how long it runs and with which seed.

--soak-seconds N   traffic phase length (default: $SIMFARM_SOAK_SECONDS, else 120 for the
                   CI test and 3600 for the slow one)
--soak-seed N      the random seed (default: $SIMFARM_SOAK_SEED, else a fresh one, printed)
"""

from __future__ import annotations

import os
import random

import pytest

#: Traffic-phase length of the CI soak and of the slow (hour-long) soak when nothing is given.
CI_SECONDS = 120.0
SLOW_SECONDS = 3600.0
#: Start-up and quiescence on top of the traffic phase, for the per-test timeout.
TIMEOUT_MARGIN_SECONDS = 600.0


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: a fault-injection soak (its timeout fits its length)")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("soak")
    group.addoption("--soak-seconds", type=float, default=None, help="soak traffic seconds")
    group.addoption("--soak-seed", type=int, default=None, help="soak random seed")


def soak_seconds(config: pytest.Config, default: float) -> float:
    given = config.getoption("--soak-seconds")
    if given is None and os.environ.get("SIMFARM_SOAK_SECONDS"):
        given = float(os.environ["SIMFARM_SOAK_SECONDS"])
    return float(given) if given is not None else default


def default_seconds(item: pytest.Item) -> float:
    return SLOW_SECONDS if item.get_closest_marker("slow") else CI_SECONDS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Each soak test gets a timeout that fits its length (the suite's default is shorter)."""
    for item in items:
        if item.get_closest_marker("soak") is None:
            continue
        seconds = soak_seconds(config, default_seconds(item))
        item.add_marker(pytest.mark.timeout(seconds * 1.5 + TIMEOUT_MARGIN_SECONDS))


@pytest.fixture
def soak_seconds_for(request: pytest.FixtureRequest) -> float:
    return soak_seconds(request.config, default_seconds(request.node))


@pytest.fixture
def soak_seed(request: pytest.FixtureRequest) -> int:
    given = request.config.getoption("--soak-seed")
    if given is None and os.environ.get("SIMFARM_SOAK_SEED"):
        given = int(os.environ["SIMFARM_SOAK_SEED"])
    return given if given is not None else random.SystemRandom().randrange(1, 2**31)
