"""Every failure is one line that names its fix (issue 8, sections 3 and 4), in a real shell."""

from __future__ import annotations

import _thread
import math
import re
import socket
import subprocess
import sys
import textwrap
import uuid

import pandas as pd
import pytest
from conftest import run
from IPython.core.error import UsageError
from standalone import KEY, standalone_server

import mistral_magic
from mistral_magic.errors import ConfigError, PromptError, SchemaError, StructuredOutputError
from mistral_magic.money import tokens
from mistral_magic.offline import OfflineServer


def one_line(capsys) -> str:
    out = capsys.readouterr()
    text = (out.out + out.err).strip()
    assert text.count("\n") == 0, text
    assert "Traceback" not in text
    return text


@pytest.fixture
def closed_port_url():
    """A loopback URL where nothing listens: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def guarded_server():
    """A second offline server whose key the shell does not have, standing in for a self-hosted one."""
    with OfflineServer(api_key="the-servers-own-key") as server:
        yield server


# -- commands that talk to the server -------------------------------------------------


def test_models_on_401_is_one_line_naming_the_key(ip, guarded_server, capsys):
    ip.run_line_magic("config", f"MistralMagics.server_url = {guarded_server.url!r}")
    ip.run_line_magic("config", "MistralMagics.server_key = 'wrong-key'")
    result = run(ip, "%mistral models", ok=False)
    assert not result.success
    line = one_line(capsys)
    assert "401" in line and "server_key" in line


def test_models_when_unreachable_is_one_line(ip, closed_port_url, capsys):
    ip.run_line_magic("config", f"MistralMagics.server_url = {closed_port_url!r}")
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    result = run(ip, "%mistral models", ok=False)
    assert not result.success
    line = one_line(capsys)
    assert line.startswith("\x1b[0;31mAPIError") or "APIError" in line
    assert "Could not reach" in line and "server_url" in line


@pytest.mark.parametrize(
    "command, fragment",
    [
        ("batch status not-a-job-id", "is not a batch job id"),
        (f"batch status {uuid.UUID(int=7)}", "no batch job"),
        (f"batch cancel {uuid.UUID(int=7)}", "no batch job"),
    ],
)
def test_batch_commands_on_404_and_422_are_one_line(ip, capsys, command, fragment):
    result = run(ip, f"%mistral {command}", ok=False)
    assert not result.success
    line = one_line(capsys)
    assert fragment in line and "%mistral batch list" in line


def test_batch_list_when_unreachable_is_one_line(ip, closed_port_url, capsys):
    ip.run_line_magic("config", f"MistralMagics.server_url = {closed_port_url!r}")
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    result = run(ip, "%mistral batch list", ok=False)
    assert not result.success
    assert "Could not reach" in one_line(capsys)


def test_debug_still_shows_the_sdk_error(ip):
    from mistralai.client.errors import SDKError

    ip.run_line_magic("config", "MistralMagics.debug = True")
    with pytest.raises(SDKError):
        ip.run_line_magic("mistral", "batch status not-a-job-id")


# -- $name and {name} in commands ------------------------------------------------------


def test_commands_expand_names_like_any_line_magic(ip):
    from mistral_magic.rows import batch

    client = mistral_magic.session().backend.client
    job_id = batch.submit(client, "mistral-small-latest", [
        {"custom_id": "0", "body": {"messages": [{"role": "user", "content": "hi"}]}}])
    ip.user_ns["job_id"] = job_id
    run(ip, "status = %mistral batch status {job_id}")
    assert ip.user_ns["status"]["id"] == job_id
    run(ip, "again = %mistral batch status $job_id")
    assert ip.user_ns["again"]["id"] == job_id
    ip.user_ns["text"] = "A sentence with several tokens in it."
    run(ip, "n = %mistral tokens {text}")
    assert ip.user_ns["n"] == tokens.count_text(ip.user_ns["text"])


def test_commands_expand_a_functions_local_names(ip):
    words = "a local sentence, long enough that its count differs from its name's"
    run(ip, "def count(words):\n    n = %mistral tokens {words}\n    return n\n"
            f"n = count({words!r})")
    assert ip.user_ns["n"] == tokens.count_text(words) != tokens.count_text("{words}")


def test_cell_line_is_not_expanded_by_ipython(ip):
    ip.user_ns["role"] = "SHOULD-NOT-APPEAR"
    run(ip, '%%mistral --dry-run -s "Keep {role} as written" -o req\nHi')
    assert ip.user_ns["req"]["messages"][0]["content"] == "Keep {role} as written"


# -- %mistral key without a front end --------------------------------------------------
# (the headless kernel itself is driven in test_kernel.py)


def test_key_prompt_without_stdin_is_one_line(ip, capsys):
    from IPython.core.error import StdinNotImplementedError

    def no_stdin(prompt=""):
        raise StdinNotImplementedError("getpass was called, but this frontend does not support input requests.")

    # ipykernel puts exactly this in place of getpass when the front end has no stdin
    import getpass

    original, getpass.getpass = getpass.getpass, no_stdin
    try:
        result = run(ip, "%mistral key", ok=False)
    finally:
        getpass.getpass = original
    assert not result.success
    line = one_line(capsys)
    assert "MISTRAL_API_KEY" in line and ".env" in line


# -- arguments that could never work ---------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"requests_per_second": 0}, "requests_per_second must be a number above 0"),
        ({"requests_per_second": -2}, "requests_per_second must be a number above 0"),
        ({"requests_per_second": math.nan}, "requests_per_second"),
        ({"tokens_per_minute": 0}, "tokens_per_minute must be a number above 0"),
        ({"tokens_per_minute": -100}, "tokens_per_minute"),
        ({"concurrency": 0}, "concurrency must be a whole number of at least 1"),
        ({"concurrency": 2.5}, "concurrency"),
    ],
)
def test_impossible_limits_are_refused_before_sending(ip, magic_server, kwargs, fragment):
    df = pd.DataFrame({"text": ["Ada is 36."]})
    before = magic_server.request_count()
    with pytest.raises(ConfigError, match=fragment):
        df.mistral.extract("{text}", schema="name, age int", progress=False, **kwargs)
    assert magic_server.request_count() == before


def test_accessor_after_unload_is_one_line(ip, capsys):
    ip.user_ns["df"] = pd.DataFrame({"text": ["Ada is 36."]})
    ip.run_line_magic("unload_ext", "mistral_magic")
    try:
        result = run(ip, "df.mistral.extract('{text}', schema='name')", ok=False)
        assert isinstance(result.error_in_exec, ConfigError)
        line = one_line(capsys)
        assert "%load_ext mistral_magic" in line
    finally:
        ip.run_line_magic("load_ext", "mistral_magic")


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("__builtins__", "starts with _"),
        ("_private", "starts with _"),
        ("print", "built-in print"),
        ("len", "built-in len"),
        ("class", "not a valid Python variable name"),
        ("In", "IPython's own In"),
        ("get_ipython", "get_ipython"),
        ("Out", "IPython's own Out"),
    ],
)
def test_output_names_that_would_break_the_shell_are_refused(ip, name, fragment):
    with pytest.raises(UsageError, match=fragment):
        ip.run_cell_magic("mistral", f"--dry-run -o {name}", "hello")
    run(ip, "print('still here')")  # the next cell keeps its builtins
    assert "print" not in ip.user_ns


def test_empty_schema_is_refused(ip, magic_server):
    before = magic_server.request_count()
    with pytest.raises(SchemaError, match="--schema is empty"):
        ip.run_cell_magic("mistral", "--schema ''", "Ada is 36.")
    assert magic_server.request_count() == before


def test_misspelt_model_name_is_refused_not_a_one_field_schema(ip, magic_server):
    before = magic_server.request_count()
    message = ("--schema NotDefinedModel: NotDefinedModel is not defined in the notebook; "
               "define the pydantic model, or write a DSL")
    with pytest.raises(SchemaError, match=message):
        ip.run_cell_magic("mistral", "--schema NotDefinedModel", "Ada is 36.")
    with pytest.raises(SchemaError, match="NotDefinedModel is not defined"):
        pd.DataFrame({"t": ["Ada"]}).mistral.extract("{t}", schema="NotDefinedModel",
                                                      progress=False)
    assert magic_server.request_count() == before
    # a lower-case word is still a one-field schema
    run(ip, "%%mistral --schema name -o people\nAda is 36.")
    assert list(ip.user_ns["people"].columns) == ["name"]


# -- a stream that breaks off ----------------------------------------------------------


def test_dropped_stream_says_the_answer_broke_off(ip, magic_server, capsys):
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    magic_server.set_faults({"drop_stream_after": 5})
    result = run(ip, "%%mistral\nTell me a story.", ok=False)
    assert not result.success
    line = one_line(capsys)
    assert "reached" in line and "broke off" in line
    assert "Could not reach" not in line and "check your network" not in line


def test_unreachable_server_in_a_cell_says_could_not_reach(ip, closed_port_url, capsys):
    ip.run_line_magic("config", f"MistralMagics.server_url = {closed_port_url!r}")
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    result = run(ip, "%%mistral\nHello?", ok=False)
    assert not result.success
    assert "Could not reach" in one_line(capsys)


# -- values a column cannot hold ------------------------------------------------------

HUGE = "Bob is 99999999999999999999 years old."


def test_huge_integer_is_the_rows_error_and_never_cached(ip, magic_server):
    df = pd.DataFrame({"text": ["Ada is 36 years old.", HUGE, "Cy is 7 years old."]})
    out = df.mistral.extract("{text}", schema="name, age int", progress=False)
    assert out["age"].tolist()[0] == 36 and out["age"].tolist()[2] == 7
    assert out["_error"].isna().tolist() == [True, False, True]
    assert "too large" in out["_error"][1] and "$.age" in out["_error"][1]
    session = mistral_magic.session()
    assert len(session.cache) == 2  # the bad record never entered the cache
    before = magic_server.request_count()
    again = df.mistral.extract("{text}", schema="name, age int", progress=False)
    assert "too large" in again["_error"][1]
    assert magic_server.request_count() - before == 2  # only the bad row, asked and re-asked


def test_huge_integer_in_a_schema_cell_is_one_line_and_keeps_the_raw_text(ip, capsys):
    result = run(ip, f'%%mistral --schema "name, age int" -o person\n{HUGE}', ok=False)
    assert isinstance(result.error_in_exec, StructuredOutputError)
    assert "too large" in one_line(capsys)
    assert '"age"' in mistral_magic.session().last.text  # the paid answer is kept
    assert "person" not in ip.user_ns


def test_numbers_too_large_for_their_column_are_refused_by_parse():
    from mistral_magic.structured.schema import SchemaSpec

    spec = SchemaSpec.from_spec("age int, score float")
    with pytest.raises(StructuredOutputError, match=r"\$\.age .* 64-bit"):
        spec.parse('{"age": 9223372036854775808, "score": 1}')
    with pytest.raises(StructuredOutputError, match=r"\$\.score .* float64"):
        spec.parse('{"age": 1, "score": 1' + "0" * 400 + "}")
    with pytest.raises(StructuredOutputError, match=r"\$\.items\[1\]\.age"):
        spec.parse('{"items": [{"age": 1, "score": 1}, {"age": -9223372036854775809, '
                   '"score": 1}]}', many=True)
    edge = spec.parse('{"age": 9223372036854775807, "score": 1e300}')
    frame = spec.to_frame(edge)
    assert frame["age"].iloc[0] == 2**63 - 1 and str(frame["age"].dtype) == "Int64"


# -- format specs ---------------------------------------------------------------------


def test_conversion_and_format_spec_together(ip):
    ip.user_ns["x"] = "ab"
    ip.user_ns["n"] = 3.14159
    run(ip, "%%mistral --dry-run -o req\n[{x!r:>10}] [{x!s:<4}] [{n:.2f}] [{x!a}]")
    assert ip.user_ns["req"]["messages"][-1]["content"] == "[      'ab'] [ab  ] [3.14] ['ab']"


# -- missing text ---------------------------------------------------------------------


MISSING = [None, math.nan, pd.NA, "", "   \n"]


def test_missing_text_in_the_prompt_column_is_not_sent(ip, magic_server):
    df = pd.DataFrame({"text": ["Ada is 36.", *MISSING, "Cy is 7."]}, dtype=object)
    before = magic_server.request_count()
    out = df.mistral.extract("text", schema="name, age int", progress=False)
    assert magic_server.request_count() - before == 2
    assert out["_error"].isna().tolist() == [True] + [False] * 5 + [True]
    assert out["_error"][1:6].str.contains("column 'text' is missing").all()
    assert out["_error"][1:6].str.contains("not sent").all()
    ledger = mistral_magic.session().ledger.records
    assert len(ledger) == 2 and all("nan" not in str(r) for r in ledger)


def test_a_template_with_any_missing_field_is_not_sent(ip, magic_server):
    df = pd.DataFrame({"title": ["Review", None, pd.NA, "Note"],
                       "body": ["Ada is 36.", "Bob is 40.", None, " "]})
    before = magic_server.request_count()
    out = df.mistral.extract("{title}: {body}", schema="name", progress=False)
    assert magic_server.request_count() - before == 1
    assert out["_error"][0] is None
    assert "column 'title' is missing" in out["_error"][1]
    assert "columns 'title', 'body' are missing" in out["_error"][2]
    assert "column 'body' is missing" in out["_error"][3]


def test_only_missing_rows_say_so_instead_of_all_zero_rows(ip, magic_server):
    df = pd.DataFrame({"text": [None, ""]})
    out = df.mistral.extract("text", schema="name", progress=False)
    assert out["_error"].notna().all()
    shown = [m["data"]["text/plain"] for m in ip.display_pub.messages if "data" in m]
    assert any("2 rows with missing text not sent" in s for s in shown)
    assert not any("All 0 rows" in s for s in shown)
    empty = pd.DataFrame({"text": pd.Series([], dtype=object)})
    assert len(empty.mistral.extract("text", schema="name", progress=False)) == 0
    shown = [m["data"]["text/plain"] for m in ip.display_pub.messages if "data" in m]
    assert shown[-1] == "Nothing to send: the DataFrame has no rows."


# -- the kernel's interrupt during an extraction --------------------------------------


@pytest.fixture(scope="module")
def slow_server():
    """A server in its own process (its log is not this test's output), 30 ms per request."""
    with standalone_server("--latency-ms", "30") as url:
        yield url


def test_interrupt_ends_an_extraction_with_one_line(ip, slow_server, capfd):
    ip.run_line_magic("config", f"MistralMagics.server_url = {slow_server!r}")
    ip.run_line_magic("config", f"MistralMagics.server_key = {KEY!r}")
    df = pd.DataFrame({"text": [f"Person {i} is {20 + i} years old." for i in range(40)]})
    session = mistral_magic.session()
    finished = []

    def interrupt_after_five(record):
        if record.status == "ok":
            finished.append(record)
            if len(finished) == 5:
                _thread.interrupt_main()  # the same KeyboardInterrupt a kernel interrupt raises

    unsubscribe = session.ledger.subscribe(interrupt_after_five)
    ip.user_ns["df"] = df
    try:
        result = run(ip, "out = df.mistral.extract('{text}', schema='name, age int', "
                         "concurrency=2, progress=False)\nprint('after')", ok=False)
    finally:
        unsubscribe()
    # The cell ends as interrupted: the rest of it does not run, and `out` is not assigned.
    stopped = result.error_in_exec
    assert isinstance(stopped, KeyboardInterrupt) and "out" not in ip.user_ns
    out = stopped.partial  # the rows done so far, aligned to the index
    done = int(out["_error"].isna().sum())
    left = int(out["_error"].str.contains("interrupted", na=False).sum())
    assert 5 <= done < 40 and done + left == 40
    captured = capfd.readouterr()  # all this process wrote, at the file descriptors
    shown = re.sub(r"\x1b\[[0-9;]*m", "", captured.out).strip()
    assert shown == (f"Interrupted: {done} of 40 rows done, {left} left; run the same call "
                     "again to finish them (the rows done come from the cache, at $0)")
    assert captured.err.strip() == "", captured
    paid = len(session.ledger.records)
    again = df.mistral.extract("{text}", schema="name, age int", progress=False)
    assert again["_error"].isna().all()
    assert len(session.ledger.records) - paid == left  # the rows done came from the cache


def test_prompt_errors_are_refused_names(ip):
    ip.user_ns["d"] = {"_id": 7}
    run(ip, "%%mistral --dry-run -o req\nid {d['_id']}")
    assert ip.user_ns["req"]["messages"][-1]["content"] == "id 7"
    with pytest.raises(PromptError, match="starting with _"):
        ip.run_cell_magic("mistral", "--dry-run", "{d.__class__}")


def test_the_pandas_watch_is_removed_on_unload():
    # in a process where pandas is not imported yet, as in a fresh kernel
    code = textwrap.dedent("""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        from mistral_magic.notebook import importhook
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "mistral_magic")
        watched = importhook.watching("pandas")
        shell.run_line_magic("unload_ext", "mistral_magic")
        import pandas as pd
        print(watched, importhook.watching("pandas"), hasattr(pd.DataFrame, "mistral"),
              any(type(f).__module__ == "mistral_magic.notebook.importhook" for f in sys.meta_path))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "False", "False", "False"], out.stdout + out.stderr
