"""The README's order in a clean clone: run the shipped notebooks in place, save, then test.

A new user runs the lab command, runs the notebooks where they are and saves them, then
runs the test command. This does the same in a clone of this repository (the working
tree's tracked files as they are now, committed or not): the notebooks are executed in
place with nbclient (a kernel in `notebooks/`, as Lab starts it) and saved with their
outputs; then the part of the test command that reads the repository's notebooks and
folders runs there and must pass, the files the notebooks made are ignored by git, and the
CI check that keeps the shipped notebooks clean says what to do.

To keep its cost bounded it runs the three notebooks that write files next to themselves
(the store, the documents notebook's PDFs, the teaching notebook's exported answers) and
the notebook tests of one of them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
IN_PLACE = ["quickstart.ipynb", "teaching.ipynb", "documents.ipynb"]


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def clean_clone(dest: Path) -> Path:
    """A clone holding the working tree's tracked files (uncommitted edits included)."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    # `stash create` makes a commit of the working tree without touching it (empty: no edits).
    snapshot = git("stash", "create", cwd=REPO).strip() or "HEAD"
    head = git("rev-parse", snapshot, cwd=REPO).strip()
    git("clone", "--quiet", "--no-checkout", str(REPO), str(dest), cwd=REPO.parent)
    git("fetch", "--quiet", str(REPO), head, cwd=dest)
    git("checkout", "--quiet", head, cwd=dest)
    return dest


def environment(clone: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MISTRAL_API_KEY", "MISTRAL_SERVER_KEY")}
    env["PYTHONPATH"] = str(clone)  # the clone's package, in kernels and in pytest
    env.pop("MISTRAL_MAGIC_REQUIRE_BROWSER", None)
    return env


def run_in_place(path: Path, env: dict) -> None:
    """Run a notebook where it is, as Lab would (its kernel in its folder), and save it."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)  # the kernel's: the clone's package, no key
    nbformat.write(nb, path)


def test_the_readmes_order_leaves_the_tests_green(tmp_path):
    clone = clean_clone(tmp_path / "clone")
    env = environment(clone)
    for name in IN_PLACE:
        run_in_place(clone / "notebooks" / name, env)

    # What the notebooks made is ignored; only the saved notebooks show as changed.
    changed = git("status", "--porcelain", "--untracked-files=all", cwd=clone).splitlines()
    assert sorted(changed) == sorted(f" M notebooks/{name}" for name in IN_PLACE), changed
    assert (clone / "notebooks" / ".mistral_magic" / "store.sqlite").exists()
    assert (clone / "notebooks" / "lesson-answers.sqlite").exists()

    # The test command's notebook tests run copies, and a store the user made is theirs.
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_notebooks.py::test_quickstart",
         "tests/test_notebooks.py::test_every_notebook_is_checked",
         "tests/test_readme.py::test_test_command_installs_the_test_extra"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=900,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout

    # CI keeps such a save out of the repository, and says how to undo it.
    check = subprocess.run([sys.executable, ".ci/check_notebooks.py"], cwd=clone, env=env,
                           capture_output=True, text=True)
    assert check.returncode == 1
    for name in IN_PLACE:
        assert (f"notebooks/{name}: " in check.stderr
                and f"git checkout -- notebooks/{name}" in check.stderr), check.stderr
    git("checkout", "--", "notebooks", cwd=clone)
    again = subprocess.run([sys.executable, ".ci/check_notebooks.py"], cwd=clone, env=env,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
