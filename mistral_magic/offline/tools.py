"""Function calling offline: which tools to call, with which arguments, and the hosted API's checks.

Checks (400, as the hosted API answers): every tool call id, in assistant `tool_calls`
and in tool messages, is 9 characters of [a-zA-Z0-9] ("Tool call id was X but must
be a-z, A-Z, 0-9, with a length of 9.", `invalid_function_call`, code 3280); the tool
messages after an assistant's calls answer each of them, once, before anything else
comes ("Not the same number of function calls and responses"); a tool message whose
id no call made is refused; a named `tool_choice` must name a given tool.

Choice: `none` never calls; `auto` calls the tools whose name or description shares
words with the last user message (all of them when `parallel_tool_calls`, else the
best); `any`/`required` always call (the best match, else the first tool); a named
choice calls that tool. After tool results, `auto` answers in text.

Arguments come from the user's text where it holds a value for a parameter: enum
values it mentions, quoted strings, `city: Paris` / `city is Paris`, `the price column`,
`20 bins`, dates, e-mails, URLs, capitalised names for name-like parameters (cities,
countries, people), the question itself for free-text ones (`query`). A required
parameter the text says nothing about takes its schema `default`, else a value made
from the schema; optional ones are left out, as a model leaves them. When the text
holds several values for one parameter ("Paris and Berlin") and parallel calls are
allowed, the tool is called once per value.
"""

from __future__ import annotations

import json
import random
import re
import string
from typing import Any

from . import instances, words
from .wire import ChatRequest, RequestError, Tool, error_body

ID_CHARS = string.ascii_letters + string.digits
_ID = re.compile(r"[a-zA-Z0-9]{9}")
_VERBS = frozenset("""compare check get show find plot describe tell give what how please list look fetch search
    call use run compute calculate summarize summarise draw make convert send book create update delete which
    is are was were will can could would should does do""".split())
_PLACE_OR_PERSON = frozenset("""city town country place location destination origin region state capital
    name person author user customer company team""".split())
_FREE_TEXT = frozenset("query question text prompt message content search q input topic keywords".split())
_QUOTED = re.compile(r"""[`'"“‘]([^`'"”’\n]{1,80})[`'"”’]""")


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


def _stem(word: str) -> str:
    word = word.lower()
    return word[:5] if len(word) > 5 else word.rstrip("s")


def tool_words(tool: Tool) -> set[str]:
    name_words = re.split(r"[_\W]+|(?<=[a-z])(?=[A-Z])", tool.function.name)
    found = {_stem(w) for w in name_words if len(w) > 2 and w.lower() not in words.STOPWORDS}
    found |= {_stem(w) for w in words.keywords(tool.function.description, limit=12)}
    return found


def chosen(req: ChatRequest, text: str) -> list[Tool]:
    """The tools this request calls now (empty: answer in text)."""
    tools = req.tools or []
    choice = req.tool_choice
    if not tools or choice == "none":
        return []
    if not isinstance(choice, str):
        return [t for t in tools if t.function.name == choice.function.name][:1]
    last = req.messages[-1]
    asked = {_stem(w) for w in words.keywords(text, limit=40)} if last.role == "user" else set()
    scored = [(len(asked & tool_words(t)), i, t) for i, t in enumerate(tools)]
    matching = [t for score, _, t in sorted(scored, key=lambda s: (-s[0], s[1])) if score > 0]
    if choice == "auto":
        if last.role != "user":
            return []
        return matching if req.parallel_tool_calls else matching[:1]
    # any / required: a call is guaranteed, the best match or else the first tool.
    return (matching if req.parallel_tool_calls else matching[:1]) or tools[:1]


# -- arguments from the text -------------------------------------------------------------


def _name_tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t.lower() for t in re.split(r"[\s_\-]+", spaced) if t]


def _enum_of(schema: dict) -> list | None:
    if "enum" in schema:
        return schema["enum"]
    for key in ("anyOf", "oneOf"):
        for option in schema.get(key, []):
            if isinstance(option, dict) and "enum" in option:
                return option["enum"]
    return None


def _mentioned(options: list, text: str) -> list:
    lowered = text.lower()
    found = []
    for option in options:
        if not isinstance(option, str) or not option:
            continue
        spoken = re.escape(option.lower()).replace("_", "[ _-]").replace(r"\-", "[ _-]")
        match = re.search(rf"(?<![\w]){spoken}(?![\w])", lowered)
        if match:
            found.append((match.start(), option))
    return [option for _, option in sorted(found)]


def _names(text: str, skip: set[str]) -> list[str]:
    """Capitalised names, without a leading instruction verb or tool word ("Compare New York" -> "New York")."""
    found = []
    for name in words.names(text):
        parts = name.split()
        while parts and (parts[0].lower() in _VERBS or _stem(parts[0]) in skip or parts[0].lower() in words.STOPWORDS):
            parts = parts[1:]
        if parts and " ".join(parts) not in found:
            found.append(" ".join(parts))
    return found


