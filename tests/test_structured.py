"""SchemaSpec: the DSL, pydantic and dict sources, strictness, parsing, DataFrames."""

from __future__ import annotations

import json
import keyword
import math
from datetime import date, datetime
from typing import Optional

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, Field

from mistral_magic.errors import SchemaError, StructuredOutputError
from mistral_magic.structured.dsl import parse_dsl
from mistral_magic.structured.frames import json_records_to_frame, validation_feedback
from mistral_magic.structured.schema import SchemaSpec, make_strict

FULL_DSL = (
    "name, age int, price float: in euros, tags list, born date, ok bool, seen datetime, "
    "scores list[float], counts list[int]"
)


class Address(BaseModel):
    city: str
    zip: Optional[str] = None  # noqa: UP045  (the Optional spelling is what users write)


class Person(BaseModel):
    name: str
    born: date
    address: Address
    nick: str | None = None
    tags: list[str] = []


class Node(BaseModel):
    name: str
    children: list[Node] = []


Node.model_rebuild()


def walk_objects(node, root=True):
    """Every object schema in a JSON Schema (following keywords, not property names)."""
    if isinstance(node, list):
        for item in node:
            yield from walk_objects(item, False)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "object":
        yield node
    for key in ("properties", "$defs", "definitions"):
        for sub in (node.get(key) or {}).values():
            yield from walk_objects(sub, False)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        yield from walk_objects(node.get(key) or [], False)
    for key in ("items", "additionalProperties", "not"):
        if isinstance(node.get(key), (dict, list)):
            yield from walk_objects(node[key], False)


def assert_strict(schema):
    objects = list(walk_objects(schema))
    assert objects
    for obj in objects:
        assert obj["additionalProperties"] is False, obj
        assert obj.get("required", []) == list(obj.get("properties", {})), obj


# -- the DSL ------------------------------------------------------------------------


def test_dsl_every_type():
    spec = SchemaSpec.from_spec(FULL_DSL)
    assert spec.fields == [
        ("name", "str"),
        ("age", "int"),
        ("price", "float"),
        ("tags", "list"),
        ("born", "date"),
        ("ok", "bool"),
        ("seen", "datetime"),
        ("scores", "list"),
        ("counts", "list"),
    ]
    props = spec.json_schema["properties"]
    assert props["name"] == {"type": "string"}
    assert props["age"] == {"type": "integer"}
    assert props["price"] == {"type": "number", "description": "in euros"}
    assert props["tags"] == {"type": "array", "items": {"type": "string"}}
    assert props["born"] == {"type": "string", "format": "date"}
    assert props["ok"] == {"type": "boolean"}
    assert props["seen"] == {"type": "string", "format": "date-time"}
    assert props["scores"]["items"] == {"type": "number"}
    assert props["counts"]["items"] == {"type": "integer"}
    assert spec.name == "record" and spec.pydantic_model is None and spec.source == "dsl"
    assert_strict(spec.json_schema)


def test_dsl_type_synonyms_spacing_and_case():
    spec = SchemaSpec.from_spec(
        "  a string ,b INTEGER, c number, d boolean, e text, f list[ str ] "
    )
    assert spec.fields == [
        ("a", "str"),
        ("b", "int"),
        ("c", "float"),
        ("d", "bool"),
        ("e", "str"),
        ("f", "list"),
    ]


def test_dsl_descriptions_quotes_and_colons():
    spec = SchemaSpec.from_spec(
        'price float: "in euros, VAT included", at datetime: like 10:30, note: see [1], x int'
    )
    props = spec.json_schema["properties"]
    assert props["price"]["description"] == "in euros, VAT included"
    assert props["at"]["description"] == "like 10:30"
    assert props["note"] == {"type": "string", "description": "see [1]"}
    assert spec.field_names == ["price", "at", "note", "x"]
    # an empty description is no description
    assert parse_dsl("a:")["properties"]["a"] == {"type": "string"}


