"""An offline server in its own process, so a test sees only the client's own output."""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager

KEY = "standalone-server-key"


@contextmanager
def standalone_server(*options: str):
    """`python -m mistral_magic.offline` with these options; yields its URL (key: KEY)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mistral_magic.offline", "--api-key", KEY, *options],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        first = process.stdout.readline()
        if not first.startswith("Offline Mistral API on "):
            raise RuntimeError(f"the standalone offline server did not start: {first!r}")
        yield first.split(" on ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()
