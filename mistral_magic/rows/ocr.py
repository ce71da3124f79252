"""OCR: documents and pictures read into Markdown, tables and typed fields, in a cell or a column.

    %mistral ocr invoice.pdf                       # the pages as Markdown, safely rendered
    %mistral ocr scan.png --pages 0 -o scan        # the result kept as `scan` (an `OCRResult`)
    %mistral ocr invoice.pdf --schema "number, customer, total float" -o inv   # typed one-row frame
    %mistral ocr report.pdf --tables -o tables     # the pages' tables as DataFrames
    %mistral ocr report.pdf --blocks -o layout     # blocks: page, type, x0, y0, x1, y1, content
    %mistral ocr scan.pdf --confidence word        # low-confidence words marked for review
    %mistral ocr report.pdf --tables html --no-header --no-footer
    invoices = df.mistral.ocr("path", schema="number, customer, total float")  # row-wise

- The source is a path (a PDF, DOCX, PPTX or a picture), the file's bytes, or an
  http(s) URL (read by the server; nothing is downloaded here). A file goes up through
  the Files API once per content (`uploads`) and is sent by a signed URL.
- ``--pages`` takes ``0-2`` or ``0,3,5-7`` (pages count from 0). ``--schema`` (the
  extraction DSL, a pydantic model or a JSON Schema) asks for a document annotation,
  read into a one-row DataFrame typed as `df.mistral.extract` types its columns.
- OCR is priced per page (``per_page`` in `prices.json`, ``per_annotated_page`` with
  a schema). The budget holds only pages counted here from the content (a PDF's page
  tree, a deck's slides, one for a picture), never a number the file states about
  itself, and under a budget the request's ``pages`` names exactly the pages held, so
  the server cannot read (nor charge) more. A Word document's or a text file's pages
  are laid out by the server and a URL's are unknown: under a budget they need
  ``--pages``. Page ranges are checked against the document (or the API's 1,000-page
  limit) before any page is listed. The footer and the ledger show pages, not tokens.
- Page Markdown is the server's text: it goes through `render` like any answer
  (images in it become links, never fetched). Blocks, confidence scores, table formats
  and headers/footers (`PageOptions`) are `ocr_pages`'s; an HTML table is sanitised there.
- `df.mistral.ocr(column, schema=..., root=...)` runs through the row engine (`engine`):
  the column holds paths, URLs or bytes; its paths are data, read only inside `root`
  (the working directory by default; `inputs.paths`); without a schema each row gets
  ``text`` (every page's Markdown, tables in place) and ``pages``, plus ``blocks`` (a
  DataFrame per row), ``confidence``, ``min_confidence`` and ``low_words`` when asked;
  ``batch=True`` sends the rows as a Batch API job of ``/v1/ocr`` lines (their URLs
  signed for a day).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import BudgetExceeded, ConfigError, Interrupted, ReplayMiss, StructuredOutputError
from . import ocr_pages
from .job import FileRowJob, Reply, RowRefused
from .ocr_pages import PageOptions

DEFAULT_MODEL = "mistral-ocr-latest"
MAX_PAGES = 1000  # the most pages the hosted OCR API reads of one document
_PAGES = re.compile(r"\s*\d+\s*(?:-\s*\d+\s*)?(?:,\s*\d+\s*(?:-\s*\d+\s*)?)*")
# Why a source's pages cannot be counted before it is read, by kind.
_UNCOUNTED = {"url": "a URL, read by the server", "docx": "a Word document, whose pages the "
              "server lays out", "text": "a text file, whose pages the server lays out"}

Ranges = list[tuple[int, int]]


def parse_pages(text: str | list[int] | None) -> Ranges | None:
    """``"0-2"`` / ``"0,3,5-7"`` (or a list of numbers) as (first, last) ranges, checked for
    form only: pages are listed by `pick`, once the document's count is known."""
    if text is None:
        return None
    if isinstance(text, (list, tuple)):
        # An empty list may mean "every page" to a server: never a bound.
        if not text or not all(isinstance(p, int) and not isinstance(p, bool) and p >= 0
                               for p in text):
            raise ConfigError(f"pages {text!r}: name at least one page, by numbers from 0, e.g. "
                              "[0, 1, 2] or '0-2'")
        return [(p, p) for p in text]
    if not _PAGES.fullmatch(str(text)):
        raise ConfigError(f"pages {text!r}: give page numbers from 0, e.g. 0-2 or 0,3,5-7")
    ranges = []
    for part in str(text).split(","):
        low, _, high = part.partition("-")
        first, last = int(low), int(high or low)
        if last < first:
            raise ConfigError(f"pages {text!r}: {part.strip()} runs backwards; write {last}-{first}")
        ranges.append((first, last))
    return ranges


