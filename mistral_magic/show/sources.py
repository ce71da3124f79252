"""What Mistral's built-in tools add to an answer: sources, tool runs, pictures, and how they show.

A conversation's answer (`agents`) carries a `Research`: the sources its ``tool_reference``
chunks cite (numbered by first citation; `marked` puts ``⁽n⁾`` where each was cited), the
built-in tool runs (``tool.execution`` entries: a search's query, the code the code
interpreter ran and its output), the pictures (``tool_file`` chunks, with their bytes once
downloaded), the uses per tool (``2 searches``) and the conversation it continues.

Everything here is outside text and reaches the front end only through `render`: a source's
title links to its address only when that is http(s); a tool run is a collapsed block whose
code and output are fenced text; a picture is shown as an image only when Pillow reads it as
one (`show_pictures`). `stored()` / `from_stored` keep it in the response cache (pictures
with their bytes, so a replay shows them without sending anything).
"""

from __future__ import annotations

import base64
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from . import render

#: how each tool's uses read in a footer: (one, many)
UNITS = {
    "web_search": ("search", "searches"),
    "web_search_premium": ("premium search", "premium searches"),
    "code_interpreter": ("code run", "code runs"),
    "image_generation": ("image", "images"),
    "document_library": ("library search", "library searches"),
    "library_document": ("document processed", "documents processed"),
}
PICTURE_FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "GIF": "image/gif", "WEBP": "image/webp"}
MAX_PICTURE_BYTES = 20 * 1024 * 1024


@dataclass
class Source:
    title: str
    url: str | None
    tool: str
    description: str | None = None

    def key(self) -> tuple:
        return self.title, self.url, self.tool


@dataclass
class Execution:
    """A built-in tool's run: its name, its arguments (JSON text) and what it reported."""

    name: str
    arguments: str = ""
    info: dict = field(default_factory=dict)
    id: str | None = None

    def argument(self, name: str) -> str:
        try:
            value = json.loads(self.arguments or "{}").get(name)
        except (ValueError, AttributeError):
            return ""
        return "" if value is None else str(value)


@dataclass
class Picture:
    file_id: str
    name: str | None = None
    type: str | None = None
    tool: str = "image_generation"
    data: bytes | None = field(default=None, repr=False)


@dataclass
class Research:
    """Sources, tool runs, pictures and tool uses of one answer (or of a cell's steps)."""

    sources: list[Source] = field(default_factory=list)
    marks: list[tuple[int, int]] = field(default_factory=list)  # (offset in the text, source index)
    executions: list[Execution] = field(default_factory=list)
    pictures: list[Picture] = field(default_factory=list)
    uses: dict[str, int] = field(default_factory=dict)
    connector_tokens: int = 0
    link: dict | None = None  # the conversation this answer ends (`agents.threads`)
    agent: dict | None = None  # {"id", "name", "version", "alias"} when an agent answered
    token_cost: float | None = 0.0
    tool_cost: float | None = 0.0

    def cite(self, source: Source, offset: int) -> int:
        """Note a citation at `offset` of the text; returns the source's number (from 1)."""
        index = self._source_index(source)
        self.marks.append((offset, index))
        return index + 1

    def _source_index(self, source: Source) -> int:
        """The index of `source` among the sources, added when new (cited twice, numbered once)."""
        keys = [s.key() for s in self.sources]
        if source.key() in keys:
            return keys.index(source.key())
        self.sources.append(source)
        return len(self.sources) - 1

    def marked(self, text: str) -> str:
        """`text` with a superscript ``⁽n⁾`` where source n was cited: no Markdown reads it as a
        link, and a terminal shows it as it is."""
        for offset, index in sorted(self.marks, reverse=True):
            if offset <= len(text):
                head = text[:offset]
                cited = head.rstrip()  # the mark goes after the cited words, before the space
                text = f"{cited}{superscript(index + 1)}{head[len(cited):]}{text[offset:]}"
        return text

    def uses_text(self) -> str:
        parts = []
        for name, count in self.uses.items():
            one, many = UNITS.get(name, (f"{name} call", f"{name} calls"))
            parts.append(f"{count} {one if count == 1 else many}")
        return ", ".join(parts)

    def blocks(self) -> tuple[str, str]:
        """The sources and tool runs as HTML (under the answer) and text lines."""
        html, plain = render.sources([(s.title, s.url, s.tool) for s in self.sources])
        parts, lines = [html], [plain] if plain else []
        for run in self.executions:
            summary, body = _describe(run)
            parts.append(render.details(summary, body, kind="mistral-tool"))
            lines.append(f"[{summary}]")
        return "".join(parts), "\n".join(lines)

    def stored(self) -> dict:
        """A JSON-able form for the response cache (pictures' bytes in base64)."""
        kept = asdict(self)
        for picture in kept["pictures"]:
            picture["data"] = base64.b64encode(picture["data"]).decode() if picture["data"] else None
        return kept

    @classmethod
    def from_stored(cls, data: dict) -> Research:
        """A `stored()` form read back: it may come from a store this user did not write, so
        every field is checked and coerced (what does not fit is left out)."""

        def items(name: str) -> list[dict]:
            return [i for i in data.get(name) or [] if isinstance(i, dict)]

        def text(value) -> str | None:
            return None if value is None else str(value)

        pictures = []
        for item in items("pictures"):
            try:
                raw = base64.b64decode(item["data"], validate=True) if isinstance(item.get("data"), str) else None
            except ValueError:
                raw = None
            pictures.append(Picture(str(item.get("file_id") or ""), text(item.get("name")), text(item.get("type")),
                                    str(item.get("tool") or ""), raw))
        return cls(
            sources=[Source(str(i.get("title") or ""), text(i.get("url")), str(i.get("tool") or ""),
                            text(i.get("description"))) for i in items("sources")],
            marks=[(m[0], m[1]) for m in data.get("marks") or []
                   if isinstance(m, (list, tuple)) and len(m) == 2 and all(_whole(v) for v in m)],
            executions=[Execution(str(i.get("name") or ""), str(i.get("arguments") or ""),
                                  i["info"] if isinstance(i.get("info"), dict) else {}, text(i.get("id")))
                        for i in items("executions")],
            pictures=pictures,
            uses={str(k): v for k, v in (data.get("uses") or {}).items() if _whole(v)}
            if isinstance(data.get("uses"), dict) else {},
            connector_tokens=data["connector_tokens"] if _whole(data.get("connector_tokens")) else 0,
            link=data.get("link") if isinstance(data.get("link"), dict) else None,
            agent=data.get("agent") if isinstance(data.get("agent"), dict) else None,
            token_cost=_money(data.get("token_cost")), tool_cost=_money(data.get("tool_cost")),
        )

    @classmethod
    def merged(cls, parts: list[Research]) -> Research:
        """Several steps' research as one: sources, runs and pictures in order, uses summed; the
        citations and conversation of the last step."""
        total = cls(agent=parts[-1].agent if parts else None, link=parts[-1].link if parts else None)
        for part in parts:
            numbers = [total._source_index(s) for s in part.sources]
            if part is parts[-1]:
                total.marks = [(offset, numbers[index]) for offset, index in part.marks
                               if index < len(numbers)]
            total.executions += part.executions
            total.pictures += part.pictures
            for name, count in part.uses.items():
                total.uses[name] = total.uses.get(name, 0) + count
            total.connector_tokens += part.connector_tokens
            total.token_cost = _add(total.token_cost, part.token_cost)
            total.tool_cost = _add(total.tool_cost, part.tool_cost)
        return total


