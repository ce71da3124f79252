"""The in-memory file store behind /v1/files, and the multipart upload it accepts.

Files live in memory, so the store holds at most `limits.MAX_STORED_BYTES` in all
(uploads past that get 413 until files are deleted); one upload is capped by the
body limit, `limits.MAX_UPLOAD_BYTES`.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from dataclasses import dataclass

from . import limits
from .wire import RequestError, error_body

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
            "num_lines": content.count(b"\n") + (0 if not content or content.endswith(b"\n") else 1),
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


def parse_multipart(body: bytes, content_type: str) -> dict[str, tuple[str | None, bytes]]:
    """Fields of a multipart/form-data body: name -> (filename or None, bytes)."""
    params = dict((k.lower(), v) for k, v in _PARAM.findall(content_type))
    boundary = params.get("boundary")
    if not content_type.lower().startswith("multipart/form-data") or not boundary:
        raise RequestError(422, {"detail": [{"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None}]})
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(b"--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if content.endswith(b"\r\n"):
            content = content[:-2]
        disposition = next((line for line in head.decode("utf-8", "replace").split("\r\n")
                            if line.lower().startswith("content-disposition")), "")
        found = dict((k.lower(), v) for k, v in _PARAM.findall(disposition))
        if "name" in found:
            fields[found["name"]] = (found.get("filename"), content)
    return fields


def upload(store: FileStore, body: bytes, content_type: str) -> dict:
    """Handle POST /v1/files: validate the form as the API does, store the file."""
    fields = parse_multipart(body, content_type)
    detail = []
    if "file" not in fields:
        detail.append({"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": None})
    purpose = fields.get("purpose", (None, b"fine-tune"))[1].decode("utf-8", "replace")
    if purpose not in PURPOSES:
        detail.append({"type": "enum", "loc": ["body", "purpose"], "input": purpose,
                       "msg": "Input should be 'fine-tune', 'batch' or 'ocr'",
                       "ctx": {"expected": "'fine-tune', 'batch' or 'ocr'"}})
    if detail:
        raise RequestError(422, {"detail": detail})
    filename, content = fields["file"]
    sample_type = {"batch": "batch_request", "fine-tune": "instruct"}.get(purpose, "instruct")
    return store.add(filename or "upload", content, purpose, sample_type)
