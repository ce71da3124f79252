"""Code that may blow up memory runs in a child Python held to 4 GB of address space
(TESTING.md): a bug then fails its test instead of taking the machine down."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LIMIT = "import resource; resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
KEY = "bounded-server-key"

# A shell in the child, as a kernel runs cells: `cell(code)` is None or the error's line.
SHELL = """
from IPython.core.interactiveshell import InteractiveShell
from traitlets.config import Config
from mistral_magic.errors import MistralMagicError

config = Config()
config.HistoryManager.hist_file = ":memory:"
ip = InteractiveShell.instance(config=config)
ip.run_line_magic("load_ext", "mistral_magic")

def cell(code):
    result = ip.run_cell(code)
    error = result.error_in_exec or result.error_before_exec
    if error is None:
        return None
    return {"type": type(error).__name__, "ours": isinstance(error, MistralMagicError),
            "message": str(error)}
"""


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("MISTRAL_API_KEY", "MISTRAL_SERVER_KEY")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(REPO / "tests"), env.get("PYTHONPATH", "")])
    return env


def run_bounded(code: str, cwd, *, shell: bool = False, timeout: float = 600):
    """Run `code` in a bounded child (with `SHELL` first when `shell`); what it printed last,
    read as JSON."""
    source = LIMIT + (SHELL if shell else "") + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", source], cwd=cwd, env=_env(), capture_output=True,
                          text=True, timeout=timeout)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise AssertionError(f"the bounded child failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(lines[-1])


@contextmanager
def bounded_server():
    """The offline server in a bounded child process; yields its URL (key: `KEY`)."""
    code = LIMIT + ("import sys\nfrom mistral_magic.offline.__main__ import main\n"
                    f"sys.exit(main(['--api-key', {KEY!r}]))\n")
    process = subprocess.Popen([sys.executable, "-c", code], env=_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        first = process.stdout.readline()
        if not first.startswith("Offline Mistral API on "):
            raise RuntimeError(f"the bounded offline server did not start: {first!r}")
        yield first.split(" on ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()
