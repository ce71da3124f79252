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
ipywidgets missing), ``show_*`` display a text version instead, with one
`WidgetsUnavailable` warning per shell; ``force=True`` builds the widgets anyway
(tests do, in a plain shell). A displayed widget also carries that text as its
``text/plain``, so a front end without widget support shows the numbers, not
``VBox(...)``.

Importing this module imports neither ipywidgets, the SDK nor pandas; they load
when a view is built.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import threading
import time
import warnings
import weakref
from typing import Any

from . import render
from .display import CURSOR, update_interval

DEFAULT_CHAT = "default"
TEMPERATURE_MAX = 1.5
MAX_TOKENS_CAP = 1 << 20  # the widget's upper bound; above any model's context today


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


def _can_build(shell, force: bool) -> bool:
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


def _show_text(shell, text: str, what: str) -> TextView:
    from IPython.display import display

    _warn_once(shell, what)
    view = TextView(text)
    display({"text/plain": view}, raw=True)
    return view


def _display(view):
    from IPython.display import display

    display(view)
    return view


# -- entry points for the magics ------------------------------------------------------


def show_meter(session, *, force: bool = False, min_interval: float = 0.25):
    """Display a live `UsageMeter` (or its text where widgets cannot render) and return it."""
    if not _can_build(session.shell, force):
        return _show_text(session.shell, meter_text(session), "usage meter")
    return _display(UsageMeter(session, min_interval=min_interval))


def show_panel(magics, *, force: bool = False):
    """Display a `SettingsPanel` for `magics` (or the settings as text) and return it."""
    if not _can_build(magics.shell, force):
        return _show_text(magics.shell, settings_text(magics), "settings panel")
    return _display(SettingsPanel(magics))


def show_chat(session, name: str | None = None, *, force: bool = False):
    """Display a `ChatPanel` on chat `name` (or its transcript as text) and return it."""
    name = name or _default_chat(session.settings)
    if not _can_build(session.shell, force):
        return _show_text(session.shell, chat_text(session, name, fallback=True), "chat panel")
    return _display(ChatPanel(session, name))


def _default_chat(settings) -> str:
    # `MistralMagics.chat` is the default chat name where the magics define it.
    return getattr(settings, "chat", None) or DEFAULT_CHAT


# -- small pieces shared by the views ---------------------------------------------------


class _Throttle:
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


class _View(abc.ABC):
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
            _close_tree(self.widget)


def _close_tree(widget) -> None:
    # Widget.close_all() would close every widget of the kernel; close only ours.
    for child in getattr(widget, "children", ()):
        _close_tree(child)
    widget.close()


def _text_table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        first = row[0].ljust(widths[0])
        rest = [value.rjust(width) for value, width in zip(row[1:], widths[1:], strict=True)]
        lines.append("  ".join([first, *rest]))
    return "\n".join(lines)


# -- the usage meter --------------------------------------------------------------------


def _cost_text(totals: dict) -> str:
    from .usage import format_cost

    text = format_cost(totals["cost"])
    return text if totals.get("cost_known", True) else f"{text} + unknown"


def _model_rows(session) -> list[list[str]]:
    from .usage import format_tokens

    return [
        [model, str(t["calls"]), format_tokens(t["prompt_tokens"]),
         format_tokens(t["completion_tokens"]), _cost_text(t)]
        for model, t in session.ledger.by_model().items()
    ]


_MODEL_HEADER = ["model", "calls", "tokens in", "tokens out", "cost"]


def _budget(session, spent: float) -> tuple[float | None, str]:
    """(fraction of the budget spent, or None without one; the label)."""
    from .usage import format_cost

    limit = session.settings.budget_usd
    if limit is None:
        return None, "no budget set (%config MistralMagics.budget_usd = 1.0)"
    fraction = spent / limit if limit > 0 else (1.0 if spent > 0 else 0.0)
    return fraction, f"{format_cost(spent)} of {format_cost(limit)} budget ({fraction:.0%})"


def _summary(totals: dict) -> str:
    from .usage import format_tokens

    calls = totals["calls"]
    return (
        f"{calls} call{'' if calls == 1 else 's'} · {format_tokens(totals['prompt_tokens'])} tokens in · "
        f"{format_tokens(totals['completion_tokens'])} out · {_cost_text(totals)}"
    )


