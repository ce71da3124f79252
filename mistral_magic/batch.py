"""Mistral's Batch API from a notebook: submit, follow with progress, read results back.

Requests go up as one JSONL file (`files.upload(purpose="batch")`), a job runs them
at half the list price, and its output file comes back mapped by `custom_id`. A job
is remembered by the requests it was made for, so re-running the same extraction
after an interrupt follows the same job instead of paying for a second one.
`run_job` is a row job's ``batch=True`` (the row engine's rows, cache and bar);
`%mistral batch list|status ID|cancel ID` are the commands.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .errors import StructuredOutputError

TERMINAL = {"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"}
POLL_START_S = 0.25
POLL_MAX_S = 10.0


@dataclass
class LineResult:
    """One request's outcome in a batch: the answer text and usage, or an error."""

    custom_id: str
    content: Any = None  # a chat answer's text, or the value a job's `batch_value` read
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    pages: int | None = None  # an OCR line's pages read (its ``usage_info``)


def requests_key(backend_url: str | None, model: str, requests: list[dict]) -> str:
    payload = json.dumps([backend_url, model, requests], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def to_jsonl(requests: list[dict]) -> bytes:
    """One `{"custom_id", "body"}` line per request (the model is set on the job)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests).encode()


def submit(client, model: str, requests: list[dict], metadata: dict | None = None,
           endpoint: str = "/v1/chat/completions") -> str:
    """Upload the requests and create the job; returns its id."""
    uploaded = client.files.upload(
        file={"file_name": "mistral_magic_batch.jsonl", "content": to_jsonl(requests)},
        purpose="batch",
    )
    job = client.batch.jobs.create(
        input_files=[uploaded.id], model=model, endpoint=endpoint,
        metadata=metadata or {"source": "mistral_magic"},
    )
    return job.id


def wait(client, job_id: str, progress=None, sleep=time.sleep):
    """Poll the job until it ends, backing off; `progress(job)` sees every state."""
    interval = POLL_START_S
    while True:
        job = client.batch.jobs.get(job_id=job_id)
        if progress is not None:
            progress(job)
        if str(job.status) in TERMINAL:
            return job
        sleep(interval)
        interval = min(POLL_MAX_S, interval * 1.5)


def _read_file(client, file_id: str | None) -> list[dict]:
    if not file_id:
        return []
    response = client.files.download(file_id=file_id)
    lines = response.read().decode("utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def chat_text(body: dict) -> str:
    """A chat (or FIM) completion's text, from one result line's body."""
    content = body["choices"][0]["message"].get("content")
    if isinstance(content, list):
        content = "".join(c.get("text", "") for c in content if c.get("type") == "text")
    return content or ""


def results(client, job, read=None) -> dict[str, LineResult]:
    """The job's output and error files, by custom_id; `read(body)` takes one line's value
    out of its response body (default: a chat completion's text)."""
    read = read or chat_text
    out: dict[str, LineResult] = {}
    for line in _read_file(client, job.output_file) + _read_file(client, job.error_file):
        custom_id = str(line.get("custom_id"))
        response = line.get("response") or {}
        body = response.get("body") or {}
        status = response.get("status_code")
        error = line.get("error")
        content = None
        if not error and (status is None or status < 400):
            try:
                content = read(body)
            except (KeyError, IndexError, TypeError):
                content = None
        if content is None:
            message = error or body.get("message") or body
            if isinstance(message, dict):
                message = message.get("message") or json.dumps(message)
            out[custom_id] = LineResult(custom_id, error=f"batch line failed ({status}): {message}")
            continue
        usage = body.get("usage") or {}
        out[custom_id] = LineResult(
            custom_id, content=content, prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            pages=(body.get("usage_info") or {}).get("pages_processed"),
        )
    return out


def jobs_frame(client):
    """`%mistral batch list`: the account's jobs, newest first, times as UTC datetimes."""
    import pandas as pd

    listing = client.batch.jobs.list()
    rows = [_job_row(job) for job in listing.data or []]
    # counts last: a narrow terminal shows the first and the last columns
    columns = ["id", "status", "model", "created_at", "total", "succeeded", "failed"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True).astype("datetime64[ns, UTC]")
    return frame


def _when(seconds: int | None) -> datetime | None:
    """The API's Unix seconds as an aware UTC datetime."""
    return None if seconds is None else datetime.fromtimestamp(seconds, timezone.utc)


def _job_row(job) -> dict[str, Any]:
    return {
        "id": job.id,
        "status": str(job.status),
        "model": job.model,
        "total": job.total_requests,
        "succeeded": job.succeeded_requests,
        "failed": job.failed_requests,
        "created_at": _when(job.created_at),
    }


def status(client, job_id: str) -> dict[str, Any]:
    """`%mistral batch status ID`: counts, times (UTC datetimes) and result files."""
    job = client.batch.jobs.get(job_id=job_id)
    row = _job_row(job)
    row["started_at"] = _when(job.started_at)
    row["completed_at"] = _when(job.completed_at)
    row["output_file"] = job.output_file
    row["error_file"] = job.error_file
    return row


def cancel(client, job_id: str) -> str:
    """`%mistral batch cancel ID`; returns the job's new status."""
    return str(client.batch.jobs.cancel(job_id=job_id).status)


# -- a row job through the Batch API ----------------------------------------------------


def run_job(run):
    """Send a row run's pending rows as one batch job, follow it, map results back by
    custom_id; returns the run's frame. `run` is an `engine.RowRun`."""
    pending = run.pending()
    estimates = run.plan(pending, batch=True)
    if not pending:
        return run.frame()
    session, client = run.session, run.backend.client
    lines = [{"custom_id": str(i), "body": {k: v for k, v in run.requests[i].items() if k != "model"}}
             for i in pending]
    # Keyed before the budget's caps, so a resumed job is found whatever the budget.
    key = requests_key(run.backend.url, run.model, lines)
    job_id = session.batch_jobs.get(key)
    if job_id is None:
        hold = _reserve(run, lines, estimates)
        try:
            job_id = submit(client, run.model, run.job.batch_lines(lines),
                            endpoint=run.job.batch_endpoint)
        except BaseException:
            hold.release()
            raise
        session.batch_jobs[key] = job_id
        session.batch_holds[job_id] = hold
    start = len(run.requests) - len(pending)
    bar = run.bar(start)

    def follow(job):
        run.failed = job.failed_requests or 0
        run.show(bar, start + (job.completed_requests or 0),
                 f"job {job.id} {job.status}, failed {run.failed}")

    try:
        job = wait(client, job_id, follow)
    except KeyboardInterrupt:
        bar.close()
        from .errors import Interrupted

        raise Interrupted(
            f"Stopped following batch job {job_id}; it keeps running. Run the same call "
            f"again to resume, or %mistral batch cancel {job_id}"
        ) from None
    bar.close()
    _read_back(run, pending, job, results(client, job, run.job.batch_value))
    return run.frame()


def _read_back(run, pending: list[int], job, outcomes: dict[str, LineResult]) -> None:
    """Record the job's lines in the ledger (then give back its hold) and fill the rows."""
    session = run.session
    records = [_record(run, o) for o in (outcomes.get(str(i)) for i in pending) if o is not None]
    hold = session.batch_holds.pop(job.id, None)
    if hold is not None:
        hold.settle(*records)
    else:  # a job submitted without a hold (before a budget was set) is recorded all the same
        for record in records:
            session.ledger.record(record)
    run.failed = 0
    for i in pending:
        outcome = outcomes.get(str(i))
        error = None
        if outcome is None:
            error = f"no result for this row: batch job {job.id} ended {job.status}"
        elif outcome.error is not None:
            error = outcome.error
        else:
            try:
                run.records[i] = run.job.parse(outcome.content)
            except StructuredOutputError as exc:
                error = str(exc)
        if error is not None:
            run.errors[i] = error
            run.failed += 1
        else:
            session.cache.put(run.keys[i], run.records[i])


def _record(run, outcome: LineResult):
    """The ledger row of one batch line (at the batch price)."""
    from .usage import CallRecord

    ok = outcome.error is None
    prompt, completion = (outcome.prompt_tokens, outcome.completion_tokens) if ok else (0, 0)
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


def _reserve(run, lines: list[dict], estimates: list):
    """Cap every line (with a budget: its max_tokens, or DEFAULT_MAX_TOKENS) and hold the
    job's whole worst case at the batch price before it is submitted."""
    from .estimates import prompt_bound
    from .usage import format_tokens

    budget = run.session.budget
    if budget.limit_usd is not None and run.job.send is None:  # other endpoints write no answer
        for line, estimate in zip(lines, estimates, strict=True):
            line["body"] = {**line["body"], "max_tokens": estimate.max_completion_tokens}
    prices = run.session.prices
    costs = [
        e.worst_cost if run.job.per_page else  # pages cost what they cost
        prices.cost(run.model, prompt_bound(e.prompt_tokens, run.exact), e.max_completion_tokens,
                    batch=True)
        for e in estimates
    ]
    worst = None if any(c is None for c in costs) else sum(costs)
    answer = max(e.max_completion_tokens for e in estimates)
    what = f"a batch job of {len(lines):,} rows" + (
        "" if run.job.per_page else f" (up to {format_tokens(answer)} answer tokens each)")
    return budget.reserve_total(worst, what, model=run.model, running=False)
