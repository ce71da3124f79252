"""Typed stream events: what a chat answer is made of, whether it streams or not.

A chunk of a stream (or a whole message) is read into events of three kinds, as
`llm` and pydantic-ai read them: `TextDelta` (answer text), `ThinkingDelta` (the
reasoning of a model that thinks: `ThinkChunk`s, never part of the answer) and
`ToolCallDelta` (a piece of a tool call, gathered by its index with `ToolCalls`).
Content is a string, or a list of chunks (SDK models or plain dicts) in which text
and thinking chunks may come in any order; other chunks (images, references) are
not text and are skipped::

    calls = ToolCalls()
    for event in delta_events(chunk.choices[0].delta):
        if event.kind == "text": ...
        elif event.kind == "thinking": ...
        else: calls.add(event)
    calls.calls()   # [{"id": ..., "type": "function", "function": {"name", "arguments"}}]
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["text", "thinking", "tool_call"]


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer's text."""

    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True)
class ThinkingDelta:
    """A piece of the model's reasoning (a thinking chunk's text)."""

    text: str
    kind: Literal["thinking"] = "thinking"


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of one tool call: its id and name come once, its arguments may come in parts.

    `index` is None when the server sent none (see `ToolCalls.add`).
    """

    index: int | None
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    kind: Literal["tool_call"] = "tool_call"


Event = TextDelta | ThinkingDelta | ToolCallDelta


def _field(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def content_events(content: Any) -> Iterator[TextDelta | ThinkingDelta]:
    """Text and thinking events of a message or delta `content` (a string or chunks)."""
    if not content:
        return
    if isinstance(content, str):
        yield TextDelta(content)
        return
    for chunk in content:
        kind = _field(chunk, "type")
        if kind == "text":
            text = _field(chunk, "text") or ""
            if text:
                yield TextDelta(text)
        elif kind == "thinking":
            parts = _field(chunk, "thinking") or []
            text = parts if isinstance(parts, str) else "".join(
                _field(part, "text") or "" for part in parts if _field(part, "type", "text") == "text")
            if text:
                yield ThinkingDelta(text)


def _arguments(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _sent_index(call: Any) -> int | None:
    """The index the server sent with a tool call, or None: the SDK fills a missing one with 0."""
    sent = getattr(call, "model_fields_set", None)
    if sent is not None and "index" not in sent:
        return None
    index = _field(call, "index")
    return None if index is None else int(index)


def call_events(tool_calls: Any) -> Iterator[ToolCallDelta]:
    """One event per tool call piece of a delta or message."""
    for call in tool_calls or []:
        function = _field(call, "function")
        call_id = _field(call, "id")
        yield ToolCallDelta(
            index=_sent_index(call),
            # The SDK fills a missing id with the string "null".
            id=None if call_id in (None, "", "null") else str(call_id),
            name=_field(function, "name"),
            arguments=_arguments(_field(function, "arguments")),
        )


def delta_events(delta: Any) -> Iterator[Event]:
    """The events of one streamed delta (or of a whole message: the same fields)."""
    yield from content_events(_field(delta, "content"))
    yield from call_events(_field(delta, "tool_calls"))


def text_of(content: Any) -> str:
    """The answer text of a content: its text chunks joined (thinking left out)."""
    return "".join(event.text for event in content_events(content) if event.kind == "text")


def thinking_of(content: Any) -> str:
    """The reasoning a content carries: its thinking chunks' text joined."""
    return "".join(event.text for event in content_events(content) if event.kind == "thinking")


class ToolCalls:
    """Tool call pieces gathered by index into whole calls (the API's wire form)."""

    def __init__(self) -> None:
        self._calls: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, event: ToolCallDelta) -> None:
        key = event.index
        if key is None:
            # No index sent (the spec makes it optional): a piece with the id of a call so far
            # goes on with it, as does one with neither id nor name; any other is a new call.
            known = [k for k, c in self._calls.items() if event.id and c["id"] == event.id]
            if known or (not event.id and not event.name and self._calls):
                key = known[0] if known else max(self._calls)
            else:
                key = max(self._calls, default=-1) + 1
        call = self._calls.setdefault(key, {"id": None, "name": "", "arguments": []})
        if event.id:
            call["id"] = event.id
        if event.name:
            call["name"] = event.name
        if event.arguments:
            call["arguments"].append(event.arguments)

    def calls(self) -> list[dict]:
        """The calls in index order: ``{"id", "type": "function", "function": {"name", "arguments"}}``."""
        return [
            {"id": call["id"], "type": "function",
             "function": {"name": call["name"], "arguments": "".join(call["arguments"])}}
            for _, call in sorted(self._calls.items())
        ]
