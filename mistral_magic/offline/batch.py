"""Batch jobs: run in the background on the server's loop, progress visible while polling.

A job waits QUEUED for a moment, runs its requests over about 0.3-2 s (so a poller
sees the counters move; a big job takes as long as its answers take), then writes
one JSON line per request:
`{"id", "custom_id", "response": {"status_code", "body"}, "error": null}`.
Lines with status 200 go to `output_file`; failed lines (invalid bodies, or the
`batch_line_error_rate` fault, which answers 500 with the API's error object) go
to `error_file`, same shape; each is written when the job has such lines, from
input files or inline `requests` alike. `GET /v1/batch/jobs/{id}?inline=true` also
returns every line in `outputs`. `DELETE /v1/batch/jobs/{id}` stops the job if it
runs and forgets it.

Jobs scale to the hosted API's limits (100,000 requests, a 512 MB input file): the
input is checked when the job is created and read again a line at a time while it
runs, answers are computed in the thread pool a step at a time (so a big job never
stalls the server) and written straight to the result files, and the job keeps
only its counters and a byte per line in memory.

Jobs run every endpoint of the spec's `ApiEndpoint` that the server serves: chat,
FIM, embeddings, moderations (text and chat), classifications (text and chat) and
OCR (whose documents may name files uploaded here); conversations and audio
transcriptions are refused when the job is created.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ..money import tokens
from . import endpoints, limits
from .faults import FaultPlan, FaultState
from .files import FileStore
from .wire import BatchCreate, RequestError, error_body

QUEUED_S = 0.15
STEP_S = 0.05
TARGET_S = (0.3, 2.0)
FINAL = ("SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED")
GOOD, BAD = 0, 1  # where each answered line went, in order: the output or the error file


@dataclass
class Prepared:
    """A checked job: its request, where its lines come from, how many, and the bad ones."""

    req: BatchCreate
    inputs: list[tuple[str, BinaryIO]]  # (file id, the file opened for reading)
    count: int
    errors: list[dict]

    def lines(self) -> Iterator[dict]:
        """Every valid line, read a line at a time from the input files, then the inline requests."""
        for _, handle in self.inputs:
            handle.seek(0)
            for raw in handle:
                item, _ = _parse_line(raw, checked=True)
                if item is not None:
                    yield item
        for item in self.req.requests or []:
            yield {"custom_id": item.custom_id, "body": item.body}

    def close(self) -> None:
        for _, handle in self.inputs:
            handle.close()


@dataclass
class _Results:
    """A running job's two result files, written as its lines are answered."""

    files: FileStore
    good: BinaryIO | None = None
    bad: BinaryIO | None = None
    order: bytearray = field(default_factory=bytearray)

    def write(self, line: dict) -> None:
        ok = line["response"]["status_code"] == 200
        if ok and self.good is None:
            self.good = self.files.new_file()
        elif not ok and self.bad is None:
            self.bad = self.files.new_file()
        (self.good if ok else self.bad).write(json.dumps(line, ensure_ascii=False).encode() + b"\n")
        self.order.append(GOOD if ok else BAD)

    def close(self) -> None:
        from .files import _unlink

        for handle in (self.good, self.bad):
            if handle is not None:
                handle.close()
                _unlink(handle.name)  # gone already when it was stored


