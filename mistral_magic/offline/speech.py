"""Speech and voices offline: real audio files of a plausible length, and a few preset voices.

- `POST /v1/audio/speech` (``SpeechRequest``): ``{"audio_data": base64}``, or with
  ``stream=true`` the SSE events ``speech.audio.delta`` (pieces of the file) then
  ``speech.audio.done`` with the usage. The audio is a real file in the format asked for
  (``mp3`` by default, ``wav``, ``flac``, ``opus`` in Ogg, or ``pcm``: raw float32
  little-endian), mono at 24 kHz as the hosted API sends it. It is no voice: the offline
  server cannot speak, so each word is a short hum (pitched by the voice, shaped like
  syllables) with pauses at commas and full stops, at about 150 words a minute, so a
  player shows the length the text would take.
- `GET /v1/audio/voices` (``limit``, ``offset``, ``type``), `GET /v1/audio/voices/{id}`
  and `GET /v1/audio/voices/{id}/sample` (a WAV): the preset voices below. A speech
  request's ``voice_id`` is a voice's id or slug; another is refused (404).
  Creating, changing and deleting voices are not available offline.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
import uuid
from dataclasses import dataclass

from ..money import tokens
from . import catalogue, sources
from .wire import RequestError, error_body

RATE = 24_000
FORMATS = ("pcm", "wav", "mp3", "flac", "opus")
CREATED = "2026-03-23T00:00:00Z"
_WORD = re.compile(r"\S+")
_PIECES = 8  # pieces a streamed file is sent in


@dataclass(frozen=True)
class Voice:
    slug: str
    name: str
    gender: str
    languages: tuple[str, ...]
    pitch: float  # Hz of the hum

    @property
    def id(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"mistral-magic-offline-voice:{self.slug}"))

    def card(self) -> dict:
        return {"id": self.id, "name": self.name, "slug": self.slug, "languages": list(self.languages),
                "gender": self.gender, "age": None, "tags": ["offline", "preset"], "color": None,
                "description": "An offline stand-in voice: a hum with the rhythm of speech, not a voice",
                "retention_notice": 30, "created_at": CREATED, "user_id": None, "type": "preset",
                "kind": "pvc", "trimmed_seconds": None}


VOICES = (
    Voice("en_paul_neutral", "Paul", "male", ("en",), 118.0),
    Voice("gb_jane_neutral", "Jane", "female", ("en",), 205.0),
    Voice("fr_marie_neutral", "Marie", "female", ("fr",), 196.0),
    Voice("fr_louis_neutral", "Louis", "male", ("fr",), 124.0),
    Voice("de_anna_neutral", "Anna", "female", ("de",), 212.0),
    Voice("es_diego_neutral", "Diego", "male", ("es",), 112.0),
)
DEFAULT_VOICE = VOICES[0]


def voice(name: str | None) -> Voice:
    """The voice a request names (id or slug; none: the default); 404 for one not here."""
    if not name:
        return DEFAULT_VOICE
    for found in VOICES:
        if name in (found.id, found.slug):
            return found
    raise RequestError(404, error_body(
        f"Voice {name} not found (the offline server has the preset voices "
        f"{', '.join(v.slug for v in VOICES)})", "not_found", param="voice_id"))


def voices_page(limit: int, offset: int, kind: str) -> dict:
    """GET /v1/audio/voices: the ``VoiceListResponse`` page (presets only; none are custom)."""
    if not 1 <= limit <= 100 or offset < 0 or kind not in ("all", "custom", "preset"):
        loc, value = ("limit", limit) if not 1 <= limit <= 100 else ("offset", offset) if offset < 0 else ("type", kind)
        raise RequestError(422, {"detail": [{"type": "value_error", "loc": ["query", loc], "input": value,
                                             "msg": "Input should be within the allowed values"}]})
    listed = [] if kind == "custom" else [v.card() for v in VOICES]
    return {"items": listed[offset:offset + limit], "total": len(listed), "page": offset // limit + 1,
            "page_size": limit, "total_pages": max(1, math.ceil(len(listed) / limit))}


def hum(text: str, pitch: float):
    """Mono float32 samples at `RATE`: a hum per word, pauses at punctuation."""
    import numpy as np

    parts = []
    for k, word in enumerate(_WORD.findall(text)):
        letters = sum(c.isalnum() for c in word) or 1
        seconds = 0.14 + 0.045 * letters
        t = np.arange(int(seconds * RATE)) / RATE
        syllables = max(1, round(letters / 3))
        # Each syllable swells and fades; the pitch drifts a little from word to word.
        envelope = np.abs(np.sin(np.pi * syllables * t / seconds)) ** 0.6
        tone = pitch * (1 + 0.04 * math.sin(k))
        wave = sum(np.sin(2 * np.pi * tone * h * t) / h for h in (1, 2, 3))
        parts.append((0.25 * envelope * wave).astype("float32"))
        pause = 0.45 if word[-1] in ".!?" else 0.25 if word[-1] in ",;:" else 0.08
        parts.append(np.zeros(int(pause * RATE), dtype="float32"))
    if not parts:
        parts.append(np.zeros(int(0.3 * RATE), dtype="float32"))
    return np.concatenate(parts)


def encode(samples, fmt: str) -> bytes:
    """The samples as a file in `fmt` (see the module's doc)."""
    import soundfile

    if fmt == "pcm":
        return samples.astype("<f4").tobytes()
    buffer = io.BytesIO()
    kind, subtype = {"wav": ("WAV", "PCM_16"), "mp3": ("MP3", "MPEG_LAYER_III"), "flac": ("FLAC", "PCM_16"),
                     "opus": ("OGG", "OPUS")}[fmt]
    soundfile.write(buffer, samples, RATE, format=kind, subtype=subtype)
    return buffer.getvalue()


@dataclass
class Speech:
    model: str
    text: str
    voice: Voice
    format: str
    stream: bool

    def audio(self) -> bytes:
        return encode(hum(self.text, self.voice.pitch), self.format)

    def usage(self) -> dict:
        counted = tokens.count_text(self.text)
        return {"prompt_tokens": counted, "completion_tokens": 0, "total_tokens": counted,
                "prompt_audio_seconds": None}


def request(data) -> Speech:
    """A SpeechRequest body, checked as the API checks it."""
    if not isinstance(data, dict):
        raise RequestError(422, {"detail": [{"type": "model_attributes_type", "loc": ["body"],
                                             "msg": "Input should be a valid dictionary or object", "input": data}]})
    text = data.get("input")
    if not isinstance(text, str):
        kind, msg = ("missing", "Field required") if text is None else ("string_type", "Input should be a valid string")
        raise RequestError(422, {"detail": [{"type": kind, "loc": ["body", "input"], "msg": msg, "input": text}]})
    fmt = data.get("response_format") or "mp3"
    if fmt not in FORMATS:
        raise RequestError(422, {"detail": [{"type": "enum", "loc": ["body", "response_format"], "input": fmt,
                                             "msg": "Input should be 'pcm', 'wav', 'mp3', 'flac' or 'opus'"}]})
    name = data.get("model") or "voxtral-mini-tts-latest"
    model = catalogue.find(name)
    if model is None or not model.can("audio_speech"):
        raise RequestError(400, error_body(sources.invalid_model(name, "audio_speech"), "invalid_model", "1500"))
    if not text.strip():
        raise RequestError(400, error_body("input must hold text to speak", "invalid_request_error", param="input"))
    return Speech(name, text, voice(data.get("voice_id")), fmt, data.get("stream") is True)


def frames(speech: Speech):
    """The SSE frames of a streamed answer: the file in pieces, then the usage."""
    def event(name: str, data: dict) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()

    audio = speech.audio()
    size = max(1, math.ceil(len(audio) / _PIECES))
    for at in range(0, len(audio), size):
        piece = base64.b64encode(audio[at:at + size]).decode("ascii")
        yield event("speech.audio.delta", {"type": "speech.audio.delta", "audio_data": piece}), True
    yield event("speech.audio.done", {"type": "speech.audio.done", "usage": speech.usage()}), False


def sample(voice_id: str) -> bytes:
    """A voice's sample: its hum saying its own name, as a WAV."""
    found = voice(voice_id)
    return encode(hum(f"Hello, I am {found.name}, an offline voice.", found.pitch), "wav")