def meter_text(session) -> str:
    """The meter as text: totals, the per-model table and the budget."""
    totals = session.ledger.totals()
    lines = [f"mistral_magic usage: {_summary(totals)}"]
    rows = _model_rows(session)
    if rows:
        lines += ["", _text_table(_MODEL_HEADER, rows)]
    lines += ["", _budget(session, totals["cost"])[1]]
    return "\n".join(lines)


class UsageMeter(_View):
    """Session totals, a per-model table and a budget bar, following the ledger live.

    `totals` is what is shown; `refresh()` renders now; `updates` counts renders.
    """

    def __init__(self, session, *, min_interval: float = 0.25):
        super().__init__()
        import ipywidgets as w

        self.session = session
        self.updates = 0
        self.totals: dict = {}
        self.summary = w.HTML()
        self.by_model = w.HTML()
        self.budget_bar = w.FloatProgress(min=0.0, max=1.0, value=0.0, description="budget")
        # An HTML widget, not a Label: a Label renders "$0.01 of $0.05" as math.
        self.budget_label = w.HTML()
        self.widget = w.VBox(
            [self.summary, self.by_model, w.HBox([self.budget_bar, self.budget_label])]
        )
        self._throttle = _Throttle(self.refresh, min_interval)
        self._cleanups.append(session.ledger.subscribe(lambda record: self._throttle()))
        self._cleanups.append(self._throttle.cancel)
        session.settings.observe(self._budget_changed, names="budget_usd")
        self._cleanups.append(
            lambda: session.settings.unobserve(self._budget_changed, names="budget_usd")
        )
        self.refresh()

    @property
    def budget_fraction(self) -> float | None:
        """Spent / budget (may pass 1), or None when no budget is set."""
        return _budget(self.session, self.totals.get("cost", 0.0))[0]

    def _budget_changed(self, change) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Render the ledger's current totals."""
        with self._lock:
            totals = self.session.ledger.totals()
            self.totals = totals
            self.summary.value = render.line(f"· {_summary(totals)}", lead="mistral_magic")
            rows = _model_rows(self.session)
            self.by_model.value = render.table(_MODEL_HEADER, rows) if rows else ""
            fraction, label = _budget(self.session, totals["cost"])
            self.budget_label.value = render.line(label)
            if fraction is None:
                self.budget_bar.layout.display = "none"
            else:
                self.budget_bar.layout.display = None
                self.budget_bar.value = min(fraction, 1.0)
                self.budget_bar.bar_style = (
                    "danger" if fraction >= 1 else "warning" if fraction >= 0.8 else "success"
                )
            self.updates += 1

    def text(self) -> str:
        return meter_text(self.session)


# -- the settings panel -------------------------------------------------------------------


def _context_text(tokens: int | None) -> str | None:
    if not tokens:
        return None
    if tokens % 1024 == 0:
        return f"{tokens // 1024}k ctx"
    return f"{tokens / 1000:.0f}k ctx"


def _price_text(price: float) -> str:
    return f"${price:.2f}" if round(price, 2) == price else f"${price:g}"


def model_label(model_id: str, context: int | None, prices) -> str:
    """'mistral-small-2603 · 256k ctx · $0.15/$0.60' ('price unknown' when it is)."""
    parts = [model_id]
    canonical = prices.resolve(model_id)
    if canonical and canonical != model_id:
        parts[0] = f"{model_id} → {canonical}"
    context_text = _context_text(context or prices.context_length(model_id))
    if context_text:
        parts.append(context_text)
    price = prices.price(model_id)
    parts.append(f"{_price_text(price[0])}/{_price_text(price[1])}" if price else "price unknown")
    return " · ".join(parts)


def _chat_cards(session) -> list:
    """The model cards the backend lists that can chat, in its order."""
    cards = []
    for card in session.backend.client.models.list().data or []:
        capabilities = getattr(card, "capabilities", None)
        if capabilities is None or getattr(capabilities, "completion_chat", True):
            cards.append(card)
    return cards


def settings_text(magics) -> str:
    """The panel's settings as text, with how to change them."""
    lines = ["mistral_magic settings:"]
    for name in ("model", "temperature", "max_tokens", "budget_usd", "backend"):
        lines.append(f"  {name} = {getattr(magics, name)!r}")
    lines.append(f"  chat = {_default_chat(magics)!r}")
    lines.append("change one with: %config MistralMagics.model = 'mistral-large-latest'")
    return "\n".join(lines)


