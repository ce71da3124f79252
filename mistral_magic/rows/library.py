"""``df.mistral.to_library(NAME, column)``: a column of texts or files into a document library.

    notes.mistral.to_library("course", "text")                 # each text one document
    papers.mistral.to_library("course", "path", root="pdfs")   # each file one document

Each row is one document, uploaded through the row engine (`engine`): concurrency, the
rate limiter, a progress bar, a clean interrupt that says how many rows are done, and
resume: a row is keyed by its library and its content's SHA-256, so running the same
call again uploads only the rest (and two rows of the same content upload it once).

A value is a file when it is a `pathlib.Path`, or a one-line string ending in a document's
extension (``.pdf``, ``.docx``, ``.pptx``, ``.txt``, ``.md``, ...); anything else is text,
uploaded as ``row-<index>.txt``. ``kind="text"`` or ``kind="path"`` says which for every
row. A path is data: it is read only inside `root` (the working directory by default;
`inputs.paths`), and what the file is comes from its bytes. A refused row is not sent and
its ``_error`` says why.

The result is aligned to the frame's index: ``document_id``, ``document`` (its name),
``status`` (processing, as the upload answered) and ``_error``. Processing a document is
priced per use, at no published price: each upload is a ledger row at an unknown cost, and
under a budget the call needs ``allow_unpriced=True`` (`calls.uses`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .job import Reply, RowJob, RowRefused

SERVICE = "library_document"
KINDS = ("auto", "text", "path")


class LibraryJob(RowJob):
    """`df.mistral.to_library`'s rows: each uploads one document (see the module's doc)."""

    kind, verb = "library", "Adding"
    batch_endpoint = None
    per_use = SERVICE

    def __init__(self, session, df, name: str, column: str, *, kind: str = "auto", root=None,
                 allow_unpriced: bool = False):
        from ..agents.libraries import Libraries
        from ..calls import uses
        from ..inputs.paths import root_folder

        if column not in df.columns:
            raise ConfigError(f"{column!r} is not a column of the frame "
                              f"({', '.join(str(c) for c in df.columns)}); name the column of texts or paths")
        if kind not in KINDS:
            raise ConfigError(f"kind={kind!r}: give 'auto', 'text' or 'path'")
        uses.require(session, [SERVICE], allowed=allow_unpriced or session.settings.allow_unpriced,
                     what="adding rows to a library")
        self.shelf = Libraries(session)
        self.library = self.shelf.find(name)
        self.value_kind = kind
        self.root = root_folder(root)  # the column's paths are data: read only inside it
        self.documents: dict[str, Any] = {}  # sha256 -> the document to upload (read once)
        self._built: dict[int, dict | None] = {}
        super().__init__(session, df, column, model=SERVICE)

    def _texts(self, prompt: str) -> list:
        return [None if self._missing(i, [prompt], {prompt: v}) else v
                for i, v in enumerate(self.df[prompt])]

    def _request(self, i: int, value: Any) -> dict | None:
        """Row `i`'s request, its document read once (None, with its `_error`, when refused)."""
        if i not in self._built:
            try:
                self._built[i] = self._document_request(i, value)
            except RowRefused as exc:
                self.errors[i] = str(exc)
                self.refused_rows.add(i)
                self._built[i] = None
        return self._built[i]

    def _document_request(self, i: int, value: Any) -> dict:
        from ..inputs.documents import document
        from ..inputs.paths import confined

        try:
            if self._is_path(value):
                path = confined(value, self.root, f"the path {os.fspath(value)!r}", "to_library")
                doc = document(path, strict=True)
            else:
                doc = document(str(value).encode(), f"row-{self.df.index[i]}.txt")
        except ConfigError as exc:
            raise RowRefused(str(exc)) from None
        if doc.kind == "picture":
            raise RowRefused(f"{doc.name} is a picture; a library takes PDF, DOCX, PPTX and text files")
        self.documents[doc.sha256] = doc
        return {"model": SERVICE, "library_id": self.library.id, "sha256": doc.sha256, "name": doc.name}

    def _is_path(self, value: Any) -> bool:
        from ..inputs.documents import MIMES, TEXT_EXTENSIONS

        if self.value_kind != "auto":
            return self.value_kind == "path"
        if isinstance(value, os.PathLike):
            return True
        text = str(value)
        suffix = Path(text).suffix.lower().lstrip(".")
        return "\n" not in text and len(text) < 4096 and (suffix in MIMES or suffix in TEXT_EXTENSIONS)

    def estimate(self, request: dict, batch: bool = False):
        from ..calls.estimates import Estimate

        cost = self.session.prices.use_cost(SERVICE, 1)
        return Estimate(0, 0, cost, cost, SERVICE, batch)

    async def send(self, client, request: dict, retries) -> Reply:
        doc = self.documents[request["sha256"]]
        uploaded = await client.beta.libraries.documents.upload_async(
            library_id=request["library_id"], file={"file_name": doc.name, "content": doc.content()},
            retries=retries)
        self.shelf._remember(request["library_id"], request["sha256"], uploaded.id)
        return Reply([{"document_id": uploaded.id, "document": uploaded.name,
                       "status": str(uploaded.process_status)}], 0, 0)

    def parse(self, value) -> dict:
        return value

    def frame(self, records, index):
        import pandas as pd

        return pd.DataFrame({
            name: pd.Series([r[name] if r else None for r in records], index=index, dtype=object)
            for name in ("document_id", "document", "status")})

