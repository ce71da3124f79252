"""The in-memory file store behind /v1/files, the multipart upload it accepts, and signed URLs.

Files live in memory, so the store holds at most `limits.MAX_STORED_BYTES` in all
(uploads past that get 413 until files are deleted); one upload is capped by the
body limit, `limits.MAX_UPLOAD_BYTES`.

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
import mimetypes
import re
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from urllib.parse import parse_qs, quote, urlsplit

from . import limits
from .wire import RequestError, error_body

SIGNED_PREFIX = "/offline/files/"
EXPIRY_HOURS = (1, 168)

PURPOSES = ("fine-tune", "batch", "ocr")


@dataclass
class StoredFile:
    meta: dict
    content: bytes


class FileStore:
    """Files by id; thread-safe, lost when the server stops."""

    def __init__(self, capacity: int = limits.MAX_STORED_BYTES):
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        self.capacity = capacity
        self._secret = secrets.token_bytes(32)

    def stored_bytes(self) -> int:
        with self._lock:
            return sum(len(f.content) for f in self._files.values())

    def add(self, filename: str, content: bytes, purpose: str, sample_type: str,
            source: str = "upload", mimetype: str | None = None) -> dict:
        meta = {
            "id": str(uuid.uuid4()),
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "sample_type": sample_type,
            "source": source,
            # Lines mean something for JSONL (batch, fine-tune), not for a PDF to OCR.
            "num_lines": 0 if purpose == "ocr" else content.count(b"\n") + (0 if not content or content.endswith(b"\n") else 1),
            "mimetype": mimetype,
            "signature": None,
            "expires_at": None,
            "visibility": "workspace",
        }
        with self._lock:
            held = sum(len(f.content) for f in self._files.values())
            if source == "upload" and held + len(content) > self.capacity:
                raise RequestError(413, error_body(
                    f"The offline server keeps files in memory, at most {self.capacity:,} bytes in all, and "
                    f"holds {held:,}: delete files (DELETE /v1/files/{{file_id}}) before uploading more",
                    "invalid_request_error"))
            self._files[meta["id"]] = StoredFile(meta, content)
        return dict(meta)

    def get(self, file_id: str) -> StoredFile:
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None:
            raise RequestError(404, error_body(f"File {file_id} not found", "not_found", "3404"))
        return stored

    def delete(self, file_id: str) -> dict:
        self.get(file_id)
        with self._lock:
            self._files.pop(file_id, None)
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


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes, str | None]]:
    """Fields of a multipart/form-data body: name -> (filename or None, bytes, content type or None)."""
    params = dict((k.lower(), v) for k, v in _PARAM.findall(content_type))
    boundary = params.get("boundary")
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        raise RequestError(422, {"detail": [{"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None}]})
    fields: dict[str, tuple[str | None, bytes, str | None]] = {}
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        lines = head.decode("utf-8", "replace").split("\r\n")
        disposition = next((line for line in lines if line.lower().startswith("content-disposition")), "")
        kind = next((line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("content-type")), None)
        found = dict((k.lower(), v) for k, v in _PARAM.findall(disposition))
        if "name" in found:
            fields[found["name"]] = (found.get("filename"), content, kind)
    return fields


def upload(store: FileStore, body: bytes, content_type: str) -> dict:
    """Handle POST /v1/files: validate the form as the API does, store the file."""
    fields = parse_multipart(body, content_type)
    detail = []
    if "file" not in fields:
        detail.append({"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None})
    purpose = fields.get("purpose", (None, b"fine-tune", None))[1].decode("utf-8", "replace")
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
