"""The pandas accessor `df.mistral`: text columns in, schema-typed columns out.

    people = df.mistral.extract("Who is described here? {bio}", schema="name, age int, city")

- `prompt` is a template over the row's columns (`"... {text}"`) or a column name.
- A row whose text is missing (None, NaN, `pd.NA`, or empty / blank text) in the
  prompt column, or in any column its template names, is not sent (and not paid
  for): its `_error` says which column is missing. Fill or drop such rows first.
- The result is aligned to `df.index`: one column per schema field, typed by the
  schema, plus `_error` (None on success). No row is lost or duplicated.
- Rows run concurrently on the session's background loop through the SDK's async
  calls, bounded by `concurrency` and by a rate limiter (`requests_per_second`,
  `tokens_per_minute`) that pauses every worker on a 429's `Retry-After`; 5xx and
  connection errors are retried by the SDK's RetryConfig.
- A `tqdm.auto` bar shows rows done, failures and spend; a cost estimate is shown
  first and `MistralMagics.budget_usd` applies.
- The kernel's interrupt cancels cleanly and says in one line how many rows are done
  and left; finished rows are kept in a cache keyed by request, so running the same
  call again pays only for the rest. A record is cached only once it fits its
  columns, so a re-run never meets a bad cached row.
- `batch=True` sends the rows through Mistral's Batch API instead (half price).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
import time
from typing import Any

from .errors import ConfigError, MistralMagicError, StructuredOutputError

SYSTEM = (
    "You extract structured data from the user's text. Answer only with JSON that matches "
    "the schema. Use null for a value the text does not give."
)
INTERRUPTED = "interrupted before this row finished; run the same call again to resume"
MISSING = "no text to send: {what} (None, NaN or blank); this row was not sent"

_registered = False
_lock = threading.Lock()


def _is_missing(value: Any) -> bool:
    """None, NaN, pd.NA, NaT, or a string with nothing but blanks."""
    if isinstance(value, str):
        return not value.strip()
    import pandas as pd

    return bool(pd.api.types.is_scalar(value) and pd.isna(value))


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

        session = mistral_magic.session()
        job = Extraction(
            session, self._df, prompt, schema, model=model, concurrency=concurrency,
            requests_per_second=requests_per_second, tokens_per_minute=tokens_per_minute,
            max_retries=max_retries, max_tokens=max_tokens, temperature=temperature, seed=seed,
            progress=progress,
        )
        return job.run_batch() if batch else job.run()


class Extraction:
    """One extraction over a DataFrame: its requests, cache keys, and how it runs."""

    def __init__(self, session, df, prompt, schema, *, model=None, concurrency=8,
                 requests_per_second=None, tokens_per_minute=None, max_retries=None,
                 max_tokens=None, temperature=None, seed=None, progress=True):
        from .schema import SchemaSpec

        _check_limits(concurrency, requests_per_second, tokens_per_minute)
        self.session = session
        self.df = df
        self.spec = SchemaSpec.from_spec(schema, session.shell.user_ns) if schema is not None else None
        settings = session.settings
        self.model = model or settings.model
        self.concurrency = concurrency
        self.requests_per_second = requests_per_second
        self.tokens_per_minute = tokens_per_minute
        self.max_retries = settings.max_retries if max_retries is None else max_retries
        self.progress = progress
        temperature = settings.temperature if temperature is None else temperature
        max_tokens = settings.max_tokens if max_tokens is None else max_tokens
        self.errors: list[str | None] = [None] * len(df)
        # A row whose text is missing has no request (None): it is never sent.
        self.requests: list[dict | None] = [
            None if text is None else self._request(text, temperature, max_tokens, seed)
            for text in self._prompts(prompt)
        ]
        self.missing = sum(r is None for r in self.requests)
        # Resolved once: the backend property re-reads the key (environment, .env) each time.
        self.backend = session.backend
        url = self.backend.url
        self.keys = [
            None if r is None else
            hashlib.sha256(json.dumps([url, r], sort_keys=True, default=str).encode()).hexdigest()
            for r in self.requests
        ]
        self.prompt_tokens: list[int | None] = [None] * len(df)
        self.records: list[dict | None] = [None] * len(df)
        self.failed = 0
        self.spent = 0.0

    # -- building -------------------------------------------------------------------

    def _prompts(self, prompt: str) -> list[str | None]:
        """Each row's prompt, or None (with the row's `_error` set) where its text is missing."""
        from .prompt import interpolate, names_in

        if prompt in self.df.columns:
            texts: list[str | None] = []
            for i, value in enumerate(self.df[prompt]):
                if _is_missing(value):
                    self.errors[i] = MISSING.format(what=f"column {prompt!r} is missing")
                    texts.append(None)
                else:
                    texts.append(str(value))
            return texts
        columns = [str(c) for c in self.df.columns]
        names = list(dict.fromkeys(names_in(prompt)))
        rows = self.df.to_dict("records")
        texts = []
        for i, row in enumerate(rows):
            row = {str(k): v for k, v in row.items()}
            gone = [n for n in names if n in row and _is_missing(row[n])]
            if gone:
                which = ", ".join(repr(n) for n in gone)
                self.errors[i] = MISSING.format(
                    what=f"columns {which} are missing" if len(gone) > 1
                    else f"column {which} is missing"
                )
                texts.append(None)
                continue
            texts.append(interpolate(prompt, row))
        if rows and not names and "{" not in prompt:
            raise ConfigError(
                f"prompt {prompt!r} is neither a column ({', '.join(columns)}) nor a template "
                "naming one, e.g. 'Extract from: {text}'"
            )
        return texts

    def _request(self, text: str, temperature, max_tokens, seed) -> dict:
        from .core import chat_request

        return chat_request(
            self.model,
            [{"role": "system", "content": SYSTEM}, {"role": "user", "content": text}],
            temperature=temperature, max_tokens=max_tokens, seed=seed,
            response_format=self.spec.response_format() if self.spec else {"type": "json_object"},
        )

    def parse(self, text: str) -> dict:
        from .structured import json_record

        return self.spec.parse(text)[0] if self.spec is not None else json_record(text)

    def frame(self):
        """The result so far, aligned to the input's index, with `_error`."""
        import pandas as pd

        if self.spec is not None:
            out = self.spec.to_frame(self.records, index=self.df.index)
        else:
            out = pd.DataFrame([r or {} for r in self.records], index=self.df.index)
        out["_error"] = pd.Series(self.errors, index=self.df.index, dtype=object)
        return out

    def _pending(self) -> list[int]:
        cache = self.session.cache
        pending = []
        for i, key in enumerate(self.keys):
            if key is None:  # missing text: never sent
                continue
            if key in cache:
                self.records[i] = cache[key]
            else:
                pending.append(i)
        return pending

    def _estimate_and_check(self, pending: list[int], batch: bool) -> list:
        """Count the pending rows, show the estimate, and refuse (row by row) an extraction
        that cannot finish even at the least answer per row; returns the rows' estimates.

        A batch job's own worst case is reserved when it is submitted (`run_batch`).
        """
        from IPython.display import display

        from .budget import MIN_ANSWER_TOKENS
        from .estimates import Estimate, prompt_bound
        from .render import note
        from .usage import format_cost, format_tokens

        estimates = [self.session.estimate(self.requests[i], batch=batch) for i in pending]
        for i, estimate in zip(pending, estimates, strict=True):
            self.prompt_tokens[i] = estimate.prompt_tokens
        prompt = sum(e.prompt_tokens for e in estimates)
        completion = sum(e.max_completion_tokens for e in estimates)
        known = all(e.worst_cost is not None for e in estimates)
        total = Estimate(
            prompt_tokens=prompt, max_completion_tokens=completion,
            worst_cost=sum(e.worst_cost for e in estimates) if known else None,
            prompt_cost=sum(e.prompt_cost for e in estimates) if known else None,
            model=self.model, batch=batch,
        )
        cached = len(self.requests) - len(pending) - self.missing
        how = "through the Batch API (half price)" if batch else "row by row"
        skipped = [
            f"{_rows(cached)} already done, from the cache" if cached else "",
            f"{_rows(self.missing)} with missing text not sent" if self.missing else "",
        ]
        skipped = "; ".join(part for part in skipped if part)
        if not pending:
            line = (f"Nothing to send: {skipped}." if skipped
                    else "Nothing to send: the DataFrame has no rows.")
            display(note(line), raw=True)
            return estimates
        line = (
            f"Extracting {_rows(len(pending))} {how} with {self.model}"
            + (f" ({skipped})" if skipped else "")
            + f": {format_tokens(prompt)} prompt tokens ({format_cost(total.prompt_cost)}), "
            f"worst case {format_cost(total.worst_cost)}."
        )
        display(note(line), raw=True)
        if not batch:
            # Each row reserves and is capped as it goes; refuse up front only what cannot
            # finish even with the least useful answer for every row.
            exact = self.backend.kind == "offline"
            least = [
                self.session.prices.cost(
                    self.model, prompt_bound(e.prompt_tokens, exact),
                    min(MIN_ANSWER_TOKENS, e.max_completion_tokens),
                )
                for e in estimates
            ]
            need = None if any(c is None for c in least) else sum(least)
            self.session.budget.require(need, f"extracting {len(pending):,} rows", model=self.model)
        return estimates

    def _bar(self, total: int, done: int):
        from tqdm.auto import tqdm

        return tqdm(total=total, initial=done, desc="extract", unit="row",
                    disable=not self.progress)

    def _postfix(self, bar) -> None:
        from .usage import format_cost

        bar.set_postfix_str(f"failed {self.failed}, spent {format_cost(self.spent)}", refresh=False)

    # -- row by row -----------------------------------------------------------------

    def run(self):
        """Run every uncached row concurrently on the background loop; returns the frame."""
        pending = self._pending()
        self._estimate_and_check(pending, batch=False)
        if not pending:
            return self.frame()
        backend = self.backend
        from .backend import retry_config
        from .limiter import RateLimiter

        limiter = RateLimiter(self.requests_per_second, self.tokens_per_minute)
        # 5xx and connection errors: the SDK retries. 429s come back to us, so one
        # pause can hold every worker for the server's Retry-After.
        retries = retry_config(self.max_retries, status_codes=["500", "502", "503", "504"])
        finished = threading.Event()
        done = [len(self.requests) - len(pending)]

        async def run_all():
            semaphore = asyncio.Semaphore(self.concurrency)

            async def row(i: int):
                async with semaphore:
                    await self._row(i, backend, limiter, retries)
                done[0] += 1

            try:
                await asyncio.gather(*(row(i) for i in pending))
            finally:
                finished.set()

        future = self.session.loop.submit(run_all())
        bar = self._bar(len(self.requests), done[0])
        try:
            while not finished.wait(0.1):
                bar.n = done[0]
                self._postfix(bar)
                bar.refresh()
            future.result()
        except KeyboardInterrupt:
            future.cancel()
            finished.wait(10)
            for i in pending:
                if self.records[i] is None and self.errors[i] is None:
                    self.errors[i] = INTERRUPTED
            interrupted = True
        else:
            interrupted = False
        finally:
            bar.n = done[0]
            self._postfix(bar)
            bar.close()
        if interrupted:
            self._say_interrupted()
        return self.frame()

    def _say_interrupted(self) -> None:
        """The one line an interrupted extraction ends with: done, left, and how to finish."""
        from IPython.display import display

        from .render import note

        done = sum(r is not None for r in self.records)
        left = sum(e == INTERRUPTED for e in self.errors)
        line = (
            f"Interrupted: {done:,} of {_rows(len(self.records))} done, {left:,} left; "
            "run the same call again to finish them (the rows done come from the cache)."
        )
        display(note(line), raw=True)

    async def _row(self, i: int, backend, limiter, retries) -> None:
        request = self.requests[i]
        try:
            text = await self._call(request, backend, limiter, retries, self.prompt_tokens[i])
            try:
                record = self.parse(text)
            except StructuredOutputError as exc:
                from .structured import reask_request

                retry = reask_request(request, text, exc)
                record = self.parse(await self._call(retry, backend, limiter, retries))
        except asyncio.CancelledError:
            raise
        except MistralMagicError as exc:
            self.errors[i] = str(exc)
            self.failed += 1
            return
        except Exception as exc:  # one row's failure is that row's _error, never the run's
            from .errors import user_message

            self.errors[i] = user_message(exc, self.model)
            self.failed += 1
            return
        self.records[i] = record
        self.session.cache[self.keys[i]] = record

    async def _call(self, request: dict, backend, limiter, retries, prompt_tokens=None) -> str:
        """One chat call: a budget reservation, the limiter, 429 pauses, one ledger row."""
        from mistralai.client import errors

        from .backend import close_error_response, sdk_request
        from .calls import text_of as _text_of
        from .estimates import DEFAULT_MAX_TOKENS

        # Rows share the budget concurrently: each one without max_tokens is capped at
        # the estimate's DEFAULT_MAX_TOKENS, and waits while other rows hold what it needs.
        reservation = await self.session.reserve_async(
            request, exact=backend.kind == "offline", prompt_tokens=prompt_tokens,
            default_cap=DEFAULT_MAX_TOKENS,
        )
        request = reservation.apply(request)
        prompt_tokens = reservation.prompt_tokens
        record = None
        try:
            attempt = 0
            while True:
                await limiter.acquire(prompt_tokens + (request.get("max_tokens") or 0))
                started = time.perf_counter()
                try:
                    response = await backend.client.chat.complete_async(**sdk_request(request),
                                                                       retries=retries)
                except errors.SDKError as exc:
                    await close_error_response(exc)
                    if exc.status_code == 429 and attempt < self.max_retries:
                        attempt += 1
                        limiter.pause(_retry_after(exc))
                        continue
                    record = self._record(0, 0, time.perf_counter() - started, "error", str(exc))
                    raise
                except asyncio.CancelledError:
                    record = self._record(prompt_tokens, None, time.perf_counter() - started,
                                          "interrupted", None)
                    raise
                except Exception as exc:
                    record = self._record(0, 0, time.perf_counter() - started, "error", str(exc))
                    raise
                usage = response.usage
                record = self._record(usage.prompt_tokens, usage.completion_tokens,
                                      time.perf_counter() - started, "ok", None)
                return _text_of(response.choices[0].message.content)
        finally:
            reservation.settle(record)

    def _record(self, prompt_tokens, completion_tokens, latency, status, error,
                batch: bool = False):
        """The ledger row of one call (settled through its reservation); counts the spend."""
        from .usage import CallRecord

        cost = self.session.prices.cost(self.model, prompt_tokens or 0, completion_tokens or 0,
                                        batch=batch)
        self.spent += cost or 0.0
        return CallRecord(
            model=self.model, kind="batch" if batch else "extract", chat=None,
            prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost=cost,
            latency_s=latency, status=status, backend=self.backend.kind,
            batch=batch, error=error,
        )

    # -- through the Batch API --------------------------------------------------------

    def run_batch(self):
        """Send uncached rows as one batch job, follow it, map results back by custom_id."""
        from . import batch

        pending = self._pending()
        estimates = self._estimate_and_check(pending, batch=True)
        if not pending:
            return self.frame()
        client = self.backend.client
        lines = []
        for i in pending:
            body = {k: v for k, v in self.requests[i].items() if k != "model"}
            lines.append({"custom_id": str(i), "body": body})
        # Keyed before the budget's caps, so a resumed job is found whatever the budget.
        key = batch.requests_key(self.backend.url, self.model, lines)
        job_id = self.session.batch_jobs.get(key)
        if job_id is None:
            hold = self._reserve_batch(lines, estimates)
            try:
                job_id = batch.submit(client, self.model, lines)
            except BaseException:
                hold.release()
                raise
            self.session.batch_jobs[key] = job_id
            self.session.batch_holds[job_id] = hold
        bar = self._bar(len(self.requests), len(self.requests) - len(pending))
        start = bar.n

        def follow(job):
            bar.n = start + (job.completed_requests or 0)
            self.failed = job.failed_requests or 0
            bar.set_postfix_str(f"job {job.id} {job.status}, failed {self.failed}", refresh=False)
            bar.refresh()

        try:
            job = batch.wait(client, job_id, follow)
        except KeyboardInterrupt:
            bar.close()
            from .errors import Interrupted

            raise Interrupted(
                f"Stopped following batch job {job_id}; it keeps running. Run the same call "
                f"again to resume, or %mistral batch cancel {job_id}"
            ) from None
        bar.close()
        self.failed = 0
        outcomes = batch.results(client, job)
        # The job's lines go in the ledger together, then its hold is given back.
        records = [
            self._record(0, 0, None, "error", o.error, batch=True) if o.error is not None
            else self._record(o.prompt_tokens, o.completion_tokens, None, "ok", None, batch=True)
            for o in (outcomes.get(str(i)) for i in pending) if o is not None
        ]
        hold = self.session.batch_holds.pop(job_id, None)
        if hold is not None:
            hold.settle(*records)
        else:  # a job submitted without a hold (before a budget was set) is recorded all the same
            for record in records:
                self.session.ledger.record(record)
        for i in pending:
            outcome = outcomes.get(str(i))
            if outcome is None:
                self.errors[i] = f"no result for this row: batch job {job_id} ended {job.status}"
                self.failed += 1
                continue
            if outcome.error is not None:
                self.errors[i] = outcome.error
                self.failed += 1
                continue
            try:
                self.records[i] = self.parse(outcome.content)
            except StructuredOutputError as exc:
                self.errors[i] = str(exc)
                self.failed += 1
                continue
            self.session.cache[self.keys[i]] = self.records[i]
        return self.frame()


    def _reserve_batch(self, lines: list[dict], estimates: list):
        """Cap every line (with a budget: its max_tokens, or DEFAULT_MAX_TOKENS) and hold the
        job's whole worst case at the batch price before it is submitted."""
        from .estimates import prompt_bound
        from .usage import format_tokens

        budget = self.session.budget
        if budget.limit_usd is not None:
            for line, estimate in zip(lines, estimates, strict=True):
                line["body"] = {**line["body"], "max_tokens": estimate.max_completion_tokens}
        exact = self.backend.kind == "offline"
        prices = self.session.prices
        costs = [
            prices.cost(self.model, prompt_bound(e.prompt_tokens, exact), e.max_completion_tokens,
                        batch=True)
            for e in estimates
        ]
        worst = None if any(c is None for c in costs) else sum(costs)
        answer = max(e.max_completion_tokens for e in estimates)
        return budget.reserve_total(
            worst, f"a batch job of {len(lines):,} rows (up to {format_tokens(answer)} answer "
            "tokens each)", model=self.model, running=False,
        )


def _rows(n: int) -> str:
    return f"{n:,} row{'' if n == 1 else 's'}"


def _check_limits(concurrency, requests_per_second, tokens_per_minute) -> None:
    """Refuse limits that could never let a request go (or would never stop them)."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigError(
            f"concurrency must be a whole number of at least 1, got {concurrency!r}; e.g. concurrency=8"
        )
    for name, value, example in (("requests_per_second", requests_per_second, 5),
                                 ("tokens_per_minute", tokens_per_minute, 500_000)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ConfigError(
                f"{name} must be a number above 0 (or None for no limit), got {value!r}; "
                f"e.g. {name}={example}"
            )


def _retry_after(exc) -> float:
    """Seconds a 429 asks us to wait (`retry-after-ms` or `Retry-After`), at least a little."""
    headers = getattr(exc, "headers", None) or {}
    try:
        if headers.get("retry-after-ms"):
            return max(0.05, float(headers["retry-after-ms"]) / 1000)
        if headers.get("retry-after"):
            return max(0.05, float(headers["retry-after"]))
    except ValueError:
        pass
    return 1.0
