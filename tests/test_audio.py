"""Audio in the notebook: %mistral transcribe, speak and voices, df.mistral.transcribe, and
%%mistral --audio / --speak, against the offline server through the official SDK; holds come
from the length measured here."""

from __future__ import annotations

import io

import pandas as pd
import pytest
import soundfile
from conftest import run
from recordings import lesson, lying_wav, tone
from test_interrupts import signal_when

import mistral_magic
from mistral_magic.errors import APIError, BudgetExceeded, ConfigError, Interrupted
from mistral_magic.money.prices import load_prices

PRICES = load_prices()
TRANSCRIPTIONS = "/v1/audio/transcriptions"


def session():
    return mistral_magic.session()


def finals_text(ip) -> str:
    return "\n".join(str(m["data"].get("text/plain", "")) for m in ip.display_pub.finals())


def html_of(ip) -> str:
    return "\n".join(str(m["data"].get("text/html", "")) for m in ip.display_pub.finals())


def error_of(ip, code: str):
    result = run(ip, code, ok=False)
    assert not result.success, f"{code!r} did not fail"
    return result.error_in_exec or result.error_before_exec


# -- %mistral transcribe -------------------------------------------------------------------------


def test_transcribe_streams_the_text_then_shows_the_segments(ip, tmp_path):
    lesson(tmp_path)
    run(ip, "%mistral transcribe call.wav --diarize -o calls")
    shown = finals_text(ip)
    assert "Good morning, thanks for calling Northwind." in shown
    assert "voxtral-mini-latest · 0.22 min of audio · $0.00065" in shown
    assert any("listening to call.wav: WAV, 0:12.3" in str(m.get("data")) for m in ip.display_pub.messages)
    calls = ip.user_ns["calls"]
    assert list(calls.columns) == ["start", "end", "speaker", "text"]
    assert calls["speaker"].tolist() == ["speaker_1", "speaker_2", "speaker_1"]
    assert calls["start"].tolist()[:2] == [0.0, 4.0] and str(calls["end"].dtype) == "float64"
    assert calls.attrs["text"].startswith("Good morning") and calls.attrs["language"] == "en"
    record = session().ledger.records[-1]
    assert (record.kind, record.status, record.model) == ("transcribe", "ok", "voxtral-mini-latest")
    assert record.audio_minutes == pytest.approx(13 / 60)  # what the server reports: 12.3 s up
    assert record.cost == pytest.approx(PRICES.audio_cost("voxtral-mini-latest", 13))
    stored = session().responses.guarded(lambda store: store.ledger.frame(), None)
    assert stored["audio_minutes"].iloc[-1] == pytest.approx(13 / 60)


def test_without_timestamps_the_frame_is_the_whole_text(ip, tmp_path):
    lesson(tmp_path)
    run(ip, "%mistral transcribe call.wav --language en --timestamps none --no-stream -o t")
    frame = ip.user_ns["t"]
    assert len(frame) == 1 and frame["text"][0].startswith("Good morning") and pd.isna(frame["start"][0])


def test_a_notebook_name_holding_bytes_or_an_audio_player_is_a_recording(ip, tmp_path):
    lesson(tmp_path)
    run(ip, "from pathlib import Path\nfrom IPython.display import Audio\n"
            "clip = Path('call.wav').read_bytes()\nplayer = Audio(data=clip)")
    run(ip, "%mistral transcribe clip -o a")
    run(ip, "%mistral transcribe player -o b")
    assert ip.user_ns["a"].attrs["text"] == ip.user_ns["b"].attrs["text"]
    assert "Northwind" in ip.user_ns["a"].attrs["text"] and ip.user_ns["a"].attrs["source"] == "clip"


@pytest.mark.parametrize("line, message", [
    ("call.wav --language fr", "cannot combine --language with timestamps"),
    ("call.wav --diarize --timestamps none", "--diarize labels segments"),
    ("call.wav -m voxtral-small-transcribe-latest --timestamps word", "segment timestamps, not word"),
    ("call.wav -m mistral-small-latest", "cannot transcribe audio"),
    ("call.wav --bias " + ",".join(f"w{i}" for i in range(101)), "at most 100"),
    ("call.txt", "not a WAV, MP3, FLAC, OGG, WEBM or M4A recording"),
])
def test_what_the_api_would_refuse_is_refused_before_sending(ip, tmp_path, magic_server, line, message):
    lesson(tmp_path)
    before = magic_server.request_count(TRANSCRIPTIONS)
    error = error_of(ip, f"%mistral transcribe {line}")
    assert isinstance(error, ConfigError) and message in str(error)
    assert magic_server.request_count(TRANSCRIPTIONS) == before and not session().ledger.records


def test_voxtral_3_takes_a_language_with_timestamps_and_bias_phrases(ip, tmp_path):
    lesson(tmp_path)
    run(ip, '%mistral transcribe call.wav -m voxtral-mini-transcribe-latest --language en --diarize '
            '--bias "Northwind, order number" -o t')
    assert ip.user_ns["t"]["speaker"].nunique() == 2
    assert session().last.request["bias"] == ["Northwind", "order_number"]


