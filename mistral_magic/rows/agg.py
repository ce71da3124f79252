"""One answer per group of rows: ``df.mistral.agg("Summarise the complaints", by="product")``.

- **What each row gives**: `column`, a column's text or a template over the row's columns
  (``"{product}: {text}"``); by default the frame's one text column. A row whose text is
  missing is left out (and counted).
- **Groups**: `by` names a column or a list of them (``df.groupby(by)``'s groups, NaN
  keys included); without it the whole frame is one group, ``"all"``.
- **Level 1**: a group's rows go as a numbered list under the instruction, in as few
  requests as `chunk_tokens` prompt tokens allow (half the model's context, at most
  `CHUNK_TOKENS`, unless given). A group that fits is one call and its answer is final.
- **Levels 2, 3, ...**: a group that did not fit gets the answers for its parts
  combined, again in as few requests as fit, until one answer is left (summaries of
  chunks, then of summaries). Each answer is at most `max_tokens` (512) tokens, which
  bounds what every level sends.
- **Before any call** the plan says how many calls the rows take and how many more
  combining may take at most, with an estimate of the cost.
- Each level is a row job through the row engine: a budget reservation per call and a
  refusal of a level that cannot finish, the resume cache (the same call again, also
  after a restart, pays only for what was not answered: the levels above rebuild the
  same requests from the stored answers), ``batch=True`` (each level as a Batch API
  job), `_error`, one ledger row per call (kind ``agg``), and the kernel's interrupt,
  which ends the call as `Interrupted` with the groups answered so far.
- **The result** is a DataFrame indexed by the group (its name is `by`): `answer`, `rows`
  (how many rows went in), `calls` (calls its answer took) and `_error` (the first
  failed part, for a group that has no answer).
"""

from __future__ import annotations

import math

from ..calls.sent import Origin, Use
from ..errors import ConfigError, Interrupted, StructuredOutputError
from ..money.usage import format_cost, format_tokens
from .job import RowJob, is_missing

CHUNK_TOKENS = 32_000
MAX_TOKENS = 512
SYSTEM = ("You answer an instruction about a set of records from a table. Answer in plain text, "
          "concisely, and say only what the records support.")
_NUMBERING = 8  # tokens a line's number, its break and the request's framing may add


class Level(RowJob):
    """One level of `agg`: each unit (a row of the units frame) is one request's text."""

    kind, verb = "agg", "Aggregating"

    def __init__(self, session, units, sources: list, columns: list, *, model=None,
                 max_tokens=MAX_TOKENS, seed=None):
        self.sources = sources  # per unit, the labels of the frame's rows in its text
        self.used = columns
        self.options = {"temperature": 0.0, "max_tokens": max_tokens, "seed": seed}
        super().__init__(session, units, "text", model=model)

    def request(self, text: str) -> dict:
        from ..core import chat_request

        return chat_request(self.model, [{"role": "system", "content": SYSTEM},
                                         {"role": "user", "content": text}], **self.options)

    def parse(self, answer) -> dict:
        text = (answer or "").strip()
        if not text:
            raise StructuredOutputError("the model gave an empty answer")
        return {"answer": text}

    def origin(self, rows: list[int]):
        labels = [label for i in rows for label in self.sources[i]]
        return Origin((Use("df.mistral.agg", tuple(self.used), labels),) if labels else ())


