"""Run a callback once a module has finished importing, without importing it ourselves.

`df.mistral` needs pandas, and loading the extension must not import pandas; yet
``import pandas as pd`` and ``df.mistral.extract(...)`` in one cell must work. A
finder placed first on `sys.meta_path` notices the import of a watched module, lets
the usual finders locate it, and wraps its loader so the callback runs right after
the module's code has run. The finder leaves `sys.meta_path` once nothing is watched.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import logging
import sys
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class _Loader(importlib.abc.Loader):
    """The module's own loader, then the callback."""

    def __init__(self, loader, name: str, finder: _Finder):
        self.loader = loader
        self.name = name
        self.finder = finder

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        # The module sees its real loader (importlib.resources and friends ask it).
        module.__loader__ = self.loader
        if module.__spec__ is not None:
            module.__spec__.loader = self.loader
        self.loader.exec_module(module)
        self.finder.imported(self.name)


class _Finder(importlib.abc.MetaPathFinder):
    """Watches imports of the modules that have a callback; finds nothing itself."""

    def __init__(self):
        self.callbacks: dict[str, Callable[[], object]] = {}
        self._local = threading.local()

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.callbacks or getattr(self._local, "busy", False):
            return None
        self._local.busy = True  # the search below comes back here: let it pass
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._local.busy = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _Loader(spec.loader, fullname, self)
        return spec

    def imported(self, name: str) -> None:
        callback = self.callbacks.pop(name, None)
        _leave_if_idle()
        if callback is None:
            return
        try:
            callback()
        except Exception:  # the user's import succeeded; our add-on must not undo it
            log.exception("mistral_magic: the callback after importing %s failed", name)


_finder = _Finder()
_lock = threading.Lock()


def after_import(name: str, callback: Callable[[], object]) -> None:
    """Call `callback()` once `name` has been imported (the next import of it)."""
    with _lock:
        _finder.callbacks[name] = callback
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)


def cancel(name: str) -> None:
    """Forget the callback for `name`; the finder leaves when nothing is watched."""
    with _lock:
        _finder.callbacks.pop(name, None)
    _leave_if_idle()


def watching(name: str) -> bool:
    return name in _finder.callbacks and _finder in sys.meta_path


def _leave_if_idle() -> None:
    with _lock:
        if not _finder.callbacks and _finder in sys.meta_path:
            sys.meta_path.remove(_finder)
