"""An operator's steps through the row engine: one plan said up front, one bar, one tally.

The semantic operators (`join`, `agg`, `topk`) run as several row jobs (blocking then
judging, levels of summaries, rounds of comparisons). `Steps` runs each through the
row engine with the user's concurrency, rate limits and retries, so every call keeps
the engine's rules (budget reservations and the up-front refusal of a step that cannot
finish, the resume cache, `_error`, the ledger, interrupts), while the operator says
its own plan once (`say`) and shows one bar over all its steps instead of one per step.
`spent()` is what its calls cost, from the ledger.
"""

from __future__ import annotations

from IPython.display import display

from ..money.usage import format_cost
from ..show.render import note


class Steps:
    """The row engine for an operator's steps (see the module's doc)."""

    def __init__(self, engine, kind: str, total: int, unit: str = "call"):
        from .engine import RowEngine

        self.session = engine.session
        self.kind = kind
        self.engine = RowEngine(
            engine.session, concurrency=engine.concurrency,
            requests_per_second=engine.requests_per_second,
            tokens_per_minute=engine.tokens_per_minute, max_retries=engine.max_retries,
            progress=self, notes=False)
        self.shown, self.total, self.unit = bool(engine.progress), total, unit
        self._bar = None  # made when the first step starts, below the operator's plan
        self.offset = 0  # units of the steps already finished
        self.start = len(self.session.ledger)

    def run(self, job, *, batch: bool = False):
        """One step: `job` through the engine (its plan unsaid, its bar this one's)."""
        return self.engine.run(job, batch=batch)

    @property
    def bar(self):
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=self.kind, unit=self.unit,
                             disable=not self.shown)
        return self._bar

    def part(self, total: int, done: int) -> _Part:
        """The engine's bar for one step (`engine.RowRun.bar`)."""
        return _Part(self, total)

    def calls(self) -> list:
        """The ledger rows of this operator's calls so far (its kind, and embeddings it made)."""
        return self.session.ledger.records[self.start:]

    def spent(self) -> float | None:
        records = self.calls()
        return None if any(r.cost is None for r in records) else sum(r.cost for r in records)

    def grow(self, total: int) -> None:
        """The bar's total, once the steps left are known."""
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    @staticmethod
    def say(text: str) -> None:
        display(note(text), raw=True)

    def tally(self) -> str:
        """'12 calls, $0.0042' for the calls made so far."""
        records = [r for r in self.calls() if not r.cached]
        return f"{len(records):,} call{'' if len(records) == 1 else 's'}, {format_cost(self.spent())}"


class _Part:
    """One step's view of the operator's bar: the engine moves it as it would its own."""

    disable = False  # drawn whenever the engine moves it (as a tqdm bar that is on)

    def __init__(self, steps: Steps, total: int):
        self.steps = steps
        self.total = total
        self._n = 0

    @property
    def n(self) -> int:
        return self._n

    @n.setter
    def n(self, value: int) -> None:
        self._n = value
        self.steps.bar.n = self.steps.offset + value

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.steps.bar.set_postfix_str(text, refresh=refresh)

    def refresh(self) -> None:
        self.steps.bar.refresh()

    def close(self) -> None:
        self.steps.offset += self.total
        self.steps.bar.n = self.steps.offset
        self.steps.bar.refresh()
