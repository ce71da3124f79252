"""A row job through Mistral's Batch API: what ``RowEngine.run(job, batch=True)`` does.

`run_job(run)` takes an `engine.RowRun`'s pending rows through five steps (the
`batch` module's doc tells the story a user sees):

1. `_write_parts`: each row's line is built and written to a temporary file, a new
   part (one job) starting where a job's limit (`batch.MAX_JOB_REQUESTS`,
   `batch.MAX_JOB_BYTES`) would be passed. A part's key hashes the backend, model,
   endpoint and its lines as sent without a budget, so the key does not depend on one.
2. `_attach`: a part whose key the folder's store knows, for a job not read back yet
   and still on the backend, follows that job (its file is dropped unsent).
3. `_submit`: the other parts' worst cases are held (all, or nothing is submitted),
   then each is uploaded, created and recorded in the store at once.
4. `_follow`: one bar over every job until all have ended; an interrupt leaves them
   running, recorded, and held.
5. `_read_back`: every job's lines are read as they download into the rows, then the
   ledger, the holds, the resume cache and the store are updated together, with the
   kernel's interrupt held back: the same call never meets half-applied results.

The folder's store is reached through `batch.Jobs` (and `batch.job_store`, the one
place that knows where it lives).
"""

from __future__ import annotations

import hashlib
import json
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from IPython.display import display

from ..calls.sent import origin, record_upload
from ..errors import APIError, Interrupted, is_api_error, user_message
from ..money.usage import format_cost, format_tokens
from ..show.render import note
from . import batch
from .batch import Jobs

#: Endpoints whose lines take ``max_tokens`` (a budget caps each line's answer).
CAPPED = ("/v1/chat/completions", "/v1/fim/completions")
#: Bytes a budget's ``"max_tokens":N`` may add to a line: parts split with room for it.
CAP_ROOM = 32


@dataclass
class Part:
    """One job's share of the pending rows, ``pending[start:stop]``."""

    start: int
    digest: Any
    file: BinaryIO | None = field(default_factory=tempfile.TemporaryFile)
    stop: int = 0
    size: int = 0
    worst: float | None = 0.0  # its lines' worst case at the batch price (None: unknown)
    answer: int = 0  # the largest answer a line may write
    key: str = ""
    job_id: str | None = None
    job: Any = None
    hold: Any = None
    records: list = field(default_factory=list)

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def full(self, line: int) -> bool:
        return self.rows > 0 and (self.rows >= batch.MAX_JOB_REQUESTS
                                  or self.size + line + CAP_ROOM > batch.MAX_JOB_BYTES)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    @property
    def status(self) -> str:
        return str(self.job.status) if self.job is not None else "NOT SUBMITTED"

    @property
    def ended(self) -> bool:
        return self.status in batch.TERMINAL


def run_job(run):
    """Send a row run's pending rows as batch jobs (or follow the ones already sent for
    them), then map the results back by custom_id; returns the run's frame."""
    parts: list[Part] = []
    bar, doing = None, "submitting"
    try:
        pending = run.pending()
        estimates = run.plan(pending, batch=True)  # counting 100,000 prompts takes a while
        if not pending:
            return run.frame()
        jobs = Jobs(run.session)
        parts = _write_parts(run, pending, estimates)
        del estimates  # what the parts need of them is summed in each part
        try:
            _submit(run, parts, _attach(run, parts, jobs), jobs, pending)
        finally:
            for part in parts:
                part.close()
        doing = "following"
        bar = _follow(run, pending, parts, jobs)
        _read_back(run, pending, parts, jobs, bar)
    except KeyboardInterrupt:
        # Wherever it lands, a job sent stays recorded and held: say so, and how to go on.
        if bar is not None:
            bar.close()
        sent = [part for part in parts if part.job_id is not None]
        if not sent:
            raise Interrupted("Stopped before any batch job was submitted; nothing was sent") from None
        raise _stopped(run, sent, doing) from None
    except Exception as exc:
        if run.session.settings.debug or not is_api_error(exc):
            raise
        raise APIError(user_message(exc, run.model), getattr(exc, "status_code", None)) from exc
    return run.frame()


