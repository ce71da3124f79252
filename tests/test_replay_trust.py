"""A shipped cache is data: tool calls replayed from answers this user did not write are
shown in the cell and need a yes before they run; this user's own replay as before.

A teacher records a ``--tools`` cell and exports its answers; a student imports the
file (or points ``cache_path`` at it from another machine) and replays. "Another
machine" is another signing key: ``XDG_CONFIG_HOME`` pointed at another folder.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import run
from test_tools import ASK, SETUP, check_sequence

import mistral_magic

CELL = f"%%mistral --tools describe_column,plot_hist\n{ASK}"
STORED = "stored answer that this machine did not write"


def restart(ip):
    ip.run_line_magic("unload_ext", "mistral_magic")
    ip.run_line_magic("load_ext", "mistral_magic")
    return mistral_magic.session()


def teacher_exports(ip, tmp_path: Path) -> tuple[Path, str]:
    """The teacher's run of the tool cell, exported; the file and the final answer."""
    run(ip, SETUP)
    run(ip, CELL, cell_id="c1")
    text = mistral_magic.session().last.text
    assert len(ip.user_ns["calls"]) == 2
    note = ip.run_line_magic("mistral", "cache export answers.sqlite")
    assert "Exported 2 answers" in note
    return tmp_path / "answers.sqlite", text


def student(ip, tmp_path: Path, monkeypatch, *, own_key: bool = True):
    """A fresh kernel in the student's folder, replaying; `own_key`: on another machine."""
    folder = tmp_path / "student"
    folder.mkdir()
    monkeypatch.chdir(folder)
    if own_key:
        monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "student-config"))
    session = restart(ip)
    run(ip, SETUP)  # the student's notebook defines the same tools; nothing called yet
    ip.run_line_magic("config", "MistralMagics.cache = 'replay'")
    return session


def answering(monkeypatch, ip, *replies: str, refuse: str | None = None) -> list[dict]:
    """Answer input() with `replies` (or no to a call of `refuse`, yes to the rest); each
    question is kept with what the cell showed then."""
    asked = []
    replies_left = iter(replies)

    def reply(question):
        shown = [m for m in ip.display_pub.messages if "data" in m][-1]["data"]
        asked.append({"question": question, "shown": shown.get("text/html", ""),
                      "calls": list(ip.user_ns["calls"])})
        if refuse is not None:
            return "n" if question.startswith(f"Run {refuse}(") else "y"
        return next(replies_left)

    monkeypatch.setattr(builtins, "input", reply)
    return asked


def final(ip) -> dict:
    return [m for m in ip.display_pub.finals() if "mistral_magic" in m["metadata"]][-1]


def edit_arguments(path: Path, name: str, arguments: dict) -> None:
    """Edit the stored tool calls of `name` in an exported file, as a hostile sender would."""
    conn = sqlite3.connect(path)
    try:
        for key, text in conn.execute("SELECT key, response FROM responses").fetchall():
            response = json.loads(text)
            for call in response.get("tool_calls") or []:
                if call["function"]["name"] == name:
                    call["function"]["arguments"] = json.dumps(arguments)
            conn.execute("UPDATE responses SET response = ? WHERE key = ?",
                         (json.dumps(response), key))
        conn.commit()
    finally:
        conn.close()


def test_imported_tool_calls_are_shown_and_run_only_once_approved(ip, magic_server, tmp_path,
                                                                   monkeypatch):
    shipped, text = teacher_exports(ip, tmp_path)
    session = student(ip, tmp_path, monkeypatch, own_key=False)  # same machine: import suffices
    assert "Imported 2 answers" in ip.run_line_magic("mistral", f"cache import {shipped}")
    asked = answering(monkeypatch, ip, "y", "y")
    sent = magic_server.request_count()
    run(ip, CELL, cell_id="c1")
    assert magic_server.request_count() == sent
    # Each call was asked about, its name and arguments in the question and in the cell,
    # before it ran.
    assert len(asked) == 2 and all("did not write" in a["question"] for a in asked)
    names = [run_.name for run_ in session.last.tool_runs]
    for a, name, before in zip(asked, names, ([], [names[0]]), strict=True):
        assert a["question"].startswith(f"Run {name}(") and STORED in a["shown"]
        assert f"<code class=\"language-json\">{name}\n{{" in a["shown"]
        assert [c[0] for c in a["calls"]] == before
    assert len(ip.user_ns["calls"]) == 2
    assert session.last.text == text and session.last.status == "ok"
    assert [r.cached for r in session.ledger.records] == [True, True]
    check_sequence(session.chats.get("default").context())


