"""JSON Schema instances filled from a prompt's text: the offline model's structured output.

`instance(schema, text, rng)` returns a value that validates against `schema`
(types, properties/required, items, enum/const, anyOf/oneOf/allOf, $ref into
$defs/definitions, formats date/date-time/email/uri/uuid, numeric bounds, length
and item-count bounds, `pattern`, additionalProperties) and takes its values from
the text where it can: `field: value` phrases, capitalised names for name-like
fields, numbers for numeric fields, ISO dates, mentioned enum values, yes/no cues
(a described boolean the text gives no cue for is false),
a piece of the text that matches a field's `pattern` (else a string generated from
it). An array of objects gets one record per line, bullet or sentence of the text.

An answer has a budget of `MAX_CHARS` characters, as a model has a token budget: a
schema that demands more (`minItems: 200000`, `minLength: 5e7`) gets a partial
instance and `Filler.truncated`, which the chat endpoint turns into a cut answer
with `finish_reason: length`. Patterns are matched with a time limit.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import random
import re
import uuid
from typing import Any

import regex

from . import words

_NAMEY = frozenset(
    """name firstname lastname fullname surname person author city country company
    organisation organization place location brand team owner customer manager employee
    user username speaker character capital town state region vendor supplier client
    artist director founder ceo president player winner product item title model""".split()
)
_TEXTY = frozenset("summary description text content comment comments notes note reason explanation answer sentence quote message".split())
_MAX_RECORDS = 50
MAX_CHARS = 64 * 1024  # about 20-30k tokens of JSON
# A `pattern` is the caller's regex: bounded in time, and in the length of what it generates.
PATTERN_TIMEOUT_S = 0.05
_PATTERN_MAX_CHARS = 4096
_PATTERN_TRIES = 8


def _tokens(name: str) -> list[str]:
    """Field-name words: `firstName`, `first_name` and `first-name` all give [first, name]."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t.lower() for t in re.split(r"[\s_\-]+", spaced) if t]