def pick(ranges: Ranges, count: int | None, name: str) -> list[int]:
    """The sorted pages `ranges` name, checked against the document's `count` pages (or the
    API's `MAX_PAGES` when it is not known) before a single one is listed."""
    top = max((last for _, last in ranges), default=-1)
    if count is not None and top >= count:
        raise ConfigError(f"{name} has {count} page{'' if count == 1 else 's'} "
                          f"(0-{count - 1}); page {top} is not one of them")
    if top >= MAX_PAGES:
        raise ConfigError(f"page {top} of {name}: OCR reads at most {MAX_PAGES:,} pages of a "
                          f"document (0-{MAX_PAGES - 1}); give pages within them")
    return sorted({page for first, last in ranges for page in range(first, last + 1)})


@dataclass
class Source:
    """What one OCR request reads: its document chunk (a reference or a URL) and its pages."""

    name: str
    chunk: dict
    pages: int | None  # pages read, when they can be known before sending
    selection: list[int] | None = None  # the request's ``pages``: what the server may read
    kind: str = "url"  # a `documents.Document` kind, or "url"


def source(session, value: Any, name: str | None = None, pages: Ranges | None = None, *,
           root=None) -> Source:
    """The OCR source `value` names (see the module's doc); `ConfigError` saying why not.

    `root`: `value` came from data, so a path must be a file inside this folder
    (`inputs.paths`). Under a budget the source's ``pages`` name every page held, so a
    server that counts more pages than were counted here cannot read (nor charge) more.
    """
    from ..inputs.documents import PICTURE_EXTENSIONS, document
    from ..inputs.paths import confined

    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        ext = value.split("?", 1)[0].rsplit(".", 1)[-1].lower()
        chunk = ({"type": "image_url", "image_url": value} if ext in PICTURE_EXTENSIONS
                 else {"type": "document_url", "document_url": value})
        chosen = None if pages is None else pick(pages, None, name or value)
        return Source(name or value, chunk, None if chosen is None else len(chosen), chosen)
    if not isinstance(value, (str, os.PathLike, bytes, bytearray, memoryview)):
        raise ConfigError(f"{name or 'the source'} is a {type(value).__name__}; give a file path, "
                          "an http(s) URL or the file's bytes")
    strict = root is not None
    if strict and isinstance(value, (str, os.PathLike)):
        value = confined(value, root, f"the path {os.fspath(value)!r}", "ocr")
    doc = session.uploads.add(document(value, name, pictures=True, strict=strict))
    if doc.pages == 0:  # nothing to bound the server by: it may find pages where none were
        raise ConfigError(f"{doc.name} has no pages that could be counted here; check the file, "
                          "or save it again")
    chosen = None if pages is None else pick(pages, doc.pages, doc.name)
    if chosen is None and doc.pages is not None and session.budget.limit_usd is not None:
        chosen = list(range(doc.pages))
    return Source(doc.name, doc.chunk(), doc.pages if chosen is None else len(chosen), chosen,
                  doc.kind)


def ocr_request(model: str, src: Source, spec=None, options: PageOptions | None = None) -> dict:
    """The ``/v1/ocr`` body (its document a reference until `uploads` signs it)."""
    request: dict[str, Any] = {"model": model, "document": src.chunk, "include_image_base64": False}
    if src.selection is not None:
        request["pages"] = src.selection
    if spec is not None:
        request["document_annotation_format"] = spec.response_format()
    request.update(options.fields() if options else {})
    return request


def worst_cost(session, model: str, src: Source, annotated: bool, what: str) -> float | None:
    """The call's price at most; refuses (under a budget) a source whose pages are unknown."""
    if src.pages is None:
        if session.budget.limit_usd is not None:
            raise BudgetExceeded(
                f"Refused: the pages of {what} are not known before it is read "
                f"({_UNCOUNTED.get(src.kind, src.kind)}), so its cost cannot be held under "
                "MistralMagics.budget_usd; give --pages (pages=...) to bound what is read"
                + (", or pass the downloaded file" if src.kind == "url" else ""))
        return None
    return session.prices.page_cost(model, src.pages, annotated=annotated)


# -- one document in a cell ------------------------------------------------------------------


