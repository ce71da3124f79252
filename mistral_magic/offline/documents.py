"""Documents read the offline way: a PDF's real text layer, Office XML, plain text, images.

`load(data, name, mime)` returns a `Document` whose pages are laid out lazily as
`Page`s: lines of text with their boxes (pixels at `DPI`), font sizes and table
cells, and the page's images with their boxes. PDFs are read with pypdf (text runs
with their positions, image placements from the content stream, link annotations);
DOCX and PPTX with the standard library (their XML); text formats are decoded and
paginated; an image is one page with no text. Nothing is recognised in pictures:
the offline server has no OCR model, and callers say so where text is missing.

Inputs that would explode are refused before they do: a document past
`MAX_DOCUMENT_BYTES` (the hosted OCR limit), and Office XML whose parts would inflate
past `MAX_INFLATED` (a zip bomb), get 413 in the API's error shape; layout stops after
`MAX_PAGES` + 1 pages; whatever a reader raises on a damaged file is a 400 saying so.
"""

from __future__ import annotations

import collections
import csv
import hashlib
import io
import math
import re
import threading
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from xml.etree import ElementTree

from .wire import RequestError, error_body

DPI = 200
LETTER = (8.5, 11.0)  # inches: the page of documents that have no page size of their own
TEXT_LINES_PER_PAGE = 60
MAX_PAGES = 1000  # the hosted OCR API's limit
MAX_DOCUMENT_BYTES = 50 * 1024 * 1024  # the hosted OCR API's limit for one document
MAX_INFLATED = 32 * 1024 * 1024  # the XML of a DOCX or PPTX (a long book is about 10 MB)
_TEXT_MIMES = ("text/", "application/json", "application/xml", "application/x-tex", "application/x-ipynb")
_TEXT_EXTS = frozenset("txt md markdown csv tsv json jsonl xml html htm tex bib rst ipynb opml fb2 1 man log yaml yml".split())
_IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF", "AVIF", "HEIF", "MPO")


@dataclass
class Line:
    text: str
    size: float = 11.0
    box: tuple[int, int, int, int] | None = None  # left, top, right, bottom in pixels
    cells: list[str] = field(default_factory=list)  # two or more when the line is a table row


@dataclass
class PageImage:
    box: tuple[int, int, int, int]
    size: tuple[int, int]  # the picture's own pixels
    jpeg: bytes | None  # the picture re-encoded as JPEG, when it could be decoded


@dataclass
class Page:
    index: int
    width: int
    height: int
    dpi: int
    lines: list[Line]
    images: list[PageImage] = field(default_factory=list)
    links: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)


class Document:
    """A document's pages, laid out on first use."""

    def __init__(self, name: str, kind: str, size: int, count: int, layout):
        self.name = name
        self.kind = kind  # pdf | docx | pptx | text | image
        self.size = size
        self.page_count = count
        self._layout = layout
        self._pages: dict[int, Page] = {}
        # Cached documents are shared by requests in several threads; pypdf's reader is not thread-safe.
        self._lock = threading.Lock()

    def page(self, index: int) -> Page:
        with self._lock:
            if index not in self._pages:
                self._pages[index] = self._layout(index)
            return self._pages[index]

    def pages(self) -> list[Page]:
        return [self.page(i) for i in range(self.page_count)]

    def text(self) -> str:
        return "\n\n".join(page.text for page in self.pages() if page.text.strip())

    def describe(self) -> str:
        label = {"pdf": "PDF", "docx": "Word document", "pptx": "PowerPoint deck", "text": "text document",
                 "image": "image"}[self.kind]
        unit = "slide" if self.kind == "pptx" else "page"
        count = f"{self.page_count} {unit}{'s' if self.page_count != 1 else ''}"
        return f"{self.name} ({label}, {count}, {self.size:,} bytes)"


def unreadable(name: str, why: str) -> RequestError:
    return RequestError(400, error_body(f"Document {name} could not be read: {why}", "invalid_request_error",
                                        param="document"))


