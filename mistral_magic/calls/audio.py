"""Audio calls: a transcription and a speech, each from its budget hold to its ledger row.

    transcript = transcribe(session, recording, Options("voxtral-mini-latest", diarize=True))
    spoken = speak(session, "Bonjour !", voice="fr_marie_neutral")

- A transcription is priced per minute of audio. Before it is sent, the budget holds the
  recording's length as measured here (`inputs.audio`: decoded, never a header's claim),
  rounded up to the second plus one, at the model's price per minute; a recording whose
  length cannot be measured here (a URL, WEBM, M4A) is refused under a budget. The ledger
  then records the seconds the server reports (``usage.prompt_audio_seconds``); an
  interrupted call keeps the seconds held, since the server may have heard them all.
- It streams (``client.audio.transcriptions.stream``): each text delta goes to
  `on_text`, segments and the language are gathered, and ``transcription.done`` brings
  the whole response. Stopped by the kernel's interrupt, what arrived is kept
  (`Transcript`) and the call ends as `errors.Interrupted`.
- `Options` are checked before anything is sent, as the API would refuse them: ``diarize``
  needs segment timestamps, Voxtral 2 (``voxtral-mini-2602``) takes a ``language`` or
  timestamps but not both (its docs say so, and the hosted API returns empty text),
  Voxtral 3 gives no word timestamps, ``--bias`` is at most 100 words or phrases (a phrase's
  spaces become ``_``, as the API writes them).
- A speech is priced per million characters of the text sent: the hold is its length, and
  so is the ledger's record (the API reports no count of its own). `Speech` shows as an
  `IPython.display.Audio` player.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, Interrupted, ReplayMiss

DEFAULT_TRANSCRIBE = "voxtral-mini-latest"
DEFAULT_SPEECH = "voxtral-mini-tts-latest"
TIMESTAMPS = ("segment", "word", "none")
SPEECH_FORMATS = ("mp3", "wav", "flac", "opus", "pcm")
MIMES = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "opus": "audio/ogg",
         "pcm": "application/octet-stream"}
MAX_BIAS = 100
_LANGUAGE = re.compile(r"^\w{2}$")


def bias_words(text: str | list[str] | None) -> list[str]:
    """``--bias "Voxtral, Mistral AI"`` as the API takes it: items split at commas, a phrase's
    spaces as ``_``; at most `MAX_BIAS`."""
    items = text if isinstance(text, list) else (text or "").split(",")
    words = ["_".join(str(item).split()) for item in items if str(item).strip()]
    if len(words) > MAX_BIAS:
        raise ConfigError(f"--bias has {len(words)} words or phrases; the API takes at most "
                          f"{MAX_BIAS}: keep the names and terms that matter most")
    return words


def voxtral_3(session, model: str) -> bool:
    """Whether `model` is a Voxtral 3 transcription model (by its dated id)."""
    return (session.prices.resolve(model) or model).endswith("-3-0")


@dataclass
class Options:
    """What a transcription asks for (see the module's doc)."""

    model: str = DEFAULT_TRANSCRIBE
    diarize: bool = False
    timestamps: str = "segment"
    language: str | None = None
    bias: list[str] = field(default_factory=list)

    def check(self, session) -> None:
        """Refuse (one line) what the model or the API would refuse, before anything is sent."""
        session.capabilities.check(self.model)
        session.capabilities.require(self.model, "audio_transcription")
        if self.timestamps not in TIMESTAMPS:
            raise ConfigError(f"--timestamps {self.timestamps}: give segment, word or none")
        if self.language is not None and not _LANGUAGE.match(self.language):
            raise ConfigError(f"--language {self.language}: give a two-letter code, e.g. fr")
        if self.diarize and self.timestamps != "segment":
            raise ConfigError("--diarize labels segments: use it with --timestamps segment")
        new = voxtral_3(session, self.model)
        if self.language and self.timestamps != "none" and not new:
            raise ConfigError(
                f"{self.model} cannot combine --language with timestamps (Mistral's docs; it "
                "returns empty text): drop --language (the language is detected), add "
                "--timestamps none, or use -m voxtral-mini-transcribe-latest")
        if new and self.timestamps == "word":
            raise ConfigError(f"{self.model} gives segment timestamps, not word ones: use "
                              "--timestamps segment, or -m voxtral-mini-latest for words")

    def arguments(self, recording) -> dict:
        """The SDK call's arguments (the recording as ``file`` or ``file_url``)."""
        args: dict[str, Any] = {"model": self.model, **recording.upload(), "diarize": self.diarize}
        if self.timestamps != "none":
            args["timestamp_granularities"] = [self.timestamps]
        if self.language:
            args["language"] = self.language
        if self.bias:
            args["context_bias"] = list(self.bias)
        return args

    def record(self, recording) -> dict:
        """The request as the ledger's answer keeps it: what was asked, never the audio."""
        return {"model": self.model, "file": recording.name, "diarize": self.diarize,
                "timestamps": self.timestamps, "language": self.language, "bias": list(self.bias)}


def hold(session, model: str, recording, what: str):
    """The budget's hold for hearing `recording` on `model` (`BudgetExceeded` when it does not
    fit, or when its length is not known here under a budget)."""
    seconds = None if session.budget.limit_usd is None else recording.held_seconds(what)
    worst = session.prices.audio_cost(model, seconds) if seconds is not None else None
    length = "length not known here" if recording.seconds is None else \
        f"{recording.seconds / 60:,.2f} min of audio"
    return session.budget.reserve_total(worst, f"hearing {what} ({length})", model=model,
                                        running=True, fix="send a shorter recording")


@dataclass
class Transcript:
    """What a transcription brought: the text, its segments, the language, the call's `Answer`."""

    name: str
    text: str
    segments: list[dict]
    language: str | None
    answer: Any = None
    footer: str = ""

    def frame(self):
        """One row per segment: ``start``, ``end`` (seconds), ``speaker`` (when diarized),
        ``text``; the whole transcript in ``frame.attrs["text"]``."""
        import pandas as pd

        diarized = any(s.get("speaker_id") is not None for s in self.segments)
        columns = ["start", "end", *(["speaker"] if diarized else []), "text"]
        # Without timestamps the API sends no segments: the whole text is one row, untimed.
        rows = [{"start": s.get("start"), "end": s.get("end"), "speaker": s.get("speaker_id"),
                 "text": (s.get("text") or "").strip()} for s in self.segments] or \
            [{"start": None, "end": None, "speaker": None, "text": self.text.strip()}]
        frame = pd.DataFrame(rows, columns=columns).astype(
            {"start": "float64", "end": "float64", "text": object})
        frame.attrs.update(text=self.text, language=self.language, source=self.name)
        return frame


def transcribe(session, recording, options: Options, *, on_text=None,
               stream: bool = True) -> Transcript:
    """Hear one recording (`%mistral transcribe`): hold, send, settle in the ledger."""
    from .call import Call, audio_seconds

    if session.responses.mode == "replay":
        raise ReplayMiss("%mistral transcribe is not kept in the response cache, and "
                         "MistralMagics.cache is 'replay', which never sends; transcribe with "
                         "df.mistral.transcribe (its rows are kept), or set "
                         "%config MistralMagics.cache = 'on'")
    options.check(session)
    reservation = hold(session, options.model, recording, recording.name)
    try:
        backend = session.backend
    except BaseException:
        reservation.release()
        raise
    call = Call(session, options.record(recording), reservation, backend=backend.kind,
                kind="transcribe", stream=stream)
    call.expect_audio(recording.seconds)
    heard = Transcript(recording.name, "", [], options.language)
    try:
        call.sending()
        with call.recording():
            body = _stream(backend.client, options.arguments(recording), call, heard, on_text) \
                if stream else backend.client.audio.transcriptions.complete(
                    **options.arguments(recording)).model_dump(mode="json")
            _take(body, heard)
            usage = body.get("usage") or {}
            call.take_usage(usage.get("prompt_tokens"), usage.get("completion_tokens"))
            call.take_audio(audio_seconds(usage))
    finally:
        call.parts = [heard.text]
        answer = call.settle()
    session.last = heard.answer = answer
    heard.footer = session.footer(answer)
    session._raise(call.failure, answer)
    if answer.status == "interrupted":
        raise Interrupted(f"Stopped transcribing {recording.name} after {len(heard.text):,} "
                          "characters; what arrived is shown above, and the minutes held are in "
                          "the ledger", partial=heard)
    return heard


def _stream(client, args: dict, call, heard: Transcript, on_text) -> dict:
    """Read a transcription's events into `heard`; the ``transcription.done`` body."""
    import time

    parts: list[str] = []
    with client.audio.transcriptions.stream(**args) as events:
        for event in events:
            data = event.data.model_dump(mode="json")
            kind = data.get("type")
            if kind == "transcription.text.delta":
                if call.answer.ttft_s is None:
                    call.answer.ttft_s = time.perf_counter() - call.started
                parts.append(data.get("text") or "")
                heard.text = "".join(parts)
                if on_text is not None:
                    on_text(parts)
            elif kind == "transcription.segment":
                heard.segments.append({**data, "type": "transcription_segment"})
            elif kind == "transcription.language":
                heard.language = data.get("audio_language")
            elif kind == "transcription.done":
                return data
    raise ConnectionError("the transcription stream ended before transcription.done")


def _take(body: dict, heard: Transcript) -> None:
    heard.text = body.get("text") or heard.text
    heard.segments = list(body.get("segments") or heard.segments)
    heard.language = body.get("language") or heard.language


# -- speech ------------------------------------------------------------------------------------


@dataclass
class Speech:
    """Text read aloud: the audio file, its format, the call's `Answer`; shows as a player."""

    data: bytes
    format: str
    text: str
    answer: Any = None
    footer: str = ""

    def player(self):
        """An ``IPython.display.Audio`` of the file (embedded, so the notebook keeps it)."""
        from IPython.display import Audio

        player = Audio(data=self.data)
        player.mimetype = MIMES[self.format]
        return player

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        from ..show import render

        bundle = {"text/html": self.player()._repr_html_() + render.block("", self.footer)}
        bundle["text/plain"] = f"<{self.format} audio, {len(self.data):,} bytes> · {self.footer}"
        return bundle


def speak(session, text: str, *, voice: str | None = None, model: str | None = None,
          fmt: str = "mp3") -> Speech:
    """Read `text` aloud with the speech endpoint: hold its characters, send, settle."""
    from .call import Call

    model = model or DEFAULT_SPEECH
    if not text.strip():
        raise ConfigError("nothing to speak: give some text, e.g. %mistral speak Hello there")
    if fmt not in SPEECH_FORMATS:
        raise ConfigError(f"--format {fmt}: give one of {', '.join(SPEECH_FORMATS)}")
    if session.responses.mode == "replay":
        raise ReplayMiss("speech is not kept in the response cache, and MistralMagics.cache is "
                         "'replay', which never sends; set %config MistralMagics.cache = 'on'")
    session.capabilities.check(model)
    session.capabilities.require(model, "audio_speech")
    characters = len(text)
    reservation = session.budget.reserve_total(
        session.prices.speech_cost(model, characters), f"speaking {characters:,} characters",
        model=model, running=True, fix="speak a shorter text")
    try:
        backend = session.backend
    except BaseException:
        reservation.release()
        raise
    request = {"model": model, "input": text, "response_format": fmt,
               **({"voice_id": voice} if voice else {})}
    call = Call(session, request, reservation, backend=backend.kind, kind="speech", stream=False)
    call.expect_characters(characters)
    data = b""
    try:
        call.sending()
        with call.recording():
            data = base64.b64decode(backend.client.audio.speech.complete(**request).audio_data)
    finally:
        answer = call.settle()
    session.last = answer
    session._raise(call.failure, answer)
    if answer.status == "interrupted":
        raise Interrupted(f"Stopped before the speech arrived; its {characters:,} characters "
                          "are in the ledger, as the server may have read them")
    return Speech(data, fmt, text, answer, session.footer(answer))


def readable(markdown: str) -> str:
    """An answer's Markdown as the words to say: its rendered text, without markup."""
    import html
    import re as regex

    from ..show.render import markdown_html

    text = regex.sub(r"<[^>]+>", " ", markdown_html(markdown))
    return " ".join(html.unescape(text).split())


def voices_frame(session):
    """The backend's voices (``%mistral voices``): one row each, presets and custom ones."""
    import warnings

    import pandas as pd

    client, rows, offset = session.backend.client, [], 0
    while True:
        with warnings.catch_warnings():
            # The SDK flags offset paging; /v1/audio/voices is the listing the API spec has.
            warnings.simplefilter("ignore", DeprecationWarning)
            page = client.audio.voices.list(limit=100, offset=offset)
        rows += [{"id": v.id, "slug": v.slug or None, "name": v.name, "gender": v.gender or None,
                  "languages": ", ".join(v.languages or []), "type": v.type,
                  "description": v.description or None} for v in page.items]
        offset += len(page.items)
        if not page.items or offset >= page.total:
            break
    return pd.DataFrame(rows, columns=["id", "slug", "name", "gender", "languages", "type",
                                       "description"])
