"""The offline server behaves like the hosted API in time, errors, unserved endpoints and sampling."""

from __future__ import annotations

import json
import re
import time

import httpx
import pytest
from jsonschema import Draft202012Validator
from mistralai.client import Mistral, errors

from mistral_magic.offline import OfflineServer
from mistral_magic.offline.faults import DEMO_PACE

MODEL = "mistral-small-latest"


def user(text):
    return [{"role": "user", "content": text}]


def faults(**plan):
    return {"X-Offline-Faults": json.dumps(plan)}


@pytest.fixture
def http(offline_server):
    with httpx.Client(base_url=offline_server.url, timeout=60,
                      headers={"Authorization": f"Bearer {offline_server.api_key}"}) as client:
        yield client


# --- time ---------------------------------------------------------------------------------------

def test_a_whole_answer_takes_the_time_of_its_stream(sdk):
    plan = faults(ttft_ms=100, token_delay_ms=20)
    ask = {"model": MODEL, "messages": user("Tell me about tides"), "max_tokens": 40, "random_seed": 1}
    sdk.chat.complete(**ask)  # the tokenizer is loaded before the clock starts
    started = time.monotonic()
    whole = sdk.chat.complete(**ask, http_headers=plan)
    elapsed = time.monotonic() - started
    steps = len([e for e in sdk.chat.stream(**ask, http_headers=plan)]) - 1  # less the role chunk
    assert steps == whole.usage.completion_tokens == 40
    # First token, then one delay per further token, as the stream spends them.
    assert elapsed >= (100 + 20 * (steps - 1)) / 1000


def test_fim_and_the_server_wide_plan_pace_whole_answers_too():
    with OfflineServer(faults={"token_delay_ms": 30}) as server:
        sdk = Mistral(api_key=server.api_key, server_url=server.url)
        started = time.monotonic()
        fim = sdk.fim.complete(model="codestral-latest", prompt="def add(a, b):\n", max_tokens=12)
        assert time.monotonic() - started >= 0.03 * (fim.usage.completion_tokens - 1)
        started = time.monotonic()
        answer = sdk.chat.complete(model=MODEL, messages=user("hi"), max_tokens=15)
        assert time.monotonic() - started >= 0.03 * (answer.usage.completion_tokens - 1)


def test_the_demo_pace_is_a_plan_the_server_takes():
    assert DEMO_PACE.ttft_ms > 0 and DEMO_PACE.token_delay_ms > 0
    with OfflineServer(faults=DEMO_PACE) as server:
        assert server.faults.token_delay_ms == DEMO_PACE.token_delay_ms
        server.set_faults(None)  # a test's reset clears the pace as well
        assert server.faults.token_delay_ms == 0


# --- endpoints the offline server does not serve ---------------------------------------------------

@pytest.mark.parametrize("method, path, hint", [
    ("POST", "/v1/audio/voices", "no %mistral feature"),
    ("PATCH", "/v1/audio/voices/v_1", "no %mistral feature"),
    ("GET", "/v1/libraries/00000000-0000-4000-8000-000000000000/share", "no %mistral feature"),
    ("DELETE", "/v1/models/ft:abc", "%mistral models"),
    ("DELETE", "/v1/audio/voices/v_1", "no %mistral feature"),
    ("POST", "/v1/agents/completions", "%%mistral --agent NAME"),
    ("POST", "/models/chat/completions", "server_url"),
    ("POST", "/v1/projects/p/locations/europe-west4/publishers/mistralai/models/mistral-small-2603:rawPredict",
     "server_url"),
])
def test_a_spec_path_not_served_says_so_in_the_error_shape(http, method, path, hint):
    response = http.request(method, path, json={})
    assert response.status_code == 404
    body = response.json()
    assert set(body) == {"object", "message", "type", "param", "code"} and body["object"] == "error"
    assert "not available offline" in body["message"] and hint in body["message"]
    assert method in body["message"]


def test_the_sdk_surfaces_the_message(sdk):
    with pytest.raises(errors.SDKError) as caught:
        sdk.beta.libraries.accesses.list(library_id="00000000-0000-4000-8000-000000000000")
    assert caught.value.status_code == 404 and "not available offline" in caught.value.body


def test_a_path_in_no_spec_stays_a_plain_404_and_a_wrong_method_405(http):
    for path in ("/v1/chat/completion", "/v1/nonsense", "/v3/agents"):
        response = http.post(path, json={})
        assert response.status_code == 404 and response.json() == {"detail": "Not Found"}
    wrong = http.put("/v1/files")
    assert wrong.status_code == 405 and wrong.json() == {"detail": "Method Not Allowed"}


def test_observability_answers_in_its_documented_error_shape(http):
    response = http.get("/v1/observability/judges")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert detail["error_code"] == "FEATURE_NOT_SUPPORTED" and "not available offline" in detail["message"]


# --- errors as the hosted API sends them ---------------------------------------------------------------

