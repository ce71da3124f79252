"""Fill `{name}` fields in a prompt from the user's namespace.

- `{name}`, `{obj.attr}`, `{items[0]}`, `{d['key']}` and an optional `!r`/`!s`/`!a`
  and `:format` (both together too: `{x!r:>10}`) are looked up in the namespace (no
  `eval`: only names, attributes and subscripts).
- Names and attributes that start with `_` are refused: `{obj.__class__...}` would
  walk from any value to any module (and to `os.environ`). Subscript keys are data,
  so `{d['_id']}` is allowed.
- A DataFrame or Series becomes a bounded Markdown table, or a summary when it has more
  rows than fit (`dataframes`: shape, dtypes, ``describe()``, missing values, sample
  rows), always on its own lines; ``{df:rows}``, ``{df:rows=N}`` and ``{df:summary}``
  choose, ``{df!r}`` sends pandas' own text.
- `{{` and `}}` are literal braces. Braces around anything that is not a name path
  (code, JSON: `{ return 1; }`, `{"a": 1}`) are left as they are.
- Math is sent as written: `$\\frac{1}{n}$`, `$$…$$`, `\\(…\\)`, `\\[…\\]` and
  `\\begin{…}` environments, read as the renderer reads them (`show.markdown.math_spans`),
  so "$5 and {n} and $10" is prose and its `{n}` is filled, and `\\$` opens no math.
  A name inside math is neither filled nor an error.
- An unknown name is an error that names it and says how to escape it.

`fill` says which names it filled in (and which it left inside math), and what of each
DataFrame went (`dataframes.Sent`), for the dry run, the answer's provenance and
``%mistral sent``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import PromptError
from .dataframes import MAX_CELL, MAX_COLS, MAX_ROWS, is_frame  # noqa: F401  (the caps, re-exported)

_PATH = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[(?:-?\d+|'[^'\]]*'|\"[^\"\]]*\")\])*"
_FIELD = re.compile(r"\{\{|\}\}|\{(" + _PATH + r")(![rsa])?(:[^{}]*)?\}")
_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[(-?\d+|'[^']*'|\"[^\"]*\")\]")

_MISSING = object()
_CONVERSIONS = {"!r": repr, "!s": str, "!a": ascii}


@dataclass(frozen=True)
class Filled:
    """A filled-in prompt, the names it took from the namespace and those left in math."""

    text: str
    names: tuple[str, ...] = ()  # top-level names filled in, once each, in order
    in_math: tuple[str, ...] = ()  # names inside math, sent as written
    frames: tuple = ()  # `dataframes.Sent` of each DataFrame or Series filled in


def fill(template: str, namespace: dict[str, Any]) -> Filled:
    """The prompt with every `{path}` outside math replaced by its value from `namespace`."""
    pieces, names, in_math, frames, last = [], {}, {}, [], 0
    for match, math in _fields(template):
        pieces.append(template[last:match.start()])
        last = match.end()
        if math:
            pieces.append(match.group(0))
            if match.group(1):
                in_math[_head(match.group(1))] = None
            continue
        text, sent = _replace(match, namespace)
        if sent is not None:  # a table stands on its own lines
            frames.append(sent)
            before = next((piece for piece in reversed(pieces) if piece), "")
            text = ("" if not before or before.endswith("\n") else "\n") + text
            text += "" if template.startswith("\n", last) or last == len(template) else "\n"
        pieces.append(text)
        if match.group(1):
            names[_head(match.group(1))] = None
    pieces.append(template[last:])
    return Filled("".join(pieces), tuple(names), tuple(in_math), tuple(frames))


def interpolate(template: str, namespace: dict[str, Any]) -> str:
    """The prompt with every `{path}` outside math replaced by its value from `namespace`."""
    return fill(template, namespace).text


def names_in(template: str) -> list[str]:
    """The top-level names a template fills in (outside math), for row jobs and tests."""
    return [_head(match.group(1)) for match, math in _fields(template)
            if match.group(1) and not math]


def _fields(template: str) -> Iterator[tuple[re.Match, bool]]:
    """Each field (or `{{`, `}}`) of a template, and whether it lies in math."""
    from ..show.markdown import math_spans

    spans = math_spans(template)
    k = 0
    for match in _FIELD.finditer(template):
        while k < len(spans) and spans[k][1] <= match.start():
            k += 1
        yield match, k < len(spans) and spans[k][0] < match.end()


def _head(path: str) -> str:
    return re.match(r"[A-Za-z_]\w*", path).group(0)


def _replace(match: re.Match, namespace: dict[str, Any]) -> tuple[str, Any]:
    """A field's text, and `dataframes.Sent` when it was a DataFrame or Series (else None)."""
    token = match.group(0)
    if token == "{{":
        return "{", None
    if token == "}}":
        return "}", None
    path, conversion, spec = match.group(1), match.group(2), match.group(3)
    value = resolve(path, namespace)
    if is_frame(value):
        from . import dataframes

        if conversion is None:
            return dataframes.render(value, path, spec[1:] if spec else None)
        frame = dataframes.as_frame(value)
        sent = dataframes.Sent(path, "repr", frame.shape, list(frame.columns),
                               dataframes.shown_by_repr(frame))
    else:
        sent = None
    if conversion:
        value = _CONVERSIONS[conversion](value)
    if spec:
        try:
            return format(value, spec[1:]), sent
        except (TypeError, ValueError) as exc:
            raise PromptError(
                f"Cannot format {{{path}{conversion or ''}{spec}}}: {exc}"
            ) from None
    return (value if conversion else render(value)), sent


def resolve(path: str, namespace: dict[str, Any]) -> Any:
    """Look up `name.attr[key]` without evaluating code."""
    head = _head(path)
    if head.startswith("_"):
        raise PromptError(
            f"{{{path}}} in the prompt: names starting with _ are not filled in; use a plain "
            f"name, or write {{{{{path}}}}} for literal braces"
        )
    value = namespace.get(head, _MISSING)
    if value is _MISSING:
        raise PromptError(
            f"Unknown name {{{head}}} in the prompt: define {head}, write {{{{{head}}}}} "
            "for literal braces, or use --no-interpolate"
        )
    for step in _STEP.finditer(path, len(head)):
        attr, key = step.group(1), step.group(2)
        if attr is not None and attr.startswith("_"):
            # Dunder walks (__class__, __globals__) reach any module; private ones are not data.
            raise PromptError(
                f"{{{path}}} in the prompt: attributes starting with _ are not filled in; "
                "put the value in a variable first"
            )
        try:
            if attr is not None:
                value = getattr(value, attr)
            elif key[0] in "'\"":
                value = value[key[1:-1]]
            else:
                value = value[int(key)]
        except (AttributeError, KeyError, IndexError, TypeError) as exc:
            raise PromptError(
                f"Cannot resolve {{{path}}} in the prompt ({type(exc).__name__}: {exc}); "
                "write {{ and }} for literal braces or use --no-interpolate"
            ) from None
    return value


def render(value: Any) -> str:
    """A value as prompt text; DataFrames and Series as a bounded table or a summary."""
    if is_frame(value):
        from .dataframes import render as frame_text

        return frame_text(value)[0]
    return str(value)


def frame_to_markdown(df, max_rows: int = MAX_ROWS, max_cols: int = MAX_COLS) -> str:
    """A DataFrame as a Markdown table of at most `max_rows` x `max_cols`, caps stated."""
    from .dataframes import table

    return table(df, max_rows, max_cols)