# -- holds from the measured length --------------------------------------------------------------


def test_the_budget_holds_the_measured_length_rounded_up_plus_a_second(ip, tmp_path, magic_server):
    lesson(tmp_path)  # 12.3 s: held as 14 s at $0.003 a minute
    held = PRICES.audio_cost("voxtral-mini-latest", 14)
    ip.run_line_magic("config", f"MistralMagics.budget_usd = {held * 0.99}")
    before = magic_server.request_count(TRANSCRIPTIONS)
    error = error_of(ip, "%mistral transcribe call.wav")
    assert isinstance(error, BudgetExceeded)
    assert "hearing call.wav (0.21 min of audio) may cost up to $0.0007" in str(error)
    assert magic_server.request_count(TRANSCRIPTIONS) == before
    ip.run_line_magic("config", f"MistralMagics.budget_usd = {held}")
    run(ip, "%mistral transcribe call.wav")
    assert session().ledger.spent <= held and session().budget.reserved == 0


@pytest.mark.parametrize("holds, claims", [(2, 3600), (60, 1), (3, 0)])
def test_a_wav_whose_header_lies_about_its_length_is_refused_and_not_sent(ip, tmp_path, magic_server,
                                                                          holds, claims):
    (tmp_path / "lie.wav").write_bytes(lying_wav(holds, claims))
    ip.run_line_magic("config", "MistralMagics.budget_usd = 1.0")
    before = magic_server.request_count(TRANSCRIPTIONS)
    error = error_of(ip, "%mistral transcribe lie.wav")
    assert isinstance(error, ConfigError) and "damaged or crafted" in str(error)
    assert magic_server.request_count(TRANSCRIPTIONS) == before and not session().ledger.records


