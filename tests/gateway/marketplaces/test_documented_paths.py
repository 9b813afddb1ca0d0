"""Every marketplace path the example configuration and the documentation name is one the API
serves: an operator copies them into a reverse proxy's allow-list."""

from __future__ import annotations

import re
from pathlib import Path

from tests.gateway.helpers import KEY, served_pool

REPO_ROOT = Path(__file__).resolve().parents[3]
DOCUMENTS = sorted(
    [
        REPO_ROOT / "config" / "simfarm.example.toml",
        REPO_ROOT / "README.md",
        *(REPO_ROOT / "docs").glob("*.md"),
    ]
)
#: A one-segment path standing alone ("/getNumber", "/GET_NUMBER"), not a piece of a longer
#: path or URL such as the marketplace's own ".../v1/PUSH_SMS".
LONE_PATH = re.compile(r"(?<![\w./~-])/([A-Za-z][A-Za-z_]*)(?![\w/.-])")
#: Onlinesim's actions begin with these words, however a document spells them.
ACTION_WORDS = ("get", "finish")


def documented_marketplace_paths() -> dict[str, set[str]]:
    """Path -> the documents that name it."""
    found: dict[str, set[str]] = {}
    for document in DOCUMENTS:
        for match in LONE_PATH.finditer(document.read_text(encoding="utf-8")):
            if match[1].replace("_", "").lower().startswith(ACTION_WORDS):
                found.setdefault(match[0], set()).add(document.name)
    return found


def test_the_example_configuration_names_the_marketplace_paths() -> None:
    """The search finds what it looks for (so the next test cannot pass by finding nothing)."""
    example = "simfarm.example.toml"
    named = {path for path, where in documented_marketplace_paths().items() if example in where}
    assert {"/getServices", "/getNumber", "/finishActivation", "/getNumberRent"} <= named


async def test_every_documented_marketplace_path_is_served(tmp_path: Path) -> None:
    documented = documented_marketplace_paths()
    not_served = {}
    async with served_pool(tmp_path / "simfarm.db") as served:
        for path, where in sorted(documented.items()):
            reply = await served.post({"key": KEY}, path=path)
            if reply.status_code in (404, 405):
                not_served[path] = sorted(where)
    assert not_served == {}
