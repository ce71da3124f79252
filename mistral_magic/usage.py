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
    `estimate_call` counts the prompt with the shared Tekken tokenizer
    (`mistral_magic.tokens`) and prices a worst case of the prompt plus ``max_tokens``
    (`DEFAULT_MAX_TOKENS` when unset): what a dry run and an extraction show up front.

    ``MistralMagics.budget_usd`` is a hard cap, kept by `Budget` (``session.budget``):
    spent (the ledger) plus held (calls still running) never passes it. Every call
    (a cell, a structured re-ask, the chat panel, each extraction row and re-ask, a
    batch job) first takes a `Reservation`:

    - *reserved*: the call's worst case, its prompt plus its ``max_tokens`` at list
      price (half for a batch job), is held until the call settles; then the ledger
      records the real usage and the hold is given back, also after an error or an
      interrupt (whatever was really used is still recorded);
    - *capped*: the request carries a ``max_tokens`` no larger than what is left
      affords after its prompt (the user's own ``--max-tokens`` stays when smaller;
      no cap when the budget covers the model's whole context; an extraction row or
      batch line without one is capped at `DEFAULT_MAX_TOKENS` too). An answer cut
      there says "cut by budget" in its footer;
    - *refused*: a call that cannot afford its prompt plus `MIN_ANSWER_TOKENS` (16)
      answer tokens, or a batch job whose whole worst case does not fit, raises a
      one-line `BudgetExceeded` before anything is sent, with what is left, what the
      call needs, and the fix.

    The prompt count is exact on the offline server (it counts with the same
    tokenizer). Hosted models' tokenizers are not bundled, so there the prompt is
    held at Tekken's count plus a margin (`prompt_bound`) and the cap is as good as
    that margin. A call that used no tokens costs 0, whatever its price, so a failed
    call never makes a total unknown.

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

#: Answer tokens an estimate assumes when a call sets no ``max_tokens`` (dry runs, an
#: extraction's up-front worst case), and the cap on each extraction row or batch line
#: without ``max_tokens`` while a budget is set: rows share the budget concurrently.
DEFAULT_MAX_TOKENS = 1024

#: The fewest answer tokens worth paying for. With a budget, a call that cannot afford
#: its prompt plus this many answer tokens (or its own ``max_tokens``, when smaller) is
#: refused before it is sent; 16 tokens is about one short sentence or a small record.
MIN_ANSWER_TOKENS = 16

#: Hosted and self-hosted prompts are held at Tekken's count times (1 + margin) plus
#: slack tokens: their own tokenizers are not bundled (see `prompt_bound`).
PROMPT_MARGIN = 0.05
PROMPT_SLACK = 16

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
        """USD for a call; None when the model's price is unknown (a call of no tokens costs 0)."""
        if not prompt_tokens and not completion_tokens:
            # A call that used nothing (refused, failed before any token) cost nothing,
            # whatever its price: it must not make a session's total unknown.
            return 0.0
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
            # A call that used no tokens cost nothing, priced or not.
            known = known and rec.total_tokens == 0
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
        self._spent = 0.0  # kept as records arrive: the budget reads it before every call
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
            self._spent += rec.cost or 0.0
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
        with self._lock:
            return self._spent

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
            self._spent = 0.0

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


def prompt_bound(tokens: int, exact: bool) -> int:
    """The prompt tokens a reservation counts: the exact count, or that count with a margin.

    The offline server counts with the same Tekken tokenizer (`mistral_magic.tokens`),
    so there the count is exact. Hosted and self-hosted models' tokenizers are not
    bundled: their prompts are held at Tekken's count plus `PROMPT_MARGIN` and
    `PROMPT_SLACK` tokens (control tokens and tokenizer versions differ by a few).
    """
    if exact:
        return tokens
    return math.ceil(tokens * (1 + PROMPT_MARGIN)) + PROMPT_SLACK


