"""Every body the offline server sends validates against Mistral's OpenAPI spec, and the SDK parses it."""

from __future__ import annotations

import asyncio
import json
import re
import time

import httpx
import pytest
from offline_documents import data_url, invoice_pdf, picture, report_pdf
from offline_spec import SPEC_URI, check_error_fixture, check_fixture, spec_fixture  # noqa: F401
from pydantic import BaseModel

MODEL = "mistral-small-latest"


@pytest.fixture
def http(offline_server):
    with httpx.Client(base_url=offline_server.url, timeout=30,
                      headers={"Authorization": f"Bearer {offline_server.api_key}"}) as client:
        yield client


def user(text):
    return [{"role": "user", "content": text}]


def stream_chunks(http, path, body):
    with http.stream("POST", path, json={**body, "stream": True}) as response:
        assert response.status_code == 200
        frames = [line[len("data: "):] for line in response.iter_lines() if line.startswith("data: ")]
    assert frames[-1] == "[DONE]"
    return [json.loads(f) for f in frames[:-1]]


TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
SCHEMA = {"type": "json_schema", "json_schema": {"name": "p", "strict": True, "schema": {
    "type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": False}}}

PDF_URL = data_url(invoice_pdf(), "application/pdf")
PNG_URL = data_url(picture(320, 200), "image/png")
CHAT_BODIES = [
    {"model": MODEL, "messages": user("Write a python function for primes")},
    {"model": MODEL, "messages": user("Weather in Paris?"), "tools": [TOOL]},
    {"model": MODEL, "messages": user("List 2 rivers with fields name"), "response_format": {"type": "json_object"}},
    {"model": MODEL, "messages": user("Name: Ada"), "response_format": SCHEMA, "max_tokens": 5},
    {"model": MODEL, "messages": user("Two names for a cat"), "n": 2, "max_tokens": 12},
    {"model": MODEL, "messages": user("What is 6 * 7?"), "reasoning_effort": "high"},
    {"model": "magistral-medium-latest", "messages": user("Weather in Oslo and Bergen?"), "tools": [TOOL]},
    {"model": "magistral-small-latest", "messages": user("Think it over"), "max_tokens": 10},
    {"model": "mistral-medium-3-5", "messages": user("Name: Ada"), "response_format": SCHEMA,
     "reasoning_effort": "high", "n": 2},
    {"model": MODEL, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"}, {"type": "image_url", "image_url": PNG_URL},
        {"type": "document_url", "document_url": PDF_URL, "document_name": "invoice.pdf"}]}]},
    {"model": MODEL, "tools": [TOOL], "messages": [
        *user("Weather in Paris?"),
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "abcDEF123", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "name": "get_weather", "tool_call_id": "abcDEF123", "content": "sunny, 21 C"}]},
]


@pytest.mark.parametrize("body", CHAT_BODIES, ids=["text", "tools", "json", "schema", "n=2", "reasoning",
                                                   "reasoning+tools", "reasoning-cut", "reasoning+schema+n",
                                                   "picture+document", "tool-results"])
def test_chat_whole_and_streamed_conform(http, check, body):
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200
    check(response.json(), "/v1/chat/completions", "post")
    for chunk in stream_chunks(http, "/v1/chat/completions", body):
        check({"data": chunk}, "/v1/chat/completions", "post", media="text/event-stream")


def test_fim_conforms(http, check):
    body = {"model": "codestral-latest", "prompt": "def f(x):", "suffix": "return y"}
    check(http.post("/v1/fim/completions", json=body).json(), "/v1/fim/completions", "post")
    for chunk in stream_chunks(http, "/v1/fim/completions", body):
        # FIM streams the chat CompletionChunk (the spec gives the FIM stream no separate schema).
        check({"data": chunk}, "/v1/chat/completions", "post", media="text/event-stream")


def test_models_and_embeddings_conform(http, check):
    check(http.get("/v1/models").json(), "/v1/models", "get")
    for name in ("mistral-large-latest", "codestral-2508", "mistral-embed"):
        check(http.get(f"/v1/models/{name}").json(), "/v1/models/{model_id}", "get")
    body = {"model": "mistral-embed", "input": ["one", "two"]}
    check(http.post("/v1/embeddings", json=body).json(), "/v1/embeddings", "post")


