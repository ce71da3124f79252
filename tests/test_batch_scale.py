"""batch=True at scale: jobs recorded in the folder's store and reattached after an interrupt or
a restart (paid once, held once), tables split over several jobs followed by one bar, lines
built a row at a time, results aligned; and the offline server's batch endpoints at that size."""

from __future__ import annotations

import _thread
import io
import json
import re
import threading
import time
import weakref

import pandas as pd
import pytest
from mistralai.client import Mistral
from test_frames import assert_rows_match_their_text, reviews

import mistral_magic
from mistral_magic.calls.estimates import Estimate
from mistral_magic.core import chat_request
from mistral_magic.errors import Interrupted
from mistral_magic.money.tokens import count_text
from mistral_magic.rows import batch
from mistral_magic.rows.batch import job_store
from mistral_magic.rows.engine import RowEngine
from mistral_magic.rows.job import Reply, RowJob

SCHEMA = "product, stars int"
MODEL = "mistral-small-latest"


@pytest.fixture
def client(magic_server):
    """The SDK on the extension's own offline server (where its batch jobs go)."""
    with Mistral(api_key=magic_server.api_key, server_url=magic_server.url) as sdk:
        yield sdk


def server_jobs(client) -> dict[str, object]:
    """Every batch job on the server, by id."""
    return {job.id: job for job in client.batch.jobs.list(page_size=100_000).data}


def recorded(session) -> list:
    """The jobs the folder's store recorded, oldest first."""
    return sorted(job_store(session).jobs.list(), key=lambda job: job.created)


def interrupt_when(condition) -> threading.Thread:
    """The kernel's interrupt, fired once `condition()` holds (an event, not a timer)."""

    def watch():
        deadline = time.monotonic() + 60
        while not condition():
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        _thread.interrupt_main()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def running_on_server(client, session):
    """A condition: the folder recorded a job and the server is running it."""

    def check() -> bool:
        jobs = job_store(session).jobs.list()
        return bool(jobs) and str(client.batch.jobs.get(job_id=jobs[0].job_id).status) == "RUNNING"

    return check


def batch_lines(session) -> list:
    return [r for r in session.ledger.records if r.kind == "batch"]


def restart(ip):
    """A kernel restart as far as the extension knows: a new session, the same folder."""
    ip.run_line_magic("unload_ext", "mistral_magic")
    ip.run_line_magic("load_ext", "mistral_magic")
    return mistral_magic.session()


# -- reattaching ---------------------------------------------------------------------------------


def test_interrupted_while_following_the_same_call_follows_the_same_job_on_one_hold(ip, client):
    ip.run_line_magic("config", "MistralMagics.budget_usd = 5.0")
    session = mistral_magic.session()
    df = reviews(40, index=range(400, 0, -10))
    before = set(server_jobs(client))
    job_store(session)  # made here, not in the watching thread
    watcher = interrupt_when(running_on_server(client, session))
    with pytest.raises(Interrupted) as stopped:
        df.mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    watcher.join()
    message = str(stopped.value)
    (job_id,) = set(server_jobs(client)) - before
    assert message.startswith("Stopped following 1 batch job") and job_id in message
    assert "keeps running" in message and "same call again" in message and "restart" in message
    assert f"%mistral batch cancel {job_id}" in message and "holds its worst case against the budget" in message
    held = session.budget.reserved
    assert held > 0 and set(session.batch_holds) == {job_id} and not batch_lines(session)
    seen: list[float] = []
    unsubscribe = session.ledger.subscribe(lambda record: seen.append(session.budget.reserved))
    out = df.mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    unsubscribe()
    assert set(server_jobs(client)) - before == {job_id}  # no second job
    assert seen[0] == pytest.approx(held)  # the first call's hold, not a second one beside it
    assert out["_error"].isna().all()
    assert_rows_match_their_text(df, out)
    assert len(batch_lines(session)) == 40
    assert session.budget.reserved == 0 and not session.batch_holds
    (stored,) = recorded(session)
    assert stored.job_id == job_id and stored.read is not None and stored.rows == 40


