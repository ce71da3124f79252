"""The k best rows by a criterion: ``df.mistral.topk("most urgent ticket", k=5, column="text")``.

- **Pairwise judgements.** Each call shows the model two rows, as ``Record A: ...`` and
  ``Record B: ...`` under the criterion, and it answers ``{"better": "A"}`` or
  ``{"better": "B"}`` (a strict JSON Schema enum, at temperature 0). A pair always goes
  in the frame's order (the earlier row as A), so the same pair is the same request:
  judged once, then taken from the cache.
- **A knockout tournament.** Round one pairs the rows (first with second, third with
  fourth, ...), the winners meet in round two, and so on: n − 1 comparisons in
  ⌈log₂ n⌉ rounds, each round's comparisons sent together, and the last winner is the
  best row. For the next best the winner leaves the bracket and only its path up is
  played again, at most ⌈log₂ n⌉ − 1 comparisons, one after the other. The k best take
  at most n − 1 + (k − 1)(⌈log₂ n⌉ − 1) comparisons: linear in n for a given k (a heap
  of k would take about n·log₂ k; every pair n(n − 1)/2). The plan says this, and what
  it may cost, before any call.
- Each round is a row job (`Comparison`) run by the row engine: a budget reservation
  per call and a refusal of a round that cannot finish (a first run is refused up front
  when its n − 1 comparisons cannot be paid), the resume cache (the same call again,
  also after a restart, replays the comparisons made at $0), one ledger row per call
  (kind ``topk``), and the kernel's interrupt, which ends the call as `Interrupted` with
  the best rows found so far. ``batch=True`` is not offered: each round needs the last.
- **The result** is the k rows, best first, with `rank` (1 to k) and `_error`: None,
  or the comparison that failed on the row's way (it went to the earlier row, so the
  row's place is not certain).
"""

from __future__ import annotations

import math

from ..calls.sent import Origin, Use
from ..errors import ConfigError, Interrupted
from ..money.usage import format_cost, format_tokens
from .labels import Choice

SYSTEM = ("You compare two records, Record A and Record B, by the user's criterion. Answer only "
          'with JSON: {"better": "A"} if Record A fits it better, {"better": "B"} if Record B does.')


class Comparison(Choice):
    """`topk`'s comparisons: one pair of rows each, which fits the criterion better."""

    field = "better"
    kind, verb = "topk", "Comparing"

    def __init__(self, session, pairs, used, labels, *, model=None, seed=None):
        self.used, self.labels = used, labels  # per pair: the two rows' labels
        schema = {"type": "string", "enum": ["A", "B"]}
        super().__init__(session, pairs, "text", schema, SYSTEM, method="topk", model=model,
                         temperature=0.0, seed=seed)

    def origin(self, rows: list[int]):
        return Origin((Use("df.mistral.topk", tuple(self.used),
                           [label for i in rows for label in self.labels[i]]),))


def bound(n: int, k: int) -> int:
    """The most comparisons the k best of n rows take (see the module's doc)."""
    if n < 2:
        return 0
    depth = math.ceil(math.log2(n))
    return n - 1 + (min(k, n) - 1) * max(0, depth - 1)


