"""What left this kernel: one record per call that went on the wire (``%mistral sent``).

    with origin(frames=filled.frames, pictures=["fig"]):   # what the caller knows
        session.ask(request, ...)                           # each call sent is recorded

`Sent` (``session.sent``) keeps, for every call sent (`call.Call.settle` calls `record`)
and every batch job's input file (`record_upload`):

- when, the kind of call (chat, extract, embed, ocr, batch, ...), the model and status;
- where it went: the host and the region (La Plateforme's global, eu or us; a
  self-hosted server; the offline server on this machine). Never a key, and never a
  URL's query or user part (a signed URL's signature stays out);
- its text: characters of the messages (history and system prompt included) or inputs,
  and the prompt tokens (as the server reported them, else as counted here);
- DataFrames: the columns and the row labels whose values were in the text, as the
  caller declared them with `origin` (a cell's ``{df}``, a row method's rows; the
  context variable follows the call onto the background loop's tasks);
- pictures and documents: their names and bytes (a picture's encoded bytes; a
  document's file size; a URL the server fetches itself has no bytes here).

A call answered from the response cache sent nothing and is not recorded. The records
live in memory, for this kernel.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from .backend import SERVERS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Use:
    """Part of a DataFrame in a call's text: which frame, its columns and the rows' labels."""

    name: str
    columns: Sequence = ()
    rows: Sequence = ()
    form: str = "rows"  # "rows" | "summary" (statistics of every row of the columns) | "repr"


@dataclass(frozen=True)
class Origin:
    """What a call carries beyond its request body: DataFrames, and its pictures' names."""

    frames: tuple = ()  # `Use`s, or anything with name, columns, rows and form
    pictures: tuple = ()  # names, in the order the request carries the pictures


ORIGIN: ContextVar[Origin | None] = ContextVar("mistral_magic_origin", default=None)


@contextmanager
def origin(frames: Sequence = (), pictures: Sequence = ()) -> Iterator[None]:
    """Calls made inside the block carry these frames and pictures in their records."""
    token = ORIGIN.set(Origin(tuple(frames), tuple(pictures)))
    try:
        yield
    finally:
        ORIGIN.reset(token)


@dataclass
class SentRecord:
    """One call (or batch file) that left the kernel, as data."""

    kind: str
    model: str
    status: str
    host: str
    region: str
    characters: int | None
    prompt_tokens: int | None
    frames: list = field(default_factory=list)  # `Use`s
    pictures: list = field(default_factory=list)  # (name, bytes or None)
    documents: list = field(default_factory=list)  # (name, bytes or None)
    bytes: int | None = None  # a batch job's input file
    time: datetime = field(default_factory=lambda: datetime.now(timezone.utc))


