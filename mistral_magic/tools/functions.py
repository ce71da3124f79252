"""Notebook functions as tools: their JSON schemas, the registry, and one run of a call.

``%%mistral --tools describe_column,plot_hist`` names functions of the notebook (or a
list or dict of them; ``MistralMagics.tools`` is the default list). Each becomes a
`Tool`: its JSON schema is made by pydantic from the signature, the type hints
(pydantic models included, with defaults) and the docstring (its text is the
description, its ``Args:`` / ``Parameters`` / ``:param:`` lines describe the
parameters), never by hand::

    def describe_column(column: str, percentiles: list[float] = [0.25, 0.5, 0.75]) -> str:
        \"\"\"Summary statistics of one column of the sales table.

        Args:
            column: the column's name.
        \"\"\"

A `Toolbox` refuses two tools of one name. `Toolbox.execute` runs one call the model
made, in the kernel's thread (an async tool is awaited on the background loop): the
arguments are parsed and validated against the signature, and anything that goes
wrong (arguments that are not JSON or do not validate, a tool that raises, a result
that cannot be turned into text, a name that is not a tool, a refusal under
``--approve``) becomes the tool's result for the model, as pydantic-ai's tool manager
does, never a traceback. A `ToolRun` is that
call as it is shown: name, arguments, a bounded preview of the result (a DataFrame as
the bounded table interpolation makes), its duration and error.
"""

from __future__ import annotations

import inspect
import json
import re
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import ToolError

#: What the API accepts as a function name.
NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
#: A result longer than this is cut before it goes back to the model.
MAX_RESULT_CHARS = 8000
PREVIEW_CHARS = 1500
PREVIEW_ROWS = 10

Status = Literal["ok", "error", "refused", "unknown", "skipped"]


def _schema_generator():
    from pydantic.json_schema import GenerateJsonSchema

    class Untitled(GenerateJsonSchema):
        """Properties without the titles pydantic adds (the name says it; tokens cost)."""

        def field_title_should_be_set(self, schema) -> bool:
            return False

    return Untitled


@dataclass
class Tool:
    """One function the model may call: its name, description and argument model."""

    name: str
    function: Callable[..., Any]
    description: str
    arguments: Any  # the pydantic model of its parameters
    parameters: dict  # their JSON schema, as sent
    positional: tuple[str, ...] = ()  # positional-only parameters, passed in order

    @classmethod
    def from_function(cls, function: Callable[..., Any], name: str | None = None) -> Tool:
        """The tool for `function` (named `name`, else by the function's own name)."""
        import docstring_parser
        from pydantic import ConfigDict, Field, PydanticSchemaGenerationError, create_model

        name = name or getattr(function, "__name__", None) or ""
        if not NAME.fullmatch(name):
            raise ToolError(f"--tools: {name or type(function).__name__!r} is no name a model can "
                            "call (letters, digits, _ and -, at most 64); put it in a dict under "
                            'a name, e.g. tools = {"describe": describe}')
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError) as exc:
            raise ToolError(f"--tools: the signature of {name} cannot be read ({exc})") from None
        doc = docstring_parser.parse(inspect.getdoc(function) or "")
        said = {param.arg_name: param.description for param in doc.params}
        hints = _hints(function)
        fields, positional = {}, []
        for i, param in enumerate(signature.parameters.values()):
            if param.kind is param.VAR_POSITIONAL:
                raise ToolError(f"--tools: {name} takes *{param.name}, which a model cannot pass; "
                                "give it named parameters")
            if param.kind is param.VAR_KEYWORD:
                continue
            if param.kind is param.POSITIONAL_ONLY:
                positional.append(param.name)
            default = ... if param.default is param.empty else param.default
            # Aliased so that a parameter may be called `json`, `copy` or `model_x`.
            fields[f"p{i}"] = (hints.get(param.name, Any),
                               Field(default, alias=param.name, description=said.get(param.name)))
        config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
        model = create_model(f"{name}_arguments", __config__=config, **fields)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a default that is no JSON is left out, quietly
                schema = model.model_json_schema(schema_generator=_schema_generator())
        except PydanticSchemaGenerationError as exc:
            raise ToolError(f"--tools: a parameter of {name} has a type a model cannot send "
                            f"({exc.message.splitlines()[0]}); take a name or a number and look "
                            "the object up in the notebook") from None
        schema.pop("title", None)
        return cls(name, function, (doc.description or "").strip(), model, schema, tuple(positional))

    def definition(self) -> dict:
        """The tool as the API takes it."""
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}

    def validate(self, arguments: dict) -> tuple[list, dict]:
        """The call's (args, kwargs), validated (`pydantic.ValidationError` if they are not)."""
        values = self.arguments.model_validate(arguments)
        # Every field is given or has its default: the call gets them all by name.
        kwargs = {field.alias: getattr(values, key) for key, field in type(values).model_fields.items()}
        args = [kwargs.pop(name) for name in self.positional if name in kwargs]
        return args, kwargs