@pytest.mark.parametrize("headless", [False, True])
def test_a_refused_or_unaskable_stored_call_runs_nothing_and_says_so(ip, magic_server, tmp_path,
                                                                      monkeypatch, headless):
    shipped, _ = teacher_exports(ip, tmp_path)
    session = student(ip, tmp_path, monkeypatch)
    ip.run_line_magic("mistral", f"cache import {shipped}")
    if headless:
        def no_stdin(question):
            raise OSError("reading from stdin while output is captured")

        monkeypatch.setattr(builtins, "input", no_stdin)
    else:
        answering(monkeypatch, ip, "n", "")
    sent = magic_server.request_count()
    run(ip, CELL, cell_id="c1")  # the cell ends, with a note, not with an error
    assert ip.user_ns["calls"] == [] and magic_server.request_count() == sent
    runs = session.last.tool_runs
    assert [r.status for r in runs] == ["refused", "refused"]
    said = "no input device" if headless else "the user refused"
    assert all(said in r.content and "did not write" in r.content for r in runs)
    shown = final(ip)["data"]
    assert "replay sends nothing" in shown["text/plain"] and said in shown["text/html"]
    turn = session.chats.get("default").turns[-1]
    assert turn.status == "error" and not turn.in_context
    assert session.chats.get("default").context() == []


def test_an_edited_export_cannot_run_a_tool_with_its_own_arguments(ip, magic_server, tmp_path,
                                                                    monkeypatch):
    shipped, _ = teacher_exports(ip, tmp_path)
    edit_arguments(shipped, "plot_hist", {"column": "price", "bins": 99})
    student(ip, tmp_path, monkeypatch)
    ip.run_line_magic("mistral", f"cache import {shipped}")
    asked = answering(monkeypatch, ip, refuse="plot_hist")
    run(ip, CELL, cell_id="c1")
    hostile = [a for a in asked if "plot_hist" in a["question"]]
    assert len(hostile) == 1 and "bins=99" in hostile[0]["question"]
    assert "99" in hostile[0]["shown"]
    assert ("plot_hist", "price", 99) not in ip.user_ns["calls"]


def test_a_store_written_on_another_machine_asks_and_the_teachers_own_does_not(
        ip, magic_server, tmp_path, monkeypatch):
    shipped, text = teacher_exports(ip, tmp_path)
    # The teacher replays their own export: their signatures travel with it, nothing asks.
    def never(question):
        raise AssertionError(f"asked about the teacher's own answer: {question}")

    monkeypatch.setattr(builtins, "input", never)
    session = restart(ip)
    ip.run_line_magic("config", f"MistralMagics.cache_path = {str(shipped)!r}")
    ip.run_line_magic("config", "MistralMagics.cache = 'replay'")
    run(ip, SETUP)
    run(ip, CELL, cell_id="c1")
    assert session.last.text == text and len(ip.user_ns["calls"]) == 2
    # A student on another machine points cache_path at the same file: asked.
    session = student(ip, tmp_path, monkeypatch)
    ip.run_line_magic("config", f"MistralMagics.cache_path = {str(shipped)!r}")
    asked = answering(monkeypatch, ip, "y", "y")
    run(ip, CELL, cell_id="c1")
    assert len(asked) == 2 and session.last.text == text and len(ip.user_ns["calls"]) == 2


def test_this_users_own_cached_tool_cell_replays_as_before(ip, magic_server, monkeypatch):
    run(ip, SETUP)
    run(ip, CELL, cell_id="c1")
    text = mistral_magic.session().last.text

    def never(question):
        raise AssertionError(f"asked about this user's own answer: {question}")

    monkeypatch.setattr(builtins, "input", never)
    for mode in ("on", "replay"):
        session = restart(ip)
        ip.run_line_magic("config", f"MistralMagics.cache = {mode!r}")
        run(ip, CELL, cell_id="c1")
        assert session.last.text == text and session.last.cached
        assert all(r.status == "ok" for r in session.last.tool_runs)
    assert len(ip.user_ns["calls"]) == 6  # the teacher's two, then two per replay


def test_with_the_cache_on_a_refused_stored_call_goes_to_the_model_as_not_run(
        ip, magic_server, tmp_path, monkeypatch):
    shipped, text = teacher_exports(ip, tmp_path)
    session = student(ip, tmp_path, monkeypatch)
    ip.run_line_magic("config", "MistralMagics.cache = 'on'")
    ip.run_line_magic("mistral", f"cache import {shipped}")
    answering(monkeypatch, ip, refuse="plot_hist")
    sent = magic_server.request_count()
    run(ip, CELL, cell_id="c1")
    # The first step was served; after the refusal the model was asked, as --approve does.
    assert magic_server.request_count() == sent + 1
    assert [r.cached for r in session.ledger.records] == [True, False]
    statuses = {r.name: r.status for r in session.last.tool_runs}
    assert statuses == {"describe_column": "ok", "plot_hist": "refused"}
    assert [c[0] for c in ip.user_ns["calls"]] == ["describe_column"]
    sent_results = [m["content"] for m in session.last.request["messages"] if m["role"] == "tool"]
    assert any(r.startswith("Not run: the user refused this call to plot_hist") for r in sent_results)
    assert session.last.status == "ok" and session.last.text != text
    check_sequence(session.chats.get("default").context())
