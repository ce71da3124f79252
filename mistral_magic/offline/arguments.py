"""A tool call's arguments, taken from the user's text and made to fit the full parameter schema.

A simple parameter (a string, number, boolean, enum, or array of those) takes a value
the text holds for it: enum values it mentions, quoted strings, `city: Paris` /
`city is Paris`, `the price column`, `20 bins`, dates, e-mails, URLs, identifiers
(`T1001`) for id-like parameters, capitalised names for name-like ones (cities,
countries, people), the question itself for free-text ones (`query`). Numbers the text
gives without a label go to numeric parameters in order (`multiply 6 by 7`: a=6, b=7).

Any other parameter (an object, an array of objects, a `$ref` into `$defs`, a union) is
made by the structured-answer generator (`instances.Filler`) over the whole parameter
schema, from the same text: `save_users(users: list[User])` gets one `User` per line,
sentence or person named. The arguments are then validated against the whole schema,
and whatever does not fit is made again by the generator, so a call always validates.

A required parameter the text says nothing about takes its schema `default`, else a
likely word of the text, else a value made from the schema; those made-up values are
reported as `missing`, so that under `tool_choice: auto` the model asks for them
instead of calling (as a model asks "which transaction?"). Optional parameters the text
says nothing about are left out, as a model leaves them, except objects and lists of
objects in a schema that requires nothing (instructor's `tasks`: the call is for them). When the text holds several
values for one parameter ("Paris and Berlin") and parallel calls are allowed, there is
one argument set per value.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from . import instances, words
from .wire import Tool

VERBS = frozenset("""compare check get show find plot describe tell give what how please list look fetch search
    call use run compute calculate summarize summarise draw make convert send book create update delete which
    is are was were will can could would should does do save add store register record set multiply""".split())
_PLACE_OR_PERSON = frozenset("""city town country place location destination origin region state capital
    name person author user customer company team""".split())
_FREE_TEXT = frozenset("query question text prompt message content search q input topic keywords".split())
_IDENTIFIER = frozenset("id ids uuid key code ref reference sku".split())
_QUOTED = re.compile(r"""[`'"“‘]([^`'"”’\n]{1,80})[`'"”’]""")
# A token with both letters and digits: T1001, ORD-42, a1b2c3.
_CODE = re.compile(r"\b(?=[\w-]*\d)(?=[\w-]*[A-Za-z])[A-Za-z0-9][\w-]*[A-Za-z0-9]\b")
_SIMPLE = frozenset({"string", "integer", "number", "boolean", None})


@dataclass
class Filled:
    """The argument sets of one tool's calls, and the required parameters the text gave no value for."""

    sets: list[dict]
    missing: list[str] = field(default_factory=list)


def name_tokens(name: str) -> list[str]:
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
        while parts and (parts[0].lower() in VERBS or stem(parts[0]) in skip or parts[0].lower() in words.STOPWORDS):
            parts = parts[1:]
        if parts and " ".join(parts) not in found:
            found.append(" ".join(parts))
    return found


def stem(word: str) -> str:
    """A word's matching key: its first five letters (`columns`, `column` -> `colum`)."""
    word = word.lower()
    return word[:5] if len(word) > 5 else word.rstrip("s")


def _around(name: str, text: str) -> list[str]:
    """Values written next to the parameter's name: `column: price`, `the price column`, `column named price`."""
    found = []
    said = words.value_after(name, text)
    if said:
        found.append(said.split(" and ")[0].strip())
    spoken = r"[\s_-]+".join(re.escape(t) for t in name_tokens(name))
    for match in re.finditer(rf"\b([\w.-]+)\s+and\s+([\w.-]+)\s+{spoken}s\b", text, re.I):
        found += [match.group(1), match.group(2)]
    for match in re.finditer(rf"\b([\w.-]+)\s+{spoken}s?\b", text, re.I):
        word = match.group(1)
        if word.lower() not in words.STOPWORDS and word.lower() not in VERBS:
            found.append(word)
    for match in re.finditer(rf"\b{spoken}s?\s+(?:named|called)\s+['\"`]?([\w.-]+)", text, re.I):
        found.append(match.group(1))
    return list(dict.fromkeys(found))


def _identifier(tokens: list[str]) -> bool:
    return bool(set(tokens[-1:]) & _IDENTIFIER)


def candidates(name: str, schema: dict, text: str, skip: set[str]) -> list:
    """Values the text holds for one simple parameter, best first (empty: the text says nothing about it)."""
    if not isinstance(schema, dict):
        return []
    tokens = name_tokens(name)
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
    if _identifier(tokens):
        found = [v for v in found if _CODE.fullmatch(v)] + _CODE.findall(text)
    if set(tokens) & _PLACE_OR_PERSON:
        found += _names(text, skip)
    if set(tokens) & _FREE_TEXT and not found:
        found.append(words.phrase(words.data_part(text).replace("\n", " "), 24).rstrip("?.!…"))
    return list(dict.fromkeys(v for v in found if v))


