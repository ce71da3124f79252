"""Dry runs and interpolation change nothing they should not (issue 8, section 5)."""

from __future__ import annotations

import json

import pytest
from conftest import run

import mistral_magic
from mistral_magic.errors import PromptError


def three_turns(ip, chat: str = "default", system: str | None = None) -> None:
    option = f' -s "{system}"' if system else ""
    for n in range(3):
        run(ip, f"%%mistral -c {chat}{option}\nTurn {n}.", cell_id=f"{chat}-{n}")
        option = ""


def state(session, chat: str = "default"):
    conversation = session.chats.find(chat)
    if conversation is None:
        return None
    return conversation.system, [(t.prompt, t.answer, t.status) for t in conversation.turns]


def test_dry_run_with_new_keeps_the_chat_and_shows_a_fresh_request(ip, magic_server):
    three_turns(ip)
    session = mistral_magic.session()
    before, sent = state(session), magic_server.request_count()
    run(ip, "%%mistral --dry-run --new -o req\nStart over?", cell_id="dry")
    assert state(session) == before and len(before[1]) == 3
    assert [m["role"] for m in ip.user_ns["req"]["messages"]] == ["user"]
    assert magic_server.request_count() == sent
    # the real send still starts afresh, and sends what the dry run showed
    run(ip, "%%mistral --new\nStart over?", cell_id="dry")
    assert session.last.request["messages"] == ip.user_ns["req"]["messages"]
    assert [t.prompt for t in session.chats.get("default").turns] == ["Start over?"]


def test_dry_run_with_a_system_prompt_does_not_replace_the_chats(ip):
    three_turns(ip, "tutor", system="You are a patient tutor.")
    session = mistral_magic.session()
    before = state(session, "tutor")
    run(ip, '%%mistral -c tutor --dry-run -s "You are a pirate." -o req\nAhoy?')
    assert state(session, "tutor") == before
    assert ip.user_ns["req"]["messages"][0] == {"role": "system", "content": "You are a pirate."}
    assert len(ip.user_ns["req"]["messages"]) == 1 + 6 + 1  # system, three turns, the prompt
    run(ip, "%%mistral -c tutor\nNext?", cell_id="next")
    assert session.last.request["messages"][0]["content"] == "You are a patient tutor."
    # a real send makes -s the chat's own
    run(ip, '%%mistral -c tutor -s "You are a pirate."\nAhoy?', cell_id="ahoy")
    assert session.chats.get("tutor").system == "You are a pirate."


def test_dry_run_on_a_new_chat_name_leaves_no_chat(ip):
    session = mistral_magic.session()
    run(ip, "%%mistral --dry-run -c nowhere\nJust looking.")
    assert "nowhere" not in session.chats.names()
    assert ip.run_line_magic("mistral", "chats").empty


def test_dry_run_shows_exactly_what_the_send_sends(ip):
    three_turns(ip)
    run(ip, '%%mistral --dry-run -s "Be brief." -o req\nAnd then?', cell_id="then")
    run(ip, '%%mistral -s "Be brief."\nAnd then?', cell_id="then")
    assert mistral_magic.session().last.request == ip.user_ns["req"]


def test_dry_run_of_a_huge_prompt_is_bounded_and_output_keeps_it_all(ip):
    ip.user_ns["big"] = "x" * 400_000 + "THE-END"
    run(ip, "%%mistral --dry-run -o req\nStart {big}")
    shown = ip.display_pub.messages[-1]["data"]
    for text in shown.values():
        assert len(text) < 10_000
        assert "characters hidden" in text and "THE-END" in text and "Start xxx" in text
    hidden = len("Start ") + 400_000 + len("THE-END") - 1500 - 500
    assert f"[{hidden:,} characters hidden]" in shown["text/plain"]
    assert ip.user_ns["req"]["messages"][-1]["content"] == "Start " + ip.user_ns["big"]


def test_dry_run_bounds_every_long_message_and_image_data(ip):
    from mistral_magic.core import preview_request

    request = {
        "model": "m",
        "messages": [
            {"role": "system", "content": "s" * 5000},
            {"role": "user", "content": [{"type": "text", "text": "short"},
                                         {"type": "image_url", "image_url": "data:," + "A" * 9000}]},
        ],
    }
    shown = json.dumps(preview_request(request))
    assert len(shown) < 6000 and shown.count("characters hidden") == 2
    assert request["messages"][0]["content"] == "s" * 5000  # the request itself is untouched


@pytest.mark.parametrize(
    "template",
    [
        "{obj.__class__.__init__.__globals__}",
        "{obj.__class__}",
        "{obj._secret}",
        "{_}",
        "{__builtins__}",
        "{obj.__dict__['x']}",
    ],
)
def test_names_and_attributes_starting_with_underscore_are_refused(ip, template, capsys):
    class Thing:
        _secret = "hidden"

    ip.user_ns["obj"] = Thing()
    with pytest.raises(PromptError, match="starting with _"):
        ip.run_cell_magic("mistral", "--dry-run", f"Show {template}")
    result = run(ip, f"%%mistral --dry-run\nShow {template}", ok=False)
    assert not result.success
    out = capsys.readouterr().out.strip()
    assert out.count("\n") == 0 and "starting with _" in out


def test_the_key_cannot_be_reached_through_a_prompt(ip, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", "sk-must-not-reach-the-prompt")
    ip.run_line_magic("config", "MistralMagics.backend = 'offline'")
    # any object whose class has a Python __init__ leads to its module's globals
    run(ip, "import os\nclass Holder:\n    def __init__(self):\n        pass\nobj = Holder()")
    template = "{obj.__class__.__init__.__globals__['os'].environ['MISTRAL_API_KEY']}"
    with pytest.raises(PromptError, match="starting with _"):
        ip.run_cell_magic("mistral", "--dry-run -o req", template)
    assert "req" not in ip.user_ns
    shown = json.dumps([m.get("data") for m in ip.display_pub.messages])
    assert "sk-must-not-reach" not in shown


def test_dry_run_under_a_budget_shows_the_budgets_cap_and_holds_nothing(ip, magic_server):
    session = mistral_magic.session()
    ip.run_line_magic("config", "MistralMagics.budget_usd = 0.0001")
    run(ip, "%%mistral --dry-run -o req\nTell me about rivers.", cell_id="rivers")
    request = ip.user_ns["req"]
    # The budget's cap is in the request shown, and nothing stays held.
    assert 16 <= request["max_tokens"] < 1024
    assert session.budget.reserved == 0
    run(ip, "%%mistral\nTell me about rivers.", cell_id="rivers")
    assert session.last.request == request


def test_dry_run_says_when_the_budget_would_refuse_and_sends_nothing(ip, magic_server):
    ip.run_line_magic("config", "MistralMagics.budget_usd = 0.0000001")
    before = magic_server.request_count()
    run(ip, "%%mistral --dry-run\nTell me about rivers.")
    shown = ip.display_pub.finals()[-1]["data"]["text/plain"]
    assert "the budget would refuse it: Refused: this call needs at least" in shown
    assert magic_server.request_count() == before
    assert mistral_magic.session().budget.reserved == 0
