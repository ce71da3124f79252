"""Chat completions: from a validated request to the offline model's choices and usage.

Every choice is derived from a hash of (model, messages, random_seed, response_format,
tools, server seed): the same request with the same seed gets the same answer. With
`temperature == 0` the seed is ignored (greedy decoding does not sample). Without a
seed the hosted API samples afresh, so the offline one does too: the k-th time a
server sees the same unseeded request, k joins the hash. A fresh server therefore
answers a notebook run exactly as before (reproducible per server seed and request
count), while asking again shows another answer.

A structured answer takes its values from the user's text; when the last user
message is a re-ask (it says the previous answer was not valid, or asks to answer
again), the values come from the message that answer replied to, never from the
feedback.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import tokens
from . import instances, lengths, prose, words
from .faults import FaultPlan
from .wire import ChatRequest, ImageURLChunk, TextChunk

_ID_CHARS = string.ascii_letters + string.digits
_LIST_CUES = re.compile(r"\b(list|records?|items?|rows?|entries|table|array|several|examples)\b", re.I)
_FIELD_CUES = re.compile(r"\b(?:fields?|keys?|columns?|properties|attributes)\b\s*(?::|named|called)?\s*([\w ,]+)", re.I)


@dataclass
class Choice:
    content: str
    finish_reason: str
    tool_calls: list[dict] = field(default_factory=list)

    def completion_tokens(self) -> int:
        """Tokens of the content, or of the calls' JSON for a tool-call answer."""
        if self.tool_calls:
            calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in self.tool_calls]
            return tokens.count_text(json.dumps(calls, ensure_ascii=False))
        return tokens.count_text(self.content)


def text_of(content) -> tuple[str, int]:
    """Plain text of a message content and how many images it carried."""
    if content is None:
        return "", 0
    if isinstance(content, str):
        return content, 0
    texts, images = [], 0
    for chunk in content:
        if isinstance(chunk, TextChunk):
            texts.append(chunk.text)
        elif isinstance(chunk, ImageURLChunk):
            images += 1
    return "\n".join(texts), images


def _sampled(req: ChatRequest) -> bool:
    return req.temperature is None or req.temperature > 0


def seed_of(req: ChatRequest, server_seed: int = 0, occurrence: int = 0) -> int:
    """The hash every offline choice derives from; `occurrence` counts repeats of an unseeded request."""
    parts = [req.model, [m.model_dump(mode="json", exclude_none=True) for m in req.messages],
             req.random_seed if _sampled(req) else None,
             req.response_format.model_dump(mode="json", by_alias=True) if req.response_format else None,
             [t.model_dump(mode="json") for t in req.tools or []], server_seed]
    if occurrence:
        parts.append(occurrence)
    key = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def prompt_tokens(req: ChatRequest) -> int:
    messages = [m.model_dump(mode="json", exclude_none=True) for m in req.messages]
    tools = [t.model_dump(mode="json") for t in req.tools] if req.tools else None
    return tokens.count_messages(messages, tools)


def _stem(word: str) -> str:
    word = word.lower()
    return word[:5] if len(word) > 5 else word.rstrip("s")


def _tool_words(tool) -> set[str]:
    name_words = re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", tool.function.name)
    found = {_stem(w) for w in name_words if len(w) > 2 and w.lower() not in words.STOPWORDS}
    found |= {_stem(w) for w in words.keywords(tool.function.description, limit=12)}
    return found


def _tools_to_call(req: ChatRequest) -> list:
    tools = req.tools or []
    choice = req.tool_choice
    if not tools or choice == "none":
        return []
    if not isinstance(choice, str):
        return [t for t in tools if t.function.name == choice.function.name][:1]
    last = req.messages[-1]
    asked = {_stem(w) for w in words.keywords(text_of(last.content)[0], limit=40)} if last.role == "user" else set()
    scored = [(len(asked & _tool_words(t)), i, t) for i, t in enumerate(tools)]
    matching = [t for score, _, t in sorted(scored, key=lambda s: (-s[0], s[1])) if score > 0]
    if choice == "auto" and last.role != "user":
        return []
    if choice == "auto":
        return matching if req.parallel_tool_calls else matching[:1]
    # any / required: a call is guaranteed, the best match or else the first tool.
    return (matching if req.parallel_tool_calls else matching[:1]) or tools[:1]


def _call(tool, text: str, rng: random.Random) -> dict:
    args = instances.instance(tool.function.parameters or {"type": "object"}, text, rng)
    call_id = "".join(rng.choice(_ID_CHARS) for _ in range(9))
    return {"id": call_id, "type": "function", "index": 0,
            "function": {"name": tool.function.name, "arguments": json.dumps(args, ensure_ascii=False)}}


_INTEGER_KEYS = frozenset("year age count number order rank position quantity population stars rating".split())
_NUMBER_KEYS = frozenset("price amount score cost weight height length distance temperature".split())


def _key_schema(key: str) -> dict:
    """A JSON type guessed from a field's name, so `year` gets a number from the text."""
    last = key.split("_")[-1]
    if last in _INTEGER_KEYS:
        return {"type": "integer"}
    if last in _NUMBER_KEYS:
        return {"type": "number"}
    return {"type": "string"}


