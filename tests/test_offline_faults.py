"""Every fault plan of the offline server, seen through the official SDK."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import httpx
import pytest
from mistralai.client import Mistral, errors
from mistralai.client.utils import BackoffStrategy, RetryConfig

from mistral_magic.money import tokens
from mistral_magic.offline import FaultPlan, OfflineServer

MODEL = "mistral-small-latest"
ASK = {"model": MODEL, "messages": [{"role": "user", "content": "Tell me about tides"}]}


def faults(**plan):
    """Per-call header carrying a fault plan."""
    return {"X-Offline-Faults": json.dumps(plan)}


@pytest.fixture
def server():
    with OfflineServer() as srv:
        yield srv


def client(srv, **kwargs):
    return Mistral(api_key=srv.api_key, server_url=srv.url, **kwargs)


def test_server_lifecycle_frees_the_port_and_knows_its_url_early():
    srv = OfflineServer(api_key="fixed")
    url = srv.url
    assert url.startswith("http://127.0.0.1:") and srv.api_key == "fixed"
    with srv:
        assert httpx.get(url + "/v1/models", headers={"Authorization": "Bearer fixed"}).status_code == 200
        assert srv.request_count("/v1/models") == 1
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v1/models")
    with OfflineServer(port=srv.port) as again:  # the port is free again
        assert again.url == url
    first, second = OfflineServer(), OfflineServer()  # each binds its port when made
    try:
        assert first.api_key != second.api_key
    finally:
        first.stop()
        second.stop()


def test_fault_plans_accept_dicts_and_replace_at_run_time(offline_server):
    try:
        offline_server.set_faults({"latency_ms": 1})
        assert offline_server.faults == FaultPlan(latency_ms=1)
        offline_server.set_faults(FaultPlan(error_status=503))
        assert offline_server.faults.error_status == 503
    finally:
        offline_server.set_faults(None)
    assert offline_server.faults == FaultPlan()
    with pytest.raises(ValueError):
        FaultPlan(not_a_fault=1)


def test_bad_fault_header_is_400(offline_server, sdk):
    with pytest.raises(errors.SDKError) as caught:
        sdk.models.list(http_headers={"X-Offline-Faults": "{not json"})
    assert caught.value.status_code == 400


def test_rate_limit_429_carries_retry_after_and_the_sdk_recovers(server):
    server.set_faults({"rate_limit_rps": 2})
    plain = client(server)
    plain.models.list()
    plain.models.list()
    with pytest.raises(errors.SDKError) as caught:
        plain.models.list()
    assert caught.value.status_code == 429
    # As the hosted API sends it, `param` included.
    assert json.loads(caught.value.body) == {"object": "error", "message": "Rate limit exceeded",
                                             "type": "rate_limited", "param": None, "code": "1300"}
    assert int(caught.value.headers["retry-after"]) >= 1
    assert 0 < int(caught.value.headers["retry-after-ms"]) <= 1000
    retrying = client(server, retry_config=RetryConfig("backoff", BackoffStrategy(50, 2000, 1.5, 10000), False))
    started = time.monotonic()
    for _ in range(3):
        retrying.chat.complete(**ASK)
    # 3 more requests at 2/s: at least one had to wait for the window to slide.
    assert time.monotonic() - started >= 0.3


def test_error_on_nth_gives_that_status_on_that_request(server):
    server.set_faults({"error_status": 503, "error_on_nth": [2]})
    sdk = client(server)
    sdk.chat.complete(**ASK)
    with pytest.raises(errors.SDKError) as caught:
        sdk.chat.complete(**ASK)
    assert caught.value.status_code == 503 and json.loads(caught.value.body)["object"] == "error"
    sdk.chat.complete(**ASK)
    sdk.models.list()  # counted per path: the models path has its own numbering
    with pytest.raises(errors.SDKError):
        sdk.models.list()


def test_error_on_nth_is_retried_by_the_sdk(server):
    server.set_faults({"error_status": 502, "error_on_nth": 1})
    retrying = client(server, retry_config=RetryConfig("backoff", BackoffStrategy(10, 50, 1.5, 5000, 0), False))
    assert retrying.chat.complete(**ASK).choices[0].message.content
    assert server.request_count("/v1/chat/completions") == 2


def test_error_rate_is_deterministic_under_seed(server):
    def outcomes(seed):
        server.set_faults({"error_status": 500, "error_rate": 0.5, "seed": seed})
        with httpx.Client(headers={"Authorization": f"Bearer {server.api_key}"}) as http:
            return [http.get(server.url + "/v1/models").status_code for _ in range(12)]

    first = outcomes(7)
    assert set(first) == {200, 500}
    assert outcomes(7) == first
    assert outcomes(8) != first


def test_drop_stream_after_cuts_the_connection(sdk):
    received = []
    with pytest.raises(Exception) as caught:
        for event in sdk.chat.stream(**ASK, http_headers=faults(drop_stream_after=5)):
            received.append(event.data.choices[0].delta.content)
    assert "incomplete" in str(caught.value).lower() or "closed" in str(caught.value).lower()
    assert received[1:] and len(received) == 6  # the role chunk, then five tokens


def test_bad_json_rate_breaks_json_answers(sdk):
    answer = sdk.chat.complete(**ASK, response_format={"type": "json_object"}, http_headers=faults(bad_json_rate=1))
    with pytest.raises(ValueError):
        json.loads(answer.choices[0].message.content)
    good = sdk.chat.complete(**ASK, response_format={"type": "json_object"})
    assert isinstance(json.loads(good.choices[0].message.content), dict)


def test_ttft_delays_the_first_token_and_the_whole_answer(sdk):
    started = time.monotonic()
    stream = sdk.chat.stream(**ASK, http_headers=faults(ttft_ms=300))
    next(iter(stream))
    assert time.monotonic() - started >= 0.3
    for _ in stream:
        pass
    started = time.monotonic()
    sdk.chat.complete(**ASK, http_headers=faults(ttft_ms=300))
    assert time.monotonic() - started >= 0.3


def test_token_delay_paces_the_stream(sdk):
    started = time.monotonic()
    count = sum(1 for _ in sdk.chat.stream(**ASK, max_tokens=11, http_headers=faults(token_delay_ms=30)))
    assert count == 12 and time.monotonic() - started >= 0.3


def test_latency_applies_to_any_endpoint(sdk):
    started = time.monotonic()
    sdk.models.list(http_headers=faults(latency_ms=250))
    sdk.embeddings.create(model="mistral-embed", inputs=["x"], http_headers=faults(latency_ms=250))
    assert time.monotonic() - started >= 0.5


def test_answer_tokens_gives_exactly_that_many_tokens(offline_server, sdk):
    answer = sdk.chat.complete(**ASK, http_headers=faults(answer_tokens=4000))
    assert answer.usage.completion_tokens == 4000 == tokens.count_text(answer.choices[0].message.content)
    # Raw HTTP here: the SDK parses each event slowly (~1.5 ms), the server is not the limit.
    headers = {"Authorization": f"Bearer {offline_server.api_key}", **faults(answer_tokens=4000)}
    started = time.monotonic()
    with httpx.stream("POST", offline_server.url + "/v1/chat/completions", headers=headers,
                      json={**ASK, "stream": True}) as response:
        count = sum(1 for line in response.iter_lines() if line.startswith("data: {"))
    assert count >= 3900 and time.monotonic() - started < 5
    cut = sdk.chat.complete(**ASK, max_tokens=50, http_headers=faults(answer_tokens=4000))
    assert cut.usage.completion_tokens == 50 and cut.choices[0].finish_reason == "length"


@pytest.mark.parametrize("count", [2, 3, 17])
def test_shuffled_embeddings_come_out_of_order_each_with_its_index(sdk, count):
    texts = [f"ticket number {i}" for i in range(count)]
    plain = sdk.embeddings.create(model="mistral-embed", inputs=texts)
    mixed = sdk.embeddings.create(model="mistral-embed", inputs=texts,
                                  http_headers=faults(shuffle_embeddings=True))
    order = [d.index for d in mixed.data]
    assert order != sorted(order) and sorted(order) == list(range(count))
    by_index = {d.index: d.embedding for d in mixed.data}
    assert [by_index[i] for i in range(count)] == [d.embedding for d in plain.data]
    again = sdk.embeddings.create(model="mistral-embed", inputs=texts,
                                  http_headers=faults(shuffle_embeddings=True))
    assert [d.index for d in again.data] == order  # the same plan, the same order


def test_header_plan_overrides_the_server_plan(offline_server, sdk):
    try:
        offline_server.set_faults({"error_status": 500})
        with pytest.raises(errors.SDKError):
            sdk.models.list()
        assert sdk.models.list(http_headers=faults(error_status=None)).data
    finally:
        offline_server.set_faults(None)


def test_command_line_serves_and_prints_url_and_key():
    proc = subprocess.Popen([sys.executable, "-m", "mistral_magic.offline", "--api-key", "cli-key",
                             "--latency-ms", "1"], stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[-1]
        assert proc.stdout.readline().strip() == "API key: cli-key"
        response = httpx.get(url + "/v1/models", headers={"Authorization": "Bearer cli-key"}, timeout=10)
        assert response.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proc.stdout.close()


def test_model_calls_carry_rate_limit_headers_that_count_down(server):
    headers = {"Authorization": f"Bearer {server.api_key}"}
    first = httpx.post(server.url + "/v1/chat/completions", json=ASK, headers=headers, timeout=30)
    second = httpx.post(server.url + "/v1/chat/completions", json=ASK, headers=headers, timeout=30)
    usage = second.json()["usage"]["total_tokens"]
    assert second.headers["x-ratelimit-tokens-query-cost"] == str(usage)
    for window in ("req-minute", "tokens-minute", "tokens-month"):
        limit = int(second.headers[f"x-ratelimit-limit-{window}"])
        assert int(second.headers[f"x-ratelimit-remaining-{window}"]) < int(
            first.headers[f"x-ratelimit-remaining-{window}"]) < limit
    assert int(second.headers["x-ratelimit-remaining-req-minute"]) == int(
        second.headers["x-ratelimit-limit-req-minute"]) - 2
    # Under a fault plan's rate, the stated limit is that rate per minute.
    paced = httpx.post(server.url + "/v1/chat/completions", json=ASK, timeout=30,
                       headers={**headers, **faults(rate_limit_rps=5)})
    assert paced.headers["x-ratelimit-limit-req-minute"] == "300"
    assert "x-ratelimit-limit-req-minute" not in httpx.get(server.url + "/v1/models", headers=headers).headers
