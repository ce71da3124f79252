"""Usage: the ledger of every call, and how tokens and costs are written.

Every call becomes a `CallRecord` in the session's `Ledger` (thread-safe: the
DataFrame extraction records from a background thread). ``ledger.totals()``,
``ledger.by_model()`` and ``ledger.to_frame()`` are what ``%mistral usage`` shows;
``ledger.subscribe(callback)`` is how the footer and the meter stay current.
Record times are timezone-aware UTC (`datetime.now(timezone.utc)`), so ledgers
from kernels in different zones line up; convert with ``.dt.tz_convert`` to show
local time. A record's cost is ``None`` when the model's price is unknown, never 0;
an answer served from the response cache is a record with ``cached=True`` and cost 0.
An OCR call is priced per page: its record carries `pages` (None for calls priced by
tokens), and its token counts are 0. Audio carries `audio_minutes` (a transcription, or
a chat with recordings) and speech `characters`; None for calls without them. A built-in
tool of a conversation (web search, ...) is priced per use: its record has kind ``tool``,
the tool's name as its model and `uses`; it is not a call to a model (`totals()` counts it
in ``tool_calls``, not ``calls``), and its cost is unknown while Mistral publishes no price.
A call whose prompt the server partly took from its prompt cache carries `cached_tokens`
(of its prompt tokens, billed at the cached-input price) and `cached_saved`, the USD they
saved; both None when the server said nothing.

This module imports pandas only for `Ledger.to_frame`.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

log = logging.getLogger(__name__)


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
    cached: bool = False  # answered from the response cache: cost 0, nothing was sent
    error: str | None = None
    pages: int | None = None  # pages read by an OCR call (priced per page); None otherwise
    audio_minutes: float | None = None  # minutes of audio heard (priced per minute); None otherwise
    characters: int | None = None  # characters spoken (priced per 1M characters); None otherwise
    uses: int | None = None  # uses of a tool or service priced per use (kind "tool"); None otherwise
    cached_tokens: int | None = None  # prompt tokens served from the prompt cache (10 % price)
    cached_saved: float | None = None  # USD those cached tokens saved

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
    "cached",
    "error",
    "pages",
    "audio_minutes",
    "characters",
    "uses",
    "cached_tokens",
    "cached_saved",
)


def _totals(records: Iterable[CallRecord]) -> dict[str, Any]:
    calls = prompt = completion = pages = characters = tools = cached_tokens = 0
    cost = minutes = saved = 0.0
    known = True
    for rec in records:
        if rec.kind == "tool":  # a built-in tool's uses, not a call to a model
            tools += rec.uses or 0
        else:
            calls += 1
        prompt += rec.prompt_tokens or 0
        completion += rec.completion_tokens or 0
        pages += rec.pages or 0
        minutes += rec.audio_minutes or 0.0
        characters += rec.characters or 0
        cached_tokens += rec.cached_tokens or 0
        saved += rec.cached_saved or 0.0
        if rec.cost is None:
            # A call that used no tokens (pages, audio, characters, tools) cost nothing, priced or not.
            known = known and rec.total_tokens == 0 and not (
                rec.pages or rec.audio_minutes or rec.characters or rec.uses)
        else:
            cost += rec.cost
    return {
        "calls": calls,
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "cost": cost,
        "cost_known": known,
        "pages": pages,
        "audio_minutes": minutes,
        "characters": characters,
        "tool_calls": tools,
        "cached_tokens": cached_tokens,
        "cached_saved": saved,
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
        """calls, prompt_tokens, completion_tokens, cost (known costs summed), cost_known, pages,
        cached_tokens and cached_saved (what the prompt cache saved)."""
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
                "cached": pd.Series([bool(v) for v in column["cached"]], dtype=bool),
                "error": pd.Series(column["error"], dtype=object),
                "pages": pd.Series(column["pages"], dtype="Int64"),
                "audio_minutes": pd.Series(
                    [math.nan if v is None else v for v in column["audio_minutes"]],
                    dtype="float64"),
                "characters": pd.Series(column["characters"], dtype="Int64"),
                "uses": pd.Series(column["uses"], dtype="Int64"),
                "cached_tokens": pd.Series(column["cached_tokens"], dtype="Int64"),
                "cached_saved": pd.Series(
                    [math.nan if v is None else v for v in column["cached_saved"]], dtype="float64"
                ),
            },
            columns=list(FRAME_COLUMNS),
        )

