"""The file store behind /v1/files, the multipart upload it reads as a stream, and signed URLs.

Small files (up to `MEMORY_FILE_BYTES`) live in memory; larger ones (a batch's
100,000-line JSONL, its output) are kept on disk in a private temporary folder of
the store, removed when the server goes, so a big batch never sits in the server's
memory. The store holds at most `limits.MAX_STORED_BYTES` of uploads in all
(uploads past that get 413 until files are deleted); one upload is capped by the
body limit, `limits.MAX_UPLOAD_BYTES` (the hosted API's 512 MB per file). An upload
is spooled to disk as it arrives and its multipart form is read from there a chunk
at a time (`parse_multipart`), in the thread pool.

`GET /v1/files/{id}/url?expiry=HOURS` (1 to 168, default 24) signs a download URL,
`{server}/offline/files/{id}/{filename}?expires=...&signature=...`, that works
without the API key until it expires, like the hosted API's blob URLs. The
signature is an HMAC with a secret of this store, so it proves nothing about the
key and cannot be forged; chat document chunks and OCR read such URLs straight from
the store (the offline server fetches nothing from the network).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import mimetypes
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, quote, urlsplit

from . import limits
from .wire import RequestError, error_body

SIGNED_PREFIX = "/offline/files/"
EXPIRY_HOURS = (1, 168)

PURPOSES = ("fine-tune", "batch", "ocr")


#: Files up to this size stay in memory; larger ones are kept on disk.
MEMORY_FILE_BYTES = limits.MIB
COPY_CHUNK = 256 * limits.KIB


@dataclass
class StoredFile:
    """A stored file: its metadata, and its bytes in memory (`data`) or on disk (`path`)."""

    meta: dict
    data: bytes | None = None
    path: Path | None = None

    @property
    def content(self) -> bytes:
        """The whole file (for documents and pictures, which are read whole anyway)."""
        return self.data if self.data is not None else self.path.read_bytes()

    def open(self) -> BinaryIO:
        """The file for reading a chunk or a line at a time (the caller closes it)."""
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")


class FileStore:
    """Files by id; thread-safe, gone when the server stops (its folder is removed)."""

    def __init__(self, capacity: int = limits.MAX_STORED_BYTES, memory_limit: int = MEMORY_FILE_BYTES):
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self.capacity = capacity
        self.memory_limit = memory_limit
        self._secret = secrets.token_bytes(32)
        self._folder: Path | None = None

    def folder(self) -> Path:
        """The store's private folder for large files, made on first use and removed with the store."""
        with self._lock:
            if self._folder is None:
                self._folder = Path(tempfile.mkdtemp(prefix="mistral-magic-offline-files-"))
                weakref.finalize(self, shutil.rmtree, self._folder, True)
            return self._folder

    def stored_bytes(self) -> int:
        with self._lock:
            return self._held()

    def _held(self) -> int:
        return sum(f.meta["bytes"] for f in self._files.values() if f.meta["source"] == "upload")

    def add(self, filename: str, content: bytes | BinaryIO, purpose: str, sample_type: str,
            source: str = "upload", mimetype: str | None = None) -> dict:
        """Store `content` (bytes, or a binary file read from its start) and return its metadata."""
        if isinstance(content, (bytes, bytearray)):
            content = io.BytesIO(content)
        size = content.seek(0, os.SEEK_END)
        content.seek(0)
        if source == "upload":
            with self._lock:
                self._refuse_past_capacity(size)
        stored = StoredFile({})
        newlines, last = 0, b""
        if size <= self.memory_limit:
            stored.data = content.read()
            newlines, last = stored.data.count(b"\n"), stored.data[-1:]
            if self._is_new_file(content):
                _unlink(content.name)
        else:
            stored.path = self.folder() / uuid.uuid4().hex
            mine = self._is_new_file(content)
            out = None if mine else open(stored.path, "wb")
            try:
                while chunk := content.read(COPY_CHUNK):
                    if out is not None:
                        out.write(chunk)
                    newlines, last = newlines + chunk.count(b"\n"), chunk[-1:]
            finally:
                if out is not None:
                    out.close()
            if mine:  # written here already (an upload): keep it under its new name, uncopied
                os.replace(content.name, stored.path)
        stored.meta = {
            "id": str(uuid.uuid4()),
            "object": "file",
            "bytes": size,
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "sample_type": sample_type,
            "source": source,
            # Lines mean something for JSONL (batch, fine-tune), not for a PDF to OCR.
            "num_lines": 0 if purpose == "ocr" else newlines + (0 if not size or last == b"\n" else 1),
            "mimetype": mimetype,
            "signature": None,
            "expires_at": None,
            "visibility": "workspace",
        }
        with self._lock:
            try:
                if source == "upload":
                    self._refuse_past_capacity(size)  # again: another upload may have come meanwhile
            except RequestError:
                _remove(stored)
                raise
            self._files[stored.meta["id"]] = stored
        return dict(stored.meta)

    def new_file(self) -> BinaryIO:
        """A new file in the store's folder to write an upload into; `add` keeps it without a copy."""
        return tempfile.NamedTemporaryFile(dir=self.folder(), prefix="incoming-", delete=False)

    def _is_new_file(self, content) -> bool:
        name = getattr(content, "name", None)
        return isinstance(name, str) and self._folder is not None and Path(name).parent == self._folder

    def _refuse_past_capacity(self, size: int) -> None:
        held = self._held()
        if held + size > self.capacity:
            raise RequestError(413, error_body(
                f"The offline server keeps at most {self.capacity:,} bytes of uploaded files in all, and "
                f"holds {held:,}: delete files (DELETE /v1/files/{{file_id}}) before uploading more",
                "invalid_request_error"))

    def get(self, file_id: str) -> StoredFile:
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None:
            raise RequestError(404, error_body(f"File {file_id} not found", "not_found", "3404"))
        return stored

    def delete(self, file_id: str) -> dict:
        self.get(file_id)
        with self._lock:
            stored = self._files.pop(file_id, None)
        if stored is not None:
            _remove(stored)  # a reader that has it open (a running batch job) keeps reading
        return {"id": file_id, "object": "file", "deleted": True}

    def _signature(self, file_id: str, expires: int) -> str:
        return hmac.new(self._secret, f"{file_id}:{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, file_id: str, hours: int, base_url: str) -> dict:
        """GET /v1/files/{id}/url: a URL that downloads the file without the key until it expires."""
        stored = self.get(file_id)
        low, high = EXPIRY_HOURS
        if not low <= hours <= high:
            kind, bound = ("greater_than_equal", low) if hours < low else ("less_than_equal", high)
            raise RequestError(422, {"detail": [{
                "type": kind, "loc": ["query", "expiry"], "input": str(hours),
                "msg": f"Input should be {'greater' if hours < low else 'less'} than or equal to {bound}",
                "ctx": {"ge" if hours < low else "le": bound}}]})
        expires = int(time.time()) + hours * 3600
        name = quote(stored.meta["filename"] or "file", safe="")
        query = f"expires={expires}&signature={self._signature(file_id, expires)}"
        return {"url": f"{base_url.rstrip('/')}{SIGNED_PREFIX}{file_id}/{name}?{query}"}

    def open_signed(self, file_id: str, expires: str, signature: str) -> StoredFile:
        """The file a signed URL names, or 403 when its signature is wrong or it has expired."""
        good = expires.isdigit() and hmac.compare_digest(signature, self._signature(file_id, int(expires)))
        if not good or int(expires) < time.time():
            raise RequestError(403, error_body(
                "This signed URL is not valid for this offline server, or it has expired: "
                "ask GET /v1/files/{file_id}/url for a new one", "forbidden"))
        return self.get(file_id)

    def read_url(self, url: str) -> StoredFile | None:
        """The stored file behind one of this server's signed URLs, or None when the URL is not one."""
        parts = urlsplit(url)
        if not parts.path.startswith(SIGNED_PREFIX):
            return None
        file_id = parts.path[len(SIGNED_PREFIX):].split("/", 1)[0]
        query = parse_qs(parts.query)
        return self.open_signed(file_id, query.get("expires", [""])[0], query.get("signature", [""])[0])

    def list(self, purpose: str | None = None, search: str | None = None,
             page: int = 0, page_size: int = 100) -> dict:
        with self._lock:
            metas = [dict(f.meta) for f in self._files.values()]
        if purpose:
            metas = [m for m in metas if m["purpose"] == purpose]
        if search:
            metas = [m for m in metas if search.lower() in m["filename"].lower()]
        metas.sort(key=lambda m: m["created_at"], reverse=True)
        return {"object": "list", "data": metas[page * page_size : (page + 1) * page_size], "total": len(metas)}


_PARAM = re.compile(r';\s*([\w-]+)="?([^";]*)"?')
#: A part's headers, and a form field that is not a file, are read up to this size.
FIELD_BYTES = 64 * limits.KIB


class Form(dict):
    """A multipart form: name -> (filename or None, value, content type or None).

    A file part's value is an open binary file (a new file of the store, see
    `FileStore.new_file`); any other field's value is its bytes (the last one sent;
    `repeated` keeps every value of a field sent more than once, as arrays are sent). Close
    the form to close (and, unless stored, delete) its files.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.repeated: dict[str, list[bytes]] = {}

    def __enter__(self) -> Form:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for _, value, _ in self.values():
            if not isinstance(value, bytes):
                value.close()
                _unlink(getattr(value, "name", None))


class _Capped:
    """A sink that keeps the first `limit` bytes written to it."""

    def __init__(self, limit: int = FIELD_BYTES):
        self.data = bytearray()
        self.limit = limit

    def write(self, chunk: bytes) -> None:
        room = self.limit - len(self.data)
        if room > 0:
            self.data += chunk[:room]


class _Scanner:
    """Reads a stream a chunk at a time, handing what lies before each marker to a sink."""

    def __init__(self, stream: BinaryIO, start: bytes = b""):
        self.stream = stream
        self.buf = start

    def _fill(self) -> bool:
        chunk = self.stream.read(COPY_CHUNK)
        self.buf += chunk
        return bool(chunk)

    def until(self, marker: bytes, sink: Callable[[bytes], object] | None = None) -> bool:
        """Pass the bytes before `marker` to `sink` and consume the marker; False when the
        stream ends first (everything left went to the sink)."""
        write = sink or (lambda chunk: None)
        keep = len(marker) - 1
        while True:
            found = self.buf.find(marker)
            if found >= 0:
                write(self.buf[:found])
                self.buf = self.buf[found + len(marker):]
                return True
            if len(self.buf) > keep:  # all but a tail that may start the marker
                write(self.buf[: len(self.buf) - keep])
                self.buf = self.buf[len(self.buf) - keep:]
            if not self._fill():
                write(self.buf)
                self.buf = b""
                return False

    def starts(self, prefix: bytes) -> bool:
        while len(self.buf) < len(prefix) and self._fill():
            pass
        return self.buf.startswith(prefix)


def parse_multipart(stream: BinaryIO, content_type: str, new_file: Callable[[], BinaryIO]) -> Form:
    """The fields of a multipart/form-data body read from `stream` a chunk at a time.

    A part with a filename (or named ``file``) is written to `new_file()`; other fields
    are kept as bytes, up to `FIELD_BYTES`.
    """
    params = dict((k.lower(), v) for k, v in _PARAM.findall(content_type))
    boundary = params.get("boundary")
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        raise RequestError(422, {"detail": [{"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None}]})
    delimiter = b"\r\n--" + boundary.encode()
    # A body starts with the boundary itself: a leading CRLF makes it one delimiter like the others.
    scanner = _Scanner(stream, b"\r\n")
    form = Form()
    try:
        found = scanner.until(delimiter)
        while found and not scanner.starts(b"--") and scanner.until(b"\r\n"):
            head = _Capped()
            if not scanner.until(b"\r\n\r\n", head.write):
                break
            name, filename, kind = _part_headers(bytes(head.data))
            if filename is not None or name == "file":
                sink = new_file()
                found = scanner.until(delimiter, sink.write)
                sink.flush()
                value: bytes | BinaryIO = sink
            else:
                field = _Capped()
                found = scanner.until(delimiter, field.write)
                value = bytes(field.data)
                if name is not None:
                    form.repeated.setdefault(name, []).append(value)
            if name is None:
                Form({"": (None, value, None)}).close()
            else:
                if name in form:
                    Form({name: form[name]}).close()
                form[name] = (filename, value, kind)
    except BaseException:
        form.close()
        raise
    return form


def _part_headers(head: bytes) -> tuple[str | None, str | None, str | None]:
    """A part's field name, filename and content type."""
    lines = head.decode("utf-8", "replace").split("\r\n")
    disposition = next((line for line in lines if line.lower().startswith("content-disposition")), "")
    kind = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("content-type")), None)
    found = dict((k.lower(), v) for k, v in _PARAM.findall(disposition))
    return found.get("name"), found.get("filename"), kind


