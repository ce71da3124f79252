"""%%mistral --fim fills a cell's <FILL> into the next cell; %mistral fix explains the last
error and corrects its cell; Err holds recent tracebacks for prompts."""

from __future__ import annotations

import pytest
from IPython.core.error import UsageError

import mistral_magic
from mistral_magic.errors import BudgetExceeded, PromptError
from mistral_magic.money.tokens import count_text
from tests.conftest import run

FIM = "/v1/fim/completions"
CHAT = "/v1/chat/completions"
BEFORE = "def total(prices, tax):\n    "
AFTER = "\n\nprint(total([1, 2], 0.2))\n"
CELL = "%%mistral --fim -o filled\n" + BEFORE + "<FILL>" + AFTER


def shown(ip) -> list[str]:
    return [m["data"].get("text/plain", "") for m in ip.display_pub.messages if "data" in m]


def test_fim_fills_the_marker_into_the_next_cell(ip, magic_server):
    before = magic_server.request_count(FIM)
    run(ip, CELL)
    assert magic_server.request_count(FIM) - before == 1
    session = mistral_magic.session()
    fill = session.last.text
    assert fill and "<FILL>" not in fill
    assert ip.rl_next_input == BEFORE + fill + AFTER == ip.user_ns["filled"]
    (record,) = session.ledger.records
    assert record.kind == "fim" and record.model == "codestral-latest" and record.status == "ok"
    assert record.prompt_tokens == count_text(BEFORE) + count_text(AFTER) + 3
    assert session.last.request == {"model": "codestral-latest", "prompt": BEFORE, "suffix": AFTER}
    footer = shown(ip)[-1]
    assert "codestral-latest" in footer and f"{record.prompt_tokens} in /" in footer
    assert session.chats.names() == []  # a fill is no chat turn


def test_fim_sends_braces_as_written_and_takes_its_options(ip, magic_server):
    run(ip, "%%mistral --fim -m codestral-2508 -t 0 --max-tokens 40 --seed 3 --no-stream\n"
            "data = {undefined_name: 1}\n<FILL>\n")
    request = mistral_magic.session().last.request
    assert request["prompt"] == "data = {undefined_name: 1}\n" and request["suffix"] == "\n"
    assert (request["model"], request["temperature"], request["max_tokens"], request["random_seed"]) == (
        "codestral-2508", 0.0, 40, 3)
    assert ip.rl_next_input.startswith("data = {undefined_name: 1}\n")


@pytest.mark.parametrize("cell, words", [
    ("%%mistral --fim\ndef f():\n    pass\n", "put one <FILL> where the code should go (this cell has no <FILL> marker)"),
    ("%%mistral --fim\n<FILL>\nx = 1\n<FILL>\n", "(this cell has 2 <FILL> markers)"),
    ("%%mistral --fim -c code\n<FILL>\n", "-c is for chat cells"),
    ("%%mistral --fim --format code\n<FILL>\n", "--format is for chat cells"),
])
def test_fim_refuses_a_cell_it_cannot_fill(ip, magic_server, cell, words):
    before = magic_server.request_count()
    with pytest.raises(UsageError) as caught:
        ip.run_cell_magic("mistral", cell.split("\n", 1)[0].removeprefix("%%mistral "),
                          cell.split("\n", 1)[1])
    assert words in str(caught.value) and "\n" not in str(caught.value)
    assert magic_server.request_count() == before and mistral_magic.session().ledger.records == []


def test_fim_is_budgeted_and_failures_are_recorded(ip, magic_server):
    ip.run_line_magic("config", "MistralMagics.budget_usd = 1e-7")
    before = magic_server.request_count()
    with pytest.raises(BudgetExceeded, match="codestral-latest"):
        ip.run_cell_magic("mistral", "--fim", BEFORE + "<FILL>" + AFTER)
    assert magic_server.request_count() == before
    ip.run_line_magic("config", "MistralMagics.budget_usd = None")
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    magic_server.set_faults({"error_status": 503, "error_rate": 1.0})
    ip.rl_next_input = None
    result = run(ip, CELL, ok=False)
    assert "503" in str(result.error_in_exec) and ip.rl_next_input is None
    (record,) = mistral_magic.session().ledger.records
    assert record.kind == "fim" and record.status == "error"


def test_fix_with_no_error_says_so(ip, magic_server):
    before = magic_server.request_count()
    said = ip.run_line_magic("mistral", "fix")
    assert str(said) == "Nothing to fix: no cell has raised an error since the extension was loaded."
    assert magic_server.request_count() == before


