"""Files and batch jobs on the offline server, through the official SDK."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from mistralai.client import errors

from mistral_magic.offline import OfflineServer

MODEL = "mistral-small-latest"


def lines(*prompts):
    return "".join(json.dumps({"custom_id": f"r{i}", "body": {"max_tokens": 30, "messages": [
        {"role": "user", "content": p}]}}) + "\n" for i, p in enumerate(prompts)).encode()


def wait(sdk, job_id, seen=None, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = sdk.batch.jobs.get(job_id=job_id)
        if seen is not None:
            seen.append((job.status, job.completed_requests))
        if job.status in ("SUCCESS", "FAILED", "CANCELLED", "TIMEOUT_EXCEEDED"):
            return job
        time.sleep(0.05)
    raise AssertionError("batch job did not finish")


def read_jsonl(sdk, file_id):
    return [json.loads(line) for line in sdk.files.download(file_id=file_id).read().decode().splitlines()]


def test_file_upload_list_get_content_delete(sdk):
    content = lines("a", "b")
    uploaded = sdk.files.upload(file={"file_name": "in.jsonl", "content": content}, purpose="batch")
    assert uploaded.size_bytes == len(content) and uploaded.filename == "in.jsonl" and uploaded.purpose == "batch"
    assert uploaded.num_lines == 2
    assert any(f.id == uploaded.id for f in sdk.files.list().data)
    assert sdk.files.retrieve(file_id=uploaded.id).deleted is False
    assert sdk.files.download(file_id=uploaded.id).read() == content
    assert sdk.files.delete(file_id=uploaded.id).deleted is True
    with pytest.raises(errors.SDKError) as caught:
        sdk.files.retrieve(file_id=uploaded.id)
    assert caught.value.status_code == 404


def test_upload_needs_a_file_and_a_valid_purpose(offline_server):
    headers = {"Authorization": f"Bearer {offline_server.api_key}"}
    response = httpx.post(offline_server.url + "/v1/files", headers=headers,
                          files={"file": ("x.jsonl", b"{}")}, data={"purpose": "nonsense"})
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "purpose"]
    response = httpx.post(offline_server.url + "/v1/files", headers=headers, files={"other": ("x", b"")})
    assert response.status_code == 422


def test_batch_from_a_file_progresses_and_writes_an_output_file(sdk):
    uploaded = sdk.files.upload(file={"file_name": "in.jsonl", "content": lines(*[f"topic {i}" for i in range(8)])},
                                purpose="batch")
    job = sdk.batch.jobs.create(endpoint="/v1/chat/completions", model=MODEL, input_files=[uploaded.id],
                                metadata={"job": "demo"})
    assert job.status == "QUEUED" and job.total_requests == 8 and job.input_files == [uploaded.id]
    seen = []
    done = wait(sdk, job.id, seen)
    assert done.status == "SUCCESS" and done.succeeded_requests == done.completed_requests == 8
    assert done.failed_requests == 0 and done.error_file is None and done.metadata == {"job": "demo"}
    assert "RUNNING" in {s for s, _ in seen}
    assert len({c for _, c in seen}) > 2, "a poller should see the counts move"
    output = read_jsonl(sdk, done.output_file)
    assert [line["custom_id"] for line in output] == [f"r{i}" for i in range(8)]
    first = output[0]
    assert first["error"] is None and first["response"]["status_code"] == 200 and first["id"]
    body = first["response"]["body"]
    assert body["object"] == "chat.completion" and body["choices"][0]["message"]["content"].startswith("*Offline")
    assert body["usage"]["completion_tokens"] <= 30


def test_inline_requests_return_outputs_inline(sdk):
    job = sdk.batch.jobs.create(endpoint="/v1/embeddings", model="mistral-embed",
                                requests=[{"custom_id": "e1", "body": {"input": "hello"}},
                                          {"custom_id": "e2", "body": {"input": ["a", "b"]}}])
    done = wait(sdk, job.id)
    assert done.status == "SUCCESS" and done.input_files == []
    inline = sdk.batch.jobs.get(job_id=job.id, inline=True)
    assert [o["custom_id"] for o in inline.outputs] == ["e1", "e2"]
    assert len(inline.outputs[1]["response"]["body"]["data"]) == 2


def test_invalid_lines_and_line_faults_go_to_the_error_file():
    with OfflineServer(faults={"batch_line_error_rate": 0.5, "seed": 3}) as server:
        from mistralai.client import Mistral

        sdk = Mistral(api_key=server.api_key, server_url=server.url)
        requests = [{"custom_id": str(i), "body": {"messages": [{"role": "user", "content": f"q{i}"}]}}
                    for i in range(10)]
        requests.append({"custom_id": "bad", "body": {"messages": "not a list"}})
        done = wait(sdk, sdk.batch.jobs.create(endpoint="/v1/chat/completions", model=MODEL,
                                               requests=requests).id)
        assert done.status == "SUCCESS" and done.total_requests == 11
        assert 0 < done.succeeded_requests < 10 and done.failed_requests == 11 - done.succeeded_requests
        failed = read_jsonl(sdk, done.error_file)
        assert len(failed) == done.failed_requests
        by_id = {line["custom_id"]: line for line in failed}
        assert by_id["bad"]["response"]["status_code"] == 422
        injected = [line for line in failed if line["custom_id"] != "bad"]
        assert all(line["response"]["status_code"] == 500 and line["response"]["body"]["object"] == "error"
                   for line in injected)
        assert len(read_jsonl(sdk, done.output_file)) == done.succeeded_requests


def test_cancel_moves_to_cancelled(sdk):
    requests = [{"custom_id": str(i), "body": {"messages": [{"role": "user", "content": "x"}]}} for i in range(40)]
    job = sdk.batch.jobs.create(endpoint="/v1/chat/completions", model=MODEL, requests=requests)
    assert sdk.batch.jobs.cancel(job_id=job.id).status == "CANCELLATION_REQUESTED"
    done = wait(sdk, job.id)
    assert done.status == "CANCELLED" and done.completed_requests < 40


def test_list_filters_by_status_and_model(sdk):
    job = sdk.batch.jobs.create(endpoint="/v1/embeddings", model="codestral-embed",
                                requests=[{"body": {"input": "x"}}])
    wait(sdk, job.id)
    listed = sdk.batch.jobs.list(model="codestral-embed", status=["SUCCESS"])
    assert job.id in [j.id for j in listed.data] and all(j.model == "codestral-embed" for j in listed.data)
    assert job.id not in [j.id for j in sdk.batch.jobs.list(status=["QUEUED"]).data]


def test_unknown_job_and_bad_ids(offline_server, sdk):
    with pytest.raises(errors.SDKError) as caught:
        sdk.batch.jobs.get(job_id="00000000-0000-4000-8000-000000000000")
    assert caught.value.status_code == 404
    response = httpx.get(offline_server.url + "/v1/batch/jobs/not-a-uuid",
                         headers={"Authorization": f"Bearer {offline_server.api_key}"})
    assert response.status_code == 422
    with pytest.raises(errors.SDKError):
        sdk.batch.jobs.create(endpoint="/v1/chat/completions", model="no-such-model", requests=[{"body": {}}])
