"""Failures, retries, interrupts and bad input: one clear line, and nothing lost."""

from __future__ import annotations

import _thread
import re
import signal
import threading
import time

import pandas as pd
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


def plain(text: str) -> str:
    """Terminal text without its colours."""
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


CHAT = "/v1/chat/completions"
# Below 1 request/s the offline server's window widens to fit one request: 0.4/s is one
# request per 2.5 s, so a 429 asks for about 2.5 s (`retry-after-ms`) or 3 s (`Retry-After`),
# far longer than the SDK's own first backoff (0.5 s).
SLOW_RPS, WINDOW_S = 0.4, 2.5


def test_rate_limit_is_retried_honouringretry_after(ip, magic_server):
    # Contrast first: a 503 carries no Retry-After, so the SDK retries after its own backoff.
    # Short answers keep each call well inside the rate window below.
    magic_server.set_faults({"error_status": 503, "error_on_nth": [1], "answer_tokens": 5})
    before = magic_server.request_count(CHAT)
    run(ip, "%%mistral --no-stream\nSurvive a 503.")
    assert magic_server.request_count(CHAT) - before == 2
    backoff_wait = mistral_magic.session().last.latency_s
    assert backoff_wait < WINDOW_S  # so waiting out the window below is the header's doing

    magic_server.set_faults({"rate_limit_rps": SLOW_RPS, "answer_tokens": 5})
    before = magic_server.request_count(CHAT)
    started = time.perf_counter()
    run(ip, "%%mistral --no-stream\nFirst.")
    run(ip, "%%mistral --no-stream\nSecond, straight after.")  # 429, then one retry
    waited = time.perf_counter() - started
    # One 429 and exactly one retry: retrying on the SDK's own backoff (0.5 s, 1 s, ...)
    # would have hit the window again and shown more requests.
    assert magic_server.request_count(CHAT) - before == 3
    # The first request was admitted after `started`; the window holds the next for 2.5 s.
    assert waited >= WINDOW_S
    usage = ip.run_line_magic("mistral", "usage")
    assert list(usage["status"]) == ["ok", "ok", "ok"]


def test_extraction_pauses_every_row_forretry_after(ip, magic_server):
    magic_server.set_faults({"rate_limit_rps": SLOW_RPS})
    df = pd.DataFrame({"text": ["Alice is 31.", "Bob is 45."]})
    before = magic_server.request_count(CHAT)
    started = time.perf_counter()
    out = df.mistral.extract("{text}", schema="name, age int", concurrency=2, max_retries=3,
                             progress=False)
    waited = time.perf_counter() - started
    assert out["_error"].isna().all() and list(out["age"]) == [31, 45]
    # One row goes, the other gets a 429 and waits out its retry-after-ms: three requests.
    # A pause of the default 1 s (header ignored) would have drawn a second 429.
    assert magic_server.request_count(CHAT) - before == 3
    assert waited >= WINDOW_S
    assert [r.status for r in mistral_magic.session().ledger.records] == ["ok", "ok"]


def test_retry_after_headers_set_the_extraction_pause(sdk, offline_server):
    import httpx2
    from mistralai.client import errors

    from mistral_magic.calls.backend import retry_config
    from mistral_magic.calls.limiter import retry_after

    offline_server.set_faults({"rate_limit_rps": SLOW_RPS})
    try:
        messages = [{"role": "user", "content": "hi"}]
        sdk.chat.complete(model="mistral-small-latest", messages=messages)
        with pytest.raises(errors.SDKError) as caught:
            sdk.chat.complete(model="mistral-small-latest", messages=messages,
                              retries=retry_config(0))
    finally:
        offline_server.set_faults(None)
    real = caught.value
    assert real.status_code == 429
    exact = int(real.headers["retry-after-ms"]) / 1000
    assert 1.5 < exact <= WINDOW_S
    assert retry_after(real) == pytest.approx(exact)

    def rate_limited(headers: dict) -> errors.SDKError:
        response = httpx2.Response(429, headers=headers, text="{}")
        return errors.SDKError("Rate limit exceeded", response)

    assert retry_after(rate_limited({"Retry-After": "3"})) == 3.0
    assert retry_after(rate_limited({"retry-after-ms": "2500"})) == 2.5
    assert retry_after(rate_limited({"Retry-After": "3", "retry-after-ms": "2500"})) == 2.5


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
    assert "no-such-model" in line and line.count("%mistral models") == 1


