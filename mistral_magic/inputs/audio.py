"""Recordings: audio read once, typed by its bytes, its length measured by decoding it.

    %mistral transcribe interview.mp3              # a path: WAV, MP3, FLAC, OGG, WEBM or M4A
    %%mistral --audio clip -m voxtral-small-latest # a name holding bytes or an IPython Audio
    df.mistral.transcribe("path")                  # paths from data: inside a root folder

- What a recording is comes from its bytes (``RIFF…WAVE``, ``ID3`` or an MPEG frame,
  ``fLaC``, ``OggS``, EBML for WebM, ``ftyp`` for M4A), never from its name.
- Its length is **measured** here, before anything is sent: the file is decoded
  (libsndfile, through soundfile) and its samples are counted, at most `MAX_SECONDS`
  (decoding stops there, so a tiny file that unpacks into hours of silence costs
  nothing to refuse). A header's own claim is never taken: a WAV whose ``data`` chunk
  says another length than the bytes it holds (or whose file holds bytes past its
  chunks) is refused as damaged or crafted, and an MP3's frames are also counted one by
  one, the larger count standing. The budget holds that length, at the model's price per
  minute, before the request goes.
- WEBM and M4A need a decoder this package does not ship (ffmpeg): their length cannot be
  measured here. Under a budget they are refused in one line (convert them to FLAC or
  MP3); without one they are sent and priced by the seconds the server reports.
- An http(s) URL is sent as it is (the server fetches it); its length is not known here,
  so under a budget it is refused too.
- `Recording.chunk` is the chat's ``input_audio`` chunk (base64), `Recording.upload` the
  transcription endpoint's ``file``; `seconds_in` measures every recording a chat request
  carries (a chat resends them with its history, and pays for them each time).
"""

from __future__ import annotations

import base64
import hashlib
import io
import math
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import BudgetExceeded, ConfigError

MAX_SECONDS = 3 * 3600  # the longest recording the transcription API takes (its docs: about 3 h)
MIMES = {"wav": "audio/wav", "mp3": "audio/mpeg", "flac": "audio/flac", "ogg": "audio/ogg",
         "webm": "audio/webm", "m4a": "audio/mp4"}
DECODED = frozenset({"wav", "mp3", "flac", "ogg"})  # what libsndfile reads here
ACCEPTED = "a WAV, MP3, FLAC, OGG, WEBM or M4A recording"
_BLOCK = 1 << 16  # frames decoded at a time
_MEASURED: OrderedDict[str, float] = OrderedDict()  # base64 chunk hash -> seconds (recent ones)
_KEPT = 256


def audio_format(data: bytes) -> str | None:
    """``wav``, ``mp3``, ``flac``, ``ogg``, ``webm`` or ``m4a`` as the bytes say; None otherwise."""
    head = data[:12]
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "webm"
    if head[4:8] == b"ftyp" and head[8:11] in (b"M4A", b"M4B", b"mp4", b"iso", b"dash"):
        return "m4a"
    if head[:3] == b"ID3" or _frame(data, 0) is not None:
        return "mp3"
    return None


@dataclass(frozen=True)
class Recording:
    """One recording: its bytes (or URL), what it is, and its length as measured here."""

    name: str
    format: str | None  # None for a URL
    seconds: float | None  # measured; None when it cannot be measured here (WEBM, M4A, a URL)
    data: bytes | None = field(default=None, repr=False)
    url: str | None = None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data if self.data is not None else self.url.encode()).hexdigest()

    @property
    def mime(self) -> str:
        return MIMES.get(self.format or "", "application/octet-stream")

    def chunk(self) -> dict:
        """The chat's ``input_audio`` chunk: the recording in base64, or its URL."""
        value = self.url if self.data is None else base64.b64encode(self.data).decode("ascii")
        if self.data is not None and self.seconds is not None:
            _remember(value, self.seconds)
        return {"type": "input_audio", "input_audio": value}

    def upload(self) -> dict:
        """The transcription endpoint's source: ``file`` (name, bytes, type) or ``file_url``."""
        if self.data is None:
            return {"file_url": self.url}
        return {"file": {"file_name": self.name, "content": self.data, "content_type": self.mime}}

    def held_seconds(self, what: str) -> int:
        """The seconds a budget holds for it: measured, rounded up, plus one (a decoder that
        counts a frame more); `BudgetExceeded` when its length cannot be known here."""
        if self.seconds is None:
            raise BudgetExceeded(f"Refused: the length of {what} {unknown_why(self)}, so its cost "
                                 "cannot be held under MistralMagics.budget_usd; "
                                 + unknown_fix(self))
        return billable(self.seconds) + 1

    def describe(self) -> str:
        kind = "URL" if self.format is None else self.format.upper()
        length = "length not known here" if self.seconds is None else clock(self.seconds)
        return f"{self.name}: {kind}, {length}"