def topk(engine, df, criterion: str, *, k: int = 5, column: str | None = None,
         model: str | None = None, seed: int | None = None, batch: bool = False):
    """`df.mistral.topk(criterion, k=5, column=...)`: see the module's doc."""
    from .agg import row_texts
    from .steps import Steps

    if batch:
        raise ConfigError("batch=True is not available for topk: each round of comparisons "
                          "needs the one before; run it without batch")
    if not isinstance(criterion, str) or not criterion.strip():
        raise ConfigError('topk needs a criterion, e.g. df.mistral.topk("most urgent ticket", '
                          'k=5, column="text")')
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a whole number of at least 1, got {k!r}; e.g. k=5")
    session = engine.session
    model = model or session.settings.model
    session.capabilities.check(model)
    texts, used = row_texts(df, column)
    items = [i for i, t in enumerate(texts) if t is not None]
    most = bound(len(items), k)
    tournament = Tournament(session, df, texts, items, criterion.strip(), used, model, seed)
    steps = Steps(engine, "topk", most, unit="comparison")
    steps.say(tournament.plan(k, most, len(df) - len(items)))
    tournament.require(most)
    found: list[int] = []
    try:
        tournament.steps = steps
        for winner in tournament.best(k):
            found.append(winner)
        steps.grow(steps.offset)
    except Interrupted:
        raise Interrupted(
            f"{len(found)} of the {min(k, len(items))} best rows found; run the same call again "
            "to finish (the comparisons made come from the cache, at $0)",
            partial=tournament.result(found)) from None
    finally:
        steps.close()
    steps.say(f"Top {len(found)} of {len(items):,} rows after {tournament.judged:,} "
              f"comparisons; {steps.tally()}.")
    return tournament.result(found)


