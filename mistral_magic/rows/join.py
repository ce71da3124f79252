"""A semantic join: the pairs of rows of two frames for which a yes/no question holds.

    matches = offers.mistral.join(catalogue,
                                  "Does {left.title} describe the same product as {right.name}?",
                                  block=3)

- **The condition** names columns of both frames: ``{left.title}``, ``{right.name}``
  (``{left['a column']}`` for other names). Each pair's request is that question with
  the pair's values filled in, and the values again as ``Record A (title): ...`` and
  ``Record B (name): ...`` lines; the model answers ``{"match": true|false}`` under a
  strict JSON Schema, at temperature 0.
- **Blocking.** With ``block=k`` (3 unless given) the named columns of both frames are
  embedded first (`vectors.Embedding` through the engine: packed, cached, budgeted, its
  own plan shown) and each left row is judged only against its k nearest right rows by
  cosine; ``block=None`` judges every pair and embeds nothing. Either way the number of
  pairs, one call each, and what every pair would be are said before any call, with an
  estimate of the judgements' cost.
- **The judgements** are a row job (`PairJudgement`) over the pairs, run by the row engine:
  concurrency and rate limits, a budget reservation per call and a refusal of the whole
  step when it cannot finish, the resume cache (the same join again, also after a
  restart, pays only for pairs not judged), `_error` per pair, one ledger row per call
  (kind ``join``), ``batch=True`` (the pairs as one Batch API job), and the kernel's
  interrupt, which ends the call as `Interrupted` with the matches found so far.
- **The result** is an ordinary merged DataFrame: one row per matching pair and per pair
  whose judgement failed, with the left row's columns, the right row's (``_left`` /
  ``_right`` suffixes where names collide), `match` (boolean; NA when it failed), `score`
  (the pair's cosine from blocking, NaN with ``block=None``) and `_error`, indexed by
  (left label, right label), in left-row order and best score first. ``all_pairs=True``
  keeps the pairs that do not match too.
- ``preview=n`` judges the pairs of n left rows spread over the frame, shows them with
  what they cost and estimates the rest; the full join then takes them from the cache.
"""

from __future__ import annotations

import math
import re
import time

import numpy as np

from ..calls.sent import Origin, Use
from ..errors import ConfigError, Interrupted
from ..money.usage import format_cost, format_tokens
from .labels import Choice

SYSTEM = ("You judge a statement about two records, Record A (from the left table) and Record B "
          '(from the right table). Answer only with JSON: {"match": true} if the statement holds '
          'for them, {"match": false} if it does not.')
_SIDE = re.compile(r"\{(left|right)(?:\.([A-Za-z_]\w*)|\[(['\"])(.*?)\3\])")


class PairJudgement(Choice):
    """`join`'s pairs: one yes/no judgement each (the pairs frame's ``text`` column)."""

    field = "match"
    kind, verb = "join", "Judging"

    def __init__(self, session, pairs, left_of, right_of, *, model=None, seed=None):
        self.left_of, self.right_of = left_of, right_of  # (side name, columns, labels by pair)
        schema = {"type": "boolean", "description": "whether the statement holds for the two records"}
        super().__init__(session, pairs, "text", schema, SYSTEM, method="join", model=model,
                         temperature=0.0, seed=seed)

    def frame(self, records, index):
        import pandas as pd

        values = pd.array([r[self.field] if r else None for r in records], dtype="boolean")
        return pd.DataFrame({"match": values}, index=index)

    def origin(self, rows: list[int]):
        return Origin(tuple(Use(name, tuple(columns), [labels[i] for i in rows])
                            for name, columns, labels in (self.left_of, self.right_of)))


