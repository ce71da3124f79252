"""The package's layout stays readable: the layers hold, and modules are small and say what they are.

The layering itself is import-linter's (contracts in pyproject.toml); this file checks it runs
and what it cannot say: module size and docstrings.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mistral_magic"
MAX_LINES = 450


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter over the package found in `root`, with the contracts of its pyproject."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", code, "--no-cache", "--no-logo"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_layers_hold():
    """The contracts in pyproject.toml (layers, the offline server apart, no cycles) are kept."""
    result = lint_imports(PACKAGE.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_an_upward_import_breaks_the_layers(tmp_path):
    """A planted import from `show` up to the row engine is caught by the contracts."""
    shutil.copytree(PACKAGE, tmp_path / "mistral_magic",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(PACKAGE.parent / "pyproject.toml", tmp_path)
    render = tmp_path / "mistral_magic" / "show" / "render.py"
    render.write_text(render.read_text() + "\n\ndef planted():\n    from ..rows import engine\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "mistral_magic.show is not allowed to import mistral_magic.rows" in result.stdout


@pytest.mark.parametrize("name", [n for n in MODULES if not n.startswith("mistral_magic.offline")])
def test_each_module_is_small_and_says_what_it_is(name):
    text = MODULES[name].read_text()
    assert ast.get_docstring(ast.parse(text)), f"{name} has no opening docstring"
    assert text.count("\n") <= MAX_LINES, f"{name} has grown past {MAX_LINES} lines"
