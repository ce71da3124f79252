"""df.mistral.extract against the real offline server: aligned, typed, concurrent, resumable."""

from __future__ import annotations

import _thread
import json

import pandas as pd
import pytest
from conftest import run
from pydantic import BaseModel

import mistral_magic
from mistral_magic.errors import Interrupted
from mistral_magic.rows.batch import job_store

REVIEWS = [
    "Bought the Acme X100 blender for 79.99 euros. Rating: 4 stars. Works great, recommended.",
    "The Zephyr kettle broke after two weeks. 1 star. Price was 25 euros. Not recommended.",
    "Nova headphones, 199 euros, 5 stars, amazing sound, recommended!",
    "Orbit desk lamp at 35 euros: 3 stars, fine but dim.",
]
SPEC = "product, price float: in euros, stars int, recommended bool, pros list"


STARS = [4, 1, 5, 3]  # what each of REVIEWS says


def reviews(n: int = 4, index=None) -> pd.DataFrame:
    texts = [REVIEWS[i % len(REVIEWS)] + f" (review {i})" for i in range(n)]
    return pd.DataFrame({"review": texts}, index=index)


def rows_not_matching_their_text(df: pd.DataFrame, out: pd.DataFrame) -> list:
    """Labels of answered rows whose values are not what their own review says."""
    assert len(out) == len(df) and list(out.index) == list(df.index)
    wrong = []
    for label, text, row in zip(df.index, df["review"], out.to_dict("records"), strict=True):
        if row["_error"] is not None:
            continue
        position = int(text.rsplit("(review ", 1)[1].rstrip(")"))
        product = row.get("product", text)  # a word the text holds, when asked for
        if row["stars"] != STARS[position % len(STARS)] or not product or product not in text:
            wrong.append(label)
    return wrong


def assert_rows_match_their_text(df: pd.DataFrame, out: pd.DataFrame) -> None:
    """Each answered row holds what its own review says: aligned by label, not by luck."""
    wrong = rows_not_matching_their_text(df, out)
    assert not wrong, out.loc[wrong]


def test_extract_is_aligned_and_typed(ip):
    df = reviews(4, index=[10, 10, 30, 40])  # duplicate labels still align by position
    out = df.mistral.extract("Extract from this review: {review}", schema=SPEC, progress=False)
    assert list(out.index) == [10, 10, 30, 40]
    assert list(out.columns) == ["product", "price", "stars", "recommended", "pros", "_error"]
    assert str(out["price"].dtype) == "float64"
    assert str(out["stars"].dtype) == "Int64"
    assert str(out["recommended"].dtype) == "boolean"
    assert out["pros"].dtype == object
    assert out["_error"].isna().all()
    assert out["price"].tolist() == [79.99, 25.0, 199.0, 35.0]
    assert out["stars"].tolist() == [4, 1, 5, 3]
    records = mistral_magic.session().ledger.records
    assert len(records) == 4 and {r.kind for r in records} == {"extract"}


def test_prompt_can_be_a_column_and_schema_a_pydantic_model(ip):
    class Review(BaseModel):
        product: str
        stars: int

    df = reviews(2)
    out = df.mistral.extract("review", schema=Review, progress=False)
    assert list(out.columns) == ["product", "stars", "_error"]
    assert out["stars"].tolist() == [4, 1]
    assert_rows_match_their_text(df, out)
    sent = mistral_magic.session().ledger.records
    assert len(sent) == 2


def test_json_schema_dict_and_no_schema(ip):
    schema = {"type": "object", "properties": {"stars": {"type": "integer"}}, "required": ["stars"]}
    out = reviews(2).mistral.extract("{review}", schema=schema, progress=False)
    assert str(out["stars"].dtype) == "Int64" and out["stars"].tolist() == [4, 1]
    loose = reviews(2).mistral.extract("{review}", progress=False)
    assert "_error" in loose.columns and loose["_error"].isna().all() and len(loose.columns) > 1
    # Without a schema the answer's keys are the columns; each row speaks of its own review.
    said = [" ".join(map(str, row)) for row in loose.drop(columns="_error").itertuples()]
    assert "Acme" in said[0] and "Zephyr" not in said[0]
    assert "Zephyr" in said[1] and "Acme" not in said[1]


def test_unknown_template_name_is_one_line(ip):
    from mistral_magic.errors import PromptError

    with pytest.raises(PromptError, match="nope"):
        reviews(2).mistral.extract("Extract: {nope}", schema=SPEC, progress=False)
    assert mistral_magic.session().ledger.records == []