def join(engine, left, right, condition: str, *, block: int | None = 3, all_pairs: bool = False,
         model: str | None = None, embed_model: str | None = None, seed: int | None = None,
         batch: bool = False, preview: int | None = None):
    """`left.mistral.join(right, condition, block=3)`: see the module's doc."""
    import pandas as pd

    if not isinstance(right, pd.DataFrame):
        raise ConfigError(f"join needs a DataFrame to join with, got {type(right).__name__}; "
                          "e.g. offers.mistral.join(catalogue, \"... {left.title} ... {right.name}?\")")
    if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
        raise ConfigError(f"block must be a number of right rows per left row (at least 1), or None "
                          f"to judge every pair; got {block!r}; e.g. block=3")
    columns = _named(condition, left, right)
    engine.session.capabilities.check(model or engine.session.settings.model,
                                      setting=None if model else "MistralMagics.model")
    if preview is not None:
        return _preview(engine, left, right, condition, preview, block=block,
                        all_pairs=all_pairs, model=model, embed_model=embed_model, seed=seed,
                        batch=batch)
    texts = {side: _texts(frame, columns[side]) for side, frame in (("left", left), ("right", right))}
    ok = {side: [i for i, t in enumerate(texts[side]) if t is not None] for side in texts}
    n_pairs = len(ok["left"]) * (len(ok["right"]) if block is None else min(block, len(ok["right"])))
    every = len(ok["left"]) * len(ok["right"])
    from .steps import Steps

    steps = Steps(engine, "join", n_pairs, unit="pair")
    try:
        steps.say(_plan(engine.session, condition, left, right, ok, texts, block, n_pairs, every,
                        model))
        steps.sides = [("join left", columns["left"], list(left.index)),
                       ("join right", columns["right"], list(right.index))]
        il, ir, score = _pairs(steps, texts, ok, block, embed_model)
        pairs = pd.DataFrame({"text": [_pair_text(condition, left, right, columns, i, j)
                                       for i, j in zip(il, ir, strict=True)]})
        left_of = ("join left", columns["left"], list(left.index[il]))
        right_of = ("join right", columns["right"], list(right.index[ir]))
        job = PairJudgement(engine.session, pairs, left_of, right_of, model=model, seed=seed)
        try:
            out = steps.run(job, batch=batch)
        except Interrupted as stopped:
            done = stopped.partial["match"].notna() if stopped.partial is not None else None
            partial = (None if done is None else
                       merged(left, right, il, ir, score, stopped.partial, all_pairs, only=done))
            raise Interrupted(
                f"{int(done.sum()) if done is not None else 0:,} of {len(il):,} pairs judged; run "
                "the same join again to finish (the pairs judged come from the cache, at $0)",
                partial=partial) from None
    finally:
        steps.close()
    result = merged(left, right, il, ir, score, out, all_pairs)
    matches = int(out["match"].fillna(False).sum())
    failed = int(out["_error"].notna().sum())
    steps.say(f"Joined: {len(il):,} pairs judged, {matches:,} match"
              + (f", {failed:,} failed (see _error)" if failed else "") + f"; {steps.tally()}.")
    return result


def _named(condition: str, left, right) -> dict[str, list]:
    """The columns the condition names on each side; a one-line error for anything else."""
    from ..inputs.prompt import names_in

    if not isinstance(condition, str) or not condition.strip():
        raise ConfigError('join needs a condition naming both frames, e.g. "Does {left.title} '
                          'describe the same product as {right.name}?"')
    others = sorted(set(names_in(condition)) - {"left", "right"})
    if others:
        raise ConfigError(f"the join condition may name only {{left.column}} and {{right.column}}; "
                          f"it names {', '.join(others)}")
    found: dict[str, list] = {"left": [], "right": []}
    for match in _SIDE.finditer(condition):
        side, name = match.group(1), match.group(2) if match.group(2) else match.group(4)
        frame = left if side == "left" else right
        if name not in frame.columns:
            listed = ", ".join(repr(c) for c in frame.columns) or "none"
            raise ConfigError(f"{{{side}.{name}}}: the {side} frame has no column {name!r} "
                              f"(its columns: {listed})")
        if name not in found[side]:
            found[side].append(name)
    missing = [side for side in found if not found[side]]
    if missing:
        raise ConfigError(f"the join condition names no column of the {' and '.join(missing)} "
                          "frame; e.g. \"Does {left.title} describe the same product as {right.name}?\"")
    return found


def _texts(frame, columns: list) -> list[str | None]:
    """Each row's values of `columns`, joined; None when any is missing (the row takes no part)."""
    from .job import is_missing

    out = []
    for values in frame[columns].itertuples(index=False, name=None):
        out.append(None if any(is_missing(v) for v in values) else "; ".join(str(v) for v in values))
    return out