def unknown_why(rec: Recording) -> str:
    if rec.data is None:
        return "at a URL is not known before the server fetches it"
    return f"({rec.format.upper()}) cannot be measured here without ffmpeg, which this package " \
           "does not ship"


def unknown_fix(rec: Recording) -> str:
    if rec.data is None:
        return "download it and give its path, or unset the budget"
    stem = Path(rec.name).stem or "recording"
    return (f"convert it to FLAC, MP3, OGG or WAV (e.g. ffmpeg -i {rec.name} {stem}.flac), "
            "or unset the budget")


def billable(seconds: float) -> int:
    """Whole seconds, as the API reports ``prompt_audio_seconds``, rounded up."""
    return math.ceil(seconds - 1e-9)


def clock(seconds: float) -> str:
    """``0:12.4`` / ``1:02:03``: a length as people read it."""
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}:{minutes:02d}:{rest:02.0f}" if hours else f"{minutes}:{rest:04.1f}"


def recording(value: Any, name: str | None = None) -> Recording:
    """The recording `value` names: a path, an http(s) URL, bytes, or an IPython ``Audio``.

    `ConfigError` (one line) for anything else, or a file that is no recording it can read.
    A path from data is confined by its caller first (`inputs.paths.confined`).
    """
    if isinstance(value, Recording):
        return value
    if _is_player(value):
        return _from_player(value, name)
    if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
        return Recording(name or value.rsplit("/", 1)[-1].split("?")[0] or value, None, None,
                         url=value)
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        path = Path(text).expanduser()
        if not path.is_file():
            raise ConfigError(f"no file {text!r}; give the path of {ACCEPTED}")
        return from_bytes(path.read_bytes(), name or path.name)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return from_bytes(bytes(value), name or "recording")
    raise ConfigError(f"{name or 'the recording'} is a {type(value).__name__}; give a file path, "
                      f"an http(s) URL, the file's bytes or an IPython Audio ({ACCEPTED})")


def _is_player(value: Any) -> bool:
    return type(value).__name__ == "Audio" and type(value).__module__.startswith("IPython")


def _from_player(player: Any, name: str | None) -> Recording:
    """An ``IPython.display.Audio``: its embedded bytes (a WAV it made from samples), or its URL."""
    if getattr(player, "data", None):
        return from_bytes(bytes(player.data), name or "audio")
    if getattr(player, "url", None):
        return recording(player.url, name)
    raise ConfigError(f"{name or 'the Audio'} holds neither data nor a URL; make it with "
                      "Audio(data=..., rate=...) or Audio(filename=...)")


def from_bytes(data: bytes, name: str) -> Recording:
    """A recording from its bytes: typed, and measured where it can be."""
    fmt = audio_format(data)
    if fmt is None:
        raise ConfigError(f"{name} is not {ACCEPTED} (its first bytes say otherwise); "
                          "give an audio file")
    return Recording(name, fmt, measure(data, fmt, name) if fmt in DECODED else None, data)


def measure(data: bytes, fmt: str, name: str) -> float:
    """Seconds of audio `data` holds, by decoding it (see the module's doc)."""
    if fmt == "wav":
        _check_wav(data, name)
    seconds = _decoded_seconds(data, name)
    if fmt == "mp3":
        seconds = max(seconds, _mp3_seconds(data))
    if seconds > MAX_SECONDS:
        raise ConfigError(f"{name} is longer than {MAX_SECONDS // 3600} hours, the most the API "
                          "transcribes; cut it into parts")
    return seconds


def _decoded_seconds(data: bytes, name: str) -> float:
    import soundfile

    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio:
            rate, frames, limit = audio.samplerate, 0, (MAX_SECONDS + 1) * audio.samplerate
            while frames <= limit:
                block = audio.buffer_read(_BLOCK, dtype="int16")
                if not block:
                    break
                frames += len(block) // (2 * audio.channels)
    except (RuntimeError, soundfile.LibsndfileError, ValueError) as exc:
        raise ConfigError(f"{name} could not be decoded ({one_line(exc)}); check the file, or "
                          "save it again") from None
    if rate <= 0:
        raise ConfigError(f"{name} has no sample rate; save it again")
    return frames / rate


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160] or type(exc).__name__