class Sent:
    """Every call this kernel sent; safe to add to from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[SentRecord] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def add(self, record: SentRecord) -> None:
        with self._lock:
            self._records.append(record)

    @property
    def records(self) -> list[SentRecord]:
        with self._lock:
            return list(self._records)

    def to_frame(self):
        """One row per call sent (see the module's doc); lists of names in object columns."""
        import pandas as pd

        rows = [{
            "time": r.time, "kind": r.kind, "model": r.model, "status": r.status,
            "host": r.host, "region": r.region, "characters": r.characters,
            "prompt_tokens": r.prompt_tokens,
            "frames": [f"{u.name} ({u.form})" for u in r.frames],
            "columns": sorted({f"{u.name}.{c}" for u in r.frames for c in u.columns}),
            "rows": [label for u in r.frames for label in u.rows],
            "pictures": [_named(n, b) for n, b in r.pictures],
            "documents": [_named(n, b) for n, b in r.documents],
            "bytes": r.bytes,
        } for r in self.records]
        columns = ["time", "kind", "model", "status", "host", "region", "characters",
                   "prompt_tokens", "frames", "columns", "rows", "pictures", "documents", "bytes"]
        frame = pd.DataFrame(rows, columns=columns)
        for name in ("characters", "prompt_tokens", "bytes"):
            frame[name] = frame[name].astype("Int64")
        frame["time"] = pd.to_datetime(frame["time"], utc=True)
        return frame

    def by_column(self):
        """One row per DataFrame column that left: calls, rows, forms and hosts."""
        import pandas as pd

        seen: dict[tuple, dict] = {}
        for r in self.records:
            for use in r.frames:
                for column in use.columns:
                    entry = seen.setdefault((use.name, str(column)), {
                        "calls": 0, "rows": set(), "forms": set(), "hosts": set()})
                    entry["calls"] += 1
                    entry["rows"].update(map(str, use.rows))
                    entry["forms"].add(use.form)
                    entry["hosts"].add(r.host)
        frame = pd.DataFrame(
            [{"frame": name, "column": column, "calls": e["calls"], "rows": len(e["rows"]),
              "forms": ", ".join(sorted(e["forms"])), "hosts": ", ".join(sorted(e["hosts"]))}
             for (name, column), e in seen.items()],
            columns=["frame", "column", "calls", "rows", "forms", "hosts"])
        return frame


def _named(name: str, size: int | None) -> str:
    return name if size is None else f"{name} ({size:,} bytes)"


# -- what a call carried -------------------------------------------------------------------


def record(call) -> None:
    """Record a call that was sent (`call.Call.settle`); bookkeeping never fails the call."""
    if not call.sent:
        return
    try:
        _record(call)
    except Exception:
        log.exception("mistral_magic: what a call sent was not recorded; the call stands")


def _record(call) -> None:
    request, answer = call.request, call.answer
    known = ORIGIN.get() or Origin()
    pictures, documents = _attachments(call.session, request, list(known.pictures))
    host, region = where(call.session)
    call.session.sent.add(SentRecord(
        kind=call.kind, model=answer.model, status=answer.status, host=host, region=region,
        characters=_characters(request), prompt_tokens=answer.prompt_tokens,
        frames=list(known.frames), pictures=pictures, documents=documents,
    ))


def record_upload(session, *, kind: str, model: str, size: int, status: str = "ok") -> None:
    """Record a batch job's input file (its lines are the rows' requests), under `origin`."""
    known = ORIGIN.get() or Origin()
    host, region = where(session)
    session.sent.add(SentRecord(kind=kind, model=model, status=status, host=host, region=region,
                                characters=None, prompt_tokens=None, frames=list(known.frames),
                                bytes=size))


def where(session) -> tuple[str, str]:
    """The host a session's calls go to (no user part, no path or query) and its region."""
    backend = session.backend
    if backend.kind == "offline":
        return "127.0.0.1", "this machine (offline server)"
    parts = urlsplit(backend.url or "")
    host = parts.hostname or "?"
    if parts.port:
        host = f"{host}:{parts.port}"
    base = f"{parts.scheme}://{parts.hostname}"
    region = next((name for name, url in SERVERS.items() if url == base), None)
    if backend.kind == "mistral":
        return host, f"La Plateforme ({region or 'global'})"
    return host, "self-hosted server"


_TEXT_KEYS = ("prompt", "suffix", "input", "inputs")


def _characters(request: dict) -> int:
    """Characters of text a request carries: its messages' text, or its inputs."""
    total = 0
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(c.get("text") or "") for c in content
                         if isinstance(c, dict) and c.get("type") == "text")
    for key in _TEXT_KEYS:
        value = request.get(key)
        if isinstance(value, str):
            total += len(value)
        elif isinstance(value, list):
            total += sum(len(v) for v in value if isinstance(v, str))
    return total


def _attachments(session, request: dict, names: list[str]) -> tuple[list, list]:
    """The pictures and documents of a request: (name, bytes) each; never a URL's query."""
    pictures, documents = [], []
    for chunk in _chunks(request):
        kind = chunk.get("type")
        value = chunk.get(kind)
        url = value.get("url") if isinstance(value, dict) else value
        if kind == "image_url":
            name = names.pop(0) if names else None
            if isinstance(url, str) and url.startswith("data:"):
                pictures.append((name or f"picture {len(pictures) + 1}", _data_bytes(url)))
            else:
                pictures.append((name or _bare(url), None))
        elif kind in ("document_url", "file"):
            documents.append(_document(session, chunk, url))
    return pictures, documents


def _document(session, chunk: dict, url: Any) -> tuple[str, int | None]:
    from ..inputs.documents import sha_of

    sha = sha_of(url)
    known = session.uploads.known.get(sha) if sha is not None else None
    name = chunk.get("document_name") or (known.name if known is not None else None)
    return (name or _bare(url) or "document"), (known.size if known is not None else None)


def _chunks(request: dict) -> Iterator[dict]:
    """Every picture or document chunk of a request (messages, or an OCR request's document)."""
    document = request.get("document")
    if isinstance(document, dict):
        yield document
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            yield from (c for c in content
                        if isinstance(c, dict) and c.get("type") in ("image_url", "document_url", "file"))


def _data_bytes(url: str) -> int:
    """The bytes a base64 data URL holds."""
    payload = url.partition(",")[2]
    try:
        return len(base64.b64decode(payload, validate=False))
    except ValueError:
        return len(payload) * 3 // 4


def _bare(url: Any) -> str:
    """A URL without its user part, query and fragment (where a signature would be)."""
    if not isinstance(url, str):
        return str(url)
    parts = urlsplit(url)
    if not parts.scheme:
        return url
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"
