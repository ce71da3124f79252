"""Structured answers: a ``--schema SPEC`` becomes a strict JSON Schema, answers become a DataFrame.

A SPEC is one of

* a pydantic model (``class Person(BaseModel): ...``), or its name in the notebook;
* a JSON Schema dict describing one record (``{"type": "object", "properties": ...}``),
  or its name in the notebook;
* the short DSL: comma-separated fields, each ``name [type][?][: description]``::

      name, age int, price float: in euros, tags list, born date, ok bool, seen datetime

  Types: ``str`` (the default; also ``string``/``text``), ``int``, ``float``, ``bool``,
  ``date``, ``datetime``, ``list`` (a list of strings) and ``list[int]``,
  ``list[float]``, ``list[bool]``, ``list[date]``, ``list[datetime]``, ``list[str]``.
  A ``?`` after the type (or after the name) lets the value be null, for facts the
  text may not contain: ``age int?``. A description runs to the next comma; to put a
  comma in it, quote it: ``price float: "in euros, VAT included"``. Field names are
  Python identifiers.

A bare identifier is looked up in the namespace first (``--schema Person``); if it is
not there and starts with a lower-case letter it is a one-field DSL (``--schema name``).
With a namespace, a capitalised one that is not defined there (``--schema Persn``) is
taken for a misspelt class name and refused, rather than silently becoming a
one-field schema (``--schema "Persn str"`` is that field).

    >>> spec = SchemaSpec.from_spec("name, age int?, born date")
    >>> spec.fields
    [('name', 'str'), ('age', 'int'), ('born', 'date')]
    >>> spec.response_format(many=True)["json_schema"]["name"]
    'record_list'
    >>> spec.parse('{"items": [{"name": "Ada", "age": null, "born": "1815-12-10"}]}', many=True)
    [{'name': 'Ada', 'age': None, 'born': '1815-12-10'}]

The JSON Schema is made strict the way the hosted API's strict mode wants it: every
object with properties gets ``additionalProperties: false`` and lists all its
properties in ``required`` (a pydantic ``Optional`` field stays nullable through its
``anyOf [T, null]``). A free-form map (``dict[str, int]``: an object with no
properties and an ``additionalProperties`` schema) is kept as it is.

`parse` checks an answer with ``jsonschema`` (Draft 2020-12, formats checked) and,
for a pydantic source, with the model too (then dates are ``date`` objects; for the
DSL and dict sources they stay ISO strings until `to_frame`). A failure raises
`StructuredOutputError` with one line naming the path, and the raw text kept;
`validation_feedback` turns it into the message for a re-ask.

`parse` also refuses a value its column cannot hold (an integer past the 64-bit range in
an ``int`` field, a number too large for a ``float``), so a record it returns always
becomes a row.

`to_frame` gives one row per record, columns in schema order, dtypes from the schema:
int → ``Int64``, float → ``float64``, bool → ``boolean``, date/datetime →
``datetime64[ns]`` (``datetime64[ns, UTC]`` when the answers carry time zones;
unreadable dates become NaT), str → ``object`` with missing values kept as ``None``
(so plain Python strings come back out), list/object → ``object``.

This module imports pydantic, jsonschema and pandas only when it needs them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import SchemaError, StructuredOutputError

KINDS = ("str", "int", "float", "bool", "date", "datetime", "list", "object", "any")

EXAMPLE = 'e.g. --schema "name, age int, price float: in euros, tags list"'

_SCALARS: dict[str, tuple[str, dict[str, Any]]] = {
    "str": ("str", {"type": "string"}),
    "string": ("str", {"type": "string"}),
    "text": ("str", {"type": "string"}),
    "int": ("int", {"type": "integer"}),
    "integer": ("int", {"type": "integer"}),
    "float": ("float", {"type": "number"}),
    "number": ("float", {"type": "number"}),
    "bool": ("bool", {"type": "boolean"}),
    "boolean": ("bool", {"type": "boolean"}),
    "date": ("date", {"type": "string", "format": "date"}),
    "datetime": ("datetime", {"type": "string", "format": "date-time"}),
}
_TYPE_NAMES = "str, int, float, bool, date, datetime, list, list[int], list[float]"
_LIST_RE = re.compile(r"^list\[(\w+)\]$")


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- the DSL ------------------------------------------------------------------------


def _split_fields(spec: str) -> list[str]:
    """Split on commas outside double quotes and brackets."""
    parts: list[str] = []
    buf: list[str] = []
    quoted = False
    depth = 0
    described = False  # brackets count only in the type, not in a description
    for ch in spec:
        if ch == '"':
            quoted = not quoted
        elif quoted:
            pass
        elif ch == ":":
            described = True
        elif ch == "[" and not described:
            depth += 1
        elif ch == "]" and not described:
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            parts.append("".join(buf))
            buf = []
            described = False
            continue
        buf.append(ch)
    if quoted:
        raise SchemaError(
            f"--schema has an unclosed quote in {_one_line(spec, 80)!r}; close the description's "
            f'quotes, e.g. price float: "in euros, VAT included"'
        )
    parts.append("".join(buf))
    return parts


def _dsl_type(field: str, name: str, type_text: str) -> tuple[str, dict[str, Any]]:
    text = type_text.lower()
    if text in _SCALARS:
        kind, schema = _SCALARS[text]
        return kind, dict(schema)
    if text == "list":
        return "list", {"type": "array", "items": {"type": "string"}}
    match = _LIST_RE.match(text)
    if match and match.group(1) in _SCALARS:
        return "list", {"type": "array", "items": dict(_SCALARS[match.group(1)][1])}
    raise SchemaError(
        f"--schema field {field!r}: unknown type {type_text!r} for {name!r}; "
        f"use one of {_TYPE_NAMES}, {EXAMPLE}"
    )


def _dsl_field(part: str) -> tuple[str, str, dict[str, Any]]:
    field = part.strip()
    if not field:
        raise SchemaError(
            f"--schema has an empty field (two commas in a row, or a comma at an end); {EXAMPLE}"
        )
    head, colon, description = field.partition(":")
    if '"' in head:
        raise SchemaError(
            f"--schema field {field!r}: quotes belong after the colon, around the description; "
            f'e.g. price float: "in euros, VAT included"'
        )
    description = description.strip()
    if colon and description.startswith('"'):
        if len(description) < 2 or not description.endswith('"') or '"' in description[1:-1]:
            raise SchemaError(
                f"--schema field {field!r}: a quoted description must be the whole text after "
                f'the colon; e.g. price float: "in euros, VAT included"'
            )
        description = description[1:-1].strip()
    words = head.split()
    if not words:
        raise SchemaError(f"--schema field {field!r} has no name before the colon; {EXAMPLE}")
    name, rest = words[0], " ".join(words[1:])
    if "[" in rest:
        rest = "".join(rest.split())  # "list[ int ]" is "list[int]"
    elif len(words) > 2:
        raise SchemaError(
            f"--schema field {field!r} has too many words before the colon; write "
            f"'name type: description', {EXAMPLE}"
        )
    nullable = False
    if rest.endswith("?"):
        nullable, rest = True, rest[:-1]
    elif not rest and name.endswith("?"):
        nullable, name = True, name[:-1]
    if not name.isidentifier():
        raise SchemaError(
            f"--schema field name {name!r} (in {field!r}) is not an identifier: use letters, "
            f"digits and _, not starting with a digit; {EXAMPLE}"
        )
    kind, schema = _dsl_type(field, name, rest) if rest else ("str", {"type": "string"})
    if nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    if description:
        schema["description"] = description
    return name, kind, schema


def parse_dsl(spec: str) -> dict[str, Any]:
    """The JSON Schema (one record, strict) for a DSL string; `SchemaError` if it is not valid."""
    if not isinstance(spec, str) or not spec.strip():
        raise SchemaError(f"--schema is empty; list the fields, {EXAMPLE}")
    properties: dict[str, Any] = {}
    for part in _split_fields(spec):
        name, _kind, schema = _dsl_field(part)
        if name in properties:
            raise SchemaError(
                f"--schema field {name!r} appears twice; give each field its own name, {EXAMPLE}"
            )
        properties[name] = schema
    return {
        "title": "record",
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


# -- JSON Schema helpers ------------------------------------------------------------

_MAP_KEYS = ("properties", "$defs", "definitions", "patternProperties", "dependentSchemas")
_LIST_KEYS = ("anyOf", "oneOf", "allOf", "prefixItems")
_ONE_KEYS = (
    "items",
    "additionalItems",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
)


def _is_object(node: Mapping[str, Any]) -> bool:
    kind = node.get("type")
    if isinstance(kind, list):
        return "object" in kind
    return kind == "object" or (kind is None and isinstance(node.get("properties"), dict))


def make_strict(node: Any) -> Any:
    """A copy of a JSON Schema where every object forbids extra keys and requires all keys.

    The walk follows schema keywords only, so a property that happens to be called
    "properties" or "type" is not mistaken for a keyword.
    """
    if isinstance(node, list):  # old-style tuple "items"
        return [make_strict(s) for s in node]
    if not isinstance(node, dict):
        return node
    out = dict(node)
    for key in _MAP_KEYS:
        if isinstance(out.get(key), dict):
            out[key] = {name: make_strict(sub) for name, sub in out[key].items()}
    for key in _LIST_KEYS:
        if isinstance(out.get(key), list):
            out[key] = [make_strict(sub) for sub in out[key]]
    for key in _ONE_KEYS:
        if isinstance(out.get(key), (dict, list)):
            out[key] = make_strict(out[key])
    if _is_object(out):
        props = out.get("properties")
        if props is None and "type" not in out:
            out["type"] = "object"
        # A map (no properties, a value schema) keeps its meaning; everything else is closed.
        if props or not isinstance(out.get("additionalProperties"), dict):
            out["additionalProperties"] = False
        if props:
            out.setdefault("type", "object")
            out["required"] = list(props)
    return out


def _deref(node: Any, root: Mapping[str, Any]) -> Any:
    """Follow local $refs ("#/$defs/X"); anything else is returned as it is."""
    seen = 0
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and seen < 32:
        ref = node["$ref"]
        if not ref.startswith("#"):
            return node
        target: Any = root
        for token in [t for t in ref[1:].split("/") if t]:
            token = token.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, dict) or token not in target:
                return node
            target = target[token]
        node = target
        seen += 1
    return node


def _value_kind(values: Sequence[Any]) -> str:
    if values and all(isinstance(v, str) for v in values):
        return "str"
    if values and all(isinstance(v, bool) for v in values):
        return "bool"
    if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if values and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    return "any"


def _kind(node: Any, root: Mapping[str, Any], depth: int = 0) -> str:
    node = _deref(node, root)
    if not isinstance(node, dict) or depth > 16:
        return "any"
    for key in ("anyOf", "oneOf"):
        if isinstance(node.get(key), list):
            alternatives = [_deref(a, root) for a in node[key]]
            kinds = {
                _kind(a, root, depth + 1)
                for a in alternatives
                if not (isinstance(a, dict) and a.get("type") == "null")
            }
            return kinds.pop() if len(kinds) == 1 else "any"
    if isinstance(node.get("allOf"), list) and len(node["allOf"]) == 1:
        return _kind(node["allOf"][0], root, depth + 1)
    kind = node.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind == "string":
        return {"date": "date", "date-time": "datetime"}.get(node.get("format"), "str")
    simple = {"integer": "int", "number": "float", "boolean": "bool", "array": "list"}
    if kind in simple:
        return simple[kind]
    if kind == "object" or (kind is None and "properties" in node):
        return "object"
    if kind is None and isinstance(node.get("enum"), list):
        return _value_kind(node["enum"])
    if kind is None and "const" in node:
        return _value_kind([node["const"]])
    return "any"


def _schema_name(text: Any) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", str(text or "")).strip("_")[:64]
    return name or "record"


def _json_path(path: Iterable[Any]) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


# -- SchemaSpec ---------------------------------------------------------------------


class SchemaSpec:
    """A record schema: strict JSON Schema, response_format, validation and DataFrames."""

    def __init__(
        self,
        json_schema: Mapping[str, Any],
        name: str = "record",
        pydantic_model: type | None = None,
        source: str = "dict",
    ):
        self.json_schema: dict[str, Any] = make_strict(copy.deepcopy(dict(json_schema)))
        self.name = _schema_name(name)
        self.pydantic_model = pydantic_model
        self.source = source  # "pydantic" | "dict" | "dsl"
        record = _deref(self.json_schema, self.json_schema)
        if not isinstance(record, dict) or not _is_object(record):
            raise SchemaError(
                f"--schema must describe one record (a JSON object with properties), not "
                f"{_one_line(json.dumps(record), 80)}; use --many for a list of records, {EXAMPLE}"
            )
        props = record.get("properties") or {}
        self.fields: list[tuple[str, str]] = [
            (name, _kind(sub, self.json_schema)) for name, sub in props.items()
        ]
        self._validators: dict[bool, Any] = {}

    def __repr__(self) -> str:
        fields = ", ".join(f"{n} {k}" for n, k in self.fields)
        return f"<SchemaSpec {self.name} ({self.source}): {fields}>"

    @property
    def field_names(self) -> list[str]:
        return [name for name, _ in self.fields]

    # -- building ---------------------------------------------------------------

    @classmethod
    def from_spec(cls, spec: Any, namespace: Mapping[str, Any] | None = None) -> SchemaSpec:
        """Build from a pydantic model, a JSON Schema dict, a DSL string, or a name in `namespace`."""
        if isinstance(spec, SchemaSpec):
            return spec
        if isinstance(spec, str):
            text = spec.strip()
            if text.isidentifier() and namespace is not None and text in namespace:
                value = namespace[text]
                if isinstance(value, (dict, type)):
                    return cls._from_object(value, label=text)
                raise SchemaError(
                    f"--schema {text} names a {type(value).__name__} in your namespace, not a "
                    f"pydantic model or a JSON Schema dict; for a one-field schema write "
                    f'"{text} str", {EXAMPLE}'
                )
            if text.isidentifier() and text[0].isupper() and namespace is not None:
                raise SchemaError(
                    f"--schema {text}: {text} is not defined in the notebook; define the pydantic "
                    f"model, or write a DSL ({EXAMPLE}; a one-field schema: '{text} str')"
                )
            return cls(parse_dsl(text), name="record", source="dsl")
        return cls._from_object(spec, label=type(spec).__name__)

    @classmethod
    def _from_object(cls, value: Any, label: str) -> SchemaSpec:
        if isinstance(value, dict):
            return cls._from_dict(value, label)
        if isinstance(value, type):
            from pydantic import BaseModel

            if issubclass(value, BaseModel):
                return cls(
                    value.model_json_schema(),
                    name=value.__name__,
                    pydantic_model=value,
                    source="pydantic",
                )
            raise SchemaError(
                f"--schema {label}: class {value.__name__} is not a pydantic BaseModel; derive it "
                f"from pydantic.BaseModel or pass a JSON Schema dict, {EXAMPLE}"
            )
        raise SchemaError(
            f"--schema got a {type(value).__name__}; give a pydantic model, a JSON Schema dict, "
            f"or a DSL string, {EXAMPLE}"
        )

    @classmethod
    def _from_dict(cls, schema: dict[str, Any], label: str) -> SchemaSpec:
        import jsonschema

        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            where = _json_path(exc.path)
            raise SchemaError(
                f"--schema {label} is not a valid JSON Schema at {where}: "
                f"{_one_line(exc.message, 160)}; "
                'e.g. {"type": "object", "properties": {"name": {"type": "string"}}}'
            ) from None
        return cls(schema, name=schema.get("title") or "record", source="dict")

    # -- the request ------------------------------------------------------------

    def schema(self, many: bool = False) -> dict[str, Any]:
        """The JSON Schema of one record, or with `many` of ``{"items": [records]}``."""
        record = copy.deepcopy(self.json_schema)
        if not many:
            return record
        wrapper: dict[str, Any] = {}
        if "$schema" in record:
            wrapper["$schema"] = record.pop("$schema")
        wrapper.update(
            {
                "type": "object",
                "properties": {"items": {"type": "array", "items": record}},
                "required": ["items"],
                "additionalProperties": False,
            }
        )
        # Refs are "#/$defs/X" from the document root, so the definitions move up with it.
        for key in ("$defs", "definitions"):
            if key in record:
                wrapper[key] = record.pop(key)
        return wrapper

    def response_format(self, many: bool = False) -> dict[str, Any]:
        """The chat request's ``response_format`` (strict ``json_schema``)."""
        return {
            "type": "json_schema",
            "json_schema": {
                "name": f"{self.name}_list" if many else self.name,
                "schema": self.schema(many),
                "strict": True,
            },
        }

    def describe(self, many: bool = False) -> str:
        """The schema as pretty JSON, for ``%mistral schema SPEC``."""
        return json.dumps(self.schema(many), indent=2, ensure_ascii=False)

    # -- the answer -------------------------------------------------------------

    def _validator(self, many: bool):
        if many not in self._validators:
            import jsonschema

            cls = jsonschema.Draft202012Validator
            self._validators[many] = cls(self.schema(many), format_checker=cls.FORMAT_CHECKER)
        return self._validators[many]

    def parse(self, text: str, many: bool = False) -> list[dict[str, Any]]:
        """The records in an answer; `StructuredOutputError` (with ``.raw``) if it does not fit."""
        obj = _loads(text)
        if many and isinstance(obj, list):
            # Some models answer the bare list; it means the same thing.
            obj = {"items": obj}
        from jsonschema.exceptions import best_match

        error = best_match(self._validator(many).iter_errors(obj))
        if error is not None:
            raise StructuredOutputError(
                f"The answer does not match the schema at {_json_path(error.absolute_path)}: "
                f"{_one_line(error.message, 200)}",
                raw=text,
            )
        items = obj["items"] if many else [obj]
        if self.pydantic_model is None:
            records = [dict(item) for item in items]
        else:
            records = [
                self._validate_model(item, i if many else None, text)
                for i, item in enumerate(items)
            ]
        for i, record in enumerate(records):
            self._check_fits(record, i if many else None, text)
        return records

    def _check_fits(self, record: Mapping[str, Any], index: int | None, text: str) -> None:
        """Refuse a value its column cannot hold, so that every parsed record becomes a row."""
        for name, kind in self.fields:
            value = record.get(name)
            if _fits(kind, value):
                continue
            path = ([] if index is None else ["items", index]) + [name]
            shown = _one_line(repr(value), 40)
            raise StructuredOutputError(
                f"The answer's value at {_json_path(path)} ({shown}) is too large for a "
                f"{_DTYPES[kind]} column",
                raw=text,
            )

    def _validate_model(self, item: Any, index: int | None, text: str) -> dict[str, Any]:
        from pydantic import ValidationError

        try:
            return self.pydantic_model.model_validate(item).model_dump(by_alias=True)
        except ValidationError as exc:
            first = exc.errors()[0]
            path = ([] if index is None else ["items", index]) + list(first.get("loc", ()))
            raise StructuredOutputError(
                f"The answer does not match {self.name} at {_json_path(path)}: "
                f"{_one_line(first.get('msg', exc), 200)}",
                raw=text,
            ) from None

    # -- DataFrames -------------------------------------------------------------

    def to_frame(self, records: Iterable[Mapping[str, Any] | None], index: Any = None):
        """A DataFrame, one row per record (None = a row of missing values), dtypes from the schema."""
        import pandas as pd

        rows = [dict(r) if r is not None else {} for r in records]
        columns = list(self.fields)
        known = set(self.field_names)
        for row in rows:  # keys outside the schema (loose dict schemas) go last, as objects
            for key in row:
                if key not in known:
                    known.add(key)
                    columns.append((key, "any"))
        data = {name: _column([row.get(name) for row in rows], kind) for name, kind in columns}
        frame = pd.DataFrame(data, columns=[name for name, _ in columns])
        if index is not None:
            frame.index = index
        return frame


