"""Small things a user meets (issue 8, section 8): wording, footers, terminal tables, cleanup."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import textwrap
import warnings
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from conftest import close_shell, fresh_shell, run

import mistral_magic


def said(ip) -> str:
    """What the last command said (shown as a message, not returned as an Out[n] value)."""
    return ip.display_pub.messages[-1]["data"]["text/plain"]


def test_reset_counts_turns_in_good_english(ip):
    run(ip, "%%mistral\nOne.", cell_id="1")
    assert ip.run_line_magic("mistral", "reset") is None
    assert "(1 turn removed)" in said(ip)
    run(ip, "%%mistral\nOne.", cell_id="1")
    run(ip, "%%mistral\nTwo.", cell_id="2")
    ip.run_line_magic("mistral", "reset")
    assert "(2 turns removed)" in said(ip)


def footer(ip) -> str:
    final = [m for m in ip.display_pub.finals() if "mistral_magic" in m["metadata"]][-1]
    return final["data"]["text/plain"].rsplit("\n\n", 1)[-1]


def test_no_stream_footer_claims_no_speed(ip):
    run(ip, "%%mistral --no-stream\nSay hi.")
    assert "tok/s" not in footer(ip)
    assert mistral_magic.session().last.tokens_per_s is None
    run(ip, "%%mistral\nSay hi again.")  # a stream has a speed
    assert "tok/s" in footer(ip)


def test_terminal_tables_show_tokens_and_cost(ip):
    """As a 100-column terminal draws them (`terminal.table_text`): the columns that matter."""
    from mistral_magic.show.terminal import table_text

    run(ip, '%%mistral -s "You are a terse reviewer of physics homework."\n'
            "Explain entropy in a few words to a student of physics.", cell_id="8a1d2c4e-1111-2222-3333-444455556666")
    run(ip, "%%mistral -m mistral-embed\nAnd again.", cell_id="9a1d2c4e-1111-2222-3333-444455556666",
        ok=False)

    def drawn(command):
        frame = ip.run_line_magic("mistral", command)
        return table_text(frame, frame.terminal_columns, width=100)

    usage = drawn("usage")
    for column in ("model", "prompt_tokens", "completion_tokens", "cost", "status"):
        assert column in usage.splitlines()[0], usage
    history = drawn("history")
    for column in ("turn", "role", "text", "tokens", "cost"):
        assert column in history.splitlines()[0], history
    chats = drawn("chats")
    for column in ("chat", "turns", "tokens", "cost"):
        assert column in chats.splitlines()[0], chats
    widest = max((usage + "\n" + history + "\n" + chats).splitlines(), key=len)
    assert len(widest) <= 100, widest


def test_usage_times_are_rounded_to_the_second(ip):
    run(ip, "%%mistral\nOne.")
    usage = ip.run_line_magic("mistral", "usage")
    stamp = usage["time"].iloc[0]
    assert stamp.microsecond == 0 and stamp.nanosecond == 0 and str(stamp.tz) == "UTC"
    assert list(usage.columns[:3]) == ["model", "prompt_tokens", "completion_tokens"]


def test_batch_job_times_are_datetimes(ip):
    from mistral_magic.rows import batch

    client = mistral_magic.session().backend.client
    job_id = batch.submit(client, "mistral-small-latest", [
        {"custom_id": "0", "body": {"messages": [{"role": "user", "content": "hi"}]}}])
    jobs = ip.run_line_magic("mistral", "batch list")
    assert str(jobs["created_at"].dtype) == "datetime64[ns, UTC]"
    status = ip.run_line_magic("mistral", f"batch status {job_id}")
    assert isinstance(status["created_at"], datetime)
    assert status["created_at"].tzinfo is timezone.utc
    assert abs((datetime.now(timezone.utc) - status["created_at"]).total_seconds()) < 600


def test_closed_test_shells_leave_nothing_for_exit():
    # Each shell's atexit handler runs a full garbage collection; a hundred of them kept
    # the finished test run waiting half a minute. Count how many still run at exit.
    code = textwrap.dedent("""
        import atexit
        from IPython.core.interactiveshell import InteractiveShell
        ran = []
        atexit.register(lambda: print("at exit:", len(ran)))  # registered first, runs last
        original = InteractiveShell.atexit_operations
        InteractiveShell.atexit_operations = lambda self: ran.append(self) or original(self)
        from conftest import close_shell, fresh_shell
        for _ in range(3):
            close_shell(fresh_shell())
    """)
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True)
    assert out.stdout.strip() == "at exit: 0", out.stdout + out.stderr


def pools(session) -> tuple:
    config = session.backend.client.sdk_configuration
    return config.client, config.async_client


def test_a_replaced_backend_and_unloading_close_their_connections(ip):
    run(ip, "%%mistral --no-stream\nA call through the sync pool.")
    frame = pd.DataFrame({"text": ["Ada is 36.", "Bob is 41."]})
    frame.mistral.extract("{text}", schema="name, age int", progress=False)  # the async pool
    session = mistral_magic.session()
    first = pools(session)
    assert not any(pool.is_closed for pool in first)
    ip.run_line_magic("config", "MistralMagics.max_retries = 1")  # settings for a new backend
    run(ip, "%%mistral\nAnd one more through the new one.")
    frame.mistral.extract("{text}", schema="name, age int", progress=False)
    second = pools(session)
    assert all(pool.is_closed for pool in first) and not any(p.is_closed for p in second)
    ip.run_line_magic("unload_ext", "mistral_magic")
    try:
        assert all(pool.is_closed for pool in second)
    finally:
        ip.run_line_magic("load_ext", "mistral_magic")


def test_unloading_leaves_no_unclosed_socket(magic_server, monkeypatch, tmp_path):
    monkeypatch.delenv("MISTRAL_API_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    shell = fresh_shell()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        shell.run_line_magic("load_ext", "mistral_magic")
        run(shell, "%%mistral --no-stream\nA call through the sync pool.")
        shell.user_ns["frame"] = pd.DataFrame({"text": ["Ada is 36.", "Bob is 41."]})
        run(shell, "frame.mistral.extract('{text}', schema='name, age int', progress=False);")
        shell.run_line_magic("unload_ext", "mistral_magic")
        shell.reset()  # what IPython does at exit, so the garbage collector sees everything
        close_shell(shell)
        del shell
        gc.collect()
    leaks = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert leaks == []



def tls_context(pool):
    return pool._transport._pool._ssl_context


def test_the_two_pools_share_one_tls_context_and_a_dropped_client_closes_them():
    # Loading the CA certificates is most of what a client costs: done once, not per pool.
    from mistral_magic.calls.backend import Backend, resolve

    backend = Backend(resolve("auto", "global", "https://gpu-box.example:8000", None), None, 0, 10)
    config = backend.client.sdk_configuration
    sync_pool, async_pool = config.client, config.async_client
    assert tls_context(sync_pool) is tls_context(async_pool)
    assert tls_context(sync_pool).verify_mode.name == "CERT_REQUIRED"  # still verified
    assert not sync_pool.is_closed and not async_pool.is_closed
    del config
    backend._client = None  # dropped without close(): collected, its pools are closed
    gc.collect()
    assert sync_pool.is_closed and async_pool.is_closed
