"""ipywidgets views of a session: a usage meter, a settings panel and a chat panel.

In JupyterLab or Notebook::

    %mistral meter            # calls, tokens in and out, cost, per model, budget bar
    %mistral panel            # model, temperature, max tokens and chat, two-way with %config
    %mistral chat review      # a chat box on the chat `review`, shared with %%mistral -c review

or from Python, where each view is an object with its widgets as attributes::

    from mistral_magic import widgets
    session = mistral_magic.session()
    meter = widgets.show_meter(session)      # displays it and returns the UsageMeter
    meter.totals                             # what it shows: calls, tokens, cost
    panel = widgets.show_chat(session, "review")
    panel.send("What stands out in these numbers?")   # returns at once (a Future)
    panel.stop()                             # keeps the partial answer, marked interrupted
    turn = panel.wait(30)                    # the recorded Turn

`UsageMeter(session)`
    Totals, a per-model table and a budget bar (`MistralMagics.budget_usd`). It
    follows the ledger: every call made anywhere (cells, the chat panel,
    ``df.mistral.extract`` on the background loop) updates it, at most every
    `min_interval` seconds, with the last state always shown.
`SettingsPanel(magics)`
    A model dropdown filled from the backend's ``models.list`` (labelled with
    context length and list prices), temperature (with "model default", which is
    ``None``), max tokens (0 = no cap) and the default chat. The widgets and the
    `MistralMagics` traits are kept equal both ways: ``%config MistralMagics.model
    = ...`` moves the dropdown, and the dropdown is what ``%config`` then shows.
`ChatPanel(session, name)`
    The transcript of a named chat (Markdown, made safe HTML by `render`), an input
    box, Send and Stop. A request runs on the session's background loop through the
    SDK's async stream, so the kernel stays free; the answer streams in at a
    bounded rate; the turn goes into the same `Chat` that ``%%mistral -c NAME``
    uses and the call into the ledger, exactly once, whether it finished, failed or
    was stopped.

Threads: the ledger and chats call their subscribers on whichever thread made the
change (the kernel's for cells, the background loop's for the panel and
extraction). Setting a widget trait from another thread sends its comm message
through ipykernel's thread-safe IOPub socket, so views update in place from any
thread; each view serialises its own updates with a lock so that two threads
never interleave a render.

Where widgets cannot render (terminal IPython, a plain shell without a kernel, or
ipywidgets missing), ``show_*`` display a text version instead, the first one of a shell
under a one-line note (no warning); ``force=True`` builds the widgets anyway (tests do,
in a plain shell). A displayed widget also carries that text as its ``text/plain`` and an
HTML version as its ``text/html`` (the chat's turns rendered), kept to the view's final
state, so a saved notebook, nbconvert or GitHub shows the numbers, not ``VBox(...)`` nor
the state it had when first shown.

The package: `base` (where widgets can render, the text fallback, the throttle,
what every view shares), `meter`, `settings` and `chat`, one view each. Importing it
imports neither ipywidgets, the SDK nor pandas; they load when a view is built.
"""

from __future__ import annotations

from .base import (
    DEFAULT_CHAT,
    TextView,
    can_build,
    default_chat,
    display_view,
    show_text,
    widgets_available,
)
from .chat import ChatPanel, chat_text
from .meter import UsageMeter, meter_text
from .settings import SettingsPanel, model_label, settings_text

__all__ = [
    "DEFAULT_CHAT", "ChatPanel", "SettingsPanel", "TextView", "UsageMeter",
    "chat_text", "meter_text", "model_label", "settings_text", "show_chat", "show_meter",
    "show_panel", "widgets_available",
]


def show_meter(session, *, force: bool = False, min_interval: float = 0.25):
    """Display a live `UsageMeter` (or its text where widgets cannot render) and return it."""
    if not can_build(session.shell, force):
        return show_text(session.shell, meter_text(session), "usage meter")
    return display_view(UsageMeter(session, min_interval=min_interval), session.shell)


def show_panel(magics, *, force: bool = False):
    """Display a `SettingsPanel` for `magics` (or the settings as text) and return it."""
    if not can_build(magics.shell, force):
        return show_text(magics.shell, settings_text(magics), "settings panel")
    return display_view(SettingsPanel(magics), magics.shell)


def show_chat(session, name: str | None = None, *, force: bool = False):
    """Display a `ChatPanel` on chat `name` (or its transcript as text) and return it."""
    name = name or default_chat(session.settings)
    if not can_build(session.shell, force):
        return show_text(session.shell, chat_text(session, name, fallback=True), "chat panel")
    return display_view(ChatPanel(session, name), session.shell)
