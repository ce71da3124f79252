"""Transcription offline: the recording's real length, and a transcript that says it is offline.

`POST /v1/audio/transcriptions` (multipart, as the SDK sends it; ``stream=true`` answers
with the spec's SSE events: ``transcription.language``, ``transcription.text.delta``,
``transcription.segment``, ``transcription.done``).

- The audio's length is measured here, by decoding it (WAV, MP3, FLAC, OGG through
  libsndfile) and counting its samples; ``usage.prompt_audio_seconds`` is that length
  rounded up to the second. WEBM and M4A are refused (400): this server has no decoder
  for them (the hosted API reads them). A ``file_url`` is refused too: the server has no
  network. A ``file_id`` is read from this server's file store.
- The transcript is offline text, plainly. A **sidecar** gives a real one: a ``.txt``
  beside an audio file with the same bytes, in the folder the server reads transcripts
  from (`Sidecars`; for the server the extension starts, the kernel's working folder and
  below). The server never sees the client's paths, so it finds the sidecar by the
  audio's content: the files of the same size, then the same SHA-256. Each line of a
  sidecar is a segment: ``[0:03.5 - 0:07] Alice: Thanks for calling.`` (times and a
  speaker's name are optional; lines without times share the time left between the lines
  that have them). With ``diarize`` the names become ``speaker_1``, ``speaker_2``, ... in
  order of first appearance, as the hosted API labels unknown speakers.
- Without a sidecar the transcript is labelled filler: a segment every five seconds or
  so, saying the offline server cannot hear, with two speakers taking turns when diarized.
- The API's refusals: ``diarize`` without segment timestamps; on Voxtral 2 (``voxtral-mini-2602``)
  ``language`` with ``timestamp_granularities`` (the docs say they do not combine); on
  Voxtral 3 ``word`` timestamps; more than 100 ``context_bias`` items; a model that does
  not transcribe (``invalid_model``).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..money import tokens
from . import catalogue, sources
from .wire import RequestError, error_body

MAX_SECONDS = 3 * 3600
MAX_BIAS = 100
READ = frozenset({"wav", "mp3", "flac", "ogg"})
AUDIO_SUFFIXES = (".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".webm", ".m4a")
FILLER_EVERY_S = 5.0
_TIME = r"(\d+(?::\d{1,2}){0,2}(?:\.\d+)?)"
_TIMED = re.compile(rf"^\[\s*{_TIME}\s*[-–]\s*{_TIME}\s*\]\s*")
_SPEAKER = re.compile(r"^([A-Z][\w.'-]*(?: [A-Z][\w.'-]*){0,2}):\s+")
_BIAS = re.compile(r"^[^,\s]+$")
_LANGUAGE = re.compile(r"^\w{2}$")


def audio_format(head: bytes) -> str | None:
    """What a recording is, from its first bytes (the client's rule, kept apart: the server
    shares nothing with the client but the tokenizer)."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] in (b"fLaC", b"OggS"):
        return "flac" if head[:4] == b"fLaC" else "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[4:8] == b"ftyp":
        return "m4a"
    if head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 in (0xE2, 0xE4, 0xE6)):
        return "mp3"
    return None


def seconds_of(stream: BinaryIO, fmt: str) -> float:
    """The length of the recording in `stream`, by decoding it; 400 when it cannot be decoded."""
    import soundfile

    if fmt not in READ:
        raise _bad(f"The offline server cannot decode {fmt.upper()} audio (it reads WAV, MP3, FLAC "
                   "and OGG; the hosted API reads WEBM and M4A too): convert the file", "file")
    stream.seek(0)
    try:
        with soundfile.SoundFile(stream) as audio:
            frames, limit = 0, (MAX_SECONDS + 1) * audio.samplerate
            while frames <= limit and (block := audio.buffer_read(1 << 16, dtype="int16")):
                frames += len(block) // (2 * audio.channels)
            seconds = frames / audio.samplerate
    except Exception as exc:  # libsndfile's errors come in several types
        raise _bad(f"The audio file could not be decoded ({' '.join(str(exc).split())[:120]})",
                   "file") from None
    if seconds > MAX_SECONDS:
        raise _bad(f"The audio is longer than {MAX_SECONDS // 3600} hours, the most one request takes", "file")
    return seconds


