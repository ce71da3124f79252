"""Document libraries offline: libraries, their documents, processing, text, and search.

`POST /v1/libraries` makes a library (ids are UUIDs, as the spec says); a document
uploaded to it (`POST .../documents`, multipart) is read as OCR reads it (`documents`:
a PDF's text layer, DOCX, PPTX, text); uploading the same content again returns the
document it already has (status 200, as the spec documents), a new one 201.

Processing moves on by itself, as the hosted one does: a new document is ``todo``, then
``in_progress`` once its status is read, and ``done`` `PROCESSING_S` after its upload
(``error`` when its bytes cannot be read). `text_content` gives the text read; a
document's and its text's signed URLs are the file store's (`files.FileStore.sign`).

`search(library_ids, query, k)` is what the `document_library` tool does: the text of
the documents that are done, cut into passages of about `PASSAGE_CHARS`, ranked by the
cosine of their offline embeddings with the query's (`embed.vector`), ties by order.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
import uuid
from dataclasses import dataclass, field

from . import documents, embed, files, limits
from .agent_wire import CreateLibrary, UpdateDocument, UpdateLibrary
from .agents import not_found, now
from .wire import RequestError, error_body, parse

PROCESSING_S = 0.3
PASSAGE_CHARS = 600
DIMENSIONS = 256
#: documents kept in all libraries of one server, in bytes (past it: 413)
CAPACITY = 256 * limits.MIB
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n{2,}")


@dataclass
class Stored:
    """One document: its metadata (the spec's Document), its bytes and the text read."""

    meta: dict
    data: bytes
    text: str = ""
    failed: bool = False
    uploaded: float = field(default_factory=time.monotonic)
    seen: bool = False
    passages: list[str] | None = None
    vectors: object = None
    file_ids: dict[str, str] = field(default_factory=dict)  # "document" / "text" -> file store id

    def status(self) -> str:
        if self.failed:
            return "error"
        if time.monotonic() - self.uploaded >= PROCESSING_S:
            return "done"
        return "in_progress" if self.seen else "todo"

    def shown(self) -> dict:
        status = self.status()
        return {**self.meta, "process_status": status,
                "processing_status": {"done": "Completed", "error": "Failed"}.get(status, "Running"),
                "last_processed_at": self.meta["created_at"] if status == "done" else None}


class Libraries:
    """Every library of an offline server and its documents; thread-safe."""

    def __init__(self, store: files.FileStore):
        self.files = store
        self._libraries: dict[str, dict] = {}
        self._documents: dict[str, dict[str, Stored]] = {}  # library id -> document id -> Stored
        self._lock = threading.Lock()

    # -- libraries -----------------------------------------------------------------------

    def library(self, library_id: str) -> dict:
        with self._lock:
            found = self._libraries.get(library_id)
            if found is None:
                raise not_found("Library", library_id)
            docs = self._documents[library_id].values()
            return {**found, "nb_documents": len(docs), "total_size": sum(d.meta["size"] for d in docs)}

    def create(self, data: object) -> dict:
        req = parse(CreateLibrary, data)
        stamp = now()
        library = {"id": str(uuid.uuid4()), "name": req.name, "description": req.description,
                   "created_at": stamp, "updated_at": stamp, "owner_id": None,
                   "owner_type": req.owner_type or "Workspace", "total_size": 0, "nb_documents": 0,
                   "chunk_size": req.chunk_size}
        with self._lock:
            self._libraries[library["id"]] = library
            self._documents[library["id"]] = {}
        return dict(library)

    def listing(self, search: str | None = None, page: int = 0, page_size: int = 100) -> dict:
        with self._lock:
            ids = list(self._libraries)
        found = [self.library(i) for i in ids]
        if search:
            found = [lib for lib in found if search.lower() in lib["name"].lower()]
        return {"data": found[page * page_size:(page + 1) * page_size], "next_page_token": None}

    def update(self, library_id: str, data: object) -> dict:
        req = parse(UpdateLibrary, data)
        self.library(library_id)
        with self._lock:
            library = self._libraries[library_id]
            library.update({k: v for k, v in req.model_dump().items() if v is not None}, updated_at=now())
        return self.library(library_id)

    def delete(self, library_id: str) -> dict:
        shown = self.library(library_id)
        with self._lock:
            self._libraries.pop(library_id, None)
            self._documents.pop(library_id, None)
        return shown

    # -- documents -----------------------------------------------------------------------

    def _stored(self, library_id: str, document_id: str) -> Stored:
        self.library(library_id)
        with self._lock:
            found = self._documents[library_id].get(document_id)
        if found is None:
            raise not_found("Document", document_id)
        return found

    def upload(self, library_id: str, body, content_type: str) -> tuple[int, dict]:
        """POST .../documents: (201, the new document), or (200, the one with this content)."""
        self.library(library_id)
        with files.parse_multipart(body, content_type, self.files.new_file) as form:
            if "file" not in form:
                raise RequestError(422, {"detail": [{"type": "missing", "loc": ["body", "file"],
                                                     "msg": "Field required", "input": None}]})
            name, handle, mime = form["file"]
            handle.seek(0)
            data = handle.read()
        name = name or "document"
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            held = sum(d.meta["size"] for docs in self._documents.values() for d in docs.values())
            same = next((d for d in self._documents[library_id].values() if d.meta["hash"] == digest), None)
        if same is not None:
            return 200, same.shown()
        if held + len(data) > CAPACITY:
            raise RequestError(413, error_body(
                f"The offline server keeps at most {CAPACITY:,} bytes of library documents; delete "
                "documents before adding more", "invalid_request_error"))
        stored = Stored(meta=self._meta(library_id, name, mime, data, digest), data=data)
        self._read(stored, name, mime)
        with self._lock:
            self._documents[library_id][stored.meta["id"]] = stored
        return 201, stored.shown()

    @staticmethod
    def _meta(library_id: str, name: str, mime: str | None, data: bytes, digest: str) -> dict:
        extension = name.rsplit(".", 1)[1].lower() if "." in name else None
        return {"id": str(uuid.uuid4()), "library_id": library_id, "hash": digest,
                "mime_type": mime if mime and mime != "application/octet-stream" else None,
                "extension": extension, "size": len(data), "name": name, "summary": None,
                "created_at": now(), "number_of_pages": None, "uploaded_by_id": None,
                "uploaded_by_type": "Workspace", "tokens_processing_main_content": None,
                "tokens_processing_summary": None, "url": None, "attributes": None, "expires_at": None,
                "tokens_processing_total": 0}

    @staticmethod
    def _read(stored: Stored, name: str, mime: str | None) -> None:
        """Read the document's text now (processing is shown to take `PROCESSING_S`)."""
        from ..money import tokens

        try:
            document = documents.load(stored.data, name, mime)
            stored.text = document.text()
            stored.meta["number_of_pages"] = document.page_count
        except RequestError:
            stored.failed = True
            return
        stored.meta["tokens_processing_total"] = tokens.count_text(stored.text)

    def documents(self, library_id: str, search: str | None = None, page: int = 0,
                  page_size: int = 100) -> dict:
        self.library(library_id)
        with self._lock:
            docs = [d.shown() for d in self._documents[library_id].values()]
        if search:
            docs = [d for d in docs if search.lower() in d["name"].lower()]
        total = len(docs)
        shown = docs[page * page_size:(page + 1) * page_size]
        pages = max(1, -(-total // page_size)) if page_size else 1
        return {"pagination": {"total_items": total, "total_pages": pages, "current_page": page,
                               "page_size": page_size, "has_more": (page + 1) * page_size < total},
                "data": shown}

    def document(self, library_id: str, document_id: str) -> dict:
        return self._stored(library_id, document_id).shown()

    def status(self, library_id: str, document_id: str) -> dict:
        stored = self._stored(library_id, document_id)
        shown = stored.shown()
        stored.seen = True
        return {"document_id": document_id, "process_status": shown["process_status"],
                "processing_status": shown["processing_status"]}

    def update_document(self, library_id: str, document_id: str, data: object) -> dict:
        req = parse(UpdateDocument, data)
        stored = self._stored(library_id, document_id)
        stored.meta.update({k: v for k, v in req.model_dump().items() if v is not None})
        return stored.shown()

    def delete_document(self, library_id: str, document_id: str) -> None:
        self._stored(library_id, document_id)
        with self._lock:
            self._documents[library_id].pop(document_id, None)

    def text(self, library_id: str, document_id: str) -> dict:
        stored = self._stored(library_id, document_id)
        if stored.status() != "done":
            raise RequestError(409, error_body(
                f"Document {document_id} is {stored.status()}: its text is ready once it is done",
                "invalid_request_error"))
        return {"text": stored.text}

    def signed_url(self, library_id: str, document_id: str, base_url: str, text: bool = False) -> str:
        stored = self._stored(library_id, document_id)
        kind = "text" if text else "document"
        if kind not in stored.file_ids:
            name = stored.meta["name"] + (".txt" if text else "")
            content = stored.text.encode() if text else stored.data
            meta = self.files.add(name, content, "ocr", "instruct", source="mistral",
                                  mimetype="text/plain" if text else stored.meta["mime_type"])
            stored.file_ids[kind] = meta["id"]
        return self.files.sign(stored.file_ids[kind], 1, base_url)["url"]

    def reprocess(self, library_id: str, document_id: str) -> None:
        stored = self._stored(library_id, document_id)
        stored.uploaded, stored.seen = time.monotonic(), False

    # -- the document_library tool -------------------------------------------------------

    def search(self, library_ids: list[str], query: str, k: int = 3) -> list[tuple[str, str]]:
        """The `k` passages nearest to `query` in the libraries' processed documents, as
        (document name, passage)."""
        import numpy as np

        found: list[tuple[str, str, float, int]] = []
        wanted = np.array(embed.vector(query, DIMENSIONS, salt="library"))
        for library_id in library_ids:
            self.library(library_id)
            with self._lock:
                docs = list(self._documents[library_id].values())
            for stored in docs:
                if stored.status() != "done":
                    continue
                passages, vectors = self._passages(stored)
                for i, score in enumerate(vectors @ wanted if len(passages) else []):
                    found.append((stored.meta["name"], passages[i], float(score), len(found)))
        found.sort(key=lambda item: (-round(item[2], 9), item[3]))
        return [(name, passage) for name, passage, _, _ in found[:k]]

    @staticmethod
    def _passages(stored: Stored):
        import numpy as np

        if stored.passages is None:
            passages, current = [], ""
            for sentence in _SENTENCE.split(stored.text):
                sentence = " ".join(sentence.split())
                if current and len(current) + len(sentence) > PASSAGE_CHARS:
                    passages.append(current)
                    current = ""
                current = f"{current} {sentence}".strip()
            if current:
                passages.append(current)
            stored.vectors = np.array([embed.vector(p, DIMENSIONS, salt="library") for p in passages]
                                      or np.zeros((0, DIMENSIONS)))
            stored.passages = passages
        return stored.passages, stored.vectors
