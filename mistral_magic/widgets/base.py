"""What every view shares: where widgets can render, the fallbacks, the throttle.

Where widgets cannot render, a view is shown as its text (`show_text`), the first one of
a shell under a one-line note saying why. `Throttle` bounds how often a view renders a
burst of changes; `View` is the base of every view (a root widget, a text version, a
lock and cleanup).

A displayed view carries its text (``text/plain``) and an HTML version (``text/html``)
beside the widget: what a saved notebook shows where the widget cannot render (reopened
without its kernel, nbconvert, GitHub). They follow the view: after each cell, and once
a change from the background (the chat panel's Send) has settled, the display is updated
when its text changed, so a saved notebook shows the final figures. Such an update makes
Lab draw the widget again, which is why it waits for a quiet moment, and why a view being
used (a panel answering, or with text typed in its box) waits for the next cell.
"""

from __future__ import annotations

import abc
import threading
import time
import weakref
from typing import Any

from ..chat import DEFAULT_CHAT

#: Seconds a change from the background must settle before the fallbacks follow it.
FALLBACK_DELAY_S = 1.0


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


_noted: weakref.WeakSet = weakref.WeakSet()
_noted_without_shell = False


def _first_text_view(shell) -> bool:
    """Whether this is the first view shown as text in `shell` (said once, not per view)."""
    global _noted_without_shell
    try:
        if shell in _noted:
            return False
        _noted.add(shell)
    except TypeError:  # a shell that cannot be weakly referenced (or None)
        if _noted_without_shell:
            return False
        _noted_without_shell = True
    return True


class TextView(str):
    """A text version of a view: shown without quotes."""

    def __repr__(self) -> str:
        return str(self)


def show_text(shell, text: str, what: str) -> TextView:
    """Show a view as its text; the first one of a shell says why, in one line above it."""
    from IPython.display import display

    view = TextView(text)
    shown = view
    if _first_text_view(shell):
        from ..show.terminal import wrapped

        shown = wrapped(f"(No widget front end here, so the {what} is text; in JupyterLab or "
                        f"Notebook it is a live widget.)") + f"\n{view}"
    display({"text/plain": shown}, raw=True)
    return view


def display_view(view, shell=None):
    """Display `view`, and keep its fallbacks (`text/plain`, `text/html`) following it."""
    from IPython.display import display

    view.handle = display(view, display_id=True)
    view._fallback_shown = view.text()
    if shell is not None and getattr(shell, "events", None) is not None:
        shell.events.register("post_run_cell", view.sync_fallback)
        view._cleanups.append(lambda: _unregister(shell, view.sync_fallback))
    return view


def _unregister(shell, callback) -> None:
    try:
        shell.events.unregister("post_run_cell", callback)
    except ValueError:  # already gone
        pass



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


class Debounce:
    """Runs `action` once calls have stopped for `delay` s (a burst of changes: one run)."""

    def __init__(self, action, delay: float):
        self.action = action
        self.delay = delay
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __call__(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.delay, self._run)
            self._timer.daemon = True
            self._timer.start()

    def _run(self) -> None:
        with self._lock:
            self._timer = None
        self.action()

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None


class View(abc.ABC):
    """What every view shares: a root widget, a text version, a lock, and cleanup."""

    widget: Any = None
    handle: Any = None  # the display it is shown in (`display_view`)

    def __init__(self):
        self._lock = threading.RLock()
        self._cleanups: list = []
        self._fallback_shown: str | None = None
        self._fallback_later = Debounce(self._sync_when_quiet, FALLBACK_DELAY_S)
        self._cleanups.append(self._fallback_later.cancel)

    @abc.abstractmethod
    def text(self) -> str:
        """The view as text: its terminal form and its `text/plain`."""

    def html(self) -> str:
        """The view as HTML, for where the widget cannot render (a saved notebook)."""
        from ..show import render

        return f"<pre>{render.escape(self.text())}</pre>"

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self.text()
        bundle["text/html"] = self.html()
        return bundle

    def changed(self) -> None:
        """The view changed: its fallbacks follow once the changes settle."""
        if self.handle is not None:
            self._fallback_later()

    def can_redraw(self) -> bool:
        """Whether updating the display now would disturb no one (Lab redraws the widget)."""
        return True

    def _sync_when_quiet(self) -> None:
        # Otherwise the next cell's end does it (`sync_fallback` is a post_run_cell hook).
        if self.can_redraw():
            self.sync_fallback()

    def sync_fallback(self, *_) -> None:
        """Update the display's fallbacks now if the view's text changed since shown."""
        handle = self.handle
        if handle is None:
            return
        with self._lock:
            text = self.text()
            if text == self._fallback_shown:
                return
            self._fallback_shown = text
        handle.update(self)

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

