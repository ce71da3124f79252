"""The pandas accessor `df.mistral`: text columns in, typed columns, vectors and labels out.

    people = df.mistral.extract("Who is described here? {bio}", schema="name, age int, city")
    tickets = tickets.mistral.embed("text")               # + text_embedding (float32 arrays)
    tickets.mistral.search("refund for a damaged order", k=3)        # best rows + score
    tickets.mistral.dedup(threshold=0.9)                  # + dup_group, duplicate
    kind = tickets.mistral.classify("text", labels=["bug", "feature", "question"])
    refund = tickets.mistral.filter("mentions a refund", column="text")   # boolean mask
    flags = tickets.mistral.moderate("text")              # a score per category + flagged
    offers.mistral.join(catalogue, "Is {left.title} the same product as {right.name}?")
    tickets.mistral.agg("Summarise the complaints", by="product")   # one answer per group
    tickets.mistral.topk("most urgent", k=5, column="text")         # the 5 best rows, ranked
    added = notes.mistral.to_library("course", "text")    # each row a document of a library

`vectors` is the manual of embed, search and dedup; `labels` of classify, filter and
moderate; `join`, `agg` and `topk` of the operators over several rows at once. What
follows holds for every method (search and dedup embed only what they need, and offer no
batch; the operators run their steps through the engine, each under these rules).

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
- `preview=5` runs 5 rows spread over the frame, shows them with what they cost and
  estimates the whole frame's cost and time; the same call without it then takes those
  rows from the cache at $0 (`rows.preview`).
- A method whose first argument is a column (embed, classify, moderate) refuses a
  name that is not one of the frame's columns in one line.

Each method is a `rows.job.RowJob` (what one row sends, how its answer becomes columns)
run by the row engine (`engine.RowEngine`), which does all of the above.
"""

from __future__ import annotations

import threading
from typing import Any

