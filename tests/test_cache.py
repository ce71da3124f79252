"""The response cache in the store: on, off, replay, --refresh, re-runs, export and import,
extraction resumed after a restart, and the ledger across kernels.

A "restart" here unloads the extension and loads it again in the same working
directory: a new Session, with new chats and ledger, as a fresh kernel has.
`test_restart.py` does the same with real kernels.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import run
from IPython.core.error import UsageError

import mistral_magic
from mistral_magic.errors import ReplayMiss
from mistral_magic.store import Store, request_key

ASK = "%%mistral --max-tokens 40\nName three uses of a hash map."


def restart(ip):
    """A fresh kernel's extension, same folder: new chats, new ledger, the same store.

    Settings made with %config stay (they are the shell's config), as in a notebook
    whose %config cells run again.
    """
    ip.run_line_magic("unload_ext", "mistral_magic")
    ip.run_line_magic("load_ext", "mistral_magic")
    return mistral_magic.session()


def final(ip) -> dict:
    """The last display message of the last answer (what the front end ends with)."""
    return [m for m in ip.display_pub.finals() if "mistral_magic" in m["metadata"]][-1]


def shown(ip) -> str:
    return final(ip)["data"]["text/plain"]


def store(tmp_path: Path) -> Store:
    return Store(tmp_path / ".mistral_magic" / "store.sqlite")


# -- on: a fresh kernel gets the stored answer -------------------------------------------


@pytest.mark.parametrize("stream", [True, False])
def test_a_fresh_kernel_gets_the_stored_answer_at_no_cost(ip, magic_server, tmp_path, stream):
    flag = "" if stream else " --no-stream"
    cell = ASK.replace("\n", f"{flag}\n", 1)
    run(ip, cell, cell_id="c1")
    first = mistral_magic.session().last
    assert first.cost > 0 and not first.cached
    text = first.text
    sent = magic_server.request_count()

    session = restart(ip)
    run(ip, cell, cell_id="c1")
    answer = session.last
    assert magic_server.request_count() == sent  # nothing was sent
    assert answer.cached and answer.text == text and answer.cost == 0
    assert answer.saved == pytest.approx(first.cost)
    # Shown the same way: the same final render, the footer says cached and what it saved.
    assert shown(ip).startswith(text)
    assert f"cached · $0 (saved {mistral_magic.money.usage.format_cost(first.cost)})" in shown(ip)
    assert final(ip)["metadata"]["mistral_magic"]["cached"] is True
    assert "<h" in final(ip)["data"]["text/html"] or "<p>" in final(ip)["data"]["text/html"]
    records = session.ledger.records
    assert [(r.cached, r.cost) for r in records] == [(True, 0.0)]
    assert records[0].completion_tokens == first.completion_tokens
    # The turn is recorded as usual: the next cell's history holds it.
    assert session.chats.get("default").turns[0].answer == first.reply


def test_a_conversation_comes_back_cell_by_cell(ip, magic_server):
    run(ip, ASK, cell_id="a")
    run(ip, "%%mistral --max-tokens 40\nWhich of them is the fastest?", cell_id="b")
    answers = [t.answer for t in mistral_magic.session().chats.get("default").turns]
    sent = magic_server.request_count()
    session = restart(ip)
    run(ip, ASK, cell_id="a")
    run(ip, "%%mistral --max-tokens 40\nWhich of them is the fastest?", cell_id="b")
    assert magic_server.request_count() == sent
    assert [t.answer for t in session.chats.get("default").turns] == answers
    assert all(r.cached for r in session.ledger.records)


def test_running_a_cell_again_in_the_same_kernel_asks_again_and_replaces(ip, magic_server,
                                                                         tmp_path):
    run(ip, ASK, cell_id="c1")
    key = store(tmp_path).keys()[0]
    first = store(tmp_path).get(key, hit=False).created
    session = restart(ip)
    run(ip, ASK, cell_id="c1")
    assert session.last.cached
    sent = magic_server.request_count()
    run(ip, ASK, cell_id="c1")  # "answer again"
    assert magic_server.request_count() == sent + 1 and not session.last.cached
    assert len(store(tmp_path)) == 1
    assert store(tmp_path).get(key, hit=False).created > first  # the entry was replaced
    assert [r.cached for r in session.ledger.records] == [True, False]


def test_a_cell_without_an_id_asks_again_once_this_kernel_answered_it(ip, magic_server):
    cell = "%%mistral --no-history --max-tokens 30\nSay hi."
    run(ip, cell)
    session = restart(ip)
    run(ip, cell)
    assert session.last.cached
    run(ip, cell)
    assert not session.last.cached


def test_refresh_always_sends_and_replaces_the_entry(ip, magic_server, tmp_path):
    run(ip, ASK, cell_id="c1")
    session = restart(ip)
    sent = magic_server.request_count()
    run(ip, ASK.replace("--max-tokens 40", "--max-tokens 40 --refresh"), cell_id="c1")
    assert magic_server.request_count() == sent + 1 and not session.last.cached
    assert session.last.cost > 0
    entry = store(tmp_path).entries()[0]
    assert entry.hits == 0 and entry.cell == "c1"


def test_a_structured_cell_and_its_reask_come_back_from_the_cache(ip, magic_server):
    cell = '%%mistral --schema "name, age int" -o person\nAlice is 31 and lives in Lyon.'
    magic_server.set_faults({"bad_json_rate": 0.5, "seed": 1})
    run(ip, cell, cell_id="s")
    first = mistral_magic.session()
    assert len(first.ledger.records) == 2  # asked, then re-asked
    person = ip.user_ns["person"]
    sent = magic_server.request_count()
    session = restart(ip)
    run(ip, cell, cell_id="s")
    assert magic_server.request_count() == sent
    assert [r.cached for r in session.ledger.records] == [True, True]
    pd.testing.assert_frame_equal(ip.user_ns["person"], person)
    assert "cached" in shown(ip)


def test_a_cached_answer_needs_no_budget(ip, magic_server):
    run(ip, ASK, cell_id="c1")
    session = restart(ip)
    ip.run_line_magic("config", "MistralMagics.budget_usd = 1e-9")
    run(ip, ASK, cell_id="c1")  # would be refused if it were sent
    assert session.last.cached and session.budget.reserved == 0
    result = run(ip, "%%mistral\nA new question.", cell_id="c2", ok=False)
    assert type(result.error_in_exec).__name__ == "BudgetExceeded"


def test_the_backend_is_part_of_the_key(ip, magic_server, tmp_path):
    run(ip, ASK, cell_id="c1")
    request = mistral_magic.session().last.request
    [key] = store(tmp_path).keys()
    assert key == request_key("offline", request)  # not the offline server's port
    assert request_key("https://api.mistral.ai", request) != key


# -- off ---------------------------------------------------------------------------------


def test_off_neither_reads_nor_writes_the_store(ip, magic_server, tmp_path):
    ip.run_line_magic("config", "MistralMagics.cache = 'off'")
    run(ip, ASK, cell_id="c1")
    reviews(2).mistral.extract("{text}", schema="name, age int", progress=False)
    assert not (tmp_path / ".mistral_magic").exists()
    run(ip, "%config MistralMagics.cache = 'on'")
    run(ip, ASK, cell_id="c1")  # recorded now
    session = restart(ip)
    ip.run_line_magic("config", "MistralMagics.cache = 'off'")
    sent = magic_server.request_count()
    run(ip, ASK, cell_id="c1")
    assert magic_server.request_count() == sent + 1 and not session.last.cached
    assert len(store(tmp_path).ledger) == 1  # only the call made while it was on


# -- replay ------------------------------------------------------------------------------


def test_replay_answers_from_the_cache_and_a_miss_is_one_line(ip, magic_server, capsys):
    run(ip, ASK, cell_id="c1")
    session = restart(ip)
    ip.run_line_magic("config", "MistralMagics.cache = 'replay'")
    sent = magic_server.request_count()
    run(ip, ASK, cell_id="c1")
    run(ip, ASK, cell_id="c1")  # a re-run too: replay never sends
    assert magic_server.request_count() == sent
    assert session.last.cached
    capsys.readouterr()
    result = run(ip, "%%mistral\nSomething nobody asked\nover two lines", cell_id="new", ok=False)
    assert isinstance(result.error_in_exec, ReplayMiss)
    out = capsys.readouterr()
    said = (out.out + out.err).strip()
    assert "\n" not in said and "Traceback" not in said
    assert "«Something nobody asked over two lines»" in said
    assert "cell new" in said and "MistralMagics.cache = 'on'" in said
    assert magic_server.request_count() == sent
    with pytest.raises(UsageError, match="replay"):
        ip.run_cell_magic("mistral", "--refresh", "Name three uses of a hash map.")


def test_teacher_records_exports_and_students_replay_with_no_key(ip, magic_server, tmp_path,
                                                                  monkeypatch):
    ip.user_ns["__session__"] = str(tmp_path / "course" / "lesson.ipynb")
    run(ip, ASK, cell_id="c1")
    run(ip, "%%mistral --max-tokens 30\nAnd in Python?", cell_id="c2")
    reviews(3).mistral.extract("{text}", schema="name, age int", progress=False)
    answers = [t.answer for t in mistral_magic.session().chats.get("default").turns]
    ip.user_ns["__session__"] = "other.ipynb"  # another notebook in the folder
    run(ip, "%%mistral --max-tokens 20\nNot part of the lesson.", cell_id="x")
    ip.user_ns["__session__"] = str(tmp_path / "course" / "lesson.ipynb")
    note = ip.run_line_magic("mistral", "cache export lesson-answers.sqlite")
    assert "Exported 5 answers" in note and "cache = 'replay'" in note

    student = tmp_path / "student"
    student.mkdir()
    Path(tmp_path / "lesson-answers.sqlite").rename(student / "lesson-answers.sqlite")
    monkeypatch.chdir(student)
    session = restart(ip)
    ip.run_line_magic("config", "MistralMagics.cache_path = 'lesson-answers.sqlite'")
    ip.run_line_magic("config", "MistralMagics.cache = 'replay'")
    sent = magic_server.request_count()
    run(ip, ASK, cell_id="c1")
    run(ip, "%%mistral --max-tokens 30\nAnd in Python?", cell_id="c2")
    out = reviews(3).mistral.extract("{text}", schema="name, age int", progress=False)
    assert magic_server.request_count() == sent
    assert [t.answer for t in session.chats.get("default").turns] == answers
    assert out["_error"].isna().all() and out["age"].tolist() == [36, 41, 29]
    missed = reviews(4).mistral.extract("{text}", schema="name, age int", progress=False)
    assert missed["_error"].isna().tolist() == [True, True, True, False]
    assert "No stored answer" in missed["_error"][3]
    result = run(ip, "%%mistral --max-tokens 20\nNot part of the lesson.", cell_id="x", ok=False)
    assert isinstance(result.error_in_exec, ReplayMiss)
    assert magic_server.request_count() == sent
    assert not (student / ".mistral_magic").exists()


def test_replay_with_no_key_finds_answers_recorded_on_la_plateforme(ip, tmp_path):
    request = mistral_magic.session().build_request("What is a tensor?", history=False)
    with Store(tmp_path / "hosted.sqlite") as hosted:
        hosted.put(request_key("https://api.mistral.ai", request),
                   {"text": "A tensor is a multi-dimensional array.", "finish_reason": "stop"},
                   model="mistral-small-latest", backend="mistral", prompt_tokens=8,
                   completion_tokens=9, cost=0.0001)
    ip.run_line_magic("config", f"MistralMagics.cache_path = {str(tmp_path / 'hosted.sqlite')!r}")
    ip.run_line_magic("config", "MistralMagics.cache = 'on'")
    run(ip, "%%mistral --no-history\nWhat is a tensor?", cell_id="t")
    assert not mistral_magic.session().last.cached  # on: a hosted answer never answers offline
    ip.run_line_magic("config", "MistralMagics.cache = 'replay'")
    run(ip, "%%mistral --no-history\nWhat is a tensor?", cell_id="t2")
    last = mistral_magic.session().last
    assert last.text == "A tensor is a multi-dimensional array." and last.backend == "mistral"
    # A notebook that asks for La Plateforme by name replays with no key too.
    ip.run_line_magic("config", "MistralMagics.backend = 'mistral'")
    run(ip, "%%mistral --no-history\nWhat is a tensor?", cell_id="t3")
    assert mistral_magic.session().last.cached


def test_replay_starts_no_server_and_loads_no_sdk(tmp_path):
    """In a fresh process with no key: a replayed cell sends nothing and starts nothing."""
    code = f"""
import sys
from IPython.core.interactiveshell import InteractiveShell
from mistral_magic.store import Store, request_key
from mistral_magic.core import chat_request
request = chat_request("mistral-small-latest", [{{"role": "user", "content": "Hi there"}}])
with Store({str(tmp_path / 'answers.sqlite')!r}) as store:
    store.put(request_key("https://api.mistral.ai", request), {{"text": "Hello!"}},
              model="mistral-small-latest", backend="mistral", cost=0.001)
from traitlets.config import Config
config = Config()
config.HistoryManager.hist_file = ":memory:"
shell = InteractiveShell.instance(config=config)
shell.run_line_magic("load_ext", "mistral_magic")
shell.run_line_magic("config", "MistralMagics.cache_path = {str(tmp_path / 'answers.sqlite')!r}")
shell.run_line_magic("config", "MistralMagics.cache = 'replay'")
assert shell.run_cell("%%mistral\\nHi there").success
import mistral_magic
from mistral_magic.calls import backend
print(mistral_magic.session().last.text, backend.offline_running(),
      [m for m in ("mistralai", "mistral_common", "uvicorn") if m in sys.modules])
"""
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("MISTRAL_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, timeout=120,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "Hello! False []"


# -- the chat panel ----------------------------------------------------------------------


def test_the_panel_always_sends_unless_replaying(ip, magic_server):
    from mistral_magic import widgets

    panel = widgets.ChatPanel(mistral_magic.session(), "box")
    first = panel.send("What is a p-value?").result(30)
    session = restart(ip)
    sent = magic_server.request_count()
    panel = widgets.ChatPanel(session, "box")
    second = panel.send("What is a p-value?").result(30)
    assert magic_server.request_count() == sent + 1  # each Send is a new question
    assert not panel.last.cached
    session = restart(ip)
    ip.run_line_magic("config", "MistralMagics.cache = 'replay'")
    panel = widgets.ChatPanel(session, "box")
    turn = panel.send("What is a p-value?").result(30)
    assert turn.answer == second.answer != first.answer  # the latest answer replaced the first
    assert panel.last.cached
    assert "cached" in panel.status.value
    with pytest.raises(ReplayMiss):
        panel.send("Never asked before")
    assert magic_server.request_count() == sent + 1


# -- extraction resumes after a restart ----------------------------------------------------


def reviews(n: int) -> pd.DataFrame:
    people = [("Ada", 36), ("Bob", 41), ("Cy", 29), ("Dee", 52), ("Eve", 23)]
    return pd.DataFrame({"text": [f"{people[i][0]} is {people[i][1]} years old." for i in range(n)]})


def test_extraction_resumes_after_a_restart_paying_only_for_the_rest(ip, magic_server, tmp_path):
    reviews(3).mistral.extract("{text}", schema="name, age int", progress=False)
    sent = magic_server.request_count()
    session = restart(ip)
    out = reviews(5).mistral.extract("{text}", schema="name, age int", progress=False)
    assert magic_server.request_count() == sent + 2
    assert out["age"].tolist() == [36, 41, 29, 52, 23] and out["_error"].isna().all()
    assert [r.cached for r in session.ledger.records] == [False, False]  # resumed rows are free
    assert any("3 rows already done, from the cache" in m.get("data", {}).get("text/plain", "")
               for m in ip.display_pub.messages)
    assert store(tmp_path).records.count() == 5


def test_rows_whose_answers_are_stored_are_served_with_one_query(ip, magic_server, tmp_path):
    reviews(4).mistral.extract("{text}", schema="name, age int", progress=False)
    store(tmp_path).records.delete()  # only the response cache knows them now
    session = restart(ip)
    sent = magic_server.request_count()
    out = reviews(4).mistral.extract("{text}", schema="name, age int", progress=False)
    assert magic_server.request_count() == sent
    assert out["age"].tolist() == [36, 41, 29, 52]
    assert [(r.cached, r.cost, r.kind) for r in session.ledger.records] == [(True, 0.0, "extract")] * 4


# -- the ledger across kernels -------------------------------------------------------------


def test_usage_all_shows_every_kernel_and_usage_this_one(ip, magic_server):
    run(ip, ASK, cell_id="c1")
    first = mistral_magic.session().responses.id
    session = restart(ip)
    run(ip, ASK, cell_id="c1")
    run(ip, "%%mistral --max-tokens 20\nOne more.", cell_id="c2")
    mine = ip.run_line_magic("mistral", "usage")
    assert len(mine) == 2 and mine["cached"].tolist() == [True, False]
    every = ip.run_line_magic("mistral", "usage --all")
    assert every["session"].tolist() == [first, session.responses.id, session.responses.id]
    assert every["cached"].tolist() == [False, True, False]
    assert every["cost"].iloc[1] == 0 and every["cost"].iloc[0] > 0
    assert list(every.columns)[-2:] == ["cost", "status"]


# -- the commands ------------------------------------------------------------------------


def test_cache_command_shows_entries_size_savings_and_clears(ip, magic_server, tmp_path):
    info = ip.run_line_magic("mistral", "cache")
    assert info.entries == 0 and not (tmp_path / ".mistral_magic").exists()  # a look creates nothing
    run(ip, ASK, cell_id="c1")
    first = mistral_magic.session().last.cost
    restart(ip)
    run(ip, ASK, cell_id="c1")
    info = ip.run_line_magic("mistral", "cache")
    assert (info.entries, info.hits) == (1, 1) and info.saved_usd == pytest.approx(first)
    assert info.size_bytes > 0 and info.path == str(tmp_path / ".mistral_magic" / "store.sqlite")
    text = repr(info)
    # Shown relative to the notebook's folder: a saved notebook holds no local path.
    assert "saved $" in text and "on · .mistral_magic/store.sqlite" in text
    assert str(tmp_path) not in text + info._repr_html_()
    html = info._repr_html_()
    assert "mathjax_ignore" in html and "<script" not in html
    note = ip.run_line_magic("mistral", "cache clear")
    assert "1 answer " in note
    assert ip.run_line_magic("mistral", "cache").entries == 0
    assert (tmp_path / ".mistral_magic" / ".gitignore").read_text() == "*\n"


def test_cache_import_adds_the_answers_of_a_file(ip, magic_server, tmp_path):
    request = mistral_magic.session().build_request("Imported?", max_tokens=10)
    with Store(tmp_path / "given.sqlite") as given:
        given.put(request_key("offline", request), {"text": "Yes, imported."}, cost=0.001)
    note = ip.run_line_magic("mistral", "cache import given.sqlite")
    assert "Imported 1 answer" in note
    run(ip, "%%mistral --max-tokens 10\nImported?", cell_id="i")
    assert mistral_magic.session().last.text == "Yes, imported."
    with pytest.raises(UsageError, match="needs a file"):
        ip.run_line_magic("mistral", "cache export")
    note = ip.run_line_magic("mistral", "cache export nothing.sqlite")
    assert "answer" in note and (tmp_path / "nothing.sqlite").exists()


def test_a_store_that_cannot_be_used_is_said_once_and_cells_go_on(ip, magic_server, tmp_path,
                                                                   capsys):
    (tmp_path / "broken.sqlite").write_text("not a database at all, just text" * 100)
    ip.run_line_magic("config", "MistralMagics.cache_path = 'broken.sqlite'")
    run(ip, ASK, cell_id="c1")
    run(ip, "%%mistral --max-tokens 20\nAgain.", cell_id="c2")
    notices = [m for m in ip.display_pub.messages if "data" in m
               and "response cache is not used" in m["data"].get("text/plain", "")]
    assert len(notices) == 1 and "broken.sqlite" in notices[0]["data"]["text/plain"]
    ip.run_line_magic("config", "MistralMagics.cache = 'replay'")
    result = run(ip, ASK, cell_id="c3", ok=False)
    assert type(result.error_in_exec).__name__ == "StoreError"


def test_an_answer_cut_by_the_budget_answers_only_the_capped_request(ip, magic_server):
    magic_server.set_faults({"answer_tokens": 2000})
    session = mistral_magic.session()
    ip.run_line_magic("config", "MistralMagics.budget_usd = 0.00002")
    run(ip, "%%mistral\nWrite a long essay.", cell_id="e")
    assert session.last.budget_capped and session.last.finish_reason == "length"
    session = restart(ip)
    ip.run_line_magic("config", "MistralMagics.budget_usd = None")  # the whole answer is wanted
    sent = magic_server.request_count()
    run(ip, "%%mistral\nWrite a long essay.", cell_id="e")
    assert magic_server.request_count() == sent + 1 and not session.last.cached
    assert session.last.completion_tokens == 2000
    session = restart(ip)
    run(ip, "%%mistral\nWrite a long essay.", cell_id="e")  # the whole answer, now kept
    assert session.last.cached and session.last.completion_tokens == 2000