def _check_wav(data: bytes, name: str) -> None:
    """Refuse a WAV whose chunks do not account for its bytes: its ``data`` chunk claims more
    than the file holds, or bytes follow its chunks (more audio than it says, or a size of 0
    that a server may read as "to the end")."""
    at, found = 12, False
    while at + 8 <= len(data):
        tag, size = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        if not (tag.isascii() and all(32 <= c < 127 for c in tag)):
            break
        end = at + 8 + size + (size & 1)
        if tag == b"data":
            found = True
            if at + 8 + size > len(data):
                raise ConfigError(f"{name}: its header says {size:,} bytes of audio but the file "
                                  f"holds {len(data) - at - 8:,} (damaged or crafted); save it again")
        at = end
    if not found:
        raise ConfigError(f"{name}: the WAV has no data chunk (damaged or crafted); save it again")
    if data[:4] == b"RIFF" and at < len(data) - 1:
        raise ConfigError(f"{name}: the file holds {len(data) - at:,} bytes past what its WAV "
                          "header describes (damaged or crafted); save it again")


# -- MPEG audio frames, counted one by one -----------------------------------------------------

_BITRATES = {  # (version is MPEG-1, layer) -> kbit/s by index
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def _frame(data: bytes, at: int) -> tuple[int, int, int] | None:
    """(length in bytes, samples, sample rate) of the MPEG audio frame at `at`, or None."""
    if at + 4 > len(data) or data[at] != 0xFF or data[at + 1] & 0xE0 != 0xE0:
        return None
    version, layer_bits = (data[at + 1] >> 3) & 3, (data[at + 1] >> 1) & 3
    rate_index, bitrate_index = (data[at + 2] >> 2) & 3, data[at + 2] >> 4
    if version == 1 or layer_bits == 0 or rate_index == 3 or bitrate_index in (0, 15):
        return None
    layer, mpeg1 = 4 - layer_bits, version == 3
    bitrate = _BITRATES[(mpeg1, layer if mpeg1 or layer == 1 else 2)][bitrate_index] * 1000
    rate, padding = _RATES[version][rate_index], (data[at + 2] >> 1) & 1
    if layer == 1:
        return (12 * bitrate // rate + padding) * 4, 384, rate
    samples = 1152 if layer == 2 or mpeg1 else 576
    return samples // 8 * bitrate // rate + padding, samples, rate


def _mp3_seconds(data: bytes) -> float:
    """Seconds in the MPEG frames found one after another (an ID3 tag skipped first)."""
    at = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        size = data[6] << 21 | data[7] << 14 | data[8] << 7 | data[9]
        at = 10 + size
    seconds = 0.0
    while at < len(data):
        frame = _frame(data, at)
        if frame is None or frame[0] <= 0:
            at += 1  # resync: junk between frames is skipped, never counted
            continue
        length, samples, rate = frame
        seconds += samples / rate
        at += length
        if seconds > MAX_SECONDS + 1:
            break
    return seconds


# -- what a chat request carries ----------------------------------------------------------------


def _remember(value: str, seconds: float) -> None:
    key = hashlib.sha256(value.encode("ascii", "replace")).hexdigest()
    _MEASURED[key] = seconds
    _MEASURED.move_to_end(key)
    while len(_MEASURED) > _KEPT:
        _MEASURED.popitem(last=False)


def audio_chunks(messages: list) -> list[str]:
    """The ``input_audio`` values (base64 or URLs) of a request's messages, in order."""
    found = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            found += [c.get("input_audio") for c in content
                      if isinstance(c, dict) and c.get("type") == "input_audio"]
    return [value for value in found if isinstance(value, str)]


def seconds_in(messages: list) -> float | None:
    """Seconds of every recording a chat request carries, measured (0 for none); None when one
    of them cannot be measured here (a URL, WEBM, M4A)."""
    total = 0.0
    for value in audio_chunks(messages):
        key = hashlib.sha256(value.encode("ascii", "replace")).hexdigest()
        if key not in _MEASURED:
            if value.lower().startswith(("http://", "https://")):
                return None
            try:
                rec = from_bytes(base64.b64decode(value, validate=True), "a recording")
            except ValueError:
                raise ConfigError("an input_audio chunk is not base64; attach audio with "
                                  "--audio") from None
            if rec.seconds is None:
                return None
            _remember(value, rec.seconds)
        total += _MEASURED[key]
    return total