def test_dsl_nullable_fields():
    spec = SchemaSpec.from_spec("age int?: if stated, nick?")
    age = spec.json_schema["properties"]["age"]
    assert age == {"anyOf": [{"type": "integer"}, {"type": "null"}], "description": "if stated"}
    assert spec.json_schema["properties"]["nick"]["anyOf"][1] == {"type": "null"}
    assert spec.fields == [("age", "int"), ("nick", "str")]
    assert spec.json_schema["required"] == ["age", "nick"]
    assert spec.parse('{"age": null, "nick": null}') == [{"age": None, "nick": None}]


def test_single_word_is_a_one_field_dsl():
    assert SchemaSpec.from_spec("name").fields == [("name", "str")]
    assert SchemaSpec.from_spec("name", namespace={"other": 1}).fields == [("name", "str")]


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("name,,age int", "empty field"),
        ("name, age int,", "empty field"),
        ("name, age integr", "'integr'"),
        ("tags list[dict]", "'list[dict]'"),
        ("2fast int", "'2fast'"),
        ("first-name", "'first-name'"),
        ("name, age int, name", "'name' appears twice"),
        ("name str extra", "too many words"),
        ('price float: "in euros', "unclosed quote"),
        ('price "float"', "quotes belong after the colon"),
        ('price float: "a" b', "quoted description"),
        (": just a description", "no name"),
    ],
)
def test_bad_dsl_gives_one_line_schema_error(spec, fragment):
    with pytest.raises(SchemaError) as info:
        SchemaSpec.from_spec(spec)
    message = str(info.value)
    assert "\n" not in message
    assert fragment in message
    assert "e.g." in message  # every message shows a valid example


# -- namespace, pydantic and dict sources -------------------------------------------


def test_pydantic_source_nested_optional_and_date():
    spec = SchemaSpec.from_spec(Person)
    assert spec.name == "Person" and spec.pydantic_model is Person and spec.source == "pydantic"
    assert spec.fields == [
        ("name", "str"),
        ("born", "date"),
        ("address", "object"),
        ("nick", "str"),
        ("tags", "list"),
    ]
    assert_strict(spec.json_schema)
    assert spec.json_schema["$defs"]["Address"]["required"] == ["city", "zip"]
    nick = spec.json_schema["properties"]["nick"]
    assert {"type": "null"} in nick["anyOf"]
    records = spec.parse(
        '{"name": "Ada", "born": "1815-12-10", "address": {"city": "London", "zip": null},'
        ' "nick": null, "tags": ["math"]}'
    )
    assert records == [
        {
            "name": "Ada",
            "born": date(1815, 12, 10),
            "address": {"city": "London", "zip": None},
            "nick": None,
            "tags": ["math"],
        }
    ]


def test_recursive_pydantic_model_through_top_level_ref():
    spec = SchemaSpec.from_spec(Node)
    assert spec.fields == [("name", "str"), ("children", "list")]
    assert_strict(spec.json_schema)
    tree = '[{"name": "a", "children": [{"name": "b", "children": []}]}]'
    assert spec.parse(tree, many=True)[0]["children"][0]["name"] == "b"
    with pytest.raises(StructuredOutputError) as info:
        spec.parse(
            '[{"name": "a", "children": [{"name": "b", "children": [], "x": 1}]}]', many=True
        )
    assert "$.items[0].children[0]" in str(info.value)


def test_pydantic_aliases_are_the_keys():
    class Item(BaseModel):
        item_id: int = Field(alias="itemId")

    spec = SchemaSpec.from_spec(Item)
    assert spec.field_names == ["itemId"]
    assert spec.parse('{"itemId": 3}') == [{"itemId": 3}]


def test_namespace_lookup_for_models_and_dicts():
    schema = {
        "title": "City",
        "type": "object",
        "properties": {"name": {"type": "string"}, "pop": {"type": "integer"}},
    }
    ns = {"Person": Person, "city_schema": schema}
    assert SchemaSpec.from_spec("Person", ns).pydantic_model is Person
    spec = SchemaSpec.from_spec(" city_schema ", ns)
    assert spec.name == "City" and spec.fields == [("name", "str"), ("pop", "int")]
    assert spec.source == "dict"
    # the user's dict is not modified by making it strict
    assert "additionalProperties" not in schema and "required" not in schema