def test_validation_errors_conform(http, check):
    response = http.post("/v1/chat/completions", json={"model": MODEL, "messages": "nope", "top_p": 0})
    assert response.status_code == 422
    check(response.json(), "/v1/chat/completions", "post", status=422)
    response = http.post("/v1/embeddings", json={"model": "mistral-embed"})
    assert response.status_code == 422
    check(response.json(), "/v1/embeddings", "post", status=422)


def ocr_body(**options):
    return {"model": "mistral-ocr-latest", "document": {"type": "document_url", "document_url": PDF_URL}, **options}


OCR_OPTIONS = [
    {},
    {"table_format": "html", "include_image_base64": True, "extract_header": True, "extract_footer": True},
    {"confidence_scores_granularity": "word", "table_format": "markdown"},
    {"confidence_scores_granularity": "block", "pages": "0"},
    {"model": "mistral-ocr-2512", "include_blocks": False, "confidence_scores_granularity": "page"},
    {"document_annotation_format": {"type": "json_schema", "json_schema": {"name": "d", "schema": {
        "type": "object", "properties": {"customer": {"type": "string"}}}}},
     "bbox_annotation_format": {"type": "json_schema", "json_schema": {"name": "b", "schema": {
         "type": "object", "properties": {"kind": {"type": "string", "enum": ["logo", "chart"]}}}}}},
    {"document": {"type": "document_url", "document_url": data_url(report_pdf(), "application/pdf")}},
    {"document": {"type": "image_url", "image_url": PNG_URL}, "include_image_base64": True},
]


@pytest.mark.parametrize("options", OCR_OPTIONS, ids=["plain", "html-header-footer", "words", "blocks", "ocr-2512",
                                                      "annotations", "report", "picture"])
def test_ocr_conforms(http, check, options):
    response = http.post("/v1/ocr", json=ocr_body(**options))
    assert response.status_code == 200, response.text
    check(response.json(), "/v1/ocr", "post")


def test_moderation_and_classification_conform(http, check):
    texts = ["I will kill you", "Lovely weather", "My SSN is 123-45-6789"]
    conversation = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
                    {"role": "user", "content": "I want to end my life"}]
    for model in ("mistral-moderation-latest", "mistral-moderation-2411"):
        check(http.post("/v1/moderations", json={"model": model, "input": texts}).json(), "/v1/moderations", "post")
        check(http.post("/v1/chat/moderations", json={"model": model, "input": conversation}).json(),
              "/v1/chat/moderations", "post")
        check(http.post("/v1/chat/moderations", json={"model": model, "input": [conversation, conversation]}).json(),
              "/v1/chat/moderations", "post")
        check(http.post("/v1/classifications", json={"model": model, "input": texts[0]}).json(),
              "/v1/classifications", "post")
        check(http.post("/v1/chat/classifications", json={"model": model, "input": {"messages": conversation}}).json(),
              "/v1/chat/classifications", "post")
        check(http.post("/v1/chat/classifications", json={"model": model, "input": [{"messages": conversation}]}).json(),
              "/v1/chat/classifications", "post")


def test_codestral_embeddings_and_signed_urls_conform(http, check):
    for dtype in ("float", "int8", "uint8", "binary", "ubinary"):
        body = {"model": "codestral-embed", "input": ["a", "b"], "output_dimension": 64, "output_dtype": dtype}
        check(http.post("/v1/embeddings", json=body).json(), "/v1/embeddings", "post")
    created = http.post("/v1/files", files={"file": ("invoice.pdf", invoice_pdf(), "application/pdf")},
                        data={"purpose": "ocr"})
    check(created.json(), "/v1/files", "post")
    signed = http.get(f"/v1/files/{created.json()['id']}/url", params={"expiry": 2})
    check(signed.json(), "/v1/files/{file_id}/url", "get")
    ocr = http.post("/v1/ocr", json=ocr_body(document={"type": "document_url", "document_url": signed.json()["url"]}))
    check(ocr.json(), "/v1/ocr", "post")


