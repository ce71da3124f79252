"""JSON answers without a response schema: JSON mode, and JSON asked for in the prompt.

A model in JSON mode writes the JSON the prompt describes; so does the offline one:

- a JSON Schema written in the instructions (instructor's JSON modes and pydantic-ai's
  `PromptedOutput` put one in the system message) is filled from the user's text, as
  a `json_schema` response format would be;
- a JSON example (`Give {"n": 1}`, `as {"product": n}`) gives its keys, typed by the
  example's values;
- keys the prompt names (``with `setup` and `punchline` keys``, `fields: name, age`,
  `with name and color`) are filled, typed by their names (`year` a number);
- a prompt that asks for a list (`list`, `items`, `name three fruits`) gets a list of
  records, as many as it asks for;
- otherwise an object with the answer's gist and key words.

`asked(text)` says whether a prompt in text mode asks for JSON (`respond in JSON`,
`as a JSON object`, a ```json block); such an answer is the same JSON, in a ```json
block only when the prompt asks for one.
"""

from __future__ import annotations

import json
import random
import re
from typing import Any

from . import instances, words

_ASKED = re.compile(
    r"\b(?:respond|reply|answer|return|output|give|format|write|produce|provide|express|encode)\w*\b[^.\n]{0,40}"
    r"\bjson\b|\b(?:in|as|with)\s+(?:a\s+|an\s+|valid\s+|raw\s+|plain\s+|strict\s+)*json\b|"
    r"\bjson\s+(?:object|array|list|format|codeblock|code\s+block|only)\b|```json", re.I)
_FENCE = re.compile(r"```json|\bcode\s*block\b|\bcodeblock\b", re.I)
_LIST = re.compile(r"\b(list|records?|items?|rows?|entries|table|array|several|examples)\b", re.I)
# "Name three fruits", "give me 5 ideas": a count of things asked for (not "4 stars" said in passing).
_ASKING = ("name", "give", "list", "generate", "suggest", "write", "create", "make", "provide", "return",
           "produce", "recommend", "pick", "find", "choose", "propose")
_COUNTED = re.compile(rf"\b(?:{'|'.join(_ASKING)})\s+(?:me\s+|us\s+)?(?:the\s+)?(?:top\s+)?"
                      r"(\d{1,2}|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve)\s+"
                      r"(?:\w+\s+)?([a-z]{2,}s)\b", re.I)
_THEIR = re.compile(r"\bwith\s+(?:their|its|the)\s+([a-z]{3,})\b", re.I)
_NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve".split())}
_FIELD_CUES = re.compile(r"\b(?:fields?|keys?|columns?|properties|attributes)\b\s*(?::|named|called)?\s*([\w ,`'\"]+)",
                         re.I)
_KEYS_BEFORE = re.compile(r"((?:[`'\"]\w+[`'\"]\s*(?:,\s*|\band\b\s*|,\s*and\s+)?)+)\s*(?:keys|fields|properties|"
                          r"attributes)\b", re.I)
_WITH = re.compile(r"\bwith\s+(?:their\s+|its\s+|a\s+|the\s+)?(\w+(?:\s*,\s*\w+)*\s*,?\s+and\s+\w+)\b", re.I)
_QUOTED_KEY = re.compile(r"""["'`](\w+)["'`]""")
_EXAMPLE_KEY = re.compile(r'"(\w+)"\s*:')
_INTEGER_KEYS = frozenset("year age count number order rank position quantity population stars rating".split())
_NUMBER_KEYS = frozenset("price amount score cost weight height length distance temperature".split())


def asked(text: str) -> bool:
    """Whether the prompt asks for JSON (a model then answers in JSON even without JSON mode)."""
    return bool(_ASKED.search(text))


def fenced(text: str) -> bool:
    """Whether the prompt asks for the JSON in a ```json code block."""
    return bool(_FENCE.search(text))


def _objects(text: str) -> list[tuple[int, int, Any]]:
    """The JSON objects written in the text: (start, end, value), outermost only."""
    decoder = json.JSONDecoder()
    found, i = [], text.find("{")
    while i >= 0:
        try:
            value, end = decoder.raw_decode(text, i)
        except ValueError:
            i = text.find("{", i + 1)
            continue
        found.append((i, end, value))
        i = text.find("{", end)
    return found