def _json_object(text: str, rng: random.Random) -> dict:
    """A JSON-mode answer without a schema: records when a list is asked for."""
    named = _FIELD_CUES.search(text)
    keys = []
    if named:
        keys = [k.strip().replace(" ", "_").lower() for k in re.split(r",|\band\b", named.group(1))]
        keys = [k for k in keys if k and k.isidentifier()][:8]
    if _LIST_CUES.search(text):
        props = {k: _key_schema(k) for k in keys or ["name", "description"]}
        count = next((int(n) for n in words.numbers(text) if n == int(n) and 1 <= n <= 20), None)
        parts = words.segments(text)
        if count and count != len(parts):
            kws = words.keywords(text, limit=count) or ["item"]
            parts = [f"{kws[i % len(kws)]} {i + 1}" for i in range(count)]
        schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "object", "properties": props}}}}
        return instances.Filler(schema, rng).make(schema, "", instances._Record("\n".join(parts)))
    if keys:
        schema = {"type": "object", "properties": {k: _key_schema(k) for k in keys}}
        return instances.instance(schema, text, rng)
    return {"answer": words.phrase(text, 12), "keywords": words.keywords(text, limit=5),
            "note": "offline answer: generated locally, not by a language model"}


def _broken(content: str) -> str:
    """A JSON answer cut short, as a model that ran out of tokens might leave it."""
    cut = content[: max(1, len(content) // 2)]
    try:
        json.loads(cut)
    except ValueError:
        return cut
    return "{" + cut


_REASK = re.compile(r"\b(?:previous|last|earlier)\s+(?:answer|response|reply)\b|\b(?:answer|try)\s+again\b"
                    r"|\bnot\s+valid\b", re.I)


def data_text(req: ChatRequest) -> str:
    """The user text a structured answer fills its values from, skipping re-ask feedback."""
    messages = req.messages
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        return ""
    i = users[-1]
    while i >= 2 and messages[i - 1].role == "assistant":
        earlier = [j for j in users if j < i - 1]
        feedback = text_of(messages[i].content)[0]
        # Only a message that reads as a re-ask is feedback: a follow-up cell after an
        # answer in another format (JSON, then a schema) asks about its own text.
        if not earlier or not _REASK.search(feedback):
            break
        i = earlier[-1]
    return text_of(messages[i].content)[0]


def _one_choice(req: ChatRequest, model: str, plan: FaultPlan, rng: random.Random, bad_json: bool) -> Choice:
    messages = req.messages
    users = [m for m in messages if m.role == "user"]
    last_user, images = text_of(users[-1].content) if users else ("", 0)
    to_call = _tools_to_call(req)
    if to_call:
        calls = [_call(t, last_user, rng) for t in to_call]
        for i, call in enumerate(calls):
            call["index"] = i
        return Choice("", "tool_calls", calls)

    prefix = ""
    if messages[-1].role == "assistant" and messages[-1].prefix:
        prefix = text_of(messages[-1].content)[0]
    fmt = req.response_format.type if req.response_format else "text"
    cut = False
    if fmt == "json_schema" and req.response_format.json_schema:
        value, cut = instances.fill(req.response_format.json_schema.schema_, data_text(req), rng)
        content = json.dumps(value, ensure_ascii=False)
        if cut:
            # The schema asked for more than an answer holds: cut off, as a model's would be.
            content = content[: min(len(content) - 1, instances.MAX_CHARS)]
    elif fmt == "json_object":
        content = json.dumps(_json_object(data_text(req), rng), ensure_ascii=False)
    else:
        content = _text(req, model, plan, rng, last_user, images)
    if fmt != "text" and bad_json:
        content = _broken(content)
    if prefix:
        content = prefix + ("" if prefix.endswith((" ", "\n")) else " ") + content
    content, reason = lengths.finish(content, req.stops(), req.max_tokens, "length" if cut else "stop")
    return Choice(content, reason)


def _text(req: ChatRequest, model: str, plan: FaultPlan, rng, last_user: str, images: int) -> str:
    messages = req.messages
    tail = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        tail.append(message)
    if tail:
        calls = {c.id: c.function.name for m in messages if m.role == "assistant" for c in m.tool_calls or []}
        results = [(m.name or calls.get(m.tool_call_id or "", "tool"), text_of(m.content)[0]) for m in reversed(tail)]
        text = prose.tool_answer(model, results, last_user)
    else:
        users = [text_of(m.content)[0] for m in messages if m.role == "user"]
        previous = users[-2] if len(users) > 1 else None
        system = next((text_of(m.content)[0] for m in messages if m.role == "system"), None)
        text = prose.answer(model, last_user, previous, system, images, rng)
    if plan.answer_tokens:
        text = lengths.pad_to(text, plan.answer_tokens, prose.filler(last_user, rng))
    return text


def complete(req: ChatRequest, model: str, plan: FaultPlan, bad_json: bool = False,
             server_seed: int = 0, repeats: Callable[[int], int] | None = None) -> list[Choice]:
    """The offline model's choices for a chat request (n of them).

    `repeats(hash)` says how many times this server saw the same request before; it
    varies unseeded, sampled answers (see the module docstring).
    """
    base = seed_of(req, server_seed)
    if repeats is not None and req.random_seed is None and _sampled(req):
        occurrence = repeats(base)
        if occurrence:
            base = seed_of(req, server_seed, occurrence)
    return [_one_choice(req, model, plan, random.Random(base + i), bad_json) for i in range(req.n or 1)]