def test_new_endpoint_errors_conform(http, check_error):
    too_long = {"type": "function", "function": {"name": "f", "arguments": "{}"}, "id": "toolong_id"}
    cases = [
        (http.post("/v1/ocr", json=ocr_body(pages=[9])), "/v1/ocr", 400),
        (http.post("/v1/ocr", json={"model": "mistral-ocr-latest"}), "/v1/ocr", 422),
        (http.post("/v1/ocr", json=ocr_body(document={"type": "document_url", "document_url": "https://x.y/a.pdf"})),
         "/v1/ocr", 400),
        (http.post("/v1/ocr", json=ocr_body(model="mistral-small-latest")), "/v1/ocr", 400),
        (http.post("/v1/moderations", json={"model": "mistral-embed", "input": "x"}), "/v1/moderations", 400),
        (http.post("/v1/moderations", json={"model": "mistral-moderation-latest"}), "/v1/moderations", 422),
        (http.post("/v1/chat/moderations", json={"model": "mistral-moderation-latest", "input": "x"}),
         "/v1/chat/moderations", 422),
        (http.post("/v1/classifications", json={"model": "nope", "input": "x"}), "/v1/classifications", 400),
        (http.post("/v1/chat/classifications", json={"model": "mistral-moderation-latest", "input": {}}),
         "/v1/chat/classifications", 422),
        (http.post("/v1/embeddings", json={"model": "mistral-embed", "input": "x", "output_dtype": "int8"}),
         "/v1/embeddings", 400),
        (http.post("/v1/chat/completions", json={"model": MODEL, "messages": user("hi"), "reasoning_effort": "low"}),
         "/v1/chat/completions", 400),
        (http.post("/v1/chat/completions", json={"model": MODEL, "messages": user("hi"), "reasoning_effort": "max"}),
         "/v1/chat/completions", 422),
        (http.post("/v1/chat/completions", json={"model": MODEL, "messages": [
            *user("hi"), {"role": "assistant", "content": "", "tool_calls": [too_long]},
            {"role": "tool", "tool_call_id": "toolong_id", "content": "x"}]}), "/v1/chat/completions", 400),
        (http.post("/v1/chat/completions", json={"model": "open-mistral-7b", "messages": user("hi")}),
         "/v1/chat/completions", 400),
        (http.get("/v1/files/00000000-0000-4000-8000-000000000000/url"), "/v1/files/{file_id}/url", 404),
        (http.get("/v1/files/not-a-uuid/url"), "/v1/files/{file_id}/url", 422),
    ]
    for response, path, status in cases:
        assert response.status_code == status, (path, response.text)
        method = "get" if response.request.method == "GET" else "post"
        check_error(response, path, method)


BATCH_LINES = {
    "/v1/embeddings": ("mistral-embed", {"input": ["one", "two"]}),
    "/v1/moderations": ("mistral-moderation-latest", {"input": ["I will kill you", "hello"]}),
    "/v1/chat/moderations": ("mistral-moderation-latest", {"input": [{"role": "user", "content": "hi"}]}),
    "/v1/classifications": ("mistral-moderation-latest", {"input": "my email is a@b.com"}),
    "/v1/chat/classifications": ("mistral-moderation-latest",
                                 {"input": {"messages": [{"role": "user", "content": "hi"}]}}),
    "/v1/ocr": ("mistral-ocr-latest", {"document": {"type": "document_url", "document_url": PDF_URL}}),
    "/v1/chat/completions": ("mistral-small-latest", {"messages": user("hi"), "reasoning_effort": "high"}),
}


@pytest.mark.parametrize("endpoint", BATCH_LINES)
def test_batch_jobs_run_every_served_endpoint_and_their_lines_conform(http, check, endpoint):
    model, body = BATCH_LINES[endpoint]
    job = http.post("/v1/batch/jobs", json={"endpoint": endpoint, "model": model, "requests": [
        {"custom_id": "good", "body": body}, {"custom_id": "bad", "body": {**body, "model": "nope"}}]}).json()
    deadline = time.monotonic() + 20
    while job["status"] not in ("SUCCESS", "FAILED") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = http.get(f"/v1/batch/jobs/{job['id']}", params={"inline": "true"}).json()
    check(job, "/v1/batch/jobs/{job_id}", "get")
    lines = {line["custom_id"]: line for line in job["outputs"]}
    assert lines["good"]["response"]["status_code"] == 200 and lines["bad"]["response"]["status_code"] == 400
    check(lines["good"]["response"]["body"], endpoint, "post")
    output = http.get(f"/v1/files/{job['output_file']}/content").text
    assert json.loads(output)["response"]["body"] == lines["good"]["response"]["body"]