def test_a_length_that_cannot_be_measured_here_is_refused_under_a_budget(ip, tmp_path):
    (tmp_path / "talk.m4a").write_bytes(b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00" + b"\x00" * 200)
    ip.run_line_magic("config", "MistralMagics.budget_usd = 1.0")
    error = error_of(ip, "%mistral transcribe talk.m4a")
    assert isinstance(error, BudgetExceeded) and "ffmpeg -i talk.m4a talk.flac" in str(error)
    error = error_of(ip, "%mistral transcribe https://example.com/talk.mp3")
    assert isinstance(error, BudgetExceeded) and "at a URL is not known" in str(error)
    ip.run_line_magic("config", "MistralMagics.budget_usd = None")
    error = error_of(ip, "%mistral transcribe talk.m4a")  # sent; the offline server cannot decode it
    assert isinstance(error, APIError) and "cannot decode M4A" in str(error)
    record = session().ledger.records[-1]
    assert record.status == "error" and record.cost == 0


# -- stop means stop -----------------------------------------------------------------------------


def test_an_interrupted_transcription_keeps_what_arrived_and_ends_the_cell(ip, tmp_path, magic_server):
    lesson(tmp_path)
    magic_server.set_faults({"token_delay_ms": 150})

    def streamed() -> bool:
        return any(m.get("update") and "Good" in str(m["data"]) for m in list(ip.display_pub.messages))

    signal_when(streamed)
    error = error_of(ip, "%mistral transcribe call.wav -o part")
    assert isinstance(error, Interrupted) and str(error).startswith("Stopped transcribing call.wav after")
    assert "interrupted" in finals_text(ip) and ip.user_ns["part"]["text"][0].startswith("Good")
    record = session().ledger.records[-1]
    assert record.status == "interrupted"
    # The server may have heard it all: the length measured here is what is recorded.
    assert record.audio_minutes == pytest.approx(12.3 / 60) and record.cost > 0
    assert session().budget.reserved == 0


# -- %mistral speak and voices -------------------------------------------------------------------


def test_speak_shows_a_player_and_is_priced_per_character(ip):
    text = "Hello there, class."
    run(ip, f'%mistral speak "{text}" --voice gb_jane_neutral -o said')
    said = ip.user_ns["said"]
    assert "<audio" in html_of(ip) and "audio/mpeg" in html_of(ip)
    assert f"{len(text)} characters spoken" in said.footer
    with soundfile.SoundFile(io.BytesIO(said.data)) as heard:
        assert 0.8 < heard.frames / heard.samplerate < 4
    record = session().ledger.records[-1]
    assert (record.kind, record.characters) == ("speech", len(text))
    assert record.cost == pytest.approx(len(text) * 16 / 1e6)


def test_speak_takes_a_name_holding_text_and_refuses_past_the_budget(ip):
    run(ip, "greeting = 'Good morning, everyone. Today we listen to a call.'")
    run(ip, "%mistral speak greeting --format wav -o said")
    assert ip.user_ns["said"].data[:4] == b"RIFF"
    assert session().ledger.records[-1].characters == len(ip.user_ns["greeting"])
    ip.run_line_magic("config", "MistralMagics.budget_usd = 0.000001")
    error = error_of(ip, "%mistral speak greeting")
    assert isinstance(error, BudgetExceeded) and "speaking 50 characters may cost up to" in str(error)


def test_an_unknown_voice_is_the_servers_one_line_and_costs_nothing(ip):
    error = error_of(ip, "%mistral speak Hello --voice nobody")
    assert isinstance(error, APIError) and "gb_jane_neutral" in str(error)
    assert session().ledger.records[-1].cost == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_voices_lists_the_backends_voices(ip):
    run(ip, "v = %mistral voices")
    frame = ip.user_ns["v"]
    assert list(frame.columns) == ["id", "slug", "name", "gender", "languages", "type", "description"]
    assert "gb_jane_neutral" in frame["slug"].tolist() and len(frame) == 6


# -- %%mistral --audio and --speak ---------------------------------------------------------------


def test_a_recording_goes_with_the_prompt_to_a_model_that_listens(ip, tmp_path):
    lesson(tmp_path)
    run(ip, "%%mistral --audio call.wav -m voxtral-small-latest -o said\nWhat is the order number?")
    said = ip.user_ns["said"]
    assert "WAV recording of 12.3 seconds" in said and "my order 4411 arrived broken" in said
    answer = session().last
    assert "+ 0.22 min of audio" in session().footer(answer)
    assert answer.audio_seconds == 13
    tokens_cost = PRICES.cost("voxtral-small-latest", answer.prompt_tokens, answer.completion_tokens)
    assert answer.cost == pytest.approx(tokens_cost + PRICES.audio_cost("voxtral-small-latest", 13))
    assert "call.wav: WAV, 0:12.3" in finals_text(ip)
    # A follow-up resends the recording with the history, and pays for its minutes again.
    run(ip, "%%mistral -m voxtral-small-latest\nAnd who called?")
    assert session().ledger.records[-1].audio_minutes == pytest.approx(13 / 60)


def test_a_model_that_cannot_listen_is_refused_naming_one_that_can(ip, tmp_path):
    lesson(tmp_path)
    error = error_of(ip, "%%mistral --audio call.wav\nWhat is said?")
    assert isinstance(error, ConfigError)
    assert "cannot listen to audio" in str(error) and "voxtral-small" in str(error)


def test_the_budget_holds_a_recordings_minutes_besides_its_tokens(ip, tmp_path, magic_server):
    lesson(tmp_path)
    minutes = PRICES.audio_cost("voxtral-small-latest", 14)  # 12.3 s held as 14
    ip.run_line_magic("config", f"MistralMagics.budget_usd = {minutes * 0.99}")
    before = magic_server.request_count("/v1/chat/completions")
    error = error_of(ip, "%%mistral --audio call.wav -m voxtral-small-latest\nSummarise.")
    assert isinstance(error, BudgetExceeded)
    assert magic_server.request_count("/v1/chat/completions") == before
    ip.run_line_magic("config", "MistralMagics.budget_usd = 0.01")
    run(ip, "%%mistral --audio call.wav -m voxtral-small-latest\nSummarise.")
    assert session().budget.reserved == 0 and session().ledger.spent <= 0.01


def test_speak_reads_the_answer_aloud_under_it(ip):
    from mistral_magic.calls.audio import readable

    run(ip, "%%mistral --speak\nSay hello to the class.")
    chat, spoken = session().ledger.records[-2:]
    assert (chat.kind, spoken.kind) == ("chat", "speech")
    assert spoken.characters == len(readable(session().chats.get("default").turns[-1].answer))
    assert "<audio" in html_of(ip)
    error = error_of(ip, "%%mistral --speak --json\nA JSON list of colours.")
    assert "--speak reads a text answer aloud" in str(error)


# -- df.mistral.transcribe -----------------------------------------------------------------------


def test_a_column_of_recordings_into_transcripts(ip, tmp_path):
    lesson(tmp_path)
    (tmp_path / "other.flac").write_bytes(tone(9.0, "FLAC"))
    (tmp_path / "notes.wav").write_text("not audio at all")
    run(ip, "import pandas as pd\n"
            "calls = pd.DataFrame({'path': ['call.wav', 'other.flac', '/etc/passwd', 'notes.wav']})\n"
            "out = calls.mistral.transcribe('path', diarize=True, progress=False)")
    out = ip.user_ns["out"]
    assert list(out.columns) == ["transcript", "segments", "_error"]
    assert out["transcript"][0].startswith("Good morning") and "filler" in out["transcript"][1]
    assert out["segments"][0][1] == {"start": 4.0, "end": 7.51, "speaker": "speaker_2",
                                     "text": "Hi, my order 4411 arrived broken."}
    assert "outside the root folder" in out["_error"][2] and "root=" in out["_error"][2]
    assert "not a WAV, MP3, FLAC, OGG, WEBM or M4A recording" in out["_error"][3]
    records = [r for r in session().ledger.records if r.kind == "transcribe"]
    assert sorted(r.audio_minutes for r in records) == pytest.approx([9 / 60, 13 / 60])
    run(ip, "again = calls.mistral.transcribe('path', diarize=True, progress=False)")
    assert len([r for r in session().ledger.records if r.kind == "transcribe"]) == 2  # resumed
    assert ip.user_ns["again"]["transcript"].tolist()[:2] == out["transcript"].tolist()[:2]