@pytest.mark.parametrize(
    "value",
    [42, "name, age int", [1, 2], Person(name="a", born=date.today(), address=Address(city="x"))],
)
def test_namespace_value_that_is_not_a_schema(value):
    with pytest.raises(SchemaError) as info:
        SchemaSpec.from_spec("thing", {"thing": value})
    message = str(info.value)
    assert "\n" not in message and "thing" in message and "pydantic" in message


def test_non_pydantic_class_and_other_objects_are_refused():
    class Plain:
        pass

    for bad in (Plain, 3.5, ["a"]):
        with pytest.raises(SchemaError) as info:
            SchemaSpec.from_spec(bad)
        assert "\n" not in str(info.value)


def test_dict_source_strict_and_kinds():
    schema = {
        "type": "object",
        "properties": {
            "when": {"type": ["string", "null"], "format": "date-time"},
            "kind": {"enum": ["a", "b"]},
            "level": {"enum": [1, 2, 3]},
            "point": {
                "type": "object",
                "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
            },
            "rows": {
                "type": "array",
                "items": {"type": "object", "properties": {"v": {"type": "integer"}}},
            },
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "free": {},
        },
    }
    spec = SchemaSpec.from_spec(schema)
    assert spec.name == "record"
    assert dict(spec.fields) == {
        "when": "datetime",
        "kind": "str",
        "level": "int",
        "point": "object",
        "rows": "list",
        "either": "any",
        "free": "any",
    }
    assert_strict(spec.json_schema)


def test_dict_map_keeps_its_value_schema():
    schema = {
        "type": "object",
        "properties": {"counts": {"type": "object", "additionalProperties": {"type": "integer"}}},
    }
    spec = SchemaSpec.from_spec(schema)
    assert spec.json_schema["properties"]["counts"]["additionalProperties"] == {"type": "integer"}
    assert spec.json_schema["additionalProperties"] is False


def test_property_named_like_a_keyword_is_not_a_keyword():
    schema = {
        "type": "object",
        "properties": {"properties": {"type": "string"}, "type": {"type": "string"}},
    }
    strict = make_strict(schema)
    assert strict["properties"] == {"properties": {"type": "string"}, "type": {"type": "string"}}
    assert strict["required"] == ["properties", "type"]


@pytest.mark.parametrize(
    "schema, fragment",
    [
        ({"type": "object", "properties": {"a": {"type": "strnig"}}}, "$.properties.a.type"),
        ({"type": "array", "items": {"type": "string"}}, "one record"),
        ({"type": "string"}, "one record"),
    ],
)
def test_bad_dict_schema(schema, fragment):
    with pytest.raises(SchemaError) as info:
        SchemaSpec.from_spec(schema)
    assert "\n" not in str(info.value) and fragment in str(info.value)


def test_spec_passes_through_and_repr():
    spec = SchemaSpec.from_spec("a int")
    assert SchemaSpec.from_spec(spec) is spec
    assert "a int" in repr(spec)


# -- response_format ----------------------------------------------------------------


def test_response_format_single():
    fmt = SchemaSpec.from_spec("name, age int").response_format()
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "record" and fmt["json_schema"]["strict"] is True
    assert fmt["json_schema"]["schema"]["required"] == ["name", "age"]


