"""Unknown models are refused before sending, with the nearest name; misspelt options too
(issue 18, item 8)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from conftest import run
from IPython.core.error import UsageError

import mistral_magic
from mistral_magic import widgets
from mistral_magic.errors import ConfigError
from mistral_magic.offline import OfflineServer


def refusal(ip, capsys, cell: str) -> str:
    """Run a cell that must fail; its one line, as the notebook shows it."""
    result = run(ip, cell, ok=False)
    assert not result.success
    shown = capsys.readouterr()
    message = re.sub(r"\x1b\[[0-9;]*m", "", shown.out + shown.err).strip()  # the colour of the name
    assert message.count("\n") == 0, message
    return message


def nothing_happened(session, server, before: int) -> None:
    """No request, no ledger row, no chat turn."""
    assert server.request_count() == before
    assert session.ledger.records == []
    assert all(len(session.chats.get(name)) == 0 for name in session.chats.names())


def test_a_misspelt_model_is_refused_before_sending_with_the_nearest_name(ip, magic_server, capsys):
    session = mistral_magic.session()
    before = magic_server.request_count()
    message = refusal(ip, capsys, "%%mistral -m mistral-lage-latest\nHello")
    assert message == ("ConfigError: Unknown model mistral-lage-latest: the offline server has no "
                       "such model; did you mean mistral-large-latest?")
    nothing_happened(session, magic_server, before)
    run(ip, "%%mistral -m mistral-large-latest\nHello")
    assert session.last.model == "mistral-large-latest"


def test_a_model_with_no_near_name_points_to_the_list(ip, magic_server, capsys):
    message = refusal(ip, capsys, "%%mistral -m gpt-4 --dry-run\nHello")
    assert message.endswith("the offline server has no such model; %mistral models lists the "
                            "models it has")
    assert "client.models" not in message and message.count("%mistral models") == 1


def test_a_retired_model_is_refused_naming_its_successor(ip, capsys):
    message = refusal(ip, capsys, "%%mistral -m open-mistral-7b\nHello")
    assert message == ("ConfigError: Mistral retired open-mistral-7b on 2025-03-30; use "
                       "ministral-8b-2512 instead")


def test_the_setting_is_checked_where_it_is_used_and_named(ip, magic_server, capsys):
    session = mistral_magic.session()
    before = magic_server.request_count()
    ip.run_line_magic("config", "MistralMagics.model = 'mistral-smal-latest'")
    message = refusal(ip, capsys, "%%mistral\nHello")
    assert "Unknown model mistral-smal-latest in MistralMagics.model" in message
    assert message.endswith("did you mean mistral-small-latest?")
    df = pd.DataFrame({"text": ["a", "b"]})
    with pytest.raises(ConfigError, match="in MistralMagics.model"):
        df.mistral.classify("text", ["x", "y"])
    panel = widgets.ChatPanel(session, "panel")
    with pytest.raises(ConfigError, match="did you mean mistral-small-latest"):
        panel.send("Hello")
    nothing_happened(session, magic_server, before)


def test_every_way_a_model_id_comes_in_is_checked(ip, magic_server, capsys, tmp_path):
    session = mistral_magic.session()
    before = magic_server.request_count()
    df = pd.DataFrame({"text": ["a", "b"]})
    for call in (
        lambda: df.mistral.extract("From: {text}", schema="name", model="mistral-lage-latest"),
        lambda: df.mistral.embed("text", model="mistral-embd"),
        lambda: df.mistral.moderate("text", model="mistral-moderation-latst"),
    ):
        with pytest.raises(ConfigError, match="did you mean"):
            call()
    assert "did you mean codestral-latest?" in refusal(
        ip, capsys, "%%mistral --fim -m codestrale-latest\ndef f():\n    <FILL>")
    (tmp_path / "note.txt").write_text("A short note.")
    assert "did you mean mistral-ocr-latest?" in refusal(
        ip, capsys, f"%mistral ocr {tmp_path / 'note.txt'} -m mistral-ocr-lastest")
    run(ip, "1 / 0", ok=False)
    capsys.readouterr()
    assert "did you mean mistral-large-latest?" in refusal(ip, capsys, "%mistral fix -m mistral-lage-latest")
    nothing_happened(session, magic_server, before)


def test_a_self_hosted_server_is_checked_against_its_own_list_fetched_once(ip, monkeypatch, capsys):
    with OfflineServer() as server:
        monkeypatch.setenv("MISTRAL_SERVER_KEY", server.api_key)
        ip.run_line_magic("config", f"MistralMagics.server_url = {server.url!r}")
        message = refusal(ip, capsys, "%%mistral -m mistral-lage-latest\nHello")
        assert "the self-hosted server has no such model; did you mean mistral-large-latest?" in message
        assert server.request_count("/v1/chat/completions") == 0
        run(ip, "%%mistral -m mistral-large-latest\nHello")
        run(ip, "%%mistral -m mistral-small-latest\nAgain")
        assert server.request_count("/v1/models") == 1
        assert server.request_count("/v1/chat/completions") == 2


def test_when_the_list_cannot_be_had_the_cell_is_sent_and_the_refusal_said_once(ip, monkeypatch, capsys):
    with OfflineServer() as server:
        monkeypatch.setenv("MISTRAL_SERVER_KEY", server.api_key)
        ip.run_line_magic("config", f"MistralMagics.server_url = {server.url!r}")
        # The first request of each path fails: the model list (asked once, not retried) is
        # lost, the chat request is retried and reaches the server, which refuses the model.
        server.set_faults({"error_status": 503, "error_on_nth": [1]})
        message = refusal(ip, capsys, "%%mistral -m mistral-lage-latest\nHello")
        assert server.request_count("/v1/models") == 1
        assert server.request_count("/v1/chat/completions") == 2
        assert message == (
            "APIError: Mistral API error 400: Invalid model: mistral-lage-latest (not in the "
            "offline catalogue; did you mean mistral-large-latest?) — %mistral models lists the "
            "models you can use")


def test_replaying_checks_nothing(ip, capsys):
    ip.run_line_magic("config", "MistralMagics.cache = 'replay'")
    message = refusal(ip, capsys, "%%mistral -m my-finetune\nHello")
    assert message.startswith("ReplayMiss:")


@pytest.mark.parametrize("line, said", [
    ("usgae", "Unknown command 'usgae'; did you mean %mistral usage?"),
    ("histroy", "Unknown command 'histroy'; did you mean %mistral history?"),
    ("reset --al", None),  # an abbreviation argparse takes
    ("reset --everything", "unknown option --everything for %mistral reset; its options: --all, --chat"),
    ("ocr scan.pdf --pagse 0-2", "unknown option --pagse for %mistral ocr; did you mean --pages?"),
    ("schema --mnay", "unknown option --mnay for %mistral schema; did you mean --many?"),
    ("usage --al", None),
])
def test_misspelt_commands_and_options_get_a_suggestion(ip, line, said):
    if said is None:
        ip.run_line_magic("mistral", line)
        return
    with pytest.raises(UsageError) as caught:
        ip.run_line_magic("mistral", line)
    assert str(caught.value) == said


@pytest.mark.parametrize("line, said", [
    ("--temprature 0.2", "unknown option --temprature; did you mean --temperature?"),
    ("-temperature 0.2", "unknown option -temperature; did you mean --temperature?"),
    ("--dryrun", "unknown option --dryrun; did you mean --dry-run?"),
    ("--no-stream --moddel x", "unknown option --moddel; did you mean --model?"),
    ("--frobnicate", "unknown option --frobnicate; %%mistral? lists the options"),
])
def test_misspelt_cell_options_get_a_suggestion(ip, line, said):
    with pytest.raises(UsageError) as caught:
        ip.run_cell_magic("mistral", line, "hello")
    assert str(caught.value) == said
