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

Pages are what was counted here from the content (a PDF's page tree, a deck's slide
parts, one for a picture), never what a file says about itself: Word's
``docProps/app.xml`` page count is often stale, so a Word document's pages, like a text
file's, are not known before the server lays them out (``pages`` is None).

A file that would explode when read is refused in one line: the XML parts of a DOCX or
PPTX are inflated only when their uncompressed sizes (which Python's zipfile also holds
them to) stay within `MAX_INFLATED`, and any error a reader raises on a damaged file is
a `ConfigError` saying which file and why.
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
MAX_INFLATED = 32 * 1024 * 1024  # the XML a DOCX or PPTX may inflate to (a long book is ~10 MB)
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
    pages: int | None = None  # counted here; None: not known before the server lays them out
    tokens: int = 0  # an upper bound on the prompt tokens its text takes
    picture_mime: str | None = None  # a picture's type, from its bytes

    @property
    def mime(self) -> str:
        if self.kind == "picture":
            return self.picture_mime or "application/octet-stream"
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


def document(value: Any, name: str | None = None, *, pictures: bool = False,
             strict: bool = False) -> Document:
    """The document at a path, or in bytes; `pictures` accepts picture files too (OCR).

    `strict` (a path from data, see `inputs.paths`): the kind comes from the bytes alone, and
    the path is read as it is (no ``~``)."""
    if isinstance(value, (str, os.PathLike)):
        path = Path(os.fspath(value))
        path = path if strict else path.expanduser()
        data = _read(path, name or str(value))
        return _document(data, name or path.name, path, pictures, strict)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _document(bytes(value), name or "document", None, pictures, strict)
    raise ConfigError(f"{name or 'the document'} is a {type(value).__name__}; give a file path "
                      f"or the file's bytes ({ACCEPTED})")


def _read(path: Path | None, name: str) -> bytes:
    if path is None or not path.is_file():
        raise ConfigError(f"no file {name!r}; give the path of {ACCEPTED}")
    return path.read_bytes()


def _document(data: bytes, name: str, path: Path | None, pictures: bool,
              strict: bool = False) -> Document:
    kind = _kind(data, name, strict)
    if kind == "picture" and not pictures:
        raise ConfigError(f"{name} is a picture: pass it with --image (pictures are seen, "
                          "documents are read), or read its text with %mistral ocr")
    if kind == "audio":
        raise ConfigError(f"{name} is a recording: pass it with --audio to a model that listens, "
                          "or transcribe it with %mistral transcribe")
    if kind is None:
        raise ConfigError(f"{name} is not a format the API reads as a document; give {ACCEPTED}"
                          + (" or a picture" if pictures else ""))
    pages, texts = _contents(kind, data, name)
    found = Document(name, kind, hashlib.sha256(data).hexdigest(), len(data), path,
                     None if path is not None else data, pages,
                     picture_mime=_picture_mime(data) if kind == "picture" else None)
    found.tokens = bound(texts, unread=sum(not t.strip() for t in texts) if kind == "pdf" else 0)
    return found


def _kind(data: bytes, name: str, strict: bool = False) -> str | None:
    """What `data` is, from its bytes; a path the user typed may also be text by its name."""
    from .paths import kind_of

    kind = kind_of(data)
    if kind == "zip":
        return _office_kind(data, name)
    if kind not in ("picture", None):
        return kind
    if _is_picture(data):  # what Pillow reads: the table's formats, and a few more
        return "picture"
    if kind is None and not strict:
        ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
        return "text" if ext in TEXT_EXTENSIONS else None
    return None


def _office_kind(data: bytes, name: str) -> str | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
    except Exception as exc:  # zipfile raises many kinds on a damaged archive
        raise ConfigError(f"{name} is a damaged zip archive ({_why(exc)}); save the document "
                          "again and retry") from None
    if "word/document.xml" in names:
        return "docx"
    if any(n.startswith("ppt/slides/slide") for n in names):
        return "pptx"
    return None


def _is_picture(data: bytes) -> bool:
    return _picture_mime(data) is not None


def _picture_mime(data: bytes) -> str | None:
    """The media type of the picture in `data` (Pillow reads its header), or None."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.get_format_mimetype() or "application/octet-stream"
    except Exception:  # Pillow raises many kinds on bytes that are no picture it knows
        return None


def _contents(kind: str, data: bytes, name: str) -> tuple[int | None, list[str]]:
    """(pages counted here, the text of each page, or of the whole file as one)."""
    try:
        if kind == "pdf":
            return _pdf(data, name)
        if kind == "picture":
            return 1, []
        if kind == "text":
            return None, [data.decode("utf-8", errors="replace")]
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if kind == "docx":  # Word lays out its pages: none are counted here
                return None, [_xml_text(b"".join(_inflate(archive, ["word/document.xml"], name)),
                                        b"w:t")]
            slides = sorted((n for n in archive.namelist()
                             if re.fullmatch(r"ppt/slides/slide\d+\.xml", n)),
                            key=lambda n: int(re.search(r"\d+", n.rsplit("/", 1)[1])[0]))
            return len(slides), [_xml_text(x, b"a:t") for x in _inflate(archive, slides, name)]
    except ConfigError:
        raise
    except Exception as exc:  # a reader of untrusted files raises many kinds: each is one line
        raise ConfigError(f"{name} could not be read as {_KIND_NAMES[kind]} ({_why(exc)}); "
                          "check the file, or save it again") from None


_KIND_NAMES = {"pdf": "a PDF", "docx": "a Word document", "pptx": "a PowerPoint deck",
               "text": "text", "picture": "a picture"}


def _why(exc: BaseException) -> str:
    """An exception as a few words on one line."""
    said = " ".join(str(exc).split())[:160]
    return f"{type(exc).__name__}: {said}" if said else type(exc).__name__


def _inflate(archive: zipfile.ZipFile, names: list[str], name: str) -> list[bytes]:
    """The parts `names`, inflated only when their sizes stay within `MAX_INFLATED`.

    The sizes are the archive's own, but zipfile stops each part at its stated size (and
    fails its checksum past it), so they do bound what is inflated.
    """
    total = sum(archive.getinfo(n).file_size for n in names)
    if total > MAX_INFLATED:
        raise ConfigError(f"{name} inflates to {total:,} bytes of XML, past the "
                          f"{MAX_INFLATED:,} read here (a zip bomb, or a document too large "
                          "to send); split it or save it as a PDF")
    return [archive.read(n) for n in names]


def _pdf(data: bytes, name: str) -> tuple[int, list[str]]:
    import logging

    from pypdf import PdfReader

    # pypdf logs what it repairs in a damaged file; unhandled, those lines land in the cell.
    pypdf_log = logging.getLogger("pypdf")
    if not pypdf_log.handlers:
        pypdf_log.addHandler(logging.NullHandler())
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        raise ConfigError(f"{name} is an encrypted PDF; decrypt it (or print it to a new "
                          "PDF) before sending it")
    return len(reader.pages), [page.extract_text() or "" for page in reader.pages]


def _xml_text(xml: bytes, tag: bytes) -> str:
    """The text runs of an Office XML part, a line per paragraph."""
    text = re.sub(rb"</(?:w|a):p>", b"\n", xml)
    runs = re.findall(rb"<" + tag + rb"(?:\s[^>]*)?>([^<]*)</" + tag + rb">|(\n)", text)
    import html

    return html.unescape(b"".join(run or brk for run, brk in runs).decode("utf-8", "replace"))


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