def too_large(name: str, why: str) -> RequestError:
    return RequestError(413, error_body(f"Document {name} is too large: {why}", "invalid_request_error",
                                        param="document"))


_CACHE: collections.OrderedDict[tuple, Document] = collections.OrderedDict()
_CACHE_BYTES = 64 * 1024 * 1024  # documents kept for follow-up questions about them
_cache_lock = threading.Lock()


def load(data: bytes, name: str = "document", mime: str | None = None) -> Document:
    """The document in `data`, laid out once: a chat's follow-ups send the same document again."""
    key = (hashlib.sha256(data).hexdigest(), name, mime)
    with _cache_lock:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    doc = _load(data, name, mime)
    with _cache_lock:
        _CACHE[key] = doc
        while sum(d.size for d in _CACHE.values()) > _CACHE_BYTES and len(_CACHE) > 1:
            _CACHE.popitem(last=False)
    return doc


def _load(data: bytes, name: str, mime: str | None) -> Document:
    """The document in `data`, recognised by its bytes first, then its type or name."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise too_large(name, f"it is {len(data):,} bytes; OCR reads documents of at most "
                              f"{MAX_DOCUMENT_BYTES:,} bytes")
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if data.startswith(b"%PDF"):
        return _pdf(data, name)
    if data.startswith(b"PK") and zipfile.is_zipfile(io.BytesIO(data)):
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                names = set(archive.namelist())
        except Exception as exc:  # zipfile raises many kinds on a damaged archive
            raise unreadable(name, f"it is a damaged zip archive ({type(exc).__name__})") from None
        if "word/document.xml" in names:
            return _docx(data, name)
        if any(n.startswith("ppt/slides/slide") for n in names):
            return _pptx(data, name)
    picture = _picture(data)
    if picture is not None:
        return _image(data, name, picture)
    if (mime and mime.startswith(_TEXT_MIMES)) or ext in _TEXT_EXTS or _looks_like_text(data):
        return _text(data, name, ext == "csv" or (mime or "").endswith("csv"))
    raise unreadable(name, "its format is not one the offline server reads (PDF, DOCX, PPTX, text, or an image)")


def _looks_like_text(data: bytes) -> bool:
    head = data[:4096]
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start > len(head) - 4  # a character cut at the end of the sample
    return True


# -- images ---------------------------------------------------------------------------


def _picture(data: bytes):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.format, img.size, img.info.get("dpi")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        # A decompression bomb is refused like any picture that cannot be read.
        return None


def picture_info(data: bytes) -> tuple[str, tuple[int, int]] | None:
    """(format, (width, height)) of an image, or None when the bytes are not one."""
    found = _picture(data)
    return (found[0], found[1]) if found else None


def jpeg(data: bytes) -> bytes | None:
    """The picture re-encoded as JPEG (what OCR returns), or None when it cannot be decoded."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            out = io.BytesIO()
            img.convert("RGB").save(out, "JPEG", quality=85)
            return out.getvalue()
    except (OSError, ValueError, Image.DecompressionBombError):
        return None


def _image(data: bytes, name: str, picture) -> Document:
    fmt, (width, height), dpi = picture
    resolution = int(round(dpi[0])) if isinstance(dpi, tuple) and dpi and dpi[0] else 72

    def layout(index: int) -> Page:
        image = PageImage((0, 0, width, height), (width, height), jpeg(data))
        return Page(index, width, height, resolution, [], [image])

    return Document(name, "image", len(data), 1, layout)


# -- text formats ---------------------------------------------------------------------


