"""Documents for a model: a file read once, sent by reference, counted before it is sent.

`document(value, name)` takes a path (``str`` or `pathlib.Path`) or the bytes of a
PDF, a Word document (DOCX), a PowerPoint deck (PPTX), a text file (txt, md, csv,
json, ...) or, for OCR, a picture, and returns a `Document`: its kind, its SHA-256,
its pages where they can be known, and a bound on the tokens its text takes.

A request does not carry the file or a URL to it but a reference,
``{"type": "document_url", "document_url": "mistral-magic:upload/sha256-<hex>",
"document_name": "report.pdf"}`` (`REF_PREFIX`; an ``image_url`` for a picture sent
to OCR). References are what a dry run shows, what a chat keeps for its follow-ups
and what the response cache keys answers by, so the same file asks the same question
whatever URL it was given. Just before a request is sent, `uploads.Uploads` puts the
file on the backend (once per content) and replaces each reference by a signed URL.

Tokens. The offline server counts a document's text in the prompt; the hosted API
reads documents its own way and does not say how it counts them. So the budget holds
an upper bound, `Document.tokens`: the text read here (pypdf for a PDF, page by page;
the XML text of DOCX and PPTX; a text file's text) counted with Tekken, plus
`PAGE_SLACK` tokens a page for layout the server may add, and `UNREAD_PAGE_TOKENS` for
each PDF page with no text layer (a scan, which the hosted API reads by OCR: a dense
page of text is about 1,000 tokens). Offline, where the text read here matches the
server's, the bound is a few tokens a page above its usage.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError

REF_PREFIX = "mistral-magic:upload/sha256-"
PAGE_SLACK = 32
DOCUMENT_SLACK = 16
UNREAD_PAGE_TOKENS = 2_000
TEXT_EXTENSIONS = frozenset("txt md markdown csv tsv json jsonl xml html htm tex rst yaml yml log".split())
PICTURE_EXTENSIONS = frozenset("png jpg jpeg gif webp bmp tif tiff avif".split())
MIMES = {"pdf": "application/pdf",
         "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
         "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
         "text": "text/plain"}
ACCEPTED = "a PDF, a Word (.docx) or PowerPoint (.pptx) file, or a text file (txt, md, csv, json, ...)"


@dataclass
class Document:
    """A file to send by reference: where its bytes are, what it is, what it may cost."""

    name: str
    kind: str  # pdf | docx | pptx | text | picture
    sha256: str
    size: int
    path: Path | None = None  # read again when it is uploaded, so rows do not hold every file
    data: bytes | None = field(default=None, repr=False)
    pages: int | None = None  # None: not known before the server reads it
    tokens: int = 0  # an upper bound on the prompt tokens its text takes

    @property
    def mime(self) -> str:
        if self.kind == "picture":
            ext = self.name.rsplit(".", 1)[-1].lower()
            return "image/jpeg" if ext in ("jpg", "jpeg") else f"image/{ext}"
        return MIMES[self.kind]

    @property
    def ref(self) -> str:
        return REF_PREFIX + self.sha256

    def content(self) -> bytes:
        """The file's bytes (read again from its path), checked against its hash."""
        data = self.data if self.data is not None else _read(self.path, self.name)
        if self.data is None and hashlib.sha256(data).hexdigest() != self.sha256:
            raise ConfigError(f"{self.name} changed since it was read; run the cell again")
        return data

    def chunk(self) -> dict:
        """The reference chunk a request carries (see the module's doc)."""
        if self.kind == "picture":
            return {"type": "image_url", "image_url": self.ref}
        return {"type": "document_url", "document_url": self.ref, "document_name": self.name}

    def describe(self) -> str:
        pages = "" if self.pages is None else f"{self.pages} page{'' if self.pages == 1 else 's'}, "
        return f"{self.name}: {self.kind.upper() if self.kind != 'text' else 'text'}, {pages}" \
               f"{self.size:,} bytes, up to {self.tokens:,} tokens"


def document(value: Any, name: str | None = None, *, pictures: bool = False) -> Document:
    """The document at a path, or in bytes; `pictures` accepts picture files too (OCR)."""
    if isinstance(value, (str, os.PathLike)):
        path = Path(os.fspath(value)).expanduser()
        data = _read(path, name or str(value))
        return _document(data, name or path.name, path, pictures)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _document(bytes(value), name or "document", None, pictures)
    raise ConfigError(f"{name or 'the document'} is a {type(value).__name__}; give a file path "
                      f"or the file's bytes ({ACCEPTED})")


