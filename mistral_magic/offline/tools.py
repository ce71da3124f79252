"""Function calling offline: which tools to call, and the hosted API's checks.

Checks (400, as the hosted API answers): every tool call id, in assistant `tool_calls`
and in tool messages, is 9 characters of [a-zA-Z0-9] ("Tool call id was X but must
be a-z, A-Z, 0-9, with a length of 9.", `invalid_function_call`, code 3280); the tool
messages after an assistant's calls answer each of them, once, before anything else
comes ("Not the same number of function calls and responses"); a tool message whose
id no call made is refused; a named `tool_choice` must name a given tool.

Which tools a user message is about: its words are matched against each tool's name
(worth 3), parameter names (2) and description (1). The message is read clause by
clause ("Describe the price column, then plot its histogram"): each clause that
matches a tool calls its best one, so several tools are called in one step only when
the message asks for several things, and none when nothing fits (the answer is text).
Ties go to the tool the earlier user messages of the conversation were about. An
agent framework's output tool (`final_result...`) is called only when no other tool
fits, or, under a forced choice, once the other tools have answered.

Choice: `none` never calls; `auto` calls the tools the message is about, and answers
in text after tool results; when a tool's required value is not in the text (`What's
the status of my transaction?`), it asks for it in text rather than call with a made-up
value. `any`/`required` always call: the tools the message is about, else the output
tool or the first one; after tool results, a tool not yet called since the user's
message (the output tool first), so an agent's loop ends. A named choice calls that
tool. Arguments come from `arguments.py`; after tool results, from the user's message
and the results.
"""

from __future__ import annotations

import json
import random
import re
import string
from dataclasses import dataclass, field
from typing import Any

from . import arguments, words
from .arguments import stem
from .wire import ChatRequest, RequestError, Tool, error_body

ID_CHARS = string.ascii_letters + string.digits
_ID = re.compile(r"[a-zA-Z0-9]{9}")


def _bad_id(value: Any) -> RequestError:
    return RequestError(400, error_body(f"Tool call id was {value} but must be a-z, A-Z, 0-9, with a length of 9.",
                                        "invalid_function_call", "3280"))


def _mismatch() -> RequestError:
    return RequestError(400, error_body("Not the same number of function calls and responses",
                                        "invalid_request_error", "3230"))


def check_messages(req: ChatRequest) -> None:
    """The hosted API's rules for tool calls and their results in the history."""
    pending: dict[str, str] = {}
    answered: set[str] = set()
    for message in req.messages:
        if message.role == "tool":
            call_id = message.tool_call_id
            if not isinstance(call_id, str) or not _ID.fullmatch(call_id):
                raise _bad_id(call_id)
            if call_id in pending:
                pending.pop(call_id)
                answered.add(call_id)
                continue
            if call_id in answered or not (answered or pending):
                raise _mismatch()
            raise RequestError(400, error_body(
                f"Tool message answers tool call id {call_id}, but no assistant message made a call with that id",
                "invalid_request_error", "3230"))
        if pending:
            raise _mismatch()
        answered = set()
        if message.role == "assistant" and message.tool_calls:
            for call in message.tool_calls:
                if not _ID.fullmatch(call.id or ""):
                    raise _bad_id(call.id)
                if call.id in pending:
                    raise _mismatch()
                pending[call.id] = call.function.name
    if pending and req.messages[-1].role == "tool":
        raise _mismatch()
    choice = req.tool_choice
    if not isinstance(choice, str):
        names = [t.function.name for t in req.tools or []]
        if choice.function.name not in names:
            raise RequestError(400, error_body(
                f"tool_choice names the function {choice.function.name!r}, which is not among the tools "
                f"({', '.join(names) or 'none given'})", "invalid_request_error", param="tool_choice"))


_OUTPUT_NAME = re.compile(r"final_(?:result|answer|response|output)", re.I)
_OUTPUT_DESCRIPTION = "final response which ends this conversation"
# Words that say nothing about which tool is meant (the prompt's "describe" or "list" do).
_GENERIC = frozenset("""return returns result results value values given function tool tools data input output
    current specified provided based information info string object field fields""".split())
_IGNORED = (words.STOPWORDS - {"describe", "list", "write", "explain", "show"}) | _GENERIC
_CLAUSE = re.compile(r"[.;!?\n]+|,|\b(?:then|and|also|plus|afterwards)\b", re.I)


def is_output(tool: Tool) -> bool:
    """An agent framework's output tool: calling it ends the run with its arguments as the result."""
    function = tool.function
    return bool(_OUTPUT_NAME.match(function.name)) or _OUTPUT_DESCRIPTION in (function.description or "").lower()


def _stems(text: str) -> set[str]:
    return {stem(w) for w in words.words(text) if len(w) > 2 and "'" not in w and w.lower() not in _IGNORED}


def tool_words(tool: Tool) -> set[str]:
    """The stems of a tool's name and description: the words that are about the tool, not a value."""
    name, _, description = _tool_stems(tool)
    return name | description


