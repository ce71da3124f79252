"""The shipped notebooks are saved without outputs: run by `.ci/run` and the pre-commit hook.

Running them in place (the README's lab command) and saving fills them with outputs, which
is fine on your machine; this check keeps such a save out of a commit and says how to undo it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def with_outputs(path: Path) -> int:
    """How many code cells of the notebook at `path` hold outputs or an execution count."""
    nb = nbformat.read(path, as_version=4)
    return sum(1 for c in nb.cells
               if c.cell_type == "code" and (c.outputs or c.execution_count is not None))


def main(paths: list[str]) -> int:
    found = [Path(p) for p in paths] or sorted(NOTEBOOKS.glob("*.ipynb"))
    dirty = [(path, n) for path in found if (n := with_outputs(path))]
    for path, n in dirty:
        path = _shown(path)
        print(f"{path}: {n} code cell{'' if n == 1 else 's'} saved with outputs. The shipped "
              f"notebooks are saved without them: restore it with `git checkout -- {path}`, "
              f"or keep your edits and run `jupyter nbconvert --clear-output --inplace {path}`.",
              file=sys.stderr)
    return 1 if dirty else 0


def _shown(path: Path) -> Path:
    try:
        return path.resolve().relative_to(Path.cwd())
    except ValueError:
        return path


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