def test_invalid_answers_are_reasked_then_reported(ip, magic_server):
    magic_server.set_faults({"bad_json_rate": 1.0})
    out = reviews(3).mistral.extract("{review}", schema=SPEC, progress=False)
    assert out["_error"].notna().all()
    assert out["_error"].str.contains("not valid JSON").all()
    assert len(mistral_magic.session().ledger.records) == 6  # each row asked twice


def test_faults_lose_and_duplicate_no_row(ip, magic_server):
    magic_server.set_faults({"error_status": 500, "error_rate": 0.07, "bad_json_rate": 0.05,
                             "seed": 11})
    df = reviews(300, index=[f"r{(i * 7919) % 300}" for i in range(300)])  # shuffled labels
    out = df.mistral.extract("{review}", schema="product, stars int", max_retries=0,
                             concurrency=16, progress=False)
    failed = out["_error"].notna()
    assert 0 < failed.sum() < 60
    assert out.loc[~failed, "stars"].notna().all()
    assert out.loc[failed, "stars"].isna().all()
    ledger = mistral_magic.session().ledger.to_frame()
    assert (ledger["status"] == "error").sum() == out["_error"].str.contains("500").sum()
    # Every row holds its own review's values, re-asked rows included; a misaligned
    # result would get most of 300 rows wrong.
    reasks = len(ledger) - len(df)
    assert 0 < reasks < 40
    assert rows_not_matching_their_text(df, out) == []


def test_reasked_rows_hold_values_from_their_own_text(ip, magic_server):
    magic_server.set_faults({"bad_json_rate": 0.5, "seed": 11})
    df = reviews(12)
    out = df.mistral.extract("{review}", schema="product, stars int", max_retries=0,
                             progress=False)
    assert len(mistral_magic.session().ledger.records) > len(df)  # some rows were re-asked
    assert_rows_match_their_text(df, out)


def test_rate_limit_pauses_and_every_row_succeeds(ip, magic_server):
    magic_server.set_faults({"rate_limit_rps": 10})
    out = reviews(30).mistral.extract("{review}", schema="stars int", max_retries=6,
                                      concurrency=8, progress=False)
    assert out["_error"].isna().all()


def test_client_side_rate_limit_spaces_requests(ip, magic_server):
    import time

    magic_server.set_faults({"rate_limit_rps": 20})
    started = time.perf_counter()
    out = reviews(30).mistral.extract("{review}", schema="stars int", requests_per_second=20,
                                      max_retries=3, progress=False)
    assert out["_error"].isna().all()
    assert time.perf_counter() - started >= 29 / 20  # 30 requests, spaced to the limit


def interrupt_after_rows(session, server, rows: int):
    """Interrupt the kernel's thread once `rows` rows are paid for, as a user would mid-run.

    The ledger tells when rows finish (no timer that might fire during first imports);
    the rows not yet sent are then slowed right down, so some are surely left when the
    interrupt lands. Returns a function that stops watching.
    """
    paid = []

    def watch(record):
        if record.status != "ok":
            return
        paid.append(record)
        if len(paid) == rows:  # once: the cancelled rows' own records must not interrupt again
            server.set_faults({"latency_ms": 20_000})
            _thread.interrupt_main()

    return session.ledger.subscribe(watch)


def test_interrupt_keeps_finished_rows_and_rerun_resumes(ip, magic_server):
    import tqdm.auto  # noqa: F401  (imported now, so the progress bar is quick to build)

    magic_server.set_faults({"latency_ms": 60})
    df = reviews(60)
    session = mistral_magic.session()
    stop_watching = interrupt_after_rows(session, magic_server, rows=8)
    try:
        with pytest.raises(Interrupted) as stopped:
            df.mistral.extract("{review}", schema="stars int", concurrency=4, progress=False)
    finally:
        stop_watching()
        magic_server.set_faults(None)
    out = stopped.value.partial
    done = out["_error"].isna()
    assert 8 <= done.sum() < 60
    assert out.loc[~done, "_error"].str.contains("interrupt").all()
    assert out.loc[~done, "stars"].isna().all()
    assert_rows_match_their_text(df, out)
    # Every finished row was paid for once and is kept for the re-run; nothing else is.
    paid = [r for r in session.ledger.records if r.status == "ok"]
    assert len(paid) == done.sum() == len(session.cache)
    again = df.mistral.extract("{review}", schema="stars int", concurrency=4, progress=False)
    assert again["_error"].isna().all()
    assert_rows_match_their_text(df, again)
    repaid = [r for r in session.ledger.records if r.status == "ok"][len(paid):]
    assert len(repaid) == 60 - done.sum()  # finished rows came from the cache
    pd.testing.assert_series_equal(again.loc[done, "stars"], out.loc[done, "stars"])