def test_batch_jobs_for_unserved_endpoints_are_refused_when_created(http, check_error):
    for endpoint in ("/v1/conversations", "/v1/audio/transcriptions"):
        response = http.post("/v1/batch/jobs", json={"endpoint": endpoint, "model": MODEL,
                                                     "requests": [{"body": {}}]})
        assert response.status_code == 400 and "not available offline" in response.json()["message"]
        check_error(response, "/v1/batch/jobs", "post")


def test_files_and_batch_conform(http, check):
    line = json.dumps({"custom_id": "a", "body": {"messages": user("hi")}}) + "\n"
    created = http.post("/v1/files", files={"file": ("in.jsonl", line.encode())}, data={"purpose": "batch"})
    assert created.status_code == 200
    check(created.json(), "/v1/files", "post")
    file_id = created.json()["id"]
    check(http.get("/v1/files").json(), "/v1/files", "get")
    check(http.get(f"/v1/files/{file_id}").json(), "/v1/files/{file_id}", "get")
    job = http.post("/v1/batch/jobs", json={"endpoint": "/v1/chat/completions", "model": MODEL,
                                            "input_files": [file_id]}).json()
    check(job, "/v1/batch/jobs", "post")
    check(http.get("/v1/batch/jobs").json(), "/v1/batch/jobs", "get")
    deadline = time.monotonic() + 10
    while job["status"] not in ("SUCCESS", "FAILED") and time.monotonic() < deadline:
        time.sleep(0.1)
        job = http.get(f"/v1/batch/jobs/{job['id']}", params={"inline": "true"}).json()
    check(job, "/v1/batch/jobs/{job_id}", "get")
    cancelled = http.post(f"/v1/batch/jobs/{job['id']}/cancel").json()
    check(cancelled, "/v1/batch/jobs/{job_id}/cancel", "post")
    check(http.delete(f"/v1/files/{file_id}").json(), "/v1/files/{file_id}", "delete")


# --- the official SDK parses every response, sync and async ----------------------------------

class City(BaseModel):
    name: str
    population: int


def test_sdk_parses_everything_sync(sdk):
    assert sdk.chat.complete(model=MODEL, messages=user("hi")).choices[0].message.content
    assert [e.data for e in sdk.chat.stream(model=MODEL, messages=user("hi"))][-1].usage.total_tokens > 0
    parsed = sdk.chat.parse(response_format=City, model=MODEL, messages=user("Lyon has 520000 people"))
    assert isinstance(parsed.choices[0].message.parsed, City)
    assert sdk.fim.complete(model="codestral-latest", prompt="def f():").choices[0].message.content
    assert sdk.embeddings.create(model="mistral-embed", inputs=["x"]).data[0].embedding
    assert sdk.models.list().data and sdk.models.retrieve(model_id="codestral-latest").id == "codestral-latest"
    uploaded = sdk.files.upload(file={"file_name": "b.jsonl",
                                      "content": json.dumps({"custom_id": "1", "body": {"messages": user("a")}}).encode()},
                                purpose="batch")
    job = sdk.batch.jobs.create(endpoint="/v1/chat/completions", model=MODEL, input_files=[uploaded.id])
    assert sdk.batch.jobs.get(job_id=job.id).id == job.id
    assert any(j.id == job.id for j in sdk.batch.jobs.list().data)
    assert sdk.batch.jobs.cancel(job_id=job.id).status in ("CANCELLATION_REQUESTED", "SUCCESS", "CANCELLED")


