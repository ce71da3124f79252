"""Batch jobs: run in the background on the server's loop, progress visible while polling.

A job waits QUEUED for a moment, runs its requests over about 0.3-2 s (so a poller
sees the counters move), then writes one JSON line per request:
`{"id", "custom_id", "response": {"status_code", "body"}, "error": null}`.
Lines with status 200 go to `output_file`; failed lines (invalid bodies, or the
`batch_line_error_rate` fault, which answers 500 with the API's error object) go
to `error_file`, same shape; both files are written for every job, from input
files or inline `requests` alike, as the hosted API does. `GET
/v1/batch/jobs/{id}?inline=true` also returns every line in `outputs`. `DELETE
/v1/batch/jobs/{id}` stops the job if it runs and forgets it. The answers are
computed in the thread pool, a step at a time, so a big job never stalls the server.

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
from collections.abc import Callable

from .. import tokens
from . import endpoints, limits
from .faults import FaultPlan, FaultState
from .files import FileStore
from .wire import BatchCreate, RequestError, error_body

QUEUED_S = 0.15
STEP_S = 0.05
TARGET_S = (0.3, 2.0)
FINAL = ("SUCCESS", "FAILED", "TIMEOUT_EXCEEDED", "CANCELLED")


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
        self._lines: dict[str, list[dict]] = {}
        self._deleted: set[str] = set()
        self._tasks: set[asyncio.Task] = set()

    def prepare(self, req: BatchCreate) -> tuple[BatchCreate, list[dict], list[dict]]:
        """Check a job and read its input files (in the thread pool): the request, its lines, line errors."""
        if not req.input_files and not req.requests:
            raise RequestError(400, error_body("Either input_files or requests must be given",
                                               "invalid_request_error", "3000"))
        if req.endpoint not in endpoints.BATCH_ENDPOINTS:
            raise RequestError(400, error_body(
                f"Batch jobs for {req.endpoint} are not available offline; they run "
                f"{', '.join(endpoints.BATCH_ENDPOINTS)}", "invalid_request_error", "3000", param="endpoint"))
        if req.model:
            endpoints.resolve_model(req.model)
        lines: list[dict] = []
        errors: list[dict] = []
        for file_id in req.input_files or []:
            lines += self._read_input(file_id, errors)
        for item in req.requests or []:
            lines.append({"custom_id": item.custom_id, "body": item.body})
        return req, lines, errors

    def start(self, prepared: tuple[BatchCreate, list[dict], list[dict]], plan: FaultPlan, source) -> dict:
        """Register a prepared job and start it on the running loop; returns the QUEUED job."""
        req, lines, errors = prepared
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
            "total_requests": len(lines) + sum(e["count"] for e in errors),
            "completed_requests": sum(e["count"] for e in errors),
            "succeeded_requests": 0,
            "failed_requests": sum(e["count"] for e in errors),
            "started_at": None,
            "completed_at": None,
        }
        with self._lock:
            self._jobs[job["id"]] = job
            self._lines[job["id"]] = []
        task = asyncio.get_running_loop().create_task(self._run(job, lines, plan, source))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return self._view(job, False)

    def _read_input(self, file_id: str, errors: list[dict]) -> list[dict]:
        stored = self.files.get(file_id)
        lines = []
        for number, raw in enumerate(stored.content.decode("utf-8", "replace").splitlines(), 1):
            if not raw.strip():
                continue
            try:
                item = limits.decode_json(raw.encode("utf-8", "replace"))
                if not isinstance(item, dict) or not isinstance(item.get("body"), dict):
                    raise ValueError("a line needs a JSON object with a 'body' object")
            except RequestError as exc:
                errors.append({"message": f"{file_id} line {number}: {exc.body['detail'][0]['msg']}", "count": 1})
                continue
            except ValueError as exc:
                errors.append({"message": f"{file_id} line {number}: {exc}", "count": 1})
                continue
            lines.append({"custom_id": item.get("custom_id"), "body": item["body"]})
        return lines

    async def _run(self, job: dict, lines: list[dict], plan: FaultPlan, source) -> None:
        await asyncio.sleep(QUEUED_S)
        # Answers count tokens: make sure the tokenizer is loaded without stalling the loop.
        await asyncio.to_thread(tokens.vocabulary)
        if not self._set_running(job):
            return
        duration = min(max(STEP_S * len(lines), TARGET_S[0]), TARGET_S[1])
        per_step = max(1, round(len(lines) * STEP_S / duration)) if lines else 1
        for start in range(0, len(lines), per_step):
            await asyncio.sleep(STEP_S)
            if job["status"] == "CANCELLATION_REQUESTED":
                break
            chunk = list(enumerate(lines[start : start + per_step], start))
            answered = await asyncio.to_thread(
                lambda chunk=chunk: [self._answer(job, index, item, plan, source) for index, item in chunk])
            for line in answered:
                self._record(job, line)
        await asyncio.to_thread(self._finish, job)

    def _set_running(self, job: dict) -> bool:
        with self._lock:
            if job["status"] == "CANCELLATION_REQUESTED":
                job["status"], job["completed_at"] = "CANCELLED", int(time.time())
                return False
            job["status"], job["started_at"] = "RUNNING", int(time.time())
            return True

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
            self._lines[job["id"]].append(line)
            job["completed_requests"] += 1
            if line["response"]["status_code"] == 200:
                job["succeeded_requests"] += 1
            else:
                job["failed_requests"] += 1

    def _finish(self, job: dict) -> None:
        with self._lock:
            if job["id"] in self._deleted:
                return
            lines = list(self._lines[job["id"]])
        good = [line for line in lines if line["response"]["status_code"] == 200]
        bad = [line for line in lines if line["response"]["status_code"] != 200]
        short = job["id"][:8]
        if good:
            job["output_file"] = self._write(f"batch-{short}-output.jsonl", good, "batch_result")
        if bad:
            job["error_file"] = self._write(f"batch-{short}-error.jsonl", bad, "batch_error")
        with self._lock:
            if job["status"] == "CANCELLATION_REQUESTED":
                job["status"] = "CANCELLED"
            elif job["total_requests"] and not job["succeeded_requests"]:
                job["status"] = "FAILED"
            else:
                job["status"] = "SUCCESS"
            job["completed_at"] = int(time.time())

    def _write(self, name: str, lines: list[dict], sample_type: str) -> str:
        content = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode()
        return self.files.add(name, content, "batch", sample_type, source="mistral",
                              mimetype="application/jsonl")["id"]

    def _view(self, job: dict, inline: bool) -> dict:
        with self._lock:
            view = dict(job, errors=list(job["errors"]))
            if inline and job["status"] in FINAL:
                view["outputs"] = list(self._lines[job["id"]])
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
            self._lines.pop(job_id, None)
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
