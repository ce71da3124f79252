"""Structured answers: an answer checked against a `SchemaSpec` becomes typed records and DataFrames.

`parse_records` checks an answer with ``jsonschema`` (Draft 2020-12, formats
checked) and, for a pydantic source, with the model too (then dates are ``date``
objects; for the DSL and dict sources they stay ISO strings until the frame is
made). A failure raises `StructuredOutputError` with one line naming the path, and
the raw text kept; `reask_request` sends that line back to the model.

It also refuses a value its column cannot hold (an integer past the 64-bit range in
an ``int`` field, a number too large for a ``float``), so a record it returns always
becomes a row.

`records_frame` gives one row per record, columns in schema order, dtypes from the
schema: int → ``Int64``, float → ``float64``, bool → ``boolean``, date/datetime →
``datetime64[ns]`` (``datetime64[ns, UTC]`` when the answers carry time zones;
unreadable dates become NaT), str → ``object`` with missing values kept as ``None``
(so plain Python strings come back out), list/object → ``object``.

Without a schema (``--json``, an extraction with no schema) `json_value` and
`json_record` read the answer as plain JSON.

This module imports jsonschema, pydantic and pandas only when it needs them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import StructuredOutputError, one_line


def json_path(path: Iterable[Any]) -> str:
    """A JSON Schema error's path as ``$.items[0].name``."""
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def parse_records(spec, text: str, many: bool = False) -> list[dict[str, Any]]:
    """The records in an answer; `StructuredOutputError` (with ``.raw``) if it does not fit `spec`."""
    obj = _loads(text)
    if many and isinstance(obj, list):
        # Some models answer the bare list; it means the same thing.
        obj = {"items": obj}
    from jsonschema.exceptions import best_match

    error = best_match(spec.validator(many).iter_errors(obj))
    if error is not None:
        raise StructuredOutputError(
            f"The answer does not match the schema at {json_path(error.absolute_path)}: "
            f"{one_line(error.message, 200)}",
            raw=text,
        )
    items = obj["items"] if many else [obj]
    if spec.pydantic_model is None:
        records = [dict(item) for item in items]
    else:
        records = [
            _validate_model(spec, item, i if many else None, text) for i, item in enumerate(items)
        ]
    for i, record in enumerate(records):
        _check_fits(spec.fields, record, i if many else None, text)
    return records


def _check_fits(fields: Sequence[tuple[str, str]], record: Mapping[str, Any], index: int | None,
                text: str) -> None:
    """Refuse a value its column cannot hold, so that every parsed record becomes a row."""
    for name, kind in fields:
        value = record.get(name)
        if _fits(kind, value):
            continue
        path = ([] if index is None else ["items", index]) + [name]
        shown = one_line(repr(value), 40)
        raise StructuredOutputError(
            f"The answer's value at {json_path(path)} ({shown}) is too large for a "
            f"{_DTYPES[kind]} column",
            raw=text,
        )


def _validate_model(spec, item: Any, index: int | None, text: str) -> dict[str, Any]:
    from pydantic import ValidationError

    try:
        return spec.pydantic_model.model_validate(item).model_dump(by_alias=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        path = ([] if index is None else ["items", index]) + list(first.get("loc", ()))
        raise StructuredOutputError(
            f"The answer does not match {spec.name} at {json_path(path)}: "
            f"{one_line(first.get('msg', exc), 200)}",
            raw=text,
        ) from None


def records_frame(fields: Sequence[tuple[str, str]], records: Iterable[Mapping[str, Any] | None],
                  index: Any = None):
    """A DataFrame, one row per record (None = a row of missing values), dtypes from `fields`."""
    import pandas as pd

    rows = [dict(r) if r is not None else {} for r in records]
    columns = list(fields)
    known = {name for name, _ in fields}
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
            f"The answer is not valid JSON{where}: {one_line(detail, 120)}", raw=text
        ) from None



def validation_feedback(error: BaseException | str) -> str:
    """The message sent back to the model when its answer did not validate (a re-ask)."""
    return (
        f"Your previous answer was not valid: {one_line(str(error), 400)}. "
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


def json_value(text: str) -> Any:
    """A ``--json`` answer: records (a list of objects) as a DataFrame, other JSON as it is."""
    try:
        return json_records_to_frame(json.loads(text))
    except ValueError as exc:
        raise StructuredOutputError(
            f"The answer is not valid JSON ({exc}); the raw text is in "
            "mistral_magic.session().last.text", raw=text
        ) from None


def json_record(text: str) -> dict[str, Any]:
    """One row's answer without a schema: a JSON object, its keys the columns."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise StructuredOutputError(f"The answer is not valid JSON: {exc}", raw=text) from None
    if not isinstance(value, dict):
        raise StructuredOutputError("The answer is JSON but not an object", raw=text)
    return value
