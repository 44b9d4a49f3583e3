"""The docs say what the code does: no paths of one machine; the quickstart shows the example."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from sovereign_ai.federation import load_job_spec, parse_job_spec
from sovereign_ai.federation.job import SimulationSection

ROOT = Path(__file__).parents[1]
PAGES = sorted((ROOT / "docs").glob("*.md"))
# A path under a home or a build folder is one person's machine, not the reader's.
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:home|Users|work|root|tmp/pytest)[/\w.-]*")


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_no_page_shows_a_path_of_one_machine(page: Path) -> None:
    found = MACHINE_PATH.findall(page.read_text(encoding="utf-8"))
    assert found == [], f"{page.name} shows machine paths {found}"


def test_the_quickstart_job_is_the_example_job_file() -> None:
    quickstart = (ROOT / "docs" / "quickstart.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```toml\n(.*?)```", quickstart, flags=re.DOTALL)
    shown = [b for b in blocks if 'name = "breast-cancer"' in b]
    assert len(shown) == 1
    example = load_job_spec(ROOT / "examples" / "jobs" / "breast_cancer.toml")
    assert parse_job_spec(tomllib.loads(shown[0])) == example
    # What the quickstart says of the backend: the example's, which is also the default.
    assert f'backend = "{example.simulation.backend.value}"' in shown[0]
    assert example.simulation.backend is SimulationSection().backend