class Record:
    """One piece of text and the names/numbers already given to fields from it."""

    def __init__(self, text: str):
        self.text = text
        self.names = words.names(text)
        self.numbers = words.numbers(text)
        self.used_names = 0
        self.used_numbers = 0

    def next_name(self) -> str | None:
        if self.used_names < len(self.names):
            self.used_names += 1
            return self.names[self.used_names - 1]
        return None

    def take(self, value: Any) -> None:
        """A number given to one field is not given again to the next."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value in self.numbers:
            index = self.numbers.index(value)
            self.numbers.pop(index)
            if index < self.used_numbers:
                self.used_numbers -= 1

    def next_number(self) -> float | None:
        if self.used_numbers < len(self.numbers):
            self.used_numbers += 1
            return self.numbers[self.used_numbers - 1]
        return None


class Filler:
    """Builds instances of one root schema (the root holds $defs for $ref)."""

    def __init__(self, root: dict, rng: random.Random, budget: int = MAX_CHARS):
        self.root = root
        self.rng = rng
        self.budget = budget
        self.truncated = False
        self._validator = None

    def _spend(self, size: int) -> None:
        self.budget -= size
        if self.budget < 0:
            self.truncated = True

    def make(self, schema: Any, name: str, record: Record, depth: int = 0) -> Any:
        self._spend(1)
        if schema is True or not isinstance(schema, dict) or depth > 12:
            return self._string({}, name, record)
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self._enum(schema["enum"], record)
        if "allOf" in schema:
            return self.make(self._merge_all(schema), name, record, depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self._choice(schema, key, name, record, depth)
        kind = schema.get("type")
        if isinstance(kind, list):
            concrete = [k for k in kind if k != "null"]
            kind = concrete[0] if concrete else "null"
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        maker = getattr(self, f"_{kind}", None)
        return maker(schema, name, record, depth) if kind in ("object", "array") else (
            maker(schema, name, record) if maker else None)

    def resolve(self, schema: dict) -> dict:
        seen = 0
        while "$ref" in schema and seen < 20:
            ref = schema["$ref"]
            target: Any = self.root
            if ref.startswith("#"):
                for part in ref[1:].split("/")[1:]:
                    part = part.replace("~1", "/").replace("~0", "~")
                    target = target.get(part, {}) if isinstance(target, dict) else {}
            else:
                target = {}
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**target, **rest} if isinstance(target, dict) else rest
            seen += 1
        return schema

    def _merge_all(self, schema: dict) -> dict:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = self.resolve(part) if isinstance(part, dict) else {}
            for key, value in part.items():
                if key == "properties":
                    merged["properties"] = {**merged.get("properties", {}), **value}
                elif key == "required":
                    merged["required"] = sorted(set(merged.get("required", [])) | set(value))
                else:
                    merged.setdefault(key, value)
        return merged

    def _enum(self, options: list, record: Record) -> Any:
        lowered = record.text.lower()
        for option in options:
            if isinstance(option, str) and option and re.search(rf"\b{re.escape(option.lower())}\b", lowered):
                return option
        return self.rng.choice(options) if options else None

    def _choice(self, schema: dict, key: str, name: str, record: Record, depth: int) -> Any:
        base = {k: v for k, v in schema.items() if k != key}
        options = [{**base, **self.resolve(o)} if isinstance(o, dict) else o for o in schema[key]]
        concrete = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
        if not concrete:
            return None
        if key == "anyOf":
            return self.make(concrete[0], name, record, depth + 1)
        # oneOf must match exactly one branch: keep the first candidate that does.
        for option in concrete:
            value = self.make(option, name, record, depth + 1)
            if sum(self._valid(value, o) for o in options) == 1:
                return value
        return self.make(concrete[0], name, record, depth + 1)

    def _valid(self, value: Any, schema: Any) -> bool:
        if self._validator is None:
            self._validator = validator(self.root)
        return self._validator.evolve(schema=without_patterns(schema)).is_valid(value)

    def _object(self, schema: dict, name: str, record: Record, depth: int) -> dict:
        properties = schema.get("properties") or {}
        out = {prop: self.make(sub, prop, record, depth + 1) for prop, sub in properties.items()}
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, dict):
            for word in words.keywords(record.text, limit=2) or ["offline"]:
                out[word] = self.make(extra, word, record, depth + 1)
        return out

    def _array(self, schema: dict, name: str, record: Record, depth: int) -> list:
        items = schema.get("items", {})
        items = self.resolve(items) if isinstance(items, dict) else {}
        low, high = schema.get("minItems", 0), schema.get("maxItems", _MAX_RECORDS)
        if items.get("type") == "object" or "properties" in items:
            parts = _records(record.text, items) if record.text.strip() else [""]
            values = [self.make(items, name, Record(part), depth + 1) for part in parts[:high]]
        elif items.get("type") in ("integer", "number"):
            values = [self.make(items, name, record, depth + 1) for _ in range(max(1, len(record.numbers[:5])))]
        else:
            count = min(3, max(1, len(words.keywords(record.text, limit=3))))
            values = []
            for word in (words.keywords(record.text, limit=count) or [None])[:count]:
                sub = Record(word) if word and "enum" not in items else record
                value = self.make(items, name, sub, depth + 1)
                if isinstance(value, str) and word and not ({"format", "enum", "pattern"} & set(items)):
                    value = self._fit_string(word, items)
                values.append(value)
        unique = bool(schema.get("uniqueItems"))
        if unique:
            kept: dict[str, Any] = {}
            for value in values:
                kept.setdefault(_key(value), value)
            values = list(kept.values())
        if len(values) < low:
            values += self._more(items, name, values, low, unique, depth)
        return values[: max(low, min(high, len(values)))]

    def _more(self, items: dict, name: str, values: list, low: int, unique: bool, depth: int) -> list:
        """Filler items up to `low`: one made item repeated, or distinct variants of it, within the budget."""
        made = self.make(items, f"{name}{len(values)}", Record(""), depth + 1)
        seen = {_key(v) for v in values} if unique else set()
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        top = max(numbers, default=0)
        more: list = []
        while len(values) + len(more) < low and not self.truncated:
            value = made
            if unique and _key(value) in seen:
                if isinstance(made, (int, float)) and not isinstance(made, bool):
                    top = value = max(top, made) + 1
                elif isinstance(made, str):
                    value = f"offline item {len(values) + len(more)}"
                else:
                    value = self.make(items, f"{name}{len(values) + len(more)}", Record(""), depth + 1)
                    if _key(value) in seen:
                        break  # no cheap distinct variant: stop short rather than loop
            key = _key(value)
            seen.add(key)
            self._spend(len(key) + 1)
            more.append(value)
        return more

    def _string(self, schema: dict, name: str, record: Record) -> str:
        fmt = schema.get("format")
        tokens = _tokens(name)
        if fmt:
            return self._formatted(fmt, record)
        if any(t in ("email", "mail") for t in tokens):
            found = words.emails(record.text)
            return found[0] if found else "someone@example.invalid"
        if any(t in ("url", "uri", "link", "website", "homepage") for t in tokens):
            found = words.urls(record.text)
            return found[0] if found else "https://example.invalid/offline"
        value = words.value_after(name, record.text) if name else None
        if value is None and any(t in _NAMEY for t in tokens):
            value = self._name(tokens, record)
        if value is None and tokens and tokens[-1] in ("date", "day", "birthday"):
            found = words.dates(record.text)
            value = found[0] if found else None
        if value is None:
            if any(t in _TEXTY for t in tokens) or not tokens:
                value = words.phrase(record.text, 12) if record.text.strip() else None
            else:
                picked = words.keywords(record.text, limit=1)
                value = picked[0] if picked else None
        value = value or f"offline {' '.join(tokens) or 'text'}"
        if isinstance(schema.get("pattern"), str):
            value = self._patterned(schema, value, record)
        return self._fit_string(value, schema)

    def _name(self, tokens: list[str], record: Record) -> str | None:
        if "first" in tokens or "given" in tokens:
            return record.names[0].split()[0] if record.names else None
        if "last" in tokens or "surname" in tokens or "family" in tokens:
            return record.names[0].split()[-1] if record.names else None
        return record.next_name()

    def _patterned(self, schema: dict, value: str, record: Record) -> str:
        """A value matching the schema's pattern: the one found, a match in the text, or a generated one."""
        pattern = schema["pattern"]

        def fits(candidate: str) -> bool:
            return matches(pattern, candidate) and _length_ok(candidate, schema)

        if fits(value):
            return value
        core = _unanchored(pattern)
        try:
            found = [m.group(0) for m in regex.finditer(core, record.text, timeout=PATTERN_TIMEOUT_S)]
        except (regex.error, TimeoutError):
            found = []
        for candidate in found:
            if candidate and fits(candidate):
                return candidate
        for _ in range(_PATTERN_TRIES):
            made = generate(pattern, self.rng)
            if made is not None and fits(made):
                return made
        return value

    def _fit_string(self, value: str, schema: dict) -> str:
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if low > max(0, self.budget):
            # More text than an answer can hold: give what fits, and say the answer was cut.
            low, self.truncated = max(0, self.budget), True
        if high is not None:
            value = value[:high]
        if len(value) < low:
            value = (value + " " + "offline" * (low // 7 + 1)).strip()[: max(low, high or low)]
            value = value.ljust(low, "x")
        self._spend(len(value))
        return value

    def _formatted(self, fmt: str, record: Record) -> str:
        if fmt == "date":
            found = words.dates(record.text)
            return found[0] if found else (dt.date(2026, 1, 1) + dt.timedelta(days=self.rng.randrange(365))).isoformat()
        if fmt == "date-time":
            found = words.datetimes(record.text)
            if found and "T" in found[0] and found[0][-1] in "Z0123456789" and len(found[0]) >= 19:
                return found[0] if found[0][-1] == "Z" or "+" in found[0][10:] or found[0].count("-") > 2 else found[0] + "Z"
            date = words.dates(record.text)
            return (date[0] if date else "2026-01-01") + "T09:00:00Z"
        if fmt == "time":
            return "09:00:00Z"
        if fmt == "email":
            found = words.emails(record.text)
            return found[0] if found else "someone@example.invalid"
        if fmt in ("uri", "url", "iri"):
            found = words.urls(record.text)
            return found[0] if found else "https://example.invalid/offline"
        if fmt == "uuid":
            return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        if fmt in ("ipv4",):
            return "127.0.0.1"
        return "offline"

    def _number(self, schema: dict, name: str, record: Record) -> float:
        return self._numeric(schema, name, record, integer=False)

    def _integer(self, schema: dict, name: str, record: Record) -> int:
        return int(self._numeric(schema, name, record, integer=True))

    def _numeric(self, schema: dict, name: str, record: Record, integer: bool) -> float:
        value: float | None = None
        said = words.value_after(name, record.text) if name else None
        if said:
            found = words.numbers(said)
            value = found[0] if found else None
        if value is None:
            # "4 stars", or "79.99 euros" for a price described as "in euros"
            hints = [name, *re.findall(r"[a-z]+", str(schema.get("description", "")).lower())]
            for hint in hints:
                if hint and len(hint) > 2:
                    value = words.number_before(hint, record.text)
                    if value is not None:
                        break
        if value is None:
            value = record.next_number()
        else:
            record.take(value)
        low = schema.get("minimum", -math.inf)
        high = schema.get("maximum", math.inf)
        if "exclusiveMinimum" in schema and not isinstance(schema["exclusiveMinimum"], bool):
            low = max(low, schema["exclusiveMinimum"] + (1 if integer else 1e-6))
        if "exclusiveMaximum" in schema and not isinstance(schema["exclusiveMaximum"], bool):
            high = min(high, schema["exclusiveMaximum"] - (1 if integer else 1e-6))
        if value is None:
            lo = low if low != -math.inf else 0
            hi = high if high != math.inf else lo + 100
            value = self.rng.uniform(lo, hi) if not integer else self.rng.randint(math.ceil(lo), math.floor(hi)) if math.ceil(lo) <= math.floor(hi) else lo
        value = min(max(value, low), high)
        if integer:
            value = math.ceil(value) if value < low + 1e-9 and math.ceil(value) <= high else math.floor(value) if value > high - 1e-9 else round(value)
        step = schema.get("multipleOf")
        if step:
            value = math.ceil(value / step) * step
            if value > high:
                value -= step
            if integer:
                value = int(value)
        return int(value) if integer else round(float(value), 6)

    def _boolean(self, schema: dict, name: str, record: Record) -> bool:
        text = record.text.lower()
        said = words.value_after(name, record.text) if name else None
        if said:
            first = said.lower().split()[0] if said.split() else ""
            if first in ("yes", "true", "y", "1", "on"):
                return True
            if first in ("no", "false", "n", "0", "off", "not", "none"):
                return False
        for token in _tokens(name):
            if len(token) > 2 and token in text:
                if re.search(rf"\b(?:not|no|isn't|aren't|never|without|non)\b[^.\n]{{0,30}}\b{re.escape(token)}", text):
                    return False
                return True
        if re.search(r"\b(?:true|yes)\b", text):
            return True
        if re.search(r"\b(?:false|no|not)\b", text):
            return False
        if schema.get("description"):
            # A yes/no question (a described field, as df.mistral.filter asks) whose words
            # the text does not contain: no.
            return False
        return self.rng.random() < 0.5

    def _null(self, schema: dict, name: str, record: Record) -> None:
        return None


def fill(schema: dict, text: str, rng: random.Random) -> tuple[Any, bool]:
    """A value for `schema` with values taken from `text`, and whether the budget cut it short."""
    filler = Filler(schema, rng)
    value = filler.make(schema, "", Record(words.data_part(text)))
    return value, filler.truncated


def instance(schema: dict, text: str, rng: random.Random) -> Any:
    """A value valid for `schema`, with its values taken from `text` where possible."""
    return fill(schema, text, rng)[0]


_PEOPLE = frozenset("name firstname fullname person user username customer employee client player".split())


def _records(text: str, items: dict) -> list[str]:
    """The pieces of text an array of objects takes one record from: lines, bullets or sentences,
    or, in one sentence naming several people ("Alice is 31 and Bob is 45"), one per person."""
    parts = words.segments(text)
    people = {t for prop in items.get("properties") or {} for t in _tokens(prop)} & _PEOPLE
    if len(parts) != 1 or not people:
        return parts
    starts = [m.start() for m in (re.search(re.escape(n), text) for n in words.names(text)) if m]
    if len(starts) < 2:
        return parts
    starts[0] = 0
    return [text[a:b].strip() for a, b in zip(starts, [*starts[1:], len(text)], strict=True)]


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _length_ok(value: str, schema: dict) -> bool:
    return schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", math.inf)


def matches(pattern: str, text: str) -> bool:
    """Whether `text` matches the JSON Schema `pattern` (a search, as the spec says), within a time limit."""
    try:
        return regex.search(pattern, text, timeout=PATTERN_TIMEOUT_S) is not None
    except (regex.error, TimeoutError):
        return False


def _unanchored(pattern: str) -> str:
    """The pattern without its outer ^ and $, to find a match inside a longer text."""
    core = pattern[1:] if pattern.startswith("^") else pattern
    if core.endswith("$") and not core.endswith("\\$"):
        core = core[:-1]
    return core


def generate(pattern: str, rng: random.Random) -> str | None:
    """A random string matching `pattern`, or None when it cannot be made within bounds."""
    import rstr

    try:
        parsed = _sre_parse().parse(pattern)
        if _longest(parsed) > _PATTERN_MAX_CHARS:
            return None
        return rstr.Rstr(rng).xeger(pattern)
    except (re.error, ValueError, KeyError, IndexError, OverflowError, RecursionError):
        return None


def _sre_parse():
    try:
        import re._parser as parser  # Python 3.11+
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as parser
    return parser


def _longest(parsed) -> int:
    """An upper bound on what rstr generates for a parsed pattern (it caps * and + at 100)."""
    total = 0
    for op, value in parsed:
        name = str(op).lower()
        if name in ("max_repeat", "min_repeat", "possessive_repeat"):
            low, high, sub = value
            total += min(max(low, min(high, 100)), 10**9) * _longest(sub)
        elif name == "subpattern":
            total += _longest(value[-1])
        elif name == "branch":
            total += max((_longest(branch) for branch in value[1]), default=0)
        elif name in ("assert", "assert_not"):
            total += _longest(value[1])
        elif name == "groupref":
            total += _PATTERN_MAX_CHARS
        else:
            total += 1
        if total > _PATTERN_MAX_CHARS:
            return total
    return total


def without_patterns(schema: Any) -> Any:
    """The schema without `pattern`/`patternProperties`: the validator's re has no time limit."""
    if isinstance(schema, dict):
        return {k: without_patterns(v) for k, v in schema.items() if k not in ("pattern", "patternProperties")}
    if isinstance(schema, list):
        return [without_patterns(v) for v in schema]
    return schema


def validator(schema: dict):
    """A Draft 2020-12 validator for `schema`, with its patterns left out (see `without_patterns`)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(without_patterns(schema))
