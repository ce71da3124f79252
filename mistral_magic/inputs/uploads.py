"""Documents sent by reference: uploaded once per content and backend, signed just before sending.

`Session.uploads` knows every `documents.Document` the session has referenced (by
SHA-256). `resolve(request, backend)` (and `resolve_async` on the background loop)
returns the request with each reference (`documents.REF_PREFIX`, in chat messages or
in an OCR request's ``document``) replaced by a signed URL of the file on that backend:

- **upload once**: the file goes up through the Files API (``purpose="ocr"``, what
  document chunks and OCR read) only if this backend has no file of that content yet.
  The file id is remembered by (backend URL, SHA-256) in memory and in the folder's
  store (``store.uploads``, not with ``MistralMagics.cache = "off"``), so a re-run, or a
  fresh kernel on the same store, sends the file id again instead of the file. A
  remembered id the backend no longer has (a 404: deleted, or another offline
  server) is uploaded again, once.
- **signed briefly, kept in memory only**: ``files.get_signed_url`` with an expiry of
  `SIGN_HOURS` (a batch job's lines get `BATCH_SIGN_HOURS`, as a job may run that
  long), re-signed when less than `RESIGN_S` is left. A signed URL downloads the file
  without the key until it expires, so it is never written to the store, an output or
  its metadata: the chat, the dry run and the cache hold the reference instead.

Uploads are free; they are not calls and are not in the ledger.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from typing import Any

from ..errors import ConfigError
from .documents import Document, sha_of

SIGN_HOURS = 1
BATCH_SIGN_HOURS = 24
RESIGN_S = 600


class Uploads:
    """The session's documents, their file ids per backend, and signed URLs (in memory)."""

    def __init__(self, session):
        # A proxy: the session keeps this object, which must not keep the session alive (a
        # cycle would leave its SDK client to be closed by a later, random garbage collection).
        self.session = weakref.proxy(session)
        self.known: dict[str, Document] = {}
        self._ids: dict[tuple[str, str], str] = {}  # (backend URL, sha256) -> file id
        self._signed: dict[tuple[str, str], tuple[str, float]] = {}  # -> (url, expires at)
        self._lock = threading.Lock()
        self._async_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.uploaded = 0  # files this session put on a backend

    def add(self, document: Document) -> Document:
        """Know `document` by its hash, so that its references can be counted and sent."""
        with self._lock:
            self.known.setdefault(document.sha256, document)
        return document

    def get(self, sha256: str) -> Document:
        with self._lock:
            found = self.known.get(sha256)
        if found is None:
            raise ConfigError(f"a document this request refers to ({sha256[:12]}…) is not known "
                              "in this kernel; run the cell that attached it again")
        return found

    # -- what a request refers to -----------------------------------------------------

    @staticmethod
    def refs(request: dict) -> list[str]:
        """The hashes of the documents `request` refers to, in order, each once."""
        found: list[str] = []
        for chunk in _chunks(request):
            sha = sha_of(chunk.get("document_url") or chunk.get("image_url"))
            if sha is not None and sha not in found:
                found.append(sha)
        return found

    @staticmethod
    def _filled(request: dict, urls: dict[str, str]) -> dict:
        """A copy of `request` whose references are `urls` (the original is left as it is)."""

        def swap(chunk: Any) -> Any:
            if not isinstance(chunk, dict):
                return chunk
            for key in ("document_url", "image_url"):
                value = chunk.get(key)
                sha = sha_of(value)
                if sha is not None:
                    url = urls[sha]
                    return {**chunk, key: {**value, "url": url} if isinstance(value, dict) else url}
            return chunk

        out = dict(request)
        if "document" in out:
            out["document"] = swap(out["document"])
        if "messages" in out:
            out["messages"] = [
                {**m, "content": [swap(c) for c in m["content"]]}
                if isinstance(m.get("content"), list) else m for m in out["messages"]]
        return out

    # -- sending -------------------------------------------------------------------------

    def resolve(self, request: dict, backend, hours: int = SIGN_HOURS) -> dict:
        """`request` with its references signed (uploading what the backend lacks)."""
        shas = self.refs(request)
        if not shas:
            return request
        return self._filled(request, {sha: self.url(sha, backend, hours) for sha in shas})

    async def resolve_async(self, request: dict, backend, hours: int = SIGN_HOURS) -> dict:
        """`resolve` on the background loop, through the SDK's async calls."""
        shas = self.refs(request)
        if not shas:
            return request
        return self._filled(request, {sha: await self.url_async(sha, backend, hours)
                                      for sha in shas})

    def url(self, sha: str, backend, hours: int = SIGN_HOURS, retry: bool = True) -> str:
        """A signed URL of the document `sha` on `backend`, good for at least `RESIGN_S`."""
        fresh = self._fresh(backend, sha, hours)
        if fresh is not None:
            return fresh
        files = backend.client.files
        file_id = self._file_id(backend, sha)
        if file_id is None:
            file_id = self._remember(backend, sha, files.upload(**self._upload(sha)).id)
        try:
            signed = files.get_signed_url(file_id=file_id, expiry=hours)
        except Exception as exc:  # SDK errors: a 404 means the backend lost the file
            if retry and self._lost(exc, backend, sha):
                return self.url(sha, backend, hours, retry=False)
            raise
        return self._keep(backend, sha, signed.url, hours)

    async def url_async(self, sha: str, backend, hours: int = SIGN_HOURS) -> str:
        """`url` on the background loop; rows sending the same file upload it once."""
        async with self._async_lock(backend, sha):
            return await self._url_async(sha, backend, hours, retry=True)

    async def _url_async(self, sha: str, backend, hours: int, retry: bool) -> str:
        fresh = self._fresh(backend, sha, hours)
        if fresh is not None:
            return fresh
        files = backend.client.files
        file_id = self._file_id(backend, sha)
        if file_id is None:
            uploaded = await files.upload_async(**self._upload(sha))
            file_id = self._remember(backend, sha, uploaded.id)
        try:
            signed = await files.get_signed_url_async(file_id=file_id, expiry=hours)
        except Exception as exc:  # SDK errors: a 404 means the backend lost the file
            if retry and self._lost(exc, backend, sha):
                return await self._url_async(sha, backend, hours, retry=False)
            raise
        return self._keep(backend, sha, signed.url, hours)

    # -- the parts both ways share ------------------------------------------------------------

    def _upload(self, sha: str) -> dict:
        document = self.get(sha)
        self.uploaded += 1
        return {"file": {"file_name": document.name, "content": document.content()},
                "purpose": "ocr"}

    def _fresh(self, backend, sha: str, hours: int) -> str | None:
        """A signed URL kept from before, while it has long enough left for this use."""
        with self._lock:
            file_id = self._ids.get((backend.url, sha))
            kept = self._signed.get((backend.url, file_id)) if file_id else None
        needed = time.time() + RESIGN_S + (hours - SIGN_HOURS) * 3600
        return kept[0] if kept is not None and kept[1] >= needed else None

    def _keep(self, backend, sha: str, url: str, hours: int) -> str:
        with self._lock:
            file_id = self._ids[(backend.url, sha)]
            self._signed[(backend.url, file_id)] = (url, time.time() + hours * 3600)
        return url

    def _file_id(self, backend, sha: str) -> str | None:
        """The backend's file of this content: known in this kernel, or in the store."""
        key = (backend.url, sha)
        with self._lock:
            if key in self._ids:
                return self._ids[key]
        responses = self.session.responses
        if responses.mode == "off":
            return None
        found = responses.guarded(lambda store: store.uploads.get(backend.url, sha), None)
        if found is not None:
            with self._lock:
                self._ids[key] = found
        return found

    def _remember(self, backend, sha: str, file_id: str) -> str:
        with self._lock:
            self._ids[(backend.url, sha)] = file_id
        responses = self.session.responses
        if responses.mode == "on":
            document = self.get(sha)
            responses.guarded(lambda store: store.uploads.put(
                backend.url, sha, file_id, name=document.name, size=document.size),
                None, write=True)
        return file_id

    def _lost(self, exc: BaseException, backend, sha: str) -> bool:
        """Whether `exc` says the backend has no such file; if so, forget it (upload again)."""
        from ..errors import is_api_error

        if not (is_api_error(exc) and getattr(exc, "status_code", None) == 404):
            return False
        with self._lock:
            self._ids.pop((backend.url, sha), None)
        if self.session.responses.mode == "on":
            self.session.responses.guarded(
                lambda store: store.uploads.forget(backend.url, sha), False, write=True)
        return True

    def _async_lock(self, backend, sha: str) -> asyncio.Lock:
        with self._lock:
            return self._async_locks.setdefault((backend.url, sha), asyncio.Lock())


def _chunks(request: dict):
    """The chunks of a request that may hold a reference: message chunks, an OCR document."""
    document = request.get("document")
    if isinstance(document, dict):
        yield document
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            yield from (c for c in content if isinstance(c, dict))

