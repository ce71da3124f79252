"""POST /v1/ocr offline: a document's real text layer as Mistral OCR's pages, nothing recognised in pictures.

The document comes as a `document_url` (a `data:` URL, or a signed URL of a file
uploaded here; other URLs are refused, the server has no network), an uploaded
file's id (`file`), or an `image_url`. Each page's Markdown is built from the text
layer (`documents.py`): headings from font sizes, paragraphs, lists, captions,
tables (inline Markdown, or `[tbl-N.md](tbl-N.md)` / `[tbl-N.html](tbl-N.html)` with
`table_format`, which OCR 2512 and newer honour), images as `![img-N.jpeg](img-N.jpeg)`
with their boxes (and JPEG data URLs with `include_image_base64`), link annotations
and URLs as `hyperlinks`, page dimensions at 200 dpi. Headers and footers (the top
and bottom 6 % of a page) move to their fields with `extract_header`/`extract_footer`.
OCR 4 and newer return `blocks` (paragraph boxes with their labels; older models an
empty list, as the docs say). `confidence_scores` (word, block or page, as asked) say how
sure a reader could be of the text layer: 1 for body text, 0.62 for small print (under
9 pt, such as running headers, footers and fine print), 0 for a placeholder; a page's
average and minimum are taken over its words, a block's over its lines, and an image
block has no content score (null, as the spec says). A page with no text layer, and an image document, get a
placeholder paragraph saying the offline server cannot read text in pictures.

`document_annotation_format` / `bbox_annotation_format` (json_schema only) are filled
from the text by the schema, as chat's structured answers are; `usage_info` counts
the pages processed and the document's bytes. `pages` takes a list or "0,2-4".
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import random
import re
from dataclasses import dataclass

from . import catalogue, documents, instances, sources
from .documents import Document, Line, Page
from .files import FileStore
from .wire import OCRRequest, RequestError, error_body

DEFAULT_MODEL = "mistral-ocr-latest"
_BLOCKS = frozenset({"mistral-ocr-4-0", "mistral-ocr-4-1"})
_BLOCK_SCORES = frozenset({"mistral-ocr-4-1"})
_LAYOUT = frozenset({"mistral-ocr-2512", "mistral-ocr-4-0", "mistral-ocr-4-1"})  # tables, header, footer
_MARGIN = 0.06
_LIST = re.compile(r"^\s*(?:[-•*–]|\d{1,3}[.)]|[a-z][.)])\s+")
_CAPTION = re.compile(r"^(?:Figure|Fig\.|Table|Chart|Image)\s*\d+", re.I)
_SEPARATOR = re.compile(r"^:?-{2,}:?$")
_SMALL_PRINT = 9.0  # points: text smaller than this is scored as harder to read
_SMALL_SCORE = 0.62
_WORD = re.compile(r"\n+|[^\S\n]*\S+")


def placeholder(page: Page, kind: str) -> str:
    """The paragraph standing in for text the offline server cannot read."""
    if kind == "image":
        return (f"*Offline OCR (mistral_magic): this page is an image of {page.width}×{page.height} px. "
                "The offline server has no OCR model and cannot recognise text in pictures; "
                "set MISTRAL_API_KEY to run Mistral OCR.*")
    count = len(page.images)
    pictures = f" ({count} image{'s' if count != 1 else ''})" if count else ""
    where = "no text in its body" if page.lines else "no text layer"
    return (f"*Offline OCR (mistral_magic): page {page.index} has {where}{pictures}. The offline server reads "
            "a document's text layer only and cannot recognise text in scans or pictures; "
            "set MISTRAL_API_KEY to run Mistral OCR.*")


def page_numbers(spec, count: int) -> list[int]:
    """The pages a request selects ("0,2-4" or a list), in order, each once; 400 outside the document."""
    if spec is None:
        return list(range(count))
    ranges: list[tuple[int, int]] = []
    if isinstance(spec, str):
        for part in filter(None, (p.strip() for p in spec.split(","))):
            match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
            if not match:
                raise RequestError(400, error_body(
                    f"pages: {part!r} is not a page number or a range like 0-5 (pages start at 0)",
                    "invalid_request_error", param="pages"))
            ranges.append((int(match.group(1)), int(match.group(2) or match.group(1))))
    else:
        ranges = [(n, n) for n in spec]
    # Checked against the document before any range is listed: "0-999999999" is one check.
    outside = [high for low, high in ranges if high >= count and high >= low]
    if outside:
        raise RequestError(400, error_body(
            f"pages: page {outside[0]} is outside the document, which has {count} page"
            f"{'s' if count != 1 else ''} (numbered from 0)", "invalid_request_error", param="pages"))
    return list(dict.fromkeys(n for low, high in ranges for n in range(low, high + 1)))


@dataclass
class _Block:
    kind: str  # title | text | list | caption | table | image | header | footer
    lines: list[Line]
    level: int = 1
    image: int | None = None  # index into the page's images

    @property
    def box(self) -> tuple[int, int, int, int]:
        boxes = [line.box for line in self.lines if line.box]
        if not boxes:
            return (0, 0, 1, 1)
        return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))


def _levels(pages: list[Page], body: float) -> dict[float, int]:
    sizes = sorted({line.size for page in pages for line in page.lines if line.size >= body * 1.25}, reverse=True)
    return {size: min(i + 1, 3) for i, size in enumerate(sizes)}


def _kind(line: Line, page: Page, levels: dict[float, int]) -> str:
    if line.box:
        if line.box[3] <= page.height * _MARGIN:
            return "header"
        if line.box[1] >= page.height * (1 - _MARGIN):
            return "footer"
    if line.text.startswith("# "):
        return "title"
    if line.size in levels:
        return "title"
    if len(line.cells) > 1:
        return "table"
    if _LIST.match(line.text):
        return "list"
    if _CAPTION.match(line.text):
        return "caption"
    return "text"


def _blocks(page: Page, levels: dict[float, int], body: float) -> list[_Block]:
    """The page's lines and images grouped into labelled blocks, in reading order (top to bottom)."""
    blocks: list[_Block] = []
    previous: Line | None = None
    for line in page.lines:
        if not line.text.strip():
            previous = None
            continue
        kind = _kind(line, page, levels)
        last = blocks[-1] if blocks else None
        near = previous is not None and (
            line.box is None or previous.box is None or line.box[1] - previous.box[3] < line.size * 200 / 72 * 0.9)
        joins = last is not None and near and last.kind == kind and kind in ("text", "list", "table", "header", "footer")
        if kind == "table" and joins and len(line.cells) != len(last.lines[-1].cells):
            joins = False
        if joins:
            last.lines.append(line)
        else:
            blocks.append(_Block(kind, [line], levels.get(line.size, 1)))
        previous = line
    # A lone table row is text, not a table.
    for block in blocks:
        if block.kind == "table" and len(block.lines) < 2:
            block.kind = "text"
    for index, image in enumerate(page.images):
        blocks.append(_Block("image", [Line("", box=image.box)], image=index))
    order = {id(b): i for i, b in enumerate(blocks)}
    return sorted(blocks, key=lambda b: (b.box[1], order[id(b)]))