def billed(seconds: float) -> int:
    return math.ceil(seconds - 1e-9)


def audio_tokens(seconds: float) -> int:
    """Prompt tokens a recording takes in chat, counted as the client counts them."""
    return tokens.audio_tokens(seconds)


def _bad(message: str, param: str | None = None, kind: str = "invalid_request_error") -> RequestError:
    return RequestError(400, error_body(message, kind, param=param))


def _invalid(loc: str, kind: str, message: str, value) -> RequestError:
    return RequestError(422, {"detail": [{"type": kind, "loc": ["body", loc], "msg": message, "input": value}]})


# -- sidecar transcripts ---------------------------------------------------------------------------


class Sidecars:
    """Sidecar transcripts under a folder (None: the working folder when a request comes),
    found by the audio's content; at most `depth` folders down and `most` files looked at."""

    def __init__(self, root: str | os.PathLike | None = None, depth: int = 4, most: int = 20_000):
        self.root = root
        self.depth = depth
        self.most = most

    def find(self, size: int, sha256: str) -> tuple[Path, str] | None:
        """(audio path, transcript text) of a recording with these bytes, or None."""
        root = Path(self.root if self.root is not None else os.getcwd())
        seen = 0
        for folder, dirs, names in os.walk(root):
            depth = len(Path(folder).relative_to(root).parts)
            dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")) and depth < self.depth)
            present = set(names)
            for name in sorted(names):
                seen += 1
                if seen > self.most:
                    return None
                stem, suffix = os.path.splitext(name)
                if suffix.lower() not in AUDIO_SUFFIXES or stem + ".txt" not in present:
                    continue
                path = Path(folder) / name
                try:
                    if path.stat().st_size == size and _sha256(path) == sha256:
                        return path, (Path(folder) / (stem + ".txt")).read_text("utf-8", "replace")
                except OSError:
                    continue
        return None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Line:
    text: str
    who: str | None = None
    start: float | None = None
    end: float | None = None


def _seconds(text: str) -> float:
    total = 0.0
    for part in text.split(":"):
        total = total * 60 + float(part)
    return total


def parse_sidecar(text: str) -> list[Line]:
    """A sidecar's segments: ``[start - end] Name: text`` lines, times and name optional."""
    found = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        start = end = None
        timed = _TIMED.match(line)
        if timed:
            start, end = _seconds(timed.group(1)), _seconds(timed.group(2))
            line = line[timed.end():]
        spoken = _SPEAKER.match(line)
        who = spoken.group(1) if spoken else None
        line = line[spoken.end():] if spoken else line
        if line:
            found.append(Line(line, who, start, end))
    return found


def place(lines: list[Line], duration: float) -> list[Line]:
    """Every line with times within the recording: untimed runs share the time between their
    timed neighbours, by their length."""
    placed = [Line(x.text, x.who, *(None, None) if x.start is None else
                   (min(x.start, duration), min(max(x.end, x.start), duration))) for x in lines]
    i = 0
    while i < len(placed):
        if placed[i].start is not None:
            i += 1
            continue
        j = i
        while j < len(placed) and placed[j].start is None:
            j += 1
        begin = placed[i - 1].end if i else 0.0
        finish = placed[j].start if j < len(placed) else duration
        weights = [len(x.text) + 8 for x in placed[i:j]]
        at, span = begin, max(0.0, finish - begin)
        for x, weight in zip(placed[i:j], weights, strict=True):
            step = span * weight / sum(weights)
            x.start, x.end = round(at, 2), round(at + step, 2)
            at += step
        i = j
    return placed


def filler(duration: float, sha256: str) -> list[Line]:
    """Labelled filler, a segment every few seconds, two speakers taking turns."""
    count = max(1, round(duration / FILLER_EVERY_S))
    first = int(sha256[:2], 16) % 2
    lines = []
    for k in range(count):
        start, end = duration * k / count, duration * (k + 1) / count
        text = (f"Offline transcript: the offline server cannot hear, so these words are filler "
                f"for {start:.1f} to {end:.1f} seconds of a {duration:.1f}-second recording "
                f"(part {k + 1} of {count}).")
        lines.append(Line(text, f"Speaker {(k + first) % 2 + 1}", round(start, 2), round(end, 2)))
    return lines