class Reservation:
    """The worst case one call (or one batch job) holds against the budget until it settles.

    `max_tokens` is what the request must carry (None: leave the request's own);
    `capped` says the budget, not the user, set it, so an answer cut there was cut by
    the budget. `settle(*records)` puts the call's real usage in the ledger and gives
    back the hold (once); `release()` gives it back when nothing was sent (idempotent).
    """

    def __init__(self, budget: Budget, held: float, *, prompt_tokens: int = 0,
                 max_tokens: int | None = None, capped: bool = False, running: bool = True):
        self.budget = budget
        self.held = held
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.capped = capped
        self.running = running
        self.open = True

    def __repr__(self) -> str:
        state = "open" if self.open else "settled"
        return (f"<Reservation {format_cost(self.held)} max_tokens={self.max_tokens} "
                f"capped={self.capped} {state}>")

    def apply(self, request: dict) -> dict:
        """The request with the budget's `max_tokens` (the same dict when it sets none)."""
        if self.max_tokens is None or request.get("max_tokens") == self.max_tokens:
            return request
        return {**request, "max_tokens": self.max_tokens}

    def settle(self, *records: CallRecord) -> None:
        """Record what the call really used, then give back the hold.

        Recording first means the spend plus the holds never looks lower than it is,
        so a concurrent reservation can never slip in between.
        """
        for rec in records:
            if rec is not None:
                self.budget.ledger.record(rec)
        actual = math.fsum(rec.cost or 0.0 for rec in records if rec is not None)
        if self.open and self.held > 0 and actual > self.held * (1 + 1e-9):
            log.warning(
                "mistral_magic: a call cost %s, more than the %s its reservation held "
                "(the server counted more prompt tokens than the estimate)",
                format_cost(actual), format_cost(self.held),
            )
        self.release()

    def release(self) -> None:
        """Give back the hold without recording anything (the call was never sent)."""
        if self.open:
            self.open = False
            self.budget._release(self)