def test_a_restarted_kernel_reattaches_to_its_job_and_pays_for_it_once(ip, client):
    ip.run_line_magic("config", "MistralMagics.budget_usd = 5.0")
    session = mistral_magic.session()
    df = reviews(30, index=[f"r{i}" for i in range(30)][::-1])
    before = set(server_jobs(client))
    job_store(session)
    watcher = interrupt_when(lambda: bool(job_store(session).jobs.list()))
    with pytest.raises(Interrupted, match="keeps running"):
        df.mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    watcher.join()
    (job_id,) = set(server_jobs(client)) - before
    held = session.budget.reserved
    assert held > 0

    fresh = restart(ip)
    assert fresh is not session and fresh.budget.reserved == 0  # the hold went with the kernel
    # A budget too small for this job's worst case: reattaching holds nothing a second time.
    ip.run_line_magic("config", f"MistralMagics.budget_usd = {held / 2}")
    out = df.mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    assert set(server_jobs(client)) - before == {job_id}  # no second job submitted
    assert out["_error"].isna().all()
    assert_rows_match_their_text(df, out)
    lines = batch_lines(fresh)
    assert len(lines) == 30 and all(r.status == "ok" and r.cost > 0 for r in lines)
    assert fresh.ledger.spent == pytest.approx(sum(r.cost for r in lines)) and fresh.ledger.spent < held / 2
    assert fresh.budget.reserved == 0 and not fresh.batch_holds
    notes = [m["data"]["text/plain"] for m in ip.display_pub.messages if "data" in m]
    assert any(n.startswith("Reattached to 1 batch job") and job_id in n for n in notes)

    # A job read back is done: the same rows wanted again (their cache cleared) are a new job.
    fresh.cache.clear()
    ip.run_line_magic("config", "MistralMagics.budget_usd = 5.0")
    df.mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    assert len(set(server_jobs(client)) - before) == 2


def test_a_job_gone_from_the_backend_is_submitted_again(ip, client):
    session = mistral_magic.session()
    df = reviews(5)
    df.mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    (first,) = recorded(session)
    # Recorded but never read (as if the kernel died), then deleted on the server.
    job_store(session).jobs.put(first.key, first.job_id, model=MODEL, rows=5)
    client.batch.jobs.delete(job_id=first.job_id)
    session.cache.clear()
    out = df.mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    assert out["_error"].isna().all()
    (again,) = recorded(session)
    assert again.key == first.key and again.job_id != first.job_id and again.read is not None


def left_unread(session) -> None:
    """Every job the folder recorded, as if its kernel had died before reading it back."""
    for job in recorded(session):
        job_store(session).jobs.put(job.key, job.job_id, model=job.model, rows=job.rows)


def test_every_argument_that_matters_is_a_new_job_and_only_the_same_call_reattaches(
        ip, client, tmp_path, monkeypatch):
    """A job is known by its model and its lines: a call that differs from an earlier one in
    any argument (model, prompt, schema, temperature, seed, pictures, max_tokens) is a new
    job, never a reattach to the earlier one, even while that one is unread."""
    from offline_documents import picture

    monkeypatch.setattr(batch, "POLL_START_S", 0.02)  # the jobs are short: follow them closely
    (tmp_path / "red.png").write_bytes(picture(32, 32))
    (tmp_path / "blue.png").write_bytes(picture(32, 32, color=(40, 40, 200)))
    session = mistral_magic.session()
    df = reviews(3).assign(pic="red.png", other="blue.png")
    base = {"prompt": "{review}", "schema": SCHEMA, "model": MODEL, "temperature": 0.2, "seed": 1,
            "image": "pic"}
    changes = {"baseline": {}, "model": {"model": "mistral-large-latest"},
               "prompt": {"prompt": "Review: {review}"},
               "schema": {"schema": "product, stars int, price float"},
               "temperature": {"temperature": 0.7}, "seed": {"seed": 2},
               "pictures": {"image": "other"}, "max_tokens": {"max_tokens": 300}}

    def extract(change: dict):
        args = {**base, **change}
        return df.mistral.extract(args.pop("prompt"), batch=True, progress=False, **args)

    known = set(server_jobs(client))
    jobs = {}
    for name, change in changes.items():
        left_unread(session)  # every earlier job could be reattached to
        out = extract(change)
        new = set(server_jobs(client)) - known
        assert len(new) == 1, f"changing the {name} sent no new job: it reattached to an earlier one"
        (jobs[name],) = new
        known |= new
        assert server_jobs(client)[jobs[name]].model == change.get("model", MODEL)
        assert out["_error"].isna().all()
        assert batch_lines(session)[-1].model == change.get("model", MODEL)

    # The same call again (its rows not cached) follows its own job: nothing new is sent.
    for name in ("baseline", "model"):
        left_unread(session)
        session.cache.clear()
        paid = len(batch_lines(session))
        out = extract(changes[name])
        assert set(server_jobs(client)) == known and out["_error"].isna().all()
        assert_rows_match_their_text(df, out)
        assert [r.model for r in batch_lines(session)[paid:]] == [changes[name].get("model", MODEL)] * 3
    notes = [m["data"]["text/plain"] for m in ip.display_pub.messages if "data" in m]
    reattached = [n for n in notes if n.startswith("Reattached")]
    assert len(reattached) == 2 and jobs["baseline"] in reattached[0] and jobs["model"] in reattached[1]


