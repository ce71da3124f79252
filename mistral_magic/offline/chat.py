"""Chat completions: from a validated request to the offline model's choices and usage.

Every choice is derived from a hash of (model, messages, random_seed, response_format,
tools, server seed): the same request with the same seed gets the same answer. With
`temperature == 0` the seed is ignored (greedy decoding does not sample). Without a
seed the hosted API samples afresh, so the offline one does too: the k-th time a
server sees the same unseeded request, k joins the hash. A fresh server therefore
answers a notebook run exactly as before (reproducible per server seed and request
count), while asking again shows another answer.

A structured answer takes its values from the user's text (and the documents that
message carries); when the last user message is a re-ask (it says the previous answer
was not valid, or asks to answer again), the values come from the message that answer
replied to, never from the feedback.

Tools (`tools.py`) decide whether the answer is tool calls; reasoning (`reasoning.py`)
adds a thinking trace before the answer; pictures and documents (`inputs.py`) are
named and quoted in it.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..money import tokens
from . import instances, jsonask, judge, lengths, prose, reasoning, tools, words
from .faults import FaultPlan
from .inputs import Attachments, plain
from .wire import ChatRequest


@dataclass
class Choice:
    content: str
    finish_reason: str
    tool_calls: list[dict] = field(default_factory=list)
    thinking: str | None = None

    def completion_tokens(self) -> int:
        """Tokens of the content (or the calls' JSON), plus the thinking and its two control tokens."""
        if self.tool_calls:
            calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in self.tool_calls]
            count = tokens.count_text(json.dumps(calls, ensure_ascii=False))
        else:
            count = tokens.count_text(self.content)
        if self.thinking is not None:
            count += tokens.count_text(self.thinking) + reasoning.MARKER_TOKENS
        return count

    def message_content(self) -> str | list[dict]:
        """`message.content`: the text, or a thinking chunk then a text chunk (the answer, if any)."""
        if self.thinking is None:
            return self.content
        chunks: list[dict] = [{"type": "thinking", "thinking": [{"type": "text", "text": self.thinking}]}]
        if self.content:
            chunks.append({"type": "text", "text": self.content})
        return chunks


def text_of(content) -> tuple[str, int]:
    """Plain text of a message content and how many images it carried."""
    if content is None or isinstance(content, str):
        return content or "", 0
    return plain(content), sum(1 for chunk in content if getattr(chunk, "type", "") == "image_url")


def _sampled(req: ChatRequest) -> bool:
    return req.temperature is None or req.temperature > 0


