"""The offline server's audio: transcription (streamed and not), recordings in chat, speech and
voices, through the official SDK, each body validated against Mistral's OpenAPI spec."""

from __future__ import annotations

import base64
import io
import json

import httpx
import pytest
import soundfile
from mistralai.client import Mistral, errors
from offline_spec import check_error_fixture, check_fixture, spec_fixture  # noqa: F401
from recordings import CALL, lesson, tone

from mistral_magic.offline import OfflineServer


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("lesson")


@pytest.fixture(scope="module")
def server(folder):
    with OfflineServer(transcripts=folder) as running:
        yield running


@pytest.fixture
def client(server):
    with Mistral(api_key=server.api_key, server_url=server.url) as sdk:
        yield sdk


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=30,
                      headers={"Authorization": f"Bearer {server.api_key}"}) as raw:
        yield raw


@pytest.fixture(scope="module")
def call(folder):
    return lesson(folder).read_bytes()


def upload(data: bytes, name: str = "clip.wav") -> dict:
    return {"file_name": name, "content": data}


def test_a_sidecar_gives_the_transcript_found_by_the_audio_bytes(client, call, check):
    got = client.audio.transcriptions.complete(
        model="voxtral-mini-latest", file=upload(call, "renamed-on-the-way.wav"), diarize=True,
        timestamp_granularities=["segment"])
    body = got.model_dump(mode="json", exclude_unset=True)
    check(body, "/v1/audio/transcriptions", "post")
    assert got.text.startswith("Good morning, thanks for calling Northwind.") and "4411" in got.text
    segments = [(s.start, s.end, s.speaker_id) for s in got.segments]
    # The timed line keeps its times; the others share what is left, by their length.
    assert segments[0] == (0.0, 4.0, "speaker_1")
    assert [s[2] for s in segments] == ["speaker_1", "speaker_2", "speaker_1"]
    assert segments[1][0] == 4.0 and segments[-1][1] == pytest.approx(12.3)
    assert got.usage.prompt_audio_seconds == 13  # 12.3 s, rounded up


def test_without_a_sidecar_the_transcript_is_labelled_filler_of_the_real_length(client):
    got = client.audio.transcriptions.complete(model="voxtral-mini-latest",
                                               file=upload(tone(21.0, "FLAC"), "talk.flac"),
                                               diarize=True, timestamp_granularities=["segment"])
    assert got.text.startswith("Offline transcript: the offline server cannot hear")
    assert len(got.segments) == 4 and got.segments[-1].end == pytest.approx(21.0)
    assert {s.speaker_id for s in got.segments} == {"speaker_1", "speaker_2"}
    assert got.usage.prompt_audio_seconds == 21
    plain = client.audio.transcriptions.complete(model="voxtral-mini-latest",
                                                 file=upload(tone(3.0, "MP3"), "a.mp3"))
    assert plain.segments == [] and plain.usage.prompt_audio_seconds == 3


def test_the_stream_sends_the_spec_events_in_order(client, call, http, check):
    events = list(client.audio.transcriptions.stream(
        model="voxtral-mini-transcribe-latest", file=upload(call), diarize=True,
        timestamp_granularities=["segment"], language="en", context_bias=["Northwind", "order_number"]))
    kinds = [e.event for e in events]
    assert kinds[0] == "transcription.language" and kinds[-1] == "transcription.done"
    assert kinds.count("transcription.segment") == 3 and "transcription.text.delta" in kinds
    deltas = "".join(e.data.text for e in events if e.event == "transcription.text.delta")
    assert deltas == events[-1].data.text
    assert events[-1].data.usage.prompt_tokens > 4  # the bias words are prompt tokens
    form = {"model": "voxtral-mini-latest", "stream": "true"}
    with http.stream("POST", "/v1/audio/transcriptions", data=form,
                     files={"file": ("c.wav", call, "audio/wav")}) as response:
        assert response.status_code == 200
        lines = [line for line in response.iter_lines() if line]
    frames = [(lines[i][len("event: "):], json.loads(lines[i + 1][len("data: "):]))
              for i in range(0, len(lines), 2)]
    for event, data in frames:
        check({"event": event, "data": data}, "/v1/audio/transcriptions#stream", "post",
              media="text/event-stream")


@pytest.mark.parametrize("args, message", [
    ({"diarize": True}, "diarize labels segments"),
    ({"language": "en", "timestamp_granularities": ["segment"]}, "cannot be combined"),
    ({"context_bias": [f"w{i}" for i in range(101)]}, "at most 100"),
])
def test_the_apis_refusals(client, call, args, message):
    with pytest.raises(errors.SDKError) as refused:
        client.audio.transcriptions.complete(model="voxtral-mini-latest", file=upload(call), **args)
    assert refused.value.status_code == 400 and message in refused.value.body


def test_voxtral_3_refuses_word_timestamps_and_voxtral_2_gives_them(client, call):
    with pytest.raises(errors.SDKError, match="segment timestamps only"):
        client.audio.transcriptions.complete(model="voxtral-small-transcribe-latest", file=upload(call),
                                             timestamp_granularities=["word"])
    words = client.audio.transcriptions.complete(model="voxtral-mini-latest", file=upload(call),
                                                 timestamp_granularities=["word"])
    assert [s.text for s in words.segments[:3]] == ["Good", "morning,", "thanks"]