def test_the_store_remembers_which_jobs_were_read_back(tmp_path):
    import sqlite3

    from mistral_magic.store import Store

    path = tmp_path / "store.sqlite"
    with Store(path) as store:
        store.jobs.put("lines-1", "job-1", model=MODEL, rows=3, status="QUEUED")
        store.jobs.put("lines-2", "job-2", model=MODEL, rows=4)
        assert store.jobs.get("lines-1").read is None
        assert store.jobs.mark_read(["job-1", "no-such-job"]) == 1
    with Store(path) as restarted:  # another kernel
        assert restarted.jobs.get("lines-1").read is not None
        assert restarted.jobs.get("lines-2").read is None
        assert [j.read is not None for j in restarted.jobs.list()] == [False, True]
        restarted.jobs.put("lines-1", "job-3")  # the same lines sent again: a new, unread job
        assert restarted.jobs.get("lines-1").read is None
    with sqlite3.connect(path) as conn:
        applied = [row[0] for row in conn.execute("SELECT name FROM mistral_magic_migrations")]
    conn.close()
    # In order, whatever later versions append after them.
    assert applied[4:7] == ["m005_batch_jobs_read", "m006_uploads", "m007_ledger_pages"]


# -- several jobs --------------------------------------------------------------------------------


def test_a_table_past_the_per_job_limit_goes_as_several_jobs_with_one_bar(ip, client, monkeypatch,
                                                                         capsys):
    monkeypatch.setattr(batch, "MAX_JOB_REQUESTS", 250)
    session = mistral_magic.session()
    labels = [f"row-{(i * 7919) % 1000}" for i in range(1000)]  # a shuffled, non-range index
    df = reviews(1000, index=labels)
    before = set(server_jobs(client))
    out = df.mistral.extract("{review}", schema=SCHEMA, batch=True)  # with its progress bar
    jobs = {job_id: job for job_id, job in server_jobs(client).items() if job_id not in before}
    assert len(jobs) == 4 and {job.total_requests for job in jobs.values()} == {250}
    assert out["_error"].isna().all() and list(out.index) == labels
    assert_rows_match_their_text(df, out)
    assert len(batch_lines(session)) == 1000
    stored = recorded(session)
    assert {job.job_id for job in stored} == set(jobs) and all(job.read for job in stored)
    # One bar over the whole table: every state it showed counts rows out of 1,000.
    bars = re.findall(r"(\d+)/(\d+) \[", capsys.readouterr().err)
    assert bars and {total for _, total in bars} == {"1000"} and ("1000", "1000") in bars
    notes = [m["data"]["text/plain"] for m in ip.display_pub.messages if "data" in m]
    assert any(n.startswith("Submitted 4 batch jobs") and "250 requests per job" in n for n in notes)


def test_a_job_is_cut_where_its_file_would_pass_the_byte_limit(ip, client, monkeypatch):
    monkeypatch.setattr(batch, "MAX_JOB_BYTES", 6_000)
    session = mistral_magic.session()
    df = reviews(40)
    out = df.mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    assert out["_error"].isna().all()
    assert_rows_match_their_text(df, out)
    jobs = [client.batch.jobs.get(job_id=job.job_id) for job in recorded(session)]
    assert len(jobs) > 2 and sum(job.total_requests for job in jobs) == 40
    sizes = [client.files.retrieve(file_id=job.input_files[0]).size_bytes for job in jobs]
    assert max(sizes) <= 6_000


