"""The short ``--schema`` DSL: comma-separated fields become a strict JSON Schema.

Each field is ``name [type][?][: description]``::

    name, age int, price float: in euros, tags list, born date, ok bool, seen datetime

Types: ``str`` (the default; also ``string``/``text``), ``int``, ``float``, ``bool``,
``date``, ``datetime``, ``list`` (a list of strings) and ``list[int]``,
``list[float]``, ``list[bool]``, ``list[date]``, ``list[datetime]``, ``list[str]``.
A ``?`` after the type (or after the name) lets the value be null, for facts the
text may not contain: ``age int?``. A description runs to the next comma; to put a
comma in it, quote it: ``price float: "in euros, VAT included"``. Field names are
Python identifiers. Anything else is a one-line `SchemaError` with an example.

    >>> parse_dsl("name, age int?")["properties"]["age"]
    {'anyOf': [{'type': 'integer'}, {'type': 'null'}]}
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import SchemaError, one_line

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
            f"--schema has an unclosed quote in {one_line(spec, 80)!r}; close the description's "
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
