"""Fill `{name}` fields in a prompt from the user's namespace.

- `{name}`, `{obj.attr}`, `{items[0]}`, `{d['key']}` and an optional `!r`/`!s`/`!a`
  and `:format` (both together too: `{x!r:>10}`) are looked up in the namespace (no
  `eval`: only names, attributes and subscripts).
- Names and attributes that start with `_` are refused: `{obj.__class__...}` would
  walk from any value to any module (and to `os.environ`). Subscript keys are data,
  so `{d['_id']}` is allowed.
- A DataFrame or Series becomes a bounded Markdown table; the caps are stated in
  the prompt so the model knows it sees a part.
- `{{` and `}}` are literal braces. Braces around anything that is not a name path
  (code, JSON: `{ return 1; }`, `{"a": 1}`) are left as they are.
- Math is sent as written: `$\\frac{1}{n}$`, `$$…$$`, `\\(…\\)`, `\\[…\\]` and
  `\\begin{…}` environments, read as the renderer reads them (`render.math_spans`),
  so "$5 and {n} and $10" is prose and its `{n}` is filled, and `\\$` opens no math.
  A name inside math is neither filled nor an error.
- An unknown name is an error that names it and says how to escape it.

`fill` says which names it filled in (and which it left inside math), for the dry
run and the answer's provenance.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import PromptError

MAX_ROWS = 20
MAX_COLS = 12
MAX_CELL = 60

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


def fill(template: str, namespace: dict[str, Any]) -> Filled:
    """The prompt with every `{path}` outside math replaced by its value from `namespace`."""
    pieces, names, in_math, last = [], {}, {}, 0
    for match, math in _fields(template):
        pieces.append(template[last:match.start()])
        last = match.end()
        if math:
            pieces.append(match.group(0))
            if match.group(1):
                in_math[_head(match.group(1))] = None
        else:
            pieces.append(_replace(match, namespace))
            if match.group(1):
                names[_head(match.group(1))] = None
    pieces.append(template[last:])
    return Filled("".join(pieces), tuple(names), tuple(in_math))


def interpolate(template: str, namespace: dict[str, Any]) -> str:
    """The prompt with every `{path}` outside math replaced by its value from `namespace`."""
    return fill(template, namespace).text


def names_in(template: str) -> list[str]:
    """The top-level names a template fills in (outside math), for row jobs and tests."""
    return [_head(match.group(1)) for match, math in _fields(template)
            if match.group(1) and not math]


def _fields(template: str) -> Iterator[tuple[re.Match, bool]]:
    """Each field (or `{{`, `}}`) of a template, and whether it lies in math."""
    from ..show.render import math_spans

    spans = math_spans(template)
    k = 0
    for match in _FIELD.finditer(template):
        while k < len(spans) and spans[k][1] <= match.start():
            k += 1
        yield match, k < len(spans) and spans[k][0] < match.end()


def _head(path: str) -> str:
    return re.match(r"[A-Za-z_]\w*", path).group(0)


def _replace(match: re.Match, namespace: dict[str, Any]) -> str:
    token = match.group(0)
    if token == "{{":
        return "{"
    if token == "}}":
        return "}"
    path, conversion, spec = match.group(1), match.group(2), match.group(3)
    value = resolve(path, namespace)
    if conversion:
        value = _CONVERSIONS[conversion](value)
    if spec:
        try:
            return format(value, spec[1:])
        except (TypeError, ValueError) as exc:
            raise PromptError(
                f"Cannot format {{{path}{conversion or ''}{spec}}}: {exc}"
            ) from None
    return value if conversion else render(value)


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
    """A value as prompt text; DataFrames and Series as bounded Markdown tables."""
    kind = type(value).__name__
    module = type(value).__module__
    if module.startswith("pandas") and kind == "DataFrame":
        return frame_to_markdown(value)
    if module.startswith("pandas") and kind == "Series":
        return frame_to_markdown(value.to_frame())
    return str(value)


def _cell(value: Any) -> str:
    text = " ".join(str(value).split()).replace("|", "\\|")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def frame_to_markdown(df, max_rows: int = MAX_ROWS, max_cols: int = MAX_COLS) -> str:
    """A DataFrame as a Markdown table of at most `max_rows` x `max_cols`, caps stated."""
    n_rows, n_cols = df.shape
    shown = df.iloc[:max_rows, :max_cols]
    header = [_cell(df.index.name or "")] + [_cell(c) for c in shown.columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for index, row in zip(shown.index, shown.itertuples(index=False, name=None), strict=True):
        lines.append("| " + " | ".join([_cell(index), *(_cell(v) for v in row)]) + " |")
    notes = []
    if n_rows > max_rows:
        notes.append(f"first {max_rows} of {n_rows:,} rows")
    if n_cols > max_cols:
        notes.append(f"first {max_cols} of {n_cols} columns")
    if notes:
        lines.append(f"\n(Table truncated: showing the {' and the '.join(notes)}.)")
    return "\n".join(lines)
