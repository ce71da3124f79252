"""``df.mistral.transcribe``: a column of recordings into transcripts, through the row engine.

    calls = df.mistral.transcribe("path")                       # + transcript
    calls = df.mistral.transcribe("path", diarize=True, segments=True)  # + segments (a list a row)
    calls.mistral.extract("From this call: {transcript}", schema="customer, order int, issue")

- The column holds paths, bytes or http(s) URLs. Its paths are data: read only inside
  `root` (the working directory unless given; `inputs.paths`), and what a file is comes
  from its bytes. A row that is no recording this package reads, or whose length cannot be
  measured under a budget (a URL, WEBM, M4A), is not sent; its ``_error`` says why.
- Each recording is decoded once and its length measured (`inputs.audio`); the row's call
  holds that length at the model's price per minute, and its ledger row records the
  seconds the server reports. The engine does the rest: concurrency, rate limits, the
  budget, resume (a re-run pays only for rows not done), progress, interrupts, ``_error``.
- ``segments=True`` (or ``diarize=True``) asks for segment timestamps and adds a
  ``segments`` column: each row's list of ``{"start", "end", "speaker", "text"}``.
  `diarize`, `language`, `bias` and `timestamps` are checked as `%mistral transcribe`'s
  (`calls.audio.Options`). The Batch API is not offered for audio here.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from ..calls.audio import DEFAULT_TRANSCRIBE, Options, bias_words
from ..errors import BudgetExceeded, ConfigError, StructuredOutputError
from .job import FileRowJob, Reply, RowRefused


class TranscribeJob(FileRowJob):
    """`df.mistral.transcribe`'s rows: each hears one recording (a path, bytes or a URL)."""

    kind, verb = "transcribe", "Transcribing"
    batch_endpoint = None
    per_minute = True
    hold_fix = "send shorter recordings or fewer rows"

    def __init__(self, session, df, column: str, *, model: str | None = None,
                 diarize: bool = False, segments: bool = False, timestamps: str | None = None,
                 language: str | None = None, bias: str | list[str] | None = None, root=None):
        from ..inputs.paths import root_folder

        if column not in df.columns:
            raise ConfigError(f"{column!r} is not a column of the frame "
                              f"({', '.join(str(c) for c in df.columns)}); name the column of "
                              "recordings")
        wanted = timestamps or ("segment" if segments or diarize else "none")
        self.options = Options(model or DEFAULT_TRANSCRIBE, diarize, wanted, language,
                               bias_words(bias))
        self.segments = segments or diarize
        self.root = root_folder(root)  # the column's paths are data: read only inside it
        self._sources: dict[str, Any] = {}  # audio reference -> its path, bytes or URL
        super().__init__(session, df, column, model=self.options.model)
        self.options.check(session)

    def request(self, value: Any) -> dict:
        from ..inputs.audio import from_bytes, recording
        from ..inputs.paths import confined

        try:
            if isinstance(value, str) and value.lower().startswith(("http://", "https://")):
                rec, source = recording(value), value
            elif isinstance(value, (str, os.PathLike)):
                path = confined(value, self.root, f"the path {os.fspath(value)!r}", "transcribe")
                rec, source = from_bytes(path.read_bytes(), path.name), path
            elif isinstance(value, (bytes, bytearray, memoryview)):
                rec = source = from_bytes(bytes(value), "recording")
            else:
                raise ConfigError(f"a {type(value).__name__} is not a recording; give a path, "
                                  "the file's bytes or an http(s) URL")
        except ConfigError as exc:
            raise RowRefused(str(exc)) from None
        ref = f"sha256:{rec.sha256}"
        self._sources[ref] = source
        return {**self.options.record(rec), "audio": ref, "format": rec.format,
                "seconds": rec.seconds}

    def _recording(self, request: dict):
        """The recording a request names, read again (a path) and checked against its hash."""
        from ..inputs.audio import Recording, recording

        source = self._sources[request["audio"]]
        if isinstance(source, str):
            return recording(source)
        if isinstance(source, Recording):
            return source
        data = Path(source).read_bytes()
        if f"sha256:{hashlib.sha256(data).hexdigest()}" != request["audio"]:
            raise ConfigError(f"{request['file']} changed since it was measured; run the call again")
        return Recording(request["file"], request["format"], request["seconds"], data)

    def estimate(self, request: dict, batch: bool = False):
        from ..calls.estimates import Estimate
        from ..inputs.audio import billable

        seconds = request["seconds"]
        if seconds is None:
            if self.session.budget.limit_usd is not None:
                raise BudgetExceeded(
                    f"Refused: the length of {request['file']} cannot be measured here (a URL, "
                    "WEBM or M4A), so its cost cannot be held under MistralMagics.budget_usd; "
                    "convert the recordings to FLAC, MP3, OGG or WAV files")
            return Estimate(0, 0, None, None, self.model, batch)
        prices = self.session.prices
        return Estimate(0, 0, prices.audio_cost(self.model, billable(seconds) + 1),
                        prices.audio_cost(self.model, seconds), self.model, batch,
                        audio_seconds=seconds)

    def amount(self, estimates: list) -> str:
        known = [e.audio_seconds for e in estimates if e.audio_seconds is not None]
        unknown = len(estimates) - len(known)
        said = f"{sum(known) / 60:,.2f} min of audio"
        return said + (f" and {unknown:,} recording{'' if unknown == 1 else 's'} of unknown "
                       "length" if unknown else "")

    def expect(self, call, estimate) -> None:
        call.expect_audio(estimate.audio_seconds)

    def took(self, call, reply: Reply) -> None:
        call.take_audio(reply.audio_seconds)

    async def send(self, client, request: dict, retries) -> Reply:
        from ..calls.call import audio_seconds

        args = self.options.arguments(self._recording(request))
        body = (await client.audio.transcriptions.complete_async(**args, retries=retries)
                ).model_dump(mode="json")
        usage = body.get("usage") or {}
        value = {"transcript": body.get("text") or "", "language": body.get("language"),
                 "segments": [{"start": s.get("start"), "end": s.get("end"),
                               "speaker": s.get("speaker_id"), "text": (s.get("text") or "").strip()}
                              for s in body.get("segments") or []]}
        return Reply([value], usage.get("prompt_tokens"), usage.get("completion_tokens"),
                     audio_seconds=audio_seconds(usage))

    def parse(self, value) -> dict:
        if not isinstance(value, dict) or "transcript" not in value:
            raise StructuredOutputError("the server sent no transcript")
        return value

    def frame(self, records, index):
        import pandas as pd

        out = pd.DataFrame({"transcript": pd.Series([r["transcript"] if r else None for r in records],
                                                    index=index, dtype=object)})
        if self.segments:
            out["segments"] = pd.Series([r["segments"] if r else None for r in records],
                                        index=index, dtype=object)
        return out
