"""The architecture is kept by tools: import-linter's contracts (pyproject.toml) fail `make lint` on an arrow
that points the wrong way. Shown on a copy of the tree with one such arrow added."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def tree(tmp_path) -> Path:
    for name in ("config", "studio", "accounts"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_tree_keeps_every_contract(tree):
    result = _lint(tree)
    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("studio/engine/services.py", "from studio.engine import tasks", "never import the tasks"),
        ("studio/engine/runner.py", "from studio.web import views", "Pages and API over the engine"),
        ("studio/engine/spec.py", "from studio import models", "pure Python"),
        ("studio/engine/providers/local.py", "from accounts import models", "plain values"),
        ("accounts/ledger.py", "import studio.models", "never import the studio app"),
        ("studio/web/views.py", "from studio.api import errors", "independent"),
        ("studio/models.py", "from config import settings", "project package"),
    ],
)
def test_an_arrow_the_wrong_way_breaks_a_contract(tree, module, line, contract):
    path = tree / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    result = _lint(tree)
    assert result.returncode != 0
    assert contract in result.stdout and "BROKEN" in result.stdout, result.stdout