def superscript(number: int) -> str:
    """``⁽12⁾``: a footnote mark."""
    return "⁽" + str(number).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")) + "⁾"


def _whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _money(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _add(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a + b


def _describe(run: Execution) -> tuple[str, str]:
    """A tool run's one-line summary and its Markdown body (code and output fenced)."""
    where = "Ran on Mistral's servers, not in this kernel."
    if run.name == "code_interpreter":
        code = str(run.info.get("code") or run.argument("code"))
        output = str(run.info.get("code_output") or "")
        body = f"{where}\n\n{render.fence(code, 'python')}\n\n**Output**\n\n{render.fence(output or '(none)', 'text')}"
        return "⚙ code_interpreter · runs on Mistral's servers, not in this kernel", body
    asked = run.argument("query") or run.argument("prompt")
    summary = run.name + (f" · “{asked[:80]}”" if asked else "")
    return summary, f"{where}\n\n{render.fence(run.arguments or '{}', 'json')}"


def picture_bundle(data: bytes | None) -> dict | None:
    """A picture's display bundle when Pillow reads `data` as a picture, else None."""
    if not data or len(data) > MAX_PICTURE_BYTES:
        return None
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format
            image.verify()
    except Exception:  # not a picture Pillow can read (or one that claims too many pixels)
        return None
    mime = PICTURE_FORMATS.get(kind or "")
    return None if mime is None else {mime: base64.b64encode(data).decode()}


def show_pictures(research: Research | None) -> None:
    """Display the answer's pictures (or a note for one that is not a picture)."""
    from IPython.display import display

    for picture in (research.pictures if research else []):
        bundle = picture_bundle(picture.data)
        if bundle is not None:
            display(bundle, raw=True, metadata={"mistral_magic_picture": {"file_id": picture.file_id,
                                                                  "tool": picture.tool}})
        else:
            display(render.note(f"{picture.name or picture.file_id}: not shown, its bytes are not a "
                                "picture this kernel can read"), raw=True)


def frame(research: Research | None) -> Any:
    """The sources as a DataFrame: number, title, url, tool, description."""
    import pandas as pd

    rows = [{"n": i, "title": s.title, "url": s.url, "tool": s.tool, "description": s.description}
            for i, s in enumerate(research.sources if research else [], 1)]
    return pd.DataFrame(rows, columns=["n", "title", "url", "tool", "description"])
