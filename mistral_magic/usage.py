"""Usage and cost: the price table, the ledger of calls, token estimates and the budget.

Prices
    `load_prices()` reads `prices.json` (list prices in USD per 1M tokens, with their
    source and date) and applies the user's overrides, e.g. from
    ``%config MistralMagics.prices = {"my-finetune": {"input": 0.3, "output": 0.9}}``::

        >>> prices = load_prices({"mistral-small-latest": {"input": 0.1, "output": 0.3}})
        >>> prices.resolve("mistral-small-latest")
        'mistral-small-2603'
        >>> prices.cost("mistral-small-latest", 1_000_000, 0)
        0.1

    An alias (``mistral-small-latest``) resolves to the dated model it names; an
    override given for an alias applies to that model. A model with no known price
    costs ``None`` (shown as "unknown"), never 0. Batch calls cost
    ``batch_discount`` (0.5) of the list price. OCR is priced per page
    (`page_cost`), not per token, so its token `price`/`cost` is ``None``.

Ledger
    Every call becomes a `CallRecord` in the session's `Ledger` (thread-safe: the
    DataFrame extraction records from a background thread). ``ledger.totals()``,
    ``ledger.by_model()`` and ``ledger.to_frame()`` are what ``%mistral usage`` shows;
    ``ledger.subscribe(callback)`` is how the footer and the meter stay current.
    Record times are timezone-aware UTC (`datetime.now(timezone.utc)`), so ledgers
    from kernels in different zones line up; convert with ``.dt.tz_convert`` to show
    local time.

Estimates and the budget
    Before a call, `estimate_call` counts the prompt with the shared Tekken tokenizer
    (`mistral_magic.tokens`) and prices the worst case: the prompt plus ``max_tokens``
    completion tokens. `Budget.check` refuses a call whose worst case would take the
    spend past ``MistralMagics.budget_usd``, with a one-line `BudgetExceeded` that
    gives the numbers and the fix.

This module imports neither pandas nor the tokenizer until they are needed.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from .errors import BudgetExceeded, ConfigError

log = logging.getLogger(__name__)

#: Completion tokens assumed for the worst case when a call sets no ``max_tokens``.
#: The model's context length would make every budget check refuse; 1024 covers a
#: typical notebook answer. A call that runs longer is still recorded at its real cost.
DEFAULT_MAX_TOKENS = 1024

_OVERRIDE_FORM = (
    'expected {"model-or-alias": {"input": <USD per 1M>, "output": <USD per 1M>}}, '
    'e.g. %config MistralMagics.prices = {"my-model": {"input": 0.5, "output": 1.5}}'
)


# -- prices -------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelPrice:
    """One model's list price: USD per 1M tokens, or per page for OCR."""

    input: float | None = None
    output: float | None = None
    per_page: float | None = None
    context: int | None = None


class PriceTable:
    """Model prices with aliases; unknown models have no price (``None``), never 0."""

    def __init__(
        self,
        models: Mapping[str, ModelPrice],
        aliases: Mapping[str, str] | None = None,
        *,
        source: str = "",
        date: str = "",
        currency: str = "USD",
        batch_discount: float = 0.5,
    ):
        self.models: dict[str, ModelPrice] = dict(models)
        self.aliases: dict[str, str] = dict(aliases or {})
        self.source = source
        self.date = date
        self.currency = currency
        self.batch_discount = batch_discount

    def __repr__(self) -> str:
        return f"<PriceTable {len(self.models)} models, {self.source!r}, {self.date}>"

    def resolve(self, model: str | None) -> str | None:
        """The canonical model id for a model id or alias, or None if not in the table."""
        if not model:
            return None
        model = model.strip()
        if model in self.models:
            return model
        return self.aliases.get(model)

    def entry(self, model: str | None) -> ModelPrice | None:
        canonical = self.resolve(model)
        return self.models.get(canonical) if canonical else None

    def price(self, model: str | None) -> tuple[float, float] | None:
        """(input, output) USD per 1M tokens, or None if unknown or not priced per token."""
        entry = self.entry(model)
        if entry is None or entry.input is None:
            return None
        return entry.input, entry.output or 0.0

    def context_length(self, model: str | None) -> int | None:
        """The model's context window in tokens, when the table knows it."""
        entry = self.entry(model)
        return entry.context if entry else None

    def cost(
        self,
        model: str | None,
        prompt_tokens: int | None,
        completion_tokens: int | None,
        batch: bool = False,
    ) -> float | None:
        """USD for a call; None when the model's price is unknown."""
        price = self.price(model)
        if price is None:
            return None
        usd = ((prompt_tokens or 0) * price[0] + (completion_tokens or 0) * price[1]) / 1e6
        return usd * self.batch_discount if batch else usd

    def page_cost(self, model: str | None, pages: int, batch: bool = False) -> float | None:
        """USD for an OCR call of `pages` pages; None if the model is not priced per page."""
        entry = self.entry(model)
        if entry is None or entry.per_page is None:
            return None
        usd = pages * entry.per_page
        return usd * self.batch_discount if batch else usd

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> PriceTable:
        """A copy with user prices applied (an alias's override applies to its model)."""
        table = PriceTable(
            self.models,
            self.aliases,
            source=self.source,
            date=self.date,
            currency=self.currency,
            batch_discount=self.batch_discount,
        )
        if not overrides:
            return table
        if not isinstance(overrides, Mapping):
            raise ConfigError(f"MistralMagics.prices must be a dict: {_OVERRIDE_FORM}")
        for name, value in overrides.items():
            if not isinstance(name, str) or not name.strip():
                raise ConfigError(
                    f"MistralMagics.prices has a bad model name {name!r}: {_OVERRIDE_FORM}"
                )
            canonical = table.resolve(name) or name.strip()
            known = table.models.get(canonical)
            table.models[canonical] = _parse_override(name, value, known)
        table.source = f"{self.source} (with user overrides)" if self.source else "user overrides"
        return table