def test_failed_lines_are_their_rows_errors_job_by_job_and_go_again(ip, client, magic_server,
                                                                    monkeypatch):
    monkeypatch.setattr(batch, "MAX_JOB_REQUESTS", 20)
    magic_server.set_faults({"batch_line_error_rate": 0.25, "seed": 5})
    session = mistral_magic.session()
    df = reviews(60, index=range(600, 0, -10))
    out = df.mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    failed = out["_error"].notna()
    assert 0 < failed.sum() < 60
    assert out.loc[failed, "_error"].str.startswith("batch line failed (500)").all()
    assert_rows_match_their_text(df, out)
    # Each job's failures are its own rows' errors: row k went in job k // 20.
    for part, stored in enumerate(recorded(session)):
        job = client.batch.jobs.get(job_id=stored.job_id)
        assert job.failed_requests == failed.iloc[part * 20:(part + 1) * 20].sum()
    lines = batch_lines(session)
    assert len(lines) == 60 and sum(r.status == "error" for r in lines) == failed.sum()
    magic_server.set_faults(None)
    again = df.mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    assert again["_error"].isna().all()
    assert len(batch_lines(session)) == 60 + failed.sum()  # only the failed rows went again


def test_cancelling_one_of_several_jobs_fails_only_its_unfinished_rows(ip, client, monkeypatch):
    monkeypatch.setattr(batch, "MAX_JOB_REQUESTS", 40)
    session = mistral_magic.session()
    df = reviews(120)
    store = job_store(session)
    cancelled: list[str] = []

    def cancel_the_second_job():
        deadline = time.monotonic() + 60
        while len(store.jobs.list()) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        second = sorted(store.jobs.list(), key=lambda job: job.created)[1].job_id
        client.batch.jobs.cancel(job_id=second)
        cancelled.append(second)

    thread = threading.Thread(target=cancel_the_second_job, daemon=True)
    thread.start()
    out = df.mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    thread.join()
    (second,) = cancelled
    assert str(client.batch.jobs.get(job_id=second).status) == "CANCELLED"
    errors = out["_error"]
    assert errors.iloc[:40].isna().all() and errors.iloc[80:].isna().all()
    middle = errors.iloc[40:80]
    assert middle.notna().any()
    assert (middle.dropna() == f"no result for this row: batch job {second} ended CANCELLED").all()
    assert_rows_match_their_text(df, out)
    answered = sum(job.completed_requests for job in (
        client.batch.jobs.get(job_id=j.job_id) for j in recorded(session)))
    assert len(batch_lines(session)) == answered == 120 - middle.notna().sum()
    assert session.budget.reserved == 0 and not session.batch_holds


# -- lines built a row at a time, and jobs for other endpoints --------------------------------------


class Tracked(dict):
    """A request that says when it is freed."""


class Words(RowJob):
    """A chat job whose requests count how many of them are alive at once."""

    kind, verb = "words", "Counting"
    alive = most = built = 0

    def request(self, text):
        request = Tracked(chat_request(self.model, [{"role": "user", "content": f"Count: {text}"}],
                                       max_tokens=20))
        cls = type(self)
        cls.alive += 1
        cls.built += 1
        cls.most = max(cls.most, cls.alive)
        weakref.finalize(request, cls._freed)
        return request

    @classmethod
    def _freed(cls):
        cls.alive -= 1

    def parse(self, answer):
        return {"words": len(answer.split())}


def test_requests_are_built_a_row_at_a_time_never_all_held(ip, client):
    session = mistral_magic.session()
    df = pd.DataFrame({"text": [f"row {i} " + "word " * (i % 30) for i in range(300)]})
    out = RowEngine(session, progress=False).run(Words(session, df, "text"), batch=True)
    assert out["_error"].isna().all() and (out["words"] > 0).all()
    assert Words.built >= 300  # every row's request was built (keys, estimates, its line) ...
    assert Words.most <= 2 and Words.alive == 0  # ... and dropped before the next one


