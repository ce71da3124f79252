"""The row engine: runs any `rows.job.RowJob` over a DataFrame's rows.

    out = RowEngine(session, concurrency=8).run(job)          # or .run(job, batch=True)

- Rows run concurrently on the session's background loop through the SDK's async
  calls, bounded by `concurrency` and by a rate limiter (`requests_per_second`,
  `tokens_per_minute`) that pauses every worker on a 429's `Retry-After`; 5xx and
  connection errors are retried by the SDK's RetryConfig (`max_retries`).
- Chat-shaped rows go through the one call path (`calls`), so each call reserves its
  worst case against the budget first (rows wait for each other's holds rather than
  refuse), is capped there, and settles one ledger row. An answer that does not parse
  is re-asked (`MistralMagics.reasks`). A job for another endpoint sends its own calls
  (`RowJob.send`), several rows per call when it packs them (up to `rows_per_call`
  rows and `tokens_per_call` prompt tokens, greedily in order), under the same rules.
- A cost estimate is shown first, and a job that cannot finish even at the least
  answer per row is refused before anything is sent.
- A `tqdm.auto` bar shows rows done, failures and spend.
- Finished rows are kept in `Session.cache` (the store's ``records``, by
  `cache.request_key` of each row's request), so running the same call again, also
  after a restart, pays only for the rest; a row whose stored answer (the response
  cache) fits its columns is not sent either, and replaying sends nothing at all
  (see `mistral_magic.calls.cache`). The kernel's interrupt cancels the rows under way, then
  ends the call as `Interrupted`, in one line saying how many rows are done and left
  (its `partial` is the frame so far).
- The result is the job's columns aligned to `df.index`, plus `_error` (None on
  success): no row is lost or duplicated; a row that failed, was refused, was not
  sent (missing text) or was interrupted says so there.
- ``batch=True`` sends the rows through Mistral's Batch API instead (`batchrun.run_job`):
  as many jobs as the API's limits require, recorded in the folder's store so the same
  call reattaches after an interrupt or a kernel restart.
"""

from __future__ import annotations

import asyncio
import threading
from functools import cached_property
from typing import Any

from IPython.display import display

from ..calls.backend import retry_config
from ..calls.budget import MIN_ANSWER_TOKENS
from ..calls.cache import request_key, row_writer, stored_text
from ..calls.call import Call, run_async
from ..calls.estimates import DEFAULT_MAX_TOKENS, prompt_bound
from ..calls.limiter import Pacing, RateLimiter, check_limits
from ..calls.sent import ORIGIN
from ..calls.uses import reserve_async as reserve_uses
from ..errors import APIError, ConfigError, Interrupted, ReplayMiss, user_message
from ..money.usage import format_cost, format_tokens
from ..show.render import note
from ..structured.reask import Reasks
from .batchrun import run_job
from .job import parsed

#: Rows looked up in the response cache at once (their requests are built for it).
LOOKUP_ROWS = 1000
INTERRUPTED = "interrupted before this row finished; run the same call again to resume"


class RowEngine:
    """How a job's rows go: concurrency, rate limits, retries and the progress bar."""

    def __init__(self, session, *, concurrency: int = 8, requests_per_second: float | None = None,
                 tokens_per_minute: float | None = None, max_retries: int | None = None,
                 progress: Any = True, notes: bool = True):
        check_limits(concurrency, requests_per_second, tokens_per_minute)
        self.session = session
        self.concurrency = concurrency
        self.requests_per_second = requests_per_second
        self.tokens_per_minute = tokens_per_minute
        self.max_retries = session.settings.max_retries if max_retries is None else max_retries
        self.progress = progress  # True, False, or an operator's bar over its steps (`steps`)
        self.notes = notes  # the plan's note (an operator says its own)

    def run(self, job, *, batch: bool = False, preview: int | None = None):
        """Run `job` over its rows; returns its frame aligned to the index, with `_error`.

        `preview=n` runs n of the rows and estimates the rest (`preview`)."""
        if batch and job.batch_endpoint is None:
            raise ConfigError(f"batch=True is not available for {job.kind}; run it without batch")
        if preview is not None:
            from .preview import preview_rows

            return preview_rows(self, job, preview, batch, RowRun)
        run = RowRun(self, job)
        if not batch or run.replaying:  # a replay sends nothing, in a batch or not
            return run.run()
        return run_job(run)