def _loads(text: Any) -> Any:
    if not isinstance(text, str):
        raise StructuredOutputError(
            f"The answer is not JSON text but {type(text).__name__}", raw=None
        )
    body = text.strip()
    # A fenced block (```json ... ```) is the commonest wrapper around otherwise good JSON.
    fence = re.match(r"^```[\w-]*\s*\n(.*)\n\s*```$", body, re.DOTALL)
    if fence:
        body = fence.group(1)
    try:
        return json.loads(body)
    except ValueError as exc:
        detail = getattr(exc, "msg", str(exc))
        where = (
            f" (line {exc.lineno} column {exc.colno})"
            if isinstance(exc, json.JSONDecodeError)
            else ""
        )
        raise StructuredOutputError(
            f"The answer is not valid JSON{where}: {_one_line(detail, 120)}", raw=text
        ) from None


def validation_feedback(error: BaseException | str) -> str:
    """The message sent back to the model when its answer did not validate (a re-ask)."""
    return (
        f"Your previous answer was not valid: {_one_line(str(error), 400)}. "
        "Answer again with only JSON matching the schema."
    )


def reask_request(request: dict[str, Any], answer: str, error: BaseException | str) -> dict[str, Any]:
    """The request again, with the invalid answer and what was wrong with it appended."""
    return {
        **request,
        "messages": [
            *request["messages"],
            {"role": "assistant", "content": answer},
            {"role": "user", "content": validation_feedback(error)},
        ],
    }


