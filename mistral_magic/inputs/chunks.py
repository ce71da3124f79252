"""A cell's inputs beyond text: ``--image`` and ``--file`` turned into message chunks, counted, shown.

This is the one place where pictures and documents become parts of a request:

    %%mistral --image fig --image photos/receipt.jpg --file report.pdf
    What does the plot show, and does the report agree?

- ``--image X`` names a picture (`pictures.picture`): a name in the notebook holding
  a matplotlib Figure or Axes, ``plt`` (pyplot's current figure), a PIL image, a NumPy
  array, bytes or an IPython Image, else a file path or an http(s) URL. Pictures go as
  ``image_url`` chunks (PNG/JPEG data URLs, downscaled to 1,024 px); a model whose card
  lacks vision is refused before anything is sent (`capabilities`).
- ``--file F`` names a document (`documents.document`): a path, or a name holding one
  (or the file's bytes). Documents go as reference chunks that `uploads` signs when the
  request is sent.
- The chunks follow the cell's text in its user message, and the chat keeps them for
  the cell's turn: follow-ups see them, undo and re-running the cell behave as for text.
- `count_prompt` counts a prompt with its attachments: pictures exactly (the offline
  server's rule), each document at its bound (`documents.Document.tokens`), and, on a
  hosted backend, a picture URL at the most a picture can take (`URL_IMAGE_BOUND`:
  the server fetches it, so its size is not known here).
- `CellInputs.show` puts the pictures' thumbnails (one ``image/png`` made here) and a
  line naming every input, its size and its tokens above the answer. The notebook
  keeps those thumbnails, not the pictures: the chat keeps the data URLs in memory only.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..money.tokens import DEFAULT_IMAGE_TOKENS, IMAGE_MAX_SIDE, IMAGE_PATCH

URL_IMAGE_BOUND = (IMAGE_MAX_SIDE // IMAGE_PATCH + 1) * (IMAGE_MAX_SIDE // IMAGE_PATCH)
_NAME = re.compile(r"[A-Za-z][\w]*(?:\.[A-Za-z][\w]*)*")


@dataclass
class CellInputs:
    """The pictures and documents of one cell, in the order given."""

    pictures: list = field(default_factory=list)
    documents: list = field(default_factory=list)
    recordings: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.pictures or self.documents or self.recordings)

    def chunks(self) -> list[dict]:
        """The chunks that follow the cell's text in its user message."""
        return ([p.chunk() for p in self.pictures] + [d.chunk() for d in self.documents]
                + [r.chunk() for r in self.recordings])

    def show(self) -> None:
        """The thumbnails and a line naming each input, above the answer."""
        from IPython.display import display

        from ..show import render
        from .pictures import sheet

        said = " · ".join([p.describe() for p in self.pictures]
                          + [d.describe() for d in self.documents]
                          + [r.describe() for r in self.recordings])
        png = sheet(self.pictures)
        if png is not None:
            display({"image/png": base64.b64encode(png).decode("ascii"), "text/plain": said},
                    raw=True)
        display(render.note(said), raw=True)


def gather(session, images: list[str] | None, files: list[str] | None, namespace: dict,
           model: str, *, check: bool = True, audio: list[str] | None = None) -> CellInputs:
    """A cell's ``--image``, ``--file`` and ``--audio`` values as pictures, documents and
    recordings; `ConfigError` (one line) for one that cannot be read, or (with `check`)
    pictures for a model that cannot see them, recordings for one that cannot listen."""
    from .audio import recording
    from .documents import document
    from .pictures import picture

    found = CellInputs()
    for text in images or []:
        found.pictures.append(picture(value_of(text, namespace), text))
    for text in files or []:
        value = value_of(text, namespace)
        # A path names itself; bytes in the notebook are named after their variable.
        name = None if isinstance(value, (str, os.PathLike)) else text
        found.documents.append(session.uploads.add(document(value, name)))
    for text in audio or []:
        value = value_of(text, namespace)
        found.recordings.append(recording(value, None if isinstance(value, (str, os.PathLike))
                                          else text))
    if found.pictures and check:
        session.capabilities.require(model, "vision")
    if found.recordings and check:
        session.capabilities.require(model, "audio")
    return found


def value_of(text: str, namespace: dict) -> Any:
    """What ``--image X`` / ``--file X`` names: `X` in the notebook (``fig``, ``res.fig``),
    else `X` itself (a path or URL). Names starting with ``_`` are not looked up; a file
    that exists wins over a name without that attribute (``invoice.pdf`` beside ``invoice``)."""
    if not _NAME.fullmatch(text):
        return text
    head, *rest = text.split(".")
    if head not in namespace:
        return text
    value = namespace[head]
    for part in rest:
        if not hasattr(value, part):
            if os.path.isfile(text):
                return text
            raise ConfigError(f"{text}: {type(value).__name__} {'.'.join([head, *rest[:rest.index(part)]])} "
                              f"has no attribute {part!r}")
        value = getattr(value, part)
    return value


# -- counting ------------------------------------------------------------------------------


def has_attachments(messages: list) -> bool:
    """Whether any message carries a document or a picture URL (which `count_messages` alone
    does not count at their bound)."""
    return any(_attached(chunk) for chunk in _all_chunks(messages))


def _attached(chunk: dict) -> bool:
    kind = chunk.get("type")
    if kind in ("document_url", "file", "input_audio"):
        return True
    return kind == "image_url" and not str(_url(chunk)).startswith("data:")


def _url(chunk: dict) -> Any:
    value = chunk.get("image_url") if chunk.get("type") == "image_url" else chunk.get("document_url")
    return value.get("url") if isinstance(value, dict) else value


def _all_chunks(messages: list):
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            yield from (c for c in content if isinstance(c, dict))


def count_prompt(session, messages: list, tools: list | None = None, *, exact: bool = True) -> int:
    """Prompt tokens with attachments at their bounds (see the module's doc)."""
    from ..money.tokens import audio_tokens, count_messages
    from .audio import seconds_in
    from .documents import sha_of

    extra = 0
    kept = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            kept.append(message)
            continue
        chunks = []
        for chunk in content:
            if not isinstance(chunk, dict) or not _attached(chunk):
                chunks.append(chunk)
                continue
            if chunk.get("type") == "input_audio":
                extra += audio_tokens(seconds_in([{"content": [chunk]}]) or 0.0)
                continue
            sha = sha_of(_url(chunk))
            if sha is not None:
                extra += session.uploads.get(sha).tokens
            elif chunk.get("type") == "image_url":
                chunks.append(chunk)  # counted as a typical picture, as the offline server does
                if not exact:
                    extra += URL_IMAGE_BOUND - DEFAULT_IMAGE_TOKENS
            else:
                raise ConfigError("a document given by file id or by URL cannot be counted "
                                  "before it is sent; attach it with --file")
        kept.append({**message, "content": chunks or ""})
    return count_messages(kept, tools=tools) + extra