class _Link:
    """Keeps a trait of `owner` and a widget's value equal, both ways.

    `to_widget` / `to_trait` convert (e.g. None ↔ 0). A value the trait refuses
    puts the widget back and is shown by `on_error` (called with "" after a change
    that worked, to clear it).
    """

    def __init__(self, owner, name, widget, *, to_widget=None, to_trait=None, on_error=None):
        self.owner, self.name, self.widget = owner, name, widget
        self.to_widget = to_widget or (lambda v: v)
        self.to_trait = to_trait or (lambda v: v)
        self.on_error = on_error
        self.busy = False
        self.pull()
        owner.observe(self._from_trait, names=name)
        widget.observe(self._from_widget, names="value")

    def pull(self) -> None:
        """Set the widget from the trait."""
        self._set_widget(getattr(self.owner, self.name))

    @contextlib.contextmanager
    def quiet(self):
        """Change the widget (e.g. its options) without writing the trait."""
        busy, self.busy = self.busy, True
        try:
            yield
        finally:
            self.busy = busy

    def _set_widget(self, value) -> None:
        self.busy = True
        try:
            self.widget.value = self.to_widget(value)
        finally:
            self.busy = False

    def _from_trait(self, change) -> None:
        if not self.busy:
            self._set_widget(change["new"])

    def _from_widget(self, change) -> None:
        if self.busy:
            return
        self.busy = True
        try:
            setattr(self.owner, self.name, self.to_trait(change["new"]))
            if self.on_error is not None:
                self.on_error("")
        except Exception as exc:  # TraitError, UsageError: refused; show why, put it back
            if self.on_error is not None:
                self.on_error(f"{self.name}: {exc}")
        finally:
            self.busy = False
        if getattr(self.owner, self.name) != self.to_trait(self.widget.value):
            self.pull()

    def unlink(self) -> None:
        self.owner.unobserve(self._from_trait, names=self.name)
        self.widget.unobserve(self._from_widget, names="value")