def agg(engine, df, instruction: str, *, by=None, column: str | None = None,
        model: str | None = None, max_tokens: int = MAX_TOKENS, chunk_tokens: int | None = None,
        seed: int | None = None, batch: bool = False):
    """`df.mistral.agg(instruction, by=...)`: see the module's doc."""
    import pandas as pd

    from ..money.tokens import count_text
    from .steps import Steps

    if not isinstance(instruction, str) or not instruction.strip():
        raise ConfigError('agg needs an instruction, e.g. df.mistral.agg("Summarise the '
                          'complaints", by="product")')
    session = engine.session
    model = model or session.settings.model
    session.capabilities.check(model)
    groups = _groups(df, by)
    limit = _limit(session, model, chunk_tokens, max_tokens)
    texts, used = row_texts(df, column, by)
    sizes = {key: [count_text(texts[i]) + _NUMBERING for i in rows if texts[i] is not None]
             for key, rows in groups}
    first = {key: _chunks(tokens, limit) for key, tokens in sizes.items()}
    calls = sum(len(c) for c in first.values())
    most = sum(_combining(len(c), max_tokens, limit) for c in first.values())
    tokens = sum(sum(t) for t in sizes.values())
    steps = Steps(engine, "agg", calls + most)
    sent_rows = sum(len(t) for t in sizes.values())
    skipped = len(df) - sent_rows
    where = f" in {len(groups):,} group{'' if len(groups) == 1 else 's'} by {by!r}" if by is not None else ""
    steps.say(
        f"Aggregating {sent_rows:,} rows{where} with {model}: {calls:,} call"
        f"{'' if calls == 1 else 's'} for the rows (a group past {format_tokens(limit)} prompt "
        f"tokens goes in parts)" + (f", then at most {most:,} to combine the parts" if most else "")
        + (f" ({skipped:,} rows with missing text left out)" if skipped else "")
        + f": about {format_tokens(tokens)} prompt tokens "
        f"({format_cost(session.prices.cost(model, tokens, 0))}), worst case "
        f"{format_cost(session.prices.cost(model, tokens, (calls + most) * max_tokens))}.")
    state = {key: _Group(key, len(sizes[key])) for key, _ in groups}
    units = _first_level(instruction, by, df.index, groups, texts, first, state)
    try:
        while units:
            frame = pd.DataFrame({"text": [u[1] for u in units]}, dtype=object)
            job = Level(session, frame, [u[2] for u in units], used, model=model,
                        max_tokens=max_tokens, seed=seed)
            try:
                out = steps.run(job, batch=batch)
            except Interrupted:
                done = sum(g.answer is not None for g in state.values())
                raise Interrupted(
                    f"{done:,} of {len(state):,} groups answered; run the same call again to "
                    "finish (the answers done come from the cache, at $0)",
                    partial=_result(state, by)) from None
            units = _next_level(instruction, by, units, out, state, limit)
        steps.grow(steps.offset)
    finally:
        steps.close()
    result = _result(state, by)
    failed = int(result["_error"].notna().sum())
    steps.say(f"Aggregated {len(state):,} group{'' if len(state) == 1 else 's'}"
              + (f", {failed:,} failed (see _error)" if failed else "") + f"; {steps.tally()}.")
    return result


class _Group:
    """A group's way up the levels: its parts' answers, its calls, its error."""

    def __init__(self, key, rows: int):
        self.key, self.rows = key, rows
        self.answer: str | None = None
        self.error: str | None = None
        self.calls = 0


def row_texts(df, column, by=None) -> tuple[list, list]:
    """Each row's text (None when missing) and the columns it is made of."""
    from ..inputs.prompt import interpolate, names_in

    keys = [by] if isinstance(by, str) else list(by or [])
    if column is None:
        texts = [c for c in df.columns if c not in keys and (
            df[c].dtype == object or str(df[c].dtype) in ("str", "string"))]
        if len(texts) != 1:
            raise ConfigError(f"say which text each row gives with column=... (a column, or a "
                              f"template such as '{{product}}: {{text}}'); text columns: "
                              f"{', '.join(repr(c) for c in texts) or 'none'}")
        column = texts[0]
    if column in df.columns:
        return [None if is_missing(v) else str(v) for v in df[column]], [column]
    names = list(dict.fromkeys(names_in(column)))
    used = [c for c in df.columns if str(c) in names]
    if not used:
        raise ConfigError(f"column={column!r} is neither a column nor a template naming one "
                          f"(columns: {', '.join(repr(c) for c in df.columns)})")
    out = []
    for row in df.to_dict("records"):
        row = {str(k): v for k, v in row.items()}
        out.append(None if any(is_missing(row.get(n)) for n in names if n in row)
                   else interpolate(column, row))
    return out, used


def _groups(df, by) -> list[tuple]:
    """(key, row positions) per group, in `groupby`'s order; one group "all" without `by`."""
    if by is None:
        return [("all", list(range(len(df))))]
    missing = [b for b in ([by] if isinstance(by, str) else by) if b not in df.columns]
    if missing:
        raise ConfigError(f"by={by!r}: no column {missing[0]!r} in the frame "
                          f"(columns: {', '.join(repr(c) for c in df.columns)})")
    grouped = df.groupby(by, sort=True, dropna=False)
    return [(key, list(rows)) for key, rows in grouped.indices.items()]