def _decode(data: bytes) -> str:
    for encoding in ("utf-8-sig", "utf-16"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _split_cells(text: str, is_csv: bool) -> list[str]:
    if is_csv:
        row = next(csv.reader([text]), [])
        return [c.strip() for c in row] if len(row) > 1 else []
    if "|" in text.strip().strip("|"):
        cells = [c.strip() for c in text.strip().strip("|").split("|")]
        return cells if len(cells) > 1 else []
    cells = [c.strip() for c in re.split(r"\t+| {2,}", text.strip())]
    return cells if len(cells) > 1 else []


def _flow(lines: list[str], is_csv: bool = False, width_in: float = LETTER[0],
          height_in: float = LETTER[1]) -> list[Page]:
    """Lines set on Letter pages at `DPI`: fixed margins and line height, so boxes are deterministic.

    At most `MAX_PAGES` + 1 pages: one more than OCR reads is enough to refuse the document.
    """
    width, height = round(width_in * DPI), round(height_in * DPI)
    margin, step = DPI, round((height - 2 * DPI) / TEXT_LINES_PER_PAGE)
    pages = []
    for start in range(0, min(max(1, len(lines)), (MAX_PAGES + 1) * TEXT_LINES_PER_PAGE),
                       TEXT_LINES_PER_PAGE):
        chunk = lines[start : start + TEXT_LINES_PER_PAGE]
        laid = []
        for row, text in enumerate(chunk):
            if not text.strip():
                laid.append(Line("", box=None))
                continue
            top = margin + row * step
            right = min(width - margin, margin + round(len(text) * DPI * 11 / 72 * 0.5))
            box = (margin, top, max(right, margin + 1), top + step - 4)
            laid.append(Line(text.rstrip(), 11.0, box, _split_cells(text, is_csv)))
        pages.append(Page(len(pages), width, height, DPI, laid))
    return pages


def _text(data: bytes, name: str, is_csv: bool) -> Document:
    text = _decode(data).replace("\r\n", "\n")
    # Split no further than the pages OCR could read: a file of line or page breaks alone
    # would otherwise become millions of pages.
    most = MAX_PAGES + 1
    pages: list[Page] = []
    for sheet in text.split("\f", most)[:most]:
        for page in _flow(sheet.split("\n", most * TEXT_LINES_PER_PAGE)[: most * TEXT_LINES_PER_PAGE],
                          is_csv):
            page.index = len(pages)
            pages.append(page)
        if len(pages) > MAX_PAGES:
            break
    pages = pages[:most]
    return Document(name, "text", len(data), len(pages), lambda i: pages[i])


_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A = "{http://schemas.openxmlformats.org/drawingml/2006/main}"


def _inflated(archive: zipfile.ZipFile, parts: list[str], name: str) -> list[bytes]:
    """The parts, inflated only when their sizes stay within `MAX_INFLATED` (zipfile holds
    each part to its stated size and fails its checksum past it, so the sizes bound it)."""
    total = sum(archive.getinfo(part).file_size for part in parts)
    if total > MAX_INFLATED:
        raise too_large(name, f"its XML inflates to {total:,} bytes; the offline server reads at most "
                              f"{MAX_INFLATED:,}")
    return [archive.read(part) for part in parts]


def _docx(data: bytes, name: str) -> Document:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            [xml] = _inflated(archive, ["word/document.xml"], name)
        root = ElementTree.fromstring(xml)
    except RequestError:
        raise
    except Exception as exc:  # zipfile and the XML parser raise many kinds on a damaged file
        raise unreadable(name, f"its Word XML is damaged ({type(exc).__name__})") from None
    sheets: list[list[str]] = [[]]
    body = root.find(f"{_W}body")
    for element in list(body) if body is not None else []:
        if element.tag == f"{_W}tbl":
            for row in element.iter(f"{_W}tr"):
                cells = ["".join(t.text or "" for t in cell.iter(f"{_W}t")) for cell in row.iter(f"{_W}tc")]
                sheets[-1].append(" | ".join(cells))
            continue
        parts = []
        for node in element.iter():
            if node.tag == f"{_W}t":
                parts.append(node.text or "")
            elif node.tag == f"{_W}tab":
                parts.append("\t")
            elif node.tag == f"{_W}br" and node.get(f"{_W}type") == "page":
                sheets[-1].append("".join(parts))
                parts = []
                sheets.append([])
        style = element.find(f"{_W}pPr/{_W}pStyle")
        text = "".join(parts)
        if style is not None and (style.get(f"{_W}val") or "").lower().startswith(("heading", "title")) and text:
            text = "# " + text
        if text.strip():
            # A blank line after each paragraph keeps paragraphs apart once laid out.
            sheets[-1] += [text, ""]
    pages: list[Page] = []
    for sheet in sheets:
        for page in _flow(sheet):
            page.index = len(pages)
            pages.append(page)
        if len(pages) > MAX_PAGES:
            break
    return Document(name, "docx", len(data), len(pages), lambda i: pages[i])


def _pptx(data: bytes, name: str) -> Document:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            slides = sorted((n for n in archive.namelist() if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)),
                            key=lambda n: int(re.search(r"\d+", n.rsplit("/", 1)[1]).group()))
            texts = []
            for xml in _inflated(archive, slides[: MAX_PAGES + 1], name):
                root = ElementTree.fromstring(xml)
                paragraphs = ["".join(t.text or "" for t in p.iter(f"{_A}t")) for p in root.iter(f"{_A}p")]
                texts.append([p for p in paragraphs if p.strip()])
    except RequestError:
        raise
    except Exception as exc:  # zipfile and the XML parser raise many kinds on a damaged file
        raise unreadable(name, f"its PowerPoint XML is damaged ({type(exc).__name__})") from None
    pages = []
    for index, lines in enumerate(texts):
        page = _flow(lines[:TEXT_LINES_PER_PAGE], width_in=13.333, height_in=7.5)[0]
        page.index = index
        pages.append(page)
    return Document(name, "pptx", len(data), len(pages), lambda i: pages[i])