class SettingsPanel(_View):
    """Model, temperature, max tokens and default chat, two-way with `MistralMagics` traits.

    Widgets: `model` (Dropdown), `temperature` (FloatSlider) with `default_temperature`
    (Checkbox: None = the model's default), `max_tokens` (BoundedIntText, 0 = no cap),
    `chat` (Combobox: pick or type a name), `message` (errors, e.g. when models.list fails).
    """

    def __init__(self, magics):
        super().__init__()
        import ipywidgets as w

        self.magics = magics
        self.session = magics.session
        wide = {"description_width": "8em"}
        self.model = w.Dropdown(description="model", style=wide, layout=w.Layout(width="34em"))
        self.default_temperature = w.Checkbox(description="model default", indent=False)
        self.temperature = w.FloatSlider(
            min=0.0, max=TEMPERATURE_MAX, step=0.05, description="temperature", style=wide,
            continuous_update=False,
        )
        self.max_tokens = w.BoundedIntText(
            min=0, max=MAX_TOKENS_CAP, description="max tokens", style=wide,
            tooltip="0 = no cap",
        )
        self.chat = w.Combobox(
            description="chat", style=wide, placeholder="pick or type a chat name",
            ensure_option=False, continuous_update=False,
        )
        self.backend_label = w.HTML()
        self.message = w.HTML()
        self._model_temperatures: dict[str, float | None] = {}
        self.widget = w.VBox([
            self.model,
            w.HBox([self.temperature, self.default_temperature]),
            w.HBox([self.max_tokens, w.Label("0 = no cap")]),
            self.chat,
            self.backend_label,
            self.message,
        ])
        self._model_link = _Link(magics, "model", self.model, to_widget=self._ensure_model,
                                 on_error=self._error)
        tokens_link = _Link(
            magics, "max_tokens", self.max_tokens,
            to_widget=lambda v: v or 0, to_trait=lambda v: v or None, on_error=self._error,
        )
        self._cleanups += [self._model_link.unlink, tokens_link.unlink]
        self.refresh_models()
        self._bind_temperature()
        self._bind_chat()
        self._cleanups.append(self.session.ledger.subscribe(lambda record: self._chat_names()))
        self._show_backend()

    # model ------------------------------------------------------------------------

    def refresh_models(self) -> None:
        """Fill the model dropdown from the backend's models.list (with prices)."""
        from .errors import user_message

        prices = self.session.prices
        try:
            cards = _chat_cards(self.session)
        except Exception as exc:  # the panel must open even when listing fails; say why
            cards = []
            self._error(f"could not list models: {user_message(exc)}")
        options = [(model_label(c.id, getattr(c, "max_context_length", None), prices), c.id)
                   for c in cards]
        self._model_temperatures = {
            c.id: getattr(c, "default_model_temperature", None) for c in cards
        }
        # Replacing options resets a Dropdown's value: do it quietly, then show the setting.
        with self._lock, self._model_link.quiet():
            self.model.options = options
            self._model_link.pull()

    def _ensure_model(self, model_id: str) -> str:
        """Add a model the list does not have (a fine-tune, a typo) so the dropdown can show it."""
        if model_id not in [value for _, value in self.model.options]:
            label = model_label(model_id, None, self.session.prices) + " · not listed"
            self.model.options = [*self.model.options, (label, model_id)]
        return model_id

    # temperature: one trait, two widgets ---------------------------------------------

    def _bind_temperature(self) -> None:
        self._temperature_busy = False
        self._temperature_from_trait({"new": self.magics.temperature})
        self.magics.observe(self._temperature_from_trait, names="temperature")
        self.magics.observe(self._model_changed, names="model")
        self.temperature.observe(self._temperature_from_widgets, names="value")
        self.default_temperature.observe(self._temperature_from_widgets, names="value")
        self._cleanups.append(lambda: self.magics.unobserve(self._temperature_from_trait,
                                                            names="temperature"))
        self._cleanups.append(lambda: self.magics.unobserve(self._model_changed, names="model"))

    def _model_changed(self, change) -> None:
        if self.magics.temperature is None:
            self._temperature_from_trait({"new": None})

    def _temperature_from_trait(self, change) -> None:
        if self._temperature_busy:
            return
        self._temperature_busy = True
        try:
            value = change["new"]
            self.default_temperature.value = value is None
            self.temperature.disabled = value is None
            if value is None:  # show what "default" means for this model, when it is known
                value = self._model_temperatures.get(self.magics.model)
            if value is not None:
                self.temperature.value = value
        finally:
            self._temperature_busy = False

    def _temperature_from_widgets(self, change) -> None:
        if self._temperature_busy:
            return
        self._temperature_busy = True
        try:
            default = self.default_temperature.value
            self.temperature.disabled = default
            self.magics.temperature = None if default else float(self.temperature.value)
            self._error("")
        except Exception as exc:  # refused by the trait's check: show why
            self._error(f"temperature: {exc}")
        finally:
            self._temperature_busy = False

    # chat: a name to pick or type -----------------------------------------------------

    def _bind_chat(self) -> None:
        self._chat_names()
        self.chat.value = _default_chat(self.magics)
        self.chat.observe(self._chat_from_widget, names="value")
        if self.magics.has_trait("chat"):
            self.magics.observe(self._chat_from_trait, names="chat")
            self._cleanups.append(
                lambda: self.magics.unobserve(self._chat_from_trait, names="chat")
            )

    def _chat_names(self) -> None:
        names = self.session.chats.names()
        current = _default_chat(self.magics)
        if current not in names:
            names.insert(0, current)
        with self._lock:
            if list(self.chat.options) != names:
                self.chat.options = names

    def _chat_from_widget(self, change) -> None:
        name = (change["new"] or "").strip()
        if not name:  # cleared the box: keep the chat there was
            self.chat.value = _default_chat(self.magics)
            return
        if name != _default_chat(self.magics):
            self.magics.chat = name
        self._chat_names()

    def _chat_from_trait(self, change) -> None:
        if self.chat.value != change["new"]:
            self.chat.value = change["new"]

    # ------------------------------------------------------------------------------

    def _show_backend(self) -> None:
        try:
            label = self.session.backend_spec().label
        except Exception as exc:  # a broken backend setting: show it rather than fail
            label = f"unusable: {exc}"
        self.backend_label.value = render.line(f"backend: {label}", minor=True)

    def _error(self, text: str) -> None:
        self.message.value = render.line(text, tone="error") if text else ""

    def text(self) -> str:
        return settings_text(self.magics)


# -- the chat panel -----------------------------------------------------------------------