class BatchJobs:
    """The job table and its runner."""

    def __init__(self, files: FileStore, faults: FaultState, seed: int = 0,
                 repeats: Callable[[int], int] | None = None):
        self.files = files
        self.faults = faults
        self.seed = seed
        self.repeats = repeats
        self._lock = threading.Lock()
        self._jobs: dict[str, dict] = {}
        self._order: dict[str, bytearray] = {}  # per job: each line's file, for inline outputs
        self._deleted: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    def prepare(self, req: BatchCreate) -> Prepared:
        """Check a job and its input files a line at a time (in the thread pool)."""
        if not req.input_files and not req.requests:
            raise RequestError(400, error_body("Either input_files or requests must be given",
                                               "invalid_request_error", "3000"))
        if req.endpoint not in endpoints.BATCH_ENDPOINTS:
            raise RequestError(400, error_body(
                f"Batch jobs for {req.endpoint} are not available offline; they run "
                f"{', '.join(endpoints.BATCH_ENDPOINTS)}", "invalid_request_error", "3000", param="endpoint"))
        if req.model:
            endpoints.resolve_model(req.model)
        prepared = Prepared(req, [], len(req.requests or []), [])
        try:
            for file_id in req.input_files or []:
                # Kept open while the job runs: deleting the file meanwhile does not stop it.
                handle = self.files.get(file_id).open()
                prepared.inputs.append((file_id, handle))
                prepared.count += self._check_input(file_id, handle, prepared.errors)
        except BaseException:
            prepared.close()
            raise
        return prepared

    @staticmethod
    def _check_input(file_id: str, handle: BinaryIO, errors: list[dict]) -> int:
        """How many good lines a file has; each bad one is an error of the job."""
        good = 0
        for number, raw in enumerate(handle, 1):
            if not raw.strip():
                continue
            item, problem = _parse_line(raw)
            if item is None:
                errors.append({"message": f"{file_id} line {number}: {problem}", "count": 1})
            else:
                good += 1
        return good

    def start(self, prepared: Prepared, plan: FaultPlan, source) -> dict:
        """Register a prepared job and start it on the running loop; returns the QUEUED job."""
        req, errors = prepared.req, prepared.errors
        bad = sum(e["count"] for e in errors)
        job = {
            "id": str(uuid.uuid4()),
            "object": "batch",
            "input_files": list(req.input_files or []),
            "metadata": req.metadata,
            "endpoint": req.endpoint,
            "model": req.model,
            "agent_id": req.agent_id,
            "output_file": None,
            "error_file": None,
            "errors": errors,
            "outputs": None,
            "status": "QUEUED",
            "created_at": int(time.time()),
            "total_requests": prepared.count + bad,
            "completed_requests": bad,
            "succeeded_requests": 0,
            "failed_requests": bad,
            "started_at": None,
            "completed_at": None,
        }
        with self._lock:
            self._jobs[job["id"]] = job
        task = asyncio.get_running_loop().create_task(self._run(job, prepared, plan, source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self.get(job["id"])

    async def _run(self, job: dict, prepared: Prepared, plan: FaultPlan, source) -> None:
        results = _Results(self.files)
        try:
            await asyncio.sleep(QUEUED_S)
            # Answers count tokens: make sure the tokenizer is loaded without stalling the loop.
            await asyncio.to_thread(tokens.vocabulary)
            if not self._set_running(job):
                return
            count = prepared.count
            duration = min(max(STEP_S * count, TARGET_S[0]), TARGET_S[1])
            per_step = max(1, round(count * STEP_S / duration)) if count else 1
            lines, index = prepared.lines(), 0
            while True:
                await asyncio.sleep(STEP_S)
                if job["status"] == "CANCELLATION_REQUESTED":
                    break
                answered = await asyncio.to_thread(
                    self._step, job, lines, index, per_step, plan, source, results)
                if not answered:
                    break
                index += answered
            await asyncio.to_thread(self._finish, job, results)
        finally:
            prepared.close()
            results.close()

    def _set_running(self, job: dict) -> bool:
        with self._lock:
            if job["status"] == "CANCELLATION_REQUESTED":
                job["status"], job["completed_at"] = "CANCELLED", int(time.time())
                return False
            job["status"], job["started_at"] = "RUNNING", int(time.time())
            return True

    def _step(self, job: dict, lines: Iterator[dict], start: int, size: int, plan: FaultPlan,
              source, results: _Results) -> int:
        """Answer up to `size` more lines (in the thread pool); how many were answered."""
        answered = 0
        # The range first: at the step's end no line is taken from `lines` and lost.
        for index, item in zip(range(start, start + size), lines, strict=False):
            line = self._answer(job, index, item, plan, source)
            results.write(line)
            self._record(job, line)
            answered += 1
            if job["status"] == "CANCELLATION_REQUESTED":
                break
        return answered

    def _answer(self, job: dict, index: int, item: dict, plan: FaultPlan, source) -> dict:
        body = dict(item["body"])
        if job["model"] and "model" not in body:
            body["model"] = job["model"]
        line = {"id": f"batch-{job['id'][:8]}-{index}", "custom_id": item["custom_id"], "error": None}
        if self.faults.chance(plan, source, "batch_line", plan.batch_line_error_rate):
            line["response"] = {"status_code": 500, "body": error_body(
                "Internal error while processing this request (offline fault plan: batch_line_error_rate)",
                "internal_server_error", "3000")}
            return line
        try:
            result = endpoints.run(job["endpoint"], body, plan, self.seed, self.repeats, self.files)
            line["response"] = {"status_code": 200, "body": result}
        except RequestError as exc:
            line["response"] = {"status_code": exc.status, "body": exc.body}
        return line

    def _record(self, job: dict, line: dict) -> None:
        with self._lock:
            job["completed_requests"] += 1
            if line["response"]["status_code"] == 200:
                job["succeeded_requests"] += 1
            else:
                job["failed_requests"] += 1

    def _finish(self, job: dict, results: _Results) -> None:
        with self._lock:
            if job["id"] in self._deleted:
                return
        short = job["id"][:8]
        if results.good is not None:
            results.good.flush()
            job["output_file"] = self.files.add(
                f"batch-{short}-output.jsonl", results.good, "batch", "batch_result", source="mistral",
                mimetype="application/jsonl")["id"]
        if results.bad is not None:
            results.bad.flush()
            job["error_file"] = self.files.add(
                f"batch-{short}-error.jsonl", results.bad, "batch", "batch_error", source="mistral",
                mimetype="application/jsonl")["id"]
        with self._lock:
            self._order[job["id"]] = results.order
            if job["status"] == "CANCELLATION_REQUESTED":
                job["status"] = "CANCELLED"
            elif job["total_requests"] and not job["succeeded_requests"]:
                job["status"] = "FAILED"
            else:
                job["status"] = "SUCCESS"
            job["completed_at"] = int(time.time())

    def _outputs(self, job: dict) -> list[dict]:
        """Every answered line, in the order answered, read back from the job's two files."""
        with self._lock:
            order = self._order.get(job["id"], bytearray())
        readers = []
        for file_id in (job["output_file"], job["error_file"]):
            try:
                readers.append(self.files.get(file_id).open() if file_id else None)
            except RequestError:  # deleted since: its lines are gone
                readers.append(None)
        try:
            outputs = []
            for where in order:
                reader = readers[where]
                raw = reader.readline() if reader is not None else b""
                if raw:
                    outputs.append(json.loads(raw))
            return outputs
        finally:
            for reader in readers:
                if reader is not None:
                    reader.close()

    def _view(self, job: dict, inline: bool) -> dict:
        with self._lock:
            view = dict(job, errors=list(job["errors"]))
        if inline and view["status"] in FINAL:
            view["outputs"] = self._outputs(view)
        return view

    def get(self, job_id: str, inline: bool = False) -> dict:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise RequestError(404, error_body(f"Batch job {job_id} not found", "not_found", "3404"))
        return self._view(job, inline)

    def cancel(self, job_id: str) -> dict:
        self.get(job_id)
        with self._lock:
            real = self._jobs[job_id]
            if real["status"] in ("QUEUED", "RUNNING"):
                real["status"] = "CANCELLATION_REQUESTED"
        return self.get(job_id)

    def delete(self, job_id: str) -> dict:
        """Forget a job (DELETE /v1/batch/jobs/{id}); a running one stops at its next step."""
        self.get(job_id)
        with self._lock:
            job = self._jobs.pop(job_id)
            self._order.pop(job_id, None)
            self._deleted.add(job_id)
            if job["status"] in ("QUEUED", "RUNNING"):
                job["status"] = "CANCELLATION_REQUESTED"
        return {"id": job_id, "object": "batch", "deleted": True}

    def list(self, model: str | None = None, statuses: list[str] | None = None,
             created_after: int | None = None, page: int = 0, page_size: int = 100,
             newest_first: bool = True) -> dict:
        with self._lock:
            jobs = list(self._jobs.values())
        if model:
            jobs = [j for j in jobs if j["model"] == model]
        if statuses:
            jobs = [j for j in jobs if j["status"] in statuses]
        if created_after is not None:
            jobs = [j for j in jobs if j["created_at"] >= created_after]
        # Insertion order breaks ties between jobs created in the same second.
        jobs = jobs[::-1] if newest_first else jobs
        jobs.sort(key=lambda j: j["created_at"], reverse=newest_first)
        page_jobs = jobs[page * page_size : (page + 1) * page_size]
        return {"object": "list", "data": [self._view(j, False) for j in page_jobs], "total": len(jobs)}


def _parse_line(raw: bytes, checked: bool = False) -> tuple[dict | None, str | None]:
    """A line of an input file as {"custom_id", "body"}, or None and what is wrong with it.

    `checked`: the line was read once already (when the job was created), so a good one
    needs no second look for depth and surrogates.
    """
    if not raw.strip():
        return None, "an empty line"
    try:
        item = limits.decode_json(raw) if not checked else json.loads(raw)
    except RequestError as exc:
        return None, exc.body["detail"][0]["msg"]
    except ValueError as exc:
        return None, str(exc)
    if not isinstance(item, dict) or not isinstance(item.get("body"), dict):
        return None, "a line needs a JSON object with a 'body' object"
    return {"custom_id": item.get("custom_id"), "body": item["body"]}, None