def test_response_format_many_hoists_defs():
    spec = SchemaSpec.from_spec(Person)
    fmt = spec.response_format(many=True)
    schema = fmt["json_schema"]["schema"]
    assert fmt["json_schema"]["name"] == "Person_list"
    assert schema["type"] == "object" and schema["required"] == ["items"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["items"]["type"] == "array"
    record = schema["properties"]["items"]["items"]
    assert "$defs" not in record and "Address" in schema["$defs"]
    assert record["properties"]["address"] == {"$ref": "#/$defs/Address"}
    assert_strict(schema)
    # refs resolve: a valid list validates, a nested error is found through the ref
    good = {"name": "a", "born": "2000-01-01", "address": {"city": "x", "zip": None}}
    good |= {"nick": None, "tags": []}
    assert spec.parse(json.dumps({"items": [good]}), many=True)[0]["address"]["city"] == "x"
    bad = dict(good, address={"city": 3, "zip": None})
    with pytest.raises(StructuredOutputError) as info:
        spec.parse(json.dumps({"items": [good, bad]}), many=True)
    assert "$.items[1].address.city" in str(info.value)
    # the spec's own schema is not changed by wrapping
    assert "$defs" in spec.json_schema


def test_response_format_is_a_copy():
    spec = SchemaSpec.from_spec("a")
    spec.response_format()["json_schema"]["schema"]["properties"]["b"] = {}
    assert spec.field_names == ["a"] and "b" not in spec.json_schema["properties"]


def test_schema_name_is_sanitised():
    spec = SchemaSpec.from_spec({"title": "My record!", "type": "object", "properties": {}})
    assert spec.name == "My_record"


def test_describe_is_pretty_json():
    spec = SchemaSpec.from_spec("price float: in €")
    text = spec.describe()
    assert json.loads(text) == spec.json_schema and "\n  " in text and "€" in text
    assert json.loads(spec.describe(many=True))["required"] == ["items"]


# -- parse --------------------------------------------------------------------------


def test_parse_single_and_many():
    spec = SchemaSpec.from_spec("name, age int, born date")
    one = '{"name": "Ada", "age": 36, "born": "1815-12-10"}'
    assert spec.parse(one) == [{"name": "Ada", "age": 36, "born": "1815-12-10"}]
    many = json.dumps({"items": [json.loads(one), json.loads(one)]})
    assert len(spec.parse(many, many=True)) == 2
    # a bare list means the same as {"items": [...]}
    assert spec.parse(f"[{one}]", many=True) == spec.parse(one)
    assert spec.parse('{"items": []}', many=True) == []
    # a fenced block is unwrapped
    assert spec.parse(f"```json\n{one}\n```") == spec.parse(one)


def test_parse_invalid_json_keeps_raw():
    spec = SchemaSpec.from_spec("name")
    with pytest.raises(StructuredOutputError) as info:
        spec.parse('{"name": "Ada"')
    assert info.value.raw == '{"name": "Ada"'
    assert "not valid JSON" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text, path",
    [
        ('{"name": "Ada", "age": "old", "born": "1815-12-10"}', "$.age"),
        ('{"name": "Ada", "age": 3, "born": "1815-13-10"}', "$.born"),
        ('{"name": "Ada", "born": "1815-12-10"}', "$"),
        ('{"name": "Ada", "age": 3, "born": "1815-12-10", "extra": 1}', "$"),
        ('{"items": [{"name": "Ada", "age": 3.5, "born": "1815-12-10"}]}', "$.items[0].age"),
    ],
)
def test_parse_schema_invalid(text, path):
    spec = SchemaSpec.from_spec("name, age int, born date")
    with pytest.raises(StructuredOutputError) as info:
        spec.parse(text, many=text.startswith('{"items"'))
    message = str(info.value)
    assert info.value.raw == text
    assert f"at {path}:" in message and "\n" not in message


def test_validation_feedback():
    spec = SchemaSpec.from_spec("age int")
    with pytest.raises(StructuredOutputError) as info:
        spec.parse('{"age": "x"}')
    feedback = validation_feedback(info.value)
    assert feedback.startswith("Your previous answer was not valid: The answer does not match")
    assert feedback.endswith("Answer again with only JSON matching the schema.")
    assert "$.age" in feedback and "\n" not in feedback
    assert "boom" in validation_feedback("boom\nsecond line")