def test_401_is_the_hosted_body(offline_server):
    response = httpx.post(offline_server.url + "/v1/chat/completions", json={},
                          headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401 and response.json() == {"detail": "Unauthorized"}


def test_delete_batch_job_as_the_spec_has_it(sdk):
    job = sdk.batch.jobs.create(endpoint="/v1/chat/completions", model=MODEL,
                                requests=[{"custom_id": str(i), "body": {"messages": user("x")}} for i in range(30)])
    deleted = sdk.batch.jobs.delete(job_id=job.id)
    assert deleted.id == job.id and deleted.deleted is True and deleted.object == "batch"
    with pytest.raises(errors.SDKError) as caught:
        sdk.batch.jobs.get(job_id=job.id)
    assert caught.value.status_code == 404
    with pytest.raises(errors.SDKError):
        sdk.batch.jobs.delete(job_id=job.id)


def test_inline_batches_write_their_output_and_error_files(sdk):
    job = sdk.batch.jobs.create(endpoint="/v1/chat/completions", model=MODEL, requests=[
        {"custom_id": "good", "body": {"messages": user("hi"), "max_tokens": 5}},
        {"custom_id": "bad", "body": {"messages": "not a list"}}])
    deadline = time.monotonic() + 30
    while (job := sdk.batch.jobs.get(job_id=job.id)).status not in ("SUCCESS", "FAILED"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job.outputs is None  # without inline=True the lines are in the files only
    output = [json.loads(line) for line in sdk.files.download(file_id=job.output_file).read().splitlines()]
    failed = [json.loads(line) for line in sdk.files.download(file_id=job.error_file).read().splitlines()]
    assert [(o["custom_id"], o["response"]["status_code"]) for o in output] == [("good", 200)]
    assert [(o["custom_id"], o["response"]["status_code"]) for o in failed] == [("bad", 422)]
    assert set(output[0]) == {"id", "custom_id", "response", "error"}
    assert sdk.files.retrieve(file_id=job.output_file).purpose == "batch"


def test_an_audio_upload_is_422_with_the_expected_purposes(sdk, offline_server):
    with pytest.raises(errors.SDKError) as caught:
        sdk.files.upload(file={"file_name": "talk.mp3", "content": b"ID3"}, purpose="audio")
    assert caught.value.status_code == 422
    (detail,) = json.loads(caught.value.body)["detail"]
    assert detail["loc"] == ["body", "purpose"] and detail["input"] == "audio"
    assert detail["ctx"] == {"expected": "'fine-tune', 'batch' or 'ocr'"}


# --- the `pattern` keyword ------------------------------------------------------------------------------

def _schema(**props):
    return {"type": "json_schema", "json_schema": {"name": "p", "strict": True, "schema": {
        "type": "object", "properties": props, "required": list(props), "additionalProperties": False}}}


def test_pattern_takes_the_matching_text(sdk):
    fmt = _schema(order={"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"},
                  zip={"type": "string", "pattern": r"^\d{5}$"})
    text = "Extract the fields: order XKQ-2931 shipped to 75011 Paris on Monday."
    value = json.loads(sdk.chat.complete(model=MODEL, messages=user(text), response_format=fmt)
                       .choices[0].message.content)
    assert value == {"order": "XKQ-2931", "zip": "75011"}


def test_pattern_is_met_when_the_text_has_no_match(sdk):
    props = {"sku": {"type": "string", "pattern": r"^SKU-[0-9a-f]{6}$"},
             "phone": {"type": "string", "pattern": r"^\+33 \d \d{2} \d{2} \d{2} \d{2}$", "maxLength": 17},
             "tags": {"type": "array", "items": {"type": "string", "pattern": "^#[a-z]+$"}, "minItems": 2}}
    fmt = _schema(**props)
    for seed in range(5):
        value = json.loads(sdk.chat.complete(model=MODEL, messages=user("A lamp, nothing else."),
                                             response_format=fmt, random_seed=seed).choices[0].message.content)
        Draft202012Validator(fmt["json_schema"]["schema"]).validate(value)
        assert re.fullmatch(r"SKU-[0-9a-f]{6}", value["sku"])


# --- answers without a seed vary; with one they do not ---------------------------------------------------

def test_unseeded_answers_vary_seeded_ones_do_not():
    ask = {"model": MODEL, "messages": user("Compare rivers and lakes for kayaking")}
    with OfflineServer() as server:
        sdk = Mistral(api_key=server.api_key, server_url=server.url)
        unseeded = [sdk.chat.complete(**ask).choices[0].message.content for _ in range(3)]
        seeded = [sdk.chat.complete(**ask, random_seed=9).choices[0].message.content for _ in range(2)]
        greedy = [sdk.chat.complete(**ask, temperature=0).choices[0].message.content for _ in range(2)]
        streamed = "".join(e.data.choices[0].delta.content or "" for e in sdk.chat.stream(**ask))
    assert len(set(unseeded)) == 3 and streamed not in unseeded
    assert seeded[0] == seeded[1] and greedy[0] == greedy[1]
    # Reproducible per server seed and request count: a fresh server answers the same sequence.
    with OfflineServer() as again:
        sdk = Mistral(api_key=again.api_key, server_url=again.url)
        assert [sdk.chat.complete(**ask).choices[0].message.content for _ in range(3)] == unseeded
    with OfflineServer(seed=1) as other:
        sdk = Mistral(api_key=other.api_key, server_url=other.url)
        assert sdk.chat.complete(**ask).choices[0].message.content != unseeded[0]


def test_the_first_answer_to_each_request_does_not_depend_on_what_came_before():
    """Concurrent rows keep their answers however their requests interleave."""
    asks = [{"model": MODEL, "messages": user(f"Describe item {i}")} for i in range(3)]
    with OfflineServer() as one, OfflineServer() as two:
        a = Mistral(api_key=one.api_key, server_url=one.url)
        b = Mistral(api_key=two.api_key, server_url=two.url)
        forward = [a.chat.complete(**ask).choices[0].message.content for ask in asks]
        backward = [b.chat.complete(**ask).choices[0].message.content for ask in reversed(asks)]
    assert forward == backward[::-1]
