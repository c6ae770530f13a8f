"""The import contracts of pyproject.toml hold, and each one catches the break it names.

`make lint` runs lint-imports on the tree. Here each contract also gets a counterexample: a
copy of the packages plus one temporary module that breaks it must make the check fail, so a
contract that stopped matching anything (a renamed package, a typo) cannot pass silently.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("api", "flows", "infra_pulumi", "dashboards")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# contract id -> (temporary module, its source): each breaks exactly that contract.
COUNTEREXAMPLES = {
    "layers": ("api/observability/_counterexample.py", "import api.payments.service\n"),
    "domains-independent": ("api/email/_counterexample.py", "import api.payments.service\n"),
    "api-standalone": ("api/auth/_counterexample.py", "import flows.recording\n"),
    "infra-without-api": (
        "infra_pulumi/components/_counterexample.py",
        "import api.settings\n",
    ),
}


def _lint(tree: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    selected = [arg for contract in contracts for arg in ("--contract", contract)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", *selected],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("imports")
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, copy / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


@pytest.fixture
def counterexample(tree: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    contract: str = request.param
    relative, source = COUNTEREXAMPLES[contract]
    module = tree / relative
    module.write_text(source)
    try:
        yield contract
    finally:
        module.unlink()


def test_every_contract_has_a_counterexample() -> None:
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    contracts = {c["id"] for c in config["tool"]["importlinter"]["contracts"]}
    assert contracts == set(COUNTEREXAMPLES)


def test_the_copied_tree_keeps_every_contract(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


@pytest.mark.parametrize("counterexample", sorted(COUNTEREXAMPLES), indirect=True)
def test_a_module_that_breaks_the_contract_fails_the_check(tree: Path, counterexample: str) -> None:
    result = _lint(tree, counterexample)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "_counterexample" in result.stdout
