"""mistral_magic: Mistral's models inside IPython and Jupyter.

``%load_ext mistral_magic`` registers the ``%%mistral`` cell magic and the
``%mistral`` commands, and the ``df.mistral`` pandas accessor as soon as pandas is
imported (also when that happens later, in the same cell that uses it).
Loading imports neither the SDK, pandas nor the tokenizer; they load on first use.
See ``%%mistral?`` for the manual.
"""

from __future__ import annotations

import sys

from .version import __version__

__all__ = ["__version__", "load_ipython_extension", "session", "unload_ipython_extension"]

_magics = None


def session():
    """The Session of the loaded extension: chats, ledger, backend and settings."""
    from .core import loaded

    return loaded()


def _pre_run_cell(info) -> None:
    # The cell id (Jupyter sends one per cell) keys a chat turn, so a re-run replaces it.
    if _magics is not None:
        _magics.session.cell_id = getattr(info, "cell_id", None)


def _register_accessor() -> None:
    # df.mistral needs pandas: register it now if pandas is imported, else when it is.
    from .notebook import importhook

    if "pandas" in sys.modules:
        from .rows import accessor

        accessor.register()
    else:
        importhook.after_import("pandas", _register_accessor)


def load_ipython_extension(ipython) -> None:
    """Register the magics, the cell-id and error hooks (`Err`) and the accessor; nothing heavy
    is imported."""
    global _magics
    from . import core
    from .notebook import fix, labcomm
    from .notebook.magics import MistralMagics

    if _magics is not None:
        if _magics.shell is ipython:
            return
        unload_ipython_extension(_magics.shell)
    _magics = MistralMagics(shell=ipython)
    core.attach(_magics.session)
    ipython.register_magics(_magics)
    ipython.events.register("pre_run_cell", _pre_run_cell)
    fix.install(ipython, _magics)
    labcomm.install(ipython, _magics.session)
    _register_accessor()


def unload_ipython_extension(ipython) -> None:
    """Remove the magics, hooks and `Err`; chats and the ledger are dropped.

    pandas cannot forget an accessor, so `df.mistral` stays and says to load the
    extension again when used.
    """
    global _magics
    from . import core
    from .notebook import fix, importhook, labcomm

    importhook.cancel("pandas")
    if _magics is None:
        return
    ipython.events.unregister("pre_run_cell", _pre_run_cell)
    fix.uninstall(ipython, _magics)
    labcomm.uninstall(ipython)
    for kind in ("line", "cell"):
        ipython.magics_manager.magics[kind].pop("mistral", None)
    _magics.session.close()
    _magics = None
    core.attach(None)