def _pair_text(condition, left, right, columns, i: int, j: int) -> str:
    """One pair's message: the question filled in, then the two records."""
    from ..inputs.prompt import interpolate

    a = {str(c): left.iat[i, left.columns.get_loc(c)] for c in columns["left"]}
    b = {str(c): right.iat[j, right.columns.get_loc(c)] for c in columns["right"]}
    question = interpolate(condition, {"left": _Row(a), "right": _Row(b)})
    return (f"{question}\n\n"
            f"Record A ({', '.join(a)}): {'; '.join(str(v) for v in a.values())}\n"
            f"Record B ({', '.join(b)}): {'; '.join(str(v) for v in b.values())}")


class _Row:
    """A row's values by column, as attributes and items (``{left.title}``, ``{left['a b']}``)."""

    def __init__(self, values: dict):
        self._values = values

    def __getattr__(self, name: str):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, key):
        return self._values[key]


def _pairs(steps, texts, ok, block, embed_model):
    """The pairs to judge (left and right positions, and their cosine): blocked, or all."""
    from .vectors import Embedding, unit_rows

    left_rows, right_rows = ok["left"], ok["right"]
    if block is None or not left_rows or not right_rows:
        il = np.repeat(np.asarray(left_rows, dtype=np.int64), len(right_rows))
        ir = np.tile(np.asarray(right_rows, dtype=np.int64), len(left_rows))
        return il, ir, np.full(il.size, np.nan)
    import pandas as pd

    both = [texts["left"][i] for i in left_rows] + [texts["right"][j] for j in right_rows]
    frame = pd.DataFrame({"text": both}, dtype=object)
    job = Embedding(steps.session, frame, "text", model=embed_model)
    sides = [(name, columns, [labels[i] for i in rows]) for (name, columns, labels), rows
             in zip(steps.sides, (left_rows, right_rows), strict=True)]

    def origin(rows: list[int]):  # what the blocking embeds: the named columns of both sides
        cut = len(left_rows)
        return Origin(tuple(
            Use(name, tuple(columns), [labels[i - start] for i in rows if start <= i < start + len(labels)])
            for (name, columns, labels), start in zip(sides, (0, cut), strict=True)))

    job.origin = origin
    from .engine import RowEngine

    out = RowEngine(steps.session, concurrency=steps.engine.concurrency,
                    max_retries=steps.engine.max_retries, progress=False).run(job)
    if out["_error"].notna().any():
        first = out["_error"].dropna().iloc[0]
        raise ConfigError(f"blocking could not embed {int(out['_error'].notna().sum()):,} of the "
                          f"rows ({first}); run the join again, or use block=None")
    vectors = unit_rows(out["text_embedding"].to_numpy(dtype=object))
    a, b = vectors[:len(left_rows)], vectors[len(left_rows):]
    k = min(block, len(right_rows))
    il, ir, score = [], [], []
    for start in range(0, len(left_rows), 1024):  # bounded memory: 1,024 left rows at a time
        sims = a[start:start + 1024] @ b.T
        best = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for row, chosen in enumerate(best):
            chosen = chosen[np.argsort(-sims[row, chosen], kind="stable")]
            il += [left_rows[start + row]] * k
            ir += [right_rows[c] for c in chosen]
            score += [float(sims[row, c]) for c in chosen]
    return np.asarray(il, dtype=np.int64), np.asarray(ir, dtype=np.int64), np.asarray(score)


def _plan(session, condition, left, right, ok, texts, block, n_pairs, every, model) -> str:
    """The line said before any call: pairs, calls, and what the judgements may cost."""
    from ..money.tokens import count_messages, count_text

    model = model or session.settings.model
    skipped = (len(left) - len(ok["left"])) + (len(right) - len(ok["right"]))
    base = count_messages([{"role": "system", "content": SYSTEM},
                           {"role": "user", "content": condition + "\n\nRecord A: \nRecord B: "}])
    tl = [count_text(texts["left"][i]) * 2 for i in ok["left"]]  # in the question and the record
    tr = [count_text(texts["right"][j]) * 2 for j in ok["right"]]
    per_left = n_pairs / max(1, len(ok["left"]))
    tokens = int(n_pairs * base + per_left * sum(tl)
                 + (n_pairs * (sum(tr) / len(tr)) if tr else 0))
    cost = session.prices.cost(model, tokens, 0)
    worst = session.prices.cost(model, tokens, n_pairs * 16)
    how = (f"every pair: {n_pairs:,} judgements" if block is None else
           f"blocking keeps each left row's {min(block, len(ok['right']))} nearest right rows "
           f"(their texts embedded first): {n_pairs:,} judgements of {every:,} pairs")
    return (f"Joining {len(left):,} × {len(right):,} rows with {model}, {how}, one call each"
            + (f" ({skipped:,} rows with a missing value take no part)" if skipped else "")
            + f": about {format_tokens(tokens)} prompt tokens ({format_cost(cost)}), "
            f"answers of a few tokens (about {format_cost(worst)} in all).")


