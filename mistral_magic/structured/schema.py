"""A ``--schema SPEC`` as a strict JSON Schema: `SchemaSpec`.

A SPEC is one of

* a pydantic model (``class Person(BaseModel): ...``), or its name in the notebook;
* a JSON Schema dict describing one record (``{"type": "object", "properties": ...}``),
  or its name in the notebook;
* the short DSL (`mistral_magic.structured.dsl`): ``"name, age int?, price float: in euros"``.

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

Each field has a kind (str, int, float, bool, date, datetime, list, object, any)
that sets its column's dtype. How an answer is checked against the schema and
becomes typed records and DataFrames is `mistral_magic.structured.frames`.

This module imports pydantic and jsonschema only when it needs them.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import SchemaError, one_line
from .dsl import EXAMPLE, parse_dsl
from .frames import json_path

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
                f"{one_line(json.dumps(record), 80)}; use --many for a list of records, {EXAMPLE}"
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
            where = json_path(exc.path)
            raise SchemaError(
                f"--schema {label} is not a valid JSON Schema at {where}: "
                f"{one_line(exc.message, 160)}; "
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

    def validator(self, many: bool):
        """The jsonschema validator of one record (or, with `many`, of the list)."""
        if many not in self._validators:
            import jsonschema

            cls = jsonschema.Draft202012Validator
            self._validators[many] = cls(self.schema(many), format_checker=cls.FORMAT_CHECKER)
        return self._validators[many]

    def parse(self, text: str, many: bool = False) -> list[dict[str, Any]]:
        """The records in an answer; `StructuredOutputError` (with ``.raw``) if it does not fit."""
        from .frames import parse_records

        return parse_records(self, text, many)

    def to_frame(self, records: Iterable[Mapping[str, Any] | None], index: Any = None):
        """A DataFrame, one row per record (None = a row of missing values), dtypes from the schema."""
        from .frames import records_frame

        return records_frame(self.fields, records, index)
