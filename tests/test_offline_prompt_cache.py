"""The offline server's prompt cache, through the official SDK and against the spec: a repeated
prefix under the same prompt_cache_key and model is reported cached in 64-token blocks."""

from __future__ import annotations

import httpx
import pytest
from offline_spec import check_fixture, spec_fixture  # noqa: F401

MODEL = "mistral-small-latest"
SYSTEM = "Answer as a careful librarian who cites the shelf of every book she mentions. " * 12


def ask(sdk, messages, key=None, model=MODEL, stream=False):
    options = {"model": model, "messages": messages, "max_tokens": 30}
    if key is not None:
        options["prompt_cache_key"] = key
    if not stream:
        return sdk.chat.complete(**options).usage
    with sdk.chat.stream(**options) as events:
        return [e.data.usage for e in events if e.data.usage is not None][-1]


def cached(usage) -> int | None:
    details = (usage.__pydantic_extra__ or {}).get("prompt_tokens_details")
    return None if details is None else details["cached_tokens"]


def conversation(turns: int) -> list[dict]:
    messages = [{"role": "system", "content": SYSTEM}]
    for i in range(turns):
        messages += [{"role": "user", "content": f"Question {i} about the catalogue?"},
                     {"role": "assistant", "content": f"Answer {i}: shelf {i} holds it. " * 6}]
    return messages + [{"role": "user", "content": "And the next one?"}]


def test_a_repeated_prefix_under_one_key_is_cached_in_blocks_of_64(sdk):
    first = ask(sdk, conversation(1), key="lib-a")
    assert cached(first) == 0
    again = ask(sdk, conversation(2), key="lib-a")
    assert cached(again) >= 128 and cached(again) % 64 == 0 and cached(again) < again.prompt_tokens
    # Streamed: the last chunk's usage says the same.
    streamed = ask(sdk, conversation(3), key="lib-a", stream=True)
    assert cached(streamed) > cached(again) and cached(streamed) % 64 == 0
    # Another key, another model, or no key: nothing was seen there.
    assert cached(ask(sdk, conversation(2), key="lib-b")) == 0
    assert cached(ask(sdk, conversation(2), key="lib-a", model="ministral-8b-latest")) == 0
    assert cached(ask(sdk, conversation(2))) is None
    # An alias and its model share one cache.
    assert cached(ask(sdk, conversation(2), key="lib-a", model="mistral-small-2603")) > 0


def test_a_prompt_under_64_tokens_never_hits(sdk):
    short = [{"role": "user", "content": "Hi there."}]
    ask(sdk, short, key="short")
    assert cached(ask(sdk, short, key="short")) == 0


def test_usage_with_and_without_a_key_against_the_spec(offline_server, spec, check):
    """Without a key the usage is exactly the spec's UsageInfo. With one it adds
    prompt_tokens_details, which the spec's chat UsageInfo lacks (MISTRAL_FACTS_WAVE3 §6) and
    its own later UsageInfo (the speech stream's) defines: checked against that."""
    from jsonschema import Draft202012Validator

    headers = {"Authorization": f"Bearer {offline_server.api_key}"}
    body = {"model": MODEL, "messages": conversation(1), "max_tokens": 10}
    plain = httpx.post(f"{offline_server.url}/v1/chat/completions", json=body, headers=headers,
                       timeout=30).json()
    assert "prompt_tokens_details" not in plain["usage"]
    check(plain, "/v1/chat/completions", "post")
    for _ in range(2):
        keyed = httpx.post(f"{offline_server.url}/v1/chat/completions", headers=headers, timeout=30,
                           json={**body, "prompt_cache_key": "spec-check"}).json()
    details = keyed["usage"].pop("prompt_tokens_details")
    check(keyed, "/v1/chat/completions", "post")
    defs = (spec["paths"]["/v1/audio/speech"]["post"]["responses"]["200"]["content"]
            ["text/event-stream"]["schema"]["$defs"])
    Draft202012Validator(defs["PromptTokensDetails"]).validate(details)
    assert details["cached_tokens"] > 0


@pytest.mark.parametrize("key", [None, "k"])
def test_the_sdk_accepts_the_usage(sdk, key):
    usage = ask(sdk, conversation(1), key=key)
    assert usage.prompt_tokens > 64 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