# -- PDF ------------------------------------------------------------------------------


def _pdf(data: bytes, name: str) -> Document:
    import pypdf
    from pypdf.errors import PdfReadError

    try:
        reader = pypdf.PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise unreadable(name, "it is encrypted with a password")
        count = len(reader.pages)
    except PdfReadError as exc:
        raise unreadable(name, f"it is not a readable PDF ({exc})") from None
    except Exception as exc:  # pypdf raises many kinds on damaged files; each is the caller's bad document
        raise unreadable(name, f"it is not a readable PDF ({type(exc).__name__})") from None
    return Document(name, "pdf", len(data), count, lambda i: _pdf_page(reader, i, name))


@dataclass
class _Run:
    text: str
    x: float
    y: float
    size: float


def _pdf_page(reader, index: int, name: str) -> Page:
    try:
        return _read_pdf_page(reader, index, name)
    except RequestError:
        raise
    except Exception as exc:  # pypdf raises many kinds on damaged pages; each is the caller's bad document
        raise unreadable(name, f"page {index} is damaged ({type(exc).__name__})") from None


def _read_pdf_page(reader, index: int, name: str) -> Page:
    page = reader.pages[index]
    box = page.cropbox if page.cropbox else page.mediabox
    width_pt, height_pt = float(box.width), float(box.height)
    left, bottom = float(box.left), float(box.bottom)
    rotated = (page.rotation or 0) % 180 == 90
    scale = DPI / 72
    runs: list[_Run] = []
    placements: list[tuple[str, list[float]]] = []

    def on_text(text, cm, tm, font, size):
        if not text:
            return
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        scale_y = math.hypot(tm[2], tm[3]) * math.hypot(cm[2], cm[3]) or 1.0
        runs.append(_Run(text, x - left, y - bottom, (size or 11.0) * scale_y))

    def on_operator(op, args, cm, tm):
        if op == b"Do" and args:
            placements.append((str(args[0]).lstrip("/"), list(cm)))

    try:
        page.extract_text(visitor_text=on_text, visitor_operand_before=on_operator)
    except Exception as exc:  # pypdf raises many kinds on damaged streams; one page must not sink the rest
        raise unreadable(name, f"page {index} has a damaged content stream ({type(exc).__name__})") from None
    width, height = round(width_pt * scale), round(height_pt * scale)
    lines = _pdf_lines(runs, height_pt, scale, width)
    images = _pdf_images(page, placements, left, bottom, height_pt, scale, width, height)
    if rotated:
        width, height = height, width
    return Page(index, width, height, DPI, lines, images, _pdf_links(page, "\n".join(line.text for line in lines)))


