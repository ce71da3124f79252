"""mistral_magic: Mistral's models inside IPython and Jupyter.

``%load_ext mistral_magic`` registers the ``%%mistral`` cell magic and the
``%mistral`` commands, and the ``df.mistral`` pandas accessor as soon as pandas is
imported (also when that happens later, in the same cell that uses it).
Loading imports neither the SDK, pandas nor the tokenizer; they load on first use.
See ``%%mistral?`` for the manual.
"""

from __future__ import annotations

import sys

__version__ = "0.1.0"

__all__ = ["__version__", "load_ipython_extension", "session", "unload_ipython_extension"]

_magics = None


def session():
    """The Session of the loaded extension: chats, ledger, backend and settings."""
    if _magics is None:
        from .errors import ConfigError

        raise ConfigError(
            "mistral_magic is not loaded (or was unloaded); run %load_ext mistral_magic first"
        )
    return _magics.session


def _pre_run_cell(info) -> None:
    # The cell id (Jupyter sends one per cell) keys a chat turn, so a re-run replaces it.
    if _magics is not None:
        _magics.session.cell_id = getattr(info, "cell_id", None)


def _register_accessor() -> None:
    # df.mistral needs pandas: register it now if pandas is imported, else when it is.
    from . import importhook

    if "pandas" in sys.modules:
        from . import frames

        frames.register()
    else:
        importhook.after_import("pandas", _register_accessor)


def load_ipython_extension(ipython) -> None:
    """Register the magics, the cell-id and error hooks (`Err`) and the accessor; nothing heavy
    is imported."""
    global _magics
    from . import fix, labcomm
    from .magics import MistralMagics

    if _magics is not None:
        if _magics.shell is ipython:
            return
        unload_ipython_extension(_magics.shell)
    _magics = MistralMagics(shell=ipython)
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
    from . import fix, importhook, labcomm

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