def test_what_the_server_cannot_read_is_a_400_in_the_error_shape(http, check_error):
    for files, data, message in [
        ({"file": ("t.webm", b"\x1a\x45\xdf\xa3" + b"\0" * 40, "audio/webm")}, {}, "cannot decode WEBM"),
        ({"file": ("t.txt", b"hello", "text/plain")}, {}, "not a recording"),
        ({"file_url": (None, "https://example.com/a.mp3")}, {}, "no network"),
        ({"file": ("t.wav", tone(1.0), "audio/wav")}, {"model": "mistral-small-latest"}, "cannot transcribe"),
    ]:
        form = {"model": "voxtral-mini-latest", **data}
        response = http.post("/v1/audio/transcriptions", data=form, files=files)
        assert response.status_code == 400 and message in response.json()["message"]
        check_error(response, "/v1/audio/transcriptions", "post")
    missing = http.post("/v1/audio/transcriptions", files={"file": ("t.wav", tone(1.0), "audio/wav")})
    assert missing.status_code == 422
    check_error(missing, "/v1/audio/transcriptions", "post")


def test_a_recording_in_chat_is_measured_counted_and_heard_through_its_sidecar(client, call, check):
    message = [{"role": "user", "content": [
        {"type": "text", "text": "What is the order number?"},
        {"type": "input_audio", "input_audio": base64.b64encode(call).decode()}]}]
    got = client.chat.complete(model="voxtral-small-latest", messages=message)
    check(got.model_dump(mode="json", exclude_unset=True), "/v1/chat/completions", "post")
    assert "WAV recording of 12.3 seconds" in got.choices[0].message.content
    assert "my order 4411 arrived broken" in got.choices[0].message.content
    assert got.usage.prompt_audio_seconds == 13
    text_only = client.chat.complete(model="voxtral-small-latest",
                                     messages=[{"role": "user", "content": "What is the order number?"}])
    assert got.usage.prompt_tokens - text_only.usage.prompt_tokens == 375  # one 30-second chunk
    with pytest.raises(errors.SDKError, match="cannot take audio"):
        client.chat.complete(model="mistral-small-latest", messages=message)


def test_speech_is_a_real_file_of_a_plausible_length(client, http, check, spec):
    words = "This is a sentence of about fifteen words, read aloud by the offline stand-in voice today."
    for fmt in ("mp3", "wav", "flac", "opus"):
        got = client.audio.speech.complete(input=words, response_format=fmt, voice_id="gb_jane_neutral")
        data = base64.b64decode(got.audio_data)
        with soundfile.SoundFile(io.BytesIO(data)) as heard:
            assert heard.samplerate in (24000, 48000) and heard.channels == 1
            assert 3.0 < heard.frames / heard.samplerate < 9.0, fmt  # ~150 words a minute
    pcm = base64.b64decode(client.audio.speech.complete(input=words, response_format="pcm").audio_data)
    assert 3.0 < len(pcm) / 4 / 24000 < 9.0
    body = http.post("/v1/audio/speech", json={"input": "Hello.", "voice_id": "fr_marie_neutral"}).json()
    check(body, "/v1/audio/speech", "post")
    with http.stream("POST", "/v1/audio/speech", json={"input": "Hello there.", "stream": True}) as response:
        lines = [line for line in response.iter_lines() if line]
    frames = [(lines[i][len("event: "):], json.loads(lines[i + 1][len("data: "):])) for i in range(0, len(lines), 2)]
    assert frames[-1][0] == "speech.audio.done" and frames[0][0] == "speech.audio.delta"
    # This schema keeps its own $defs (refs relative to itself): validated standalone.
    from jsonschema import Draft202012Validator

    schema = spec["paths"]["/v1/audio/speech"]["post"]["responses"]["200"]["content"]["text/event-stream"]["schema"]
    for event, data in frames:
        Draft202012Validator(schema).validate({"event": event, "data": data})
    joined = b"".join(base64.b64decode(d["audio_data"]) for e, d in frames if e == "speech.audio.delta")
    assert joined[:3] in (b"ID3", b"\xff\xf3", b"\xff\xfb") or joined[0] == 0xFF


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the SDK flags /v1's offset paging
def test_voices_are_listed_got_and_sampled(client, http, check):
    listed = http.get("/v1/audio/voices", params={"limit": 2, "offset": 2})
    check(listed.json(), "/v1/audio/voices", "get")
    assert listed.json()["total"] == 6 and len(listed.json()["items"]) == 2
    every = client.audio.voices.list(limit=100)
    jane = next(v for v in every.items if v.slug == "gb_jane_neutral")
    assert client.audio.voices.get(voice_id=jane.id).name == "Jane"
    check(http.get(f"/v1/audio/voices/{jane.id}").json(), "/v1/audio/voices/{voice_id}", "get")
    sample = http.get(f"/v1/audio/voices/{jane.id}/sample")
    assert sample.headers["content-type"] == "audio/wav" and sample.content[:4] == b"RIFF"
    with pytest.raises(errors.SDKError) as unknown:
        client.audio.speech.complete(input="Hi", voice_id="nobody")
    assert unknown.value.status_code == 404 and "gb_jane_neutral" in unknown.value.body


def test_the_sidecar_text_format(folder):
    from mistral_magic.offline.audio import parse_sidecar, place

    lines = place(parse_sidecar(CALL + "# a comment\n\n[1:00 - 1:02] Carol: Late line.\n"), 62.0)
    assert [x.who for x in lines] == ["Alice", "Bob", "Alice", "Carol"]
    assert (lines[-1].start, lines[-1].end) == (60.0, 62.0) and lines[2].end == pytest.approx(60.0)