class Dims(RowJob):
    """An embeddings job through the Batch API: its own batch_reply reads the vectors."""

    kind, verb, batch_endpoint = "embed", "Embedding", "/v1/embeddings"

    def request(self, text):
        return {"model": self.model, "inputs": [text]}

    def estimate(self, request, batch=False):
        prompt = sum(count_text(text) for text in request["inputs"])
        cost = self.session.prices.cost(self.model, prompt, 0, batch=batch)
        return Estimate(prompt, 0, cost, cost, self.model, batch)

    def batch_body(self, request):
        return {"input": request["inputs"]}  # the SDK's `inputs` is `input` on the wire

    def batch_reply(self, body):
        return Reply([body["data"][0]["embedding"]], body["usage"]["prompt_tokens"], 0)

    def parse(self, vector):
        return {"dims": len(vector)}


def test_a_job_for_another_endpoint_reads_its_lines_with_its_own_reply(ip, client):
    ip.run_line_magic("config", "MistralMagics.budget_usd = 1.0")  # no max_tokens on these lines
    session = mistral_magic.session()
    df = pd.DataFrame({"text": ["a red apple", "a green pear", "a yellow lemon"]}, index=[7, 3, 5])
    out = RowEngine(session, progress=False).run(Dims(session, df, "text", model="mistral-embed"),
                                                  batch=True)
    assert list(out.index) == [7, 3, 5] and out["_error"].isna().all()
    assert (out["dims"] == 1024).all()
    lines = batch_lines(session)
    assert len(lines) == 3 and all(r.prompt_tokens > 0 and r.model == "mistral-embed" for r in lines)
    (stored,) = recorded(session)
    assert client.batch.jobs.get(job_id=stored.job_id).endpoint == "/v1/embeddings"


# -- %mistral batch list ------------------------------------------------------------------------


def test_batch_list_marks_the_jobs_this_folder_started(ip, client, tmp_path, monkeypatch):
    session = mistral_magic.session()
    reviews(3).mistral.extract("{review}", schema=SCHEMA, batch=True, progress=False)
    (ours,) = recorded(session)
    other = batch.submit(client, MODEL, [{"custom_id": "0", "body": {
        "messages": [{"role": "user", "content": "hi"}]}}])  # not through this folder
    jobs = ip.run_line_magic("mistral", "batch list")
    assert list(jobs.columns)[:2] == ["id", "started_here"] and jobs["started_here"].dtype == bool
    marks = jobs.set_index("id")["started_here"]
    assert marks[ours.job_id] and not marks[other]
    restart(ip)
    assert ip.run_line_magic("mistral", "batch list").set_index("id")["started_here"][ours.job_id]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    restart(ip)
    assert not ip.run_line_magic("mistral", "batch list")["started_here"].any()
    assert not (elsewhere / ".mistral_magic").exists()  # listing created no store


# -- the offline server at batch scale --------------------------------------------------------------


def test_a_large_batch_file_is_streamed_up_kept_on_disk_and_read_back_line_by_line(sdk, offline_server):
    from mistral_magic.offline.files import MEMORY_FILE_BYTES

    big = "x " * 150_000  # a 300 KB user message: a few lines make a multi-megabyte file
    lines = b"".join(json.dumps({"custom_id": f"c{i}", "body": {"max_tokens": 5, "messages": [
        {"role": "user", "content": f"line {i}: {big}"}]}}).encode() + b"\n" for i in range(8))
    assert len(lines) > 2 * MEMORY_FILE_BYTES
    uploaded = sdk.files.upload(file={"file_name": "big.jsonl", "content": io.BytesIO(lines)},
                                purpose="batch")
    assert uploaded.size_bytes == len(lines) and uploaded.num_lines == 8
    stored = offline_server._state.files.get(uploaded.id)
    assert stored.data is None and stored.path.stat().st_size == len(lines)  # on disk
    response = sdk.files.download(file_id=uploaded.id)
    try:
        assert response.headers["content-length"] == str(len(lines))
        assert b"".join(response.iter_bytes()) == lines
    finally:
        response.close()
    job = sdk.batch.jobs.create(input_files=[uploaded.id], model=MODEL,
                                endpoint="/v1/chat/completions")
    sdk.files.delete(file_id=uploaded.id)  # a running job keeps reading the file it opened
    deadline = time.monotonic() + 60
    while str((job := sdk.batch.jobs.get(job_id=job.id)).status) not in batch.TERMINAL:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert job.succeeded_requests == 8
    got = list(batch.read_lines(sdk, job.output_file))
    assert [line["custom_id"] for line in got] == [f"c{i}" for i in range(8)]
    inline = sdk.batch.jobs.get(job_id=job.id, inline=True)
    assert [o["custom_id"] for o in inline.outputs] == [f"c{i}" for i in range(8)]