def _number(name: str, key: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigError(
            f"MistralMagics.prices[{name!r}][{key!r}] must be a number >= 0, got {value!r}: {_OVERRIDE_FORM}"
        )
    return float(value)


def _parse_override(name: str, value: Any, known: ModelPrice | None) -> ModelPrice:
    context = known.context if known else None
    # A pair (input, output) is accepted too: it is what people type first.
    if isinstance(value, (list, tuple)) and len(value) == 2:
        value = {"input": value[0], "output": value[1]}
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(
            f"MistralMagics.prices[{name!r}] = {value!r} is not a price: {_OVERRIDE_FORM}"
        )
    unknown = set(value) - {"input", "output", "per_page"}
    if unknown:
        raise ConfigError(
            f"MistralMagics.prices[{name!r}] has unknown keys {sorted(unknown)}: {_OVERRIDE_FORM}"
        )
    if "per_page" in value:
        return ModelPrice(per_page=_number(name, "per_page", value["per_page"]), context=context)
    if "input" not in value:
        raise ConfigError(
            f"MistralMagics.prices[{name!r}] needs an 'input' price: {_OVERRIDE_FORM}"
        )
    return ModelPrice(
        input=_number(name, "input", value["input"]),
        output=_number(name, "output", value.get("output", 0.0)),
        context=context,
    )


_base_table: PriceTable | None = None
_base_lock = threading.Lock()


def _load_base() -> PriceTable:
    global _base_table
    with _base_lock:
        if _base_table is None:
            text = resources.files("mistral_magic").joinpath("prices.json").read_text("utf-8")
            data = json.loads(text)
            models: dict[str, ModelPrice] = {}
            aliases: dict[str, str] = {}
            for model_id, entry in data["models"].items():
                models[model_id] = ModelPrice(
                    input=entry.get("input"),
                    output=entry.get("output"),
                    per_page=entry.get("per_page"),
                    context=entry.get("context"),
                )
                for alias in entry.get("aliases", []):
                    aliases[alias] = model_id
            _base_table = PriceTable(
                models,
                aliases,
                source=data.get("source", ""),
                date=data.get("date", ""),
                currency=data.get("currency", "USD"),
                batch_discount=float(data.get("batch_discount", 0.5)),
            )
    return _base_table


def load_prices(overrides: Mapping[str, Any] | None = None) -> PriceTable:
    """The bundled price table with `overrides` (``{model_or_alias: {"input", "output"}}``) applied.

    Raises `ConfigError` (one line, showing the expected form) for a malformed override.
    """
    return _load_base().with_overrides(overrides)


# -- formatting ---------------------------------------------------------------------


def format_cost(cost: float | None) -> str:
    """'unknown', '$0', '$0.000123' (three significant digits below $1) or '$1.23'."""
    if cost is None or (isinstance(cost, float) and math.isnan(cost)):
        return "unknown"
    if cost == 0:
        return "$0"
    sign = "-" if cost < 0 else ""
    cost = abs(cost)
    if cost >= 1:
        return f"{sign}${cost:,.2f}"
    # Small amounts keep three significant digits so a tenth of a cent stays visible.
    decimals = max(2, 2 - math.floor(math.log10(cost)))
    text = f"{cost:.{decimals}f}".rstrip("0")
    whole, _, frac = text.partition(".")
    return f"{sign}${whole}.{frac.ljust(2, '0')}"


def format_tokens(n: int | None, compact: bool = False) -> str:
    """'12,345' (or '12.3k' / '1.2M' with `compact`); '?' when unknown."""
    if n is None:
        return "?"
    n = int(n)
    if compact:
        if abs(n) >= 999_950:
            return f"{n / 1e6:.1f}M"
        if abs(n) >= 1000:
            return f"{n / 1e3:.1f}k"
    return f"{n:,}"


# -- the ledger ---------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(kw_only=True)
class CallRecord:
    """One call to a model, as the ledger keeps it. `time` is timezone-aware UTC."""

    model: str
    time: datetime = field(default_factory=_now)
    chat: str | None = None
    kind: str = "chat"  # chat | extract | batch | embed | fim | ocr | moderate | ...
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None  # None = unknown price, never 0 for unknown
    latency_s: float | None = None
    ttft_s: float | None = None
    status: str = "ok"  # ok | error | interrupted | refused | ...
    backend: str = "mistral"  # offline | mistral | self-hosted
    batch: bool = False
    error: str | None = None

    @property
    def total_tokens(self) -> int:
        return (self.prompt_tokens or 0) + (self.completion_tokens or 0)


FRAME_COLUMNS = (
    "time",
    "chat",
    "model",
    "kind",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency_s",
    "ttft_s",
    "status",
    "backend",
    "error",
)


def _totals(records: Iterable[CallRecord]) -> dict[str, Any]:
    calls = prompt = completion = 0
    cost = 0.0
    known = True
    for rec in records:
        calls += 1
        prompt += rec.prompt_tokens or 0
        completion += rec.completion_tokens or 0
        if rec.cost is None:
            known = False
        else:
            cost += rec.cost
    return {
        "calls": calls,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost": cost,
        "cost_known": known,
    }


class Ledger:
    """Every call of the session, in order; safe to record from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[CallRecord] = []
        self._subscribers: list[Callable[[CallRecord], Any]] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __repr__(self) -> str:
        t = self.totals()
        cost = format_cost(t["cost"]) + ("" if t["cost_known"] else " + unknown")
        return f"<Ledger {t['calls']} calls, {t['prompt_tokens']}+{t['completion_tokens']} tokens, {cost}>"

    def record(self, rec: CallRecord) -> CallRecord:
        """Add a call, then tell the subscribers; a failing subscriber is logged, not raised."""
        with self._lock:
            self._records.append(rec)
            subscribers = list(self._subscribers)
        # Callbacks run outside the lock so one may read the ledger without deadlock.
        for callback in subscribers:
            try:
                callback(rec)
            except Exception:
                log.exception(
                    "mistral_magic: a ledger subscriber failed; the call is still recorded"
                )
        return rec

    @property
    def records(self) -> list[CallRecord]:
        """A copy of the records, oldest first."""
        with self._lock:
            return list(self._records)

    @property
    def spent(self) -> float:
        """USD spent on calls whose price is known (what the budget counts)."""
        return self.totals()["cost"]

    def totals(self) -> dict[str, Any]:
        """calls, prompt_tokens, completion_tokens, cost (known costs summed), cost_known."""
        return _totals(self.records)

    def by_model(self) -> dict[str, dict[str, Any]]:
        """`totals()` per model, in order of first use."""
        groups: dict[str, list[CallRecord]] = {}
        for rec in self.records:
            groups.setdefault(rec.model, []).append(rec)
        return {model: _totals(recs) for model, recs in groups.items()}

    def subscribe(self, callback: Callable[[CallRecord], Any]) -> Callable[[], None]:
        """Call `callback(record)` after each record; returns a function that unsubscribes."""
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def clear(self) -> None:
        """Forget all records (subscribers stay)."""
        with self._lock:
            self._records.clear()

    def to_frame(self):
        """One row per call: Int64 token counts, float64 cost (NaN = unknown), UTC times."""
        import pandas as pd

        records = self.records
        column = {name: [getattr(r, name) for r in records] for name in FRAME_COLUMNS}
        return pd.DataFrame(
            {
                "time": pd.Series(
                    pd.to_datetime(column["time"], utc=True), dtype="datetime64[ns, UTC]"
                ),
                "chat": pd.Series(column["chat"], dtype=object),
                "model": pd.Series(column["model"], dtype=object),
                "kind": pd.Series(column["kind"], dtype=object),
                "prompt_tokens": pd.Series(column["prompt_tokens"], dtype="Int64"),
                "completion_tokens": pd.Series(column["completion_tokens"], dtype="Int64"),
                "cost": pd.Series(
                    [math.nan if c is None else c for c in column["cost"]], dtype="float64"
                ),
                "latency_s": pd.Series(
                    [math.nan if v is None else v for v in column["latency_s"]], dtype="float64"
                ),
                "ttft_s": pd.Series(
                    [math.nan if v is None else v for v in column["ttft_s"]], dtype="float64"
                ),
                "status": pd.Series(column["status"], dtype=object),
                "backend": pd.Series(column["backend"], dtype=object),
                "error": pd.Series(column["error"], dtype=object),
            },
            columns=list(FRAME_COLUMNS),
        )


# -- estimates and the budget -------------------------------------------------------


@dataclass
class Estimate:
    """What a call may cost before it is sent: prompt tokens counted, completion at most."""

    prompt_tokens: int
    max_completion_tokens: int
    worst_cost: float | None  # prompt + max completion; None = unknown price
    prompt_cost: float | None
    model: str | None = None
    batch: bool = False


def estimate_call(
    prices: PriceTable,
    model: str,
    messages: list[Any],
    tools: list[Any] | None = None,
    max_tokens: int | None = None,
    default_max_tokens: int = DEFAULT_MAX_TOKENS,
    batch: bool = False,
) -> Estimate:
    """Count the prompt (Tekken, via `tokens.count_messages`) and price the worst case.

    The worst case is the prompt plus `max_tokens` completion tokens. When the call
    sets no `max_tokens`, `default_max_tokens` (1024) is assumed rather than the
    model's whole context, which would make any budget refuse every call.
    """
    from .tokens import count_messages

    prompt = count_messages(messages, tools=tools)
    completion = int(max_tokens if max_tokens is not None else default_max_tokens)
    return Estimate(
        prompt_tokens=prompt,
        max_completion_tokens=completion,
        worst_cost=prices.cost(model, prompt, completion, batch=batch),
        prompt_cost=prices.cost(model, prompt, 0, batch=batch),
        model=model,
        batch=batch,
    )


class Budget:
    """A spending limit in USD for the session (``MistralMagics.budget_usd``); None = no limit.

    With a limit set, a call whose price is unknown is refused: its cost could not be
    counted against the limit. Set its price via ``MistralMagics.prices`` to allow it.
    """

    def __init__(self, limit_usd: float | None):
        if limit_usd is not None:
            if (
                isinstance(limit_usd, bool)
                or not isinstance(limit_usd, (int, float))
                or not limit_usd >= 0
            ):
                raise ConfigError(
                    f"MistralMagics.budget_usd must be a number >= 0 or None, got {limit_usd!r}; "
                    "e.g. %config MistralMagics.budget_usd = 1.0"
                )
            limit_usd = float(limit_usd)
        self.limit_usd = limit_usd

    def __repr__(self) -> str:
        return f"Budget({self.limit_usd!r})"

    def remaining(self, spent: float) -> float | None:
        """USD left (never below 0), or None without a limit."""
        if self.limit_usd is None:
            return None
        return max(0.0, self.limit_usd - spent)

    def check(self, ledger_spent: float, estimate: Estimate, model: str | None = None) -> None:
        """Raise `BudgetExceeded` if this call's worst case could take the spend past the limit."""
        if self.limit_usd is None:
            return
        model = model or estimate.model or "this model"
        limit = format_cost(self.limit_usd)
        spent = format_cost(ledger_spent)
        if estimate.worst_cost is None:
            raise BudgetExceeded(
                f"Refused: no price is known for {model}, so it cannot be counted against the "
                f"{limit} budget ({spent} spent); set its price with %config MistralMagics.prices = "
                f'{{"{model}": {{"input": <USD per 1M>, "output": <USD per 1M>}}}} '
                "or set MistralMagics.budget_usd = None"
            )
        if ledger_spent + estimate.worst_cost > self.limit_usd:
            raise BudgetExceeded(
                f"Refused: {spent} spent so far + up to {format_cost(estimate.worst_cost)} for this call "
                f"({format_tokens(estimate.prompt_tokens)} prompt + "
                f"{format_tokens(estimate.max_completion_tokens)} max completion tokens on {model}) "
                f"would pass the {limit} budget; raise MistralMagics.budget_usd or lower --max-tokens"
            )