def test_sdk_parses_everything_async(sdk):
    async def go():
        async with sdk:  # closes the async pool inside the loop that owns its connections
            answer = await sdk.chat.complete_async(model=MODEL, messages=user("hi"))
            events = [e async for e in await sdk.chat.stream_async(model=MODEL, messages=user("hi"))]
            parsed = await sdk.chat.parse_async(response_format=City, model=MODEL, messages=user("Nice: 340000"))
            fim = await sdk.fim.complete_async(model="codestral-latest", prompt="def f():")
            vectors = await sdk.embeddings.create_async(model="mistral-embed", inputs=["x"])
            models = await sdk.models.list_async()
            card = await sdk.models.retrieve_async(model_id="mistral-embed")
            uploaded = await sdk.files.upload_async(file={"file_name": "c.jsonl", "content": b'{"body": {}}\n'},
                                                    purpose="batch")
            job = await sdk.batch.jobs.create_async(endpoint="/v1/chat/completions", model=MODEL,
                                                    requests=[{"custom_id": "x", "body": {"messages": user("a")}}])
            listed = await sdk.batch.jobs.list_async()
            got = await sdk.batch.jobs.get_async(job_id=job.id)
            cancelled = await sdk.batch.jobs.cancel_async(job_id=job.id)
            return answer, events, parsed, fim, vectors, models, card, uploaded, listed, got, cancelled

    answer, events, parsed, fim, vectors, models, card, uploaded, listed, got, cancelled = asyncio.run(go())
    assert answer.choices[0].message.content and events[-1].data.choices[0].finish_reason == "stop"
    assert isinstance(parsed.choices[0].message.parsed, City)
    assert fim.choices and vectors.data and models.data and card.id == "mistral-embed"
    assert uploaded.purpose == "batch" and listed.total >= 1 and got.id == cancelled.id


# --- every error body the server sends, against the spec ---------------------------------------------

