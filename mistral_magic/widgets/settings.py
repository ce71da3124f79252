"""`SettingsPanel`: model, temperature, max tokens and chat, two-way with `MistralMagics`."""

from __future__ import annotations

import contextlib

from ..show import render
from .base import View, default_chat

TEMPERATURE_MAX = 1.5
MAX_TOKENS_CAP = 1 << 20  # the widget's upper bound; above any model's context today


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
    lines.append(f"  chat = {default_chat(magics)!r}")
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


class SettingsPanel(View):
    """Model, temperature, max tokens and default chat, two-way with `MistralMagics` traits.

    Widgets: `model` (Dropdown, wide enough for its labels' prices), `temperature`
    (FloatSlider) with `default_temperature` (Checkbox: None = the model's default) and
    `temperature_note` (which of the two applies), `max_tokens` (BoundedIntText, 0 = no
    cap), `chat` (Combobox: pick or type a name), `message` (errors, e.g. when models.list
    fails).
    """

    def __init__(self, magics):
        super().__init__()
        import ipywidgets as w

        self.magics = magics
        self.session = magics.session
        wide = {"description_width": "8em"}
        # Wide enough for "id → canonical id · 128k ctx · $0.10/$0.30", price included.
        self.model = w.Dropdown(description="model", style=wide,
                                layout=w.Layout(width="100%", max_width="48em"))
        self.default_temperature = w.Checkbox(description="model default", indent=False,
                                              layout=w.Layout(width="auto"))
        self.temperature_note = w.HTML()
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
            w.HBox([self.temperature, self.default_temperature, self.temperature_note]),
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
        shown = ["model", "temperature", "max_tokens", "budget_usd", "backend", "chat"]
        shown = [name for name in shown if magics.has_trait(name)]
        magics.observe(self._setting_changed, names=shown)
        self._cleanups.append(lambda: magics.unobserve(self._setting_changed, names=shown))

    def _setting_changed(self, change) -> None:
        self.changed()

    def can_redraw(self) -> bool:
        # Changes come from its own widgets, in use: a redraw would close an open dropdown.
        return False

    # model ------------------------------------------------------------------------

    def refresh_models(self) -> None:
        """Fill the model dropdown from the backend's models.list (with prices)."""
        from ..errors import user_message

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
        self._say_temperature()

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
        self._say_temperature()

    def _say_temperature(self) -> None:
        """Say which temperature applies: the slider's, or the model's default (and its value)."""
        if self.magics.temperature is not None:
            text = f"{self.magics.temperature:.2f} applies"
        else:
            known = self._model_temperatures.get(self.magics.model)
            text = ("the model's default applies"
                    + ("" if known is None else f" ({known:g} for {self.magics.model})"))
        # The slider's number is not what is sent while the default applies: hide it then.
        self.temperature.readout = self.magics.temperature is not None
        self.temperature_note.value = render.line(text, minor=True, tone="muted")

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
        self._say_temperature()

    # chat: a name to pick or type -----------------------------------------------------

    def _bind_chat(self) -> None:
        self._chat_names()
        self.chat.value = default_chat(self.magics)
        self.chat.observe(self._chat_from_widget, names="value")
        if self.magics.has_trait("chat"):
            self.magics.observe(self._chat_from_trait, names="chat")
            self._cleanups.append(
                lambda: self.magics.unobserve(self._chat_from_trait, names="chat")
            )

    def _chat_names(self) -> None:
        names = self.session.chats.names()
        current = default_chat(self.magics)
        if current not in names:
            names.insert(0, current)
        with self._lock:
            if list(self.chat.options) != names:
                self.chat.options = names

    def _chat_from_widget(self, change) -> None:
        name = (change["new"] or "").strip()
        if not name:  # cleared the box: keep the chat there was
            self.chat.value = default_chat(self.magics)
            return
        if name != default_chat(self.magics):
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