@dataclass
class OCRResult:
    """What `%mistral ocr` read: each page's Markdown (tables in place), the annotation, the
    call's `Answer`, and the pages as the server sent them (`raw`: blocks, scores, headers)."""

    name: str
    pages: list[str]
    indices: list[int]
    annotation: str | None = None
    answer: Any = None
    footer: str = ""
    raw: list[dict] = field(default_factory=list)
    options: PageOptions = field(default_factory=PageOptions)

    @property
    def text(self) -> str:
        """Every page's Markdown, one after another."""
        return "\n\n".join(self.pages)

    def markdown(self) -> str:
        return "\n\n".join(f"**{self.name} · page {i}**\n\n{page}"
                           for i, page in zip(self.indices, self.pages, strict=True))

    def tables(self) -> list:
        """The pages' tables as DataFrames, in reading order (Markdown or HTML tables)."""
        return ocr_pages.table_frames(self.raw)

    def blocks(self):
        """The pages' layout blocks: page, type, x0, y0, x1, y1, content (`ocr_pages`)."""
        return ocr_pages.blocks_frame(self.raw, self.options.confidence == "block")

    def scores(self):
        """The confidence scores at the granularity asked for (`ocr_pages.scores_frame`)."""
        return ocr_pages.scores_frame(self.raw, self.options.confidence)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        from ..show import render

        parts: list[tuple[str, str]] = []
        for i, page in zip(self.indices, self.raw, strict=True):
            note = ocr_pages.review_note(page, self.options)
            parts.append(("markdown", f"**{self.name} · page {i}**" + (f" · *{note}*" if note else "")))
            parts += ocr_pages.page_parts(page, self.options)
        plain = "\n\n".join(f"{self.name} · page {i}\n\n{ocr_pages.page_plain(p)}"
                             for i, p in zip(self.indices, self.raw, strict=True))
        return render.document(parts, self.footer, plain=plain)


def read(session, value: Any, name: str, *, pages: str | None = None, schema: Any = None,
         model: str | None = None, options: PageOptions | None = None) -> OCRResult:
    """Read one document (`%mistral ocr`): reserve its pages, send, settle in the ledger."""
    from ..calls.call import Call

    if session.responses.mode == "replay":
        raise ReplayMiss("%mistral ocr is not kept in the response cache, and MistralMagics.cache "
                         "is 'replay', which never sends; read documents with df.mistral.ocr "
                         "(its rows are kept), or set %config MistralMagics.cache = 'on'")
    model = model or DEFAULT_MODEL
    session.capabilities.check(model)
    spec = _spec(session, schema)
    src = source(session, value, None if isinstance(value, (str, os.PathLike)) else name,
                 parse_pages(pages))
    session.capabilities.require(model, "ocr")
    options = options or PageOptions()
    options.check(model, session.prices)
    annotated = spec is not None
    request = ocr_request(model, src, spec, options)
    worst = worst_cost(session, model, src, annotated, src.name)
    counted = "pages not known" if src.pages is None else \
        f"{src.pages} page{'' if src.pages == 1 else 's'}"
    reservation = session.budget.reserve_total(
        worst, f"reading {src.name} ({counted})", model=model, running=True,
        fix="read fewer pages with --pages")
    try:
        backend = session.backend
    except BaseException:
        reservation.release()
        raise
    call = Call(session, request, reservation, backend=backend.kind, kind="ocr", stream=False)
    call.expect_pages(src.pages, annotated)
    body: dict | None = None
    try:
        args = session.uploads.resolve(call.request, backend)
        call.sending()
        with call.recording():
            body = backend.client.ocr.process(**args).model_dump(mode="json")
            call.take_pages(int((body.get("usage_info") or {}).get("pages_processed") or 0),
                            annotated)
    finally:
        answer = call.settle()
    session.last = answer
    session._raise(call.failure, answer)
    if body is None:
        raise Interrupted(f"Stopped reading {src.name}; its pages, if the server read any, are "
                          "in the ledger. Run the cell again to read it")
    pages_ = body.get("pages") or []
    return OCRResult(
        src.name, [ocr_pages.page_text(p) for p in pages_],
        [p.get("index", i) for i, p in enumerate(pages_)],
        body.get("document_annotation"), answer, session.footer(answer), pages_, options,
    )


def annotation_frame(result: OCRResult, schema: Any, session):
    """The document annotation as a one-row DataFrame typed by the schema."""
    spec = _spec(session, schema)
    if result.annotation is None:
        raise StructuredOutputError(f"the server sent no document annotation for {result.name}")
    return spec.to_frame(spec.parse(result.annotation)[:1])


def _spec(session, schema: Any):
    from ..structured.schema import SchemaSpec

    return None if schema is None else SchemaSpec.from_spec(schema, session.shell.user_ns)


# -- a column of documents -------------------------------------------------------------------