def _hints(function) -> dict:
    """Type hints, resolved where they can be (a notebook's names are the function's globals)."""
    import typing

    target = function.__call__ if not inspect.isroutine(function) and callable(function) else function
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception:  # a hint naming something undefined: those left as written
        return {name: value for name, value in getattr(target, "__annotations__", {}).items()
                if not isinstance(value, str)}


class Toolbox:
    """The tools of one cell, by name; a second tool of a name is refused."""

    def __init__(self, tools: Iterable[Tool] = ()):
        self._tools: dict[str, Tool] = {}
        for tool in tools:
            self.add(tool)

    def add(self, tool: Tool) -> Tool:
        if tool.name in self._tools:
            raise ToolError(f"--tools: two tools are named {tool.name}; give one another name "
                            'with a dict, e.g. tools = {"other_name": function}')
        self._tools[tool.name] = tool
        return tool

    def __len__(self) -> int:
        return len(self._tools)

    def __iter__(self) -> Iterator[Tool]:
        return iter(self._tools.values())

    def __contains__(self, name: str) -> bool:
        return name in self._tools

    def names(self) -> list[str]:
        return list(self._tools)

    def get(self, name: str) -> Tool | None:
        return self._tools.get(name)

    def definitions(self) -> list[dict]:
        return [tool.definition() for tool in self]

    def unknown(self, name: str) -> str:
        """What the model is told when it calls a tool that is not there."""
        return f"Unknown tool {name!r}. The tools are: {', '.join(self.names()) or 'none'}."

    def execute(self, call: dict, *, approve=None, run_async=None) -> ToolRun:
        """Run one call the model made; what went wrong is the result it gets back.

        `approve(run)` returns (approved, note) before a valid call runs; `run_async(coro)`
        awaits an async tool's coroutine (on the background loop). An interrupt propagates.
        """
        function = call.get("function") or {}
        name, raw = str(function.get("name") or ""), function.get("arguments") or "{}"
        run = ToolRun(call_id=call.get("id") or "", name=name, arguments=raw)
        tool = self.get(name)
        if tool is None:
            return run.failed(self.unknown(name), "unknown")
        try:
            run.arguments = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError as exc:
            return run.failed(f"The arguments for {name} are not JSON ({exc}); call it again "
                              "with a JSON object of its parameters.")
        if not isinstance(run.arguments, dict):
            return run.failed(f"The arguments for {name} must be a JSON object, not "
                              f"{type(run.arguments).__name__}.")
        from pydantic import ValidationError

        try:
            args, kwargs = tool.validate(run.arguments)
        except ValidationError as exc:
            return run.failed(f"Invalid arguments for {name}: {_errors(exc)}. Call it again with "
                              "arguments that match its parameters.")
        if approve is not None:
            approved, run.note = approve(run)
            if not approved:
                run.status, run.content = "refused", run.note
                return run
        started = time.perf_counter()
        try:
            value = tool.function(*args, **kwargs)
            if inspect.isawaitable(value):
                value = run_async(value)
        except Exception as exc:  # the tool's own error is the model's to read, not the cell's
            run.seconds = time.perf_counter() - started
            return run.failed(f"{name} raised {describe(exc)}")
        run.seconds = time.perf_counter() - started
        try:
            run.content = result_text(value)
        except Exception as exc:  # a result's own __str__ or serialiser failed: the tool failed
            return run.failed(f"{name} returned a {_type_name(value)} that cannot be turned into "
                              f"text ({describe(exc)}); return text, numbers, lists or dicts")
        run.value = value
        return run


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, even one whose own ``__str__`` fails."""
    try:
        said = str(exc)
    except Exception:
        said = "(its message cannot be shown)"
    return f"{_type_name(exc)}: {said}" if said else _type_name(exc)


def _type_name(value: Any) -> str:
    name = getattr(type(value), "__name__", None)
    return name if isinstance(name, str) else "object"


def _errors(exc) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in error['loc']) or 'arguments'}: {error['msg']}"
                     for error in exc.errors()[:6])


def collect(spec: str, namespace: dict) -> Toolbox:
    """The tools a ``--tools`` spec names: functions, or lists or dicts of them, in `namespace`."""
    names = [name for name in re.split(r"[,\s]+", spec or "") if name]
    if not names:
        raise ToolError("--tools needs names of functions in the notebook, e.g. "
                        "--tools describe_column,plot_hist")
    box = Toolbox()
    for name in names:
        if name not in namespace:
            raise ToolError(f"--tools: no {name!r} in the notebook; define a function named "
                            f"{name} (or a list or dict of functions) first")
        value = namespace[name]
        if isinstance(value, dict):
            pairs = [(str(key), function) for key, function in value.items()]
        elif isinstance(value, (list, tuple)):
            pairs = [(None, function) for function in value]
        else:
            pairs = [(name, value)]
        for key, function in pairs:
            if not callable(function):
                raise ToolError(f"--tools: {name} holds a {type(function).__name__}, not a "
                                "function (or a list or dict of functions)")
            box.add(Tool.from_function(function, key))
    return box


def result_text(value: Any) -> str:
    """A tool's result as the model reads it: text as it is, tables bounded, the rest JSON."""
    from ..inputs.prompt import render

    kind = type(value)
    if isinstance(value, str):
        text = value
    elif kind.__module__.startswith("pandas") and kind.__name__ in ("DataFrame", "Series"):
        text = render(value)
    elif hasattr(value, "model_dump_json"):
        text = value.model_dump_json()
    else:
        try:
            text = json.dumps(value, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = str(value)
    if len(text) > MAX_RESULT_CHARS:
        text = text[:MAX_RESULT_CHARS] + f"\n… [{len(text) - MAX_RESULT_CHARS:,} characters cut]"
    return text


@dataclass
class ToolRun:
    """One tool call as it ran (or did not): what the model sent and what it got back."""

    call_id: str
    name: str
    arguments: Any  # the parsed object, or the raw text when it was not JSON
    status: Status = "ok"
    value: Any = None
    content: str = ""  # the tool message's content
    error: str | None = None
    seconds: float = 0.0
    note: str = ""  # what --approve said

    def failed(self, message: str, status: Status = "error") -> ToolRun:
        self.status, self.error, self.content = status, message, message
        return self

    def signature(self, limit: int = 120) -> str:
        """`name(a=1, b='x')`, bounded."""
        if isinstance(self.arguments, dict):
            shown = ", ".join(f"{k}={v!r}" for k, v in self.arguments.items())
        else:
            shown = str(self.arguments)
        text = f"{self.name}({shown})"
        return text if len(text) <= limit else text[: limit - 2] + "…)"

    def summary(self) -> str:
        """The block's one line: the call, then how long it took or why it did not run."""
        if self.status == "ok":
            return f"⚙ {self.signature()} · {_duration(self.seconds)}"
        said = {"refused": "refused", "unknown": "unknown tool", "skipped": "not run"}
        first = (self.error or "").split(": ", 1)[0] if self.status == "error" else said[self.status]
        return f"⚠ {self.signature()} · {first[:80]}"

    def details(self) -> str:
        """The block's body, as Markdown: arguments, then the result's preview or the error."""
        from ..show.render import fence

        if isinstance(self.arguments, dict):
            shown = json.dumps(self.arguments, indent=2, ensure_ascii=False, default=str)
        else:
            shown = str(self.arguments)
        parts = ["**Arguments**", fence(shown, "json")]
        if self.status != "ok":
            parts += ["**Not run**" if self.status != "error" else "**Error**",
                      fence(self.error or self.content)]
        else:
            parts += [f"**Result** ({_duration(self.seconds)})", self.preview()]
        return "\n\n".join(parts)

    def preview(self) -> str:
        """The result, bounded: a DataFrame as a table of its first rows, the rest as text."""
        from ..inputs.prompt import frame_to_markdown
        from ..show.render import fence

        kind = type(self.value)
        try:
            if kind.__module__.startswith("pandas") and kind.__name__ == "Series":
                return frame_to_markdown(self.value.to_frame(), max_rows=PREVIEW_ROWS)
            if kind.__module__.startswith("pandas") and kind.__name__ == "DataFrame":
                return frame_to_markdown(self.value, max_rows=PREVIEW_ROWS)
        except Exception:  # a cell that cannot be shown as a table: the text the model read
            pass
        text = self.content
        if len(text) > PREVIEW_CHARS:
            text = text[:PREVIEW_CHARS] + f"\n… [{len(text) - PREVIEW_CHARS:,} more characters]"
        return fence(text)

    def plain(self) -> str:
        """One line for a terminal and the history table."""
        said = " ".join(self.content.split())
        return f"{self.summary()} → {said[:100] + ('…' if len(said) > 100 else '')}"

    def record(self) -> dict:
        """What output metadata keeps of the run."""
        return {"name": self.name, "arguments": self.arguments if isinstance(self.arguments, dict)
                else str(self.arguments), "status": self.status,
                "seconds": round(self.seconds, 4), "error": self.error}


def _duration(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"
