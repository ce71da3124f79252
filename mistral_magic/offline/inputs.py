"""What a chat request carries besides text: pictures and documents, read and checked once.

Pictures (`image_url` chunks) are read from data URLs (format and size with Pillow);
an http(s) URL is not fetched (the offline server has no network) and is described as
a URL. They count as the hosted API counts them, through `mistral_magic.money.tokens`
(16-pixel patches, longest side capped at 1024, (ceil(w/16)+1)·ceil(h/16)), which the
client's estimates share. A model without vision refuses pictures (400).

Documents (`document_url` and `file` chunks) are read whole (`sources`,
`documents`): their text is what the model "reads", and it is counted in the prompt
as the hosted API counts a document's text. A model without the docs' document
Q&A feature refuses them. Recordings (`input_audio` chunks) need a model that listens:
each is measured (`audio.heard`: its real length, counted as Voxtral's encoder counts it,
12.5 tokens a second in 30-second chunks, and reported as ``prompt_audio_seconds``) and
its sidecar transcript, if one is found, is what the offline model "hears".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..money import tokens
from . import audio, catalogue, documents, sources
from .files import FileStore
from .wire import (
    AudioChunk,
    ChatRequest,
    DocumentURLChunk,
    FileChunk,
    ImageURLChunk,
    RequestError,
    TextChunk,
    ThinkChunk,
    error_body,
)


@dataclass
class Picture:
    url: str
    format: str | None = None
    size: tuple[int, int] | None = None
    tokens: int = tokens.DEFAULT_IMAGE_TOKENS

    def describe(self) -> str:
        if self.size is None:
            shown = self.url if len(self.url) <= 80 else self.url[:77] + "..."
            return f"an image at {shown} (a URL: the offline server has no network and did not fetch it)"
        width, height = self.size
        return f"a {width}×{height} {self.format or 'image'} ({self.tokens:,} tokens)"


@dataclass
class Attachments:
    """Pictures and documents by message index."""

    pictures: dict[int, list[Picture]] = field(default_factory=dict)
    documents: dict[int, list[documents.Document]] = field(default_factory=dict)
    recordings: dict[int, list[audio.Heard]] = field(default_factory=dict)

    def audio_seconds(self) -> int | None:
        """Seconds of every recording heard (rounded up, as reported), or None without any."""
        heard = [r.seconds or 0.0 for found in self.recordings.values() for r in found]
        return audio.billed(sum(heard)) if heard else None

    def audio_tokens(self) -> int:
        return sum(audio.audio_tokens(r.seconds or 0.0) for found in self.recordings.values() for r in found)

    def text_of(self, index: int) -> str:
        heard = [r.transcript for r in self.recordings.get(index, []) if r.transcript]
        return "\n\n".join([doc.text() for doc in self.documents.get(index, [])] + heard)


def _refuse(model: catalogue.Model, what: str, capability: str) -> RequestError:
    able = catalogue.able(capability)[:6]
    return RequestError(400, error_body(
        f"{model.id} cannot take {what}: it has no {capability.replace('_', ' ')} capability "
        f"(models that can: {', '.join(able)})", "invalid_request_error", param="messages"))


def picture(chunk: ImageURLChunk) -> Picture:
    """A picture's description and token count; 400 for a data URL that is not an image."""
    url = chunk.url()
    if not url.startswith("data:"):
        if not url.lower().startswith(("http://", "https://")):
            raise RequestError(400, error_body(
                f"image_url must be an http(s) URL or a data: URL, not {url[:40]!r}", "invalid_request_error",
                param="messages"))
        return Picture(url)
    _, data = sources.decode_data_url(url, "image")
    info = documents.picture_info(data)
    if info is None:
        raise RequestError(400, error_body("An image_url data URL does not hold an image the server can read "
                                           "(PNG, JPEG, GIF, WebP, ...)", "invalid_request_error",
                                           param="messages"))
    return Picture(url, info[0], info[1], tokens.image_tokens(url))


def read(req: ChatRequest, model: catalogue.Model, files: FileStore,
         sidecars: audio.Sidecars | None = None) -> Attachments:
    """Every picture, document and recording of the request, checked against what the model
    can take."""
    found = Attachments()
    for index, message in enumerate(req.messages):
        if isinstance(message.content, str) or message.content is None:
            continue
        for chunk in message.content:
            if isinstance(chunk, ImageURLChunk):
                if not model.can("vision"):
                    raise _refuse(model, "images", "vision")
                found.pictures.setdefault(index, []).append(picture(chunk))
            elif isinstance(chunk, (DocumentURLChunk, FileChunk)):
                if not model.documents:
                    able = [m.id for m in catalogue.MODELS if m.documents and not m.retires][:6]
                    raise RequestError(400, error_body(
                        f"{model.id} cannot read documents (models that can: {', '.join(able)})",
                        "invalid_request_error", param="messages"))
                found.documents.setdefault(index, []).append(sources.document(chunk, files))
            elif isinstance(chunk, AudioChunk):
                if not model.can("audio"):
                    raise _refuse(model, "audio", "audio")
                found.recordings.setdefault(index, []).append(
                    audio.heard(chunk.input_audio, sidecars or audio.Sidecars()))
    return found


def counted(req: ChatRequest, found: Attachments) -> list[dict]:
    """The messages as the prompt counts them: each document's chunk becomes its text."""
    messages = []
    for index, message in enumerate(req.messages):
        dumped = message.model_dump(mode="json", exclude_none=True)
        docs = iter(found.documents.get(index, []))
        if isinstance(message.content, list) and (index in found.documents or index in found.recordings):
            # Recordings are counted apart (`Attachments.audio_tokens`), not as text.
            dumped["content"] = [
                {"type": "text", "text": next(docs).text()} if isinstance(chunk, (DocumentURLChunk, FileChunk))
                else chunk.model_dump(mode="json", exclude_none=True)
                for chunk in message.content if not isinstance(chunk, AudioChunk)] or ""
        messages.append(dumped)
    return messages


def plain(content) -> str:
    """The text of a message's content: its text chunks (thinking and attachments left out)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(chunk.text for chunk in content if isinstance(chunk, TextChunk))


def thought(content) -> str:
    """The thinking text an assistant message carries back in the history."""
    if not isinstance(content, list):
        return ""
    return "\n".join(part.text for chunk in content if isinstance(chunk, ThinkChunk)
                     for part in chunk.thinking if isinstance(part, TextChunk))