def _markdown(markdown: str, plain: str) -> dict:
    return render.output(render.markdown(markdown, plain=plain))


def _turn_outputs(turn) -> list[dict]:
    """A turn as two outputs rendered from Markdown: the prompt, then the answer and its end."""
    from .core import FAILED_MARK, INTERRUPTED_MARK

    user = _markdown(f"**You**\n\n{turn.prompt}", f"You: {turn.prompt}")
    who = turn.model or "assistant"
    answer = turn.answer
    if turn.status == "interrupted":
        answer += INTERRUPTED_MARK
    elif turn.status == "error":
        answer = f"{answer}{FAILED_MARK}\n\n*{turn.error}*" if answer else f"*⚠ {turn.error}*"
    return [user, _markdown(f"**{who}**\n\n{answer}", f"{who}: {answer}")]


def chat_text(session, name: str, fallback: bool = False) -> str:
    """A chat's transcript as text."""
    turns = session.chats.get(name).turns if name in session.chats else []
    lines = [f"Chat {name!r}: {len(turns)} turns"]
    if fallback:
        lines[0] += f" (continue it with %%mistral -c {name})"
    for turn in turns:
        lines += [""] + [out["data"]["text/plain"] for out in _turn_outputs(turn)]
    return "\n".join(lines)


def _status_line(session, answer) -> str:
    if answer.status == "error":
        return answer.error or "the request failed"
    footer = session.footer(answer)
    return f"interrupted · {footer}" if answer.status == "interrupted" else footer