# -- columns ------------------------------------------------------------------------

_INT64 = (-(2**63), 2**63 - 1)
_DTYPES = {"int": "64-bit integer (Int64)", "float": "float64"}


def _fits(kind: str, value: Any) -> bool:
    """Whether a column of `kind` can hold `value` (only int and float columns have a range)."""
    if kind == "int":
        number = _as_int(value)
        return not isinstance(number, int) or _INT64[0] <= number <= _INT64[1]
    if kind == "float":
        try:
            _as_float(value)
        except OverflowError:
            return False
    return True



def _as_int(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, bool) or value is None:
        return pd.NA
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else pd.NA
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return pd.NA
        return int(number) if number.is_integer() else pd.NA
    return pd.NA


def _as_float(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _as_bool(value: Any) -> Any:
    import pandas as pd

    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return pd.NA


def _as_datetime(values: list[Any]):
    import pandas as pd

    def convert(series, fmt):
        try:
            parsed = pd.to_datetime(series, errors="coerce", format=fmt)
        except (ValueError, TypeError):  # mixed time zones: line them up in UTC
            parsed = pd.to_datetime(series, errors="coerce", format=fmt, utc=True)
        if getattr(parsed.dtype, "tz", None) is not None:
            return parsed.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")
        return parsed.astype("datetime64[ns]")

    series = pd.Series(values, dtype=object)
    parsed = convert(series, "ISO8601")
    # Non-ISO text ("Jan 5, 2020") gets a second, lenient chance.
    retry = parsed.isna() & series.map(lambda v: isinstance(v, str) and bool(v.strip()))
    if retry.any():
        again = convert(series[retry], "mixed")
        if again.dtype == parsed.dtype:
            parsed[retry] = again
    return parsed


def _column(values: list[Any], kind: str):
    import pandas as pd

    if kind == "int":
        return pd.Series([_as_int(v) for v in values], dtype="Int64")
    if kind == "float":
        return pd.Series([_as_float(v) for v in values], dtype="float64")
    if kind == "bool":
        return pd.Series([_as_bool(v) for v in values], dtype="boolean")
    if kind in ("date", "datetime"):
        return _as_datetime(values)
    # str, list, object, any: Python objects, missing as None (pandas would guess "str").
    return pd.Series(values, dtype=object)


def json_records_to_frame(obj: Any) -> Any:
    """For ``--json``: a list of dicts (or ``{"key": [dicts]}``) becomes a DataFrame; else `obj`."""
    rows = None
    if isinstance(obj, list) and all(isinstance(item, dict) for item in obj):
        rows = obj
    elif isinstance(obj, dict) and len(obj) == 1:
        (value,) = obj.values()
        if isinstance(value, list) and all(isinstance(item, dict) for item in value):
            rows = value
    if rows is None:
        return obj
    import pandas as pd

    return pd.DataFrame(rows)
