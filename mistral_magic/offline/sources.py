"""Where documents and pictures come from: data URLs, uploaded files, this server's signed URLs.

The offline server has no network: a URL is read only when it is a `data:` URL or
one of its own signed URLs (`files.FileStore.sign`); any other http(s) URL is refused
for documents (400, saying how to pass the file instead) and described, unread, for
images in chat.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import unquote, urlsplit

from . import catalogue, documents
from .files import FileStore
from .wire import DocumentURLChunk, FileChunk, ImageURLChunk, RequestError, error_body

_DATA = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(?:;[^,;]*)*?)(?P<b64>;base64)?,(?P<data>.*)", re.S | re.I)
_DOING = {
    "completion_chat": "chat", "ocr": "run OCR", "moderation": "moderate", "classification": "classify",
    "embed": "embed text", "completion_fim": "fill in the middle", "vision": "see images",
    "audio": "hear audio", "audio_transcription": "transcribe audio", "audio_speech": "speak",
}


def invalid_model(name: str, capability: str) -> str:
    """The API's "Invalid model" message, saying why offline and which models would do."""
    if catalogue.find(name) is None:
        return catalogue.unknown_message(name)
    able = catalogue.able(capability) if capability != "embed" else [
        m.id for m in catalogue.MODELS if m.kind == "embed"]
    return (f"Invalid model: {name} ({name} cannot {_DOING.get(capability, capability)}; "
            f"models that can: {', '.join(able[:8])})")


def decode_data_url(url: str, what: str = "document") -> tuple[str | None, bytes]:
    """(media type, bytes) of a `data:` URL; 400 when it is not one."""
    match = _DATA.fullmatch(url.strip())
    if not match:
        raise RequestError(400, error_body(f"The {what} data URL is malformed: expected data:<type>;base64,<data>",
                                           "invalid_request_error"))
    payload = match.group("data")
    try:
        data = base64.b64decode(payload, validate=False) if match.group("b64") else unquote(payload).encode()
    except (binascii.Error, ValueError):
        raise RequestError(400, error_body(f"The {what} data URL does not hold valid base64",
                                           "invalid_request_error")) from None
    return match.group("mime"), data


def cannot_fetch(url: str, what: str) -> RequestError:
    shown = url if len(url) <= 120 else url[:117] + "..."
    return RequestError(400, error_body(
        f"The offline server cannot fetch {shown}: it has no network and reads only data: URLs and its own "
        f"signed URLs. Upload the {what} (POST /v1/files, purpose ocr) and pass its file id or the URL from "
        "GET /v1/files/{file_id}/url, or send it as a data: URL", "invalid_request_error"))


def read_url(url: str, files: FileStore, what: str) -> tuple[bytes, str, str | None]:
    """(bytes, name, media type) behind a data: URL or a signed URL of this server."""
    if url.startswith("data:"):
        mime, data = decode_data_url(url, what)
        return data, what, mime
    scheme = urlsplit(url).scheme.lower()
    if scheme in ("http", "https"):
        stored = files.read_url(url)
        if stored is None:
            raise cannot_fetch(url, what)
        return stored.content, stored.meta["filename"], stored.meta.get("mimetype")
    raise RequestError(400, error_body(
        f"The {what} URL must be an http(s) URL or a data: URL, not {url[:40]!r}", "invalid_request_error"))


def document(chunk: DocumentURLChunk | FileChunk | ImageURLChunk, files: FileStore) -> documents.Document:
    """The document a chunk names, loaded."""
    if isinstance(chunk, FileChunk):
        stored = files.get(chunk.file_id)
        data, name, mime = stored.content, stored.meta["filename"], stored.meta.get("mimetype")
    elif isinstance(chunk, DocumentURLChunk):
        data, name, mime = read_url(chunk.document_url, files, "document")
        name = chunk.document_name or name
    else:
        data, name, mime = read_url(chunk.url(), files, "image")
        if documents.picture_info(data) is None:
            raise documents.unreadable(name, "it is not an image")
    if name in ("document", "image") and mime:
        name = f"{name} ({mime})"
    return documents.load(data, name, mime)