def interrupt_when_streaming(publisher) -> None:
    """The kernel's interrupt, fired once the first streamed update reached the front end."""
    seen_text = threading.Event()
    original = publisher.publish

    def watch(data, *args, **kwargs):
        original(data, *args, **kwargs)
        if kwargs.get("update"):
            seen_text.set()

    publisher.publish = watch

    def interrupt():
        if seen_text.wait(10):
            _thread.interrupt_main()

    threading.Thread(target=interrupt, daemon=True).start()


def test_interrupt_ends_the_cell_as_interrupted_and_keeps_the_partial_answer(ip, magic_server,
                                                                            capsys):
    magic_server.set_faults({"token_delay_ms": 15, "answer_tokens": 600})
    publisher = ip.display_pub
    interrupt_when_streaming(publisher)
    result = run(ip, "%%mistral -o essay\nA very long answer please.",
                 cell_id="long", ok=False)
    # The cell ends as interrupted (Jupyter then drops the queued cells), in one line.
    assert isinstance(result.error_in_exec, KeyboardInterrupt)
    assert type(result.error_in_exec).__name__ == "Interrupted"
    line = plain(one_line_error(capsys))
    assert line.startswith("Interrupted: Stopped after ") and "kept in chat 'default'" in line
    session = mistral_magic.session()
    last = session.last
    assert last.status == "interrupted"
    assert 0 < last.completion_tokens < 600
    assert ip.user_ns["essay"] == last.text and last.text  # -o keeps what arrived
    final = publisher.finals()[-1]
    assert "interrupted" in final["data"]["text/html"]
    assert final["metadata"]["mistral_magic"]["status"] == "interrupted"
    assert session.ledger.records[-1].status == "interrupted"
    turn = session.chats.get("default").turns[-1]
    assert turn.status == "interrupted" and turn.answer == last.text
    magic_server.set_faults(None)
    # "continue" works: the partial answer is in the context the next cell sends.
    run(ip, "%%mistral\nPlease continue.", cell_id="after")
    messages = session.last.request["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert messages[1]["content"] == turn.answer
    history = ip.run_line_magic("mistral", "history")
    assert history["status"].tolist()[:2] == ["interrupted", "interrupted"]


def test_interrupt_before_any_text_keeps_no_turn_and_says_so(ip, magic_server, capsys):
    magic_server.set_faults({"ttft_ms": 20_000})
    before = magic_server.request_count()

    main = threading.main_thread().ident

    def interrupt_once_sent():
        for _ in range(2000):
            if magic_server.request_count() > before:
                # A real SIGINT to the kernel's thread, as Jupyter sends: it wakes a blocked read.
                signal.pthread_kill(main, signal.SIGINT)
                return
            time.sleep(0.005)

    threading.Thread(target=interrupt_once_sent, daemon=True).start()
    result = run(ip, "%%mistral -o answer\nHello?", cell_id="quiet", ok=False)
    assert type(result.error_in_exec).__name__ == "Interrupted"
    line = plain(one_line_error(capsys))
    assert line == ("Interrupted: Stopped before any answer arrived; nothing was kept in "
                    "chat 'default'")
    session = mistral_magic.session()
    assert session.chats.get("default").turns == []
    assert session.ledger.records[-1].status == "interrupted"
    assert session.budget.reserved == 0


OPTION_WORDS = ["-m", "-t", "--max-tokens", "--seed", "-s", "-c", "--new", "--no-history", "-o",
                "--no-stream", "--format", "--json", "--schema", "--many", "--no-interpolate",
                "markdown", "code", "x", "1.2", "-3", "abc", "'a b'", '"', "'", "2", "{x}", "--"]


# A magic's line never holds a line break, so the words have none either.
line_text = st.text(alphabet=st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)),
                    max_size=6)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(st.one_of(st.sampled_from(OPTION_WORDS), line_text), max_size=6))
def test_any_argument_string_gives_a_usage_error_or_works(ip, magic_server, words):
    line = " ".join(words) + " --dry-run"
    shown_before = len(ip.display_pub.messages)
    sent_before = magic_server.request_count()
    try:
        result = ip.run_cell_magic("mistral", line, "hello")
    except (UsageError, MistralMagicError) as exc:  # e.g. a bad --schema: still one line
        message = str(exc).strip()
        assert message and "\n" not in message, message
        assert "Traceback" not in message
    else:
        assert result is None
        shown = [m for m in ip.display_pub.messages[shown_before:] if "data" in m]
        summary = shown[-1]["data"]["text/plain"]
        assert "Dry run — nothing sent" in summary and "prompt tokens" in summary
        assert '"content": "hello"' in summary  # the body, sent as it is
    assert magic_server.request_count() == sent_before
    assert mistral_magic.session().ledger.records == []