# -- to_frame -----------------------------------------------------------------------


def test_to_frame_dtypes_and_missing_values():
    spec = SchemaSpec.from_spec(FULL_DSL + ", meta?")
    records = [
        {
            "name": "Ada",
            "age": 36,
            "price": 1.5,
            "tags": ["a"],
            "born": "1815-12-10",
            "ok": True,
            "seen": "2024-05-01T10:30:00",
            "scores": [0.5],
            "counts": [1],
            "meta": "x",
        },
        {"name": None, "age": None, "price": None, "tags": None, "born": None, "ok": None},
        None,
        {"born": "not a date", "seen": "2024-05-02"},
    ]
    frame = spec.to_frame(records)
    assert list(frame.columns) == [*spec.field_names]
    dtypes = {c: str(t) for c, t in frame.dtypes.items()}
    assert dtypes == {
        "name": "object",
        "age": "Int64",
        "price": "float64",
        "tags": "object",
        "born": "datetime64[ns]",
        "ok": "boolean",
        "seen": "datetime64[ns]",
        "scores": "object",
        "counts": "object",
        "meta": "object",
    }
    assert frame["name"].tolist() == ["Ada", None, None, None]
    assert frame["age"][0] == 36 and frame["age"][1:].isna().all()
    assert frame["price"][0] == 1.5 and math.isnan(frame["price"][1])
    assert frame["tags"].tolist() == [["a"], None, None, None]
    assert frame["born"][0] == pd.Timestamp("1815-12-10") and frame["born"][1:].isna().all()
    assert frame["ok"][0] is True or bool(frame["ok"][0]) is True
    assert frame["ok"][1:].isna().all()
    assert frame["seen"].tolist()[3] == pd.Timestamp("2024-05-02")


def test_to_frame_zero_rows_has_columns_and_dtypes():
    spec = SchemaSpec.from_spec(FULL_DSL)
    frame = spec.to_frame([])
    assert len(frame) == 0 and list(frame.columns) == spec.field_names
    assert str(frame["age"].dtype) == "Int64" and str(frame["ok"].dtype) == "boolean"
    assert str(frame["price"].dtype) == "float64" and str(frame["born"].dtype) == "datetime64[ns]"


def test_to_frame_from_pydantic_records_and_index():
    spec = SchemaSpec.from_spec(Person)
    records = [
        {"name": "a", "born": date(2000, 1, 2), "address": {"city": "x"}, "nick": None, "tags": []},
        {"name": "b", "born": date(2001, 1, 2), "address": {"city": "y"}, "nick": "bb", "tags": []},
    ]
    frame = spec.to_frame(records, index=pd.Index([10, 20], name="row"))
    assert frame.index.tolist() == [10, 20] and frame.index.name == "row"
    assert str(frame["born"].dtype) == "datetime64[ns]"
    assert frame.loc[20, "born"] == pd.Timestamp("2001-01-02")
    assert frame.loc[10, "address"] == {"city": "x"}


def test_to_frame_time_zones_become_utc_and_lenient_dates():
    spec = SchemaSpec.from_spec("at datetime, day date")
    frame = spec.to_frame(
        [
            {"at": "2024-05-01T10:00:00+02:00", "day": "Jan 5, 2020"},
            {"at": "2024-05-01T10:00:00Z", "day": datetime(2020, 1, 6, 12)},
        ]
    )
    assert str(frame["at"].dtype) == "datetime64[ns, UTC]"
    assert frame["at"][0] == pd.Timestamp("2024-05-01T08:00:00Z")
    assert frame["day"].tolist() == [pd.Timestamp("2020-01-05"), pd.Timestamp("2020-01-06 12:00")]