def _around(name: str, text: str) -> list[str]:
    """Values written next to the parameter's name: `column: price`, `the price column`, `column named price`."""
    found = []
    said = words.value_after(name, text)
    if said:
        found.append(said.split(" and ")[0].strip())
    spoken = r"[\s_-]+".join(re.escape(t) for t in _name_tokens(name))
    for match in re.finditer(rf"\b([\w.-]+)\s+and\s+([\w.-]+)\s+{spoken}s\b", text, re.I):
        found += [match.group(1), match.group(2)]
    for match in re.finditer(rf"\b([\w.-]+)\s+{spoken}s?\b", text, re.I):
        word = match.group(1)
        if word.lower() not in words.STOPWORDS and word.lower() not in _VERBS:
            found.append(word)
    for match in re.finditer(rf"\b{spoken}s?\s+(?:named|called)\s+['\"`]?([\w.-]+)", text, re.I):
        found.append(match.group(1))
    return list(dict.fromkeys(found))


def candidates(name: str, schema: dict, text: str, skip: set[str]) -> list:
    """Values the text holds for one parameter, best first (empty: the text says nothing about it)."""
    if not isinstance(schema, dict):
        return []
    tokens = _name_tokens(name)
    kind = schema.get("type")
    options = _enum_of(schema)
    if options:
        return _mentioned(options, text)
    if kind == "array":
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        inner = _enum_of(items)
        values = _mentioned(inner, text) if inner else (
            _QUOTED.findall(text) or _names(text, skip) if items.get("type", "string") == "string" else [])
        return [values] if values else []
    if kind in ("integer", "number"):
        said = [v for v in (words.value_after(name, text) or "").split()[:1] if words.numbers(v)]
        found = [words.numbers(said[0])[0]] if said else []
        for hint in (name.replace("_", " "), *tokens):
            before = words.number_before(hint, text)
            if before is not None:
                found.append(before)
        return [int(v) if kind == "integer" and float(v).is_integer() else v for v in found
                if kind == "number" or float(v).is_integer()]
    if kind == "boolean":
        lowered = text.lower()
        for token in tokens:
            if len(token) > 2 and re.search(rf"\b{re.escape(token)}", lowered):
                return [not re.search(rf"\b(?:no|not|without|don't|never)\b[^.\n]{{0,20}}\b{re.escape(token)}", lowered)]
        return []
    if kind not in (None, "string"):
        return []
    fmt = schema.get("format")
    if fmt == "date":
        return words.dates(text)
    if fmt in ("email",) or "email" in tokens:
        return words.emails(text)
    if fmt in ("uri", "url") or set(tokens) & {"url", "uri", "link"}:
        return words.urls(text)
    found = _around(name, text) + _QUOTED.findall(text)
    if set(tokens) & _PLACE_OR_PERSON:
        found += _names(text, skip)
    if set(tokens) & _FREE_TEXT and not found:
        found.append(words.phrase(words.data_part(text).replace("\n", " "), 24).rstrip("?.!…"))
    return list(dict.fromkeys(v for v in found if v))


def _topic(text: str, skip: set[str]) -> str | None:
    """The first content word that is not about the tool itself: what a required string is most likely about."""
    for word in words.keywords(text, limit=20):
        lowered = word.lower()
        if lowered not in _VERBS and _stem(word) not in skip and lowered not in skip and lowered.rstrip("s") not in skip:
            return word
    return None


def _valid(value: Any, schema: dict) -> bool:
    try:
        return instances.validator(schema).is_valid(value)
    except Exception:  # a schema the validator cannot build: trust the value
        return True


def arguments(tool: Tool, text: str, rng: random.Random, parallel: bool) -> list[dict]:
    """One argument set, or one per value of a parameter the text gives several values for."""
    schema = tool.function.parameters or {}
    props = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    skip = tool_words(tool)
    found = {name: [v for v in candidates(name, sub, text, skip) if _valid(v, sub)] for name, sub in props.items()}
    base: dict[str, Any] = {}
    for name, sub in props.items():
        if found[name]:
            base[name] = found[name][0]
        elif name in required:
            topic = _topic(text, skip | set(props) | {tool.function.name.lower()}) if _scalar(sub) else None
            if isinstance(sub, dict) and "default" in sub:
                base[name] = sub["default"]
            elif topic is not None and _valid(topic, sub):
                base[name] = topic
            else:
                base[name] = instances.Filler(schema, rng).make(sub, name, instances._Record(text))
    fan = next((name for name, sub in props.items() if len(found[name]) > 1 and _scalar(sub)), None)
    if fan and parallel:
        return [{**base, fan: value} for value in found[fan]]
    return [base]


def _scalar(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") in ("string", None) and "properties" not in schema


def make_call(tool: Tool, args: dict, rng: random.Random, index: int) -> dict:
    call_id = "".join(rng.choice(ID_CHARS) for _ in range(9))
    return {"id": call_id, "type": "function", "index": index,
            "function": {"name": tool.function.name, "arguments": json.dumps(args, ensure_ascii=False)}}


def calls(req: ChatRequest, text: str, rng: random.Random) -> list[dict]:
    """The tool calls the offline model makes for this request (empty: it answers in text)."""
    made: list[dict] = []
    for tool in chosen(req, text):
        for args in arguments(tool, text, rng, req.parallel_tool_calls):
            made.append(make_call(tool, args, rng, len(made)))
    if not req.parallel_tool_calls:
        made = made[:1]
    return made