# -- 1. lines into parts --------------------------------------------------------------------


def _write_parts(run, pending: list[int], estimates: list) -> list[Part]:
    from ..calls.estimates import prompt_bound

    endpoint = run.job.batch_endpoint
    capped = run.session.budget.limit_usd is not None and endpoint in CAPPED
    head = json.dumps([run.backend.url, run.model, endpoint]).encode() + b"\n"
    prices = run.session.prices
    parts: list[Part] = []
    try:
        for k, (i, estimate) in enumerate(zip(pending, estimates, strict=True)):
            body = run.job.batch_body(run.requests[i])
            keyed = batch.encode_line(str(i), body)
            sent = run.job.batch_sent(body)
            if capped:  # sent capped, keyed as it would be sent without a budget
                sent = {**sent, "max_tokens": estimate.max_completion_tokens}
            line = keyed if sent is body else batch.encode_line(str(i), sent)
            if not parts or parts[-1].full(len(line)):
                parts.append(Part(start=k, stop=k, digest=hashlib.sha256(head)))
            part = parts[-1]
            part.digest.update(keyed)
            part.file.write(line)
            part.size += len(line)
            part.stop += 1
            cost = estimate.worst_cost if run.job.per_page else prices.cost(  # pages: their price
                run.model, prompt_bound(estimate.prompt_tokens, run.exact),
                estimate.max_completion_tokens, batch=True)
            part.worst = None if cost is None or part.worst is None else part.worst + cost
            part.answer = max(part.answer, estimate.max_completion_tokens)
    except BaseException:
        for part in parts:
            part.close()
        raise
    for part in parts:
        part.key = part.digest.hexdigest()
    return parts


# -- 2. jobs already sent for these lines ------------------------------------------------------


def _attach(run, parts: list[Part], jobs: Jobs) -> list[Part]:
    """Follow the jobs the store has for these parts; returns the parts still to submit."""
    client = run.backend.client
    fresh, found = [], []
    for part in parts:
        stored = jobs.get(part.key)
        if stored is None or stored.read is not None:
            fresh.append(part)
            continue
        try:
            part.job = client.batch.jobs.get(job_id=stored.job_id)
        except Exception as exc:
            if getattr(exc, "status_code", None) != 404:
                raise
            fresh.append(part)  # gone from the backend (another server, or deleted): send again
            continue
        part.job_id = stored.job_id
        part.close()
        found.append(part)
    if found:
        held = "" if all(p.job_id in run.session.batch_holds for p in found) else (
            "; its cost was held when it was submitted, and is recorded as it is read")
        ids = ", ".join(f"{p.job_id} ({p.status})" for p in found)
        display(note(f"Reattached to {_jobs(len(found))} sent earlier for these rows: {ids}. "
                     f"Nothing is sent again{held}."), raw=True)
    return fresh


# -- 3. submitting the rest --------------------------------------------------------------------


def _submit(run, parts: list[Part], fresh: list[Part], jobs: Jobs, pending: list[int]) -> None:
    """Hold every fresh part's worst case (or refuse them all), then submit and record each."""
    if not fresh:
        return
    _reserve(run, fresh)
    client, endpoint = run.backend.client, run.job.batch_endpoint
    try:
        for part in fresh:
            file_id = batch.upload(client, part.file)
            with origin(run.job.origin(pending[part.start:part.stop]).frames):
                record_upload(run.session, kind="batch", model=run.model, size=part.size)
            with _interrupt_held() as interrupted:
                # Created and recorded as one step: a job is never running unrecorded.
                part.job = batch.create(client, run.model, file_id, endpoint)
                part.job_id = part.job.id
                run.session.batch_holds[part.job_id] = part.hold
                jobs.put(part.key, part.job_id, backend=run.backend.url, model=run.model,
                         rows=part.rows, status=part.status)
            part.close()
            if interrupted:
                raise KeyboardInterrupt
    except BaseException:
        for part in fresh:
            if part.job_id is None:  # never submitted: its hold goes back
                part.hold.release()
        raise
    split = (f" (the Batch API takes at most {batch.MAX_JOB_REQUESTS:,} requests per job)"
             if len(parts) > 1 else "")
    display(note(f"Submitted {_jobs(len(fresh))}{split}: {', '.join(p.job_id for p in fresh)}."),
            raw=True)


