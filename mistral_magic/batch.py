"""Mistral's Batch API from a notebook: submit, follow with progress, read results back.

Requests go up as one JSONL file (`files.upload(purpose="batch")`), a job runs them
at half the list price, and its output file comes back mapped by `custom_id`. A job
is remembered by the requests it was made for, so re-running the same extraction
after an interrupt follows the same job instead of paying for a second one.
`%mistral batch list|status ID|cancel ID` are the commands.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

TERMINAL = {"SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED"}
POLL_START_S = 0.25
POLL_MAX_S = 10.0


@dataclass
class LineResult:
    """One request's outcome in a batch: the answer text and usage, or an error."""

    custom_id: str
    content: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None


def requests_key(backend_url: str | None, model: str, requests: list[dict]) -> str:
    payload = json.dumps([backend_url, model, requests], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()


def to_jsonl(requests: list[dict]) -> bytes:
    """One `{"custom_id", "body"}` line per request (the model is set on the job)."""
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in requests).encode()


def submit(client, model: str, requests: list[dict], metadata: dict | None = None) -> str:
    """Upload the requests and create the job; returns its id."""
    uploaded = client.files.upload(
        file={"file_name": "mistral_magic_batch.jsonl", "content": to_jsonl(requests)},
        purpose="batch",
    )
    job = client.batch.jobs.create(
        input_files=[uploaded.id], model=model, endpoint="/v1/chat/completions",
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


def results(client, job) -> dict[str, LineResult]:
    """The job's output and error files, by custom_id."""
    out: dict[str, LineResult] = {}
    for line in _read_file(client, job.output_file) + _read_file(client, job.error_file):
        custom_id = str(line.get("custom_id"))
        response = line.get("response") or {}
        body = response.get("body") or {}
        status = response.get("status_code")
        error = line.get("error")
        if error or (status is not None and status >= 400) or not body.get("choices"):
            message = error or body.get("message") or body
            if isinstance(message, dict):
                message = message.get("message") or json.dumps(message)
            out[custom_id] = LineResult(custom_id, error=f"batch line failed ({status}): {message}")
            continue
        usage = body.get("usage") or {}
        content = body["choices"][0]["message"].get("content")
        if isinstance(content, list):
            content = "".join(c.get("text", "") for c in content if c.get("type") == "text")
        out[custom_id] = LineResult(
            custom_id, content=content or "", prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
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