def upload(store: FileStore, body: BinaryIO, content_type: str) -> dict:
    """Handle POST /v1/files: read the spooled form, validate it as the API does, store the file."""
    with parse_multipart(body, content_type, store.new_file) as fields:
        detail = []
        if "file" not in fields:
            detail.append({"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None})
        purpose = fields.get("purpose", (None, b"fine-tune", None))[1]
        purpose = purpose.decode("utf-8", "replace") if isinstance(purpose, bytes) else "(a file)"
        if purpose not in PURPOSES:
            detail.append({"type": "enum", "loc": ["body", "purpose"], "input": purpose,
                           "msg": "Input should be 'fine-tune', 'batch' or 'ocr'",
                           "ctx": {"expected": "'fine-tune', 'batch' or 'ocr'"}})
        if detail:
            raise RequestError(422, {"detail": detail})
        filename, content, kind = fields["file"]
        sample_type = {"batch": "batch_request", "fine-tune": "instruct"}.get(purpose, "instruct")
        if not kind or kind == "application/octet-stream":
            kind = mimetypes.guess_type(filename or "")[0] or kind
        return store.add(filename or "upload", content, purpose, sample_type, mimetype=kind)


def response(stored: StoredFile, media_type: str):
    """A file's download: its bytes, or a large file streamed from disk a chunk at a time."""
    from starlette.responses import Response, StreamingResponse

    if stored.data is not None:
        return Response(stored.data, media_type=media_type)
    def chunks() -> Iterator[bytes]:
        # Once open, a delete that comes while it downloads does not cut it short.
        with stored.open() as handle:
            while chunk := handle.read(COPY_CHUNK):
                yield chunk

    return StreamingResponse(chunks(), media_type=media_type,
                             headers={"content-length": str(stored.meta["bytes"])})


def _remove(stored: StoredFile) -> None:
    _unlink(stored.path)


def _unlink(path) -> None:
    if path:
        try:
            os.unlink(path)
        except (FileNotFoundError, TypeError):
            pass


def spooled() -> BinaryIO:
    """A scratch file that stays in memory while small (a request body, a batch job's output)."""
    return tempfile.SpooledTemporaryFile(max_size=MEMORY_FILE_BYTES)
