"""`UsageMeter`: session totals, a per-model table and a budget bar, following the ledger."""

from __future__ import annotations

from ..show import render
from .base import Throttle, View, text_table


def _cost_text(totals: dict) -> str:
    from ..money.usage import format_cost

    text = format_cost(totals["cost"])
    return text if totals.get("cost_known", True) else f"{text} + unknown"


def _model_rows(session) -> list[list[str]]:
    from ..money.usage import format_tokens

    return [
        [model, str(t["calls"]), format_tokens(t["prompt_tokens"]),
         format_tokens(t["completion_tokens"]), _cost_text(t)]
        for model, t in session.ledger.by_model().items()
    ]


_MODEL_HEADER = ["model", "calls", "tokens in", "tokens out", "cost"]


def _budget(session, spent: float) -> tuple[float | None, str]:
    """(fraction of the budget spent, or None without one; the label)."""
    from ..money.usage import format_cost

    limit = session.settings.budget_usd
    if limit is None:
        return None, "no budget set (%config MistralMagics.budget_usd = 1.0)"
    fraction = spent / limit if limit > 0 else (1.0 if spent > 0 else 0.0)
    return fraction, f"{format_cost(spent)} of {format_cost(limit)} budget ({fraction:.0%})"


def _summary(totals: dict) -> str:
    from ..money.usage import format_tokens

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
        lines += ["", text_table(_MODEL_HEADER, rows)]
    lines += ["", _budget(session, totals["cost"])[1]]
    return "\n".join(lines)


def meter_html(session) -> str:
    """The meter as HTML (what a saved notebook shows): totals, the per-model table, the budget."""
    totals = session.ledger.totals()
    rows = _model_rows(session)
    return (render.line(f"usage: {_summary(totals)}", lead="mistral_magic")
            + (render.table(_MODEL_HEADER, rows) if rows else "")
            + render.line(_budget(session, totals["cost"])[1]))


class UsageMeter(View):
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
        self._throttle = Throttle(self.refresh, min_interval)
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
        self.changed()

    def text(self) -> str:
        return meter_text(self.session)

    def html(self) -> str:
        return meter_html(self.session)