class ChatPanel(_View):
    """A chat box on the named chat: transcript, input, Send and Stop, a status line.

    `send(text)` returns a `concurrent.futures.Future` of the recorded `Turn` at
    once; `stop()` cancels the running request; `wait(timeout)` returns the Turn.
    Widgets: `history` and `live` (Output, rendered Markdown), `input` (Textarea),
    `send_button`, `stop_button`, `status` (HTML).
    """

    def __init__(self, session, name: str = DEFAULT_CHAT):
        super().__init__()
        import ipywidgets as w

        self.session = session
        self.name = name
        self.future = None
        self._parts: list[str] = []
        self.last = None  # the last Answer the panel got
        self.updates = 0  # renders of the streaming answer
        self._task: asyncio.Task | None = None
        self._stop_requested = False
        self._state = threading.Lock()
        self._shown_at = 0.0
        self._shown_len = 0
        self._prompt = ""
        self._model = ""

        self.title = w.HTML(render.line(name, lead="chat"))
        self.history = w.Output(layout=w.Layout(max_height="32em", overflow="auto"))
        self.live = w.Output()
        self.input = w.Textarea(placeholder="Ask… (Send, or panel.send(text))",
                                layout=w.Layout(width="100%"))
        self.send_button = w.Button(description="Send", button_style="primary", icon="paper-plane")
        self.stop_button = w.Button(description="Stop", icon="stop", disabled=True)
        self.status = w.HTML()
        self.send_button.on_click(self._on_send)
        self.stop_button.on_click(lambda button: self.stop())
        self.widget = w.VBox([
            self.title, self.history, self.live, self.input,
            w.HBox([self.send_button, self.stop_button]), self.status,
        ])
        self.chat = None
        self._unsubscribe_chat = None
        self._attach()
        # A `%mistral reset --all` replaces the Chat object; each call re-checks it.
        self._cleanups.append(session.ledger.subscribe(lambda record: self._attach()))

    @property
    def busy(self) -> bool:
        future = self.future
        return future is not None and not future.done()

    def _attach(self) -> None:
        chat = self.session.chats.get(self.name)
        if chat is self.chat:
            return
        with self._lock:
            if self._unsubscribe_chat is not None:
                self._unsubscribe_chat()
            self.chat = chat
            self._unsubscribe_chat = chat.subscribe(lambda chat: self.refresh())
        self.refresh()

    def close(self) -> None:
        self.stop()
        if self._unsubscribe_chat is not None:
            self._unsubscribe_chat()
        super().close()

    # -- actions -------------------------------------------------------------------

    def send(self, text: str | None = None):
        """Ask `text` (default: the input box) in this chat; returns a Future of the Turn.

        Raises `BudgetExceeded` / `ConfigError` before sending, and `RuntimeError`
        while a request is running.
        """
        from_input = text is None
        prompt = (self.input.value if from_input else text).strip()
        if not prompt:
            raise ValueError("nothing to send: type a message first")
        if self.busy:
            raise RuntimeError(f"chat {self.name!r} is still answering; Stop it or wait")
        self._attach()
        session = self.session
        request = session.build_request(prompt, chat=self.name)
        # Resolved here, in the kernel's thread: the offline notice belongs to the cell,
        # and building the client imports the SDK (slow once).
        backend = session.backend
        _ = backend.client
        reservation = session.reserve(request, exact=backend.kind == "offline")
        if from_input:
            self.input.value = ""
        with self._state:
            self._stop_requested = False
        self._prompt, self._model, self._parts = prompt, request["model"], []
        self._render_live(waiting=True)
        self._set_busy(True)
        try:
            self.future = session.loop.submit(self._run(request, reservation, backend, prompt))
        except BaseException:
            reservation.release()
            raise
        # A task cancelled before it ran never settles: give the hold back then too.
        self.future.add_done_callback(lambda future: reservation.release())
        return self.future

    def stop(self) -> bool:
        """Cancel the running request; its partial answer is kept, marked interrupted."""
        if not self.busy:
            return False
        with self._state:
            self._stop_requested = True
            task = self._task
        if task is not None:
            self.session.loop.loop.call_soon_threadsafe(task.cancel)
        return True

    def wait(self, timeout: float | None = None):
        """Wait for the running (or last) request; returns its Turn (None if stopped unsent)."""
        future = self.future
        return None if future is None else future.result(timeout)

    async def _run(self, request, reservation, backend, prompt):
        with self._state:
            if self._stop_requested:  # stopped before it was sent: nothing to record
                reservation.release()
                self._idle("stopped before sending")
                return None
            self._task = asyncio.current_task()
        status, error = "the request failed unexpectedly (see the log)", True
        try:
            answer = await self.session.call_async(
                request, backend=backend, reservation=reservation, chat=self.name,
                on_text=self._on_text,
            )
            turn = self.session.record_turn(answer, request, self.name, None)
            self.last = answer
            status, error = _status_line(self.session, answer), answer.status == "error"
            return turn
        finally:
            with self._state:
                self._task = None
            self._idle(status, error=error)

    def _on_send(self, button) -> None:
        from .errors import MistralMagicError

        try:
            self.send()
        except (MistralMagicError, ValueError, RuntimeError) as exc:
            self._status(str(exc), error=True)

    # -- rendering -------------------------------------------------------------------

    def refresh(self) -> None:
        """Render the chat's turns (called after every change to the chat)."""
        chat = self.chat
        outputs = [out for turn in list(chat.turns) for out in _turn_outputs(turn)]
        details = f"{self.name} · {len(chat.turns)} turns"
        if chat.system:
            details += f" · system: {chat.system[:120]}"
        with self._lock:
            self.history.outputs = tuple(outputs)
            self.title.value = render.line(details, lead="chat")

    @property
    def partial(self) -> str:
        """The answer streamed so far by the running (or last) request."""
        return "".join(self._parts)

    def _on_text(self, parts: list[str]) -> None:
        # On the loop thread, once per chunk: render at a bounded, falling rate, and
        # join the pieces only then (a join per chunk would be quadratic).
        self._parts = parts
        if time.monotonic() - self._shown_at >= update_interval(self._shown_len):
            self._render_live()

    def _render_live(self, waiting: bool = False) -> None:
        with self._lock:
            partial = self.partial
            answer = "*…waiting for the first token…*" if waiting else partial + CURSOR
            self.live.outputs = (
                _markdown(f"**You**\n\n{self._prompt}", f"You: {self._prompt}"),
                _markdown(f"**{self._model}**\n\n{answer}", answer),
            )
            self._shown_at, self._shown_len = time.monotonic(), len(partial)
            if not waiting:
                self.updates += 1

    def _idle(self, status: str, error: bool = False) -> None:
        with self._lock:
            self.live.outputs = ()
            self._set_busy(False)
            self._status(status, error=error)

    def _set_busy(self, busy: bool) -> None:
        self.send_button.disabled = busy
        self.stop_button.disabled = not busy

    def _status(self, text: str, error: bool = False) -> None:
        self.status.value = render.line(text, minor=True, tone="error" if error else "muted")

    def text(self) -> str:
        return chat_text(self.session, self.name)
