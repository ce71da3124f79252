"""``preview=n`` on a row method: run n rows, show what they cost, and estimate the whole frame.

    df.mistral.extract("Rate: {review}", schema="stars int", preview=5)   # 5 rows, and the estimate
    df.mistral.extract("Rate: {review}", schema="stars int")              # the rest; those 5 at $0

- The n rows are spread over the frame (evenly spaced among the rows that have text),
  so they stand for it better than its first rows do.
- They run as the full call runs them, from the same requests: each finished row is
  kept in the resume cache under its request's key, so the same call without
  ``preview`` takes them from there at $0 (its plan says "already done, from the cache").
- Measured: the n rows' calls as the ledger recorded them (cost, tokens, seconds).
- Estimated for the rows not done yet: their prompts are counted here and priced; their
  answers are priced at the preview's mean cost per row beyond its prompt (re-asks
  included); the time at the engine's concurrency from the preview's mean call time
  (without waits a rate limit may add). With ``batch=True`` the preview's rows are sent
  directly (a batch job of n rows takes as long as a large one) and the rest priced at
  the Batch API's half price.
- The result is the method's usual result for those n rows, with the figures in
  ``.attrs["mistral_preview"]``.
"""

from __future__ import annotations

import copy
import math
import time

from IPython.display import display

from ..errors import ConfigError
from ..money.usage import format_cost, format_tokens
from ..show.render import note
from .job import Requests


def preview_rows(engine, job, n: int, batch: bool, row_run):
    """Run `n` of `job`'s rows with `row_run` (the engine's `RowRun`), show the estimate;
    returns their frame."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"preview must be a number of rows (at least 1), got {n!r}; e.g. preview=5")
    session = engine.session
    full = row_run(engine, job)  # every row's key, as the full call makes them
    sendable = [i for i, key in enumerate(full.keys) if key is not None]
    picked = spread(sendable, n)
    ledger_start = len(session.ledger)
    started = time.perf_counter()
    out = row_run(engine, subset(job, picked)).run()
    seconds = time.perf_counter() - started
    calls = [r for r in session.ledger.records[ledger_start:] if r.kind == job.kind and not r.cached]
    chosen = set(picked)
    rest = [i for i in sendable if i not in chosen]
    finished = full.cache.get_many([full.keys[i] for i in rest])
    left = [i for i in rest if full.keys[i] not in finished]
    figures = _figures(engine, job, full, picked, calls, seconds, left, batch)
    figures.update(rows=len(picked), of=len(job.requests), done=len(rest) - len(left))
    display(note(_said(figures, engine.concurrency, batch)), raw=True)
    out.attrs = {**out.attrs, "mistral_preview": figures}
    return out


def spread(rows: list[int], n: int) -> list[int]:
    """`n` of `rows`, evenly spaced from the first to the last (all of them when fewer)."""
    if len(rows) <= n:
        return list(rows)
    if n == 1:
        return [rows[0]]
    step = (len(rows) - 1) / (n - 1)
    return [rows[round(k * step)] for k in range(n)]


def subset(job, rows: list[int]):
    """The job over `rows` of its frame only: the same texts, so the same requests."""
    sub = copy.copy(job)
    sub.df = job.df.iloc[rows]
    sub.texts = [job.texts[i] for i in rows]
    sub.errors = [job.errors[i] for i in rows]
    sub.refused_rows = set()
    sub.requests = Requests(sub._request, sub.texts)
    return sub


def _figures(engine, job, full, picked, calls, seconds, left, batch) -> dict:
    """What the preview measured, and what the rows left may take."""
    measured = None if any(r.cost is None for r in calls) else sum(r.cost for r in calls)
    asked = [full.requests[i] for i in picked]
    prompts = [job.estimate(r).prompt_cost for r in asked if r is not None]
    beyond = None
    if calls and measured is not None and None not in prompts:
        # What each row cost past its prompt: its answer, and any re-ask.
        beyond = max(0.0, measured - sum(prompts)) / max(1, len(prompts))
    estimates = [job.estimate(full.requests[i], batch=batch) for i in left]
    prompt_cost = None if any(e.prompt_cost is None for e in estimates) else sum(
        e.prompt_cost for e in estimates)
    rest = None
    if prompt_cost is not None and beyond is not None:
        rest = prompt_cost + beyond * len(left) * (0.5 if batch else 1.0)
    latency = [r.latency_s for r in calls if r.latency_s is not None]
    rest_calls = math.ceil(len(left) / (job.rows_per_call if job.send is not None else 1))
    rest_seconds = (sum(latency) / len(latency) * math.ceil(rest_calls / engine.concurrency)
                    if latency and not batch else None)
    return {
        "cost": measured, "calls": len(calls), "seconds": seconds,
        "prompt_tokens": sum(r.prompt_tokens or 0 for r in calls),
        "completion_tokens": sum(r.completion_tokens or 0 for r in calls),
        "left": len(left), "left_prompt_tokens": sum(e.prompt_tokens for e in estimates),
        "estimated_cost": rest, "estimated_calls": rest_calls if left else 0,
        "estimated_seconds": rest_seconds,
        "worst_cost": None if any(e.worst_cost is None for e in estimates) else sum(
            e.worst_cost for e in estimates),
    }


def _said(f: dict, concurrency: int, batch: bool) -> str:
    """The preview's note: what it measured, and the estimate for the rest."""
    first = (f"Preview: {f['rows']:,} of {f['of']:,} rows, {format_cost(f['cost'])} measured "
             f"({f['calls']:,} call{'' if f['calls'] == 1 else 's'}, "
             f"{format_tokens(f['prompt_tokens'])} prompt + "
             f"{format_tokens(f['completion_tokens'])} answer tokens, {duration(f['seconds'])}).")
    if not f["left"]:
        return first + " No other row is left to send."
    if f["estimated_cost"] is None:
        cost = (f"answers not measured (no call was made), worst case "
                f"{format_cost(f['worst_cost'])}")
    else:
        cost = f"about {format_cost(f['estimated_cost'])}"
    when = ("through the Batch API, at half price" if batch else
            f"about {duration(f['estimated_seconds'])} at concurrency {concurrency}"
            if f["estimated_seconds"] is not None else "time not measured")
    done = f" ({f['done']:,} more already done)" if f["done"] else ""
    return (f"{first} The other {f['left']:,} rows{done}: {cost}, {when} "
            f"({format_tokens(f['left_prompt_tokens'])} prompt tokens counted, answers as long "
            f"as these). The same call without preview= sends only those: these rows come from "
            f"the cache at $0.")


def duration(seconds: float | None) -> str:
    """'0.8 s', '42 s', '3 min 5 s', '2 h 10 min'."""
    if seconds is None:
        return "unknown"
    if seconds < 10:
        return f"{seconds:.1f} s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
