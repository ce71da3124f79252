"""The store: a real SQLite file in a temporary folder, real processes and threads sharing it."""

from __future__ import annotations

import doctest
import hashlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest

from mistral_magic import store as store_module
from mistral_magic.errors import ConfigError
from mistral_magic.store import Store, StoreError, request_key
from mistral_magic.store import schema as storeschema

ROOT = Path(__file__).resolve().parents[1]
KEY = "sk-FAKE-4c1d9e77b0a24f3f-never-store-me"


def answer(text: str, **extra) -> dict:
    return {"text": text, "finish_reason": "stop", **extra}


def one_line(exc: BaseException) -> str:
    message = str(exc)
    assert "\n" not in message and message
    return message


def table(path: Path, sql: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@contextmanager
def read_only(*paths: Path):
    """Make files and folders unwritable, also for root (which chmod does not stop)."""
    if os.geteuid() != 0:
        modes = {p: p.stat().st_mode for p in paths}
        for p in paths:
            p.chmod(0o555 if p.is_dir() else 0o444)
        try:
            yield
        finally:
            for p, mode in modes.items():
                p.chmod(mode)
        return
    if shutil.which("chattr") is None:
        pytest.skip("running as root without chattr: cannot make a folder read-only")
    done: list[Path] = []
    try:
        for p in paths:
            result = subprocess.run(["chattr", "+i", str(p)], capture_output=True, text=True)
            if result.returncode:
                pytest.skip(f"cannot make {p} immutable here: {result.stderr.strip()}")
            done.append(p)
        yield
    finally:
        for p in reversed(done):
            subprocess.run(["chattr", "-i", str(p)], check=True)


@pytest.fixture
def store(tmp_path):
    with Store(tmp_path / "store.sqlite", session="kernel-a") as s:
        yield s


# -- keys ------------------------------------------------------------------------------


def test_request_key_is_the_resume_key_extraction_has_always_used():
    from mistral_magic.core import chat_request

    url = "http://127.0.0.1:8000"
    request = chat_request(
        "mistral-small-latest",
        [{"role": "system", "content": "Extract"}, {"role": "user", "content": "Ada, 36"}],
        temperature=0.0, max_tokens=200, seed=7, response_format={"type": "json_object"},
    )
    legacy = hashlib.sha256(
        json.dumps([url, request], sort_keys=True, default=str).encode()
    ).hexdigest()
    assert request_key(url, request) == legacy


def test_request_key_covers_what_changes_the_answer_and_drops_what_does_not():
    base = {"model": "m", "messages": [{"role": "user", "content": "Hi"}], "random_seed": 1}
    key = request_key("offline", base)
    for change in ({"model": "n"}, {"random_seed": 2}, {"temperature": 0.5},
                   {"response_format": {"type": "json_object"}},
                   {"tools": [{"type": "function", "function": {"name": "f"}}]},
                   {"messages": [{"role": "user", "content": "Hi!"}]}):
        assert request_key("offline", {**base, **change}) != key, change
    assert request_key("mistral", base) != key
    noisy = {**base, "stream": True, "api_key": KEY, "Authorization": f"Bearer {KEY}",
             "headers": {"x-api-key": KEY}}
    assert request_key("offline", noisy) == key


# -- where the file lives --------------------------------------------------------------


def test_nothing_is_created_until_the_first_write(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = Store()
    assert store.path == tmp_path / ".mistral_magic" / "store.sqlite"
    assert "not created yet" in repr(store)
    assert store.get("k") is None and store.get_many(["k", "l"]) == {}
    assert store.keys() == [] and store.entries() == [] and len(store) == 0
    assert store.stats().entries == 0 and store.stats().size_bytes == 0
    assert store.records.get_many("job", ["r"]) == {} and store.jobs.get("j") is None
    assert store.jobs.list() == [] and len(store.ledger) == 0
    assert store.ledger.frame().empty
    assert store.delete("k") == 0 and store.clear() == 0 and store.records.delete() == 0
    assert list(tmp_path.iterdir()) == []

    store.put("k", answer("Hello"))
    assert sorted(p.name for p in (tmp_path / ".mistral_magic").iterdir())[:2] == [
        ".gitignore", "store.sqlite"]
    assert (tmp_path / ".mistral_magic" / ".gitignore").read_text() == "*\n"
    # Resolved when made: moving the working directory later does not move the store.
    monkeypatch.chdir(tmp_path.parent)
    assert store.get("k").response["text"] == "Hello"
    store.close()


def test_git_never_sees_the_store(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    monkeypatch.chdir(tmp_path)
    with Store() as store:
        store.put("k", answer("Hello"))
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"],
                                capture_output=True, text=True, check=True, cwd=tmp_path)
    assert status.stdout == ""


def test_gitignore_only_in_a_folder_the_store_makes(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    (course / "lesson.ipynb").write_text("{}")
    with Store(course / "answers.sqlite") as shipped:
        shipped.put("k", answer("kept with the notebook"))
    assert not (course / ".gitignore").exists()

    with Store(tmp_path / "new" / "deeper" / "cache.sqlite") as fresh:
        fresh.put("k", answer("x"))
    assert (tmp_path / "new" / "deeper" / ".gitignore").read_text() == "*\n"

    folder = tmp_path / "a-folder"
    folder.mkdir()
    assert Store(folder).path == folder / "store.sqlite"


def test_a_deleted_folder_is_made_again_on_the_next_write(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with Store() as store:
        store.put("a", answer("one"))
        shutil.rmtree(tmp_path / ".mistral_magic")
        assert store.get("a") is None
        store.put("b", answer("two"))
        assert (tmp_path / ".mistral_magic" / ".gitignore").exists()
        assert store.keys() == ["b"]


# -- the response cache ----------------------------------------------------------------


def test_put_then_get_keeps_everything_about_the_answer(store):
    response = answer("It is 42.", thinking="Let me think.",
                      tool_calls=[{"id": "c1", "function": {"name": "f", "arguments": "{}"}}])
    store.put("k1", response, kind="chat", model="mistral-small-2603", backend="offline",
              prompt_tokens=12, completion_tokens=5, cost=0.0021, notebook="nb.ipynb",
              cell="cell-1")
    entry = store.get("k1", hit=False)
    assert entry.response == response
    assert (entry.kind, entry.model, entry.backend) == ("chat", "mistral-small-2603", "offline")
    assert (entry.prompt_tokens, entry.completion_tokens, entry.cost) == (12, 5, 0.0021)
    assert (entry.notebook, entry.cell) == ("nb.ipynb", "cell-1")
    assert entry.created.tzinfo is not None and entry.hits == 0 and entry.last_used is None


def test_hits_count_reuse_and_the_money_it_saved(store):
    store.put("k", answer("a"), cost=0.25)
    store.put("free", answer("b"), cost=None)
    assert store.get("k").hits == 1
    second = store.get("k")
    assert second.hits == 2 and second.saved == 0.5 and second.last_used is not None
    assert store.get("k", hit=False).hits == 2  # a peek is not a hit
    store.get("free")
    stats = store.stats()
    assert (stats.entries, stats.hits, stats.saved_usd, stats.unpriced_hits) == (2, 3, 0.5, 1)
    # --refresh: a new answer replaces the old one and keeps what was saved so far.
    store.put("k", answer("a, again"), cost=0.3)
    entry = store.get("k", hit=False)
    assert entry.response["text"] == "a, again" and entry.hits == 2 and entry.cost == 0.3


def test_many_at_once_in_chunks_and_batches(store):
    store.put("first", answer("opens the file"))
    if hasattr(sqlite3.Connection, "setlimit"):  # Python 3.11+
        # As the oldest SQLite builds: a statement takes at most 999 variables.
        with store.reading() as conn:
            conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    n = 2_600  # several IN lists, several write transactions
    assert n > store_module.db.BATCH and n > store_module.db.CHUNK
    written = store.put_many(
        {"key": f"k{i}", "response": answer(f"row {i}"), "kind": "extract", "cost": 0.001}
        for i in range(n)
    )
    assert written == n and len(store) == n + 1
    found = store.get_many([f"k{i}" for i in range(n)] + ["missing", "k0"], notebook="big.ipynb")
    assert len(found) == n and "missing" not in found
    assert found["k2599"].response == answer("row 2599") and found["k0"].hits == 1
    assert store.stats().hits == n and len(store.keys(notebook="big.ipynb")) == n
    assert store.export(store.path.with_name("everything.sqlite")) == n + 1
    assert store.export(store.path.with_name("big.sqlite"), notebook="big.ipynb") == n
    assert store.delete([f"k{i}" for i in range(n)]) == n and store.keys() == ["first"]
    rows = {f"row{i}": {"i": i} for i in range(n)}
    assert store.records.put("big", rows) == n
    assert store.records.get_many("big", list(rows)) == rows
    # Records made as they are written (a generator, as a row job gives them), past a batch.
    made = []
    made_rows = ((made.append(i) or f"g{i}", {"i": i}) for i in range(n))
    assert store.records.put("made", made_rows) == n == len(made)
    assert store.records.get_many("made", ["g0", f"g{n - 1}"]) == {"g0": {"i": 0}, f"g{n - 1}": {"i": n - 1}}
    assert store.records.put("made", iter(())) == 0
    exported = store.export(store.path.with_name("all.sqlite"), keys=["first", *rows])
    assert exported == 1


def test_delete_and_clear_and_the_disk_is_given_back(store):
    store.put_many({"key": f"k{i}", "response": answer("x" * 2000 + str(i))} for i in range(300))
    store.records.put("job", {"r1": {"a": 1}})
    store.jobs.put("lines", "job-1")
    store.ledger.append([{"model": "m", "cost": 0.1}])
    assert store.delete("k0") == 1 and store.delete("k0") == 0
    assert store.delete(["k1", "k2", "nope"]) == 2 and len(store) == 297
    before = store.stats().size_bytes
    assert store.clear() == 297
    stats = store.stats()
    assert (stats.entries, stats.records, stats.jobs, stats.calls) == (0, 0, 1, 1)
    assert stats.size_bytes < before / 4
    assert b"x" * 200 not in Path(store.path).read_bytes()


def test_entries_lists_the_most_recently_used_first(store):
    store.put("a", answer("a"), notebook="one.ipynb")
    store.put("b", answer("b"), notebook="two.ipynb")
    store.put("c", answer("c"))
    store.get("a", notebook="two.ipynb")
    assert [e.key for e in store.entries()][0] == "a"
    assert [e.key for e in store.entries(limit=2)] == ["a", "c"]
    assert {e.key for e in store.entries(notebook="two.ipynb")} == {"a", "b"}
    assert store.keys(notebook="one.ipynb") == ["a"]


def test_in_memory_store():
    with Store(":memory:") as store:
        store.put("k", answer("only here"))
        assert store.get("k").response["text"] == "only here"
        assert store.stats().size_bytes == 0 and store.exists


# -- the other tables --------------------------------------------------------------------


def test_row_records_resume_after_a_restart(tmp_path):
    path = tmp_path / "store.sqlite"
    with Store(path) as first:
        assert first.records.put("extract:abc", {"r1": {"name": "Ada"}, "r2": {"name": None}}) == 2
        first.records.put("extract:abc", [("r3", {"name": "Grace"})])
        first.records.put("extract:other", {"r1": {"name": "Someone else"}})
    with Store(path) as restarted:  # a new kernel
        found = restarted.records.get_many("extract:abc", ["r1", "r2", "r3", "r4"])
        assert found == {"r1": {"name": "Ada"}, "r2": {"name": None}, "r3": {"name": "Grace"}}
        assert restarted.records.count() == 4 and restarted.records.count("extract:abc") == 3
        assert restarted.records.delete("extract:other") == 1
        assert restarted.records.get_many("extract:other", ["r1"]) == {}


def test_batch_jobs_are_found_again_after_a_restart(tmp_path):
    path = tmp_path / "store.sqlite"
    with Store(path) as first:
        first.jobs.put("lines-1", "job-aaa", backend="http://127.0.0.1:1", model="m", rows=3,
                       status="QUEUED")
        first.jobs.put("lines-2", "job-bbb", model="m", rows=10)
    with Store(path) as restarted:
        job = restarted.jobs.get("lines-1")
        assert (job.job_id, job.backend, job.model, job.rows, job.status) == (
            "job-aaa", "http://127.0.0.1:1", "m", 3, "QUEUED")
        assert restarted.jobs.set_status("job-aaa", "SUCCESS") == 1
        assert restarted.jobs.get("lines-1").status == "SUCCESS"
        assert restarted.jobs.get("lines-1").updated >= job.updated
        assert [j.job_id for j in restarted.jobs.list()] == ["job-bbb", "job-aaa"]
        restarted.jobs.put("lines-1", "job-ccc")  # resubmitted after a cancel
        assert restarted.jobs.get("lines-1").job_id == "job-ccc"
        assert restarted.jobs.delete("lines-2") and restarted.jobs.get("lines-2") is None


def test_the_ledger_across_kernels(tmp_path):
    import pandas as pd

    from mistral_magic.money.usage import CallRecord, Ledger

    path = tmp_path / "store.sqlite"
    early = datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    records = [
        CallRecord(model="mistral-small-2603", time=early, chat="default", prompt_tokens=10,
                   completion_tokens=4, cost=0.0001, latency_s=0.5, ttft_s=0.1, backend="offline"),
        CallRecord(model="m", kind="extract", status="error", cost=None, error="boom"),
    ]
    with Store(path, session="kernel-a") as a:
        assert a.ledger.append(records) == 2
    with Store(path, session="kernel-b") as b:
        b.ledger.append([{"model": "m", "prompt_tokens": 3, "completion_tokens": 2, "cost": 0.0,
                          "cached": True}])
        frame = b.ledger.frame()
        mine = b.ledger.frame(session="kernel-b")
    assert list(frame["session"]) == ["kernel-a", "kernel-a", "kernel-b"]
    assert frame["time"][0] == pd.Timestamp(early)
    assert list(frame["cached"]) == [False, False, True] and list(mine["cached"]) == [True]
    assert frame["cost"].isna().tolist() == [False, True, False]
    assert frame["error"][1] == "boom" and frame["kind"][1] == "extract"
    reference = Ledger()
    for rec in records:
        reference.record(rec)
    expected = reference.to_frame()
    for column in expected.columns:
        assert frame[column].dtype == expected[column].dtype, column
    pd.testing.assert_frame_equal(frame[expected.columns].iloc[:2], expected)


# -- migrations --------------------------------------------------------------------------


def test_migrations_are_applied_once_and_recorded(tmp_path, monkeypatch):
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        store.put("k", answer("kept"))
    names = [fn.__name__ for fn in storeschema.MIGRATIONS]
    recorded = table(path, "SELECT name, applied_at FROM mistral_magic_migrations")
    assert [name for name, _ in recorded] == names

    with Store(path) as again:
        again.put("k2", answer("x"))
    assert table(path, "SELECT name, applied_at FROM mistral_magic_migrations") == recorded

    calls = []

    def m999_notes(db):
        calls.append(1)
        db.execute("CREATE TABLE notes (text TEXT)")

    monkeypatch.setattr(storeschema, "MIGRATIONS", [*storeschema.MIGRATIONS, m999_notes])
    for _ in range(2):
        with Store(path) as later:
            assert later.get("k", hit=False).response["text"] == "kept"
    assert calls == [1]
    assert [n for n, _ in table(path, "SELECT name, applied_at FROM mistral_magic_migrations")] == [
        *names, "m999_notes"]


# -- sharing ------------------------------------------------------------------------------

WORKER = """
import sys, time
from pathlib import Path
from mistral_magic.store import Store

path, name, n, ready = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
(ready / name).touch()
while len(list(ready.iterdir())) < 2:  # start together
    time.sleep(0.001)
start = time.time()
store = Store(path, session=name)
store.put("shared", {"text": "both"}, cost=0.5)
for i in range(n):
    store.put(f"{name}-{i}", {"text": f"answer {i}"}, cost=0.001, notebook=name)
    assert store.get("shared", notebook=name) is not None
    store.ledger.append([{"model": "m", "cost": 0.001}])
    store.records.put("job", {f"{name}-{i}": {"i": i}})
store.put_many({"key": f"{name}-bulk-{i}", "response": {"i": i}} for i in range(1500))
store.close()
print("done", start, time.time())
"""


def test_two_processes_write_at_once_and_lose_nothing(tmp_path):
    path = tmp_path / "shared" / "store.sqlite"  # neither finds it: both race to create it
    ready = tmp_path / "ready"
    ready.mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    n = 150
    workers = [
        subprocess.Popen([sys.executable, "-c", WORKER, str(path), name, str(n), str(ready)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for name in ("kernel-a", "kernel-b")
    ]
    outs = [w.communicate(timeout=240) for w in workers]
    spans = []
    for worker, (out, err) in zip(workers, outs, strict=True):
        assert worker.returncode == 0 and out.startswith("done"), err
        assert "locked" not in err
        spans.append([float(t) for t in out.split()[1:]])
    (start_a, end_a), (start_b, end_b) = spans
    assert start_a < end_b and start_b < end_a, "the two processes did not run at the same time"
    with Store(path) as store:
        stats = store.stats()
        assert stats.entries == 2 * n + 2 * 1500 + 1
        assert stats.calls == 2 * n and stats.records == 2 * n
        shared = store.get("shared", hit=False)
        assert shared.hits == 2 * n and shared.saved == pytest.approx(2 * n * 0.5)
        assert len(store.keys(notebook="kernel-a")) == n + 1
    assert table(path, "PRAGMA journal_mode") == [("wal",)]
    assert len(table(path, "SELECT name FROM mistral_magic_migrations")) == len(
        storeschema.MIGRATIONS)


def test_threads_share_one_store(store):
    errors = []

    def work(t):
        try:
            for i in range(100):
                store.put(f"t{t}-{i}", answer(str(i)))
                assert store.get(f"t{t}-{i}").response["text"] == str(i)
                store.ledger.append([{"model": "m"}])
        except BaseException as exc:  # reported below, with the thread that raised it
            errors.append((t, exc))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store) == 600 and len(store.ledger) == 600 and store.stats().hits == 600


_inherited: Store | None = None


def _child_writes() -> None:
    _inherited.put("from-child", {"text": "child"})  # the parent's Store, through fork


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="fork is POSIX")
def test_a_forked_child_opens_its_own_connection(tmp_path):
    # A kernel forks (multiprocessing in a cell) while its background thread uses the store:
    # the child must neither reuse the connection nor wait on the lock that thread holds.
    # (Forking in the middle of a write transaction is beyond what SQLite supports.)
    global _inherited
    _inherited = Store(tmp_path / "store.sqlite")
    reading, forked = threading.Event(), threading.Event()

    def background_read():
        with _inherited.reading() as conn:
            conn.execute("SELECT COUNT(*) FROM responses").fetchone()
            reading.set()
            forked.wait(30)

    thread = threading.Thread(target=background_read)
    try:
        _inherited.put("from-parent", {"text": "parent"})
        thread.start()
        reading.wait(30)
        child = multiprocessing.get_context("fork").Process(target=_child_writes)
        child.start()
        forked.set()
        thread.join(30)
        child.join(60)
        if child.exitcode is None:
            child.kill()
            child.join()
        assert child.exitcode == 0
        _inherited.put("after", {"text": "parent again"})
        assert set(_inherited.keys()) == {"from-parent", "from-child", "after"}
    finally:
        forked.set()
        thread.join(30)
        _inherited.close()
        _inherited = None


def test_a_store_locked_too_long_is_a_one_line_error(tmp_path):
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        store.put("k", answer("x"))
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with Store(path, timeout_s=0.2) as waiting:
            assert waiting.get("k", hit=False).response["text"] == "x"  # WAL: reads go on
            with pytest.raises(StoreError) as caught:
                waiting.put("k2", answer("y"))
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert "locked by another process" in one_line(caught.value)


# -- moving answers -----------------------------------------------------------------------


def test_export_a_notebooks_answers_and_use_the_file_as_a_store(store, tmp_path):
    store.put("a", answer("from lesson 1"), cost=0.01, notebook="lesson1.ipynb", cell="c1")
    store.put("b", answer("from lesson 2"), notebook="lesson2.ipynb")
    store.put("c", answer("made elsewhere"), notebook="other.ipynb")
    store.get("c", notebook="lesson1.ipynb", cell="c9")  # lesson 1 was answered from it
    store.get("a")

    shipped = tmp_path / "ship" / "lesson1-answers.sqlite"
    assert store.export(shipped, notebook="lesson1.ipynb") == 2
    assert sorted(p.name for p in shipped.parent.iterdir()) == ["lesson1-answers.sqlite"]
    assert table(shipped, "PRAGMA journal_mode") == [("delete",)]  # one standalone file
    with Store(shipped) as student:
        assert set(student.keys()) == {"a", "c"}
        entry = student.get("a", hit=False)
        assert entry.response["text"] == "from lesson 1" and entry.cost == 0.01
        assert entry.hits == 0 and entry.cell == "c1"
        assert set(student.keys(notebook="lesson1.ipynb")) == {"a", "c"}
        assert student.keys(notebook="other.ipynb") == []

    assert store.export(tmp_path / "picked.sqlite", keys=["b", "nope"]) == 1
    assert store.export(tmp_path / "everything.sqlite") == 3
    assert store.export(shipped, keys=["b"]) == 1  # a store there is replaced
    with Store(shipped) as replaced:
        assert replaced.keys() == ["b"]


def test_export_refuses_to_overwrite_what_is_not_a_store(store, tmp_path):
    store.put("a", answer("x"))
    precious = tmp_path / "thesis.sqlite"
    precious.write_text("my thesis")
    with pytest.raises(StoreError) as caught:
        store.export(precious)
    assert "not a mistral_magic store" in one_line(caught.value)
    assert precious.read_text() == "my thesis"
    with pytest.raises(StoreError):
        store.export(store.path)
    assert not list(tmp_path.glob(".*.partial"))


def test_import_adds_answers_and_keeps_those_already_here(store, tmp_path):
    other = tmp_path / "teacher.sqlite"
    with Store(other) as teacher:
        teacher.put("shared", answer("teacher's"), notebook="lesson.ipynb")
        teacher.put("new", answer("only the teacher's"), cost=0.2, notebook="lesson.ipynb")
    exported = tmp_path / "exported.sqlite"
    with Store(other) as teacher:
        teacher.export(exported)
    before = exported.read_bytes()
    store.put("shared", answer("mine"))
    assert store.import_from(exported) == 1
    assert store.get("shared", hit=False).response["text"] == "mine"
    assert store.get("new", hit=False).cost == 0.2
    assert store.keys(notebook="lesson.ipynb") == ["new"]
    assert exported.read_bytes() == before and not Path(f"{exported}-wal").exists()
    assert store.import_from(exported) == 0
    with pytest.raises(StoreError) as caught:
        store.import_from(tmp_path / "missing.sqlite")
    assert "No store at" in one_line(caught.value)


# -- never a key ----------------------------------------------------------------------------


def test_no_key_is_ever_written(tmp_path, monkeypatch):
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    monkeypatch.setenv("MISTRAL_SERVER_KEY", KEY[::-1])
    session_key = "sk-SESSION-from-percent-mistral-key-0042"
    path = tmp_path / "store.sqlite"
    request = {
        "model": "mistral-small-latest",
        "messages": [{"role": "user", "content": "Say hello"}],
        "api_key": KEY,
        "headers": {"Authorization": f"Bearer {KEY}"},
    }
    key = request_key("https://api.mistral.ai", request)
    with Store(path, secrets=lambda: [session_key]) as store:
        store.put(
            key,
            {"text": f"Your key is {KEY}", "headers": {"authorization": f"Bearer {KEY}"},
             "request": request, "tool_calls": [{"function": {"arguments": json.dumps(
                 {"token": session_key})}}]},
            model="mistral-small-2603", backend="https://api.mistral.ai", cost=0.001,
            notebook="n.ipynb", cell=f"cell {KEY[::-1]}",
        )
        store.get(key, notebook="n.ipynb")
        store.records.put("job", {"row": {"note": f"key={KEY}", "other": session_key}})
        store.jobs.put("lines", "job-1", backend="https://api.mistral.ai", status=f"ok {KEY}")
        store.ledger.append([{"model": "m", "error": f"401 for key {KEY}", "chat": session_key}])
        store.export(tmp_path / "export.sqlite")
        # the values are really there, only the key is not
        entry = store.get(key, hit=False)
        assert entry.response["text"] == "Your key is [redacted]"
        assert "headers" not in entry.response and "api_key" not in entry.response["request"]
        assert store.records.get_many("job", ["row"])["row"]["note"] == "key=[redacted]"
        files = sorted(tmp_path.iterdir())
        assert Path(f"{path}-wal") in files  # the WAL is searched while it holds the writes
        for file in files:
            data = file.read_bytes()
            for secret in (KEY, KEY[::-1], session_key, KEY[3:20]):
                assert secret.encode() not in data, (file.name, secret)
        assert b"Say hello" in Path(f"{path}-wal").read_bytes() + path.read_bytes()


# -- a file that cannot be used ---------------------------------------------------------------


def test_a_file_that_is_not_a_store_is_a_one_line_error(tmp_path):
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"this is a spreadsheet, not a database" * 100)
    for action in (lambda s: s.get("k"), lambda s: s.put("k", answer("x")), lambda s: s.stats()):
        with pytest.raises(StoreError) as caught:
            action(Store(path))
        message = one_line(caught.value)
        assert isinstance(caught.value, ConfigError)
        assert str(path) in message and "MistralMagics.cache_path" in message and "move" in message
    assert path.read_bytes().startswith(b"this is a spreadsheet")

    other = tmp_path / "app.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreError) as caught:
        Store(other).put("k", answer("x"))
    assert "database of something else" in one_line(caught.value)
    assert table(other, "SELECT name FROM sqlite_master") == [("users",)]


def test_a_damaged_store_is_a_one_line_error(tmp_path):
    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        store.put_many({"key": f"k{i}", "response": answer("x" * 500)} for i in range(200))
    data = bytearray(path.read_bytes())
    data[4096:] = bytes(len(data) - 4096)  # every page after the first wiped
    path.write_bytes(bytes(data))
    with Store(path) as store:
        for action in (lambda: store.get("k5"), store.stats, lambda: store.put("z", answer("z"))):
            with pytest.raises(StoreError) as caught:
                action()
            message = one_line(caught.value)
            assert "damaged" in message and "MistralMagics.cache_path" in message


def test_a_read_only_folder_serves_its_answers_and_refuses_writes(tmp_path):
    folder = tmp_path / "shipped"
    folder.mkdir()
    path = folder / "answers.sqlite"
    with Store(path) as teacher:
        teacher.put("k", answer("the real answer"), cost=0.1)
        teacher.ledger.append([{"model": "m"}])
    with read_only(folder, path):
        with Store(path) as first_a_write:
            with pytest.raises(StoreError) as caught:
                first_a_write.ledger.append([{"model": "m"}])
            assert "is read-only" in one_line(caught.value)
            assert first_a_write.get("k").response["text"] == "the real answer"
        with Store(path) as student:
            assert student.readonly and "read-only" in repr(student)
            assert student.get("k").response["text"] == "the real answer"
            assert student.get("k").hits == 0  # not counted: nothing can be written
            assert student.stats().entries == 1 and len(student.ledger) == 1
            with pytest.raises(StoreError) as caught:
                student.put("k2", answer("new"))
            message = one_line(caught.value)
            assert "read-only" in message and "MistralMagics.cache_path" in message
            with pytest.raises(StoreError):
                student.ledger.append([{"model": "m"}])
            assert student.get("k").response["text"] == "the real answer"
        assert sorted(p.name for p in folder.iterdir()) == ["answers.sqlite"]


def test_a_store_that_cannot_be_created_is_a_one_line_error(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    with read_only(folder):
        store = Store(folder / "sub" / "store.sqlite")
        assert store.get("k") is None
        with pytest.raises(StoreError) as caught:
            store.put("k", answer("x"))
        assert "MistralMagics.cache_path" in one_line(caught.value)
        store2 = Store(folder / "store.sqlite")
        with pytest.raises(StoreError) as caught:
            store2.put("k", answer("x"))
        assert "Cannot create the store" in one_line(caught.value)
    assert list(folder.iterdir()) == []


# -- cheap to import, and the manual is true ----------------------------------------------------


def test_importing_the_store_imports_only_the_standard_library():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    ours = "[m for m in sys.modules if m.startswith('mistral_magic.store')]"
    heavy = ("pandas", "mistralai", "mistral_common", "IPython", "traitlets", "mistral_magic.money.usage",
             "mistral_magic.core")
    checks = {
        f"import mistral_magic.store\nprint([m for m in {heavy!r} if m in sys.modules])": "[]",
        # %load_ext does not import it: the session does, when it first needs the store
        "from IPython.core.interactiveshell import InteractiveShell\n"
        f"InteractiveShell.instance().run_line_magic('load_ext', 'mistral_magic')\nprint({ours})":
        "[]",
    }
    for code, expected in checks.items():
        out = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True,
                             text=True, check=True, env=env)
        assert out.stdout.strip() == expected, out.stdout + out.stderr


def test_the_manual_examples_run():
    results = doctest.testmod(store_module)
    assert results.attempted >= 8 and results.failed == 0