def _reserve(run, fresh: list[Part]) -> None:
    """Each part's worst case held at the batch price, refused as a whole when they do not fit."""
    budget = run.session.budget
    rows = sum(p.rows for p in fresh)
    worst = None if any(p.worst is None for p in fresh) else sum(p.worst for p in fresh)
    answer = max(p.answer for p in fresh)
    what = (f"{'a batch job' if len(fresh) == 1 else _jobs(len(fresh))} of {rows:,} rows"
            + ("" if run.job.per_page else f" (up to {format_tokens(answer)} answer tokens each)"))
    # The whole first, so a refusal names what the call needs; then one hold per job, so
    # a job that could not be submitted gives its hold back alone.
    budget.reserve_total(worst, what, model=run.model, running=False).release()
    try:
        for part in fresh:
            part.hold = budget.reserve_total(part.worst, what, model=run.model, running=False)
    except BaseException:
        for part in fresh:
            if part.hold is not None:
                part.hold.release()
        raise


# -- 4. following -------------------------------------------------------------------------------


def _follow(run, pending: list[int], parts: list[Part], jobs: Jobs):
    """Poll every job until all have ended, with one bar (returned open): rows done,
    failed, cost at most."""
    client = run.backend.client
    start = len(run.requests) - len(pending)
    worst = None if any(p.worst is None for p in parts) else sum(p.worst for p in parts)
    bar = run.bar(start)
    interval = batch.POLL_START_S
    last = (time.monotonic(), 0)
    try:
        while True:
            for part in parts:
                if not part.ended:
                    before = part.status
                    part.job = client.batch.jobs.get(job_id=part.job_id)
                    if part.status != before:
                        jobs.set_status(part.job_id, part.status)
            run.failed = sum(p.job.failed_requests or 0 for p in parts)
            done = sum(p.job.completed_requests or 0 for p in parts)
            running = sum(not p.ended for p in parts)
            state = (f"{running} of {_jobs(len(parts))} running" if running
                     else f"{_jobs(len(parts))} ended")
            run.show(bar, start + done,
                     f"{state}, failed {run.failed}, cost at most {format_cost(worst)}")
            if not running:
                return bar
            time.sleep(_pause(interval, last, done, sum(p.rows for p in parts)))
            last = (time.monotonic(), done)
            interval = min(batch.POLL_MAX_S, interval * 1.5)
    except BaseException:
        bar.close()
        raise


def _pause(interval: float, last: tuple[float, int], done: int, total: int) -> float:
    """The backed-off interval, but no longer than the jobs' pace says they need to finish."""
    seconds, before = last
    pace = (done - before) / max(time.monotonic() - seconds, 1e-3)
    if pace <= 0:
        return interval
    return max(batch.POLL_START_S, min(interval, (total - done) / pace))


def _stopped(run, parts: list[Part], doing: str) -> Interrupted:
    one = len(parts) == 1
    held = [p for p in parts if p.job_id in run.session.batch_holds]
    hold = (f" (this kernel holds {'its' if one else 'their'} worst case against the budget until "
            "then, or until it ends)" if held and run.session.budget.limit_usd is not None else "")
    return Interrupted(
        f"Stopped {doing} {_jobs(len(parts))} ({', '.join(p.job_id for p in parts)}); "
        f"{'it keeps' if one else 'they keep'} running. Run the same call again, even after a "
        f"kernel restart, to reattach and read the results without paying twice{hold}, or "
        f"cancel with %mistral batch cancel {parts[0].job_id}"
    )


