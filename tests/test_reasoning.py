"""`--think`: reasoning controls as the spec and the model allow, shown as it streams,
counted in the footer, and kept out of the history unless asked.

The offline server answers a reasoning request with deterministic thinking chunks
(and refuses one the model cannot serve, as the hosted API does).
"""

from __future__ import annotations

import pytest
from conftest import run

import mistral_magic
from mistral_magic import widgets
from mistral_magic.errors import ConfigError
from mistral_magic.money import tokens
from mistral_magic.show import render
from mistral_magic.tools.reasoning import controls

QUESTION = "What is 17 * 23? Explain the multiplication."
OPEN_BLOCK = f'<details class="mistral-reasoning" style="{render.REASONING_STYLE}" open="">'
CLOSED_BLOCK = f'<details class="mistral-reasoning" style="{render.REASONING_STYLE}">'


def final(ip) -> dict:
    return [m for m in ip.display_pub.finals() if "mistral_magic" in m["metadata"]][-1]


def test_controls_follow_the_model():
    assert controls("mistral-small-latest", "high") == {"reasoning_effort": "high"}
    assert controls("magistral-medium-latest", "high") == {"reasoning_effort": "high",
                                                          "prompt_mode": "reasoning"}
    assert controls("magistral-medium-latest", "none") == {"reasoning_effort": "none"}
    assert controls("open-mistral-nemo", "none") == {}
    assert controls("my-own-finetune", "low") == {"reasoning_effort": "low"}  # its server decides
    assert controls("mistral-small-latest", None) == {}
    with pytest.raises(ConfigError, match="cannot reason"):
        controls("open-mistral-nemo", "high")
    with pytest.raises(ConfigError, match="takes --think none or high, not low"):
        controls("mistral-small-latest", "low")


def test_thinking_streams_into_a_reasoning_block_above_the_answer(ip, magic_server):
    magic_server.set_faults({"token_delay_ms": 4})
    run(ip, f"%%mistral --think high\n{QUESTION}", cell_id="c1")
    session = mistral_magic.session()
    answer = session.last
    assert answer.request["reasoning_effort"] == "high"
    assert answer.thinking.startswith("Offline reasoning trace") and "17 * 23 = 391" in answer.thinking
    assert "Offline reasoning" not in answer.text
    assert answer.thinking_tokens == tokens.count_text(answer.thinking) + 2
    # While it streams alone the block is open; once the answer comes it folds above it.
    partials = [m["data"]["text/html"] for m in ip.display_pub.messages
                if m.get("update") and "mistral_magic" not in m["metadata"]]
    assert any(OPEN_BLOCK in html and "Offline answer" not in html for html in partials)
    shown = final(ip)
    html = shown["data"]["text/html"]
    assert html.index(CLOSED_BLOCK) < html.index("Offline answer") and OPEN_BLOCK not in html
    assert f"Reasoning · {answer.thinking_tokens:,} tokens" in html
    footer = f"({answer.thinking_tokens:,} thinking)"
    assert footer in shown["data"]["text/plain"] and footer in html
    assert shown["data"]["text/plain"].startswith(f"[Reasoning · {answer.thinking_tokens:,} tokens, hidden]")
    assert shown["metadata"]["mistral_magic"]["thinking_tokens"] == answer.thinking_tokens
    assert session.ledger.records[-1].completion_tokens == answer.completion_tokens


def test_thinking_stays_out_of_the_history_unless_kept(ip):
    run(ip, f"%%mistral --think high\n{QUESTION}", cell_id="c1")
    run(ip, "%%mistral\nAnd 17 * 24?", cell_id="c2")
    session = mistral_magic.session()
    sent = session.last.request["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user"]
    assert isinstance(sent[1]["content"], str) and "Offline reasoning" not in sent[1]["content"]
    run(ip, f"%%mistral --think high --keep-thinking -c kept\n{QUESTION}", cell_id="c3")
    thinking = session.last.thinking
    run(ip, "%%mistral -c kept\nAnd 17 * 24?", cell_id="c4")
    reply = session.last.request["messages"][1]["content"]
    assert reply[0] == {"type": "thinking", "thinking": [{"type": "text", "text": thinking}]}
    assert reply[1]["type"] == "text" and session.last.status == "ok"  # the server took it