def test_limit_errors_conform(http, check_error):
    from mistral_magic.offline.limits import MAX_JSON_BYTES

    cases = [
        (http.post("/v1/chat/completions", content=b"x" * (MAX_JSON_BYTES + 1)), 413),
        (http.post("/v1/chat/completions", content='{"model": "m", "metadata": ' + "[" * 80 + "]" * 80 + "}"), 422),
        (http.post("/v1/chat/completions", content='{"model": "' + MODEL + '", "messages": [{"role": "user", '
                                                    '"content": "\\udc00"}]}'), 422),
        (http.post("/v1/chat/completions", json={"model": MODEL, "messages": user("hi"), "max_tokens": 10**6}), 400),
        (http.post("/v1/chat/completions", json={"model": MODEL, "messages": user("hi"), "n": 257}), 400),
        (http.post("/v1/chat/completions", json={"model": MODEL, "messages": user("hi"), "response_format": {
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"type": 5}}}}), 400),
        (http.post("/v1/embeddings", json={"model": "mistral-embed", "input": ["x"] * 600}), 400),
        (http.post("/v1/embeddings", json={"model": "mistral-embed", "input": "x", "output_dimension": 4096}), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        path = "/v1/embeddings" if "embeddings" in str(response.request.url) else "/v1/chat/completions"
        check_error(response, path, "post")


def test_auth_rate_limit_and_upload_errors_conform(offline_server, http, check_error):
    unauthorized = httpx.get(offline_server.url + "/v1/models", headers={"Authorization": "Bearer no"})
    assert unauthorized.status_code == 401 and unauthorized.json() == {"detail": "Unauthorized"}
    limited = None
    for _ in range(4):
        response = http.get("/v1/models", headers={"X-Offline-Faults": '{"rate_limit_rps": 1, "seed": 77}'})
        limited = response if response.status_code == 429 else limited
    assert limited is not None and check_error(limited, "/v1/models", "get") == "error object"
    audio = http.post("/v1/files", files={"file": ("a.mp3", b"ID3")}, data={"purpose": "audio"})
    assert audio.status_code == 422 and check_error(audio, "/v1/files", "post") == "HTTPValidationError"


def test_delete_batch_job_conforms(http, check):
    job = http.post("/v1/batch/jobs", json={"endpoint": "/v1/embeddings", "model": "mistral-embed",
                                            "requests": [{"body": {"input": "x"}}]}).json()
    deleted = http.delete(f"/v1/batch/jobs/{job['id']}")
    assert deleted.status_code == 200
    check(deleted.json(), "/v1/batch/jobs/{job_id}", "delete")


def _concrete(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "00000000-0000-4000-8000-000000000000", template.split("#")[0])


def test_every_spec_operation_is_served_or_says_it_is_not_available_offline(spec, http, check_error):
    served = unserved = 0
    for template, operations in spec["paths"].items():
        for method in operations:
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            path = _concrete(template)
            response = http.request(method.upper(), path, json={} if method in ("post", "put", "patch") else None)
            assert response.status_code not in (405, 501), f"{method} {template}: {response.status_code}"
            if response.status_code == 404 and "not available offline" in response.text:
                assert check_error(response, template.split("#")[0], method) in ("spec", "error object")
                assert method.upper() in response.text
                unserved += 1
            else:
                assert response.json() != {"detail": "Not Found"}, f"{method} {template} answers a bare 404"
                served += 1
    assert served >= 21 and unserved > 200


def test_spec_paths_lists_exactly_the_spec_operations_that_are_not_routed(spec):
    from importlib import resources

    from mistral_magic.offline.app import ServerState, build
    from mistral_magic.offline.faults import FaultPlan, FaultState

    gate = build(ServerState("k", FaultState(FaultPlan()), 0))
    routed = {(method, re.sub(r":\w+}", "}", route.path)) for route in gate.app.routes
              for method in route.methods - {"HEAD"}}
    operations = {(method.upper(), template.split("#")[0]) for template, ops in spec["paths"].items()
                  for method in ops if method in ("get", "post", "put", "patch", "delete")}
    listed = resources.files("mistral_magic.offline").joinpath("spec_paths.txt").read_text("utf-8").splitlines()
    listed = {tuple(line.split(" ", 1)) for line in listed if line.strip() and not line.startswith("#")}
    assert listed & operations == operations - routed
    # The rest are the SDK's Azure and GCP forms of the API.
    assert all(path.startswith(("/models/", "/providers/", "/rawPredict", "/streamRawPredict", "/v1/projects/"))
               for _, path in listed - operations)
    assert {("POST", "/v1/ocr"), ("POST", "/v1/moderations"), ("GET", "/v1/files/{file_id}/url")} <= routed


def test_the_sdk_azure_and_gcp_paths_say_so_too(http, check_error):
    for path in ("/models/chat/completions", "/providers/mistral/azure/ocr", "/rawPredict", "/streamRawPredict",
                 "/v1/projects/p/locations/us-central1/publishers/mistralai/models/codestral-2508:streamRawPredict"):
        response = http.post(path, json={})
        assert response.status_code == 404 and "not available offline" in response.json()["message"]
        check_error(response, path, "post")


def test_the_checker_is_not_vacuous(check):
    with pytest.raises(AssertionError):
        check({"id": "x", "object": "chat.completion", "model": MODEL, "created": 1,
               "usage": None, "choices": []}, "/v1/chat/completions", "post")
    with pytest.raises(AssertionError):
        check({"data": {"id": "x", "model": MODEL, "choices": [{"index": 0, "delta": {}}]}},
              "/v1/chat/completions", "post", media="text/event-stream")


def test_sdk_parses_the_new_endpoints_async(sdk):
    async def go():
        async with sdk:
            uploaded = await sdk.files.upload_async(file={"file_name": "i.pdf", "content": invoice_pdf()},
                                                    purpose="ocr")
            signed = await sdk.files.get_signed_url_async(file_id=uploaded.id, expiry=1)
            ocr = await sdk.ocr.process_async(model="mistral-ocr-latest",
                                              document={"type": "document_url", "document_url": signed.url})
            moderated = await sdk.classifiers.moderate_async(model="mistral-moderation-latest", inputs=["I will kill you"])
            chat_moderated = await sdk.classifiers.moderate_chat_async(
                model="mistral-moderation-latest", inputs=[{"role": "user", "content": "hello"}])
            classified = await sdk.classifiers.classify_async(model="mistral-moderation-latest", inputs=["hi"])
            chat_classified = await sdk.classifiers.classify_chat_async(
                model="mistral-moderation-latest", input={"messages": [{"role": "user", "content": "hi"}]})
            vectors = await sdk.embeddings.create_async(model="codestral-embed", inputs=["x"], output_dimension=32,
                                                        output_dtype="int8")
            thinking = await sdk.chat.complete_async(model="mistral-small-latest", messages=user("6 * 7?"),
                                                     reasoning_effort="high")
            return ocr, moderated, chat_moderated, classified, chat_classified, vectors, thinking

    ocr, moderated, chat_moderated, classified, chat_classified, vectors, thinking = asyncio.run(go())
    assert ocr.pages[0].markdown.startswith("# Invoice INV-2041")
    assert moderated.results[0].categories["violence_and_threats"]
    assert not any(chat_moderated.results[0].categories.values())
    assert "moderation" in classified.results[0] and "moderation" in chat_classified.results[0]
    assert len(vectors.data[0].embedding) == 32
    assert thinking.choices[0].message.content[0].type == "thinking"