# -- 5. reading back ------------------------------------------------------------------------------


def _read_back(run, pending: list[int], parts: list[Part], jobs: Jobs, bar) -> None:
    """Read every job's lines into the rows, then record them all at once."""
    try:
        for part in parts:
            _read_part(run, pending, part)
    except KeyboardInterrupt:
        bar.close()
        raise Interrupted(
            f"Stopped reading the results of {_jobs(len(parts))}; nothing was recorded. Run the "
            "same call again to read them (nothing is sent or paid again)") from None
    except BaseException:
        bar.close()
        raise
    with _interrupt_held():
        session = run.session
        for part in parts:
            hold = session.batch_holds.pop(part.job_id, None)
            if hold is not None:
                hold.settle(*part.records)
            else:  # submitted by another kernel (or before a budget): recorded all the same
                for record in part.records:
                    session.ledger.record(record)
            part.records = []
        for i in pending:
            if run.errors[i] is None and run.records[i] is not None:
                session.cache.put(run.keys[i], run.records[i])
        jobs.mark_read([p.job_id for p in parts])
    run.show(bar, len(run.requests) - len(pending) + sum(p.rows for p in parts),
             f"failed {run.failed}, spent {format_cost(run.spent)}")
    bar.close()


def _read_part(run, pending: list[int], part: Part) -> None:
    """One job's lines, as they download, into its rows (records or `_error`) and ledger rows."""
    rows = set(pending[part.start:part.stop])
    seen = set()
    for line in batch.results(run.backend.client, part.job):
        outcome = batch.outcome(line, run.job.batch_reply)
        i = _row(outcome.custom_id)
        if i not in rows or i in seen:  # not a line of ours: ignored
            continue
        seen.add(i)
        part.records.append(_record(run, outcome, run.prompt_tokens[i]))
        error = outcome.error
        if error is None:
            try:
                run.records[i] = run.job.parse(outcome.value)
            except Exception as exc:  # the answer does not fit: that row's _error
                error = user_message(exc, run.model)
        run.errors[i] = error
    for i in rows - seen:
        run.errors[i] = f"no result for this row: batch job {part.job_id} ended {part.status}"
    run.failed = sum(run.errors[i] is not None for i in pending)


def _row(custom_id: str) -> int | None:
    return int(custom_id) if custom_id.isdigit() else None


def _record(run, outcome: batch.LineResult, counted: int | None = None):
    """The ledger row of one batch line (at the batch price); `counted` stands for the prompt
    tokens of a line that reports none (the spec's moderation and classification bodies)."""
    from ..money.usage import CallRecord

    ok = outcome.error is None
    prompt = outcome.prompt_tokens if outcome.prompt_tokens is not None else (counted or 0)
    prompt, completion = (prompt, outcome.completion_tokens) if ok else (0, 0)
    pages = None
    if run.job.per_page:  # OCR lines are priced by the pages they read
        pages = (outcome.pages or 0) if ok else 0
        cost = run.session.prices.page_cost(run.model, pages, batch=True,
                                            annotated=run.job.annotated)
    else:
        cost = run.session.prices.cost(run.model, prompt, completion, batch=True)
    run.spent += cost or 0.0
    return CallRecord(
        model=run.model, kind="batch", chat=None, prompt_tokens=prompt,
        completion_tokens=completion, cost=cost, status="ok" if ok else "error",
        backend=run.backend.kind, batch=True, error=outcome.error, pages=pages,
    )


@contextmanager
def _interrupt_held():
    """Hold back the kernel's interrupt until the block is done; the list says if one came."""
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield caught
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)


def _jobs(n: int) -> str:
    return f"{n} batch job{'' if n == 1 else 's'}"