def seed_of(req: ChatRequest, server_seed: int = 0, occurrence: int = 0) -> int:
    """The hash every offline choice derives from; `occurrence` counts repeats of an unseeded request."""
    parts = [req.model, [m.model_dump(mode="json", exclude_none=True) for m in req.messages],
             req.random_seed if _sampled(req) else None,
             req.response_format.model_dump(mode="json", by_alias=True) if req.response_format else None,
             [t.model_dump(mode="json") for t in req.tools or []], server_seed]
    if req.reasoning_effort or req.prompt_mode:
        parts.append([req.reasoning_effort, req.prompt_mode])
    if occurrence:
        parts.append(occurrence)
    key = json.dumps(parts, sort_keys=True, ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big")


def prompt_tokens(req: ChatRequest, found: Attachments | None = None) -> int:
    """Prompt tokens as the client counts them, documents counted as their text."""
    from .inputs import counted

    messages = counted(req, found) if found else [m.model_dump(mode="json", exclude_none=True) for m in req.messages]
    tool_list = [t.model_dump(mode="json") for t in req.tools] if req.tools else None
    return tokens.count_messages(messages, tool_list) + (found.audio_tokens() if found else 0)


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


def _data_index(req: ChatRequest) -> int | None:
    """The user message a structured answer fills its values from, skipping re-ask feedback."""
    messages = req.messages
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        return None
    i = users[-1]
    while i >= 2 and messages[i - 1].role == "assistant":
        earlier = [j for j in users if j < i - 1]
        feedback = text_of(messages[i].content)[0]
        # Only a message that reads as a re-ask is feedback: a follow-up cell after an
        # answer in another format (JSON, then a schema) asks about its own text.
        if not earlier or not _REASK.search(feedback):
            break
        i = earlier[-1]
    return i


def data_text(req: ChatRequest, found: Attachments | None = None) -> str:
    """The text a structured answer fills its values from: the user's words, then their documents' text."""
    index = _data_index(req)
    if index is None:
        return ""
    text = text_of(req.messages[index].content)[0]
    documents = found.text_of(index) if found else ""
    return f"{text}\n\n{documents}" if documents else text


@dataclass
class Context:
    """Everything one request's answers are made from."""

    req: ChatRequest
    model: str  # as requested: answers name the model the way the caller did
    plan: FaultPlan
    found: Attachments = field(default_factory=Attachments)
    effort: str | None = None

    def last_user(self) -> tuple[int | None, str]:
        users = [i for i, m in enumerate(self.req.messages) if m.role == "user"]
        if not users:
            return None, ""
        return users[-1], text_of(self.req.messages[users[-1]].content)[0]

    def results(self) -> list[tuple[str, dict, str]]:
        """(tool name, its arguments, what it returned) for the tool messages ending the conversation."""
        messages = self.req.messages
        tail = []
        for message in reversed(messages):
            if message.role != "tool":
                break
            tail.append(message)
        calls = {c.id: c.function for m in messages if m.role == "assistant" for c in m.tool_calls or []}
        found = []
        for message in reversed(tail):
            function = calls.get(message.tool_call_id or "")
            args = function.arguments if function else {}
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except ValueError:
                    args = {}
            name = message.name or (function.name if function else "tool")
            found.append((name, args if isinstance(args, dict) else {}, text_of(message.content)[0]))
        return found


def _attachment_lines(ctx: Context, index: int | None, question: str) -> list[str]:
    """Answer bullets naming the pictures and documents received, and quoting the documents."""
    lines = []
    pictures = ctx.found.pictures.get(index, []) if index is not None else []
    earlier = sum(len(p) for i, p in ctx.found.pictures.items() if index is None or i < index)
    if pictures:
        described = [p.describe() for p in pictures]
        listed = described[0] if len(described) == 1 else ", ".join(described[:-1]) + " and " + described[-1]
        lines.append(f"{len(pictures)} image{'s' if len(pictures) > 1 else ''} received: {listed}. The offline "
                     "model cannot see pictures, so this describes none of them.")
    if earlier:
        lines.append(f"{earlier} earlier image{'s' if earlier > 1 else ''} in this conversation "
                     "(still in context, not seen offline).")
    for rec in ctx.found.recordings.get(index, []) if index is not None else []:
        if rec.transcript:
            lines.append(f"Recording received: {rec.describe()}. The offline model cannot hear; the "
                         f"sidecar transcript found for it reads: “{words.phrase(rec.transcript, 60)}”")
        else:
            lines.append(f"Recording received: {rec.describe()}. The offline model cannot hear, and no "
                         "sidecar transcript was found for it, so this says nothing of what it holds.")
    for doc in ctx.found.documents.get(index, []) if index is not None else []:
        text = doc.text()
        opening = words.phrase(text.replace("\n", " "), 24)
        lines.append(f"Document read: {doc.describe()}. It begins: “{opening or '(no text layer)'}”.")
        for sentence in prose.passages(text, question, 3):
            lines.append(f"From {doc.name}: “{sentence}”")
    return lines


def _thinking_context(ctx: Context, index: int | None, question: str, decision: tools.Decision) -> list[str]:
    """Reasoning paragraphs about what the request carries: attachments, tools, results, format."""
    req = ctx.req
    found = []
    pictures = ctx.found.pictures.get(index, []) if index is not None else []
    if pictures:
        found.append(f"There {'are' if len(pictures) > 1 else 'is'} {len(pictures)} image"
                     f"{'s' if len(pictures) > 1 else ''} attached. I cannot see them offline; I can only say what "
                     "they are: " + "; ".join(p.describe() for p in pictures) + ".")
    for doc in ctx.found.documents.get(index, []) if index is not None else []:
        terms = words.keywords(doc.text(), limit=5)
        found.append(f"The document {doc.describe()} is attached; its text mentions {', '.join(terms) or 'little'}. "
                     "The answer should quote it rather than guess.")
    results = ctx.results()
    if results:
        shown = "; ".join(f"{name} returned {words.phrase(content, 12)}" for name, _, content in results)
        found.append(f"The tool results are back: {shown}. The answer should rest on them and quote them.")
    elif decision.calls:
        names = ", ".join(c["function"]["name"] for c in decision.calls)
        found.append(f"A tool fits this question better than guessing: call {names} with the values the user gave.")
    elif decision.missing:
        wanted = "; ".join(f"{name} needs the {', '.join(params)}" for name, params in decision.missing)
        found.append(f"A tool fits, but the user has not said what it needs ({wanted}): ask rather than guess.")
    elif req.tools:
        found.append("Tools are available (" + ", ".join(t.function.name for t in req.tools)
                     + "), but none is needed to answer this.")
    fmt = req.response_format
    if fmt and fmt.type == "json_schema" and fmt.json_schema:
        fields = list((fmt.json_schema.schema_.get("properties") or {}).keys())[:8]
        found.append(f"The answer must be JSON matching the schema {fmt.json_schema.name}"
                     + (f" with fields {', '.join(fields)}." if fields else "."))
    elif fmt and fmt.type == "json_object":
        found.append("The answer must be a JSON object.")
    return found


def _budget(thinking: str | None, max_tokens: int | None) -> tuple[str | None, int | None, bool]:
    """Thinking cut to max_tokens, the tokens left for the answer, and whether the thinking used them all."""
    if thinking is None or max_tokens is None:
        return thinking, max_tokens, False
    used = tokens.count_text(thinking) + reasoning.MARKER_TOKENS
    if used >= max_tokens:
        return lengths.cut_tokens(thinking, max(0, max_tokens - reasoning.MARKER_TOKENS)), 0, True
    return thinking, max_tokens - used, False


def _one_choice(ctx: Context, rng: random.Random, bad_json: bool) -> Choice:
    req = ctx.req
    messages = req.messages
    index, last_user = ctx.last_user()
    decision = tools.decide(req, last_user, rng)
    calls = decision.calls
    thinking = None
    if ctx.effort:
        previous = [text_of(m.content)[0] for m in messages[: index or 0] if m.role == "user"]
        thinking = reasoning.thinking(ctx.effort, last_user, previous[-1] if previous else None,
                                      _thinking_context(ctx, index, last_user, decision), random.Random(rng.random()))
    thinking, left, spent = _budget(thinking, req.max_tokens)
    if spent:
        return Choice("", "length", [], thinking)
    if calls:
        return Choice("", "tool_calls", calls, thinking)

    prefix = ""
    if messages[-1].role == "assistant" and messages[-1].prefix:
        prefix = text_of(messages[-1].content)[0]
    fmt = req.response_format.type if req.response_format else "text"
    cut = False
    if fmt == "json_schema" and req.response_format.json_schema:
        schema, data = req.response_format.json_schema.schema_, data_text(req, ctx.found)
        judged = judge.answer(schema, data)  # "Record A: ... Record B: ...": match or rank
        value, cut = (judged, False) if judged is not None else instances.fill(schema, data, rng)
        content = json.dumps(value, ensure_ascii=False)
        if cut:
            # The schema asked for more than an answer holds: cut off, as a model's would be.
            content = content[: min(len(content) - 1, instances.MAX_CHARS)]
    elif fmt == "json_object" or jsonask.asked(_instructions(req, last_user)):
        value = jsonask.answer(_instructions(req, last_user), _json_data(ctx), rng)
        content = json.dumps(value, ensure_ascii=False)
        if fmt == "text" and jsonask.fenced(_instructions(req, last_user)):
            content = f"```json\n{content}\n```"
    elif decision.missing:
        content = prose.ask_for(ctx.model, decision.missing, last_user)
    else:
        content = _text(ctx, rng, index, last_user)
    if fmt != "text" and bad_json:
        content = _broken(content)
    if prefix:
        content = prefix + ("" if prefix.endswith((" ", "\n")) else " ") + content
    content, reason = lengths.finish(content, req.stops(), left, "length" if cut else "stop")
    return Choice(content, reason, [], thinking)


def _instructions(req: ChatRequest, last_user: str) -> str:
    """What says which JSON to write: the system messages and the user's last message."""
    system = [text_of(m.content)[0] for m in req.messages if m.role == "system"]
    return "\n".join([*system, last_user])


def _json_data(ctx: Context) -> str:
    """The text a JSON answer's values come from: the user's words, then any tool results."""
    results = [content for _, _, content in ctx.results()]
    return "\n".join([data_text(ctx.req, ctx.found), *results])


def _text(ctx: Context, rng: random.Random, index: int | None, last_user: str) -> str:
    req = ctx.req
    messages = req.messages
    results = ctx.results()
    if results:
        text = prose.tool_answer(ctx.model, results, last_user)
    else:
        users = [text_of(m.content)[0] for m in messages if m.role == "user"]
        previous = users[-2] if len(users) > 1 else None
        system = next((text_of(m.content)[0] for m in messages if m.role == "system"), None)
        text = prose.answer(ctx.model, last_user, previous, system, _attachment_lines(ctx, index, last_user), rng)
    if ctx.plan.answer_tokens:
        text = lengths.pad_to(text, ctx.plan.answer_tokens, prose.filler(last_user, rng))
    return text


def complete(ctx: Context, bad_json: bool = False, server_seed: int = 0,
             repeats: Callable[[int], int] | None = None) -> list[Choice]:
    """The offline model's choices for a chat request (n of them).

    `repeats(hash)` says how many times this server saw the same request before; it
    varies unseeded, sampled answers (see the module docstring).
    """
    req = ctx.req
    base = seed_of(req, server_seed)
    if repeats is not None and req.random_seed is None and _sampled(req):
        occurrence = repeats(base)
        if occurrence:
            base = seed_of(req, server_seed, occurrence)
    return [_one_choice(ctx, random.Random(base + i), bad_json) for i in range(req.n or 1)]
