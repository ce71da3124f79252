"""Row jobs whose rows are texts sent together, as one request's `input` list.

Embeddings and moderation take a list of texts and answer one result per text, in
order. `PackedTexts` is what such a job shares: each row's request is
``{"model", "input": text, **options}`` (its cache key, and its body in a batch
job); `pack` joins rows into ``{"model", "input": [texts], **options}``; the
estimate counts the texts with the shared tokenizer and prices no answer tokens. The
engine packs rows greedily, in order, up to `rows_per_call` texts and
`tokens_per_call` tokens a request.

A text longer than the model takes (`input_limit` tokens) is refused on its own
(`rows.RowRefused`): its row's `_error` says so, and the rows packed beside it are
sent as usual. Offline the counts are exact (the server counts with the same
tokenizer); hosted models' tokenizers are not bundled, so there a request is packed
to `HOSTED_SHARE` of the token limit, leaving room for their counts to differ.
"""

from __future__ import annotations

from ..errors import ConfigError
from .job import RowJob, RowRefused

HOSTED_SHARE = 0.9
# A token is at least one byte of UTF-8 and a character at most four: a text this short
# cannot pass a limit of 4x as many tokens, so it is not counted twice.
BYTES_PER_CHAR = 4


def require_column(df, column, method: str) -> str:
    """`column` when it names one of `df`'s columns; else a one-line ConfigError listing them."""
    if not isinstance(column, str) or column not in df.columns:
        listed = ", ".join(repr(c) for c in df.columns) or "none"
        raise ConfigError(
            f"df.mistral.{method}: the first argument names the column of texts, and {column!r} "
            f"is not one of the DataFrame's columns ({listed}); e.g. df.mistral.{method}(\"text\")"
        )
    return column


def hosted_share(session, limit: int) -> int:
    """`limit` offline (exact counts); `HOSTED_SHARE` of it where the server counts otherwise."""
    return limit if session.backend_spec().kind == "offline" else int(limit * HOSTED_SHARE)


class PackedTexts(RowJob):
    """A row job over a column of texts for an endpoint that takes an `input` list."""

    input_limit: int | None = None  # tokens one text may take
    options: dict = {}

    def __init__(self, session, df, column: str, *, model: str, method: str):
        self.column = require_column(df, column, method)
        super().__init__(session, df, column, model=model)

    def request(self, text: str) -> dict:
        limit = self.input_limit
        if limit is not None and len(text) * BYTES_PER_CHAR > limit:
            from ..money.tokens import count_text

            tokens = count_text(text)
            if tokens > limit:
                raise RowRefused(
                    f"this text is {tokens:,} tokens, over {self.model}'s limit of {limit:,} "
                    "tokens per input; shorten or split it (the row was not sent)"
                )
        return {"model": self.model, "input": text, **self.options}

    def pack(self, requests: list[dict]) -> dict:
        return {"model": self.model, "input": [r["input"] for r in requests], **self.options}

    def estimate(self, request: dict, batch: bool = False, prompt: int | None = None):
        from ..calls.estimates import Estimate
        from ..money.tokens import count_text

        if prompt is None:
            texts = request["input"]
            prompt = sum(count_text(t) for t in ([texts] if isinstance(texts, str) else texts))
        cost = self.session.prices.cost(self.model, prompt, 0, batch=batch)
        return Estimate(prompt, 0, cost, cost, self.model, batch)

    def estimate_call(self, request: dict, counted: list[int | None]):
        # The plan counted each row's text: their sum is the call's (no text counted twice).
        return self.estimate(request, prompt=None if None in counted else sum(counted))
