"""What every view shares: where widgets can render, the text fallback, the throttle.

Where widgets cannot render, a view is shown as its text (`show_text`), with one
`WidgetsUnavailable` warning per shell. `Throttle` bounds how often a view renders a
burst of changes; `View` is the base of every view (a root widget, a text version, a
lock and cleanup).
"""

from __future__ import annotations

import abc
import threading
import time
import warnings
import weakref
from typing import Any

from ..chat import DEFAULT_CHAT


class WidgetsUnavailable(UserWarning):
    """No widget front end here: views are shown as text."""


# -- where widgets can render ---------------------------------------------------------


def widgets_available(shell=None) -> bool:
    """Whether widgets can render: ipywidgets importable and a kernel (comms) behind the shell.

    A terminal or plain `InteractiveShell` has no `kernel`; ipykernel's shell has
    one, whatever the front end (Lab, Notebook, VS Code, Colab).
    """
    if shell is None:
        from IPython import get_ipython

        shell = get_ipython()
    if getattr(shell, "kernel", None) is None:
        return False
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


def can_build(shell, force: bool) -> bool:
    if not force:
        return widgets_available(shell)
    try:
        import ipywidgets  # noqa: F401
    except ImportError:
        return False
    return True


_warned: weakref.WeakSet = weakref.WeakSet()
_warned_without_shell = False


def _warn_once(shell, what: str) -> None:
    global _warned_without_shell
    try:
        if shell in _warned:
            return
        _warned.add(shell)
    except TypeError:  # a shell that cannot be weakly referenced (or None)
        if _warned_without_shell:
            return
        _warned_without_shell = True
    warnings.warn(
        f"mistral_magic: no widget front end here (terminal, plain shell or ipywidgets "
        f"missing), so the {what} is shown as text; in JupyterLab or Notebook it is a "
        "live widget",
        WidgetsUnavailable,
        stacklevel=4,  # the line that asked for the view
    )


class TextView(str):
    """A text version of a view: shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


def show_text(shell, text: str, what: str) -> TextView:
    from IPython.display import display

    _warn_once(shell, what)
    view = TextView(text)
    display({"text/plain": view}, raw=True)
    return view


def display_view(view):
    from IPython.display import display

    display(view)
    return view



def default_chat(settings) -> str:
    # `MistralMagics.chat` is the default chat name where the magics define it.
    return getattr(settings, "chat", None) or DEFAULT_CHAT



class Throttle:
    """Runs `action` at most every `interval` s; a call in between schedules one trailing run.

    So a burst of ledger records (an extraction of 1,000 rows) costs a few renders,
    and the last state is always rendered.
    """

    def __init__(self, action, interval: float):
        self.action = action
        self.interval = interval
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._timer: threading.Timer | None = None

    def __call__(self) -> None:
        with self._lock:
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._trailing)
                    self._timer.daemon = True
                    self._timer.start()
                return
            self._last = time.monotonic()
        self.action()

    def _trailing(self) -> None:
        with self._lock:
            self._timer = None
            self._last = time.monotonic()
        self.action()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


class View(abc.ABC):
    """What every view shares: a root widget, a text version, a lock, and cleanup."""

    widget: Any = None

    def __init__(self):
        self._lock = threading.RLock()
        self._cleanups: list = []

    @abc.abstractmethod
    def text(self) -> str:
        """The view as text: its terminal form and its `text/plain`."""

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.text()
        return bundle

    def close(self) -> None:
        """Stop following the session and close the widgets."""
        for cleanup in reversed(self._cleanups):
            cleanup()
        self._cleanups.clear()
        if self.widget is not None:
            close_tree(self.widget)


def close_tree(widget) -> None:
    # Widget.close_all() would close every widget of the kernel; close only ours.
    for child in getattr(widget, "children", ()):
        close_tree(child)
    widget.close()


def text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        first = row[0].ljust(widths[0])
        rest = [value.rjust(width) for value, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]))
    return "\n".join(lines)

