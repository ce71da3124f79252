"""Mistral's Batch API from a notebook: submit, follow, read results back, at any size.

    out = df.mistral.extract("{review}", schema="product, stars int", batch=True)

A job runs its requests at half the list price and outside the rate limits. With
``batch=True`` a row job (`batchrun.run_job`) goes like this:

- **Up.** Each row's request becomes one JSONL line ``{"custom_id": row, "body": ...}``,
  built when written to a temporary file and uploaded from there
  (``files.upload(purpose="batch")`` streams the file): 100,000 rows are never all in
  memory at once.
- **Split.** A table larger than one job may hold goes as several jobs: the Batch
  API takes at most `MAX_JOB_REQUESTS` (100,000) requests and a `MAX_JOB_BYTES` input
  file per job (Mistral's documented limits are 100,000 requests and 512 MB).
- **Reattach.** Each job is recorded in the folder's store (``.mistral_magic/``,
  ``store.jobs``) under a key made of its request lines, the backend and the model.
  The same call again, after an interrupt or a kernel restart, follows the job it
  started instead of paying for a new one; a job whose results were read back is
  done (its rows are in the resume cache), and the same lines again make a new job.
- **Budget.** The whole worst case of the jobs to submit is held before any is
  submitted; a job keeps its hold until its results are read back (a hold is the
  kernel's: it goes with the kernel). A reattached job's cost was held by the kernel
  that submitted it: it is never held twice, and is recorded when read back.
- **Follow.** One progress bar for all the jobs: rows done, failed, cost. The
  kernel's interrupt stops following; the jobs keep running and the same call
  reattaches.
- **Down.** Results are read line by line as they download, mapped back by
  ``custom_id`` and aligned to the DataFrame's index; a failed line is that row's
  ``_error``, and each line is a ledger row at the batch price.

`%mistral batch list` shows the account's jobs (``started_here`` marks the ones this
folder's store recorded), `%mistral batch status ID` one job, `%mistral batch cancel ID`
stops one (its finished lines are still read back by the same call).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO

TERMINAL = {"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"}
POLL_START_S = 0.25
POLL_MAX_S = 10.0

#: Requests one job may hold. Mistral documents at most 100,000 requests per batch
#: (docs.mistral.ai, "Known limitations"); a larger table goes as several jobs.
MAX_JOB_REQUESTS = 100_000
#: Bytes of one job's input file: Mistral takes files up to 512 MB. 500,000,000 stays
#: under that whether MB means 10^6 or 2^20 bytes, with room for the upload's form.
MAX_JOB_BYTES = 500_000_000
CHAT = "/v1/chat/completions"


@dataclass
class LineResult:
    """One request's outcome in a batch: its value (what the row job parses) and usage, or an error."""

    custom_id: str
    value: Any = None
    prompt_tokens: int | None = 0  # None: the line reports no usage (moderation, classification)
    completion_tokens: int = 0
    error: str | None = None
    pages: int | None = None  # an OCR line's pages read (its ``usage_info``)


def encode_line(custom_id: str, body: dict) -> bytes:
    """One JSONL line: keys sorted, so the same request always gives the same bytes."""
    return json.dumps({"custom_id": custom_id, "body": body}, ensure_ascii=False,
                      sort_keys=True, separators=(",", ":"), default=str).encode() + b"\n"


def upload(client, file: BinaryIO, name: str = "mistral_magic_batch.jsonl") -> str:
    """Upload an open JSONL file (streamed from disk by the SDK's HTTP client); its file id."""
    file.seek(0)
    return client.files.upload(file={"file_name": name, "content": file}, purpose="batch").id


def create(client, model: str, file_id: str, endpoint: str = CHAT,
           metadata: dict | None = None):
    """Create a job over an uploaded file; returns the job."""
    return client.batch.jobs.create(input_files=[file_id], model=model, endpoint=endpoint,
                                    metadata=metadata or {"source": "mistral_magic"})


