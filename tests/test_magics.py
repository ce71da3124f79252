"""The %%mistral cell as users run it: a fresh shell, magics by their text, the real offline server."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from conftest import run

import mistral_magic
from mistral_magic.money import tokens


def final_answer(shell) -> dict:
    finals = [m for m in shell.display_pub.finals() if "mistral_magic" in m["metadata"]]
    assert finals, f"no answer displayed: {shell.display_pub.messages!r}"
    return finals[-1]


def test_load_registers_and_unload_removes(ip):
    assert ip.find_cell_magic("mistral") is not None
    assert ip.find_line_magic("mistral") is not None
    ip.run_line_magic("unload_ext", "mistral_magic")
    assert ip.find_cell_magic("mistral") is None
    ip.run_line_magic("load_ext", "mistral_magic")
    assert ip.find_cell_magic("mistral") is not None


def test_load_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "sh = InteractiveShell.instance()\n"
        "sh.run_line_magic('load_ext', 'mistral_magic')\n"
        "heavy = [m for m in ('mistralai', 'pandas', 'mistral_common', 'tiktoken', 'starlette',"
        " 'uvicorn', 'mistral_magic.store') if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_help_is_a_complete_manual(ip):
    doc = ip.find_cell_magic("mistral").__doc__
    for needle in ("%%mistral -t 0.2", "--schema", "--dry-run", "%mistral usage", "{df}",
                   "%config MistralMagics", "--format"):
        assert needle in doc


def test_answer_streams_into_one_display_and_ends_as_markdown(ip, magic_server):
    magic_server.set_faults({"token_delay_ms": 4})
    run(ip, "%%mistral --max-tokens 120\nExplain gradient descent briefly.", cell_id="c1")
    msgs = [m for m in ip.display_pub.messages if "data" in m]
    ids = {m["transient"].get("display_id") for m in msgs if m["transient"].get("display_id")}
    answer_ids = {m["transient"]["display_id"] for m in msgs if m["update"]}
    assert len(answer_ids) == 1 and answer_ids <= ids
    partial = [m for m in msgs if m["update"] and "mistral_magic" not in m["metadata"]]
    assert len(partial) >= 2, "expected intermediate streamed states"
    final = final_answer(ip)
    md = final["data"]["text/html"]
    assert "offline" in md.lower()
    assert "text/plain" in final["data"]
    meta = final["metadata"]["mistral_magic"]
    assert meta["model"] == "mistral-small-latest"
    assert meta["backend"] == "offline"
    record = mistral_magic.session().ledger.records[-1]
    assert meta["usage"] == {"prompt_tokens": record.prompt_tokens,
                             "completion_tokens": record.completion_tokens}
    assert 0 < record.completion_tokens <= 120
    assert meta["params"] == {"max_tokens": 120}
    assert meta["cost_usd"] == record.cost == pytest.approx(mistral_magic.session().prices.cost(
        "mistral-small-latest", record.prompt_tokens, record.completion_tokens))
    # the footer is in view under the answer
    assert "in /" in md and "out" in md and "$" in md and "session" in md


def test_updates_are_coalesced(ip, magic_server):
    magic_server.set_faults({"answer_tokens": 1500})
    run(ip, "%%mistral\nWrite a long essay.", cell_id="long")
    updates = [m for m in ip.display_pub.messages if m.get("update")]
    answer = mistral_magic.session().last
    assert answer.completion_tokens == 1500
    assert len(updates) < 30  # one per token would be 1,500


def test_no_stream_and_text_format(ip):
    run(ip, "%%mistral --no-stream --format text\nSay hi.")
    final = final_answer(ip)
    assert "text/markdown" not in final["data"]
    assert final["data"]["text/plain"].startswith(mistral_magic.session().last.text)


def test_follow_up_sees_history_and_rerun_replaces_turn(ip):
    run(ip, "%%mistral\nTell me about penguins.", cell_id="a")
    run(ip, "%%mistral\nAnd where do they live?", cell_id="b")
    session = mistral_magic.session()
    sent = session.last.request["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert sent[0]["content"] == "Tell me about penguins."
    assert len(session.chats.get("default")) == 2
    run(ip, "%%mistral\nTell me about puffins.", cell_id="a")
    chat = session.chats.get("default")
    assert len(chat) == 2
    assert chat.turns[0].prompt == "Tell me about puffins."
    # a re-run of the first cell sees no later turns
    assert [m["role"] for m in session.last.request["messages"]] == ["user"]


def test_named_chats_system_new_and_no_history(ip):
    run(ip, '%%mistral -c tutor -s "You are a patient tutor."\nWhat is a tensor?', cell_id="t1")
    run(ip, "%%mistral -c tutor\nAnd a matrix?", cell_id="t2")
    session = mistral_magic.session()
    assert session.last.request["messages"][0] == {
        "role": "system", "content": "You are a patient tutor."}
    assert "default" not in session.chats.names() or len(session.chats.get("default")) == 0
    run(ip, "%%mistral -c tutor --no-history\nUnrelated one-off.", cell_id="t3")
    assert [m["role"] for m in session.last.request["messages"]] == ["system", "user"]
    assert len(session.chats.get("tutor")) == 2
    run(ip, "%%mistral -c tutor --new\nFresh start.", cell_id="t4")
    assert len(session.chats.get("tutor")) == 1


def test_history_reset_undo_chats(ip):
    run(ip, "%%mistral\nOne.", cell_id="1")
    run(ip, "%%mistral\nTwo.", cell_id="2")
    hist = ip.run_line_magic("mistral", "history")
    assert list(hist["role"]) == ["user", "assistant", "user", "assistant"]
    assert list(hist["cell"]) == ["1", "1", "2", "2"]
    records = mistral_magic.session().ledger.records
    assert list(hist["tokens"]) == [
        records[0].prompt_tokens, records[0].completion_tokens,
        records[1].prompt_tokens, records[1].completion_tokens]
    assert hist["cost"].iloc[1] == pytest.approx(records[0].cost)
    chats = ip.run_line_magic("mistral", "chats")
    assert chats.loc[0, "turns"] == 2
    assert ip.run_line_magic("mistral", "undo") is None  # said, not an Out[n] value
    assert "Two." in ip.display_pub.messages[-1]["data"]["text/plain"]
    assert len(ip.run_line_magic("mistral", "history")) == 2
    ip.run_line_magic("mistral", "reset")
    assert len(ip.run_line_magic("mistral", "history")) == 0


def test_interpolation_of_names_frames_and_braces(ip):
    import pandas as pd

    ip.user_ns["topic"] = "entropy"
    ip.user_ns["df"] = pd.DataFrame({"x": range(15), "y": ["a"] * 15})
    run(ip, "%%mistral --dry-run -o req\nDefine {topic}; data: {df}; literal {{braces}}; code { x }")
    content = ip.user_ns["req"]["messages"][-1]["content"]
    assert "Define entropy" in content
    assert "data: \n|  | x | y |" in content and "| 14 | 14 | a |\n; literal" in content
    assert "literal {braces}" in content and "code { x }" in content


def test_long_frame_cells_are_cut_in_the_prompt(ip):
    import pandas as pd

    from mistral_magic.inputs.prompt import MAX_CELL

    long_text = " ".join(f"word{i}" for i in range(200))  # about 1,400 characters
    ip.user_ns["df"] = pd.DataFrame({"note": [long_text, "short | piped\nline"]})
    run(ip, "%%mistral --dry-run -o req\nSummarise {df}")
    content = ip.user_ns["req"]["messages"][-1]["content"]
    assert long_text not in content and "word199" not in content
    cut = long_text[: MAX_CELL - 1] + "…"
    assert f"| 0 | {cut} |" in content
    assert "| 1 | short \\| piped line |" in content  # pipes escaped, whitespace folded
    rows = [line for line in content.splitlines() if line.startswith("| ")]
    cells = [cell for line in rows for cell in line.strip("| ").split(" | ")]
    assert max(len(cell) for cell in cells) == MAX_CELL <= 100


def test_unknown_name_is_one_line_with_the_fix(ip, capsys):
    result = run(ip, "%%mistral\nUse {missing_thing} here", ok=False)
    assert not result.success
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0
    assert "missing_thing" in out and "--no-interpolate" in out and "{{missing_thing}}" in out
    assert mistral_magic.session().ledger.records == []


def test_no_interpolate_sends_braces(ip):
    run(ip, "%%mistral --dry-run --no-interpolate -o req\nfill {nothing}")
    assert ip.user_ns["req"]["messages"][-1]["content"] == "fill {nothing}"


def test_output_variable_and_code_format(ip):
    run(ip, "%%mistral --format code -o code\nWrite a python function that adds numbers.")
    answer = mistral_magic.session().last
    # The value is the answer; the offline server's label line stays on screen only.
    assert ip.user_ns["code"] == answer.reply and answer.text.endswith(answer.reply)
    assert answer.banner and answer.banner not in ip.user_ns["code"]
    # a terminal shell keeps the next input here; Jupyter's kernel sends it as a payload
    inserted = ip.rl_next_input
    assert "def " in inserted and "```" not in inserted


def test_dry_run_sends_nothing_and_shows_estimate(ip, magic_server):
    before = magic_server.request_count()
    run(ip, "%%mistral --dry-run --max-tokens 100 -m mistral-large-latest\nHow much?")
    assert magic_server.request_count() == before
    shown = ip.display_pub.messages[-1]["data"]["text/plain"]
    prompt_tokens = tokens.count_messages([{"role": "user", "content": "How much?"}])
    assert f"{prompt_tokens} prompt tokens" in shown and "worst case with 100 answer tokens" in shown
    assert mistral_magic.session().ledger.records == []


def test_usage_ledger_and_exact_offline_counts(ip):
    run(ip, "%%mistral --seed 3\nCount me.")
    run(ip, "%%mistral -m mistral-large-latest\nAnd me.")
    usage = ip.run_line_magic("mistral", "usage")
    assert list(usage["model"]) == ["mistral-small-latest", "mistral-large-latest"]
    assert (usage["status"] == "ok").all()
    first = mistral_magic.session().ledger.records[0]
    assert first.prompt_tokens == tokens.count_messages([{"role": "user", "content": "Count me."}])
    assert usage["cost"].gt(0).all()
    for col in ("time", "chat", "model", "prompt_tokens", "completion_tokens", "cost",
                "latency_s", "status"):
        assert col in usage.columns


def test_tokens_command_counts_with_mistral_common(ip):
    assert ip.run_line_magic("mistral", "tokens Hello there, notebook!") == tokens.count_text(
        "Hello there, notebook!")


def test_price_override(ip):
    ip.run_line_magic("config", 'MistralMagics.prices = {"mistral-small-latest": {"input": 1000, "output": 1000}}')
    run(ip, "%%mistral\nPriced.")
    last = mistral_magic.session().last
    assert last.cost == pytest.approx((last.prompt_tokens + last.completion_tokens) * 1000 / 1e6)


def test_a_model_missing_from_the_price_file_costs_unknown(ip, monkeypatch):
    from mistral_magic.money import prices

    # A model released after the price file's date: the server lists it, the file does not.
    base = prices.load_prices()
    models = {k: v for k, v in base.models.items() if k != "ministral-3b-2512"}
    aliases = {k: v for k, v in base.aliases.items() if v != "ministral-3b-2512"}
    monkeypatch.setattr(prices, "_base_table", prices.PriceTable(models, aliases,
                                                               source=base.source, date=base.date))
    run(ip, "%%mistral -m ministral-3b-latest\nNo price.")
    last = mistral_magic.session().last
    assert last.status == "ok" and last.cost is None and last.completion_tokens > 0
    footer = final_answer(ip)["data"]["text/plain"].splitlines()[-1]
    assert footer.split(" · ")[1:3] == [f"{last.prompt_tokens} in / {last.completion_tokens} out",
                                        "unknown"]
    session_part = footer.split(" · ")[-1]
    assert session_part.startswith("session") and "unknown" in session_part
    assert mistral_magic.session().ledger.to_frame()["cost"].isna().all()


def test_budget_refuses_before_sending(ip, magic_server, capsys):
    ip.run_line_magic("config", "MistralMagics.budget_usd = 0.000001")
    before = magic_server.request_count()
    result = run(ip, "%%mistral --max-tokens 500\nExpensive?", ok=False)
    assert not result.success
    out = capsys.readouterr().out
    assert "budget" in out.lower() and "$" in out and out.strip().count("\n") == 0
    assert magic_server.request_count() == before
    assert len(mistral_magic.session().chats.get("default")) == 0


def test_config_and_backend(ip):
    cfg = ip.run_line_magic("mistral", "config")
    values = dict(zip(cfg["setting"], cfg["value"], strict=True))
    assert values["model"] == "mistral-small-latest"  # read plainly, not as a repr
    assert values["key"] == "(none)"
    assert "offline" in values["backend in use"]
    assert "offline server" in ip.run_line_magic("mistral", "backend")
    ip.run_line_magic("config", "MistralMagics.temperature = 0.3")
    run(ip, "%%mistral\nWarm?")
    assert mistral_magic.session().last.request["temperature"] == 0.3


def test_offline_notice_shown_once(ip):
    run(ip, "%%mistral\nFirst.")
    run(ip, "%%mistral\nSecond.")
    notices = [m for m in ip.display_pub.messages
               if "data" in m and "no Mistral API key" in m["data"].get("text/plain", "")]
    assert len(notices) == 1


def test_models_lists_catalogue_with_prices(ip):
    models = ip.run_line_magic("mistral", "models")
    row = models[models["id"] == "mistral-small-2603"].iloc[0]
    assert row["context"] > 0 and row["input_per_1m"] == pytest.approx(0.15)


def test_key_prompt_keeps_key_in_memory_and_masked(ip, monkeypatch):
    import getpass

    monkeypatch.setattr(getpass, "getpass", lambda prompt="": "sk-test-secret-123")
    note = ip.run_line_magic("mistral", "key")
    assert "sk-test" not in note
    cfg = ip.run_line_magic("mistral", "config")
    assert "sk-test-secret-123" not in cfg.to_string()
    assert "La Plateforme" in ip.run_line_magic("mistral", "backend")
    ip.run_line_magic("mistral", "key --clear")
    assert "offline" in ip.run_line_magic("mistral", "backend")


def test_dotenv_key_is_honoured(ip, tmp_path):
    (tmp_path / ".env").write_text("MISTRAL_API_KEY=from-dotenv-file\n")
    assert "La Plateforme" in ip.run_line_magic("mistral", "backend")
    ip.run_line_magic("config", "MistralMagics.backend = 'offline'")
    assert "offline" in ip.run_line_magic("mistral", "backend")


def test_server_url_selects_self_hosted(ip, offline_server, monkeypatch):
    # a second real server stands in for vLLM; its key comes from the environment
    monkeypatch.setenv("MISTRAL_SERVER_KEY", offline_server.api_key)
    ip.run_line_magic("config", f"MistralMagics.server_url = '{offline_server.url}'")
    before = offline_server.request_count()
    run(ip, "%%mistral\nHello self-hosted.")
    run(ip, "%%mistral\nAgain.")
    # two answers, and the server's model list (the model is checked against it) once
    assert offline_server.request_count() == before + 3
    assert offline_server.request_count("/v1/models") >= 1
    assert mistral_magic.session().last.backend == "self-hosted"


@pytest.mark.parametrize(
    "line, fragment",
    [
        ("-t 3", "outside 0 to 1.5"),
        ("--max-tokens -5", "negative"),
        ("--format html", "invalid choice"),
        ("--many", "--many goes with --schema"),
        ("-o 1abc", "valid Python variable"),
        ("--bogus", "unknown option --bogus"),
        ("--temprature 0.2", "unknown option --temprature; did you mean --temperature?"),
        ("hello", "unrecognized arguments: hello"),
    ],
)
def test_bad_arguments_are_usage_errors(ip, capsys, line, fragment):
    result = run(ip, f"%%mistral {line}\nhello", ok=False)
    assert not result.success
    shown = capsys.readouterr()
    message = (shown.out + shown.err).strip()
    assert message.startswith("UsageError: ") and message.count("\n") == 0, message
    assert fragment in message
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=re.escape(fragment)):
        ip.run_cell_magic("mistral", line, "hello")


def test_empty_cell_and_unknown_command(ip):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match="needs a prompt"):
        ip.run_cell_magic("mistral", "", "   \n")
    with pytest.raises(UsageError, match="Unknown command"):
        ip.run_line_magic("mistral", "frobnicate")
    with pytest.raises(UsageError, match="needs a command"):
        ip.run_line_magic("mistral", "")


def test_terminal_ipython_gets_streamed_plain_text(ip, capsys):
    from IPython.core.displaypub import DisplayPublisher

    ip.display_pub = DisplayPublisher(shell=ip)  # what terminal IPython has: no display updates
    run(ip, "%%mistral\nSay something plain.")
    out = capsys.readouterr().out
    text = mistral_magic.session().last.text
    assert out.count(text) == 1  # streamed once, not printed again at the end
    assert "in /" in out and "offline" in out
