"""df.mistral.embed, search and dedup: packing within the API's limits, vectors aligned with
`_error`, resume, budget, batch, Codestral's dtypes, and search and dedup on known data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import mistral_magic
from mistral_magic.errors import BudgetExceeded, ConfigError
from mistral_magic.money.tokens import count_text
from mistral_magic.rows import vectors

EMBED = "/v1/embeddings"
TICKETS = [
    "The app crashes when I upload a photo",
    "Uploading a photo makes the app crash",
    "How do I reset my password?",
    "My order arrived damaged, I want a refund.",
    "My order arrived damaged and I want a refund",
    "Can I change my shipping address?",
    "Where is my parcel? It has been two weeks.",
    "where is my parcel?? it has been two weeks",
]


@pytest.fixture
def session(ip):
    ip.run_line_magic("config", "MistralMagics.max_retries = 0")
    return mistral_magic.session()


def tickets() -> pd.DataFrame:
    return pd.DataFrame({"text": TICKETS}, index=[f"t{i}" for i in range(len(TICKETS))])


def cosine(a, b) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_short_texts_go_512_to_a_request(session, magic_server):
    df = pd.DataFrame({"text": [f"ticket number {i}" for i in range(1100)]})
    before = magic_server.request_count(EMBED)
    out = df.mistral.embed("text", progress=False)
    assert magic_server.request_count(EMBED) - before == 3  # 512 + 512 + 76
    assert out["_error"].isna().all() and list(out.columns) == ["text", "text_embedding", "_error"]
    first = out["text_embedding"].iloc[0]
    assert first.dtype == np.float32 and first.shape == (1024,)
    assert math.isclose(float(np.linalg.norm(first)), 1.0, rel_tol=1e-5)
    records = session.ledger.records
    assert [r.kind for r in records] == ["embed"] * 3
    assert sum(r.prompt_tokens for r in records) == sum(count_text(t) for t in df["text"])


def test_vectors_are_written_once_into_one_array_and_kept_in_the_store(session, magic_server, sdk):
    texts = [f"ticket number {i}" for i in range(1100)]
    df = pd.DataFrame({"text": texts}, index=[f"r{i}" for i in range(1100)])
    out = df.mistral.embed("text", progress=False)
    column = out["text_embedding"]
    # Every row's vector is a row of one float32 array made for the job (no per-row copies).
    matrix = column.iloc[0].base
    assert matrix is not None and matrix.shape == (1100, 1024) and matrix.dtype == np.float32
    assert all(vector.base is matrix for vector in column)
    assert np.shares_memory(column.iloc[700], matrix)
    # The numbers are the server's, row for row (the last request's rows too).
    direct = sdk.embeddings.create(model="mistral-embed", inputs=[texts[3], texts[1099]]).data
    for row, got in ((3, direct[0]), (1099, direct[1])):
        np.testing.assert_array_equal(column.iloc[row], np.asarray(got.embedding, np.float32))
    # Each row was kept in the store as it was written: a rerun sends nothing.
    before = magic_server.request_count(EMBED)
    again = df.mistral.embed("text", progress=False)
    assert magic_server.request_count(EMBED) == before
    np.testing.assert_array_equal(np.stack(again["text_embedding"]), matrix)


@pytest.mark.parametrize(("rows", "options", "at_once"), [
    (20_000, {}, 4),  # replies in flight within the 82 MB of vectors: 4 of 17 MB
    (100_000, {}, 8),  # the engine's concurrency
    (10_000, {}, 2),  # never fewer than two
    (20_000, {"dimension": 256}, 4),  # smaller vectors, smaller replies: the same share
    (80_000, {"dtype": "int8"}, 4),  # a byte a number kept, the replies' text as long
])
def test_replies_in_flight_stay_within_the_vectors_own_bytes(session, rows, options, at_once):
    df = pd.DataFrame({"text": ["a ticket"] * rows})
    job = vectors.Embedding(session, df, "text", **options)
    units = [list(range(i, min(i + 512, rows))) for i in range(0, rows, 512)]
    assert job.calls_at_once(8, units) == at_once
    assert job.calls_at_once(3, units) == min(3, at_once)


def test_long_texts_are_packed_by_tokens(session, magic_server):
    text = "refund " * 2000
    tokens = count_text(text)
    assert 16384 // tokens == 8  # eight of them fill a request's 16,384 tokens
    df = pd.DataFrame({"text": [f"{i} {text}" for i in range(20)]})
    before = magic_server.request_count(EMBED)
    out = df.mistral.embed("text", progress=False)
    assert out["_error"].isna().all()  # the server refused no request
    counts = [r.prompt_tokens for r in session.ledger.records]
    assert magic_server.request_count(EMBED) - before == len(counts) == 3
    assert all(c <= 16384 for c in counts) and sum(counts) == sum(count_text(t) for t in df["text"])


def test_a_server_that_counts_otherwise_gets_fuller_margins(ip, session, magic_server):
    # A self-hosted server's tokenizer is not ours: requests are packed to 90 % of the limit.
    ip.run_line_magic("config", f"MistralMagics.server_url = {magic_server.url!r}")
    ip.run_line_magic("config", f"MistralMagics.server_key = {magic_server.api_key!r}")
    df = pd.DataFrame({"text": [f"{i} " + "refund " * 2000 for i in range(16)]})
    before = magic_server.request_count(EMBED)
    out = df.mistral.embed("text", progress=False)
    assert out["_error"].isna().all()
    assert magic_server.request_count(EMBED) - before == 3  # 7 + 7 + 2, where offline packs 8 + 8
    assert max(r.prompt_tokens for r in session.ledger.records) <= 16384 * 0.9


def test_a_text_past_the_input_limit_is_its_rows_error(session, magic_server):
    df = pd.DataFrame({"text": ["short one", "word " * 9000, None, "short two"]}, index=list("abcd"))
    before = magic_server.request_count(EMBED)
    out = df.mistral.embed("text", progress=False)
    assert magic_server.request_count(EMBED) - before == 1  # the other rows, in one request
    assert "over mistral-embed's limit of 8,192 tokens per input" in out.loc["b", "_error"]
    assert "column 'text' is missing" in out.loc["c", "_error"]
    assert out.loc[["a", "d"], "_error"].isna().all()
    assert out["text_embedding"].isna().tolist() == [False, True, True, False]
    shown = [m["data"]["text/plain"] for m in session.shell.display_pub.messages if "data" in m]
    assert any("1 row with missing text not sent; 1 row refused (see _error)" in s for s in shown)


def test_failed_requests_fail_their_rows_and_a_rerun_sends_only_those(session, magic_server):
    df = pd.DataFrame({"text": [f"row {i}" for i in range(1030)]}).iloc[::-1]  # index 1029..0
    magic_server.set_faults({"error_status": 503, "error_on_nth": [2]})
    out = df.mistral.embed("text", concurrency=1, progress=False)
    failed = out["_error"].notna()
    assert list(out.index) == list(df.index) and failed.sum() == 512
    assert out.loc[failed, "_error"].str.contains("503").all()
    assert out.loc[failed, "text_embedding"].isna().all()
    magic_server.set_faults(None)
    before = magic_server.request_count(EMBED)
    again = df.mistral.embed("text", progress=False)
    assert magic_server.request_count(EMBED) - before == 1  # the 512 failed rows, one request
    assert again["_error"].isna().all()
    kept = out.loc[~failed, "text_embedding"]
    assert all(np.array_equal(a, b) for a, b in zip(kept, again.loc[~failed, "text_embedding"],
                                                     strict=True))


def test_the_budget_refuses_an_embedding_it_cannot_pay(session, magic_server):
    df = pd.DataFrame({"text": [f"row {i}" for i in range(50)]})
    session.settings.budget_usd = 1e-7
    before = magic_server.request_count()
    with pytest.raises(BudgetExceeded, match="embedding 50 rows needs at least"):
        df.mistral.embed("text", progress=False)
    assert magic_server.request_count() == before and session.budget.reserved == 0


def test_batch_gives_the_same_vectors_at_half_price(session, magic_server):
    df = tickets().iloc[:4]
    session.settings.budget_usd = 1.0  # a budget: the batch lines must not carry max_tokens
    out = df.mistral.embed("text", batch=True, progress=False)
    assert out["_error"].isna().all()
    batch = [r for r in session.ledger.records if r.kind == "batch"]
    assert len(batch) == 4 and all(r.batch for r in batch)
    cost = session.prices.cost("mistral-embed", count_text(TICKETS[0]), 0, batch=True)
    assert batch[0].cost == pytest.approx(cost)
    session.cache.clear()
    direct = df.mistral.embed("text", progress=False)
    for a, b in zip(out["text_embedding"], direct["text_embedding"], strict=True):
        assert np.allclose(a, b, atol=1e-6)


def test_codestral_dimensions_and_dtypes(session):
    df = tickets().iloc[:3]
    floats = df.mistral.embed("text", model="codestral-embed", dimension=100, progress=False)
    assert floats["text_embedding"].iloc[0].shape == (100,)
    assert floats.attrs["mistral_embeddings"]["text_embedding"] == {
        "model": "codestral-embed", "dimension": 100, "dtype": "float"}
    for dtype, numpy in (("int8", np.int8), ("uint8", np.uint8)):
        out = df.mistral.embed("text", model="codestral-embed", dimension=100, dtype=dtype,
                               progress=False)
        assert all(v.dtype == numpy and v.shape == (100,) for v in out["text_embedding"])
    for dtype in ("binary", "ubinary"):
        bits = df.mistral.embed("text", model="codestral-embed", dimension=100, dtype=dtype,
                                progress=False)
        for signs, values in zip(bits["text_embedding"], floats["text_embedding"], strict=True):
            assert signs.dtype == bool and np.array_equal(signs, values > 0)


@pytest.mark.parametrize("call, words", [
    (lambda df: df.mistral.embed("body"), "'body' is not one of the DataFrame's columns ('text')"),
    (lambda df: df.mistral.embed("text", dtype="float16"), "dtype must be one of float, int8"),
    (lambda df: df.mistral.embed("text", dimension=0), "dimension must be a whole number"),
    (lambda df: df.mistral.search("   "), "search needs a query"),
    (lambda df: df.mistral.search("refund", k=0), "k must be a whole number"),
    (lambda df: df.mistral.dedup(threshold=1.5), "threshold must be a cosine above 0"),
])
def test_bad_arguments_are_one_line_and_send_nothing(session, magic_server, call, words):
    before = magic_server.request_count()
    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        call(tickets())
    assert magic_server.request_count() == before


def test_search_ranks_by_cosine_and_reuses_cached_vectors(session, magic_server):
    df = tickets()
    before = magic_server.request_count(EMBED)
    hits = df.mistral.search("refund for my damaged order", k=3, progress=False)
    assert magic_server.request_count(EMBED) - before == 1  # the rows and the query together
    assert list(hits.index[:2]) == ["t3", "t4"] and list(hits.columns) == ["text", "score"]
    assert hits["score"].is_monotonic_decreasing
    embedded = df.mistral.embed("text", progress=False)  # from the cache: nothing sent
    assert magic_server.request_count(EMBED) - before == 1
    query = pd.DataFrame({"q": ["refund for my damaged order"]}).mistral.embed("q", progress=False)
    expected = [cosine(embedded.loc[i, "text_embedding"], query["q_embedding"][0]) for i in hits.index]
    assert hits["score"].tolist() == pytest.approx(expected, abs=1e-5)
    paid = len(session.ledger)
    again = df.mistral.search("where is my parcel", k=2, progress=False)
    assert set(again.index) == {"t6", "t7"}
    (query_call,) = session.ledger.records[paid:]  # only the new query was sent
    assert query_call.prompt_tokens == count_text("where is my parcel")


@pytest.mark.parametrize("spec", [{}, {"model": "codestral-embed", "dtype": "int8"}], ids=["float", "int8"])
def test_vectors_sent_out_of_order_land_on_their_own_rows(session, magic_server, spec):
    df = tickets()
    plain = df.mistral.embed("text", progress=False, **spec)
    session.cache.clear()
    magic_server.set_faults({"shuffle_embeddings": True})
    mixed = df.mistral.embed("text", progress=False, **spec)
    assert all(np.array_equal(a, b) for a, b in
               zip(plain["text_embedding"], mixed["text_embedding"], strict=True))
    # A search sends its query in the same request as the rows: it keeps its own vector too.
    session.cache.clear()
    hits = df.mistral.search("refund for my damaged order", k=2, progress=False, **spec)
    assert set(hits.index) == {"t3", "t4"}


def test_search_uses_a_vector_column_and_its_model(session):
    df = tickets().mistral.embed("text", model="codestral-embed", dimension=64, progress=False)
    hits = df.mistral.search("reset my password", k=1, progress=False)
    assert hits.index[0] == "t2" and "text_embedding" in hits.columns
    bare = df.copy()
    bare.attrs = {}  # where the vectors came from is forgotten: the query gets mistral-embed
    with pytest.raises(ConfigError, match="have 64 dimensions and the query's 1024"):
        bare.mistral.search("reset my password", column="text_embedding", progress=False)


def test_rows_without_vectors_take_no_part(session):
    df = pd.DataFrame({"text": ["My order arrived damaged, I want a refund", None, "hello there"]})
    hits = df.mistral.search("refund", k=5, progress=False)
    assert list(hits.index) == [0, 2]
    assert any("1 row without a vector took no part" in m["data"]["text/plain"]
               for m in session.shell.display_pub.messages if "data" in m)


def test_dedup_groups_near_duplicates_only(session):
    out = tickets().mistral.dedup(threshold=0.9, progress=False)
    assert out["dup_group"].tolist() == [0, 1, 2, 3, 3, 4, 5, 5]
    assert out["duplicate"].tolist() == [False] * 4 + [True, False, False, True]
    assert str(out["dup_group"].dtype) == "Int64" and str(out["duplicate"].dtype) == "boolean"
    assert list(out[~out["duplicate"]].index) == ["t0", "t1", "t2", "t3", "t5", "t6"]
    looser = tickets().mistral.dedup(threshold=0.5, progress=False)
    assert looser.loc["t0", "dup_group"] == looser.loc["t1", "dup_group"]  # the paraphrases


@pytest.mark.parametrize("spec", [{}, {"model": "codestral-embed"},
                                  {"model": "codestral-embed", "dtype": "int8"},
                                  {"model": "codestral-embed", "dtype": "binary"}],
                         ids=["mistral-embed", "codestral", "int8", "binary"])
def test_dedup_at_one_marks_every_exact_duplicate_and_nothing_else(session, spec):
    # Each text twice, the copies in reverse order; the near-duplicates are not exact ones
    # (the last ticket is left out: the offline model ignores case and punctuation).
    texts = TICKETS[:-1]
    df = pd.DataFrame({"text": texts + texts[::-1]})
    out = df.mistral.dedup(threshold=1.0, progress=False, **spec)
    n = len(texts)
    assert out["dup_group"].tolist() == list(range(n)) + list(range(n))[::-1]
    assert out["duplicate"].tolist() == [False] * n + [True] * n


def test_dedup_joins_a_cosine_exactly_at_the_threshold_and_nothing_below(session):
    # Exact in float32: [1,0,0,0]·[.5,.5,.5,.5] = 0.5, an orthogonal pair 0, an opposite -1.
    rows = [[1, 0, 0, 0], [0.5, 0.5, 0.5, 0.5], [0, 0, 1, 0], [0.5, 0.5, 0.5, 0.5], [-1, 0, 0, 0]]
    df = pd.DataFrame({"v": pd.Series([np.array(r, dtype=np.float32) for r in rows], dtype=object)})
    groups = {t: df.mistral.dedup(t, column="v")["dup_group"].tolist()
              for t in (1.0, 0.5 + 1e-4, 0.5, 0.01)}
    assert groups[1.0] == groups[0.5 + 1e-4] == [0, 1, 2, 1, 3]  # only the exact copy
    assert groups[0.5] == [0, 0, 0, 0, 1]  # the tie joins, through the shared row
    assert groups[0.01] == [0, 0, 0, 0, 1]  # orthogonal and opposite rows never do


@pytest.mark.parametrize("threshold", [0, -0.5, 1.0000001, 2, True, "0.9", float("nan"), None])
def test_dedup_thresholds_outside_the_cosines_range_are_refused(session, magic_server, threshold):
    before = magic_server.request_count()
    with pytest.raises(ConfigError, match="threshold must be a cosine above 0 and at most 1"):
        tickets().mistral.dedup(threshold=threshold)
    assert magic_server.request_count() == before


def test_dedup_joins_chains_across_blocks(session, monkeypatch, magic_server):
    # Unit vectors at 0, 20, 40, 90, 110 and 200 degrees: with a threshold of cos 25 degrees,
    # 0-20 and 20-40 are near (so 0 and 40 share a group through 20), and so are 90-110.
    angles = np.radians([0, 20, 40, 90, 110, 200])
    column = [np.array([math.cos(a), math.sin(a)], dtype=np.float32) for a in angles] + [None]
    df = pd.DataFrame({"v": pd.Series(column, dtype=object)})
    threshold = math.cos(math.radians(25))
    before = magic_server.request_count()
    whole = df.mistral.dedup(threshold, column="v")
    monkeypatch.setattr(vectors, "BLOCK_CELLS", 2)  # one row a block: every join spans blocks
    blocks = df.mistral.dedup(threshold, column="v")
    assert magic_server.request_count() == before  # vectors given: nothing to embed
    expected = [0, 0, 0, 1, 1, 2, pd.NA]
    assert whole["dup_group"].tolist() == blocks["dup_group"].tolist() == expected
    assert blocks["duplicate"].tolist() == [False, True, True, False, True, False, False]


def test_bits_and_bytes_compare_like_their_floats(session):
    df = tickets()
    hits = {}
    for dtype in (None, "int8", "binary"):
        out = df.mistral.embed("text", model="codestral-embed", dtype=dtype, progress=False)
        hits[dtype] = out.mistral.search("photo upload crash", k=2, progress=False).index.tolist()
    assert set(hits[None]) == set(hits["int8"]) == set(hits["binary"]) == {"t0", "t1"}