class Tournament:
    """A knockout bracket over the rows with text; `best(k)` yields the winners in order."""

    def __init__(self, session, df, texts, items, criterion, used, model, seed):
        self.session, self.df, self.texts, self.items = session, df, texts, items
        self.criterion, self.used, self.model, self.seed = criterion, used, model, seed
        self.size = 1 << max(0, math.ceil(math.log2(max(1, len(items)))))
        self.tree: list[int | None] = [None] * (2 * self.size)
        for slot, i in enumerate(items):
            self.tree[self.size + slot] = i
        self.memo: dict[tuple[int, int], int] = {}
        self.errors: dict[int, str] = {}
        self.judged = 0
        self.steps = None

    def question(self, a: int, b: int) -> str:
        return self.question_text(self.texts[a], self.texts[b])

    def plan(self, k: int, most: int, skipped: int) -> str:
        from ..money.tokens import count_messages, count_text

        n = len(self.items)
        tokens = [count_text(self.texts[i]) for i in self.items] or [0]
        base = count_messages([{"role": "system", "content": SYSTEM},
                               {"role": "user", "content": self.question_text("", "")}])
        self.least_tokens = max(0, base + 2 * min(tokens) - 4)
        prompt = int(most * (base + 2 * sum(tokens) / len(tokens)))
        prices = self.session.prices
        return (f"Top {min(k, n)} of {n:,} rows by {self.criterion!r} with {self.model}, by a "
                f"knockout tournament of pairwise judgements: at most {most:,} comparisons "
                f"({max(0, n - 1):,} to find the best, then at most "
                f"{max(0, math.ceil(math.log2(max(1, n))) - 1)} for each next), one call each "
                f"(every pair would be {n * (n - 1) // 2:,})"
                + (f", {skipped:,} rows with missing text left out" if skipped else "")
                + f": about {format_tokens(prompt)} prompt tokens "
                f"({format_cost(prices.cost(self.model, prompt, 0))}), worst case "
                f"{format_cost(prices.cost(self.model, prompt, most * 8))}.")

    def question_text(self, a: str, b: str) -> str:
        return f"Which record fits this better: {self.criterion}\n\nRecord A: {a}\nRecord B: {b}"

    def require(self, most: int) -> None:
        """Refuse up front a first run whose n − 1 comparisons the budget cannot pay."""
        from ..calls.budget import MIN_ANSWER_TOKENS
        from ..calls.estimates import prompt_bound

        n = len(self.items)
        if n < 2 or self.session.budget.limit_usd is None:
            return
        first = self._round_pairs(self.size // 2)
        if self._cached(first):
            return  # a run that resumes: each round is planned as it comes
        exact = self.session.backend_spec().kind == "offline"
        least = self.session.prices.cost(self.model, prompt_bound(self.least_tokens, exact),
                                         MIN_ANSWER_TOKENS)
        self.session.budget.require(None if least is None else least * (n - 1),
                                    f"comparing {n:,} rows ({n - 1:,} comparisons at least)",
                                    model=self.model)

    def best(self, k: int):
        """The winners, best first: the bracket played up, then replayed for each next one."""
        if not self.items:
            return
        for level in self._levels():  # each round's comparisons go together
            winners = self.judge(self._round_pairs(level))
            for node in range(level, 2 * level):
                self._play(node, winners)
        slots = {i: slot for slot, i in enumerate(self.items)}
        wanted = min(k, len(self.items))
        for found in range(1, wanted + 1):
            winner = self.tree[1]
            yield winner
            if found == wanted:
                return  # no replay for a next winner no one asked for
            node = self.size + slots[winner]
            self.tree[node] = None
            node //= 2
            while node:  # only the winner's path is played again, one comparison at a time
                self._play(node)
                node //= 2

    def _play(self, node: int, winners: dict | None = None) -> None:
        """A node's winner: of its two children's (judged), or the one child it has."""
        left, right = self.tree[2 * node], self.tree[2 * node + 1]
        if left is None or right is None:
            self.tree[node] = left if left is not None else right
            return
        self.tree[node] = (winners or self.judge([(left, right)]))[(left, right)]

    def _levels(self) -> list[int]:
        """The first node of each level of the bracket, from the leaves' parents up."""
        levels, level = [], self.size // 2
        while level >= 1:
            levels.append(level)
            level //= 2
        return levels

    def _round_pairs(self, level: int) -> list[tuple[int, int]]:
        return [(self.tree[2 * n], self.tree[2 * n + 1]) for n in range(level, 2 * level)
                if level and self.tree[2 * n] is not None and self.tree[2 * n + 1] is not None]

    def judge(self, pairs: list[tuple[int, int]]) -> dict:
        """The winner of each pair (judged in the frame's order; from the memo when made)."""
        import pandas as pd

        todo = list(dict.fromkeys(tuple(sorted(p)) for p in pairs if tuple(sorted(p)) not in self.memo))
        if todo:
            frame = pd.DataFrame({"text": [self.question(a, b) for a, b in todo]}, dtype=object)
            labels = [(self.df.index[a], self.df.index[b]) for a, b in todo]
            job = Comparison(self.session, frame, self.used, labels, model=self.model, seed=self.seed)
            out = self.steps.run(job)
            self.judged += len(todo)
            for (a, b), better, error in zip(todo, out["better"], out["_error"], strict=True):
                if error is not None:
                    said = (f"the comparison of rows {self.df.index[a]!r} and {self.df.index[b]!r} "
                            f"failed ({error}); it went to the earlier row")
                    self.errors.setdefault(a, said)
                    self.errors.setdefault(b, said)
                self.memo[(a, b)] = b if better == "B" else a
        return {p: self.memo[tuple(sorted(p))] for p in pairs}

    def _cached(self, pairs: list[tuple[int, int]]) -> bool:
        """Whether any of these comparisons is in the resume cache already."""
        from ..calls.cache import request_key

        if not pairs:
            return False
        import pandas as pd

        frame = pd.DataFrame({"text": [self.question(a, b) for a, b in pairs]}, dtype=object)
        job = Comparison(self.session, frame, self.used, [()] * len(pairs), model=self.model,
                         seed=self.seed)
        who = self.session.responses.identities()[-1]
        keys = [request_key(who, job.requests[i]) for i in range(len(pairs))]
        return bool(self.session.cache.get_many(keys))

    def result(self, found: list[int]):
        """The rows found, best first, with `rank` and `_error`."""
        import pandas as pd

        out = self.df.iloc[found].copy()
        out["rank"] = pd.array(range(1, len(found) + 1), dtype="Int64")
        out["_error"] = pd.Series([self.errors.get(i) for i in found], index=out.index, dtype=object)
        return out