# -- the request and its answer --------------------------------------------------------------------


@dataclass
class Transcription:
    """A transcription request, checked, with its audio measured."""

    model: str
    stream: bool
    language: str | None
    diarize: bool
    granularity: list[str]
    bias: list[str]
    seconds: float
    sha256: str
    size: int

    def answer(self, sidecars: Sidecars) -> dict:
        """The TranscriptionResponse body."""
        found = sidecars.find(self.size, self.sha256)
        lines = place(parse_sidecar(found[1]), self.seconds) if found else filler(self.seconds, self.sha256)
        speakers: dict[str, str] = {}
        segments, current = [], ""
        for line in lines:
            current = line.who or current  # a line without a name goes on with the last speaker
            segment = {"type": "transcription_segment", "text": line.text, "start": line.start,
                       "end": line.end}
            if self.diarize:
                segment["speaker_id"] = speakers.setdefault(current, f"speaker_{len(speakers) + 1}")
            segments.append(segment)
        text = " ".join(line.text for line in lines)
        if "word" in self.granularity:
            segments = [word for segment in segments for word in _words(segment)]
        usage = {"prompt_tokens": 4 + sum(tokens.count_text(b) for b in self.bias),
                 "completion_tokens": tokens.count_text(text)}
        usage.update(total_tokens=usage["prompt_tokens"] + usage["completion_tokens"],
                     prompt_audio_seconds=billed(self.seconds))
        return {"model": self.model, "text": text, "language": self.language or "en",
                "segments": segments if self.granularity else [], "usage": usage}


def _words(segment: dict) -> list[dict]:
    words = segment["text"].split()
    step = (segment["end"] - segment["start"]) / max(1, len(words))
    return [{**segment, "text": word, "start": round(segment["start"] + k * step, 2),
             "end": round(segment["start"] + (k + 1) * step, 2)} for k, word in enumerate(words)]


def _field(form, name: str) -> str | None:
    value = form.get(name)
    return None if value is None or not isinstance(value[1], bytes) else value[1].decode("utf-8", "replace")


def _flag(form, name: str) -> bool:
    value = _field(form, name)
    if value is None or value.lower() in ("false", "0", ""):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise _invalid(name, "bool_parsing", "Input should be a valid boolean, unable to interpret input", value)


def request(form, files) -> tuple[Transcription, BinaryIO]:
    """A transcription form, checked as the API checks it, and the audio's stream (positioned
    at 0); `files` is the server's file store (for ``file_id``)."""
    name = _field(form, "model")
    if not name:
        raise _invalid("model", "missing", "Field required", None)
    model = catalogue.find(name)
    if model is None or not model.can("audio_transcription"):
        raise RequestError(400, error_body(sources.invalid_model(name, "audio_transcription"),
                                           "invalid_model", "1500"))
    language = _field(form, "language") or None
    if language is not None and not _LANGUAGE.match(language):
        raise _invalid("language", "string_pattern_mismatch", "String should match pattern '^\\w{2}$'", language)
    granularity = [v.decode("utf-8", "replace") for v in form.repeated.get("timestamp_granularities", [])]
    for value in granularity:
        if value not in ("segment", "word"):
            raise _invalid("timestamp_granularities", "enum", "Input should be 'segment' or 'word'", value)
    bias = [v.decode("utf-8", "replace") for v in form.repeated.get("context_bias", [])]
    for value in bias:
        if not _BIAS.match(value):
            raise _invalid("context_bias", "string_pattern_mismatch", "String should match pattern '^[^,\\s]+$'",
                           value)
    if len(bias) > MAX_BIAS:
        raise _bad(f"context_bias has {len(bias)} items; at most {MAX_BIAS}", "context_bias")
    if _field(form, "temperature"):
        try:
            float(_field(form, "temperature"))
        except ValueError:
            raise _invalid("temperature", "float_parsing", "Input should be a valid number",
                           _field(form, "temperature")) from None
    diarize = _flag(form, "diarize")
    voxtral3 = model.id.endswith("-3-0")
    if diarize and "segment" not in granularity:
        raise _bad("diarize labels segments: send timestamp_granularities=['segment'] with it",
                   "timestamp_granularities")
    if language and granularity and not voxtral3:
        raise _bad(f"language cannot be combined with timestamp_granularities on {model.id} (Mistral's "
                   "docs); drop one, or use voxtral-mini-transcribe-latest", "language")
    if voxtral3 and "word" in granularity:
        raise _bad(f"{model.id} gives segment timestamps only, not word", "timestamp_granularities")
    stream = _source(form, files)
    head = stream.read(16)
    fmt = audio_format(head)
    if fmt is None:
        raise _bad("The file is not a recording the API reads (WAV, MP3, FLAC, OGG, WEBM or M4A)", "file")
    seconds = seconds_of(stream, fmt)
    digest, size = hashlib.sha256(), 0
    stream.seek(0)
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return Transcription(name, _flag(form, "stream"), language, diarize, granularity, bias, seconds,
                         digest.hexdigest(), size), stream