from .job import RowJob

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
    """`df.mistral`: Mistral's models over the rows of a DataFrame.

    Every method takes the row engine's `concurrency` (8), `requests_per_second`,
    `tokens_per_minute`, `max_retries` and `progress` (the bar; True).
    """

    def __init__(self, df):
        self._df = df

    @staticmethod
    def _engine(concurrency: int = 8, requests_per_second: float | None = None,
                tokens_per_minute: float | None = None, max_retries: int | None = None,
                progress: bool = True):
        from ..core import loaded
        from .engine import RowEngine

        return RowEngine(loaded(), concurrency=concurrency,
                         requests_per_second=requests_per_second,
                         tokens_per_minute=tokens_per_minute, max_retries=max_retries,
                         progress=progress)

    def embed(self, column: str, *, model: str = "mistral-embed", dimension: int | None = None,
              dtype: str | None = None, batch: bool = False, preview: int | None = None,
              **engine):
        """The frame with ``{column}_embedding`` (a NumPy vector per row) and `_error`.

        Rows are packed into as few requests as the API takes (512 texts, 16,384
        tokens); `dimension` and `dtype` ("float", "int8", "uint8", "binary",
        "ubinary") are codestral-embed's options. See `mistral_magic.rows.vectors`.
        """
        from . import vectors

        return vectors.embed(self._engine(**engine), self._df, column, batch=batch, model=model,
                             dimension=dimension, dtype=dtype, preview=preview)

    def search(self, query: str, k: int = 10, *, column: str | None = None,
               model: str | None = None, dimension: int | None = None, dtype: str | None = None,
               **engine):
        """The `k` rows most similar to `query` (cosine), best first, with a `score` column.

        `column` is a vector column, or a text column (embedded first unless its
        ``{column}_embedding`` is there; cached vectors are reused).
        """
        from . import vectors

        return vectors.search(self._engine(**engine), self._df, query, k=k, column=column,
                              model=model, dimension=dimension, dtype=dtype)

    def dedup(self, threshold: float = 0.9, *, column: str | None = None,
              model: str | None = None, dimension: int | None = None, dtype: str | None = None,
              **engine):
        """The frame with `dup_group` (near-duplicates share one: cosine >= `threshold`,
        also through other rows) and `duplicate` (all but the first row of a group)."""
        from . import vectors

        return vectors.dedup(self._engine(**engine), self._df, threshold=threshold, column=column,
                             model=model, dimension=dimension, dtype=dtype)

    def classify(self, column: str, labels, *, model: str | None = None,
                 temperature: float | None = 0.0, seed: int | None = None, batch: bool = False,
                 preview: int | None = None, **engine):
        """A categorical Series of `labels` (one per row), aligned to the index; failed rows
        are NA, with their reasons in ``series.attrs["_error"]``."""
        from . import labels as jobs

        return jobs.classify(self._engine(**engine), self._df, column, labels, batch=batch,
                             preview=preview, model=model, temperature=temperature, seed=seed)

    def filter(self, condition: str, column: str, *, model: str | None = None,
               temperature: float | None = 0.0, seed: int | None = None, batch: bool = False,
               preview: int | None = None, **engine):
        """A nullable boolean Series: whether each row's `column` meets `condition`
        (``df[mask.fillna(False)]``); failed rows are NA, reasons in ``attrs["_error"]``."""
        from . import labels as jobs

        return jobs.filter_rows(self._engine(**engine), self._df, condition, column, batch=batch,
                                preview=preview, model=model, temperature=temperature, seed=seed)

    def moderate(self, column: str, *, model: str | None = None, batch: bool = False,
                 preview: int | None = None, **engine):
        """A DataFrame aligned to the index: a score column per moderation category,
        `flagged`, `flagged_for` (the flagged categories) and `_error`."""
        from . import labels as jobs

        return jobs.moderate(self._engine(**engine), self._df, column, model=model, batch=batch,
                             preview=preview)

    def join(self, right, condition: str, *, block: int | None = 3, all_pairs: bool = False,
             model: str | None = None, embed_model: str | None = None, seed: int | None = None,
             batch: bool = False, preview: int | None = None, **engine):
        """The pairs of this frame's rows and `right`'s for which `condition` holds (``"Does
        {left.title} describe the same product as {right.name}?"``), as a merged DataFrame with
        `match`, `score` and `_error`; each left row is judged against its `block` nearest
        right rows (None: every pair). See `mistral_magic.rows.join`."""
        from .join import join

        return join(self._engine(**engine), self._df, right, condition, block=block,
                    all_pairs=all_pairs, model=model, embed_model=embed_model, seed=seed,
                    batch=batch, preview=preview)

    def agg(self, instruction: str, by=None, *, column: str | None = None,
            model: str | None = None, max_tokens: int = 512, chunk_tokens: int | None = None,
            seed: int | None = None, batch: bool = False, **engine):
        """One answer to `instruction` per group of rows (`by`: a column or a list; None: the
        whole frame): a DataFrame indexed by the group with `answer`, `rows`, `calls` and
        `_error`; a group past one request is answered in parts, then the parts' answers are
        combined. See `mistral_magic.rows.agg`."""
        from .agg import agg

        return agg(self._engine(**engine), self._df, instruction, by=by, column=column,
                   model=model, max_tokens=max_tokens, chunk_tokens=chunk_tokens, seed=seed,
                   batch=batch)

    def topk(self, criterion: str, k: int = 5, *, column: str | None = None,
             model: str | None = None, seed: int | None = None, batch: bool = False, **engine):
        """The `k` rows that best fit `criterion`, best first, with `rank` and `_error`, by a
        knockout tournament of pairwise judgements (at most n − 1 + (k − 1)(⌈log₂ n⌉ − 1)
        calls). See `mistral_magic.rows.topk`."""
        from .topk import topk

        return topk(self._engine(**engine), self._df, criterion, k=k, column=column,
                    model=model, seed=seed, batch=batch)

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
        image: str | None = None,
        root: str | None = None,
        preview: int | None = None,
    ):
        """Extract `schema` fields from every row; returns a DataFrame aligned to the index.

        `schema` is a pydantic model, a JSON Schema dict, or the DSL
        (`"name, age int, price float: in euros, tags list, born date"`); with no
        schema the model answers in JSON mode and its keys become the columns.
        `image` names a column of pictures (paths, http(s) URLs or bytes) sent with each
        row's text to a model that sees images (`pictures`: downscaled, encoded once); its
        paths are read only inside `root` (the working directory unless given; `inputs.paths`).
        """
        engine = self._engine(concurrency, requests_per_second, tokens_per_minute, max_retries,
                              progress)
        job = Extraction(engine.session, self._df, prompt, schema, model=model,
                         max_tokens=max_tokens, temperature=temperature, seed=seed, image=image,
                         root=root)
        return engine.run(job, batch=batch, preview=preview)

    def ocr(self, column: str, schema: Any = None, *, model: str | None = None,
            pages: str | None = None, blocks: bool = False, confidence: str | None = None,
            tables: str | None = None, header: bool = True, footer: bool = True,
            concurrency: int = 8, requests_per_second: float | None = None,
            max_retries: int | None = None, batch: bool = False, progress: bool = True,
            root: str | None = None, preview: int | None = None):
        """Read the document in each row of `column` (paths, http(s) URLs or bytes) with Mistral
        OCR; returns ``text`` and ``pages`` per row, or `schema`'s typed fields (see `ocr`).

        `blocks=True` adds ``blocks`` (each row's layout blocks as a DataFrame), `confidence`
        ("word", "block" or "page") ``confidence`` and ``min_confidence`` (and ``low_words``
        for "word"), `tables` ("html" or "markdown") the tables' format in ``text``, and
        `header=False` / `footer=False` leave running headers and footers out of it
        (`ocr_pages`). Paths are read only inside `root` (the working directory unless given;
        see `inputs.paths`): a row naming a file elsewhere gets an ``_error`` instead.
        """
        from .ocr import OCRJob
        from .ocr_pages import PageOptions

        options = PageOptions(blocks, confidence, tables, header, footer)
        engine = self._engine(concurrency, requests_per_second, None, max_retries, progress)
        job = OCRJob(engine.session, self._df, column, schema, model=model, pages=pages,
                     root=root, options=options)
        return engine.run(job, batch=batch, preview=preview)

    def transcribe(self, column: str, *, diarize: bool = False, segments: bool = False,
                   language: str | None = None, bias: str | list[str] | None = None,
                   timestamps: str | None = None, model: str | None = None,
                   concurrency: int = 8, requests_per_second: float | None = None,
                   max_retries: int | None = None, progress: bool = True,
                   root: str | None = None):
        """Transcribe the recording in each row of `column` (paths, bytes or http(s) URLs);
        returns ``transcript`` per row, and ``segments`` with `segments` or `diarize` (see
        `transcribe`). Paths are read only inside `root` (the working directory unless given).
        """
        from .transcribe import TranscribeJob

        engine = self._engine(concurrency, requests_per_second, None, max_retries, progress)
        job = TranscribeJob(engine.session, self._df, column, model=model, diarize=diarize,
                            segments=segments, timestamps=timestamps, language=language,
                            bias=bias, root=root)
        return engine.run(job)

    def to_library(self, name: str, column: str, *, kind: str = "auto", root: str | None = None,
                   allow_unpriced: bool = False, concurrency: int = 4,
                   requests_per_second: float | None = None, max_retries: int | None = None,
                   progress: bool = True):
        """Upload each row of `column` (texts, or paths of PDF, DOCX, PPTX and text files) to the
        document library `name`; returns ``document_id``, ``document``, ``status`` and ``_error``.

        Paths are read only inside `root`; a re-run uploads only the rows not done (see
        `mistral_magic.rows.library`). Under a budget, `allow_unpriced=True` is needed: Mistral
        publishes no price for processing a document.
        """
        from .library import LibraryJob

        engine = self._engine(concurrency, requests_per_second, None, max_retries, progress)
        job = LibraryJob(engine.session, self._df, name, column, kind=kind, root=root,
                         allow_unpriced=allow_unpriced)
        return engine.run(job)