def test_think_is_a_setting_and_magistral_gets_its_prompt_mode(ip):
    run(ip, "%config MistralMagics.think = 'high'")
    run(ip, "%%mistral --dry-run -o body\nHi")
    assert ip.user_ns["body"]["reasoning_effort"] == "high"
    run(ip, "%%mistral --think none --dry-run -o body\nHi")
    assert ip.user_ns["body"]["reasoning_effort"] == "none"
    run(ip, "%%mistral -m magistral-small-latest --dry-run -o body\nHi")
    assert ip.user_ns["body"]["prompt_mode"] == "reasoning"
    run(ip, "%config MistralMagics.think = None")
    result = run(ip, "%%mistral -m open-mistral-nemo --think high\nHi", ok=False)
    assert isinstance(result.error_in_exec, ConfigError) and len(mistral_magic.session().ledger) == 0


def test_a_thinking_chunk_never_breaks_json_or_schema_parsing(ip):
    run(ip, '%%mistral --think high --json -o value\nGive the product of 17 and 23 as {"product": n}.',
        cell_id="c1")
    answer = mistral_magic.session().last
    assert isinstance(ip.user_ns["value"], dict) and answer.thinking
    assert CLOSED_BLOCK in final(ip)["data"]["text/html"]
    run(ip, "%%mistral --think high --schema 'product int' -o value\nWhat is 17 * 23?", cell_id="c2")
    assert str(ip.user_ns["value"]["product"].dtype) == "Int64" and mistral_magic.session().last.thinking


def test_the_chat_panel_shows_reasoning_and_keeps_it_out_of_the_history(ip):
    run(ip, "%config MistralMagics.think = 'high'")
    session = mistral_magic.session()
    panel = widgets.ChatPanel(session, "side")
    turn = panel.send(QUESTION).result(30)
    assert turn.status == "ok" and turn.thinking and "Offline reasoning" not in turn.answer
    html = panel.history.outputs[-1]["data"]["text/html"]
    assert CLOSED_BLOCK in html and html.index(CLOSED_BLOCK) < html.index("Offline answer")
    assert session.chats.get("side").context()[1]["content"] == turn.answer
    panel.send("And 17 * 24?").result(30)
    assert session.chats.get("side").turns[-1].status == "ok"


def test_models_lists_what_each_model_can_do(ip):
    run(ip, "models = %mistral models")
    frame = ip.user_ns["models"].set_index("id")
    assert {"reasoning", "tools", "vision", "documents"} <= set(frame.columns)
    assert frame.loc["magistral-medium-latest", "reasoning"]
    assert not frame.loc["open-mistral-nemo", "reasoning"]
    assert frame.loc["mistral-small-latest", "tools"]
    assert frame.loc["pixtral-large-latest", "vision"]
    assert not frame.loc["codestral-latest", "vision"]


def test_think_alone_is_high_and_a_terminal_writes_the_reasoning_dimmed(ip, capsys):
    from IPython.core.displaypub import DisplayPublisher

    from mistral_magic.show.terminal import DIM, UNDIM

    run(ip, "%%mistral --think --dry-run -o body\nHi")
    assert ip.user_ns["body"]["reasoning_effort"] == "high"
    ip.display_pub = DisplayPublisher(shell=ip)  # a terminal: nothing is updated in place
    capsys.readouterr()
    run(ip, f"%%mistral --think high\n{QUESTION}", cell_id="c1")
    out = capsys.readouterr().out
    answer = mistral_magic.session().last
    plain = out.replace(DIM, "").replace(UNDIM, "")
    assert answer.thinking + "\n\n" + answer.text in plain  # the reasoning, then the answer
    start = out.index(answer.text)
    assert out.index(DIM) < start and out.rindex(UNDIM) < start  # only the reasoning is dimmed
    assert out.count(DIM) == out.count(UNDIM) >= 1
    assert f"({answer.thinking_tokens:,} thinking)" in out