def test_err_keeps_tracebacks_as_text(ip):
    run(ip, "def ratio(a, b):\n    return a / b\n\nratio(1, 0)", ok=False)
    run(ip, "%mistral nonsense", ok=False)  # a UsageError already says what to do: not kept
    run(ip, "x = (", ok=False)
    errors = ip.user_ns["Err"]
    assert [e.name for e in errors] == ["ZeroDivisionError", "SyntaxError"]
    first = errors[0]
    assert first.source == "def ratio(a, b):\n    return a / b\n\nratio(1, 0)"
    assert "return a / b" in first and first.endswith("ZeroDivisionError: division by zero")
    assert "interactiveshell" not in first and "\x1b[" not in first  # no IPython frames, no colour
    assert "Err" not in ip.run_line_magic("who_ls", "")


def test_err_never_keeps_a_key(ip, monkeypatch):
    key = "sk-test-0123456789abcdef"
    monkeypatch.setenv("MISTRAL_API_KEY", key)
    run(ip, "import os\nkey = 'sk-test-0123456789abcdef'\nint(os.environ['MISTRAL_API_KEY'])", ok=False)
    error = ip.user_ns["Err"][-1]
    assert error.name == "ValueError" and "[redacted]" in error and "[redacted]" in error.source
    assert key not in error and key not in error.source


def test_err_in_prompts_and_the_underscore_rule(ip):
    run(ip, "{}['missing']", ok=False)
    run(ip, "%%mistral --dry-run -o req\nWhy? {Err[-1]}\nIn: {Err[-1].source}")
    content = ip.user_ns["req"]["messages"][-1]["content"]
    assert "KeyError: 'missing'" in content and "In: {}['missing']" in content
    with pytest.raises(PromptError, match="attributes starting with _"):
        ip.run_cell_magic("mistral", "--dry-run", "{Err[-1].__class__}")


def test_fix_explains_and_puts_the_corrected_cell_next(ip, magic_server):
    run(ip, "values = [1, 2, 3]\nprint(sum(values) / len(value))", ok=False)
    before = magic_server.request_count(CHAT)
    ip.rl_next_input = None
    assert ip.run_line_magic("mistral", "fix") is None
    assert magic_server.request_count(CHAT) - before == 1
    session = mistral_magic.session()
    prompt = session.last.request["messages"][-1]["content"]
    assert "print(sum(values) / len(value))" in prompt
    assert "NameError: name 'value' is not defined" in prompt
    answer = session.last.text
    html = ip.display_pub.messages[-1]["data"]["text/html"]
    assert "<pre><code class=\"language-python\">" in html and "<script" not in html
    code = answer.split("```python\n", 1)[1].split("\n```", 1)[0]
    assert ip.rl_next_input == code
    (record,) = session.ledger.records
    assert record.kind == "fix" and session.chats.names() == []


def test_fix_after_the_cell_ran_again_without_error(ip, magic_server):
    run(ip, "1 / 0", cell_id="cell-a", ok=False)
    run(ip, "print('later')", cell_id="cell-b")  # another cell: the error still stands
    assert not ip.user_ns["Err"][-1].resolved
    run(ip, "1 / 1", cell_id="cell-a")  # the cell that raised now runs
    assert ip.user_ns["Err"][-1].resolved
    before = magic_server.request_count()
    said = ip.run_line_magic("mistral", "fix")
    assert "the cell that raised the last error (ZeroDivisionError) has run without error" in str(said)
    assert magic_server.request_count() == before


def test_unloading_takes_err_away_but_leaves_a_users_own(ip, magic_server):
    assert "Err" in ip.user_ns
    ip.run_line_magic("unload_ext", "mistral_magic")
    assert "Err" not in ip.user_ns
    run(ip, "1 / 0", ok=False)  # not loaded: not kept
    ip.user_ns["Err"] = "mine"
    ip.run_line_magic("load_ext", "mistral_magic")
    assert "Nothing to fix" in str(ip.run_line_magic("mistral", "fix"))
    run(ip, "[][1]", ok=False)
    assert ip.user_ns["Err"] == "mine"  # the user's name is left alone; errors are still kept
    before = magic_server.request_count(CHAT)
    ip.run_line_magic("mistral", "fix")
    assert magic_server.request_count(CHAT) - before == 1
    assert "IndexError" in mistral_magic.session().last.request["messages"][-1]["content"]