def test_to_frame_coerces_loose_values():
    spec = SchemaSpec.from_spec("n int, x float, ok bool")
    frame = spec.to_frame(
        [
            {"n": "7", "x": "2.5", "ok": "true"},
            {"n": 2.0, "x": "nope", "ok": "maybe"},
            {"n": 2.5, "x": True, "ok": 1},
        ]
    )
    assert frame["n"].tolist()[:2] == [7, 2] and frame["n"].isna().tolist() == [False, False, True]
    assert frame["x"][0] == 2.5 and frame["x"][1:].isna().all()
    assert frame["ok"][0] and frame["ok"][1:].isna().all()


def test_to_frame_keeps_keys_outside_the_schema_last():
    spec = SchemaSpec.from_spec({"type": "object", "properties": {"a": {"type": "integer"}}})
    frame = spec.to_frame([{"a": 1, "zz": "extra"}])
    assert list(frame.columns) == ["a", "zz"]


# -- json_records_to_frame ----------------------------------------------------------


def test_json_records_to_frame():
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]
    frame = json_records_to_frame(rows)
    assert isinstance(frame, pd.DataFrame) and frame["a"].tolist() == [1, 2]
    wrapped = json_records_to_frame({"people": rows})
    assert isinstance(wrapped, pd.DataFrame) and list(wrapped.columns) == ["a", "b"]
    plain = {"answer": 42}
    assert json_records_to_frame(plain) is plain
    two_keys = {"people": rows, "count": 2}
    assert json_records_to_frame(two_keys) is two_keys
    mixed = [{"a": 1}, 2]
    assert json_records_to_frame(mixed) is mixed
    assert json_records_to_frame("text") == "text"
    assert json_records_to_frame({"k": [1, 2]}) == {"k": [1, 2]}
    assert isinstance(json_records_to_frame([]), pd.DataFrame)


# -- properties ---------------------------------------------------------------------

TYPES = {
    "": "str",
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "date": "date",
    "datetime": "datetime",
    "list": "list",
    "list[int]": "list",
    "list[float]": "list",
}
identifiers = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,11}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s)
)
descriptions = st.text(
    alphabet=st.characters(blacklist_characters=',"\n', blacklist_categories=("Cs",)),
    max_size=20,
)
field_specs = st.tuples(identifiers, st.sampled_from(sorted(TYPES)), descriptions)


@settings(max_examples=200, deadline=None)
@given(st.lists(field_specs, min_size=1, max_size=8, unique_by=lambda f: f[0]))
def test_valid_dsl_round_trips(fields):
    parts = []
    for name, type_name, description in fields:
        part = f"{name} {type_name}".strip()
        if description.strip():
            part += f": {description}"
        parts.append(part)
    spec = SchemaSpec.from_spec(", ".join(parts))
    assert spec.fields == [(name, TYPES[type_name]) for name, type_name, _ in fields]
    for name, _, description in fields:
        assert spec.json_schema["properties"][name].get("description", "") == description.strip()
    assert_strict(spec.json_schema)


def assert_refusal_or_faithful_spec(text: str, **kwargs) -> None:
    """Junk is refused in one line that shows a working --schema; anything else is kept whole."""
    try:
        spec = SchemaSpec.from_spec(text, **kwargs)
    except SchemaError as exc:
        message = str(exc)
        assert message.startswith("--schema") and "\n" not in message, message
        assert "e.g." in message, f"the error shows no fix: {message}"
        return
    names = spec.field_names
    assert names and all(name.isidentifier() for name in names)
    assert len(set(names)) == len(names)
    # Every field comes from the text, and the schema sent lists exactly those.
    assert all(name in text for name in names), (text, names)
    assert len(names) <= text.count(",") + 1
    assert list(spec.json_schema["properties"]) == names
    assert_strict(spec.json_schema)
    sent = spec.response_format()["json_schema"]["schema"]
    assert list(sent["properties"]) == names


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('ab1 ,:"[]?_-intlsfoaedb\t')), max_size=40))
def test_junk_gives_schema_error_or_a_valid_spec(text):
    assert_refusal_or_faithful_spec(text)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=30))
def test_any_text_gives_schema_error_or_a_valid_spec(text):
    assert_refusal_or_faithful_spec(text, namespace={"x": 1})