def _table_rows(block: _Block) -> list[list[str]]:
    rows = [line.cells for line in block.lines]
    return [row for row in rows if not all(_SEPARATOR.match(c.replace(" ", "")) for c in row if c)]


def table_markdown(rows: list[list[str]]) -> str:
    width = max(len(r) for r in rows)
    rows = [r + [""] * (width - len(r)) for r in rows]
    cell = lambda c: c.replace("|", "\\|")  # noqa: E731
    out = ["| " + " | ".join(cell(c) for c in rows[0]) + " |", "|" + "---|" * width]
    out += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows[1:]]
    return "\n".join(out)


def table_html(rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return f"<table><tr>{head}</tr>{body}</table>"


def _text_of(block: _Block) -> str:
    if block.kind == "title":
        return "\n".join(line.text.removeprefix("# ") for line in block.lines)
    return "\n".join(line.text for line in block.lines)


class _Builder:
    """Builds OCRPageObjects for one request, numbering images and tables over the document."""

    def __init__(self, req: OCRRequest, model: catalogue.Model, doc: Document, pages: list[Page]):
        self.req = req
        self.model = model
        self.doc = doc
        self.body = documents.body_size(pages)
        self.levels = _levels(pages, self.body)
        self.images = 0
        self.tables = 0
        self.layout = model.id in _LAYOUT
        self.rng = random.Random(int.from_bytes(hashlib.sha256(doc.name.encode() + str(doc.size).encode()).digest()[:8], "big"))

    def page(self, page: Page) -> dict:
        req = self.req
        blocks = _blocks(page, self.levels, self.body)
        parts: list[tuple[str, float | None]] = []  # Markdown, and the score of its words
        images: list[dict] = []
        tables: list[dict] = []
        self.table_scores: list[float | None] = []  # the score of each table's words
        header = [b for b in blocks if b.kind == "header"]
        footer = [b for b in blocks if b.kind == "footer"]
        out_blocks: list[dict] = []
        for block in blocks:
            text, entry = self._render(block, page, images, tables)
            hidden = (block.kind == "header" and req.extract_header and self.layout) or (
                block.kind == "footer" and req.extract_footer and self.layout)
            if text is not None and not hidden:
                parts.append((text, _score(block)))
            if entry is not None:
                out_blocks.append(entry)
        has_text = any(b.kind not in ("image", "header", "footer") for b in blocks)
        if not has_text:
            parts.append((placeholder(page, self.doc.kind), 0.0))
        markdown = "\n\n".join(text for text, _ in parts)
        result = {
            "index": page.index,
            "markdown": markdown,
            "images": images,
            "tables": tables,
            "hyperlinks": list(page.links),
            "header": "\n".join(_text_of(b) for b in header) if req.extract_header and self.layout and header else None,
            "footer": "\n".join(_text_of(b) for b in footer) if req.extract_footer and self.layout and footer else None,
            "dimensions": {"dpi": page.dpi, "height": page.height, "width": page.width},
        }
        if req.include_blocks:
            result["blocks"] = out_blocks if self.model.id in _BLOCKS else []
        if req.confidence_scores_granularity:
            result["confidence_scores"] = self._page_scores(_words_of(parts))
            if req.confidence_scores_granularity == "word":
                for table, score in zip(tables, self.table_scores, strict=True):
                    table["word_confidence_scores"] = _words_of([(table["content"], score)])
        return result

    def _render(self, block: _Block, page: Page, images: list, tables: list) -> tuple[str | None, dict | None]:
        req = self.req
        box = block.box
        corners = {"top_left_x": box[0], "top_left_y": box[1], "bottom_right_x": box[2], "bottom_right_y": box[3]}
        if block.kind == "image":
            image = page.images[block.image]
            small = req.image_min_size and min(box[2] - box[0], box[3] - box[1]) < req.image_min_size
            if small or (req.image_limit is not None and self.images >= req.image_limit):
                return None, None
            name = f"img-{self.images}.jpeg"
            self.images += 1
            encoded = None
            if req.include_image_base64 and image.jpeg:
                encoded = "data:image/jpeg;base64," + base64.b64encode(image.jpeg).decode()
            images.append({"id": name, **corners, "image_base64": encoded,
                           "image_annotation": self._bbox_annotation(page, block)})
            return f"![{name}]({name})", {"type": "image", **corners, "content": "", "image_id": name,
                                           **self._block_scores(None)}
        if block.kind == "table":
            rows = _table_rows(block)
            fmt = req.table_format if self.layout else None
            if rows and fmt:
                ext = "md" if fmt == "markdown" else "html"
                name = f"tbl-{self.tables}.{ext}"
                self.tables += 1
                content = table_markdown(rows) if fmt == "markdown" else table_html(rows)
                tables.append({"id": name, "content": content, "format": fmt})
                self.table_scores.append(_score(block))
                text = f"[{name}]({name})"
            else:
                text = table_markdown(rows) if rows else _text_of(block)
            entry = {"type": "table", **corners, "content": table_markdown(rows) if rows else _text_of(block)}
            if fmt and rows:
                entry["table_id"] = name
            return text, {**entry, **self._block_scores(block)}
        content = _text_of(block)
        if block.kind == "title":
            text = "#" * block.level + " " + content.replace("\n", " ")
        elif block.kind == "list":
            text = "\n".join(line.text if _LIST.match(line.text) else "- " + line.text for line in block.lines)
        else:
            text = content
        return text, {"type": block.kind, **corners, "content": content, **self._block_scores(block)}

    def _block_scores(self, block: _Block | None) -> dict:
        if self.req.confidence_scores_granularity != "block" or self.model.id not in _BLOCK_SCORES:
            return {}
        if block is None:  # an image: no text to be sure of
            return {"confidence_scores": {"average_content_confidence_score": None,
                                          "minimum_content_confidence_score": None,
                                          "block_type_confidence_score": 1.0}}
        lines = [line for line in block.lines if line.text.strip()] or block.lines
        weights = [max(1, len(line.text.split())) for line in lines]
        average = sum(_line_score(line) * w for line, w in zip(lines, weights, strict=True)) / sum(weights)
        return {"confidence_scores": {"average_content_confidence_score": round(average, 4),
                                      "minimum_content_confidence_score": min(map(_line_score, lines)),
                                      "block_type_confidence_score": 1.0}}

    def _page_scores(self, words: list[dict]) -> dict:
        scored = [w["confidence"] for w in words if w["text"].strip()] or [0.0]
        scores = {"average_page_confidence_score": round(sum(scored) / len(scored), 4),
                  "minimum_page_confidence_score": min(scored)}
        if self.req.confidence_scores_granularity == "word":
            scores["word_confidence_scores"] = words
        return scores

    def _bbox_annotation(self, page: Page, block: _Block) -> str | None:
        fmt = self.req.bbox_annotation_format
        if fmt is None:
            return None
        # The nearest caption, else the page's text: all the offline server knows about a picture.
        below = [line.text for line in page.lines if line.box and line.box[1] >= block.box[3] and _CAPTION.match(line.text)]
        text = below[0] if below else page.text
        text = text or f"an image of {block.box[2] - block.box[0]}×{block.box[3] - block.box[1]} px (offline: not seen)"
        return _annotation(fmt, text, self.rng)


def _line_score(line: Line) -> float:
    return _SMALL_SCORE if line.size < _SMALL_PRINT else 1.0


def _score(block: _Block) -> float | None:
    """The score of a block's words: its smallest print's (None for an image)."""
    if block.kind == "image":
        return None
    return min(_line_score(line) for line in block.lines)


def _words_of(parts: list[tuple[str, float | None]]) -> list[dict]:
    """Word scores over the parts joined as the page's Markdown joins them ("\n\n"), each
    word scored as its part; an image's link is no text read, so it has no scores."""
    words, offset = [], 0
    for i, (text, score) in enumerate(parts):
        if i:
            words.append({"text": "\n\n", "confidence": 1.0, "start_index": offset})
            offset += 2
        if score is not None:
            words += [{"text": m.group(0), "confidence": score, "start_index": offset + m.start()}
                      for m in _WORD.finditer(text)]
        offset += len(text)
    return words


def _annotation(fmt, text: str, rng: random.Random) -> str:
    value, _ = instances.fill(fmt.json_schema.schema_, text, rng)
    return json.dumps(value, ensure_ascii=False)


def _check_formats(req: OCRRequest) -> None:
    for name in ("document_annotation_format", "bbox_annotation_format"):
        fmt = getattr(req, name)
        if fmt is not None and (fmt.type != "json_schema" or fmt.json_schema is None):
            raise RequestError(400, error_body(
                f"{name}: only a json_schema response format is accepted here (got {fmt.type})",
                "invalid_request_error", param=name))
    if req.document_annotation_prompt and req.document_annotation_format is None:
        raise RequestError(400, error_body(
            "document_annotation_prompt needs a document_annotation_format to fill",
            "invalid_request_error", param="document_annotation_prompt"))


def process(req: OCRRequest, files: FileStore) -> dict:
    """The OCRResponse for a validated request."""
    name = req.model or DEFAULT_MODEL
    model = catalogue.find(name)
    if model is None or not model.can("ocr"):
        raise RequestError(400, error_body(sources.invalid_model(name, "ocr"), "invalid_model", "1500"))
    _check_formats(req)
    doc = sources.document(req.document, files)
    if doc.page_count > documents.MAX_PAGES:
        raise RequestError(400, error_body(
            f"{doc.name} has more than {documents.MAX_PAGES} pages; OCR takes documents of at most "
            f"{documents.MAX_PAGES} pages",
            "invalid_request_error", param="document"))
    numbers = page_numbers(req.pages, doc.page_count)
    pages = [doc.page(n) for n in numbers]
    builder = _Builder(req, model, doc, pages)
    objects = [builder.page(page) for page in pages]
    annotation = None
    if req.document_annotation_format is not None:
        text = "\n\n".join(page.text for page in pages)
        if req.document_annotation_prompt:
            text = f"{req.document_annotation_prompt}:\n{text}"
        annotation = _annotation(req.document_annotation_format, text, builder.rng)
    return {"pages": objects, "model": model.id, "document_annotation": annotation,
            "usage_info": {"pages_processed": len(pages), "doc_size_bytes": doc.size}}
