"""Model listings remembered between kernels, so that a first cell need not wait for one.

The names in a backend's listing (`capabilities`) are kept in the user's cache directory,
one JSON file per backend, named by a hash of its kind and URL (never a key), for
`TTL_S`. A model named there is taken as known at once; anything else (a name not there,
a capability asked about, an older file) asks the backend again, and that listing
replaces the file. Only "known" is trusted: a model since removed is refused by the
server itself, as when no listing can be had. A file that cannot be read or written only
costs the wait.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

TTL_S = 24 * 3600
FORMAT = 1


def _file(kind: str, url: str | None) -> Path:
    from ..money.vocab import cache_dir

    name = hashlib.sha256(f"{kind} {url or ''}".encode()).hexdigest()[:32]
    return cache_dir() / "models" / f"{name}.json"


def recall(kind: str, url: str | None, now: float | None = None) -> frozenset[str]:
    """The names the backend listed within `TTL_S` (empty when none are remembered)."""
    try:
        data = json.loads(_file(kind, url).read_text(encoding="utf-8"))
        fresh = (now or time.time()) - float(data["listed"]) < TTL_S
        if data.get("format") != FORMAT or not fresh or data.get("backend") != [kind, url]:
            return frozenset()
        return frozenset(name for name in data["names"] if isinstance(name, str))
    except (OSError, ValueError, TypeError, KeyError):
        return frozenset()


def remember(kind: str, url: str | None, names: Iterable[str]) -> None:
    """Keep a listing's names for the next kernel (atomically; skipped where it cannot be)."""
    data = {"format": FORMAT, "backend": [kind, url], "listed": time.time(),
            "names": sorted(set(names))}
    try:
        path = _file(kind, url)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False,
                                         encoding="utf-8", suffix=".tmp") as out:
            json.dump(data, out)
        os.replace(out.name, path)
    except OSError:
        pass