def test_budget_refuses_an_extraction_before_it_starts(ip, magic_server):
    from mistral_magic.errors import BudgetExceeded

    ip.run_line_magic("config", "MistralMagics.budget_usd = 0.0001")
    before = magic_server.request_count()
    with pytest.raises(BudgetExceeded, match="budget"):
        reviews(50).mistral.extract("{review}", schema=SPEC, progress=False)
    assert magic_server.request_count() == before


def test_batch_path_end_to_end(ip, magic_server):
    magic_server.set_faults({"batch_line_error_rate": 0.25, "seed": 3})
    df = reviews(12, index=range(100, 0, -9)[:12])
    out = df.mistral.extract("{review}", schema="product, stars int", batch=True, progress=False)
    assert_rows_match_their_text(df, out)
    failed = out["_error"].notna()
    assert failed.any() and (~failed).any()
    assert out.loc[~failed, "stars"].notna().all()
    session = mistral_magic.session()
    batch_rows = [r for r in session.ledger.records if r.kind == "batch"]
    assert len(batch_rows) == 12 and all(r.batch for r in batch_rows)
    ok = next(r for r in batch_rows if r.status == "ok")
    full = session.prices.cost(ok.model, ok.prompt_tokens, ok.completion_tokens)
    assert ok.cost == pytest.approx(full / 2)
    (stored,) = job_store(session).jobs.list()  # recorded in the folder's store
    job_id = stored.job_id
    jobs = ip.run_line_magic("mistral", "batch list")
    job = jobs.set_index("id").loc[job_id]  # the server's list holds other tests' jobs too
    assert (job["status"], job["total"], job["failed"]) == ("SUCCESS", 12, failed.sum())
    assert job["started_here"] and stored.read is not None
    status = ip.run_line_magic("mistral", f"batch status {job_id}")
    assert (status["total"], status["succeeded"]) == (12, 12 - failed.sum())
    # re-running resumes: finished rows come from the cache, only failed rows go again
    magic_server.set_faults(None)
    again = df.mistral.extract("{review}", schema="product, stars int", batch=True, progress=False)
    assert again["_error"].isna().all()
    assert len([r for r in session.ledger.records if r.kind == "batch"]) == 12 + failed.sum()


def test_batch_cancel_command(ip, magic_server):
    from mistral_magic.rows import batch

    client = mistral_magic.session().backend.client
    job_id = batch.submit(client, "mistral-small-latest", [
        {"custom_id": "0", "body": {"messages": [{"role": "user", "content": "hi"}]}}])
    note = ip.run_line_magic("mistral", f"batch cancel {job_id}")
    assert job_id in note and ("CANCEL" in note)


def test_schema_preview_command(ip):
    note = ip.run_line_magic("mistral", "schema 'name, age int' --many")
    assert '"items"' in note and '"additionalProperties": false' in note


def test_json_and_schema_cells(ip):
    run(ip, "%%mistral --json -o data\nList three fruits as items with name and color.")
    data = ip.user_ns["data"]
    # -o gets the parsed answer: the JSON the model sent, as records in a DataFrame.
    from mistral_magic.structured.frames import json_records_to_frame

    expected = json_records_to_frame(json.loads(mistral_magic.session().last.text))
    assert isinstance(data, pd.DataFrame)
    pd.testing.assert_frame_equal(data, expected)
    run(ip, '%%mistral --schema "name, age int" --many -o people\n'
            "Alice is 31 years old.\nBob is 45 years old.")
    people = ip.user_ns["people"]
    assert isinstance(people, pd.DataFrame) and list(people.columns) == ["name", "age"]
    assert str(people["age"].dtype) == "Int64"
    assert people.to_dict("records") == [{"name": "Alice", "age": 31}, {"name": "Bob", "age": 45}]
    final = ip.display_pub.finals()[-1]
    assert "text/html" in final["data"] and "mistral_magic" in final["metadata"]


def test_schema_cell_reasks_once_then_keeps_raw(ip, magic_server, capsys):
    magic_server.set_faults({"bad_json_rate": 1.0})
    result = run(ip, '%%mistral --schema "name, age int"\nAlice is 31.', ok=False)
    assert not result.success
    out = capsys.readouterr()
    assert "re-ask" in (out.out + out.err)
    session = mistral_magic.session()
    assert session.last.text and len(session.ledger.records) == 2
    shown = {m["transient"]["display_id"] for m in ip.display_pub.messages
             if "data" in m and m["transient"].get("display_id")}
    assert len(shown) == 1  # the re-ask streamed into the same output
