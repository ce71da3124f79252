"""Tool calls as the server sends them: pieces gathered by index, calls without an index apart.

The offline server sends every call whole, with its index, in order: the easy case. The
API's `ToolCall.index` is optional (default 0) and the SDK fills a missing one with 0, so
here the SDK itself parses what another server may send: calls without an index, pieces
of parallel calls interleaved, arguments split over chunks.
"""

from __future__ import annotations

import json

from mistralai.client.models import ChatCompletionResponse, CompletionEvent

from mistral_magic.calls.events import ToolCalls, delta_events


def call(name: str | None = None, arguments: str = "", call_id: str | None = None,
         index: int | None = None) -> dict:
    out: dict = {"function": {"name": name or "", "arguments": arguments}}
    if call_id is not None:
        out["id"] = call_id
    if index is not None:
        out["index"] = index
    return out


def whole(*calls: dict) -> list[dict]:
    """The calls of a whole (not streamed) answer, as the SDK parses it."""
    body = {"id": "x", "object": "chat.completion", "model": "m", "created": 1,
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            "choices": [{"index": 0, "finish_reason": "tool_calls",
                         "message": {"role": "assistant", "content": "", "tool_calls": list(calls)}}]}
    return gathered([ChatCompletionResponse.model_validate(body).choices[0].message])


def streamed(*chunks: list[dict]) -> list[dict]:
    """The calls of a stream whose chunks carry these tool call pieces, as the SDK parses them."""
    events = [CompletionEvent.model_validate({"data": {
        "id": "x", "object": "chat.completion.chunk", "model": "m", "created": 1,
        "choices": [{"index": 0, "delta": {"tool_calls": pieces}, "finish_reason": None}]}})
        for pieces in chunks]
    return gathered([event.data.choices[0].delta for event in events])


def gathered(deltas) -> list[dict]:
    calls = ToolCalls()
    for delta in deltas:
        for event in delta_events(delta):
            calls.add(event)
    return [(c["id"], c["function"]["name"], json.loads(c["function"]["arguments"]))
            for c in calls.calls()]


PARIS = '{"city": "Paris"}'
BERLIN = '{"city": "Berlin"}'


def test_calls_of_a_whole_answer_without_an_index_stay_apart():
    assert whole(call("weather", PARIS, "abcDEF123"), call("weather", BERLIN, "xyzXYZ789")) == [
        ("abcDEF123", "weather", {"city": "Paris"}), ("xyzXYZ789", "weather", {"city": "Berlin"})]


def test_streamed_calls_without_an_index_stay_apart_and_their_pieces_join():
    assert streamed([call("weather", PARIS, "abcDEF123")], [call("weather", BERLIN, "xyzXYZ789")]) == [
        ("abcDEF123", "weather", {"city": "Paris"}), ("xyzXYZ789", "weather", {"city": "Berlin"})]
    # A call's arguments in parts: the pieces after the first carry neither id nor name.
    assert streamed([call("weather", '{"city": ', "abcDEF123")], [call(None, '"Paris"}')]) == [
        ("abcDEF123", "weather", {"city": "Paris"})]


def test_interleaved_pieces_of_parallel_calls_join_by_their_index():
    chunks = [[call("weather", '{"ci', "xyzXYZ789", index=1)],
              [call("weather", '{"city"', "abcDEF123", index=0)],
              [call(None, 'ty": "Berlin"}', index=1), call(None, ': "Paris"}', index=0)]]
    assert streamed(*chunks) == [("abcDEF123", "weather", {"city": "Paris"}),
                                 ("xyzXYZ789", "weather", {"city": "Berlin"})]
    # Index 0 sent explicitly on every piece is one call, as the hosted API streams it.
    assert streamed([call("weather", "", index=0)], [call(None, PARIS, "null", index=0)]) == [
        (None, "weather", {"city": "Paris"})]
