"""Failures, retries, interrupts and bad input: one clear line, and nothing lost."""

from __future__ import annotations

import _thread
import threading

import pytest
from conftest import run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

import mistral_magic
from mistral_magic.errors import MistralMagicError


def one_line_error(capsys) -> str:
    out = capsys.readouterr()
    text = (out.out + out.err).strip()
    assert text.count("\n") == 0, text
    return text


def test_rate_limit_is_retried_honouring_retry_after(ip, magic_server):
    magic_server.set_faults({"rate_limit_rps": 1})
    run(ip, "%%mistral --no-stream\nFirst.")
    run(ip, "%%mistral --no-stream\nSecond, straight after.")  # 429 once, then retried
    usage = ip.run_line_magic("mistral", "usage")
    assert list(usage["status"]) == ["ok", "ok"]
    assert usage["latency_s"].iloc[1] >= 0.2  # it waited for the window to pass


def test_server_error_on_first_try_is_retried(ip, magic_server):
    magic_server.set_faults({"error_status": 503, "error_on_nth": [1]})
    run(ip, "%%mistral\nSurvive a 503.")
    assert mistral_magic.session().last.status == "ok"


def test_persistent_failure_is_one_line_and_recorded(ip, magic_server, capsys):
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    run(ip, "%%mistral\nA good turn.", cell_id="good")
    magic_server.set_faults({"error_status": 503})
    result = run(ip, "%%mistral\nThis one fails.", cell_id="bad", ok=False)
    assert not result.success
    line = one_line_error(capsys)
    assert "503" in line and "mistral-small-latest" in line and "max_retries" in line
    session = mistral_magic.session()
    assert [r.status for r in session.ledger.records] == ["ok", "error"]
    assert session.ledger.records[1].cost == 0
    chat = session.chats.get("default")
    assert [t.status for t in chat.turns] == ["ok", "error"]
    magic_server.set_faults(None)
    run(ip, "%%mistral\nNext question.", cell_id="next")
    sent = [m["content"] for m in session.last.request["messages"] if m["role"] == "user"]
    assert sent == ["A good turn.", "Next question."]  # the failed turn is not context
    run(ip, "%%mistral\nThis one fails.", cell_id="bad")  # re-run fixes the turn in place
    assert [t.status for t in chat.turns] == ["ok", "ok", "ok"]


def test_dropped_stream_keeps_partial_marked_and_counted(ip, magic_server, capsys):
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    magic_server.set_faults({"drop_stream_after": 12})
    result = run(ip, "%%mistral\nTell me a story.", ok=False)
    assert not result.success
    assert "mistral-small-latest" in one_line_error(capsys)
    last = mistral_magic.session().last
    assert last.status == "error" and last.text
    assert last.completion_tokens > 0 and last.cost > 0  # what was streamed is still counted
    final = ip.display_pub.finals()[-1]
    assert "broke off" in final["data"]["text/html"]
    assert mistral_magic.session().ledger.records[-1].status == "error"


def test_timeout_is_one_line(ip, magic_server, capsys):
    ip.run_line_magic("config", "MistralMagics.timeout_s = 0.3")
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    magic_server.set_faults({"ttft_ms": 1500})
    result = run(ip, "%%mistral --no-stream\nSlow.", ok=False)
    assert not result.success
    assert "timed out" in one_line_error(capsys)


def test_debug_reraises_the_original_error(ip, magic_server):
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    ip.run_line_magic("config", "MistralMagics.debug = True")
    magic_server.set_faults({"error_status": 500})
    with pytest.raises(Exception) as info:
        ip.run_cell_magic("mistral", "", "Fail loudly.")
    assert not isinstance(info.value, MistralMagicError)
    assert getattr(info.value, "status_code", None) == 500


def test_unknown_model_names_the_fix(ip, capsys):
    result = run(ip, "%%mistral -m no-such-model\nHi", ok=False)
    assert not result.success
    line = one_line_error(capsys)
    assert "no-such-model" in line and "%mistral models" in line


def test_interrupt_ends_stream_cleanly_and_keeps_partial(ip, magic_server):
    magic_server.set_faults({"token_delay_ms": 15, "answer_tokens": 600})
    publisher = ip.display_pub
    seen_text = threading.Event()

    original = publisher.publish

    def watch(data, *args, **kwargs):
        original(data, *args, **kwargs)
        if kwargs.get("update"):
            seen_text.set()

    publisher.publish = watch

    def interrupt_when_streaming():
        if seen_text.wait(10):
            _thread.interrupt_main()

    threading.Thread(target=interrupt_when_streaming, daemon=True).start()
    result = run(ip, "%%mistral\nA very long answer please.", cell_id="long", ok=False)
    assert result.success, "an interrupt ends the stream cleanly, without an error"
    session = mistral_magic.session()
    last = session.last
    assert last.status == "interrupted"
    assert 0 < last.completion_tokens < 600
    final = publisher.finals()[-1]
    assert "interrupted" in final["data"]["text/html"]
    assert final["metadata"]["mistral_magic"]["status"] == "interrupted"
    assert session.ledger.records[-1].status == "interrupted"
    assert session.chats.get("default").turns[-1].status == "interrupted"
    magic_server.set_faults(None)
    run(ip, "%%mistral\nStill usable?", cell_id="after")
    assert [m["role"] for m in session.last.request["messages"]] == ["user"]


OPTION_WORDS = ["-m", "-t", "--max-tokens", "--seed", "-s", "-c", "--new", "--no-history", "-o",
                "--no-stream", "--format", "--json", "--schema", "--many", "--no-interpolate",
                "markdown", "code", "x", "1.2", "-3", "abc", "'a b'", '"', "'", "2", "{x}", "--"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.one_of(st.sampled_from(OPTION_WORDS), st.text(max_size=6)), max_size=6))
def test_any_argument_string_gives_a_usage_error_or_works(ip, words):
    line = " ".join(words) + " --dry-run"
    try:
        ip.run_cell_magic("mistral", line, "hello")
    except UsageError:
        pass
    except MistralMagicError:
        pass  # e.g. a bad --schema: still one line, no traceback
    assert mistral_magic.session().ledger.records == []