# -- a real kernel, restarted --------------------------------------------------------------------

KERNEL_SETUP = (
    "%load_ext mistral_magic\n"
    "%config MistralMagics.server_url = '{url}'\n"
    "%config MistralMagics.server_key = '{key}'\n"
    "%config MistralMagics.budget_usd = 5.0\n"
    "import json, threading, time, _thread\n"
    "import pandas as pd, mistral_magic\n"
    "from mistral_magic.rows.batch import job_store\n"
    "df = pd.DataFrame({{'text': [f'Person {{i}} is {{20 + i}} years old.' for i in range(30)]}},\n"
    "                  index=range(300, 0, -10))"
)
KERNEL_INTERRUPTED = (
    # the kernel's interrupt once the job is recorded (an event, not a timer)
    "store = job_store(mistral_magic.session())\n"
    "def interrupt_once_recorded():\n"
    "    while not store.jobs.list():\n"
    "        time.sleep(0.01)\n"
    "    _thread.interrupt_main()\n"
    "threading.Thread(target=interrupt_once_recorded, daemon=True).start()\n"
    "out = df.mistral.extract('{text}', schema='name, age int', batch=True, progress=False)"
)
KERNEL_STATE = (
    "session = mistral_magic.session()\n"
    "client = session.backend.client\n"
    "print(json.dumps({'server_jobs': len(client.batch.jobs.list().data),\n"
    "                  'held': session.budget.reserved,\n"
    "                  'ledger_lines': len([r for r in session.ledger.records if r.kind == 'batch']),\n"
    "                  'spent': session.ledger.spent}))"
)
KERNEL_AGAIN = (
    "out = df.mistral.extract('{text}', schema='name, age int', batch=True, progress=False)\n"
    "print(json.dumps({'ok': int(out['_error'].isna().sum()), 'ages': out['age'].tolist(),\n"
    "                  'aligned': out.index.tolist() == df.index.tolist()}))"
)


def test_a_real_kernel_restarted_mid_job_reattaches_and_pays_once(tmp_path):
    from nbclient import NotebookClient
    from nbformat.v4 import new_code_cell, new_notebook
    from standalone import KEY, standalone_server

    def run_kernel(*cells: str):
        nb = new_notebook(cells=[new_code_cell(c) for c in cells], metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3"}})
        NotebookClient(nb, timeout=180, kernel_name="python3", allow_errors=True,
                       resources={"metadata": {"path": str(tmp_path)}}).execute()
        return nb.cells

    def printed(cell) -> dict:
        text = "".join(o.get("text", "") for o in cell.outputs if o["output_type"] == "stream")
        return json.loads(text.strip().splitlines()[-1])

    with standalone_server() as url:
        setup = KERNEL_SETUP.format(url=url, key=KEY)
        first = run_kernel(setup, KERNEL_INTERRUPTED, KERNEL_STATE)
        (error,) = [o for o in first[1].outputs if o["output_type"] == "error"]
        assert error["ename"] == "Interrupted" and len(error["traceback"]) == 1
        assert "keeps running" in error["evalue"] and "same call again" in error["evalue"]
        before = printed(first[2])
        assert before["server_jobs"] == 1 and before["held"] > 0 and before["ledger_lines"] == 0

        # The kernel is gone (its hold with it); a new one runs the same cells in the same folder.
        second = run_kernel(setup, KERNEL_AGAIN, KERNEL_STATE)
        assert not [o for o in second[1].outputs if o["output_type"] == "error"]
        result = printed(second[1])
        assert result["ok"] == 30 and result["aligned"]
        assert result["ages"] == list(range(30))  # each row's own first number: its own text
        after = printed(second[2])
        assert after["server_jobs"] == 1  # reattached: no second job, no second charge
        assert after["ledger_lines"] == 30 and after["held"] == 0 and after["spent"] > 0
    assert (tmp_path / ".mistral_magic" / ".gitignore").read_text() == "*\n"