class Extraction(RowJob):
    """`extract`'s rows: each asks for one record of the schema (JSON mode without one)."""

    kind = "extract"
    verb = "Extracting"

    def __init__(self, session, df, prompt, schema, *, model=None, max_tokens=None,
                 temperature=None, seed=None, image=None, root=None):
        from ..errors import ConfigError
        from ..inputs.paths import root_folder
        from ..structured.schema import SchemaSpec

        if image is not None and image not in df.columns:
            raise ConfigError(f"image={image!r} is not a column of the frame "
                              f"({', '.join(str(c) for c in df.columns)})")
        self.image = image
        self.root = root_folder(root) if image is not None else None
        self._picture = None  # the row being built's image chunk

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
        if image is not None:
            session.capabilities.require(self.model, "vision")
            self.sent_columns = [*self.sent_columns, image]

    def _request(self, i: int, text):
        if self.image is not None and text is not None:
            from ..errors import ConfigError

            value = self.df[self.image].iloc[i]
            if self._missing(i, [self.image], {self.image: value}):
                return None
            try:
                self._picture = self._row_picture(i, value)
            except ConfigError as exc:
                self.errors[i] = str(exc)
                self.refused_rows.add(i)
                return None
        return super()._request(i, text)

    def origin(self, rows: list[int]):
        from dataclasses import replace

        found = super().origin(rows)
        if self.image is None:
            return found
        return replace(found, pictures=tuple(f"row {self.df.index[i]} of {self.image!r}"
                                             for i in rows))

    def _row_picture(self, i: int, value) -> dict:
        """Row `i`'s image chunk; a path in the column is data, read only inside the root."""
        import os

        from ..inputs.paths import confined
        from ..inputs.pictures import picture

        name = f"row {i} of {self.image!r}"
        is_url = isinstance(value, str) and value.lower().startswith(("http://", "https://"))
        if isinstance(value, (str, os.PathLike)) and not is_url:
            value = confined(value, self.root, name, "extract").read_bytes()
        return picture(value, name).chunk()

    def request(self, text: str) -> dict:
        from ..core import chat_request

        content: object = text
        if self._picture is not None:
            content = [{"type": "text", "text": text}, self._picture]
        return chat_request(
            self.model,
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}],
            response_format=self.response_format,
            **self.options,
        )

    def parse(self, text: str) -> dict:
        from ..structured.frames import json_record

        return self.spec.parse(text)[0] if self.spec is not None else json_record(text)

    def frame(self, records, index):
        if self.spec is None:
            return super().frame(records, index)
        return self.spec.to_frame(records, index=index)