class Budget:
    """The session's hard spending cap (``MistralMagics.budget_usd``): spent + held <= limit.

    Spent is what the ledger has recorded; held is the worst case of every call still
    running (and of batch jobs not yet read back). Every call goes through `reserve`
    before it is sent and through `Reservation.settle` after, so concurrent calls,
    re-asks and later multi-step calls all see what the others may still spend.
    Without a limit every reservation holds nothing and caps nothing.

    With a limit, a call whose price is unknown is refused: its cost could not be
    counted against the limit. Set its price via ``MistralMagics.prices`` to allow it.
    Thread-safe: the kernel's thread and the background loop reserve side by side.
    """

    def __init__(self, limit: float | None | Callable[[], float | None] = None,
                 ledger: Ledger | None = None):
        self.ledger = ledger if ledger is not None else Ledger()
        self._limit = limit if callable(limit) else (lambda value=limit: value)
        _valid_limit(self._limit())
        self._lock = threading.Lock()
        self._holds: dict[int, Reservation] = {}
        self._waiters: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        return f"Budget({self.limit_usd!r}, held={format_cost(self.reserved)})"

    @property
    def limit_usd(self) -> float | None:
        """The limit in USD, read live (None: no limit)."""
        return _valid_limit(self._limit())

    @property
    def reserved(self) -> float:
        """USD held by calls that have not settled yet."""
        with self._lock:
            return self._held()

    def remaining(self) -> float | None:
        """USD that new calls may still take (never below 0), or None without a limit."""
        limit = self.limit_usd
        if limit is None:
            return None
        with self._lock:
            return max(0.0, limit - self._committed())

    def _held(self) -> float:
        return math.fsum(r.held for r in self._holds.values())

    def _committed(self) -> float:
        return self.ledger.spent + self._held()

    @staticmethod
    def _passes(committed: float, cost: float, limit: float) -> bool:
        """The one comparison: would `cost` more take the spend past the limit? (equal is allowed)"""
        return committed + cost > limit

    # -- reserving ------------------------------------------------------------------

    def reserve(self, prices: PriceTable, model: str, prompt_tokens: int,
                max_tokens: int | None = None, *, batch: bool = False, n: int = 1,
                default_cap: int | None = None, exact_prompt: int | None = None) -> Reservation:
        """Hold one call's worst case and cap its answer; raise `BudgetExceeded` if it cannot
        afford `MIN_ANSWER_TOKENS` answer tokens (or its own `max_tokens`, when smaller).

        `prompt_tokens` is the count to hold (an exact count or an upper bound, see
        `prompt_bound`); `exact_prompt`, when given, is the plain count kept for the
        ledger. Without `max_tokens` the answer is capped at what the budget affords,
        at `default_cap` (rows that share the budget), or left uncapped when the
        budget covers the model's whole context.
        """
        return self._reserve(prices, model, prompt_tokens, max_tokens, batch, n, default_cap,
                             exact_prompt, waiter=None)

    async def reserve_async(self, prices: PriceTable, model: str, prompt_tokens: int,
                            max_tokens: int | None = None, *, batch: bool = False, n: int = 1,
                            default_cap: int | None = None,
                            exact_prompt: int | None = None) -> Reservation:
        """`reserve` for the background loop: waits while running calls hold what it needs.

        It caps or refuses (`BudgetExceeded`) only when no other running call holds
        anything, so the rows of an extraction share the budget instead of cutting or
        refusing each other.
        """
        import asyncio

        loop = asyncio.get_running_loop()
        while True:
            woken = asyncio.Event()

            def wake(event=woken) -> None:
                try:
                    loop.call_soon_threadsafe(event.set)
                except RuntimeError:  # the loop is closing: nothing waits any more
                    pass

            reservation = self._reserve(prices, model, prompt_tokens, max_tokens, batch, n,
                                        default_cap, exact_prompt, waiter=wake)
            if reservation is not None:
                return reservation
            try:
                await woken.wait()
            finally:
                with self._lock:
                    if wake in self._waiters:
                        self._waiters.remove(wake)

    def reserve_total(self, worst_cost: float | None, what: str, *, model: str,
                      running: bool = False) -> Reservation:
        """Hold a fixed worst case (a batch job's); raise `BudgetExceeded` if it does not fit.

        `running=False` marks a hold that may last (a batch job runs on after an
        interrupt), so calls do not wait for it to come back.
        """
        limit = self.limit_usd
        if limit is None:
            return Reservation(self, 0.0, running=running)
        if worst_cost is None:
            raise _unpriced(model, limit, self.ledger.spent)
        with self._lock:
            committed = self._committed()
            if self._passes(committed, worst_cost, limit):
                raise BudgetExceeded(
                    f"Refused: {what} may cost up to {format_cost(worst_cost)} but only "
                    f"{_left(limit, committed, self._held())}; raise MistralMagics.budget_usd, "
                    "lower max_tokens or send fewer rows"
                )
            return self._hold(Reservation(self, worst_cost, running=running))

    def require(self, cost: float | None, what: str, *, model: str) -> None:
        """Refuse (`BudgetExceeded`) work whose least possible cost already does not fit."""
        limit = self.limit_usd
        if limit is None:
            return
        if cost is None:
            raise _unpriced(model, limit, self.ledger.spent)
        with self._lock:
            committed = self._committed()
            if self._passes(committed, cost, limit):
                raise BudgetExceeded(
                    f"Refused: {what} needs at least {format_cost(cost)} but only "
                    f"{_left(limit, committed, self._held())}; raise MistralMagics.budget_usd, "
                    "shorten the prompt or send fewer rows"
                )

    def _reserve(self, prices, model, prompt_tokens, max_tokens, batch, n, default_cap,
                 exact_prompt, waiter) -> Reservation | None:
        counted = prompt_tokens if exact_prompt is None else exact_prompt
        limit = self.limit_usd
        if limit is None:
            return Reservation(self, 0.0, prompt_tokens=counted)
        if prices.price(model) is None:
            raise _unpriced(model, limit, self.ledger.spent)
        n = max(1, int(n or 1))

        def cost(answer_tokens: int) -> float:
            return prices.cost(model, prompt_tokens, answer_tokens * n, batch=batch) or 0.0

        least = MIN_ANSWER_TOKENS if max_tokens is None else min(MIN_ANSWER_TOKENS, max_tokens)
        most, whole_context = max_tokens, False
        if most is None:
            most = default_cap
        if most is None:
            room = (prices.context_length(model) or 0) - prompt_tokens
            if room > 0:
                most, whole_context = room, True
        with self._lock:
            committed = self._committed()
            others_running = any(r.running for r in self._holds.values())
            if self._passes(committed, cost(least), limit):
                if waiter is not None and others_running:
                    self._waiters.append(waiter)
                    return None
                raise BudgetExceeded(
                    f"Refused: this call needs at least {format_cost(cost(least))} "
                    f"({format_tokens(prompt_tokens)} prompt + {format_tokens(least * n)} answer "
                    f"tokens on {model}) but only {_left(limit, committed, self._held())}; "
                    "raise MistralMagics.budget_usd, shorten the prompt, or %mistral reset the chat"
                )
            tokens = self._most_tokens(committed, limit, cost, least, most)
            if (waiter is not None and others_running and tokens is not None
                    and most is not None and tokens < most):
                # What running calls hold may come back: wait for it rather than cut
                # this answer short; cap only once nothing else holds any.
                self._waiters.append(waiter)
                return None
            if tokens is None:  # answers are free: only the prompt costs
                send, capped, worst = max_tokens, False, cost(0)
            else:
                worst = cost(tokens)
                if max_tokens is not None or default_cap is not None:
                    send, capped = tokens, tokens < most
                elif whole_context and tokens == most:
                    # The budget covers any answer the model can give: leave it uncapped.
                    send, capped = None, False
                else:
                    send, capped = tokens, True
            return self._hold(Reservation(self, worst, prompt_tokens=counted, max_tokens=send,
                                          capped=capped))

    def _most_tokens(self, committed: float, limit: float, cost, least: int,
                     most: int | None) -> int | None:
        """The largest answer (least..most tokens) whose cost fits; None when answers are free."""
        per_token = cost(1) - cost(0)
        if per_token <= 0:
            return most
        guess = int(max(0.0, limit - committed - cost(0)) / per_token)
        guess = max(least, guess if most is None else min(most, guess))
        # The division rounds; settle the last token or two with the comparison itself.
        while guess > least and self._passes(committed, cost(guess), limit):
            guess -= 1
        while (most is None or guess < most) and not self._passes(committed, cost(guess + 1), limit):
            guess += 1
        return guess

    def _hold(self, reservation: Reservation) -> Reservation:
        self._holds[id(reservation)] = reservation
        return reservation

    def _release(self, reservation: Reservation) -> None:
        with self._lock:
            self._holds.pop(id(reservation), None)
            waiters, self._waiters = self._waiters, []
        for wake in waiters:
            wake()


def _valid_limit(limit_usd: Any) -> float | None:
    if limit_usd is None:
        return None
    if isinstance(limit_usd, bool) or not isinstance(limit_usd, (int, float)) or not limit_usd >= 0:
        raise ConfigError(
            f"MistralMagics.budget_usd must be a number >= 0 or None, got {limit_usd!r}; "
            "e.g. %config MistralMagics.budget_usd = 1.0"
        )
    return float(limit_usd)


def _left(limit: float, committed: float, held: float) -> str:
    text = f"{format_cost(max(0.0, limit - committed))} of the {format_cost(limit)} budget is left"
    if held > 0:
        text += f" ({format_cost(held)} held by calls still running)"
    return text


def _unpriced(model: str, limit: float, spent: float) -> BudgetExceeded:
    return BudgetExceeded(
        f"Refused: no price is known for {model}, so it cannot be counted against the "
        f"{format_cost(limit)} budget ({format_cost(spent)} spent); set its price with "
        f'%config MistralMagics.prices = {{"{model}": {{"input": <USD per 1M>, "output": '
        '<USD per 1M>}} or set MistralMagics.budget_usd = None'
    )