def _pdf_lines(runs: list[_Run], height_pt: float, scale: float, width_px: int) -> list[Line]:
    """Lines as pypdf's text extraction breaks them, with boxes and table cells from the runs' positions."""
    lines: list[Line] = []
    pieces: list[_Run] = []

    def close():
        text = "".join(p.text for p in pieces).strip()
        placed = [p for p in pieces if p.text.strip()]
        if text and placed:
            size = max(p.size for p in placed)
            x0 = min(p.x for p in placed)
            x1 = max(p.x + _width(p) for p in placed)
            y = min(p.y for p in placed)
            top = max(0, round((height_pt - y - size) * scale))
            box = (max(0, round(x0 * scale)), top, min(width_px, max(round(x1 * scale), round(x0 * scale) + 1)),
                   max(top + 1, round((height_pt - y + size * 0.25) * scale)))
            lines.append(Line(text, round(size, 1), box, _pdf_cells(placed)))
        elif text:
            lines.append(Line(text))
        pieces.clear()

    for run in runs:
        parts = run.text.split("\n")
        for i, part in enumerate(parts):
            if i:
                close()
            if part:
                pieces.append(_Run(part, run.x, run.y, run.size))
    close()
    return lines


def _width(run: _Run) -> float:
    # An average glyph is about half an em wide: enough for boxes and column gaps.
    return len(run.text) * run.size * 0.5


def _pdf_cells(placed: list[_Run]) -> list[str]:
    """Table cells: runs of one line separated by a gap wider than two glyphs."""
    ordered = sorted(placed, key=lambda p: p.x)
    cells = [ordered[0].text.strip()]
    for before, run in zip(ordered, ordered[1:], strict=False):
        gap = run.x - (before.x + _width(before))
        if gap > run.size:
            cells.append(run.text.strip())
        else:
            cells[-1] = (cells[-1] + run.text).strip()
    return cells if len(cells) > 1 else []


def _pdf_images(page, placements, left, bottom, height_pt, scale, width_px, height_px) -> list[PageImage]:
    try:
        found = {image.name.rsplit(".", 1)[0]: image for image in page.images}
    except Exception:  # an image pypdf cannot decode is still placed, just without its pixels
        found = {}
    images = []
    for name, cm in placements:
        picture = found.get(name)
        if picture is None:
            continue
        x, y = cm[4] - left, cm[5] - bottom
        w, h = math.hypot(cm[0], cm[1]), math.hypot(cm[2], cm[3])
        box = (max(0, round(x * scale)), max(0, round((height_pt - y - h) * scale)),
               min(width_px, round((x + w) * scale)), min(height_px, round((height_pt - y) * scale)))
        try:
            size = picture.image.size
            data = jpeg(picture.data) or _jpeg_of(picture.image)
        except Exception:  # undecodable pixels: keep the placement, drop the picture
            size, data = (box[2] - box[0], box[3] - box[1]), None
        images.append(PageImage(box, size, data))
    return images


def _jpeg_of(image) -> bytes | None:
    try:
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=85)
        return out.getvalue()
    except (OSError, ValueError):
        return None


def _pdf_links(page, text: str) -> list[str]:
    links = []
    for annot in page.get("/Annots") or []:
        try:
            obj = annot.get_object()
            uri = obj.get("/A", {}).get("/URI") if obj.get("/Subtype") == "/Link" else None
        except Exception:  # a damaged annotation is skipped, not fatal
            uri = None
        if uri and str(uri) not in links:
            links.append(str(uri))
    for url in re.findall(r"https?://[^\s)\"'>]+", text):
        if url not in links:
            links.append(url)
    return links


def body_size(pages: list[Page]) -> float:
    """The most common font size over the text, weighted by characters."""
    sizes: Counter = Counter()
    for page in pages:
        for line in page.lines:
            sizes[line.size] += len(line.text)
    return sizes.most_common(1)[0][0] if sizes else 11.0