def _topic(text: str, skip: set[str]) -> str | None:
    """The first content word that is not about the tool itself: what a required string is most likely about."""
    for word in words.keywords(text, limit=20):
        lowered = word.lower()
        if "'" in word or lowered in VERBS or stem(word) in skip or lowered in skip or lowered.rstrip("s") in skip:
            continue
        return word
    return None


def _with_defs(schema: Any, root: dict) -> Any:
    if not isinstance(schema, dict):
        return schema
    return {**{k: root[k] for k in ("$defs", "definitions") if k in root}, **schema}


def _valid(value: Any, schema: Any, root: dict) -> bool:
    try:
        return instances.validator(_with_defs(schema, root)).is_valid(value)
    except Exception:  # a schema the validator cannot build: trust the value
        return True


def _plain(schema: Any, filler: instances.Filler) -> dict:
    """The schema with its `$ref` followed and an optional's null branch dropped (`str | None` -> `str`)."""
    if not isinstance(schema, dict):
        return {}
    schema = filler.resolve(schema)
    for key in ("anyOf", "oneOf"):
        options = [o for o in schema.get(key, []) if not (isinstance(o, dict) and o.get("type") == "null")]
        if key in schema and len(options) == 1 and isinstance(options[0], dict):
            rest = {k: v for k, v in schema.items() if k != key}
            schema = {**rest, **filler.resolve(options[0])}
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        schema = {**schema, "items": _plain(schema["items"], filler)}
    return schema


def _simple(schema: dict) -> bool:
    """A parameter the text can hold a value for as it is (not an object or a list of objects)."""
    if _enum_of(schema):
        return True
    kind = schema.get("type")
    if kind == "array":
        items = schema.get("items") or {}
        return "properties" not in items and (items.get("type") in _SIMPLE or bool(_enum_of(items)))
    return kind in _SIMPLE and "properties" not in schema and "items" not in schema


def fill(tool: Tool, text: str, rng: random.Random, parallel: bool, skip: set[str]) -> Filled:
    """One argument set, or one per value of a parameter the text gives several values for."""
    root = tool.function.parameters or {}
    filler = instances.Filler(root, rng)
    props = filler.resolve(root).get("properties") or {}
    required = set(filler.resolve(root).get("required") or [])
    record = instances.Record(words.data_part(text))
    plain = {name: _plain(sub, filler) for name, sub in props.items()}
    found = {name: [v for v in candidates(name, plain[name], text, skip) if _valid(v, props[name], root)]
             if _simple(plain[name]) else [] for name in props}
    for values in found.values():
        if values:
            record.take(values[0])
    base: dict[str, Any] = {}
    missing: list[str] = []
    topic_skip = skip | set(props) | {tool.function.name.lower()}
    for name, sub in props.items():
        schema = plain[name]
        if found[name]:
            base[name] = found[name][0]
        elif name not in required and (required or _simple(schema)):
            continue
        elif name not in required:
            base[name] = filler.make(sub, name, record)
        elif "default" in schema:
            base[name] = schema["default"]
        elif not _simple(schema):
            base[name] = filler.make(sub, name, record)
        else:
            base[name], guessed = _guess(name, sub, schema, record, filler, text, topic_skip, root)
            if guessed:
                missing.append(name)
    fan = next((name for name in props if len(found[name]) > 1 and _simple(plain[name])
                and plain[name].get("type") in ("string", None)), None)
    sets = [{**base, fan: value} for value in found[fan]] if fan and parallel else [base]
    return Filled([_fitted(args, root, filler, text) for args in sets], missing)


def _guess(name: str, sub: Any, schema: dict, record: instances.Record, filler: instances.Filler, text: str,
           skip: set[str], root: dict) -> tuple[Any, bool]:
    """A required simple parameter's value when the text names none, and whether it is made up."""
    kind = schema.get("type")
    if kind in ("integer", "number"):
        spare = record.used_numbers < len(record.numbers)
        return filler.make(sub, name, record), not spare
    if kind == "boolean" or _enum_of(schema):
        return filler.make(sub, name, record), False
    tokens = name_tokens(name)
    # An id, a place or a person is a value the user gives, never a word guessed from the text.
    guessable = not (_identifier(tokens) or set(tokens) & _PLACE_OR_PERSON or kind == "array")
    topic = _topic(text, skip) if guessable else None
    if topic is not None and _valid(topic, sub, root):
        return topic, False
    return filler.make(sub, name, instances.Record("")), True


def _fitted(args: dict, root: dict, filler: instances.Filler, text: str) -> dict:
    """The arguments, with whatever does not validate against the whole schema made again by the generator."""
    try:
        check = instances.validator(root)
        errors = list(check.iter_errors(args))
    except Exception:  # a schema the validator cannot build: keep the arguments
        return args
    if not errors:
        return args
    props = filler.resolve(root).get("properties") or {}
    redo = {e.path[0] for e in errors if e.path and e.path[0] in props}
    fixed = {k: v for k, v in args.items() if k not in redo}
    for name in redo:
        fixed[name] = filler.make(props[name], name, instances.Record(words.data_part(text)))
    if check.is_valid(fixed):
        return fixed
    made = filler.make(root, "", instances.Record(words.data_part(text)))
    return made if isinstance(made, dict) else fixed
