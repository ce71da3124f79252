"""A row job: what a row-wise DataFrame method sends for each row, and what comes back.

Every ``df.mistral.*`` method is a `RowJob`. It says only

- `request(text)`: the request one row sends, given the row's text (a column's value,
  or a template over the row's columns, ``"Extract from: {review}"``);
- `parse(answer)`: the row's columns (a dict) from its answer, raising
  `StructuredOutputError` when the answer does not fit (a chat job then re-asks);
- optionally `frame(records, index)`: how those records become the result's columns.

`mistral_magic.rows.engine` does the rest for every job alike: concurrency, the rate
limiter and 429s, budget reservations, the resume cache, the progress bar, a clean
interrupt, `_error` and ``batch=True``.

A job for an endpoint other than chat (embeddings, moderation, OCR) also gives
`send`, a coroutine that makes the SDK call for one call's request and returns a
`Reply`, and `estimate` (its prompt tokens; answer tokens 0 where the endpoint writes
none). It may carry several rows in one call: up to `rows_per_call` rows, and (when
`tokens_per_call` is set) up to that many prompt tokens, are packed greedily, in
order, and joined by `pack` into one request; the `Reply` holds one value per row, in
order. Each row keeps its own request as its cache key, so a re-run pays only for
rows not done. For ``batch=True`` a job's rows go as `batch_body` lines (keyed as they
are, so a job is found again), sent as `batch_sent` makes them (OCR signs its documents'
URLs there), and each result line becomes a `Reply` through `batch_reply`. A job priced
per page (OCR: `per_page`) has estimates that count pages, and replies that say how
many were read. A job priced by what it sends rather than by tokens (`priced_whole`: pages,
minutes of audio) has each call's worst case held whole; `expect` and `took` put what was
held and what the server reported on the call (pages, seconds of audio).

A job's model is checked when the job is made (`capabilities.Capabilities.check`): one
the backend does not have is refused, with the nearest id, before any row is sent.
Math in a template (``"Score $s_{k}$: {review}"``) is sent as written (`prompt`).

`request(text)` may raise `RowRefused` for a row that cannot be sent as it is (a
text past the model's input limit): that row is not sent, and its `_error` says why.

Requests are built when they are needed, from each row's text (`RowJob.requests` is
a lazy sequence): a job over 100,000 rows never holds 100,000 requests at once.

With ``batch=True`` each row's request is one line of a Batch API job, sent to
`batch_endpoint`: `batch_body(request)` is the line's body as the endpoint takes it
on the wire (the request without its model, by default), and `batch_reply(body)`
reads the response body of a line (a chat completion by default) into a one-value
`Reply`, which `parse` then takes as usual. A job for another endpoint that offers
batch gives its own pair (e.g. embeddings: the SDK's ``inputs`` is ``input`` on the wire).

A row whose text is missing (None, NaN, `pd.NA`, or empty / blank text) in the
prompt column, or in any column its template names, has no request: it is not sent
(and not paid for), and its `_error` says which column is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError, MistralMagicError

MISSING = "no text to send: {what} (None, NaN or blank); this row was not sent"


class RowRefused(MistralMagicError):
    """A row that cannot be sent as it is; the message (its `_error`) says why and what to do."""


@dataclass
class Reply:
    """What one call to a non-chat endpoint brought back: a value per row, and its usage."""

    values: list[Any]
    prompt_tokens: int | None = None
    completion_tokens: int | None = 0
    pages: int | None = None  # pages read, for a job priced per page
    audio_seconds: int | None = None  # seconds of audio heard, for a job priced per minute


class RowJob:
    """What a row-wise method says; see the module's doc. `requests[i]` is None for a row
    that is not sent, and then `errors[i]` says why."""

    kind = "rows"  # the ledger's kind and the progress bar's label
    sent_columns: list = []  # the frame's columns a row's text is made of (`origin`)
    verb = "Processing"  # the plan's first word: "Extracting 12 rows row by row with ..."
    rows_per_call = 1
    tokens_per_call: int | None = None  # with rows_per_call > 1: a call's prompt tokens at most
    batch_endpoint: str | None = "/v1/chat/completions"  # None: batch=True is not offered
    send = None  # async (client, request, retries) -> Reply, for endpoints other than chat
    per_page = False  # priced per page (OCR): estimates count pages, replies say how many
    per_use: str | None = None  # priced per use of this service (a library's document processing)
    annotated = False  # with per_page: pages read with an annotation format (their own price)
    per_minute = False  # priced per minute of audio heard (transcription)
    hold_fix = "read fewer pages (pages=...) or send fewer rows"  # what a refused hold says to do

    def __init__(self, session, df, prompt: str, *, model: str | None = None):
        self.session = session
        self.df = df
        self.model = model or session.settings.model
        if self.per_use is None:  # a service priced per use is no model of the backend
            session.capabilities.check(self.model, setting=None if model else "MistralMagics.model")
        self.errors: list[str | None] = [None] * len(df)
        self.refused_rows: set[int] = set()  # rows whose request() raised RowRefused
        self.texts = self._texts(prompt)
        self.requests: Sequence[dict | None] = Requests(self._request, self.texts)

    @property
    def priced_whole(self) -> bool:
        """Priced by what it sends (pages, minutes), not tokens: each call's worst case is held."""
        return self.per_page or self.per_minute

    def amount(self, estimates: list) -> str | None:
        """What the pending rows send, said in the job's own unit (None: prompt tokens)."""
        return None

    def calls_at_once(self, concurrency: int, units: list[list[int]]) -> int:
        """Calls sent at once for these `units` (the engine's `concurrency`, here)."""
        return concurrency

    def expect(self, call, estimate) -> None:
        """Put on `call` what its hold counted (pages), before it is sent."""
        if self.per_page:
            call.expect_pages(estimate.pages, self.annotated)

    def took(self, call, reply: Reply) -> None:
        """Put on `call` what the server reported it read or heard."""
        if reply.pages is not None:
            call.take_pages(reply.pages, self.annotated)

    @property
    def refused(self) -> int:
        """How many rows the job would not send (their `_error` says why), of those built."""
        return len(self.refused_rows)

    def _request(self, i: int, text: str) -> dict | None:
        """Row `i`'s request, or None (with its `_error`) when the job refuses it."""
        try:
            return self.request(text)
        except RowRefused as exc:
            self.errors[i] = str(exc)
            self.refused_rows.add(i)
            return None

    def request(self, text: str) -> dict:
        """The request one row sends."""
        raise NotImplementedError

    def parse(self, answer: Any) -> dict:
        """The row's columns from its answer (`StructuredOutputError` when it does not fit)."""
        raise NotImplementedError

    def frame(self, records: list[dict | None], index):
        """The result's columns, one row per record (None: a row that has none)."""
        import pandas as pd

        return pd.DataFrame([r or {} for r in records], index=index)

    def origin(self, rows: list[int]):
        """What of the frame the call for `rows` carries (`calls.sent`): the columns its text
        is made of, and the rows' labels."""
        from ..calls.sent import Origin, Use

        labels = [self.df.index[i] for i in rows]
        return Origin((Use(f"df.mistral.{self.kind}", tuple(self.sent_columns), labels),))

    def estimate(self, request: dict, batch: bool = False):
        """What a request may cost (`estimates.Estimate`); chat requests are counted here."""
        return self.session.estimate(request, batch=batch)

    def estimate_call(self, request: dict, counted: list[int | None]):
        """A packed call's estimate, given its rows' prompt tokens as the plan counted them."""
        return self.estimate(request)

    def parse_all(self, values: list, rows: list[int]) -> list:
        """One call's records, a value per row (positions `rows`) in order: each row's record,
        or the exception that says why its value did not fit."""
        return [parsed(self.parse, value) for value in values]

    def stored(self, record: Any, row: int) -> Any:
        """Row `row`'s record as the store keeps it (JSON): the record itself here."""
        return record

    def batch_body(self, request: dict) -> dict:
        """A row's batch line body, as the endpoint takes it on the wire (the job names the model)."""
        return {name: value for name, value in request.items() if name != "model"}

    def batch_sent(self, body: dict) -> dict:
        """A line's body as it is sent (the job is keyed by `batch_body`'s): the same here."""
        return body

    def batch_reply(self, body: dict) -> Reply:
        """One batch line's answer from its response body, and its usage (a chat completion
        here: the message's text); jobs for other batch endpoints say how theirs reads."""
        content = body["choices"][0]["message"].get("content")
        if isinstance(content, list):
            content = "".join(c.get("text", "") for c in content if c.get("type") == "text")
        usage = body.get("usage") or {}
        return Reply([content or ""], usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0))

    def pack(self, requests: list[dict]) -> dict:
        """One call's request for several rows (jobs with `rows_per_call` > 1 say how)."""
        if len(requests) != 1:
            raise NotImplementedError(f"{type(self).__name__} does not join rows into one call")
        return requests[0]

    def _texts(self, prompt: str) -> list[str | None]:
        """Each row's text, or None (with the row's `_error` set) where its text is missing."""
        from ..inputs.prompt import interpolate, names_in

        df = self.df
        if prompt in df.columns:
            self.sent_columns = [prompt]
            texts: list[str | None] = []
            for i, value in enumerate(df[prompt]):
                texts.append(None if self._missing(i, [prompt], {prompt: value}) else str(value))
            return texts
        names = list(dict.fromkeys(names_in(prompt)))
        self.sent_columns = [c for c in df.columns if str(c) in names]
        rows = df.to_dict("records")
        texts = []
        for i, row in enumerate(rows):
            row = {str(k): v for k, v in row.items()}
            texts.append(None if self._missing(i, names, row) else interpolate(prompt, row))
        if rows and not names and "{" not in prompt:
            columns = ", ".join(str(c) for c in df.columns)
            raise ConfigError(
                f"prompt {prompt!r} is neither a column ({columns}) nor a template "
                "naming one, e.g. 'Extract from: {text}'"
            )
        return texts

    def _missing(self, i: int, names: list[str], row: dict) -> bool:
        """Whether row `i` lacks text in any of `names`; if so its `_error` says which."""
        gone = [n for n in names if n in row and is_missing(row[n])]
        if gone:
            which = ", ".join(repr(n) for n in gone)
            self.errors[i] = MISSING.format(
                what=f"columns {which} are missing" if len(gone) > 1 else f"column {which} is missing"
            )
        return bool(gone)


