"""Reasoning offline: thinking chunks whole and streamed, counted as completion tokens, refused like the hosted API."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from mistralai.client.models import TextChunk, ThinkChunk

from mistral_magic.money import tokens

QUESTION = [{"role": "user", "content": "What is 17 * 23? Explain the multiplication."}]


def post(server, body):
    return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {server.api_key}"})


def split(content):
    """(thinking text, answer text) of a message content list."""
    thinking = "".join(part.text for chunk in content if isinstance(chunk, ThinkChunk) for part in chunk.thinking)
    answer = "".join(chunk.text for chunk in content if isinstance(chunk, TextChunk))
    return thinking, answer


def test_high_effort_answers_with_a_thinking_chunk_then_the_answer(sdk):
    response = sdk.chat.complete(model="mistral-small-latest", messages=QUESTION, reasoning_effort="high",
                                 random_seed=3)
    content = response.choices[0].message.content
    assert [type(chunk) for chunk in content] == [ThinkChunk, TextChunk]
    thinking, answer = split(content)
    assert thinking.startswith("Offline reasoning trace") and "17 * 23 = 391" in thinking
    assert answer.startswith("*Offline answer from mistral-small-latest")
    # Thinking tokens are completion tokens, with the [THINK] and [/THINK] control tokens.
    assert response.usage.completion_tokens == tokens.count_text(thinking) + 2 + tokens.count_text(answer)
    assert response.usage.prompt_tokens == tokens.count_messages(QUESTION)


def test_no_effort_or_none_answers_in_plain_text(sdk):
    for extra in ({}, {"reasoning_effort": "none"}):
        content = sdk.chat.complete(model="mistral-medium-3-5", messages=QUESTION, **extra).choices[0].message.content
        assert isinstance(content, str) and "Offline reasoning" not in content


def test_magistral_thinks_natively_and_longer_when_asked_for_high(sdk):
    native = sdk.chat.complete(model="magistral-medium-latest", messages=QUESTION, random_seed=1)
    with_prompt = sdk.chat.complete(model="magistral-medium-latest", messages=QUESTION, random_seed=1,
                                    prompt_mode="reasoning")
    high = sdk.chat.complete(model="magistral-medium-latest", messages=QUESTION, random_seed=1,
                             reasoning_effort="high")
    off = sdk.chat.complete(model="magistral-medium-latest", messages=QUESTION, reasoning_effort="none")
    native_thinking = split(native.choices[0].message.content)[0]
    assert native_thinking and split(with_prompt.choices[0].message.content)[0]
    high_thinking = split(high.choices[0].message.content)[0]
    assert len(high_thinking.split("\n\n")) > len(native_thinking.split("\n\n"))
    assert high.usage.completion_tokens > native.usage.completion_tokens
    assert isinstance(off.choices[0].message.content, str)


def test_thinking_length_grows_with_the_effort():
    import random

    from mistral_magic.offline import reasoning

    lengths = [len(reasoning.thinking(level, "Compare lakes and rivers for kayaking", None, [], random.Random(0)))
               for level in ("minimal", "low", "medium", "high", "xhigh")]
    assert lengths == sorted(lengths) and len(set(lengths)) == 5


def test_the_same_seed_gives_the_same_thinking(sdk):
    first, second = (sdk.chat.complete(model="mistral-small-latest", messages=QUESTION, reasoning_effort="high",
                                       random_seed=7).choices[0].message.content for _ in range(2))
    assert split(first) == split(second)


@pytest.mark.parametrize("model, extra, message", [
    ("mistral-small-latest", {"reasoning_effort": "medium"},
     "reasoning_effort='medium' is not supported for this model. Must be one of (<ReasoningEffort.none: 'none'>, "
     "<ReasoningEffort.high: 'high'>)"),
    ("mistral-small-latest", {"prompt_mode": "reasoning"}, "Reasoning prompt mode is not enabled for this model"),
    ("mistral-large-latest", {"reasoning_effort": "high"}, "reasoning_effort='high' is not supported for this model"),
    ("codestral-latest", {"prompt_mode": "reasoning"}, "Reasoning prompt mode is not enabled for this model"),
])
def test_a_reasoning_request_the_model_cannot_serve_is_refused_as_hosted(offline_server, model, extra, message):
    response = post(offline_server, {"model": model, "messages": QUESTION, **extra})
    assert response.status_code == 400
    body = response.json()
    assert body["message"].startswith(message)
    assert body["type"] == "invalid_request_invalid_args" and body["code"] == "3051"


def test_none_is_accepted_by_models_that_cannot_reason(sdk):
    content = sdk.chat.complete(model="mistral-large-latest", messages=QUESTION,
                                reasoning_effort="none").choices[0].message.content
    assert isinstance(content, str)


def test_the_stream_sends_thinking_lists_then_the_closing_chunk_with_the_first_text_then_strings(sdk):
    events = [e.data for e in sdk.chat.stream(model="mistral-small-latest", messages=QUESTION,
                                              reasoning_effort="high", random_seed=3)]
    deltas = [e.choices[0].delta.content for e in events][1:]  # the first frame gives the role
    shapes = []
    for delta in deltas:
        if isinstance(delta, str):
            shapes.append("text")
        elif len(delta) == 2:
            assert isinstance(delta[0], ThinkChunk) and delta[0].closed and isinstance(delta[1], TextChunk)
            shapes.append("transition")
        else:
            assert isinstance(delta[0], ThinkChunk) and delta[0].closed is False
            shapes.append("thinking")
    first_text = shapes.index("transition")
    assert set(shapes[:first_text]) == {"thinking"} and shapes.count("transition") == 1
    assert set(shapes[first_text + 1:]) == {"text"}
    thinking = "".join(part.text for d in deltas if not isinstance(d, str) for chunk in d
                       if isinstance(chunk, ThinkChunk) for part in chunk.thinking)
    answer = "".join(d if isinstance(d, str) else d[1].text for d in deltas[first_text:])
    whole = sdk.chat.complete(model="mistral-small-latest", messages=QUESTION, reasoning_effort="high",
                              random_seed=3)
    assert (thinking, answer) == split(whole.choices[0].message.content)
    assert events[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert events[-1].choices[0].finish_reason == "stop"


def test_async_complete_and_stream_parse_thinking(offline_server):
    from mistralai.client import Mistral

    async def go():
        async with Mistral(api_key=offline_server.api_key, server_url=offline_server.url) as client:
            whole = await client.chat.complete_async(model="magistral-small-latest", messages=QUESTION)
            stream = await client.chat.stream_async(model="magistral-small-latest", messages=QUESTION)
            return whole, [e.data async for e in stream]

    whole, events = asyncio.run(go())
    assert isinstance(whole.choices[0].message.content[0], ThinkChunk)
    assert any(isinstance(e.choices[0].delta.content, list) for e in events)


def test_max_tokens_inside_the_thinking_ends_with_length_and_no_answer(sdk):
    response = sdk.chat.complete(model="mistral-small-latest", messages=QUESTION, reasoning_effort="high",
                                 max_tokens=12)
    choice = response.choices[0]
    assert choice.finish_reason == "length"
    assert [type(chunk) for chunk in choice.message.content] == [ThinkChunk]
    assert response.usage.completion_tokens <= 12


def test_max_tokens_after_the_thinking_cuts_the_answer(sdk):
    full = sdk.chat.complete(model="mistral-small-latest", messages=QUESTION, reasoning_effort="high", random_seed=2)
    thinking_tokens = tokens.count_text(split(full.choices[0].message.content)[0]) + 2
    cut = sdk.chat.complete(model="mistral-small-latest", messages=QUESTION, reasoning_effort="high", random_seed=2,
                            max_tokens=thinking_tokens + 5)
    assert cut.choices[0].finish_reason == "length" and cut.usage.completion_tokens <= thinking_tokens + 5
    assert split(cut.choices[0].message.content)[1]


def test_thinking_comes_before_tool_calls_too(sdk):
    weather = {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                                "parameters": {"type": "object",
                                                               "properties": {"city": {"type": "string"}},
                                                               "required": ["city"]}}}
    response = sdk.chat.complete(model="mistral-medium-3-5", reasoning_effort="high", tools=[weather],
                                 messages=[{"role": "user", "content": "What is the weather in Lyon?"}])
    choice = response.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert "call get_weather" in split(choice.message.content)[0]


def test_a_thinking_chunk_replayed_in_the_history_is_accepted_and_counted(sdk):
    first = sdk.chat.complete(model="mistral-small-latest", messages=QUESTION, reasoning_effort="high")
    history = [*QUESTION, first.choices[0].message.model_dump(by_alias=True, exclude_none=True),
               {"role": "user", "content": "Now multiply that by 3."}]
    second = sdk.chat.complete(model="mistral-small-latest", messages=history, reasoning_effort="high")
    assert "Earlier in the conversation" in split(second.choices[0].message.content)[0]
    assert second.usage.prompt_tokens > first.usage.prompt_tokens + first.usage.completion_tokens // 2