def _read(path: Path | None, name: str) -> bytes:
    if path is None or not path.is_file():
        raise ConfigError(f"no file {name!r}; give the path of {ACCEPTED}")
    return path.read_bytes()


def _document(data: bytes, name: str, path: Path | None, pictures: bool) -> Document:
    kind = _kind(data, name)
    if kind == "picture" and not pictures:
        raise ConfigError(f"{name} is a picture: pass it with --image (pictures are seen, "
                          "documents are read), or read its text with %mistral ocr")
    if kind is None:
        raise ConfigError(f"{name} is not a format the API reads as a document; give {ACCEPTED}"
                          + (" or a picture" if pictures else ""))
    pages, texts = _contents(kind, data, name)
    found = Document(name, kind, hashlib.sha256(data).hexdigest(), len(data), path,
                     None if path is not None else data, pages)
    found.tokens = bound(texts, unread=sum(not t.strip() for t in texts) if kind == "pdf" else 0)
    return found


def _kind(data: bytes, name: str) -> str | None:
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if data.startswith(b"%PDF"):
        return "pdf"
    if data.startswith(b"PK") and zipfile.is_zipfile(io.BytesIO(data)):
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
        if "word/document.xml" in names:
            return "docx"
        if any(n.startswith("ppt/slides/slide") for n in names):
            return "pptx"
        return None
    if ext in PICTURE_EXTENSIONS or _is_picture(data):
        return "picture"
    if ext in TEXT_EXTENSIONS or (ext == "" and b"\x00" not in data[:4096]):
        return "text"
    return None


def _is_picture(data: bytes) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)):
            return True
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return False


def _contents(kind: str, data: bytes, name: str) -> tuple[int | None, list[str]]:
    """(pages, the text of each page, or of the whole file as one) of a document."""
    if kind == "pdf":
        return _pdf(data, name)
    if kind == "picture":
        return 1, []
    if kind == "text":
        return None, [data.decode("utf-8", errors="replace")]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        if kind == "docx":
            pages = _docx_pages(archive)
            return pages, [_xml_text(archive.read("word/document.xml"), b"w:t")]
        slides = sorted((n for n in archive.namelist()
                         if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)),
                        key=lambda n: int(re.search(r"\d+", n.rsplit("/", 1)[1])[0]))
        return len(slides), [_xml_text(archive.read(n), b"a:t") for n in slides]


def _pdf(data: bytes, name: str) -> tuple[int, list[str]]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            raise ConfigError(f"{name} is an encrypted PDF; decrypt it (or print it to a new "
                              "PDF) before sending it")
        return len(reader.pages), [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{name} is not a PDF pypdf can read ({exc})") from None


def _xml_text(xml: bytes, tag: bytes) -> str:
    """The text runs of an Office XML part, a line per paragraph."""
    text = re.sub(rb"</(?:w|a):p>", b"\n", xml)
    runs = re.findall(rb"<" + tag + rb"(?:\s[^>]*)?>([^<]*)</" + tag + rb">|(\n)", text)
    import html

    return html.unescape(b"".join(run or brk for run, brk in runs).decode("utf-8", "replace"))


def _docx_pages(archive: zipfile.ZipFile) -> int | None:
    """Word's own page count (docProps/app.xml), when it wrote one."""
    try:
        found = re.search(rb"<Pages>(\d+)</Pages>", archive.read("docProps/app.xml"))
    except KeyError:
        return None
    return int(found[1]) if found else None


def bound(texts: list[str], unread: int = 0) -> int:
    """An upper bound on the tokens of a document whose pages hold `texts` (see the doc)."""
    from ..money.tokens import count_text

    counted = sum(count_text(text) for text in texts)
    return counted + PAGE_SLACK * len(texts) + UNREAD_PAGE_TOKENS * unread + DOCUMENT_SLACK


def sha_of(ref: Any) -> str | None:
    """The SHA-256 a reference names, or None when `ref` is no reference of ours."""
    if isinstance(ref, dict):
        ref = ref.get("url")
    if isinstance(ref, str) and ref.startswith(REF_PREFIX):
        return ref[len(REF_PREFIX):]
    return None
