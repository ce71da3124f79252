"""The pandas accessor `df.mistral`: text columns in, schema-typed columns out.

    people = df.mistral.extract("Who is described here? {bio}", schema="name, age int, city")

- `prompt` is a template over the row's columns (`"... {text}"`) or a column name.
- A row whose text is missing (None, NaN, `pd.NA`, or empty / blank text) in the
  prompt column, or in any column its template names, is not sent (and not paid
  for): its `_error` says which column is missing. Fill or drop such rows first.
- The result is aligned to `df.index`: one column per schema field, typed by the
  schema, plus `_error` (None on success). No row is lost or duplicated.
- Rows run concurrently on the session's background loop, bounded by `concurrency`
  and by a rate limiter (`requests_per_second`, `tokens_per_minute`) that pauses
  every worker on a 429's `Retry-After`; 5xx and connection errors are retried by
  the SDK's RetryConfig.
- A `tqdm.auto` bar shows rows done, failures and spend; a cost estimate is shown
  first and `MistralMagics.budget_usd` applies.
- The kernel's interrupt cancels cleanly and says in one line how many rows are done
  and left; finished rows are kept in a cache keyed by request, so running the same
  call again pays only for the rest. A record is cached only once it fits its
  columns, so a re-run never meets a bad cached row.
- `batch=True` sends the rows through Mistral's Batch API instead (half price).

Each method is a `rows.RowJob` (what one row sends, how its answer becomes columns)
run by the row engine (`engine.RowEngine`), which does all of the above.
"""

from __future__ import annotations

import threading
from typing import Any

from .rows import RowJob

SYSTEM = (
    "You extract structured data from the user's text. Answer only with JSON that matches "
    "the schema. Use null for a value the text does not give."
)

_registered = False
_lock = threading.Lock()


def register() -> None:
    """Register `df.mistral` with pandas (once; called when pandas is in use)."""
    global _registered
    with _lock:
        if _registered:
            return
        import pandas as pd

        pd.api.extensions.register_dataframe_accessor("mistral")(MistralAccessor)
        _registered = True


class MistralAccessor:
    """`df.mistral`: Mistral's models over the rows of a DataFrame."""

    def __init__(self, df):
        self._df = df

    def extract(
        self,
        prompt: str,
        schema: Any = None,
        *,
        model: str | None = None,
        concurrency: int = 8,
        requests_per_second: float | None = None,
        tokens_per_minute: float | None = None,
        max_retries: int | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        seed: int | None = None,
        batch: bool = False,
        progress: bool = True,
    ):
        """Extract `schema` fields from every row; returns a DataFrame aligned to the index.

        `schema` is a pydantic model, a JSON Schema dict, or the DSL
        (`"name, age int, price float: in euros, tags list, born date"`); with no
        schema the model answers in JSON mode and its keys become the columns.
        """
        import mistral_magic

        from .engine import RowEngine

        session = mistral_magic.session()
        engine = RowEngine(
            session, concurrency=concurrency, requests_per_second=requests_per_second,
            tokens_per_minute=tokens_per_minute, max_retries=max_retries, progress=progress,
        )
        job = Extraction(session, self._df, prompt, schema, model=model, max_tokens=max_tokens,
                         temperature=temperature, seed=seed)
        return engine.run(job, batch=batch)


class Extraction(RowJob):
    """`extract`'s rows: each asks for one record of the schema (JSON mode without one)."""

    kind = "extract"
    verb = "Extracting"

    def __init__(self, session, df, prompt, schema, *, model=None, max_tokens=None,
                 temperature=None, seed=None):
        from .schema import SchemaSpec

        self.spec = SchemaSpec.from_spec(schema, session.shell.user_ns) if schema is not None else None
        # Built once and shared by every row's request (building it copies the schema).
        self.response_format = self.spec.response_format() if self.spec else {"type": "json_object"}
        settings = session.settings
        self.options = {
            "temperature": settings.temperature if temperature is None else temperature,
            "max_tokens": settings.max_tokens if max_tokens is None else max_tokens,
            "seed": seed,
        }
        super().__init__(session, df, prompt, model=model)

    def request(self, text: str) -> dict:
        from .core import chat_request

        return chat_request(
            self.model,
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
            response_format=self.response_format,
            **self.options,
        )

    def parse(self, text: str) -> dict:
        from .structured import json_record

        return self.spec.parse(text)[0] if self.spec is not None else json_record(text)

    def frame(self, records, index):
        if self.spec is None:
            return super().frame(records, index)
        return self.spec.to_frame(records, index=index)