def _limit(session, model: str, chunk_tokens, max_tokens: int) -> int:
    if chunk_tokens is not None:
        if isinstance(chunk_tokens, bool) or not isinstance(chunk_tokens, int) or chunk_tokens < 64:
            raise ConfigError(f"chunk_tokens must be a whole number of at least 64, got "
                              f"{chunk_tokens!r}; e.g. chunk_tokens=8000")
        return chunk_tokens
    context = session.prices.context_length(model) or 2 * CHUNK_TOKENS
    return max(256, min(CHUNK_TOKENS, context // 2 - max_tokens))


def _chunks(tokens: list[int], limit: int, least: int = 1) -> list[tuple[int, int]]:
    """(start, stop) of each part: lines packed greedily in order up to `limit` tokens, at
    least `least` a part (combining two answers at a time always gets closer to one)."""
    parts, start, used = [], 0, 0
    for k, count in enumerate(tokens):
        if k - start >= least and used + count > limit:
            parts.append((start, k))
            start, used = k, 0
        used += count
    if start < len(tokens) or not parts:
        parts.append((start, len(tokens)))
    return parts if tokens else []


def _combining(parts: int, max_tokens: int, limit: int) -> int:
    """The most calls combining `parts` answers can take, level by level, to one answer."""
    calls = 0
    per = max(2, limit // (max_tokens + _NUMBERING))
    while parts > 1:
        parts = math.ceil(parts / per)
        calls += parts
    return calls


def _where(by, key) -> str:
    if by is None:
        return ""
    names, values = ([by], [key]) if isinstance(by, str) else (list(by), list(key))
    return " where " + " and ".join(f"{n} is {v}" for n, v in zip(names, values, strict=True))


def _first_level(instruction, by, index, groups, texts, first, state) -> list[tuple]:
    """Level 1's units: (group key, request text, labels of the rows in it)."""
    units = []
    for key, rows in groups:
        kept = [i for i in rows if texts[i] is not None]
        if not kept:
            state[key].error = "no row of this group has text to send"
            continue
        for start, stop in first[key]:
            lines = "\n".join(f"{k + 1}. {texts[i]}" for k, i in enumerate(kept) if start <= k < stop)
            whole = stop - start == len(kept)
            head = (f"The records{_where(by, key)} ({len(kept):,} rows):" if whole else
                    f"Records {start + 1:,} to {stop:,} of the {len(kept):,}{_where(by, key)}; "
                    "answer for these only (the answers for all the parts will be combined):")
            units.append((key, f"{instruction.strip()}\n\n{head}\n{lines}",
                          [index[i] for i in kept[start:stop]]))
    return units


def _next_level(instruction, by, units, out, state, limit) -> list[tuple]:
    """Take a level's answers; the requests that combine the groups' parts, if any are left."""
    from ..money.tokens import count_text

    answers: dict = {}
    for k, (key, _, _) in enumerate(units):
        group = state[key]
        group.calls += 1
        error = out["_error"].iloc[k]
        if error is not None and group.error is None:
            group.error = f"a part of this group failed: {error}"
        answers.setdefault(key, []).append(None if error is not None else out["answer"].iloc[k])
    following = []
    for key, parts in answers.items():
        group = state[key]
        if group.error is not None:
            continue
        if len(parts) == 1:
            group.answer = parts[0]
            continue
        tokens = [count_text(p) + _NUMBERING for p in parts]
        for start, stop in _chunks(tokens, limit, least=2):
            shown = "\n\n".join(f"Part {k + 1}:\n{parts[k]}" for k in range(start, stop))
            which = (f"{len(parts)} parts" if stop - start == len(parts)
                     else f"parts {start + 1} to {stop} of {len(parts)}")
            following.append((key, f"{instruction.strip()}\n\nAnswers to this instruction for "
                              f"{which} of the {group.rows:,} records{_where(by, key)} follow; "
                              f"combine them into one answer:\n\n{shown}", []))
    return following


def _result(state: dict, by):
    import pandas as pd

    groups = list(state.values())
    keys = [g.key for g in groups]
    if by is not None and not isinstance(by, str):
        index = pd.MultiIndex.from_tuples(keys, names=list(by))
    else:
        index = pd.Index(keys, name=by)
    return pd.DataFrame({
        "answer": pd.Series([g.answer for g in groups], index=index, dtype=object),
        "rows": pd.Series([g.rows for g in groups], index=index, dtype="Int64"),
        "calls": pd.Series([g.calls for g in groups], index=index, dtype="Int64"),
        "_error": pd.Series([None if g.answer is not None else g.error for g in groups],
                            index=index, dtype=object),
    }, index=index)
