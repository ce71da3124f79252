"""A store from elsewhere is data: whose answers are whose (signatures), and an import that
reads only real tables, within bounds, refusing anything else in one line.

Files that would make an unguarded reader hang (a view over a recursive query) are
read in a child process with a timeout and a memory limit, so a regression fails the
test instead of taking the machine down.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import run

from mistral_magic.store import Store, StoreError
from mistral_magic.store.provenance import Signer
from mistral_magic.store.transfer import MAX_IMPORT_BYTES, MAX_IMPORT_ROWS

ROOT = Path(__file__).resolve().parents[1]
HANG = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r)"


def answer(text: str, **extra) -> dict:
    return {"text": text, "finish_reason": "stop", **extra}


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message and message
    return message


def export_file(path: Path, rows: int = 2) -> Path:
    """A real export of `rows` answers: what a teacher ships."""
    with Store(path.with_name("teacher.sqlite")) as teacher:
        teacher.put_many([{"key": f"k{i}", "response": answer(f"answer {i}"), "cost": 0.001}
                          for i in range(rows)])
        teacher.export(path)
    return path


def sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def in_child(code: str) -> subprocess.CompletedProcess:
    """Run `code` in a child Python with 4 GB of memory at most; a hang fails the test."""
    guarded = ("import resource\nresource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
               + code)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    try:
        return subprocess.run([sys.executable, "-c", guarded], capture_output=True, text=True,
                              timeout=120, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("reading the file did not end within 120 s")


def import_in_child(target: Path, source: Path) -> str:
    """Import `source` into `target` in a child; the one line it ended with."""
    done = in_child(
        "from mistral_magic.store import Store, StoreError\n"
        f"store = Store({str(target)!r})\n"
        "try:\n"
        f"    print('imported', store.import_from({str(source)!r}))\n"
        "except StoreError as exc:\n"
        "    print('refused', exc)\n"
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    return lines[0]


# -- whose answers ----------------------------------------------------------------------------


def test_answers_are_local_only_when_this_users_signature_checks(tmp_path):
    mine, theirs = Signer(tmp_path / "mine.key"), Signer(tmp_path / "theirs.key")
    path = tmp_path / "store.sqlite"
    with Store(path, signer=mine) as store:
        store.put("k1", answer("mine"), cost=0.01)
        store.put("k2", answer("also mine"))
        assert store.get("k1").foreign is False
    with Store(path, signer=theirs) as elsewhere:  # the same file on another machine
        assert elsewhere.get("k1", hit=False).foreign is True
    # An edited answer is no longer this user's, whatever else the file says.
    sql(path, "UPDATE responses SET response = replace(response, 'mine', 'edited') "
              "WHERE key = 'k1'")
    with Store(path, signer=mine) as store:
        assert store.get("k1", hit=False).foreign is True
        assert store.get("k2", hit=False).foreign is False
        # An export keeps the signatures: the same user replaying it is not asked again.
        assert store.export(tmp_path / "shipped.sqlite") == 2
    with Store(tmp_path / "shipped.sqlite", signer=mine) as shipped:
        assert shipped.get("k2", hit=False).foreign is False
    # Whatever came in by import is foreign, even this user's own export.
    with Store(tmp_path / "other.sqlite", signer=mine) as other:
        assert other.import_from(tmp_path / "shipped.sqlite") == 2
        assert {e.key: e.foreign for e in other.entries()} == {"k1": True, "k2": True}
        other.put("k2", answer("asked again here"))  # answered again: this user's own now
        assert other.get("k2", hit=False).foreign is False


def test_the_signing_key_is_made_once_and_readable_by_its_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    first, second = Signer(), Signer()
    signature = first.sign("k", '{"text": "x"}')
    assert second.verify("k", '{"text": "x"}', signature)
    assert not second.verify("k", '{"text": "y"}', signature)
    assert not second.verify("k2", '{"text": "x"}', signature)
    assert not second.verify("k", '{"text": "x"}', None)
    key_file = tmp_path / "config" / "mistral_magic" / "answers.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in key_file.parent.iterdir()] == ["answers.key"]


# -- import reads only real tables, within bounds ---------------------------------------------


def test_importing_a_view_over_a_recursive_query_is_refused_at_once(tmp_path):
    evil = export_file(tmp_path / "evil.sqlite")
    sql(evil, "DROP TABLE responses",
        f"CREATE VIEW responses AS {HANG} SELECT printf('%064x', n) AS key, 'chat' AS kind, "
        "NULL AS model, NULL AS backend, '{\"text\": \"x\"}' AS response, NULL AS prompt_tokens, "
        "NULL AS completion_tokens, NULL AS cost, NULL AS notebook, NULL AS cell, NULL AS created "
        "FROM r")
    target = tmp_path / "mine.sqlite"
    said = import_in_child(target, evil)
    assert said.startswith("refused") and "view 'responses'" in said and "cache export" in said
    assert not target.exists() or target.stat().st_size < 1 << 20


def test_a_view_in_place_of_the_migrations_table_is_refused_too(tmp_path):
    evil = export_file(tmp_path / "evil.sqlite")
    sql(evil, "DROP TABLE mistral_magic_migrations",
        f"CREATE VIEW mistral_magic_migrations AS {HANG} SELECT 'm' || n AS name, '' AS applied_at "
        "FROM r")
    said = import_in_child(tmp_path / "mine.sqlite", evil)
    assert said.startswith("refused") and "not a mistral_magic store" in said


def test_a_store_pointed_at_by_cache_path_with_a_view_is_refused_in_one_line(tmp_path):
    evil = export_file(tmp_path / "evil.sqlite")
    sql(evil, "ALTER TABLE responses RENAME TO real_responses",
        f"CREATE VIEW responses AS {HANG} SELECT r.n, a.* FROM r, real_responses AS a")
    done = in_child(
        "from mistral_magic.store import Store, StoreError\n"
        "try:\n"
        f"    Store({str(evil)!r}).get('k0')\n"
        "except StoreError as exc:\n"
        "    print(exc)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "holds a view 'responses'" in done.stdout and "cache_path" in done.stdout


@pytest.mark.parametrize("schema", [
    ("CREATE TRIGGER grow AFTER UPDATE ON responses BEGIN "
     "INSERT INTO responses SELECT * FROM responses; END", "a trigger 'grow'"),
    ("CREATE TABLE extra (x TEXT, y TEXT GENERATED ALWAYS AS (printf('%.*c', 999999999, 'x')))",
     "a generated column in table 'extra'"),
    ("CREATE VIRTUAL TABLE notes USING fts5(body)", "a virtual table 'notes'"),
])
def test_triggers_generated_columns_and_virtual_tables_are_refused(ip, tmp_path, schema):
    statement, said = schema
    evil = export_file(tmp_path / "evil.sqlite")
    sql(evil, statement)
    result = run(ip, "%mistral cache import evil.sqlite", ok=False)
    error = result.error_in_exec
    assert isinstance(error, StoreError) and said in one_line(error)
    assert "cache export" in str(error)
    assert len(Store(tmp_path / ".mistral_magic" / "store.sqlite")) == 0


def test_an_import_over_the_row_limit_is_refused_and_adds_nothing(tmp_path):
    big = export_file(tmp_path / "big.sqlite", rows=1)
    conn = sqlite3.connect(big)
    conn.executemany(
        "INSERT INTO responses (key, kind, response, created) VALUES (?, 'chat', '{}', "
        "'2026-01-01T00:00:00+00:00')", ((f"r{i}",) for i in range(MAX_IMPORT_ROWS + 1)))
    conn.commit()
    conn.close()
    with Store(tmp_path / "mine.sqlite") as store:
        with pytest.raises(StoreError) as caught:
            store.import_from(big)
        assert f"over {MAX_IMPORT_ROWS:,} answers" in one_line(caught.value)
        assert len(store) == 0


def test_an_import_over_the_size_limit_is_refused_before_it_is_read(tmp_path):
    huge = export_file(tmp_path / "huge.sqlite")
    with open(huge, "r+b") as f:  # sparse: no disk is used
        f.truncate(MAX_IMPORT_BYTES + 1)
    with Store(tmp_path / "mine.sqlite") as store:
        with pytest.raises(StoreError) as caught:
            store.import_from(huge)
        assert f"over the {MAX_IMPORT_BYTES >> 20} MB an import reads" in one_line(caught.value)
        assert len(store) == 0


@pytest.mark.parametrize("column, value, said", [
    ("cost", "'a lot'", "cost 'a lot' where a store has a price in USD"),
    ("cost", "-1.0", "cost -1.0"),
    ("prompt_tokens", "1.5", "prompt_tokens 1.5 where a store has a count"),
    ("response", "'{not json'", "response '{not json' where a store has JSON text"),
    ("response", "x'00ff'", "response b'\\x00\\xff'"),
    ("created", "'yesterday'", "created 'yesterday' where a store has an ISO 8601 time"),
    ("model", "x'41'", "model b'A' where a store has text or NULL"),
    ("key", "'a key; with spaces'", "key 'a key; with spaces'"),
])
def test_an_answer_of_the_wrong_types_refuses_the_whole_import(tmp_path, column, value, said):
    bad = export_file(tmp_path / "bad.sqlite", rows=3)
    sql(bad, f"UPDATE responses SET {column} = {value} WHERE key = 'k2'")
    with Store(tmp_path / "mine.sqlite") as store:
        with pytest.raises(StoreError) as caught:
            store.import_from(bad)
        message = one_line(caught.value)
        assert "Cannot import" in message and said in message and "answer 3" in message
        assert len(store) == 0  # the two good answers before it were not added either


def test_a_good_export_still_imports_with_its_answers_intact(tmp_path):
    given = export_file(tmp_path / "given.sqlite", rows=3)
    with Store(tmp_path / "mine.sqlite") as store:
        assert store.import_from(given) == 3
        entry = store.get("k1", hit=False)
        assert entry.response == answer("answer 1") and entry.cost == 0.001
        assert json.loads(json.dumps(entry.response))["text"] == "answer 1"