class RowRun:
    """One run of a job: its rows' state (records, errors, cache keys) and how it goes."""

    def __init__(self, engine: RowEngine, job):
        self.engine = engine
        self.job = job
        self.session = session = engine.session
        self.model = job.model
        self.requests = job.requests
        n = len(self.requests)
        self.cache = session.cache
        self.replaying = session.responses.mode == "replay"
        # "offline" whatever the offline server's port: the same rows resume after a restart.
        key_as = session.responses.identities()[-1]
        self.exact = key_as == "offline"
        # Each request is built here and dropped: only its key is kept.
        self.keys = [None if r is None else request_key(key_as, r) for r in self.requests]
        self.missing = self.keys.count(None)
        self.refused = job.refused  # of the missing: rows the job would not send (their _error)
        self.errors = list(job.errors)  # missing and refused rows (built above) say so already
        self.prompt_tokens: list[int | None] = [None] * n
        self.records: list[dict | None] = [None] * n
        self.failed = 0
        self.spent = 0.0

    @cached_property
    def backend(self):
        """The backend, resolved once when first needed (a replay never starts one)."""
        return self.session.backend

    # -- what is left, and what it may cost -------------------------------------------

    def pending(self) -> list[int]:
        """Rows to send: not missing, not finished before, not answered in the response cache
        (those take their record now, with one query for all the rows)."""
        rows = [i for i, key in enumerate(self.keys) if key is not None]  # missing: never sent
        finished = self.cache.get_many([self.keys[i] for i in rows])
        pending = []
        for i in rows:
            record = finished.get(self.keys[i])
            if record is None:
                pending.append(i)
            else:
                self.records[i] = record
        if self.job.send is None and pending and self.session.responses.mode != "off":
            pending = self._answered(pending)
        return pending

    def _answered(self, pending: list[int]) -> list[int]:
        """Rows whose stored answer fits their columns take it (cached, $0); the rest are left.

        Looked up `LOOKUP_ROWS` at a time, each request built for its keys and dropped (and
        built again only to record a row served): a large job never holds all its requests.
        """
        responses = self.session.responses
        left = []
        for start in range(0, len(pending), LOOKUP_ROWS):
            rows = pending[start:start + LOOKUP_ROWS]
            entries = responses.lookup_keys([responses.keys_of(self.requests[i]) for i in rows])
            served = []
            for i, entry in zip(rows, entries, strict=True):
                record = None if entry is None else parsed(self.job.parse, stored_text(entry))
                if record is None or isinstance(record, Exception):
                    left.append(i)  # sent (or, replaying, looked up call by call with its re-asks)
                else:
                    self.records[i] = record
                    served.append((i, entry))
            responses.served_rows([(entry, self.requests[i]) for i, entry in served], self.job.kind)
            self.cache.put_many((self.keys[i], self.records[i]) for i, _ in served)
        return left

    def plan(self, pending: list[int], batch: bool) -> list:
        """Count the pending rows, show the estimate, and refuse (row by row) a job that
        cannot finish even at the least answer per row; returns the rows' estimates.

        A batch job's own worst case is reserved when it is submitted (`batchrun.run_job`).
        """
        cached = len(self.requests) - len(pending) - self.missing
        blank = self.missing - self.refused
        skipped = "; ".join(part for part in (
            f"{_rows(cached)} already done, from the cache" if cached else "",
            f"{_rows(blank)} with missing text not sent" if blank else "",
            f"{_rows(self.refused)} refused (see _error)" if self.refused else "",
        ) if part)
        if not pending:
            self.say(f"Nothing to send: {skipped}." if skipped
                     else "Nothing to send: the DataFrame has no rows.")
            return []
        if self.replaying:  # nothing is sent: nothing to count or estimate
            self.say(f"Replaying {_rows(len(pending))} from the response cache, nothing sent"
                     + (f" ({skipped})" if skipped else "")
                     + "; a row with no stored answer says so in _error.")
            return []
        self.backend  # noqa: B018  resolved now, so the offline notice comes before the plan
        estimates = [self.job.estimate(self.requests[i], batch=batch) for i in pending]
        for i, estimate in zip(pending, estimates, strict=True):
            self.prompt_tokens[i] = estimate.prompt_tokens
        packs = self.job.send is not None and self.job.rows_per_call > 1
        how = (" through the Batch API (half price)" if batch
               else f", up to {self.job.rows_per_call:,} a request," if packs else " row by row")
        self.say(
            f"{self.job.verb} {_rows(len(pending))}{how} with {self.model}"
            + (f" ({skipped})" if skipped else "")
            + f": {self._amount(estimates)} "
            f"({format_cost(_total(e.prompt_cost for e in estimates))}), "
            f"worst case {format_cost(_total(e.worst_cost for e in estimates))}.")
        if not batch:
            # Each row reserves and is capped as it goes; refuse up front only what cannot
            # finish even with the least useful answer for every row (a page costs what it costs).
            least = _total(
                e.worst_cost if self.job.priced_whole else
                self.session.prices.cost(self.model, prompt_bound(e.prompt_tokens, self.exact),
                                         min(MIN_ANSWER_TOKENS, e.max_completion_tokens))
                for e in estimates
            )
            self.session.budget.require(
                least, f"{self.job.verb.lower()} {len(pending):,} rows", model=self.model)
        return estimates

    def _amount(self, estimates: list) -> str:
        """What the pending rows send: prompt tokens, pages for a job priced per page, or what
        the job says (`RowJob.amount`)."""
        if self.job.per_use:
            return f"{len(estimates):,} × {self.job.per_use}"
        if not self.job.per_page:
            return self.job.amount(estimates) or \
                f"{format_tokens(sum(e.prompt_tokens for e in estimates))} prompt tokens"
        known = [e.pages for e in estimates if e.pages is not None]
        unknown = len(estimates) - len(known)
        pages = f"{sum(known):,} page{'' if sum(known) == 1 else 's'}"
        return pages + (f" and {_rows(unknown)} of unknown length" if unknown else "")

    # -- row by row -------------------------------------------------------------------

    def run(self):
        """Run every pending row concurrently on the background loop; returns the frame."""
        pending = self.pending()
        self.plan(pending, batch=False)
        if not pending:
            return self.frame()
        engine = self.engine
        # 5xx and connection errors: the SDK retries. 429s come back to us, so one
        # pause can hold every worker for the server's Retry-After.
        self.pacing = None if self.replaying else Pacing(
            RateLimiter(engine.requests_per_second, engine.tokens_per_minute),
            retry_config(engine.max_retries, status_codes=["500", "502", "503", "504"]),
            engine.max_retries,
        )
        units = self.units(pending)
        finished = threading.Event()
        done = [len(self.requests) - len(pending)]

        async def run_all():
            semaphore = asyncio.Semaphore(self.job.calls_at_once(engine.concurrency, units))

            async def unit(rows: list[int]):
                async with semaphore:
                    await self._unit(rows)
                done[0] += len(rows)

            try:
                await asyncio.gather(*(unit(rows) for rows in units))
            finally:
                finished.set()

        future = self.session.loop.submit(run_all())
        bar = self.bar(done[0])
        try:
            while not finished.wait(0.1):
                self.show(bar, done[0])
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
            self.show(bar, done[0])
            bar.close()
        if interrupted:
            self.stop()
        return self.frame()

    def units(self, pending: list[int]) -> list[list[int]]:
        """The calls' rows: one row per chat call; a packing job's rows greedily, in order, up
        to `rows_per_call` rows and `tokens_per_call` prompt tokens (a row past that goes alone)."""
        job = self.job
        size = job.rows_per_call if job.send is not None else 1
        limit = job.tokens_per_call if job.send is not None else None
        units: list[list[int]] = []
        unit: list[int] = []
        tokens = 0
        for i in pending:
            count = self.prompt_tokens[i] or 0
            if unit and (len(unit) >= size or (limit is not None and tokens + count > limit)):
                units.append(unit)
                unit, tokens = [], 0
            unit.append(i)
            tokens += count
        if unit:
            units.append(unit)
        return units

    async def _unit(self, rows: list[int]) -> None:
        """One call's rows (and a chat row's re-asks): records, or each row's `_error`."""
        ORIGIN.set(self.job.origin(rows))  # this task's own context: what its calls carry
        try:
            if self.job.send is None:
                records = [await self._chat_row(rows[0])]
            else:
                records = await self._call_rows(rows)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # one row's failure is that row's _error, never the run's
            message = user_message(exc, self.model)
            for i in rows:
                self.errors[i] = message
            self.failed += len(rows)
            return
        kept = []
        for i, record in zip(rows, records, strict=True):
            if isinstance(record, Exception):
                self.errors[i] = user_message(record, self.model)
                self.failed += 1
                continue
            self.records[i] = record
            kept.append(i)
        if kept:  # kept in the store in one transaction (each in the form `RowJob.stored` gives),
            # from the one store thread (`row_writer`): the loop reads other replies meanwhile
            await asyncio.get_running_loop().run_in_executor(row_writer(), self.cache.put_many, (
                (self.keys[i], self.job.stored(self.records[i], i)) for i in kept))

    async def _chat_row(self, i: int) -> dict:
        """A chat row through the call path; an answer that does not parse is re-asked."""
        request, tokens = self.requests[i], self.prompt_tokens[i]
        loop = Reasks(request, self.job.parse, self.session.settings.reasks)
        while request is not None:
            # Replaying, every call (a re-ask too) is answered from the cache or is the row's
            # ReplayMiss; otherwise the rows the cache could answer were served by `pending`.
            answer = self.session.responses.serve(request, kind=self.job.kind)
            if answer is not None:
                request = loop.after(answer.text)
                continue
            # Rows share the budget concurrently: each one without max_tokens is capped at
            # the estimate's DEFAULT_MAX_TOKENS, and waits while other rows hold what it needs.
            reservation = await self.session.reserve_async(
                request, exact=self.exact, prompt_tokens=tokens, default_cap=DEFAULT_MAX_TOKENS)
            answer = await self.session.call_async(
                request, backend=self.backend, reservation=reservation, kind=self.job.kind,
                stream=False, pacing=self.pacing)
            self._spend(answer)
            request, tokens = loop.after(answer.text), None
        return loop.value

    async def _call_rows(self, rows: list[int]) -> list:
        """One call of a job's own (`RowJob.send`), carrying `rows`; a record or error per row."""
        if self.replaying:  # nothing is sent: a row not finished before has no answer
            raise ReplayMiss("no stored result for this row, and MistralMagics.cache is 'replay', "
                             "which never sends; record it with %config MistralMagics.cache = 'on'")
        job = self.job
        request = job.pack([self.requests[i] for i in rows])
        estimate = job.estimate_call(request, [self.prompt_tokens[i] for i in rows])
        if job.priced_whole:
            reservation = await self.session.budget.reserve_total_async(
                estimate.worst_cost, f"{job.kind} of {_rows(len(rows))}", model=self.model,
                fix=job.hold_fix)
        elif job.per_use:  # unpriced uses were allowed (or refused) before the run
            reservation = await reserve_uses(self.session, job.per_use, len(rows), job.kind)
        else:
            reservation = await self.session.reserve_async(
                request, exact=self.exact, prompt_tokens=estimate.prompt_tokens,
                max_tokens=estimate.max_completion_tokens)
        call = Call(self.session, request, reservation, backend=self.backend.kind,
                    kind=job.kind, stream=False)
        job.expect(call, estimate)
        if job.per_use:
            call.expect_uses(job.per_use, len(rows))
        values: list = []

        async def send() -> None:
            reply = await job.send(self.backend.client, request, self.pacing.retries)
            call.take_usage(reply.prompt_tokens, reply.completion_tokens)
            job.took(call, reply)
            values[:] = reply.values

        self._spend(await run_async(call, send, self.pacing))
        if len(values) != len(rows):
            raise APIError(f"the server sent {len(values)} results for {_rows(len(rows))}")
        return job.parse_all(values, rows)

    def _spend(self, answer) -> None:
        """Count a call's cost, and end the row as its call ended (interrupted, failed)."""
        self.spent += answer.cost or 0.0
        if answer.status == "interrupted":
            raise asyncio.CancelledError
        if answer.status == "error":
            raise APIError(answer.error)

    # -- what the user sees -------------------------------------------------------------

    def say(self, text: str) -> None:
        if self.engine.notes:
            display(note(text), raw=True)

    def bar(self, done: int):
        from tqdm.auto import tqdm

        self._shown = None  # what the bar shows: drawn again only when it moves
        if hasattr(self.engine.progress, "part"):  # an operator's one bar over its steps
            return self.engine.progress.part(len(self.requests), done)
        return tqdm(total=len(self.requests), initial=done, desc=self.job.kind, unit="row",
                    disable=not self.engine.progress)

    def show(self, bar, done: int, postfix: str | None = None) -> None:
        """Move the bar to `done` rows, with failures and spend (or `postfix`), when they moved."""
        state = (done, self.failed, self.spent, postfix)
        if bar.disable or state == self._shown:
            return
        self._shown = state
        bar.n = done
        bar.set_postfix_str(postfix or f"failed {self.failed}, spent {format_cost(self.spent)}",
                            refresh=False)
        bar.refresh()

    def stop(self) -> None:
        """End an interrupted run as interrupted, in one line: done, left, and how to finish.

        The rows done are kept (the store, and the exception's `partial` frame)."""
        done = sum(r is not None for r in self.records)
        left = sum(e == INTERRUPTED for e in self.errors)
        raise Interrupted(
            f"{done:,} of {_rows(len(self.records))} done, {left:,} left; run the same call "
            "again to finish them (the rows done come from the cache, at $0)",
            partial=self.frame(),
        ) from None

    def frame(self):
        """The result so far, aligned to the input's index, with `_error`."""
        import pandas as pd

        index = self.job.df.index
        out = self.job.frame(self.records, index)
        out["_error"] = pd.Series(self.errors, index=index, dtype=object)
        return out


def _total(costs) -> float | None:
    """The sum of costs, or None when any is unknown."""
    costs = list(costs)
    return None if any(c is None for c in costs) else sum(costs)


def _rows(n: int) -> str:
    return f"{n:,} row{'' if n == 1 else 's'}"
