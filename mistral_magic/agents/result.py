"""What ``-o VAR`` gets from a cell that used the Conversations API.

A cell whose only tool is ``image_generation`` and that made one picture gives the picture:
a PIL image when Pillow opens it, else its bytes (several pictures: a list). Any other cell
gives a `Findings`: the answer's ``text``, its ``sources`` as a DataFrame (n, title, url,
tool, description), its ``pictures``, the built-in tool ``runs`` (a code interpreter's code
and output) and the ``agent`` that answered (its id, name and version). ``str(findings)`` is
the text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def picture(data: bytes | None) -> Any:
    """A PIL image of `data` when Pillow reads it, else the bytes."""
    if data is None:
        return None
    import io

    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception:  # not a picture Pillow reads: the bytes are still the value
        return data
    return image


@dataclass
class Findings:
    """A conversation cell's answer as data (see the module's doc)."""

    text: str
    sources: Any = None
    pictures: list = field(default_factory=list)
    runs: list[dict] = field(default_factory=list)
    agent: dict | None = None

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return (f"<Findings: {len(self.text):,} characters, {len(self.sources)} sources, "
                f"{len(self.pictures)} pictures, {len(self.runs)} tool runs>")


def value(answer, builtin_tools: list[str]) -> Any:
    """The value ``-o VAR`` gets for `answer` (see the module's doc)."""
    from ..show.sources import frame

    research = answer.research
    pictures = [picture(p.data) for p in (research.pictures if research else []) if p.data]
    if builtin_tools == ["image_generation"] and pictures:
        return pictures[0] if len(pictures) == 1 else pictures
    runs = [{"tool": r.name, "arguments": r.arguments, **r.info} for r in (research.executions if research else [])]
    return Findings(answer.text, frame(research), pictures, runs, research.agent if research else None)