def _source(form, files) -> BinaryIO:
    given = [key for key in ("file", "file_url", "file_id") if form.get(key) is not None]
    if len(given) != 1:
        raise _bad("Send exactly one of file, file_url or file_id", "file")
    if given[0] == "file":
        value = form["file"][1]
        value = value if not isinstance(value, bytes) else io.BytesIO(value)
        value.seek(0)
        return value
    if given[0] == "file_url":
        raise _bad("The offline server has no network and cannot fetch file_url; send the file itself",
                   "file_url")
    return files.get(_field(form, "file_id") or "").open()


def frames(body: dict):
    """The SSE frames of a streamed transcription: (bytes, starts a token step)."""
    def event(name: str, data: dict) -> bytes:
        return f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()

    yield event("transcription.language", {"type": "transcription.language",
                                           "audio_language": body["language"]}), False
    segments = body["segments"] or [{"text": body["text"]}]
    for k, segment in enumerate(segments):
        pieces = tokens.pieces(("" if k == 0 else " ") + segment["text"])
        for piece in pieces:
            yield event("transcription.text.delta", {"type": "transcription.text.delta", "text": piece}), True
        if "start" in segment:
            fields = {key: segment[key] for key in ("text", "start", "end", "speaker_id") if key in segment}
            yield event("transcription.segment", {"type": "transcription.segment", **fields}), False
    yield event("transcription.done", {**body, "type": "transcription.done"}), False


# -- recordings in chat ----------------------------------------------------------------------------


@dataclass
class Heard:
    """A recording a chat message carries: its length, and the transcript a sidecar gives."""

    seconds: float | None  # None: a URL, not fetched
    format: str | None
    transcript: str | None = None
    url: str | None = None

    def describe(self) -> str:
        if self.seconds is None:
            return f"a recording at {self.url[:80]} (a URL: the offline server has no network and did not fetch it)"
        return f"a {self.format.upper()} recording of {self.seconds:.1f} seconds"


def heard(value: str, sidecars: Sidecars) -> Heard:
    """An ``input_audio`` value (base64, a data URL or an http(s) URL), measured; 400 when it
    holds no recording."""
    import base64
    import binascii

    if value.lower().startswith(("http://", "https://")):
        return Heard(None, None, url=value)
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _bad("input_audio must be base64 audio or an http(s) URL", "messages") from None
    fmt = audio_format(data[:16])
    if fmt is None:
        raise _bad("input_audio does not hold a recording (WAV, MP3, FLAC, OGG, WEBM or M4A)", "messages")
    seconds = seconds_of(io.BytesIO(data), fmt)
    found = sidecars.find(len(data), hashlib.sha256(data).hexdigest())
    transcript = " ".join(line.text for line in parse_sidecar(found[1])) if found else None
    return Heard(seconds, fmt, transcript)