class OCRJob(FileRowJob):
    """`df.mistral.ocr`'s rows: each reads one document (a path, URL or bytes)."""

    kind, verb = "ocr", "Reading"
    batch_endpoint = "/v1/ocr"
    per_page = True

    def __init__(self, session, df, column: str, schema: Any = None, *, model: str | None = None,
                 pages: str | list[int] | None = None, root=None, options: PageOptions | None = None):
        from ..inputs.paths import root_folder

        if column not in df.columns:
            raise ConfigError(f"{column!r} is not a column of the frame "
                              f"({', '.join(str(c) for c in df.columns)}); name the column of paths")
        self.spec = _spec(session, schema)
        self.annotated = self.spec is not None
        self.options = options or PageOptions()
        if self.annotated and (self.options.blocks or self.options.confidence):
            raise ConfigError("df.mistral.ocr takes a schema, or blocks=/confidence=, not both: "
                              "the schema's fields are the row's columns")
        self.selection = parse_pages(pages)
        self.root = root_folder(root)  # the column's paths are data: read only inside it
        super().__init__(session, df, column, model=model or DEFAULT_MODEL)
        session.capabilities.require(self.model, "ocr")
        self.options.check(self.model, session.prices)

    def request(self, value: Any) -> dict:
        try:
            src = source(self.session, value, None, self.selection, root=self.root)
        except ConfigError as exc:
            raise RowRefused(str(exc)) from None
        return ocr_request(self.model, src, self.spec, self.options)

    def _pages(self, request: dict) -> int | None:
        """The pages a request reads: those it picks, else its document's (None: a URL's)."""
        from ..inputs.documents import sha_of

        if "pages" in request:  # under a budget every counted document names its pages
            return len(request["pages"])
        chunk = request["document"]
        sha = sha_of(chunk.get("document_url") or chunk.get("image_url"))
        return None if sha is None else self.session.uploads.get(sha).pages

    def estimate(self, request: dict, batch: bool = False):
        from ..calls.estimates import Estimate

        pages = self._pages(request)
        cost = (None if pages is None
                else self.session.prices.page_cost(self.model, pages, batch, self.annotated))
        if pages is None and self.session.budget.limit_usd is not None:
            kind = self._kind(request)
            raise BudgetExceeded(
                f"Refused: a row's document is {_UNCOUNTED.get(kind, kind)}, so its pages are "
                "not known before it is read and its cost cannot be held under "
                "MistralMagics.budget_usd; pass pages=... to bound what each row reads")
        return Estimate(0, 0, cost, cost, self.model, batch, pages)

    def _kind(self, request: dict) -> str:
        """The kind of document a request reads ("url" when it is not one of ours)."""
        from ..inputs.documents import sha_of

        chunk = request["document"]
        sha = sha_of(chunk.get("document_url") or chunk.get("image_url"))
        return "url" if sha is None else self.session.uploads.get(sha).kind

    async def send(self, client, request: dict, retries) -> Reply:
        sent = await self.session.uploads.resolve_async(request, self.session.backend)
        response = await client.ocr.process_async(**sent, retries=retries)
        return self.batch_reply(response.model_dump(mode="json"))

    def batch_sent(self, body: dict) -> dict:
        from ..inputs.uploads import BATCH_SIGN_HOURS

        # Signed for a day, as a job may run that long; the job is keyed by the reference.
        return self.session.uploads.resolve(body, self.session.backend, BATCH_SIGN_HOURS)

    def batch_reply(self, body: dict) -> Reply:
        return Reply([self._value(body)], 0, 0,
                     pages=int((body.get("usage_info") or {}).get("pages_processed") or 0))

    def _value(self, body: dict):
        """What `parse` takes from an OCR response body: the annotation, or the pages' text."""
        if self.annotated:
            return body.get("document_annotation")
        pages = body.get("pages") or []
        return {"text": "\n\n".join(ocr_pages.page_text(p) for p in pages), "pages": len(pages),
                **ocr_pages.row_values(pages, self.options)}

    def parse(self, value) -> dict:
        if self.spec is None:
            if not isinstance(value, dict) or "text" not in value:
                raise StructuredOutputError("the server sent an OCR result without pages")
            return value
        if not isinstance(value, str):
            raise StructuredOutputError("the server sent no document annotation")
        return self.spec.parse(value)[0]

    def frame(self, records, index):
        import pandas as pd

        if self.spec is not None:
            return self.spec.to_frame(records, index=index)
        return pd.DataFrame({
            "text": pd.Series([r["text"] if r else None for r in records], index=index,
                              dtype=object),
            "pages": pd.Series([r["pages"] if r else None for r in records], index=index,
                               dtype="Int64"),
            **ocr_pages.row_columns(records, index, self.options),
        })
