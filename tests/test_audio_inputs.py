"""Recordings on the client: typed by their bytes, their length measured by decoding, never read
from a header (`inputs.audio`), and audio files from data typed by their bytes (`inputs.paths`)."""

from __future__ import annotations

import base64

import pytest
from recordings import lying_wav, tone

from mistral_magic.errors import BudgetExceeded, ConfigError
from mistral_magic.inputs import audio
from mistral_magic.inputs.documents import document
from mistral_magic.inputs.paths import kind_of


@pytest.mark.parametrize("fmt, kind", [("WAV", "wav"), ("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3")])
def test_each_format_is_typed_by_its_bytes_and_measured(fmt, kind):
    rec = audio.from_bytes(tone(7.5, fmt), "clip")
    assert rec.format == kind and kind_of(rec.data) == "audio"
    # MP3 encoders pad the last frame: the frames counted one by one stand (never fewer seconds).
    assert 7.5 <= rec.seconds < 7.5 + (0.2 if kind == "mp3" else 1e-6)
    assert rec.describe().startswith(f"clip: {kind.upper()}, 0:07.")


@pytest.mark.parametrize("holds, claims", [(2, 3600), (60, 1), (2, 0)])
def test_a_wav_whose_header_says_another_length_is_refused(holds, claims):
    with pytest.raises(ConfigError, match=r"damaged or crafted\); save it again"):
        audio.from_bytes(lying_wav(holds, claims), "lying.wav")


def test_a_header_that_claims_nothing_else_is_measured_from_the_samples():
    honest = lying_wav(3, 3)
    assert audio.from_bytes(honest, "a.wav").seconds == pytest.approx(3.0)


def test_webm_m4a_and_urls_are_typed_but_not_measured_and_refused_under_a_budget():
    webm = audio.from_bytes(b"\x1a\x45\xdf\xa3" + b"\x00" * 64, "talk.webm")
    m4a = audio.from_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + b"\x00" * 64, "talk.m4a")
    url = audio.recording("https://example.com/talk.mp3")
    for rec in (webm, m4a, url):
        assert rec.seconds is None and "length not known here" in rec.describe()
        with pytest.raises(BudgetExceeded, match="cannot be held under MistralMagics.budget_usd"):
            rec.held_seconds(rec.name)
    with pytest.raises(BudgetExceeded, match=r"ffmpeg -i talk.m4a talk.flac"):
        m4a.held_seconds("talk.m4a")
    assert url.upload() == {"file_url": "https://example.com/talk.mp3"}


def test_what_is_not_a_recording_is_refused_in_one_line(tmp_path):
    with pytest.raises(ConfigError, match="not a WAV, MP3, FLAC, OGG, WEBM or M4A recording"):
        audio.from_bytes(b"just some text", "notes.wav")
    with pytest.raises(ConfigError, match="no file"):
        audio.recording(str(tmp_path / "missing.wav"))
    with pytest.raises(ConfigError, match="is a dict"):
        audio.recording({"a": 1}, "x")


def test_an_ipython_audio_gives_its_bytes():
    from IPython.display import Audio

    rec = audio.recording(Audio(data=tone(1.0)), "clip")
    assert rec.format == "wav" and rec.seconds == pytest.approx(1.0)


def test_a_recording_that_unpacks_into_hours_is_refused_without_decoding_it_all(monkeypatch):
    monkeypatch.setattr(audio, "MAX_SECONDS", 5)
    with pytest.raises(ConfigError, match="longer than"):
        audio.from_bytes(tone(8.0, "FLAC"), "long.flac")


def test_held_seconds_round_up_and_add_one():
    rec = audio.from_bytes(tone(12.3), "a.wav")
    assert rec.held_seconds("a.wav") == 14


def test_a_chat_request_is_measured_from_every_recording_it_carries():
    first, second = tone(2.0), tone(3.0, "FLAC")
    messages = [{"role": "user", "content": [
        {"type": "text", "text": "hi"},
        {"type": "input_audio", "input_audio": base64.b64encode(first).decode()}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [
            {"type": "input_audio", "input_audio": base64.b64encode(second).decode()}]}]
    assert audio.seconds_in(messages) == pytest.approx(5.0)
    assert audio.seconds_in([{"role": "user", "content": "no audio"}]) == 0
    url = [{"role": "user", "content": [{"type": "input_audio", "input_audio": "https://x/y.mp3"}]}]
    assert audio.seconds_in(url) is None


def test_a_recording_given_as_a_document_says_how_to_send_it(tmp_path):
    path = tmp_path / "call.wav"
    path.write_bytes(tone(1.0))
    with pytest.raises(ConfigError, match="pass it with --audio"):
        document(str(path))