def merged(left, right, il, ir, score, out, all_pairs: bool, only=None):
    """The result: a row per matching (or failed, or with `all_pairs` every) pair."""
    import pandas as pd

    match = out["match"].to_numpy(dtype=object)
    errors = out["_error"].to_numpy(dtype=object)
    keep = np.ones(len(il), dtype=bool) if all_pairs else np.array(
        [m is True or (e is not None) for m, e in zip(match, errors, strict=True)], dtype=bool)
    if only is not None:
        keep &= np.asarray(only, dtype=bool)
    a = left.iloc[il[keep]].reset_index(drop=True)
    b = right.iloc[ir[keep]].reset_index(drop=True)
    both = set(a.columns) & set(b.columns)
    a = a.rename(columns={c: f"{c}_left" for c in both})
    b = b.rename(columns={c: f"{c}_right" for c in both})
    result = pd.concat([a, b], axis=1)
    result["match"] = out["match"].array[keep]
    result["score"] = score[keep]
    result["_error"] = pd.Series(errors[keep], dtype=object)
    result.index = pd.MultiIndex.from_arrays(
        [left.index[il[keep]], right.index[ir[keep]]],
        names=[left.index.name or "left", right.index.name or "right"])
    return result


def _preview(engine, left, right, condition, n, **options):
    """`preview=n`: the pairs of n left rows judged and shown, the rest estimated from them."""
    from IPython.display import display

    from ..show.render import note
    from .preview import duration, spread

    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"preview must be a number of left rows (at least 1), got {n!r}; "
                          "e.g. preview=5")
    session = engine.session
    picked = spread(list(range(len(left))), n)
    start, began = len(session.ledger), time.perf_counter()
    result = join(engine, left.iloc[picked], right, condition, **options)
    seconds = time.perf_counter() - began
    calls = [r for r in session.ledger.records[start:] if not r.cached]
    judged = [r for r in calls if r.kind == "join"]
    measured = None if any(r.cost is None for r in calls) else sum(r.cost for r in calls)
    rest = len(left) - len(picked)
    per_row = (None if any(r.cost is None for r in judged)
               else sum(r.cost for r in judged) / max(1, len(picked)))
    estimated = None if per_row is None else per_row * rest * (0.5 if options["batch"] else 1.0)
    latency = [r.latency_s for r in judged if r.latency_s is not None]
    per_left = len(judged) / max(1, len(picked))
    eta = (None if not latency or options["batch"] else
           sum(latency) / len(latency) * math.ceil(per_left * rest / engine.concurrency))
    figures = {"rows": len(picked), "of": len(left), "calls": len(calls), "cost": measured,
               "seconds": seconds, "left": rest, "estimated_cost": estimated,
               "estimated_calls": math.ceil(per_left * rest), "estimated_seconds": eta}
    display(note(
        f"Preview: the pairs of {len(picked):,} of {len(left):,} left rows, {len(calls):,} calls, "
        f"{format_cost(measured)} measured in {duration(seconds)}. The other {rest:,} left rows: "
        f"about {figures['estimated_calls']:,} calls, about {format_cost(estimated)}, "
        + ("through the Batch API" if options["batch"] else f"about {duration(eta)} at "
           f"concurrency {engine.concurrency}")
        + ". The same join without preview= judges only those: these pairs come from the cache "
        "at $0."), raw=True)
    result.attrs = {**result.attrs, "mistral_preview": figures}
    return result