def _is_schema(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    return "properties" in value or "$defs" in value or (
        value.get("type") in ("object", "array") and ("items" in value or "additionalProperties" in value))


def schema_in(text: str) -> tuple[dict, str] | None:
    """A JSON Schema written in the text (the largest), and the text without it."""
    schemas = [(end - start, start, end, value) for start, end, value in _objects(text) if _is_schema(value)]
    if not schemas:
        return None
    _, start, end, value = max(schemas, key=lambda s: s[0])
    return value, text[:start] + text[end:]


def _key_schema(key: str) -> dict:
    """A JSON type guessed from a field's name, so `year` gets a number from the text."""
    last = key.split("_")[-1].lower()
    if last in _INTEGER_KEYS:
        return {"type": "integer"}
    if last in _NUMBER_KEYS:
        return {"type": "number"}
    return {"type": "string"}


def _typed(value: Any) -> dict:
    """The schema of an example value (`1` an integer, `[..]` an array, `n` a number)."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    if isinstance(value, list):
        return {"type": "array", "items": _typed(value[0]) if value else {"type": "string"}}
    if isinstance(value, dict):
        return {"type": "object", "properties": {k: _typed(v) for k, v in value.items()}}
    return {"type": "string"}


def _example(text: str) -> dict | None:
    """The schema of a JSON example in the prompt (`{"n": 1}`), or of its quoted keys (`{"product": n}`)."""
    examples = [value for _, _, value in _objects(text) if isinstance(value, dict) and value and not _is_schema(value)]
    if examples:
        return _typed(examples[-1])
    keys = list(dict.fromkeys(_EXAMPLE_KEY.findall(text)))
    if keys and "{" in text:
        # `n`, `x` or `...` as a value stands for a number to fill in.
        props = {}
        for key in keys:
            after = re.search(rf'"{re.escape(key)}"\s*:\s*([^,}}\s]+)', text)
            bare = after.group(1) if after else ""
            props[key] = {"type": "number"} if re.fullmatch(r"[a-z]|\d+(?:\.\d+)?", bare) else _key_schema(key)
        return {"type": "object", "properties": props}
    return None


def _clean(keys: list[str]) -> list[str]:
    out = []
    for key in keys:
        key = key.strip().strip("`'\"").strip().replace(" ", "_")
        if key and key.isidentifier() and key.lower() not in words.STOPWORDS and key not in out:
            out.append(key)
    return out[:12]


def named_keys(text: str, listed: bool) -> list[str]:
    """The keys the prompt names for the JSON (see the module doc)."""
    before = _KEYS_BEFORE.search(text)
    if before:
        return _clean(_QUOTED_KEY.findall(before.group(1)))
    cue = _FIELD_CUES.search(text)
    if cue:
        quoted = _QUOTED_KEY.findall(cue.group(1))
        return _clean(quoted or re.split(r",|\band\b", cue.group(1)))
    if listed:
        match = _WITH.search(text)
        if match:
            return _clean(re.split(r",|\band\b", match.group(1)))
        # "three capitals with their countries": a capital and its country a record.
        counted, their = _COUNTED.search(text), _THEIR.search(text)
        if counted and their:
            return _clean([_singular(counted.group(2)), _singular(their.group(1))])
    return []


def _singular(word: str) -> str:
    word = word.lower()
    return word[:-3] + "y" if word.endswith("ies") else word[:-1] if word.endswith("s") else word


def _count(text: str) -> int | None:
    match = _COUNTED.search(text)
    if not match:
        return None
    raw = match.group(1).lower()
    count = _NUMBER_WORDS.get(raw) or (int(raw) if raw.isdigit() else None)
    return count if count and 1 <= count <= 20 else None


def _records(schema_props: dict, text: str, count: int | None, rng: random.Random) -> list:
    """A list of records: one per line, sentence or person of the text, or `count` of them."""
    parts = words.segments(words.data_part(text))
    if count and count != len(parts):
        kws = [k for k in words.keywords(text, limit=count + 6)
               if not _LIST.fullmatch(k) and k.lower() not in _ASKING] or ["item"]
        parts = [f"{kws[i % len(kws)]} {i + 1}" for i in range(count)]
    schema = {"type": "array", "items": {"type": "object", "properties": schema_props,
                                         "required": list(schema_props)}}
    return instances.Filler(schema, rng).make(schema, "", instances.Record("\n".join(parts)))


def answer(instructions: str, data: str, rng: random.Random) -> Any:
    """The JSON value for a prompt without a response schema.

    `instructions` is what says what JSON to write (system messages and the user's
    message); `data` is the text its values come from.
    """
    found = schema_in(instructions)
    if found:
        schema, rest = found
        in_data = schema_in(data)
        source = in_data[1] if in_data else data
        return instances.fill(schema, source if source.strip() else rest, rng)[0]
    example = _example(instructions)
    listed = bool(_LIST.search(data) or _COUNTED.search(data))
    if example is not None and not listed:
        return instances.instance(example, data, rng)
    keys = named_keys(instructions, listed)
    if listed:
        props = example["properties"] if example else {k: _key_schema(k) for k in keys or ["name", "description"]}
        return _records(props, data, _count(data), rng)
    if keys:
        schema = {"type": "object", "properties": {k: _key_schema(k) for k in keys}, "required": keys}
        return instances.instance(schema, data, rng)
    return {"answer": words.phrase(data, 12), "keywords": words.keywords(data, limit=5),
            "note": "offline answer: generated locally, not by a language model"}