class FileRowJob(RowJob):
    """A job whose column holds files (paths, URLs or bytes) rather than prompts: each row's
    value is sent as it is, and its request is built once (a file is read or decoded once,
    however often the engine asks for the row's request)."""

    def __init__(self, *args, **kwargs):
        self._built: dict[int, dict | None] = {}  # row -> its request
        super().__init__(*args, **kwargs)

    def _texts(self, prompt: str) -> list:
        return [None if self._missing(i, [prompt], {prompt: v}) else v
                for i, v in enumerate(self.df[prompt])]

    def _request(self, i: int, value: Any) -> dict | None:
        if i not in self._built:
            self._built[i] = super()._request(i, value)
        return self._built[i]


class Requests(Sequence):
    """Each row's request, built from its text when asked for (None for a row not sent)."""

    def __init__(self, build: Callable[[int, str], dict | None], texts: list[str | None]):
        self._build = build
        self._texts = texts

    def __len__(self) -> int:
        return len(self._texts)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        i = range(len(self._texts))[i]  # a negative index counts from the end; past it: IndexError
        text = self._texts[i]
        return None if text is None else self._build(i, text)


def parsed(parse: Callable[[Any], Any], value: Any) -> Any:
    """A row's record, or the exception that says why its answer did not fit."""
    try:
        return parse(value)
    except Exception as exc:  # that row's _error
        return exc


def is_missing(value: Any) -> bool:
    """None, NaN, pd.NA, NaT, or a string with nothing but blanks."""
    if isinstance(value, str):
        return not value.strip()
    import pandas as pd

    return bool(pd.api.types.is_scalar(value) and pd.isna(value))
