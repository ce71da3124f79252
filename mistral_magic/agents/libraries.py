"""Document libraries by name: create one, add files to it, list its documents, wait for them.

    %mistral library create reports                  # a new library on the backend
    %mistral library add reports a.pdf notes.docx    # documents uploaded, once by content
    %mistral library reports                         # its documents: status, pages, size
    %%mistral --library reports                      # an answer grounded in it, with citations

A library is found by its name on the backend (``client.beta.libraries``); two of the same
name are refused as ambiguous. A document is read here first (`inputs.documents`: a PDF,
DOCX, PPTX or text file) and uploaded only when the library does not hold its content yet:
its id is remembered by (backend, library, SHA-256) in memory and in the folder's store
(``store.records``), and checked on the server before it is trusted.

Processing a document is priced per use by Mistral, at no published price: each document
uploaded is a call in the ledger (kind ``library``, model ``library_document``, one use at an
unknown cost), and under a budget adding documents needs ``--allow-unpriced`` (`calls.uses`).
"""

from __future__ import annotations

import hashlib
import time

from ..errors import ConfigError

JOB = "library-documents"
SERVICE = "library_document"
WAIT_S = 0.25
COLUMNS = ["name", "id", "status", "pages", "size", "tokens", "created"]


def _key(backend_url: str | None, library_id: str, sha: str) -> str:
    return hashlib.sha256(f"{backend_url}|{library_id}|{sha}".encode()).hexdigest()


class Libraries:
    """The backend's document libraries, by name."""

    def __init__(self, session):
        self.session = session

    @property
    def api(self):
        return self.session.backend.client.beta.libraries

    def find(self, name: str):
        """The library called `name` (`ConfigError` when there is none, or several)."""
        found = [lib for lib in self.api.list(page_size=100, page=None).data or [] if lib.name == name]
        if not found:
            raise ConfigError(f"No document library named {name!r} on this backend; create it with "
                              f"%mistral library create {name}")
        if len(found) > 1:
            raise ConfigError(f"{len(found)} libraries are named {name!r}; rename one so the name "
                              "says which")
        return found[0]

    def create(self, name: str, description: str | None = None) -> tuple[object, bool]:
        """(the library `name`, whether it existed): made unless it exists, so a notebook can
        be run again."""
        try:
            return self.find(name), True
        except ConfigError as exc:
            if "No document library" not in str(exc):
                raise
        return self.api.create(name=name, description=description), False

    def add(self, name: str, paths: list[str], *, allowed: bool = False):
        """Upload each file the library does not hold yet; a frame of the library's documents."""
        from ..calls import uses
        from ..inputs.documents import document

        uses.require(self.session, [SERVICE], allowed=allowed, what="adding documents to a library")
        library = self.find(name)
        docs = [document(path) for path in paths]
        for doc in docs:
            if doc.kind == "picture":
                raise ConfigError(f"{doc.name} is a picture; a library takes PDF, DOCX, PPTX and text files")
        for doc in docs:
            self.upload(library.id, doc.name, doc.content(), doc.sha256)
        return self.frame(name)

    def upload(self, library_id: str, file_name: str, content: bytes, sha: str | None = None) -> str:
        """The library's document of this content: its id, uploaded only if it is not there yet.

        An upload is a call through `calls.call.Call`, priced per document processed: its hold,
        its ledger row (also when it fails or is interrupted) and a one-line error."""
        from ..calls import uses
        from ..calls.call import Call
        from ..errors import APIError, Interrupted

        sha = sha or hashlib.sha256(content).hexdigest()
        known = self._known(library_id, sha)
        if known is not None:
            return known
        session = self.session
        reservation = uses.reserve(session, SERVICE, 1, f"processing {file_name}")
        call = Call(session, {"model": SERVICE, "library_id": library_id, "sha256": sha}, reservation,
                    backend=session.backend.kind, kind="library", stream=False)
        call.expect_uses(SERVICE, 1)
        found: list = []
        try:
            call.sending()
            with call.recording():
                found.append(self.api.documents.upload(library_id=library_id,
                                                       file={"file_name": file_name, "content": content}))
        finally:
            answer = call.settle()
        if answer.status == "interrupted":
            raise Interrupted(f"Stopped while {file_name} was being uploaded; run the command again "
                              "to add it (files already added are not sent again)")
        if call.failure is not None:
            raise APIError(answer.error, getattr(call.failure, "status_code", None)) from call.failure
        self._remember(library_id, sha, found[0].id)
        return found[0].id

    def _known(self, library_id: str, sha: str) -> str | None:
        """A document id this backend's library was given for this content, if it still has it."""
        responses = self.session.responses
        key = _key(self.session.backend.url, library_id, sha)
        found = responses.memory.get(key)
        if found is None and responses.mode != "off":
            found = responses.guarded(lambda store: store.records.get_many(JOB, [key]), {}).get(key)
        if found is None:
            return None
        try:
            self.api.documents.get(library_id=library_id, document_id=found)
        except Exception as exc:  # SDK errors: a 404 means it was deleted, so upload again
            from ..errors import is_api_error

            if is_api_error(exc) and getattr(exc, "status_code", None) == 404:
                return None
            raise
        return found

    def _remember(self, library_id: str, sha: str, document_id: str) -> None:
        responses = self.session.responses
        key = _key(self.session.backend.url, library_id, sha)
        responses.memory.put(key, document_id)
        if responses.mode == "on":
            responses.guarded(lambda store: store.records.put(JOB, {key: document_id}), 0, write=True)

    def documents(self, library_id: str) -> list:
        return list(self.api.documents.list(library_id=library_id, page_size=100, page=None).data or [])

    def frame(self, name: str):
        """The library's documents: name, id, processing status, pages, size, tokens, created."""
        import pandas as pd

        library = self.find(name)
        rows = [{"name": d.name, "id": d.id, "status": str(d.process_status),
                 "pages": d.number_of_pages, "size": d.size,
                 "tokens": getattr(d, "tokens_processing_total", None), "created": d.created_at}
                for d in self.documents(library.id)]
        frame = pd.DataFrame(rows, columns=COLUMNS)
        return frame.astype({"pages": "Int64", "size": "Int64", "tokens": "Int64"})

    def wait(self, library_id: str, timeout_s: float) -> list:
        """Poll until every document is done (or failed); the documents not done in time."""
        deadline = time.monotonic() + timeout_s
        while True:
            pending = [d for d in self.documents(library_id) if str(d.process_status) not in ("done", "error")]
            if not pending or time.monotonic() >= deadline:
                return pending
            for document in pending:  # reading a status moves processing on (and says where it is)
                self.api.documents.status(library_id=library_id, document_id=document.id)
            time.sleep(WAIT_S)