def submit(client, model: str, requests: Iterable[dict], metadata: dict | None = None,
           endpoint: str = CHAT) -> str:
    """Write `{"custom_id", "body"}` requests to a file, upload it and create the job; its id."""
    with tempfile.TemporaryFile() as file:
        for request in requests:
            file.write(encode_line(str(request["custom_id"]), request["body"]))
        return create(client, model, upload(client, file), endpoint, metadata).id


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


def read_lines(client, file_id: str | None) -> Iterator[dict]:
    """A result file's JSON lines, parsed as they download (never the whole file at once)."""
    if not file_id:
        return
    response = client.files.download(file_id=file_id)
    try:
        for line in response.iter_lines():
            if line.strip():
                yield json.loads(line)
    finally:
        response.close()


def results(client, job) -> Iterator[dict]:
    """Every line of a finished job: its output file, then its error file."""
    yield from read_lines(client, job.output_file)
    yield from read_lines(client, job.error_file)


def outcome(line: dict, reply: Callable[[dict], Any]) -> LineResult:
    """What one result line says: `reply(body)` (a `rows.Reply`) read from a good one, or why it failed."""
    custom_id = str(line.get("custom_id"))
    response = line.get("response") or {}
    body = response.get("body") or {}
    status = response.get("status_code")
    error = line.get("error")
    if error or (status is not None and status >= 400):
        message = error or (body.get("message") if isinstance(body, dict) else None) or body
        if isinstance(message, dict):
            message = message.get("message") or json.dumps(message)
        return LineResult(custom_id, error=f"batch line failed ({status}): {message}")
    try:
        answer = reply(body)
    except (KeyError, IndexError, TypeError, AttributeError) as exc:
        return LineResult(custom_id, error=f"batch line has no answer the job can read "
                                           f"({type(exc).__name__}: {exc})")
    return LineResult(custom_id, answer.values[0], answer.prompt_tokens,
                      answer.completion_tokens or 0, pages=answer.pages)


# -- the jobs this folder started ----------------------------------------------------------


def job_store(session):
    """The store that records this folder's batch jobs: the session's, at
    ``MistralMagics.cache_path`` (default ``.mistral_magic/`` in the working directory)."""
    return session.responses.store


class Jobs:
    """The store's batch jobs as a run uses them: a store that fails is said once, then skipped."""

    def __init__(self, session):
        from ..store import StoreError

        self.session = session
        self.table = None
        try:
            self.table = job_store(session).jobs
        except StoreError as exc:
            self._failed(exc)

    def _do(self, action, default=None):
        from ..store import StoreError

        if self.table is None:
            return default
        try:
            return action(self.table)
        except StoreError as exc:  # unreadable, read-only, locked: said once, the run goes on
            self._failed(exc)
            return default

    def _failed(self, exc: Exception) -> None:
        self.session.notice("batch-store", f"mistral_magic: batch jobs are not recorded ({exc}); "
                                           "the same call after a restart submits them again.")

    def get(self, key: str):
        return self._do(lambda t: t.get(key))

    def put(self, key: str, job_id: str, **columns) -> None:
        self._do(lambda t: t.put(key, job_id, **columns))

    def set_status(self, job_id: str, status: str) -> None:
        self._do(lambda t: t.set_status(job_id, status))

    def mark_read(self, job_ids: list[str]) -> None:
        self._do(lambda t: t.mark_read(job_ids))

    def ids(self) -> set[str]:
        return {j.job_id for j in self._do(lambda t: t.list(), [])}


# -- the commands ------------------------------------------------------------------------


def jobs_frame(client, started_here: Iterable[str] = ()):
    """`%mistral batch list`: the account's jobs, newest first, times as UTC datetimes;
    ``started_here`` marks the jobs `started_here` names (those this folder recorded)."""
    import pandas as pd

    ours = set(started_here)
    listing = client.batch.jobs.list()
    rows = [dict(_job_row(job), started_here=job.id in ours) for job in listing.data or []]
    # counts last: a narrow terminal shows the first and the last columns
    columns = ["id", "started_here", "status", "model", "created_at", "total", "succeeded", "failed"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["started_here"] = frame["started_here"].astype(bool)
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