def _tool_stems(tool: Tool) -> tuple[set[str], set[str], set[str]]:
    function = tool.function
    name = _stems(" ".join(re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", function.name)))
    props = (function.parameters or {}).get("properties") or {}
    params = _stems(" ".join(" ".join(arguments.name_tokens(p)) for p in props)) - name
    description = _stems(" ".join(words.keywords(function.description or "", limit=16))) - name - params
    return name, params, description


def _score(tool: Tool, asked: set[str]) -> int:
    name, params, description = _tool_stems(tool)
    return 3 * len(asked & name) + 2 * len(asked & params) + len(asked & description)


@dataclass
class Decision:
    """What the offline model does with the tools: calls, or a question for a value it lacks."""

    calls: list[dict] = field(default_factory=list)
    missing: list[tuple[str, list[str]]] = field(default_factory=list)  # (tool, parameters) to ask for


def _turn(req: ChatRequest) -> tuple[int, list[str], list[str]]:
    """The last user message's index, the tools called since, and the results they returned."""
    messages = req.messages
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=-1)
    called, results = [], []
    for message in messages[last + 1:]:
        if message.role == "assistant":
            called += [c.function.name for c in message.tool_calls or []]
        elif message.role == "tool":
            results.append(_text(message.content))
    return last, called, results


def _text(content) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    return " ".join(getattr(chunk, "text", "") or "" for chunk in content)


def _said(result: str) -> str:
    """A tool result as text to take values from: a JSON object as `key: value` lines."""
    try:
        value = json.loads(result)
    except ValueError:
        return result
    if not isinstance(value, dict):
        return result if not isinstance(value, (int, float)) else str(value)
    return "\n".join(f"{k}: {v if not isinstance(v, (dict, list)) else json.dumps(v)}" for k, v in value.items())


def _earlier(req: ChatRequest, last: int) -> set[str]:
    return _stems(" ".join(_text(m.content) for m in req.messages[:max(last, 0)] if m.role == "user"))


def wanted(tools: list[Tool], text: str, context: set[str] = frozenset()) -> list[Tool]:
    """The tools a user message is about: the best one for each clause that matches one (see the module doc)."""
    whole = _stems(text)
    order = {id(t): i for i, t in enumerate(tools)}

    def pick(pool: list[Tool]) -> list[Tool]:
        found: list[Tool] = []
        for clause in _CLAUSE.split(text):
            asked = _stems(clause or "")
            scored = [(_score(t, asked), _score(t, whole), _score(t, context), -order[id(t)], t) for t in pool]
            best = max(scored, key=lambda s: s[:4], default=None)
            if best and best[0] > 0 and best[4] not in found:
                found.append(best[4])
        return found

    return pick([t for t in tools if not is_output(t)]) or pick([t for t in tools if is_output(t)])


def chosen(req: ChatRequest, text: str) -> list[Tool]:
    """The tools this request calls now (empty: answer in text)."""
    tools = req.tools or []
    choice = req.tool_choice
    if not tools or choice == "none":
        return []
    if not isinstance(choice, str):
        return [t for t in tools if t.function.name == choice.function.name][:1]
    last, called, results = _turn(req)
    after_results = req.messages[-1].role == "tool"
    if choice == "auto":
        return [] if after_results or last < 0 else wanted(tools, text, _earlier(req, last))
    if not after_results:
        return wanted(tools, text, _earlier(req, last)) or [
            next((t for t in tools if is_output(t)), tools[0])]
    # Forced, after results: a tool not called yet this turn, the output tool first, so loops end.
    fresh = [t for t in tools if t.function.name not in called] or tools
    output = [t for t in fresh if is_output(t)]
    if output:
        return output[:1]
    context = _earlier(req, last) | _stems(text)
    return [max(fresh, key=lambda t: (_score(t, context), -tools.index(t)))]


def make_call(tool: Tool, args: dict, rng: random.Random, index: int) -> dict:
    call_id = "".join(rng.choice(ID_CHARS) for _ in range(9))
    return {"id": call_id, "type": "function", "index": index,
            "function": {"name": tool.function.name, "arguments": json.dumps(args, ensure_ascii=False)}}


def decide(req: ChatRequest, text: str, rng: random.Random) -> Decision:
    """The tool calls the offline model makes for this request, or the values it asks for first."""
    picked = chosen(req, text)
    if not picked:
        return Decision()
    _, _, results = _turn(req)
    # After tool results, their values can fill the next call (an agent's output tool), once.
    source = "\n".join([text, *map(_said, results)]) if results else text
    fan = req.parallel_tool_calls and not results
    made: list[dict] = []
    missing: list[tuple[str, list[str]]] = []
    for tool in picked:
        filled = arguments.fill(tool, source, rng, fan, tool_words(tool))
        if filled.missing and req.tool_choice == "auto":
            missing.append((tool.function.name, filled.missing))
            continue
        for args in filled.sets:
            made.append(make_call(tool, args, rng, len(made)))
    if not req.parallel_tool_calls:
        made = made[:1]
    return Decision(made, [] if made else missing)
